//! Helpers for end-to-end tests: the real `wire` binary as a relay process on a free
//! loopback port, and a minimal blocking HTTP client.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn tempdir(name: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let dir = std::env::temp_dir().join(format!("wire-e2e-{name}-{}", hex::encode(bytes)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `wire relay-server` process.
pub struct RelayProcess {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl RelayProcess {
    /// Starts the relay on a free port with its data in `data`; stderr goes to `log`.
    pub fn start(data: &Path, log: &Path, extra: &[&str]) -> Self {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wire"))
            .args(["relay-server", "--json", "--bind", "127.0.0.1:0", "--ip-rate", "0", "--token-rate", "0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let announce: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad announce line {line:?}: {e}"));
        assert_eq!(announce["event"], "listening");
        Self { child, addr: announce["addr"].as_str().unwrap().to_owned(), log: log.to_owned() }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    pub fn req(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        request(&self.addr, method, path, token, body)
    }

    pub fn json(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Value {
        let (status, body) = self.req(method, path, token, body);
        assert!(status < 300, "{method} {path}: {status} {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&out[..split]).split(' ').nth(1).unwrap().parse().unwrap();
    (status, out[split + 4..].to_vec())
}
