//! WIRE_HOME: everything an endpoint keeps on disk (docs/PROTOCOL.md has the inbox format,
//! a contract harnesses may rely on).
//!
//! ```text
//! WIRE_HOME/
//!   identity.json    secret keys (0600)
//!   account.json     relay, slot, owner token, card, cursor (0600)
//!   peers.json       pinned peers: card, send token, tier (0600)
//!   pending.json     invites issued, pairings waiting for an answer, dial requests (0600)
//!   inbox/<did>.jsonl  one append-only line per verified event, per peer
//!   outbox/<id>.json   envelopes queued until a relay accepts them
//!   pairings/<nameplate>.json  code pairings in progress or recently ended (0600)
//!   rejected.jsonl   inbound events refused, with the reason
//!   lock             advisory lock: every read-modify-write holds it
//! ```
//!
//! State files are typed and versioned (`{"v": 1, ...}`), written atomically (temp file,
//! fsync, rename, fsync of the directory). Two `wire` processes (or the CLI and the
//! daemon) serialize their writes on `lock`, so neither can corrupt or lose the other's.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod cursor;
mod inbox;
mod outbox;
mod prune;
mod sent;

pub use cursor::{Consumer, Position, Unread};
pub use inbox::InboxLine;
pub use outbox::{OutboxItem, ParkedAnswer};
pub use prune::{Before, Pruned};
pub use sent::{ReceiptState, SentRecord, SentState, SentView};

use crate::clock::SharedClock;
use crate::proto::card::Card;
use crate::proto::did::Did;
use crate::proto::identity::Identity;
use crate::proto::pairing::Tier;
use crate::proto::pairing::dial::{AwaitingDialAnswer, PendingDial};
use crate::proto::pairing::invite::{AwaitingInviteAccept, IssuedInvite};
use crate::proto::secret::Token;
use crate::proto::time::UnixMillis;

/// Why the home directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// An I/O failure, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A state file that does not parse.
    #[error("{path} is damaged ({detail}); restore it from a backup or move it aside")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A state file written by a newer wire.
    #[error("{path} has format version {found}; this wire reads {expected}. Upgrade wire")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u64,
        /// Ours.
        expected: u64,
    },
    /// No identity yet.
    #[error("no wire identity in {0}; run `wire init` (or `wire up <relay>`) first")]
    NotInitialized(PathBuf),
    /// No platform data directory and no WIRE_HOME.
    #[error("cannot find a home directory for wire; set WIRE_HOME")]
    NoDefault,
    /// A setting from the environment that does not parse.
    #[error("{name}={value} is not {expected}")]
    BadSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// The Unix socket a running `wire ui` keeps in the home it acts as: a connection reads one
/// line, a one-time sign-in link to its Pairing page (how `wire mcp` sends the operator there).
pub const UI_SOCKET: &str = "ui.sock";

/// Bytes one peer's inbox file may reach before it is rotated (`WIRE_INBOX_MAX_BYTES`).
pub const DEFAULT_INBOX_CAP: u64 = 64 << 20;

/// Bytes of `rejected.jsonl` before it is rotated.
pub const REJECTED_LOG_CAP: u64 = 1 << 20;

/// A positive number from the environment, if set.
fn number_setting(name: &'static str) -> Result<Option<u64>, HomeError> {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(HomeError::BadSetting { name, value, expected: "a positive whole number" }),
        },
        Err(_) => Ok(None),
    }
}

/// Checks the settings every [`Home`] reads from the environment (`WIRE_INBOX_MAX_BYTES`,
/// `WIRE_MAX_PENDING_REQUESTS`). The CLI calls it at start so a bad value is an error, not
/// a silent default.
pub fn check_settings() -> Result<(), HomeError> {
    number_setting("WIRE_INBOX_MAX_BYTES")?;
    number_setting("WIRE_MAX_PENDING_REQUESTS")?;
    receipts_setting()?;
    Ok(())
}

/// `WIRE_RECEIPTS`: `on` (the default) returns signed receipts to peers that ask for them;
/// `off` returns none (receipts tell a peer when we are around).
pub fn receipts_setting() -> Result<bool, HomeError> {
    match std::env::var("WIRE_RECEIPTS") {
        Ok(value) => match value.trim() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(HomeError::BadSetting { name: "WIRE_RECEIPTS", value, expected: "`on` or `off`" }),
        },
        Err(_) => Ok(true),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io { path: path.to_owned(), source }
}

