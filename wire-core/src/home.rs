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
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::proto::card::Card;
use crate::proto::did::Did;
use crate::proto::event::{Event, EventId};
use crate::proto::identity::Identity;
use crate::proto::pairing::Tier;
use crate::proto::pairing::dial::{AwaitingDialAnswer, PendingDial};
use crate::proto::pairing::invite::{AwaitingInviteAccept, IssuedInvite};
use crate::proto::secret::Token;
use crate::proto::signed::Signed;
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
    /// Our mesh role (`wire mesh role set`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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

/// One inbox line: a verified event with its signed bytes (the harness contract). The
/// line carries the event's own fields (its `v` versions the line), plus `received_at`
/// and `signed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxLine {
    /// The event, as verified.
    #[serde(flatten)]
    pub event: Event,
    /// When we stored it.
    pub received_at: UnixMillis,
    /// The exact signed document, so the line can be re-verified.
    pub signed: Signed,
}

/// An envelope waiting for a relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Format version.
    pub v: u64,
    /// The event id inside.
    pub event_id: EventId,
    /// The recipient.
    pub to: Did,
    /// Relay base URL.
    pub relay: String,
    /// Slot there.
    pub slot: crate::proto::api::SlotId,
    /// Our send token on it.
    pub token: Token,
    /// Envelope bytes.
    #[serde(with = "crate::proto::b64::bytes")]
    pub envelope: Vec<u8>,
    /// When it was queued.
    pub queued_at: UnixMillis,
    /// Failed delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// The last failure.
    #[serde(default)]
    pub last_error: Option<String>,
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
}

/// Holds the advisory lock until dropped.
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

