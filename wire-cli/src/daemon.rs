//! `wire daemon`: one background process per OS user that keeps every registered WIRE_HOME
//! in sync.
//!
//! Per home it holds one SSE stream on the home's slot and treats each frame only as a
//! wake-up: it then runs `Endpoint::pull`, the same receive path as `wire pull` (deliver the
//! outbox, fetch, verify, append, ack). Between frames it retries the outbox and drives
//! detached code pairings. After any disconnect it resumes from the home's cursor with
//! jittered exponential backoff.
//!
//! One daemon per user: it holds an exclusive lock on `daemon.lock` for its whole life, so
//! liveness is "is the lock held", a stale pidfile never blocks a start and two starts
//! never make two daemons. Files live in `$WIRE_DAEMON_DIR`, else the platform state
//! directory's `wire/daemon`: `daemon.lock`, `daemon.pid`, `daemon.log` (rotated at 1 MiB),
//! `status.json`, and `homes.json` (the homes `wire init` registered).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use wire_core::endpoint::{PullReport, now};
use wire_core::home::Home;
use wire_core::proto::time::UnixMillis;
use wire_core::sync::{self, SyncEvent};

const LOG_LIMIT: u64 = 1 << 20;

/// The daemon's directory.
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("WIRE_DAEMON_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let state = wire_core::files::state_dir().context("no home directory for this user; set WIRE_DAEMON_DIR")?;
    Ok(state.join("daemon"))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    v: u64,
    homes: Vec<PathBuf>,
}

/// Adds `home` to the homes the daemon serves (idempotent).
pub fn register(home: &Path) -> anyhow::Result<()> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("registry.lock"))?;
    lock.lock()?;
    let path = dir.join("homes.json");
    let mut reg: Registry = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Registry { v: 1, homes: vec![] });
    let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_owned());
    if !reg.homes.contains(&home) {
        reg.homes.push(home);
        wire_core::files::write_atomic(&path, &serde_json::to_vec_pretty(&reg)?, None)?;
    }
    Ok(())
}

fn registered(dir: &Path) -> Vec<PathBuf> {
    std::fs::read(dir.join("homes.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Registry>(&b).ok())
        .map(|r| r.homes)
        .unwrap_or_default()
}

/// Per-home state shown by `wire daemon status`.
#[derive(Debug, Clone, Default, Serialize)]
struct HomeStatus {
    home: String,
    did: Option<String>,
    nickname: Option<String>,
    stream_connected: bool,
    cursor: u64,
    last_sync: Option<UnixMillis>,
    outbox: usize,
    rejected_total: usize,
    rejected_reasons: HashMap<String, usize>,
    last_error: Option<String>,
    reconnects: u64,
    /// Another daemon (started with another daemon directory) serves this home; this one
    /// waits for it to stop.
    #[serde(default)]
    served_elsewhere: bool,
}

#[derive(Debug, Serialize)]
struct DaemonStatus {
    pid: u32,
    started_at: UnixMillis,
    homes: Vec<HomeStatus>,
}

type Shared = Arc<Mutex<HashMap<PathBuf, HomeStatus>>>;

/// Applies a change to one home's status entry.
type Update<'a> = &'a (dyn Fn(&dyn Fn(&mut HomeStatus)) + Sync);

struct Log {
    path: PathBuf,
    file: Mutex<File>,
}

impl Log {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("daemon.log");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > LOG_LIMIT) {
            let _ = std::fs::rename(&path, dir.join("daemon.log.1"));
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self { path, file: Mutex::new(file) })
    }

    fn line(&self, message: &str) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(file, "{} {message}", crate::output::time(now()));
        if file.metadata().is_ok_and(|m| m.len() > LOG_LIMIT) {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            if let Ok(fresh) = OpenOptions::new().create(true).append(true).open(&self.path) {
                *file = fresh;
            }
        }
    }
}

