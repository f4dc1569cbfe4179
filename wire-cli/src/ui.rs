//! `wire ui`: the operator's dashboard, served on 127.0.0.1 only.
//!
//! Pages are rendered here (`views`), changed by plain form posts (`acts`), and kept live by
//! one event stream per page: the UI runs the sync engine for the identity it acts as, and
//! after every pull (or act) tells open pages that something changed; their script fetches
//! the page's live part again. Without script the pages are complete and read-only views
//! still work (forms post and redirect). `gate` decides who may ask.

mod acts;
mod gate;
mod html;
mod server;
mod views;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, watch};
use wire_core::endpoint::Endpoint;
use wire_core::home::Home;
use wire_core::session::Sessions;
use wire_core::sync::{self, SyncEvent};

use crate::output;
use gate::lock;

/// How the page's banner reads the link to the relay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    /// `connecting`, `connected` or `disconnected`.
    pub state: &'static str,
    /// Why, when not connected.
    pub why: Option<String>,
}

/// Who the UI acts as.
#[derive(Debug, Clone)]
struct Acting {
    home: Home,
    session: Option<String>,
}

/// One sample of the relay's `/metrics`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: std::time::Instant,
    appends: f64,
    streams: f64,
    slots: f64,
    /// The append route's histogram: (upper bound in seconds, cumulative count).
    buckets: [(f64, f64); 32],
    nbuckets: usize,
}

/// Samples kept for the relay charts (at one every 5 s, five minutes).
const SAMPLES: usize = 60;

/// The server's state.
#[derive(Debug)]
pub(crate) struct Ui {
    gate: gate::Gate,
    sessions: Option<Sessions>,
    acting: Mutex<Acting>,
    /// Who `wire ui` started as (the switcher's way back when that is not a session).
    started_as: Acting,
    changes: broadcast::Sender<&'static str>,
    link: watch::Sender<Link>,
    notice: Mutex<Option<(bool, String)>>,
    /// The last invite made here: (URL, uses, expiry).
    invite: Mutex<Option<(String, u32, wire_core::proto::time::UnixMillis)>>,
    driving: Mutex<HashSet<String>>,
    engine_stop: Mutex<Option<watch::Sender<bool>>>,
    samples: Mutex<VecDeque<Sample>>,
    metrics_url: Option<String>,
}

impl Ui {
    fn home(&self) -> Home {
        lock(&self.acting).home.clone()
    }

    fn endpoint(&self) -> Result<Endpoint, wire_core::endpoint::EndpointError> {
        Endpoint::open(self.home())
    }

    /// Tells open pages that `what` changed.
    fn changed(&self, what: &'static str) {
        let _ = self.changes.send(what);
    }

    fn set_link(&self, state: &'static str, why: Option<String>) {
        self.link.send_if_modified(|l| {
            let new = Link { state, why };
            let changed = *l != new;
            *l = new;
            changed
        });
    }