/// A typed, versioned state file.
pub trait StateFile: Serialize + DeserializeOwned {
    /// File name under WIRE_HOME.
    const NAME: &'static str;
    /// Format version written in `v`.
    const VERSION: u64;
}

/// The account: where this identity lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Format version.
    pub v: u64,
    /// Relay base URL.
    pub relay: String,
    /// Our slot there.
    pub slot: crate::proto::api::SlotId,
    /// Our owner capability on it.
    pub owner_token: Token,
    /// Our current card.
    pub card: Card,
    /// `nick@relay`, if claimed.
    #[serde(default)]
    pub handle: Option<String>,
    /// Everything through this sequence number has been pulled and acked.
    #[serde(default)]
    pub cursor: u64,
    /// The relay store incarnation the cursor counts in (docs/PROTOCOL.md): when the relay
    /// reports another, the cursor is not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// Our mesh role (`wire mesh role set`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Our further mailboxes on other relays (`wire up --mailbox`): listed in our card after
    /// the first, read like it; senders fall over to them when the first refuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spares: Vec<Mailbox>,
    /// Mailboxes we moved from (`wire move`), still read until released.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved_from: Vec<OldMailbox>,
}

/// Another mailbox of ours, read like the first: where it is and how far it was read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mailbox {
    /// Relay base URL.
    pub relay: String,
    /// Our slot there.
    pub slot: crate::proto::api::SlotId,
    /// Our owner capability on it.
    pub owner_token: Token,
    /// Everything through this sequence number has been pulled and acked.
    #[serde(default)]
    pub cursor: u64,
    /// The relay store incarnation the cursor counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
}

/// A mailbox we moved from: read beside the current one until every peer confirmed our
/// move or its relay's retention passed, then released (its grants revoked).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OldMailbox {
    /// Where it is and how far it was read.
    #[serde(flatten)]
    pub mailbox: Mailbox,
    /// Released at this time at the latest (the relay's retention after the move).
    pub until: UnixMillis,
    /// Peers that have not yet confirmed the move (their `reintro_ack`).
    #[serde(default)]
    pub waiting: Vec<crate::proto::did::Did>,
    /// The send grants peers held on it (revoked at release).
    #[serde(default)]
    pub grants: Vec<String>,
}

impl Account {
    /// Mailbox `which` (0: ours, then those we moved from): relay, slot, owner token,
    /// cursor, incarnation.
    pub fn mailbox(&self, which: usize) -> (String, crate::proto::api::SlotId, Token, u64, Option<String>) {
        match self.other(which) {
            Some(m) => (m.relay.clone(), m.slot.clone(), m.owner_token.clone(), m.cursor, m.incarnation.clone()),
            None => {
                (self.relay.clone(), self.slot.clone(), self.owner_token.clone(), self.cursor, self.incarnation.clone())
            }
        }
    }

    /// Records how far mailbox `which` was read.
    pub fn set_mailbox(&mut self, which: usize, cursor: u64, incarnation: Option<String>) {
        let spares = self.spares.len();
        let other = match which.checked_sub(1) {
            Some(i) if i < spares => self.spares.get_mut(i),
            Some(i) => self.moved_from.get_mut(i - spares).map(|m| &mut m.mailbox),
            None => None,
        };
        match other {
            Some(m) => (m.cursor, m.incarnation) = (cursor, incarnation),
            None => (self.cursor, self.incarnation) = (cursor, incarnation),
        }
    }

    /// Mailbox `which` when it is not the first: a spare, then one we moved from.
    fn other(&self, which: usize) -> Option<&Mailbox> {
        let i = which.checked_sub(1)?;
        self.spares.get(i).or_else(|| self.moved_from.get(i - self.spares.len()).map(|m| &m.mailbox))
    }

    /// How many mailboxes we read: ours, the spares, those we moved from.
    pub fn mailbox_count(&self) -> usize {
        1 + self.spares.len() + self.moved_from.len()
    }

    /// Where our owner token goes: our card's Unix-socket address for our slot when it lists
    /// one whose socket file exists, else `relay`. The socket is 0600 in a 0700 directory and
    /// its file outlives a stopped relay, so while the relay is down owner calls fail on the
    /// socket instead of reaching whoever else bound the relay's TCP port meanwhile. Only a
    /// socket file removed outright (which another user cannot do) sends them over TCP.
    pub fn owner_relay(&self) -> &str {
        self.card
            .body()
            .endpoints
            .iter()
            .filter(|e| e.slot == self.slot)
            .find(|e| e.relay.strip_prefix("unix:").is_some_and(|path| Path::new(path).exists()))
            .map_or(self.relay.as_str(), |e| e.relay.as_str())
    }
}