impl Home {
    /// The home at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), clock: crate::clock::system() }
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
        let dirs = directories::ProjectDirs::from("", "", "wire").ok_or(HomeError::NoDefault)?;
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
        file.lock().map_err(io(&path))?;
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
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut file =
                OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
            file.write_all(bytes)
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(io(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(io(path))?;
        let dir = path.parent().unwrap_or(&self.root);
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    }

    fn inbox_path(&self, peer: &Did) -> PathBuf {
        let name = peer.as_str().trim_start_matches("did:key:");
        self.path("inbox").join(format!("{name}.jsonl"))
    }

    fn index_path(&self, peer: &Did) -> PathBuf {
        self.inbox_path(peer).with_extension("ids")
    }

    /// Ids already in a peer's inbox: the whole history, so a relay that replays an old
    /// envelope cannot get it stored twice. Hold the lock.
    ///
    /// Served from `inbox/<did>.ids`, a cache beside the inbox: one record per line,
    /// `<id> <inbox length after that line>`. The index trails the inbox (it is brought up
    /// to date here, from the inbox's tail only) and is rebuilt whenever it does not match:
    /// so a pull costs what was appended since the last one, not the length of the history.
    pub fn inbox_ids(&self, peer: &Did) -> Result<std::collections::HashSet<EventId>, HomeError> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: EventId,
        }
        let inbox = self.inbox_path(peer);
        let len = match fs::metadata(&inbox) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io(&inbox)(e)),
        };
        let index = self.index_path(peer);
        let (mut ids, mut covered) = read_index(&index);
        let rebuild = covered > len;
        if rebuild {
            ids.clear();
            covered = 0;
        }
        if covered == len {
            return Ok(ids);
        }
        let mut tail = Vec::new();
        File::open(&inbox)
            .and_then(|mut f| {
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(covered))?;
                std::io::Read::read_to_end(&mut f, &mut tail)
            })
            .map_err(io(&inbox))?;
        let mut records = String::new();
        let mut offset = covered;
        // Complete lines only: a torn last line (a crash mid-append) is not indexed.
        let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in tail[..complete].split_inclusive(|b| *b == b'\n') {
            offset += line.len() as u64;
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            if text.is_empty() {
                continue;
            }
            let parsed: IdOnly = serde_json::from_slice(text).map_err(|e| HomeError::Corrupt {
                path: inbox.clone(),
                detail: format!("the line ending at byte {offset}: {e}"),
            })?;
            ids.insert(parsed.id);
            records.push_str(&format!("{} {offset}\n", parsed.id));
        }
        // The index is a cache: failing to write it costs speed, never correctness.
        let mut options = OpenOptions::new();
        options.create(true).mode(0o600);
        if rebuild || covered == 0 {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        if let Ok(mut f) = options.open(&index) {
            let _ = f.write_all(records.as_bytes());
        }
        Ok(ids)
    }

    /// Appends lines to a peer's inbox and fsyncs. Hold the lock.
    pub fn append_inbox(&self, peer: &Did, lines: &[InboxLine]) -> Result<(), HomeError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.create()?;
        let path = self.inbox_path(peer);
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        // A torn last line (a crash mid-append; its envelope was never acked and comes
        // again) is cut off first, so it cannot run into the next line.
        let len = file.metadata().map_err(io(&path))?.len();
        if len > 0 && last_byte(&path, len).map_err(io(&path))? != b'\n' {
            let bytes = fs::read(&path).map_err(io(&path))?;
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(io(&path))?;
        }
        let mut buf = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut buf, line).expect("inbox lines serialize");
            buf.push(b'\n');
        }
        file.write_all(&buf).and_then(|()| file.sync_all()).map_err(io(&path))
    }

    /// The last `limit` lines of a peer's inbox, oldest first, reading the file from its
    /// end: the cost follows `limit`, not the length of the history.
    pub fn read_inbox_tail_of(&self, peer: &Did, limit: usize) -> Result<Vec<InboxLine>, HomeError> {
        use std::io::{Read, Seek};
        let path = self.inbox_path(peer);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        let len = file.metadata().map_err(io(&path))?.len();
        // Read backwards in chunks until the buffer holds `limit` complete lines (one more
        // newline than that, or the start of the file).
        let mut start = len;
        let (mut chunks, mut newlines) = (Vec::new(), 0usize);
        while start > 0 && newlines <= limit {
            let step = (64 * 1024).min(start);
            start -= step;
            let mut chunk = vec![0; step as usize];
            file.seek(std::io::SeekFrom::Start(start)).and_then(|_| file.read_exact(&mut chunk)).map_err(io(&path))?;
            newlines += chunk.iter().filter(|b| **b == b'\n').count();
            chunks.push(chunk);
        }
        chunks.reverse();
        let buf = chunks.concat();
        // Only whole lines: drop a partial first line (unless the buffer starts the file)
        // and a torn last one.
        let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let begin = if start == 0 { 0 } else { buf.iter().position(|b| *b == b'\n').map_or(end, |i| i + 1) };
        let lines: Vec<&[u8]> = buf[begin.min(end)..end].split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let skip = lines.len().saturating_sub(limit);
        lines[skip..]
            .iter()
            .map(|l| {
                serde_json::from_slice::<InboxLine>(l)
                    .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: format!("a line near the end: {e}") })
            })
            .collect()
    }

    /// The last `limit` lines of every inbox, ordered by the time we stored them.
    pub fn read_inbox_tail(&self, limit: usize) -> Result<Vec<InboxLine>, HomeError> {
        let mut all = Vec::new();
        for did in self.inbox_peers()? {
            all.extend(self.read_inbox_tail_of(&did, limit)?);
        }
        all.sort_by_key(|l| (l.received_at, l.event.created_at));
        let skip = all.len().saturating_sub(limit);
        Ok(all.split_off(skip))
    }

    /// The peers that have an inbox file.
    fn inbox_peers(&self) -> Result<Vec<Did>, HomeError> {
        Ok(self
            .list_dir("inbox")?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl")) // not the `.ids` indexes
            .filter_map(|p| Did::parse(&format!("did:key:{}", p.file_stem()?.to_str()?)).ok())
            .collect())
    }

    /// A peer's inbox, oldest first. A torn last line (a crash mid-append) is skipped.
    pub fn read_inbox_of(&self, peer: &Did) -> Result<Vec<InboxLine>, HomeError> {
        let path = self.inbox_path(peer);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io(&path))?;
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<InboxLine>(line) {
                Ok(parsed) => out.push(parsed),
                // Only a torn last line (a crash mid-append) is tolerated; it is re-fetched.
                Err(_) if i + 1 == lines.len() => {}
                Err(e) => return Err(HomeError::Corrupt { path, detail: format!("line {}: {e}", i + 1) }),
            }
        }
        Ok(out)
    }

    /// Every inbox line, ordered by the time we stored it.
    pub fn read_inbox(&self) -> Result<Vec<InboxLine>, HomeError> {
        let mut all = Vec::new();
        for did in self.inbox_peers()? {
            all.extend(self.read_inbox_of(&did)?);
        }
        all.sort_by_key(|l| (l.received_at, l.event.created_at));
        Ok(all)
    }

    /// Queues an envelope. Hold the lock.
    pub fn queue(&self, item: &OutboxItem) -> Result<(), HomeError> {
        let bytes = serde_json::to_vec(item).expect("outbox items serialize");
        self.write_atomic(&self.path("outbox").join(format!("{}.json", item.event_id)), &bytes)
    }

    /// Queued envelopes, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, HomeError> {
        let mut items = Vec::new();
        for path in self.list_dir("outbox")? {
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path).map_err(io(&path))?;
                let item = serde_json::from_slice(&bytes)
                    .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: e.to_string() })?;
                items.push(item);
            }
        }
        items.sort_by_key(|i: &OutboxItem| i.queued_at);
        Ok(items)
    }

    /// Removes a delivered envelope from the outbox.
    pub fn unqueue(&self, event_id: &EventId) -> Result<(), HomeError> {
        let path = self.path("outbox").join(format!("{event_id}.json"));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Saves a code-pairing session (0600: it holds PAKE keys and tokens). Hold the lock.
    pub fn save_pairing(&self, session: &crate::endpoint::CodeSession) -> Result<(), HomeError> {
        let dir = self.path("pairings");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let bytes = serde_json::to_vec_pretty(session).expect("sessions serialize");
        self.write_atomic(&dir.join(format!("{}.json", session.nameplate)), &bytes)
    }

    /// Every code-pairing session, oldest first.
    pub fn pairings(&self) -> Result<Vec<crate::endpoint::CodeSession>, HomeError> {
        let mut out: Vec<crate::endpoint::CodeSession> = Vec::new();
        for path in self.list_dir("pairings")? {
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path).map_err(io(&path))?;
                out.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: e.to_string() })?,
                );
            }
        }
        out.sort_by_key(|s| s.started_at);
        Ok(out)
    }

    /// Records a refused inbound event.
    pub fn reject(&self, rejected: &Rejected) -> Result<(), HomeError> {
        self.create()?;
        let path = self.path("rejected.jsonl");
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

/// The last byte of a file of length `len` (> 0).
fn last_byte(path: &Path, len: u64) -> std::io::Result<u8> {
    use std::io::{Read, Seek};
    let mut f = File::open(path)?;
    f.seek(std::io::SeekFrom::Start(len - 1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0])
}

/// Reads an inbox id index: the ids and the inbox length the last good record covers. A
/// damaged record ends the read there (what follows is rebuilt from the inbox).
fn read_index(path: &Path) -> (std::collections::HashSet<EventId>, u64) {
    let mut ids = std::collections::HashSet::new();
    let mut covered = 0;
    let Ok(text) = fs::read_to_string(path) else { return (ids, 0) };
    for line in text.split_inclusive('\n') {
        let record = line.strip_suffix('\n').and_then(|l| l.split_once(' '));
        match record.and_then(|(id, end)| Some((id.parse::<EventId>().ok()?, end.parse::<u64>().ok()?))) {
            Some((id, end)) if end > covered => {
                ids.insert(id);
                covered = end;
            }
            _ => break,
        }
    }
    (ids, covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rng::SeededRng;

    fn line(me: &Identity, to: &Did, n: u64, rng: &mut SeededRng) -> InboxLine {
        let event =
            Event::new(me, to.clone(), crate::proto::event::Kind::Message, format!("m{n}").into(), UnixMillis(n), rng);
        let signed = event.clone().sign(me).unwrap();
        InboxLine { event, received_at: UnixMillis(n), signed: signed.signed().clone() }
    }

    #[test]
    fn the_id_index_follows_the_inbox_through_crashes_and_rewrites() {
        let root = std::env::temp_dir().join(format!("wire-home-index-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        let mut rng = SeededRng::new(&crate::proto::secret::Secret32::from_bytes([7; 32]), b"home-index-test");
        let peer = Identity::generate(&mut rng);
        let me = Identity::generate(&mut rng);
        let first: Vec<InboxLine> = (0..5).map(|n| line(&peer, me.did(), n, &mut rng)).collect();
        home.append_inbox(peer.did(), &first).unwrap();
        let want: std::collections::HashSet<EventId> = first.iter().map(|l| l.event.id).collect();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        assert!(home.index_path(peer.did()).exists());

        // Appended since: the index catches up from the tail.
        let more = line(&peer, me.did(), 9, &mut rng);
        home.append_inbox(peer.did(), std::slice::from_ref(&more)).unwrap();
        let mut want = want;
        want.insert(more.event.id);
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);

        // A damaged index is rebuilt; a torn inbox tail is neither indexed nor kept.
        fs::write(home.index_path(peer.did()), "garbage 99999999\n").unwrap();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        let inbox = home.inbox_path(peer.did());
        let mut f = OpenOptions::new().append(true).open(&inbox).unwrap();
        f.write_all(b"{\"v\":1,\"id\":\"torn").unwrap();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        let last = line(&peer, me.did(), 10, &mut rng);
        home.append_inbox(peer.did(), std::slice::from_ref(&last)).unwrap();
        want.insert(last.event.id);
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        assert_eq!(home.read_inbox_of(peer.did()).unwrap().len(), 7, "the torn line was cut, not merged");
        assert_eq!(home.read_inbox().unwrap().len(), 7, "the index is not read as an inbox");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn tails_read_from_the_end_match_the_whole_inbox() {
        let root = std::env::temp_dir().join(format!("wire-home-tail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        let mut rng = SeededRng::new(&crate::proto::secret::Secret32::from_bytes([9; 32]), b"home-tail-test");
        let (p, q, me) = (Identity::generate(&mut rng), Identity::generate(&mut rng), Identity::generate(&mut rng));
        // Long bodies, so the tail spans several 64 KiB chunks.
        for n in 0..300u64 {
            let from = if n % 3 == 0 { &q } else { &p };
            let mut l = line(from, me.did(), n, &mut rng);
            l.event.body = "x".repeat(700).into();
            home.append_inbox(from.did(), &[l]).unwrap();
        }
        let whole = home.read_inbox_of(p.did()).unwrap();
        for limit in [0, 1, 7, 150, 199, 200, 500] {
            let tail = home.read_inbox_tail_of(p.did(), limit).unwrap();
            let want = &whole[whole.len().saturating_sub(limit)..];
            assert_eq!(
                tail.iter().map(|l| l.event.id).collect::<Vec<_>>(),
                want.iter().map(|l| l.event.id).collect::<Vec<_>>(),
                "limit {limit}"
            );
        }
        let all = home.read_inbox().unwrap();
        let merged = home.read_inbox_tail(25).unwrap();
        assert_eq!(
            merged.iter().map(|l| l.event.id).collect::<Vec<_>>(),
            all[all.len() - 25..].iter().map(|l| l.event.id).collect::<Vec<_>>()
        );
        // A torn last line is not part of the tail.
        let mut f = OpenOptions::new().append(true).open(home.inbox_path(p.did())).unwrap();
        f.write_all(b"{\"torn").unwrap();
        assert_eq!(
            home.read_inbox_tail_of(p.did(), 3).unwrap().last().unwrap().event.id,
            whole.last().unwrap().event.id
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