    /// Starts the sync engine for the acting identity (stopping the previous one).
    fn start_engine(self: &Arc<Self>) {
        let (stop_tx, stop) = watch::channel(false);
        if let Some(old) = lock(&self.engine_stop).replace(stop_tx) {
            let _ = old.send(true);
        }
        self.set_link("connecting", None);
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        // The UI drives the code pairings it starts itself (`drive`), as `wire mcp` does.
        let options = sync::Options { drive_pairings: false };
        tokio::spawn(sync::run(self.home(), options, tx, stop));
        let ui = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    SyncEvent::Connected { .. } => ui.set_link("connected", None),
                    SyncEvent::Synced(_) | SyncEvent::RoomsSynced(_) => {
                        ui.set_link("connected", None);
                        ui.changed("synced");
                    }
                    SyncEvent::Failed(e) => ui.set_link("disconnected", Some(e)),
                    SyncEvent::SlotGone(e) => {
                        ui.set_link("disconnected", Some(format!("{e}; run `wire up --reregister`")));
                    }
                    SyncEvent::Disconnected => {
                        ui.set_link("disconnected", Some("the relay's stream ended; reconnecting".into()));
                    }
                    _ => {}
                }
            }
        });
    }

    /// Drives a code pairing until it ends, telling pages after each step (the rendezvous
    /// is long-polled, so this waits on the other side, not on a timer).
    fn drive(self: &Arc<Self>, nameplate: String) {
        if !lock(&self.driving).insert(nameplate.clone()) {
            return;
        }
        let ui = self.clone();
        tokio::spawn(async move {
            let told = ui.clone();
            let step = move || {
                told.changed("pairing");
                std::future::ready(())
            };
            wire_core::endpoint::drive_to_end(ui.home(), &nameplate, Duration::from_secs(10 * 60), step).await;
            lock(&ui.driving).remove(&nameplate);
        });
    }

    /// Samples the relay's `/metrics` every 5 s for the Relay view's charts.
    fn sample_relay(self: &Arc<Self>) {
        let ui = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(url) = ui.metrics_target() else { continue };
                if let Some(sample) = views::fetch_metrics(&url).await {
                    let mut s = lock(&ui.samples);
                    if s.len() == SAMPLES {
                        s.pop_front();
                    }
                    s.push_back(sample);
                    drop(s);
                    ui.changed("relay");
                }
            }
        });
    }

    /// The sign-in socket (`wire_core::home::UI_SOCKET` in the home `wire ui` started in;
    /// 0600, so only this user): each connection is answered with a fresh one-time link to
    /// the Pairing page, and the UI acts as that home again. This is how `wire mcp` sends
    /// the operator here (a URL-mode elicitation). `None` when another `wire ui` serves it.
    #[cfg(unix)]
    fn serve_links(self: &Arc<Self>) -> Option<std::path::PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        use tokio::io::AsyncWriteExt;
        let path = self.started_as.home.root().join(wire_core::home::UI_SOCKET);
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            eprintln!("wire ui: another wire ui gives this home's sign-in links to `wire mcp`");
            return None;
        }
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).ok()?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).ok()?;
        let ui = self.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let back = lock(&ui.acting).home.root() != ui.started_as.home.root();
                if back {
                    *lock(&ui.acting) = ui.started_as.clone();
                    ui.start_engine();
                }
                let url = ui.gate.login_url("pairing");
                let _ = stream.write_all(format!("{url}\n").as_bytes()).await;
            }
        });
        Some(path)
    }

    /// The relay the Relay view reads `/metrics` of: `--relay`, else our own.
    fn metrics_target(&self) -> Option<String> {
        if let Some(url) = &self.metrics_url {
            return Some(url.clone());
        }
        Some(self.endpoint().ok()?.whoami().ok()?.relay)
    }
}

/// `wire ui [--port P] [--open] [--relay URL]`.
pub fn run(port: u16, open: bool, relay_metrics: Option<String>, json: bool) -> anyhow::Result<()> {
    let chosen = crate::cmd::agent::chosen()?;
    let rt = crate::cmd::agent::engine_runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port} (choose another with --port, or 0 for any)"))?;
        let port = listener.local_addr()?.port();
        let (changes, _) = broadcast::channel(64);
        let (link, _) = watch::channel(Link { state: "connecting", why: None });
        let ui = Arc::new(Ui {
            gate: gate::Gate::new(port),
            sessions: Sessions::from_env().ok(),
            acting: Mutex::new(Acting { home: chosen.home.clone(), session: chosen.session.clone() }),
            started_as: Acting { home: chosen.home, session: chosen.session },
            changes,
            link,
            notice: Mutex::new(None),
            invite: Mutex::new(None),
            driving: Mutex::new(HashSet::new()),
            engine_stop: Mutex::new(None),
            samples: Mutex::new(VecDeque::new()),
            metrics_url: relay_metrics,
        });
        ui.start_engine();
        ui.sample_relay();
        #[cfg(unix)]
        let socket = ui.serve_links();
        let url = ui.gate.login_url("");
        if json {
            output::json(&serde_json::json!({ "url": url, "port": port }));
        } else {
            println!("{url}");
            eprintln!(
                "wire ui: open the link above (it signs in once; run `wire ui` again for a new one). Ctrl-C stops."
            );
        }
        if open {
            open_browser(&url);
        }
        let stop = crate::signals::stop_requested();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(server::serve(ui.clone(), stream));
                }
                () = &mut stop => break,
            }
        }
        if let Some(stop) = lock(&ui.engine_stop).take() {
            let _ = stop.send(true);
        }
        #[cfg(unix)]
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    })
}

/// Opens `url` in the desktop's browser; says so when it cannot.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if started.is_err() {
        eprintln!("wire ui: could not start `{opener}`; open the link yourself");
    }
}