impl StateFile for Account {
    const NAME: &'static str = "account.json";
    const VERSION: u64 = 1;
}

/// A pinned peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    /// Its verified card.
    pub card: Card,
    /// Our capability on its slot.
    pub send_token: Token,
    /// The grant we minted for it on our slot (revoked by `forget`).
    #[serde(default)]
    pub our_grant: Option<String>,
    /// How it was verified.
    pub tier: Tier,
    /// When pairing completed.
    pub paired_at: UnixMillis,
    /// Last event received from it.
    #[serde(default)]
    pub last_contact: Option<UnixMillis>,
    /// Our re-introduction after a relay loss could not reach it before it expired: talk
    /// needs a new pairing (cleared when its own re-introduction reaches us).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_repair: bool,
    /// Its identity lineage as we follow it (docs/PROTOCOL.md, "Identity lineage"): absent
    /// until it sent its first statement, then its current key, the commitment to its next
    /// one, and whether it is frozen or revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<crate::proto::lineage::Pin>,
    /// The `seq` of our own lineage we last sent it (with a card that carries the
    /// statements), so each peer that follows lineages hears each statement once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told: Option<u64>,
    /// Send tokens on its further mailboxes (its card lists them after the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<crate::proto::pairing::SlotToken>,
    /// Its newest prekey bundle we hold (verified), when it publishes prekeys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prekeys: Option<crate::proto::prekey::Bundle>,
    /// When we last asked it for a fresh bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prekeys_asked: Option<UnixMillis>,
}

impl Peer {
    /// A peer pinned on `card` with our capability on its slot; nothing heard from it
    /// yet, no grant of ours, no lineage, prekeys or further mailboxes.
    pub fn new(card: Card, send_token: Token, tier: Tier, paired_at: UnixMillis) -> Self {
        Self {
            card,
            send_token,
            our_grant: None,
            tier,
            paired_at,
            last_contact: None,
            needs_repair: false,
            lineage: None,
            told: None,
            tokens: Vec::new(),
            prekeys: None,
            prekeys_asked: None,
        }
    }

    /// Its lineage pin: the one we hold, or the DID's own key if it sent none yet.
    pub fn pin(&self) -> crate::proto::lineage::Pin {
        self.lineage.clone().unwrap_or_else(|| crate::proto::lineage::Pin::of(self.card.did()))
    }
}

/// Pinned peers, keyed by full DID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Peers {
    /// Format version.
    pub v: u64,
    /// The peers.
    pub peers: Vec<Peer>,
}

impl StateFile for Peers {
    const NAME: &'static str = "peers.json";
    const VERSION: u64 = 1;
}

impl Peers {
    /// The peer with this DID.
    pub fn get(&self, did: &Did) -> Option<&Peer> {
        self.peers.iter().find(|p| p.card.did() == did)
    }

    /// Pins (or re-pins) a peer.
    pub fn pin(&mut self, peer: Peer) {
        self.peers.retain(|p| p.card.did() != peer.card.did());
        self.peers.push(peer);
    }
}

/// Pairings in flight.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pending {
    /// Format version.
    pub v: u64,
    /// Invites we issued (with the grant id of the intro token).
    #[serde(default)]
    pub issued: Vec<IssuedInvite>,
    /// Invites we redeemed, waiting for the issuer's accept (with our grant for it).
    #[serde(default)]
    pub joined: Vec<(AwaitingInviteAccept, String)>,
    /// Strangers we dialed, waiting for an answer (with our grant for them).
    #[serde(default)]
    pub dialed: Vec<(AwaitingDialAnswer, String)>,
    /// Strangers who dialed us, waiting for the operator.
    #[serde(default)]
    pub requests: Vec<PendingDial>,
}

impl StateFile for Pending {
    const NAME: &'static str = "pending.json";
    const VERSION: u64 = 1;
}

/// An inbound event we refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejected {
    /// When.
    pub at: UnixMillis,
    /// Relay sequence number of the envelope.
    pub seq: u64,
    /// Why (a one-line reason, no content).
    pub reason: String,
}

/// The home directory, and the clock every operation on it reads.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    clock: SharedClock,
    /// Per-peer inbox file size past which it rotates (`home::inbox`).
    inbox_cap: u64,
    /// Most dial requests kept waiting for the operator.
    pending_cap: usize,
}

