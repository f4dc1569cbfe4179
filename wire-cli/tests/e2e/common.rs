//! Helpers for end-to-end tests: the real `wire` binary as a relay process on a free
//! loopback port, and a minimal blocking HTTP client.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;

pub use wire_testkit::{WAIT, eventually, tempdir, wait_until};

/// A `wire relay-server` process.
pub struct RelayProcess {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl RelayProcess {
    /// Starts the relay on a free port with its data in `data`; stderr goes to `log`.
    pub fn start(data: &Path, log: &Path, extra: &[&str]) -> Self {
        Self::start_at(data, log, "127.0.0.1:0", extra)
    }

    /// Starts the relay on a given address (to restart it where clients expect it). Rate
    /// limits are off unless `extra` is `["--defaults", ..]`: then every limit is the
    /// relay's own default.
    pub fn start_at(data: &Path, log: &Path, bind: &str, extra: &[&str]) -> Self {
        Self::launch(log, bind, &["--data", data.to_str().unwrap()], extra, &[])
    }

    /// Starts a relay node on the PostgreSQL database `url` (several nodes may share it).
    pub fn start_node(url: &str, log: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(log, "127.0.0.1:0", &["--store", url], extra, env)
    }

    fn launch(log: &Path, bind: &str, store: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let (rates, extra) = match extra.split_first() {
            Some((&"--defaults", rest)) => (&[][..], rest),
            _ => (&["--ip-rate", "0", "--token-rate", "0"][..], extra),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_wire"))
            .args(["relay-server", "--json", "--bind", bind])
            .args(rates)
            .args(store)
            .args(extra)
            .envs(env.iter().copied())
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
    let resp = wire_testkit::http::request(addr, method, path, token, &[], body);
    assert_ne!(resp.status, 0, "{method} {path}: no HTTP response from {addr}");
    (resp.status, resp.body)
}

/// A relay's `/metrics` value.
pub fn metric(addr: &str, name: &str) -> u64 {
    wire_testkit::http::metric(addr, name)
}

/// One agent: the `wire` binary with its own WIRE_HOME.
pub struct Wire {
    pub home: PathBuf,
}

/// What a `wire` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "wire failed: {self:?}");
        self
    }
}

impl Wire {
    pub fn new(root: &Path, name: &str) -> Self {
        Self { home: root.join(name) }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// The daemon directory for this test (never the user's real one).
    pub fn daemon_dir(&self) -> PathBuf {
        self.home.parent().unwrap_or(&self.home).join("daemon")
    }

    /// `wire ARGS` as this agent: its WIRE_HOME, this test's daemon and sessions directories.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire"));
        cmd.args(args)
            .env("WIRE_HOME", &self.home)
            .env("WIRE_DAEMON_DIR", self.daemon_dir())
            .env("WIRE_SESSIONS_DIR", self.sessions_dir())
            .env_remove("WIRE_SESSION_ID")
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::from(self.command(args).envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap())
    }

    /// Runs with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::from(out)
    }

    /// `wire ARGS` left running (a `--follow`): the child, and its stdout lines as they come.
    pub fn follow(&self, args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
        let mut child = self.command(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (child, rx)
    }

    /// The sessions directory for this test (never the user's real one).
    pub fn sessions_dir(&self) -> PathBuf {
        self.home.parent().unwrap_or(&self.home).join("sessions")
    }

    /// Runs with --json and expects success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).ok().json()
    }

    pub fn nickname(&self) -> String {
        self.json(&["whoami"])["nickname"].as_str().unwrap().to_owned()
    }

    pub fn did(&self) -> String {
        self.json(&["whoami"])["did"].as_str().unwrap().to_owned()
    }

    /// The files under WIRE_HOME that hold state, for "nothing changed" checks.
    pub fn state(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for name in ["peers.json", "pending.json", "account.json"] {
            out.push((name.to_owned(), std::fs::read(self.home.join(name)).unwrap_or_default()));
        }
        out
    }
}

/// A free loopback port (bound then released).
/// Copies a directory tree (a home, a fixture).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The workspace root (where `target/test-deps` lives).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Pairs `a` and `b` by invite: A invites, B accepts, both pull until B has pinned A.
pub fn pair_by_invite(a: &Wire, b: &Wire) {
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);
    eventually(WAIT, "the invite pairing to complete", || {
        a.run(&["pull"]);
        b.run(&["pull"]);
        (b.json(&["peers"]).as_array().unwrap().iter().any(|p| p["did"] == a.did())).then_some(())
    });
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A raw stdio session: every stdout line must be JSON-RPC.
pub struct McpSession {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl McpSession {
    /// `wire mcp` with WIRE_HOME = `home`, or with no WIRE_HOME run in `cwd` (the session
    /// rule then picks the identity).
    pub fn start(home: &Path, daemon: &Path, sessions: &Path, cwd: Option<&Path>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire"));
        cmd.arg("mcp").env("WIRE_DAEMON_DIR", daemon).env("WIRE_SESSIONS_DIR", sessions).env_remove("WIRE_SESSION_ID");
        match cwd {
            Some(dir) => cmd.current_dir(dir).env_remove("WIRE_HOME"),
            None => cmd.env("WIRE_HOME", home),
        };
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    pub fn send(&mut self, message: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads messages until `want` matches one (every line must be JSON-RPC 2.0).
    pub fn until(&self, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + wire_testkit::patience(WAIT);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("timed out waiting for the MCP server");
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "{line}");
            if want(&v) {
                return v;
            }
        }
    }

    /// initialize + initialized, as a handshake-era host (Claude Code) does.
    pub fn handshake(&mut self) -> Value {
        self.handshake_with(serde_json::json!({}))
    }

    /// [`McpSession::handshake`], declaring these client capabilities.
    pub fn handshake_with(&mut self, capabilities: Value) -> Value {
        self.send(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": capabilities,
            "clientInfo": {"name": "claude-code", "version": "2"}}}));
        let init = self.until(|v| v["id"] == 1);
        self.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        init
    }
}

impl Drop for McpSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `systemd-analyze verify --user` on unit files (with a private runtime directory under
/// `scratch`); the tool is installed by `.ci/test`.
pub fn systemd_verify(units: &[PathBuf], scratch: &Path) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt;
    let runtime = scratch.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--user"])
        .args(units)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .expect("systemd-analyze is installed by .ci/test (apt-get install systemd)")
}

/// `wire` run in a project directory with this test's own HOME (and XDG directories),
/// sessions and daemon directories, no WIRE_HOME and no WIRE_RELAY: the session rule
/// decides, and nothing reaches the user's real home. Service-manager commands are
/// recorded in `<root>/service-commands`, never run.
pub struct Machine {
    pub root: PathBuf,
}

impl Machine {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    pub fn run(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let home = self.root.join("home");
        let out = Command::new(env!("CARGO_BIN_EXE_wire"))
            .args(args)
            .current_dir(cwd)
            .env_remove("WIRE_HOME")
            .env_remove("WIRE_SESSION_ID")
            .env_remove("WIRE_RELAY")
            .env("WIRE_SESSIONS_DIR", self.root.join("sessions"))
            .env("WIRE_DAEMON_DIR", self.root.join("daemon"))
            .env("WIRE_SERVICE_RECORD", self.root.join("service-commands"))
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    pub fn json(&self, cwd: &Path, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(cwd, &all, &[]).ok().json()
    }
}
