//! The rendezvous when several relay nodes share a PostgreSQL store: nameplates and their
//! messages live in `UNLOGGED` tables (a database crash ends pairings in progress, as a
//! relay restart does on one node), so the host of a code pairing may talk to one node and
//! the guest to another. Same rules as [`crate::rendezvous`]: at most two sides, 32
//! messages of 64 KiB, an idempotent re-post, a share per client IP, expiry.
//!
//! A long poll waits on a node-local wake-up per nameplate, rung by a post on this node or
//! by another node's hint on `wire_rendezvous` (the listening thread of [`crate::nodes`]),
//! and re-reads at least every second, so a lost hint costs at most that.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use wire_core::proto::api::{ErrorCode, RendezvousMessage, RendezvousPoll};

use crate::error::ApiError;
use crate::rendezvous::{MAX_MESSAGE_BYTES, MAX_MESSAGES, MAX_OPEN};
use crate::state::lock;
use crate::store::Hash;

/// The channel of rendezvous hints: the nameplate number.
pub(crate) const CHANNEL: &str = "wire_rendezvous";

/// Nameplates drawn at random below this (or ten times the open count).
const SPACE: i64 = 1_000;

/// The shared rendezvous: one database session (reconnected when it breaks) and the
/// node-local wake-ups of waiting polls.
pub(crate) struct Nameplates {
    url: String,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    waiting: Mutex<HashMap<u32, Arc<Notify>>>,
}

impl std::fmt::Debug for Nameplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nameplates(..)")
    }
}

/// Why a rendezvous request was refused.
pub(crate) enum Refused {
    NoPlate,
    Closed,
    Full,
    IpShare,
    TooMany,
    Api(ApiError),
}

impl From<tokio_postgres::Error> for Refused {
    fn from(e: tokio_postgres::Error) -> Self {
        crate::log(&format!("error: rendezvous store: {e}"));
        Refused::Api(ApiError::internal())
    }
}