/// Whether a running daemon keeps `home` in sync (it serves every registered home).
pub fn serves(home: &Path) -> bool {
    let Ok(dir) = dir() else { return false };
    if !lock_is_held(&dir) {
        return false;
    }
    let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_owned());
    std::fs::read(dir.join("homes.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Registry>(&b).ok())
        .is_some_and(|r| r.homes.contains(&home))
}

fn lock_is_held(dir: &Path) -> bool {
    match OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("daemon.lock")) {
        Ok(f) => f.try_lock().is_err(),
        Err(_) => false,
    }
}

fn pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("daemon.pid")).ok()?.trim().parse().ok()
}

/// `wire daemon run`: the daemon in the foreground.
pub fn run(no_notify: bool) -> anyhow::Result<()> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir)?;
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("daemon.lock"))?;
    // `wire daemon start` (and `status`) probe the lock by taking it for an instant; a probe
    // is not a daemon, so a refusal is retried for a moment before it counts as one.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while lock.try_lock().is_err() {
        if std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        bail!(
            "a wire daemon is already running (pid {}); `wire daemon status` shows it",
            pid(&dir).map_or("?".into(), |p| p.to_string())
        );
    }
    std::fs::write(dir.join("daemon.pid"), std::process::id().to_string())?;
    let log = Arc::new(Log::open(&dir)?);
    log.line(&format!("started (pid {})", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(serve(dir.clone(), log.clone(), !no_notify));
    log.line("stopped");
    let _ = std::fs::remove_file(dir.join("daemon.pid"));
    drop(lock);
    result
}

async fn serve(dir: PathBuf, log: Arc<Log>, notify: bool) -> anyhow::Result<()> {
    let shared: Shared = Arc::new(Mutex::new(HashMap::new()));
    let started_at = now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks: HashMap<PathBuf, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut signal = Box::pin(crate::signals::stop_requested());
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = tick.tick() => {}
        }
        for home in registered(&dir) {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(home.clone()) {
                log.line(&format!("serving {}", home.display()));
                slot.insert(tokio::spawn(serve_home(home, shared.clone(), log.clone(), notify, stop_rx.clone())));
            }
        }
        let homes: Vec<HomeStatus> = shared.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let status = DaemonStatus { pid: std::process::id(), started_at, homes };
        let _ = wire_core::files::write_atomic(&dir.join("status.json"), &serde_json::to_vec_pretty(&status)?, None);
    }
    let _ = stop_tx.send(true);
    for (_, task) in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    Ok(())
}

