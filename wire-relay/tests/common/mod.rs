//! A relay on a free loopback port, in-process on its own runtime thread, and a plain
//! blocking HTTP/1.1 client that can send anything (including malformed requests).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use wire_relay::{Config, Listener, StoreConfig};

pub struct TestRelay {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn tempdir(name: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let dir = std::env::temp_dir().join(format!("wire-relay-{name}-{}", hex::encode(bytes)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Test defaults: rate limits off unless a test turns them on.
pub fn config(sqlite: bool, dir: &std::path::Path) -> Config {
    Config {
        store: if sqlite { StoreConfig::Sqlite { dir: dir.join("data") } } else { StoreConfig::Memory },
        ip_rate: wire_relay::Rate::OFF,
        token_rate: wire_relay::Rate::OFF,
        ..Config::default()
    }
}

impl TestRelay {
    pub fn start(sqlite: bool) -> Self {
        let dir = tempdir("api");
        let cfg = config(sqlite, &dir);
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
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
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
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        self.raw(&raw)
    }

    /// Sends raw bytes and reads the response until the server closes.
    pub fn raw(&self, bytes: &[u8]) -> Resp {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Resp::parse(&out)
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

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn parse(raw: &[u8]) -> Self {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
            body = dechunk(&body);
        }
        Self { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): status {} body {:?}", self.status, self.text()))
    }

    /// The `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {}", self.text())).to_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = body.windows(2).position(|w| w == b"\r\n") {
        let len = usize::from_str_radix(String::from_utf8_lossy(&body[..pos]).trim(), 16).unwrap_or(0);
        if len == 0 || body.len() < pos + 2 + len {
            break;
        }
        out.extend_from_slice(&body[pos + 2..pos + 2 + len]);
        body = &body[(pos + 4 + len).min(body.len())..];
    }
    out
}

/// Reads an SSE response incrementally until `until` is seen in the text or time runs out.
pub fn sse(addr: SocketAddr, path: &str, token: &str, last_event_id: Option<u64>, until: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer {token}\r\n");
    if let Some(id) = last_event_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&buf).contains(until) {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The `id:` lines of an SSE transcript.
pub fn sse_ids(text: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.strip_prefix("id: ")).filter_map(|v| v.trim().parse().ok()).collect()
}
