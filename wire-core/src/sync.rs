//! The one sync engine: what keeps an identity's inbox current, for the daemon and for
//! `wire mcp` alike (and `wire ui` next). It holds the relay's event stream for the
//! identity's mailbox and hands what it delivers, whole, to the one receive path
//! (`Endpoint::pull_streamed`; a plain `pull` to catch up); once a second it retries an
//! outbox item that is due and, if asked, drives code pairings in progress;
//! after any failure it reconnects with one backoff schedule (250 ms doubling to 30 s, with
//! jitter). It reports what happens as [`SyncEvent`]s on a channel; the caller decides what
//! to show (a status file and a log, MCP resource updates).
//!
//! Besides the mailbox stream it holds one stream per active room (a task each, which
//! only wakes the engine): a room that delivers something is synced through
//! `Endpoint::sync_rooms`, and room work that arrives on the 1:1 channel (a key package,
//! a Welcome) is taken up after the pull that brought it.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::client::{Client, RelayUrl, StreamItem};
use crate::endpoint::{Endpoint, EndpointError, PullReport, RoomStream, RoomSyncReport};
use crate::home::{Account, Home};
use crate::proto::did::Did;

/// First wait after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between reconnects.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the outbox is retried and pairings are driven while connected.
pub const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Housekeeping ticks between reads of our other mailboxes (spares, one we moved from).
const OLD_MAILBOX_TICKS: u32 = 5;
/// Most envelopes taken from the stream as one batch.
const BATCH: usize = 200;

/// What the engine did.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncEvent {
    /// The endpoint opened and the stream is up (after the catch-up pull).
    Connected {
        /// Our DID.
        did: String,
        /// Our nickname.
        nickname: String,
    },
    /// A pull finished.
    Synced(Box<PullReport>),
    /// Rooms were synced (a room stream woke, or room work arrived).
    RoomsSynced(Box<RoomSyncReport>),
    /// Something failed; the engine reconnects after a backoff.
    Failed(String),
    /// Our relay no longer knows our slot. Reported once per slot; the engine then waits
    /// for the home to get a new one (`wire up --reregister`) instead of retrying.
    SlotGone(String),
    /// The stream ended or failed.
    Disconnected,
}

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Drive detached code pairings in progress (the daemon does; `wire mcp` drives the
    /// pairings it started itself).
    pub drive_pairings: bool,
}

/// `max` scaled by a random factor in [0.5, 1].
pub fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 2];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let frac = f64::from(u16::from_le_bytes(b)) / 65535.0;
    max.mul_f64(0.5 + frac / 2.0)
}

/// The backoff after `failures` consecutive failures (before jitter).
pub fn backoff(failures: u32) -> Duration {
    BACKOFF_MIN.saturating_mul(1u32 << failures.min(16)).min(BACKOFF_MAX)
}

/// Why a connection ended.
enum Failure {
    /// Anything that a retry may cure.
    Other(String),
    /// Our slot is gone: waiting for a new one.
    SlotGone(String),
}

impl From<EndpointError> for Failure {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::SlotGone { .. } => Failure::SlotGone(e.to_string()),
            other => Failure::Other(other.to_string()),
        }
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Other(e)
    }
}

fn slot_of(home: &Home) -> Option<String> {
    home.load::<Account>().ok().flatten().map(|a| a.slot.to_string())
}