/// Holds the advisory lock until dropped.
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

impl Home {
    /// The home at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        let inbox_cap = number_setting("WIRE_INBOX_MAX_BYTES").ok().flatten().unwrap_or(DEFAULT_INBOX_CAP);
        let pending_cap = number_setting("WIRE_MAX_PENDING_REQUESTS")
            .ok()
            .flatten()
            .map_or(crate::proto::pairing::dial::MAX_PENDING_REQUESTS, |n| n as usize);
        Self { root: root.into(), clock: crate::clock::from_env(), inbox_cap, pending_cap }
    }

    /// Most dial requests kept waiting for the operator (`WIRE_MAX_PENDING_REQUESTS`,
    /// default [`crate::proto::pairing::dial::MAX_PENDING_REQUESTS`]).
    pub fn pending_cap(&self) -> usize {
        self.pending_cap
    }

    /// This home with inbox files rotated past `bytes` per peer.
    #[must_use]
    pub fn with_inbox_cap(mut self, bytes: u64) -> Self {
        self.inbox_cap = bytes.max(1);
        self
    }

    /// This home read through `clock` (tests pass a [`crate::clock::ManualClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by this home's clock.
    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    /// `$WIRE_HOME`, else the platform data directory's `wire/default`.
    pub fn from_env() -> Result<Self, HomeError> {
        if let Some(dir) = std::env::var_os("WIRE_HOME").filter(|d| !d.is_empty()) {
            return Ok(Self::at(dir));
        }
        let dirs = crate::files::platform_dirs().ok_or(HomeError::NoDefault)?;
        Ok(Self::at(dirs.data_dir().join("default")))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory (0700) and its subdirectories.
    pub fn create(&self) -> Result<(), HomeError> {
        for dir in [self.root.clone(), self.path("inbox"), self.path("outbox")] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(io(&self.root))
    }

    /// The paths in a subdirectory (a missing directory is empty).
    fn list_dir(&self, name: &str) -> Result<Vec<PathBuf>, HomeError> {
        let dir = self.path(name);
        match fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.map(|e| e.path()).map_err(io(&dir))).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&dir)(e)),
        }
    }

    /// Takes the exclusive advisory lock (blocking until the holder releases it).
    pub fn lock(&self) -> Result<HomeLock, HomeError> {
        self.create()?;
        let path = self.path("lock");
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path).map_err(io(&path))?;
        // Waiting for the lock blocks this thread. Inside a multi-threaded runtime (the
        // daemon, `wire mcp`) tell tokio first, so the tasks queued on this worker (the
        // holder among them, mid-`await` with the lock) move to another thread instead of
        // waiting behind us: two tasks waiting here must not starve the one holding it.
        let take = || file.lock();
        let taken = match tokio::runtime::Handle::try_current() {
            Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(take)
            }
            _ => take(),
        };
        taken.map_err(io(&path))?;
        Ok(HomeLock { _file: file })
    }

    /// Whether an identity exists.
    pub fn exists(&self) -> bool {
        self.path("identity.json").exists()
    }

    /// Loads the identity.
    pub fn identity(&self) -> Result<Identity, HomeError> {
        let path = self.path("identity.json");
        let bytes = zeroize::Zeroizing::new(match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HomeError::NotInitialized(self.root.clone()));
            }
            Err(e) => return Err(io(&path)(e)),
        });
        Identity::from_secret_file(&bytes).map_err(|e| HomeError::Corrupt { path, detail: e.to_string() })
    }

    /// Writes a new identity (0600). Refuses to overwrite one.
    pub fn write_identity(&self, identity: &Identity) -> Result<(), HomeError> {
        self.create()?;
        let path = self.path("identity.json");
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io(&path))?;
        file.write_all(&identity.to_secret_file()).and_then(|()| file.sync_all()).map_err(io(&path))
    }

    /// Reads a state file; a missing file is `None`.
    pub fn load<T: StateFile>(&self) -> Result<Option<T>, HomeError> {
        let path = self.path(T::NAME);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let version = crate::proto::signed::peek_version(&bytes)
            .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: e.to_string() })?;
        if version != T::VERSION {
            return Err(HomeError::Version { path, found: version, expected: T::VERSION });
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| HomeError::Corrupt { path, detail: e.to_string() })
    }

    /// Writes a state file atomically, mode 0600. Hold the lock.
    pub fn save<T: StateFile>(&self, value: &T) -> Result<(), HomeError> {
        let bytes = serde_json::to_vec_pretty(value).expect("state types serialize");
        self.write_atomic(&self.path(T::NAME), &bytes)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
        self.create()?;
        let mut line = Vec::with_capacity(bytes.len() + 1);
        line.extend_from_slice(bytes);
        line.push(b'\n');
        crate::files::write_atomic(path, &line, Some(0o600)).map_err(io(path))
    }

    /// Saves `value` as `<dir>/<key>.json` (0600), a keyed store for records that come and
    /// go (code pairings today). Hold the lock.
    pub fn save_keyed<T: Serialize>(&self, dir: &str, key: &str, value: &T) -> Result<(), HomeError> {
        let path = self.path(dir);
        fs::create_dir_all(&path).map_err(io(&path))?;
        let bytes = serde_json::to_vec_pretty(value).expect("state types serialize");
        self.write_atomic(&path.join(format!("{key}.json")), &bytes)
    }

    /// Every record of a keyed store, in no particular order.
    pub fn load_keyed<T: DeserializeOwned>(&self, dir: &str) -> Result<Vec<T>, HomeError> {
        let mut out = Vec::new();
        for path in self.list_dir(dir)? {
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path).map_err(io(&path))?;
                out.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: e.to_string() })?,
                );
            }
        }
        Ok(out)
    }

    /// Records a refused inbound event. Strangers decide how often this runs, so the log is
    /// rotated past [`REJECTED_LOG_CAP`] (`rejected.jsonl.1` keeps the generation before).
    pub fn reject(&self, rejected: &Rejected) -> Result<(), HomeError> {
        self.create()?;
        let path = self.path("rejected.jsonl");
        if fs::metadata(&path).is_ok_and(|m| m.len() >= REJECTED_LOG_CAP) {
            fs::rename(&path, self.path("rejected.jsonl.1")).map_err(io(&path))?;
        }
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        let mut line = serde_json::to_vec(rejected).expect("serializes");
        line.push(b'\n');
        file.write_all(&line).map_err(io(&path))
    }

    /// Every refused inbound event.
    pub fn rejected(&self) -> Result<Vec<Rejected>, HomeError> {
        let path = self.path("rejected.jsonl");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Two tasks waiting for the lock on a two-worker runtime must not starve the task that
    /// holds it (it needs a worker to reach the point where it lets go).
    #[test]
    fn tasks_waiting_for_the_lock_do_not_starve_its_holder() {
        let root = std::env::temp_dir().join(format!("wire-home-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let (held_tx, held_rx) = tokio::sync::oneshot::channel();
                let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
                let h = home.clone();
                let holder = tokio::spawn(async move {
                    let guard = h.lock().unwrap();
                    held_tx.send(()).unwrap();
                    go_rx.await.unwrap(); // needs a worker to resume
                    drop(guard);
                });
                held_rx.await.unwrap();
                let (waiting_tx, mut waiting_rx) = tokio::sync::mpsc::unbounded_channel();
                let waiters: Vec<_> = (0..2)
                    .map(|_| {
                        let (h, tx) = (home.clone(), waiting_tx.clone());
                        tokio::spawn(async move {
                            tx.send(()).unwrap();
                            drop(h.lock().unwrap());
                        })
                    })
                    .collect();
                waiting_rx.recv().await.unwrap();
                waiting_rx.recv().await.unwrap();
                go_tx.send(()).unwrap();
                holder.await.unwrap();
                for w in waiters {
                    w.await.unwrap();
                }
            });
            done_tx.send(()).unwrap();
        });
        done_rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the lock holder was starved");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_log_of_refusals_is_bounded() {
        let root = std::env::temp_dir().join(format!("wire-home-rejected-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        let reason = "r".repeat(1_000);
        for seq in 0..3_000 {
            home.reject(&Rejected { at: UnixMillis(1), seq, reason: reason.clone() }).unwrap();
        }
        let size = |name: &str| fs::metadata(root.join(name)).map_or(0, |m| m.len());
        assert!(size("rejected.jsonl") <= REJECTED_LOG_CAP + 1_100, "{}", size("rejected.jsonl"));
        assert!(size("rejected.jsonl.1") <= REJECTED_LOG_CAP + 1_100 && size("rejected.jsonl.1") > 0);
        assert_eq!(home.rejected().unwrap().last().unwrap().seq, 2_999, "the newest refusal is kept");
        fs::remove_dir_all(&root).unwrap();
    }
}