async fn serve_home(
    path: PathBuf,
    shared: Shared,
    log: Arc<Log>,
    notify: bool,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let update = |f: &dyn Fn(&mut HomeStatus)| {
        let mut map = shared.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(path.clone())
            .or_insert_with(|| HomeStatus { home: path.display().to_string(), ..HomeStatus::default() });
        f(entry);
    };
    // One daemon per home, whatever its daemon directory: the first holds the home's
    // serving lock; another waits (and says so) until it is free.
    let mut stop = stop;
    let _serving = loop {
        match serving_lock(&path) {
            Some(file) => break file,
            None => {
                update(&|s| {
                    s.served_elsewhere = true;
                    s.last_error = Some(ELSEWHERE.into());
                });
                log.line(&format!("{}: {ELSEWHERE}", path.display()));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    update(&|s| {
        s.served_elsewhere = false;
        s.last_error = None;
    });
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let engine = tokio::spawn(sync::run(Home::at(&path), sync::Options { drive_pairings: true }, tx, stop));
    while let Some(event) = events.recv().await {
        match event {
            SyncEvent::Connected { did, nickname } => update(&|s| {
                s.did = Some(did.clone());
                s.nickname = Some(nickname.clone());
                s.stream_connected = true;
                s.last_error = None;
            }),
            SyncEvent::Synced(report) => synced(&path, &report, &update, &log, notify),
            SyncEvent::Failed(message) => {
                log.line(&format!("{}: {message}", path.display()));
                update(&|s| {
                    s.last_error = Some(message.clone());
                    s.reconnects += 1;
                });
            }
            // Said once; the engine then waits for `wire up --reregister` instead of looping.
            SyncEvent::SlotGone(message) => {
                log.line(&format!("{}: {message}", path.display()));
                update(&|s| s.last_error = Some(message.clone()));
            }
            SyncEvent::Disconnected => update(&|s| s.stream_connected = false),
            SyncEvent::RoomsSynced(r) => {
                update(&|s| s.last_sync = Some(now()));
                if r.received > 0 || !r.joined.is_empty() || r.committed > 0 || !r.failing.is_empty() {
                    let failing: Vec<String> = r.failing.iter().map(|(room, why)| format!("{room}: {why}")).collect();
                    log.line(&format!(
                        "{}: rooms: received {}, joined {:?}, commits {}, failing {:?}",
                        path.display(),
                        r.received,
                        r.joined,
                        r.committed,
                        failing
                    ));
                }
            }
            _ => {}
        }
    }
    let _ = engine.await;
}

/// What a daemon says of a home another daemon serves.
const ELSEWHERE: &str = "another wire daemon (with another daemon directory) serves this home; this one waits";

/// The home's serving lock (`daemon.serving` in the home), when no other daemon holds it.
fn serving_lock(home: &Path) -> Option<File> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(home.join("daemon.serving")).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// Whether some daemon (of any daemon directory) holds `home`'s serving lock.
pub fn home_served(home: &Path) -> bool {
    match OpenOptions::new().write(true).open(home.join("daemon.serving")) {
        Ok(f) => f.try_lock().is_err(),
        Err(_) => false,
    }
}

/// What the running daemon's status file says of one home.
#[derive(Debug)]
pub struct HomeView {
    /// Its stream to the relay is up.
    pub connected: bool,
    /// It waits because another daemon serves the home.
    pub served_elsewhere: bool,
    /// Its last error.
    pub last_error: Option<String>,
}

/// The running daemon's view of `home` (one read of its status file).
pub fn home_view(home: &Path) -> Option<HomeView> {
    let dir = dir().ok()?;
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("status.json")).ok()?).ok()?;
    let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_owned());
    let h = status["homes"].as_array()?.iter().find(|h| h["home"].as_str().map(Path::new) == Some(home.as_path()))?;
    Some(HomeView {
        connected: h["stream_connected"] == true,
        served_elsewhere: h["served_elsewhere"] == true,
        last_error: h["last_error"].as_str().map(str::to_owned),
    })
}

/// Records a finished pull in the status, the log and (if asked) a desktop notification.
fn synced(path: &Path, report: &PullReport, update: Update<'_>, log: &Log, notify: bool) {
    let home = Home::at(path);
    let outbox = home.outbox().map(|o| o.len()).unwrap_or(0);
    let rejected = home.rejected().unwrap_or_default();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for r in &rejected {
        *reasons.entry(r.reason.clone()).or_default() += 1;
    }
    update(&|s| {
        s.cursor = report.cursor;
        s.last_sync = Some(now());
        s.outbox = outbox;
        s.rejected_total = rejected.len();
        s.rejected_reasons = reasons.clone();
    });
    if report.received > 0 || !report.paired.is_empty() || !report.requests.is_empty() || report.flushed > 0 {
        log.line(&format!(
            "{}: received {}, paired {}, requests {}, delivered from outbox {}",
            path.display(),
            report.received,
            report.paired.len(),
            report.requests.len(),
            report.flushed
        ));
    }
    if notify {
        if report.received > 0 {
            desktop_notify(&format!("{} new message(s)", report.received));
        }
        for face in &report.requests {
            desktop_notify(&format!("pair request from {} {}: run `wire pending`", face.emoji, face.nickname));
        }
    }
}