/// Keeps `home` in sync until `stop` turns true (or its sender is dropped). Events go to
/// `events`; a closed receiver is ignored.
pub async fn run(
    home: Home,
    options: Options,
    events: mpsc::UnboundedSender<SyncEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let result = connected(&home, options, &events, &mut stop, &mut failures).await;
        let _ = events.send(SyncEvent::Disconnected);
        if *stop.borrow() {
            return;
        }
        match result {
            Ok(()) => {}
            Err(Failure::Other(e)) => {
                let _ = events.send(SyncEvent::Failed(e));
                failures = failures.saturating_add(1);
            }
            Err(Failure::SlotGone(e)) => {
                let _ = events.send(SyncEvent::SlotGone(e));
                let gone = slot_of(&home);
                // Nothing to retry until the home has another slot: look once a second.
                while slot_of(&home) == gone {
                    tokio::select! {
                        _ = tokio::time::sleep(HOUSEKEEPING) => {}
                        changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                    }
                }
                failures = 0;
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(jitter(backoff(failures))) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// How long an item just queued is left to the process that queued it (it posts it at
/// once, `Endpoint::flush`) before the engine takes it up.
const FRESH: Duration = Duration::from_secs(2);

/// Whether an outbox item is due now (or a parked answer has expired and must be dropped).
/// An item queued in the last [`FRESH`] and never tried is its queuer's to post.
fn due(ep: &Endpoint) -> Result<bool, Failure> {
    let now = ep.home.now();
    let outbox = ep.home.outbox().map_err(|e| Failure::Other(e.to_string()))?;
    let fresh = |i: &crate::home::OutboxItem| i.attempts == 0 && i.queued_at.saturating_add(FRESH) > now;
    Ok(outbox.iter().any(|i| {
        (i.not_before.is_none_or(|t| t <= now) && !fresh(i)) || i.answer.as_ref().is_some_and(|a| a.expires_at <= now)
    }))
}

/// One connection's life: catch up, hold the stream, take what it delivers. `Ok` when the
/// stream ended or `stop` turned.
async fn connected(
    home: &Home,
    options: Options,
    events: &mpsc::UnboundedSender<SyncEvent>,
    stop: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> Result<(), Failure> {
    let ep = Endpoint::open(home.clone())?;
    let me = ep.whoami()?;
    let mut cursor = report(events, ep.pull().await?);
    let account = ep.account()?;
    let client = ep.our_client(&account).map_err(|e| e.to_string())?;
    let mut stream = match client.stream(&account.slot, &account.owner_token, cursor).await {
        Err(e) if e.code() == Some(crate::proto::api::ErrorCode::NotFound) => {
            return Err(EndpointError::SlotGone { relay: account.relay.clone() }.into());
        }
        other => other.map_err(|e| e.to_string())?,
    };
    *failures = 0;
    let _ = events.send(SyncEvent::Connected { did: me.face.did.clone(), nickname: me.face.nickname.clone() });
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    // Our spares and a mailbox we moved from have no stream of their own: they are read
    // every few ticks.
    let mut ticks = 0u32;
    let mut rooms = Rooms::default();
    let (room_tx, mut room_rx) = mpsc::unbounded_channel::<Did>();
    rooms.refresh(&ep, &room_tx);
    loop {
        tokio::select! {
            Some(_) = room_rx.recv() => {
                // Several wakes at once are one sync.
                while room_rx.try_recv().is_ok() {}
                rooms_synced(events, ep.sync_rooms(None).await?);
            }
            next = stream.next() => {
                let Some(first) = next else { return Ok(()) };
                // Our keys moved under us (`wire rotate` elsewhere): reconnect with the new
                // ones before opening anything; the cursor keeps what arrived.
                if ep.keys_changed() {
                    return Ok(());
                }
                // What arrived together is one batch (bounded), taken as delivered.
                let (mut batch, mut relist) = (Vec::new(), false);
                stream.drain_ready().await;
                let mut item = Some(first);
                while let Some(it) = item.take() {
                    match it {
                        StreamItem::Envelope(e) if e.seq > cursor => batch.push(e),
                        StreamItem::Envelope(_) => {}
                        StreamItem::Wake(seq) => relist |= seq > cursor,
                        StreamItem::Missed(_) => relist = true,
                        // A relay that restarted under a live stream: read it through a list.
                        StreamItem::Hello(h) => relist |= ep.account()?.incarnation.is_some_and(|i| i != h.incarnation),
                    }
                    if batch.len() < BATCH {
                        item = stream.buffered();
                    }
                }
                if relist {
                    cursor = report(events, ep.pull().await?).max(cursor);
                } else if !batch.is_empty() {
                    let pulled = ep.pull_streamed(batch).await?;
                    let rooms_due = pulled.rooms.due;
                    cursor = report(events, pulled).max(cursor);
                    // Readers were told; now what the batch queued (receipts, answers) goes out.
                    ep.flush().await?;
                    if rooms_due {
                        rooms_synced(events, ep.sync_rooms(None).await?);
                    }
                }
            }
            _ = housekeeping.tick() => {
                if ep.keys_changed() {
                    return Ok(());
                }
                ticks = ticks.wrapping_add(1);
                let old_mailbox = ticks.is_multiple_of(OLD_MAILBOX_TICKS) && ep.account()?.mailbox_count() > 1;
                if old_mailbox || due(&ep)? {
                    cursor = report(events, ep.pull().await?).max(cursor);
                }
                rooms.refresh(&ep, &room_tx);
                if options.drive_pairings
                    && ep.pair_list()?.iter().any(|v| !matches!(v.state, "paired" | "aborted"))
                {
                    let _ = ep.pair_drive_all(Duration::ZERO).await;
                }
            }
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(()) },
        }
    }
}

/// The streams of the identity's rooms: a task per room slot that wakes the engine.
#[derive(Default)]
struct Rooms {
    /// When the rooms file was read last.
    read: Option<std::time::SystemTime>,
    tasks: Vec<(RoomStream, tokio::task::JoinHandle<()>)>,
}

impl Rooms {
    /// Starts streams for rooms that have none, ends those of rooms gone (when the rooms
    /// file changed since the last look).
    fn refresh(&mut self, ep: &Endpoint, wake: &mpsc::UnboundedSender<Did>) {
        let written = ep.rooms_written();
        if written.is_none() || written == self.read {
            return;
        }
        self.read = written;
        let Ok(want) = ep.room_streams() else { return };
        let same = |a: &RoomStream, b: &RoomStream| a.id == b.id && a.slot == b.slot && a.token == b.token;
        self.tasks.retain(|(s, task)| {
            let keep = want.iter().any(|w| same(w, s));
            if !keep {
                task.abort();
            }
            keep
        });
        for target in want {
            if !self.tasks.iter().any(|(s, _)| same(s, &target)) {
                let task = tokio::spawn(room_stream(target.clone(), wake.clone()));
                self.tasks.push((target, task));
            }
        }
    }
}

impl Drop for Rooms {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// Holds one room's stream, waking the engine whenever it delivers (the engine reads the
/// room itself); reconnects with the engine's backoff.
async fn room_stream(target: RoomStream, wake: mpsc::UnboundedSender<Did>) {
    let Ok(url) = RelayUrl::parse(&target.relay) else { return };
    let client = Client::new(url);
    let (mut cursor, mut failures) = (target.cursor, 0u32);
    loop {
        match client.stream(&target.slot, &target.token, cursor).await {
            Ok(mut stream) => {
                failures = 0;
                while let Some(item) = stream.next().await {
                    match item {
                        StreamItem::Envelope(e) => cursor = cursor.max(e.seq),
                        StreamItem::Wake(seq) => cursor = cursor.max(seq),
                        StreamItem::Missed(m) => cursor = cursor.max(m.floor),
                        StreamItem::Hello(_) => continue,
                    }
                    if wake.send(target.id.clone()).is_err() {
                        return;
                    }
                }
            }
            // Removed from the room (the grant is revoked): one sync sees it, then stop.
            Err(e) if e.code() == Some(crate::proto::api::ErrorCode::Forbidden) => {
                let _ = wake.send(target.id.clone());
                return;
            }
            Err(_) => failures = failures.saturating_add(1),
        }
        tokio::time::sleep(jitter(backoff(failures))).await;
    }
}

fn rooms_synced(events: &mpsc::UnboundedSender<SyncEvent>, report: RoomSyncReport) {
    let _ = events.send(SyncEvent::RoomsSynced(Box::new(report)));
}

/// The sync engine running for a caller that waits on it (`wire wait`, `wire send
/// --wait`): its wake ticks after every pull. Dropping it stops the engine.
#[derive(Debug)]
pub struct Waker {
    /// Ticks once per pull.
    pub wake: watch::Receiver<u64>,
    _stop: watch::Sender<bool>,
    engine: tokio::task::JoinHandle<()>,
    relay: tokio::task::JoinHandle<()>,
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.engine.abort();
        self.relay.abort();
    }
}

/// Starts the engine for `home` (on the current runtime) and ticks [`Waker::wake`] after
/// each pull it makes.
pub fn waker(home: Home, options: Options) -> Waker {
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let (wake_tx, wake) = watch::channel(0u64);
    let engine = tokio::spawn(run(home, options, tx, stop));
    let relay = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if matches!(event, SyncEvent::Synced(_) | SyncEvent::RoomsSynced(_)) {
                wake_tx.send_modify(|n| *n += 1);
            }
        }
    });
    Waker { wake, _stop: stop_tx, engine, relay }
}

/// Sends a pull's report; returns its cursor.
fn report(events: &mpsc::UnboundedSender<SyncEvent>, report: PullReport) -> u64 {
    let cursor = report.cursor;
    let _ = events.send(SyncEvent::Synced(Box::new(report)));
    cursor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_to_the_cap_and_jitter_stays_within_half() {
        assert_eq!(backoff(0), BACKOFF_MIN);
        assert_eq!(backoff(1), BACKOFF_MIN * 2);
        assert_eq!(backoff(40), BACKOFF_MAX);
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2), "{j:?}");
        }
    }
}
