//! The relay in-process, on its own runtime thread and a free loopback port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use wire_relay::{Config, Listener, StoreConfig};

use crate::http::{Resp, raw_request, request};

/// Which store a test relay runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Process memory.
    Memory,
    /// SQLite in the relay's directory.
    Sqlite,
    /// A fresh database on the private PostgreSQL cluster (`WIRE_TEST_PG`).
    Postgres,
}

impl From<bool> for Backend {
    /// `true`: SQLite, `false`: memory (what the older tests say).
    fn from(sqlite: bool) -> Self {
        if sqlite { Backend::Sqlite } else { Backend::Memory }
    }
}

/// The connection string of the private PostgreSQL cluster `.ci/test` starts (a superuser,
/// Unix socket), if this run has one.
pub fn test_cluster() -> Option<String> {
    std::env::var("WIRE_TEST_PG").ok().filter(|v| !v.is_empty())
}

/// A new, empty database on the test cluster; its connection string. Panics without a
/// cluster: tests that need one are `#[ignore]`d outside `.ci/test`, which starts it.
pub fn fresh_database(name: &str) -> String {
    let base = test_cluster().expect("WIRE_TEST_PG names the test cluster (`.ci/test` starts one)");
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("the test cluster answers");
    let mut suffix = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
    let db = format!("{}_{}", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), hex::encode(suffix));
    admin.batch_execute(&format!("CREATE DATABASE {db}")).expect("create a test database");
    format!("{base} dbname={db}")
}

/// Test defaults: rate limits off unless a test turns them on.
pub fn config(store: impl Into<Backend>, dir: &std::path::Path) -> Config {
    let store = match store.into() {
        Backend::Memory => StoreConfig::Memory,
        Backend::Sqlite => StoreConfig::Sqlite { dir: dir.join("data") },
        Backend::Postgres => StoreConfig::Postgres { url: fresh_database("relay") },
    };
    Config {
        store,
        ip_rate: wire_relay::Rate::OFF,
        token_rate: wire_relay::Rate::OFF,
        slot_rate: wire_relay::Rate::OFF,
        ..Config::default()
    }
}

/// A running relay; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct TestRelay {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestRelay {
    /// A relay with the test defaults, on the given store.
    pub fn start(store: impl Into<Backend>) -> Self {
        let dir = crate::tempdir("relay");
        let cfg = config(store, &dir);
        Self::with_config(cfg, dir)
    }

    pub fn with_config(config: Config, dir: PathBuf) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                wire_relay::serve(Listener::Tcp(listener), config, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = crate::recv(&addr_rx, Duration::from_secs(30), "the relay to listen");
        Self { addr, dir, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn req(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        self.req_with(method, path, token, &[], body)
    }

    pub fn req_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        request(self.addr, method, path, token, headers, body)
    }

    /// Sends raw bytes and reads the response until the server closes.
    pub fn raw(&self, bytes: &[u8]) -> Resp {
        raw_request(self.addr, bytes)
    }

    /// A `/metrics` value.
    pub fn metric(&self, name: &str) -> u64 {
        crate::http::metric(self.addr, name)
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn json(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.req(method, path, token, body.to_string().as_bytes())
    }

    /// A slot: (id, owner token).
    pub fn slot(&self) -> (String, String) {
        let r = self.req("POST", "/v1/slots", None, b"");
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (v["slot"].as_str().unwrap().to_owned(), v["owner_token"].as_str().unwrap().to_owned())
    }

    /// A grant on `slot`: (grant id, token).
    pub fn grant(&self, slot: &str, owner: &str, body: Value) -> (String, String) {
        let r = self.json("POST", &format!("/v1/slots/{slot}/grants"), Some(owner), &body);
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (v["grant_id"].as_str().unwrap().to_owned(), v["token"].as_str().unwrap().to_owned())
    }

    pub fn append(&self, slot: &str, token: &str, envelope: &[u8]) -> Resp {
        self.req("POST", &format!("/v1/slots/{slot}/events"), Some(token), envelope)
    }

    pub fn list(&self, slot: &str, token: &str, after: u64) -> Resp {
        self.req("GET", &format!("/v1/slots/{slot}/events?after={after}"), Some(token), b"")
    }

    pub fn seqs(&self, slot: &str, owner: &str, after: u64) -> Vec<u64> {
        let r = self.list(slot, owner, after);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A random envelope of the right shape (the relay cannot tell it from a real one).
pub fn envelope(bucket: usize) -> Vec<u8> {
    let mut e = vec![0u8; 1 + 32 + bucket + 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut e);
    e[0] = 1;
    e
}