/// One OS notification (notify-send on Linux, osascript on macOS); silently nothing where
/// neither exists.
fn desktop_notify(text: &str) {
    let text: String = text.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').take(200).collect();
    let spawned = if cfg!(target_os = "macos") {
        std::process::Command::new("osascript")
            .args(["-e", &format!("display notification \"{text}\" with title \"wire\"")])
            .spawn()
    } else {
        std::process::Command::new("notify-send").args(["wire", &text]).spawn()
    };
    if let Ok(mut child) = spawned {
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}

/// `wire daemon start`.
pub fn start(no_notify: bool, json: bool) -> anyhow::Result<()> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir)?;
    if lock_is_held(&dir) {
        let pid = pid(&dir);
        if json {
            crate::output::json(&serde_json::json!({ "running": true, "pid": pid, "started": false }));
        } else {
            println!("a wire daemon is already running (pid {})", pid.map_or("?".into(), |p| p.to_string()));
        }
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding the wire executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["daemon", "run"]);
    if no_notify {
        cmd.arg("--no-notify");
    }
    use std::os::unix::process::CommandExt;
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the daemon")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(lock_is_held(&dir) && pid(&dir) == Some(child.id())) {
        if std::time::Instant::now() > deadline {
            // Another start may have won the race; report whoever holds the lock.
            if lock_is_held(&dir) {
                break;
            }
            bail!("the daemon did not start; see {}", dir.join("daemon.log").display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = pid(&dir);
    if json {
        crate::output::json(&serde_json::json!({ "running": true, "pid": pid, "started": pid == Some(child.id()) }));
    } else {
        println!("wire daemon started (pid {})", pid.map_or("?".into(), |p| p.to_string()));
    }
    Ok(())
}

/// `wire daemon stop`.
pub fn stop(json: bool) -> anyhow::Result<()> {
    let dir = dir()?;
    if !lock_is_held(&dir) {
        let _ = std::fs::remove_file(dir.join("daemon.pid"));
        if json {
            crate::output::json(&serde_json::json!({ "running": false, "stopped": false }))
        } else {
            println!("no wire daemon is running")
        }
        return Ok(());
    }
    let pid = pid(&dir).context("the daemon holds its lock but wrote no pidfile; stop it by hand")?;
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    if !status.success() {
        bail!("could not signal pid {pid}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lock_is_held(&dir) {
        if std::time::Instant::now() > deadline {
            bail!("the daemon (pid {pid}) did not stop within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if json {
        crate::output::json(&serde_json::json!({ "running": false, "stopped": true, "pid": pid }))
    } else {
        println!("wire daemon stopped (pid {pid})")
    }
    Ok(())
}

/// `wire daemon status`.
pub fn status(json: bool) -> anyhow::Result<()> {
    let dir = dir()?;
    let running = lock_is_held(&dir);
    let detail: serde_json::Value = if running {
        std::fs::read(dir.join("status.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    if json {
        let mut v = serde_json::json!({ "running": running, "pid": if running { pid(&dir) } else { None }, "dir": dir.display().to_string() });
        v["homes"] = detail.get("homes").cloned().unwrap_or(serde_json::json!([]));
        crate::output::json(&v);
        return Ok(());
    }
    if !running {
        println!("no wire daemon is running; start one with `wire daemon start`");
        return Ok(());
    }
    println!("wire daemon running (pid {})", pid(&dir).map_or("?".into(), |p| p.to_string()));
    for h in detail["homes"].as_array().cloned().unwrap_or_default() {
        let conn = if h["stream_connected"] == true { "connected" } else { "disconnected" };
        println!(
            "  {} {}  {conn}  cursor {}  outbox {}  rejected {}{}",
            h["nickname"].as_str().unwrap_or("?"),
            h["home"].as_str().unwrap_or(""),
            h["cursor"],
            h["outbox"],
            h["rejected_total"],
            h["last_error"].as_str().map(|e| format!("  last error: {e}")).unwrap_or_default()
        );
    }
    Ok(())
}