fn n32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Nameplates {
    pub(crate) fn new(url: String) -> Self {
        Self { url, client: tokio::sync::Mutex::new(None), waiting: Mutex::new(HashMap::new()) }
    }

    /// Runs `f` with the session, connecting first if needed; a failed call drops the
    /// session so the next one reconnects.
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&mut tokio_postgres::Client) -> Result<T, Refused>,
    ) -> Result<T, Refused> {
        let mut held = self.client.lock().await;
        if held.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *held = Some(client);
        }
        let client = held.as_mut().expect("connected above");
        let out = f(client).await;
        if let Err(Refused::Api(_)) = &out {
            *held = None;
        }
        out
    }

    /// Rings the waiting polls of `n` on this node.
    pub(crate) fn ring(&self, n: u32) {
        if let Some(notify) = lock(&self.waiting).get(&n) {
            notify.notify_waiters();
        }
    }

    /// Rings every waiting poll (after a reconnect of the listening session).
    pub(crate) fn ring_all(&self) {
        for notify in lock(&self.waiting).values() {
            notify.notify_waiters();
        }
    }

    /// Opens a nameplate drawn at random with side 0 held by `host` from `ip`.
    pub(crate) async fn open(
        &self,
        host: Hash,
        ip: IpAddr,
        expires_at: u64,
        per_ip: usize,
        now: u64,
    ) -> Result<u32, Refused> {
        self.with(async |c| {
            let ip = ip.to_string();
            let row = c
                .query_one(
                    "SELECT count(*), count(*) FILTER (WHERE ip0 = $1) + count(*) FILTER (WHERE ip1 = $1)
                     FROM nameplates WHERE NOT closed AND expires_at > $2",
                    &[&ip, &(now as i64)],
                )
                .await?;
            let (open, held): (i64, i64) = (row.get(0), row.get(1));
            if held as usize >= per_ip {
                return Err(Refused::IpShare);
            }
            if open as usize >= MAX_OPEN {
                return Err(Refused::TooMany);
            }
            let space = SPACE.max(10 * open);
            loop {
                let n = 1 + i64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng)) % space;
                let inserted = c
                    .execute(
                        "INSERT INTO nameplates (number, side0, ip0, expires_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (number) DO NOTHING",
                        &[&(n as i32), &host.as_slice(), &ip, &(expires_at as i64)],
                    )
                    .await?;
                if inserted == 1 {
                    return Ok(n as u32);
                }
            }
        })
        .await
    }

    /// Takes side 1 of `n` for `guest` from `ip`; the nameplate's expiry.
    pub(crate) async fn join(&self, n: u32, guest: Hash, ip: IpAddr, per_ip: usize, now: u64) -> Result<u64, Refused> {
        self.with(async |c| {
            let ip = ip.to_string();
            let held: i64 = c
                .query_one(
                    "SELECT count(*) FILTER (WHERE ip0 = $1) + count(*) FILTER (WHERE ip1 = $1)
                     FROM nameplates WHERE NOT closed AND expires_at > $2",
                    &[&ip, &(now as i64)],
                )
                .await?
                .get(0);
            if held as usize >= per_ip {
                return Err(Refused::IpShare);
            }
            let joined = c
                .query_opt(
                    "UPDATE nameplates SET side1 = $2, ip1 = $3
                     WHERE number = $1 AND side1 IS NULL AND NOT closed AND expires_at > $4 RETURNING expires_at",
                    &[&n32(n), &guest.as_slice(), &ip, &(now as i64)],
                )
                .await?;
            if let Some(row) = joined {
                return Ok(row.get::<_, i64>(0) as u64);
            }
            let plate = c
                .query_opt(
                    "SELECT closed OR expires_at <= $2 FROM nameplates WHERE number = $1",
                    &[&n32(n), &(now as i64)],
                )
                .await?;
            Err(match plate {
                None => Refused::NoPlate,
                Some(row) if row.get::<_, bool>(0) => Refused::Closed,
                Some(_) => Refused::Full,
            })
        })
        .await
    }

    /// Which side `token` holds on `n` (`NoPlate` if there is no such nameplate).
    pub(crate) async fn side(&self, n: u32, token: &Hash) -> Result<Option<usize>, Refused> {
        self.with(async |c| {
            let row = c
                .query_opt(
                    "SELECT CASE WHEN side0 = $2 THEN 0 WHEN side1 = $2 THEN 1 END FROM nameplates WHERE number = $1",
                    &[&n32(n), &token.as_slice()],
                )
                .await?
                .ok_or(Refused::NoPlate)?;
            Ok(row.get::<_, Option<i32>>(0).map(|s| s as usize))
        })
        .await
    }

    /// Posts `body` from `side`; its sequence number and whether it is new.
    pub(crate) async fn post(
        &self,
        n: u32,
        side: usize,
        body: &[u8],
        max_bytes: usize,
    ) -> Result<(u64, bool), Refused> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(Refused::Api(ApiError::bad_request("message too large")));
        }
        let posted = self
            .with(async |c| {
                let tx = c.transaction().await?;
                let closed: Option<bool> = tx
                    .query_opt("SELECT closed FROM nameplates WHERE number = $1 FOR UPDATE", &[&n32(n)])
                    .await?
                    .map(|r| r.get(0));
                match closed {
                    None => return Err(Refused::NoPlate),
                    Some(true) => return Err(Refused::Closed),
                    Some(false) => {}
                }
                let side = side as i16;
                // A side re-posting the same bytes gets the same sequence number.
                if let Some(row) = tx
                    .query_opt(
                        "SELECT seq FROM nameplate_messages WHERE number = $1 AND side = $2 AND body = $3",
                        &[&n32(n), &side, &body],
                    )
                    .await?
                {
                    return Ok((row.get::<_, i32>(0) as u64, false));
                }
                let count: i64 =
                    tx.query_one("SELECT count(*) FROM nameplate_messages WHERE number = $1", &[&n32(n)]).await?.get(0);
                if count as usize >= MAX_MESSAGES {
                    return Err(Refused::Api(ApiError::new(
                        ErrorCode::QuotaExceeded,
                        "too many messages on this nameplate",
                    )));
                }
                let held: i64 = tx
                    .query_one("SELECT coalesce(sum(length(body)), 0)::BIGINT FROM nameplate_messages", &[])
                    .await?
                    .get(0);
                if held as usize + body.len() > max_bytes {
                    return Err(Refused::Api(ApiError::new(
                        ErrorCode::QuotaExceeded,
                        "this relay holds as many pairing messages as it may; retry in a minute",
                    )));
                }
                let seq = count as i32 + 1;
                tx.execute(
                    "INSERT INTO nameplate_messages (number, seq, side, body) VALUES ($1, $2, $3, $4)",
                    &[&n32(n), &seq, &side, &body],
                )
                .await?;
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &n.to_string()]).await?;
                tx.commit().await?;
                Ok((seq as u64, true))
            })
            .await?;
        self.ring(n);
        Ok(posted)
    }

    /// What the other side posted after `after`, waiting up to `wait` for something.
    pub(crate) async fn poll(
        &self,
        n: u32,
        side: usize,
        after: u64,
        wait: Duration,
        now: impl Fn() -> u64,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<RendezvousPoll, Refused> {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = lock(&self.waiting).entry(n).or_insert_with(|| Arc::new(Notify::new())).clone();
        let result = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let read = self
                .with(async |c| {
                    let plate = c
                        .query_opt(
                            "SELECT closed OR expires_at <= $2 FROM nameplates WHERE number = $1",
                            &[&n32(n), &(now() as i64)],
                        )
                        .await?
                        .map(|r| r.get::<_, bool>(0));
                    let Some(closed) = plate else {
                        return Ok(RendezvousPoll { messages: Vec::new(), closed: true });
                    };
                    let messages = c
                        .query(
                            "SELECT seq, body FROM nameplate_messages WHERE number = $1 AND side <> $2 AND seq > $3
                             ORDER BY seq",
                            &[&n32(n), &(side as i16), &(after as i32)],
                        )
                        .await?
                        .into_iter()
                        .map(|r| RendezvousMessage { seq: r.get::<_, i32>(0) as u64, body: r.get(1) })
                        .collect();
                    Ok(RendezvousPoll { messages, closed })
                })
                .await;
            match read {
                Ok(p) if !p.messages.is_empty() || p.closed || tokio::time::Instant::now() >= deadline => break Ok(p),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            let recheck = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(recheck) => {}
                _ = shutdown.changed() => {
                    break Err(Refused::Api(ApiError::new(ErrorCode::Gone, "the relay is shutting down")));
                }
            }
        };
        // The last poll of a nameplate on this node takes its wake-up away.
        drop(notify);
        let mut waiting = lock(&self.waiting);
        if waiting.get(&n).is_some_and(|w| Arc::strong_count(w) == 1) {
            waiting.remove(&n);
        }
        result
    }

    /// Closes `n` (either side).
    pub(crate) async fn close(&self, n: u32) -> Result<(), Refused> {
        self.with(async |c| {
            c.execute("UPDATE nameplates SET closed = TRUE WHERE number = $1", &[&n32(n)]).await?;
            c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &n.to_string()]).await?;
            Ok(())
        })
        .await?;
        self.ring(n);
        Ok(())
    }

    /// Drops expired nameplates (any node may; it is idempotent); how many stay open, and
    /// the bytes their messages hold.
    pub(crate) async fn sweep(&self, now: u64) -> Result<(usize, usize), Refused> {
        self.with(async |c| {
            c.execute("DELETE FROM nameplates WHERE expires_at <= $1", &[&(now as i64)]).await?;
            let row = c
                .query_one(
                    "SELECT (SELECT count(*) FROM nameplates),
                            (SELECT coalesce(sum(length(body)), 0)::BIGINT FROM nameplate_messages)",
                    &[],
                )
                .await?;
            Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
        })
        .await
    }
}
