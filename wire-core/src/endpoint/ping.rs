//! `wire ping <peer>`: a signed probe (control message `ping`) that the peer's endpoint answers
//! by itself (`pong`) whenever its receive path runs (the daemon, `wire mcp`, a pull), and the
//! round-trip time seen on our clock. Neither ever reaches an inbox, the agent or the model.
//! Both sides bound them per peer: we send at most [`PER_MINUTE`] a minute to one peer, and
//! answer at most as many from one peer (the rest are dropped and counted).

use std::time::Duration;

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::route::{deliver, seal_for};
use super::{Endpoint, EndpointError, Face, Result};
use crate::home::{OutboxItem, Peer, Peers, StateFile};
use crate::proto::did::Did;
use crate::proto::event::{ControlBody, Event, Kind};
use crate::proto::time::UnixMillis;

/// The control type of a probe.
pub(crate) const PING: &str = "ping";
/// The control type of its answer.
pub(crate) const PONG: &str = "pong";
/// The card feature: reads pings and answers them.
pub(crate) const FEATURE: &str = "ping";
/// Pings sent to, and answered for, one peer in a minute.
pub const PER_MINUTE: usize = 6;
/// Longest wait for an answer.
pub const MAX_PING_WAIT: Duration = Duration::from_secs(60);

const MINUTE_MS: u64 = 60_000;

/// Pings in flight and the answers we gave (`pings.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pings {
    /// Format version.
    pub v: u64,
    /// Our pings of the last minutes.
    #[serde(default)]
    pub sent: Vec<SentPing>,
    /// When we answered whom (the last minute's).
    #[serde(default)]
    pub answered: Vec<(Did, UnixMillis)>,
    /// Pings we did not answer (over the limit).
    #[serde(default)]
    pub limited: u64,
}

impl StateFile for Pings {
    const NAME: &'static str = "pings.json";
    const VERSION: u64 = 1;
}

/// One ping of ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentPing {
    /// To whom.
    pub to: Did,
    /// Its nonce (hex), echoed by the answer.
    pub nonce: String,
    /// When it left.
    pub sent_at: UnixMillis,
    /// When its answer reached us.
    pub answered_at: Option<UnixMillis>,
}

/// `wire ping`.
#[derive(Debug, Clone, Serialize)]
pub struct PingReport {
    /// Whom.
    pub peer: Face,
    /// Whether it answered in time.
    pub answered: bool,
    /// Round trip on our clock, when it answered.
    pub rtt_ms: Option<u64>,
    /// How long we waited.
    pub waited_ms: u64,
}

impl Pings {
    /// Drops what is older than a minute (answers we gave, pings long settled).
    fn prune(&mut self, now: UnixMillis) {
        let recent = |t: UnixMillis| now.0.saturating_sub(t.0) < MINUTE_MS;
        self.answered.retain(|(_, t)| recent(*t));
        self.sent.retain(|p| recent(p.sent_at));
    }

    /// Whether another answer to `from` fits the limit now; records it when it does.
    pub(super) fn may_answer(&mut self, from: &Did, now: UnixMillis) -> bool {
        self.prune(now);
        if self.answered.iter().filter(|(d, _)| d == from).count() >= PER_MINUTE {
            self.limited += 1;
            return false;
        }
        self.answered.push((from.clone(), now));
        true
    }

    /// Records the answer to our ping `nonce` from `from`.
    pub(super) fn take_pong(&mut self, from: &Did, nonce: &str, now: UnixMillis) {
        if let Some(p) = self.sent.iter_mut().find(|p| &p.to == from && p.nonce == nonce && p.answered_at.is_none()) {
            p.answered_at = Some(now);
        }
    }
}

