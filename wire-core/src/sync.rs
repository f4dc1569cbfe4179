//! The one sync engine: what keeps an identity's inbox current, for the daemon and for
//! `wire mcp` alike (and `wire ui` next). It holds the relay's event stream for the
//! identity's mailbox; each wake runs `Endpoint::pull` (the one receive path); once a
//! second it retries a non-empty outbox and, if asked, drives code pairings in progress;
//! after any failure it reconnects with one backoff schedule (250 ms doubling to 30 s, with
//! jitter). It reports what happens as [`SyncEvent`]s on a channel; the caller decides what
//! to show (a status file and a log, MCP resource updates).
//!
//! One stream per identity today; the loop is written around "the streams of an
//! identity" so room slots and a second mailbox during a move can join it.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::endpoint::{Endpoint, PullReport};
use crate::home::{Account, Home};

/// First wait after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between reconnects.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the outbox is retried and pairings are driven while connected.
pub const HOUSEKEEPING: Duration = Duration::from_secs(1);

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
    Synced(PullReport),
    /// Something failed; the engine reconnects after a backoff.
    Failed(String),
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
        if let Err(e) = result {
            let _ = events.send(SyncEvent::Failed(e));
            failures = failures.saturating_add(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(jitter(backoff(failures))) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// One connection's life: catch up, hold the stream, sync on each wake. `Ok` when the
/// stream ended or `stop` turned.
async fn connected(
    home: &Home,
    options: Options,
    events: &mpsc::UnboundedSender<SyncEvent>,
    stop: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> Result<(), String> {
    let ep = Endpoint::open(home.clone()).map_err(|e| e.to_string())?;
    let me = ep.whoami().map_err(|e| e.to_string())?;
    let mut cursor = pull(&ep, events).await?;
    let account = home.load::<Account>().map_err(|e| e.to_string())?.ok_or("the home has no account")?;
    let client = crate::client::Client::new(crate::client::RelayUrl::parse(&account.relay).map_err(|e| e.to_string())?);
    let mut stream = client.stream(&account.slot, &account.owner_token, cursor).await.map_err(|e| e.to_string())?;
    *failures = 0;
    let _ = events.send(SyncEvent::Connected { did: me.face.did.clone(), nickname: me.face.nickname.clone() });
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(seq) if seq > cursor => cursor = pull(&ep, events).await?.max(cursor),
                Some(_) => {}
                None => return Ok(()),
            },
            _ = housekeeping.tick() => {
                if !ep.home.outbox().map_err(|e| e.to_string())?.is_empty() {
                    cursor = pull(&ep, events).await?.max(cursor);
                }
                if options.drive_pairings
                    && ep.pair_list().map_err(|e| e.to_string())?.iter().any(|v| !matches!(v.state, "paired" | "aborted"))
                {
                    let _ = ep.pair_drive_all(Duration::ZERO).await;
                }
            }
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(()) },
        }
    }
}

async fn pull(ep: &Endpoint, events: &mpsc::UnboundedSender<SyncEvent>) -> Result<u64, String> {
    let report = ep.pull().await.map_err(|e| e.to_string())?;
    let cursor = report.cursor;
    let _ = events.send(SyncEvent::Synced(report));
    Ok(cursor)
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