/// The nonce of a ping or pong's fields.
pub(super) fn nonce_of(fields: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    fields
        .get("nonce")
        .and_then(|n| n.as_str())
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

impl Endpoint {
    fn probe(&self, peer: &Peer, kind: &str, nonce: &str) -> Result<super::route::Sealed> {
        let mut fields = serde_json::Map::new();
        fields.insert("nonce".into(), nonce.into());
        let body = serde_json::to_value(ControlBody { kind: kind.into(), v: 1, fields }).expect("serializes");
        let event =
            Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, self.home.now(), &mut OsRng);
        seal_for(&self.identity, peer, event)
    }

    /// The answer to a ping from `peer`, as an outbox item (posted with the batch).
    pub(super) fn pong_for(&self, peer: &Peer, nonce: &str) -> Result<Option<OutboxItem>> {
        Ok(self.probe(peer, PONG, nonce)?.item(peer, self.home.now()).ok().map(|mut item| {
            item.quiet = true;
            item
        }))
    }

    /// Applies a batch's pings and pongs: answers queued (within the limit), round trips
    /// recorded. Before the ack, like the rest of the batch's state.
    pub(super) fn take_pings(
        &self,
        peers: &Peers,
        pings: &mut Vec<(Did, String)>,
        pongs: &mut Vec<(Did, String)>,
    ) -> Result<()> {
        let mut held = self.home.load::<Pings>()?.unwrap_or(Pings { v: 1, ..Pings::default() });
        let now = self.home.now();
        for (from, nonce) in pongs.drain(..) {
            held.take_pong(&from, &nonce, now);
        }
        for (from, nonce) in pings.drain(..) {
            let Some(peer) = peers.get(&from) else { continue };
            if held.may_answer(&from, now)
                && let Some(item) = self.pong_for(peer, &nonce)?
            {
                self.home.queue(&item)?;
            }
        }
        self.home.save(&held).map_err(EndpointError::from)
    }

    /// `wire ping <peer>`: sends a probe and waits up to `timeout` for its answer; `wake`
    /// ticks after every pull of a sync engine running beside (the answer comes that way).
    pub async fn ping(&self, name: &str, timeout: Duration, wake: &mut watch::Receiver<u64>) -> Result<PingReport> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let peer = self.find_peer(&peers, name)?.clone();
        let face = Face::of(peer.card.did());
        if !peer.card.speaks(FEATURE) {
            return Err(EndpointError::PingUnsupported(face.nickname));
        }
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let sent_at = {
            let _lock = self.home.lock()?;
            let mut pings = self.home.load::<Pings>()?.unwrap_or(Pings { v: 1, ..Pings::default() });
            let now = self.home.now();
            pings.prune(now);
            if pings.sent.iter().filter(|p| p.to == *peer.card.did()).count() >= PER_MINUTE {
                return Err(EndpointError::PingRateLimited(face.nickname));
            }
            pings.sent.push(SentPing {
                to: peer.card.did().clone(),
                nonce: nonce.clone(),
                sent_at: now,
                answered_at: None,
            });
            self.home.save(&pings)?;
            now
        };
        let sealed = self.probe(&peer, PING, &nonce)?;
        deliver(&peer, sealed.envelope()?).await.map_err(EndpointError::from)?;
        let started = tokio::time::Instant::now();
        let deadline = started + timeout.min(MAX_PING_WAIT);
        loop {
            wake.borrow_and_update();
            let pings = self.home.load::<Pings>()?.unwrap_or_default();
            let answered = pings.sent.iter().find(|p| p.nonce == nonce).and_then(|p| p.answered_at);
            if let Some(at) = answered {
                let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Ok(PingReport {
                    peer: face,
                    answered: true,
                    rtt_ms: Some(at.0.saturating_sub(sent_at.0)),
                    waited_ms,
                });
            }
            if !matches!(tokio::time::timeout_at(deadline, wake.changed()).await, Ok(Ok(()))) {
                let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Ok(PingReport { peer: face, answered: false, rtt_ms: None, waited_ms });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_are_bounded_per_peer_and_minute() {
        let (a, b) = (
            Did::parse("did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH").unwrap(),
            Did::parse("did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG").unwrap(),
        );
        let mut pings = Pings::default();
        let t = UnixMillis(1_000_000);
        for _ in 0..PER_MINUTE {
            assert!(pings.may_answer(&a, t));
        }
        assert!(!pings.may_answer(&a, t), "the seventh in a minute is not answered");
        assert!(pings.may_answer(&b, t), "another peer has its own budget");
        assert_eq!(pings.limited, 1);
        assert!(pings.may_answer(&a, UnixMillis(t.0 + MINUTE_MS)), "a minute later it is answered again");
    }
}
