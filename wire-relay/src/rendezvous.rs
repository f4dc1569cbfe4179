//! The SPAKE2 rendezvous: short public nameplates, at most two sides, messages relayed
//! between them, closed after use, on abort or on timeout. The relay sees only the opaque
//! messages and the nameplate, never the code's words or any function of them. Held in
//! memory: a relay restart ends pairings in progress (each side then times out cleanly).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::store::Hash;

/// Most nameplates open at once.
pub(crate) const MAX_OPEN: usize = 10_000;
/// Most messages per nameplate (a pairing needs about six).
pub(crate) const MAX_MESSAGES: usize = 32;
/// Largest message.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Nameplates are drawn at random below this (or ten times the open count, if larger), so
/// codes stay short and a stranger cannot tell which numbers are in use.
const SPACE: u32 = 1_000;

#[derive(Debug)]
pub(crate) struct Plate {
    /// Each side's token hash and the address that took it.
    pub(crate) sides: Vec<(Hash, IpAddr)>,
    pub(crate) messages: Vec<(usize, u64, Bytes)>,
    pub(crate) expires_at: u64,
    pub(crate) closed: bool,
    pub(crate) notify: Arc<Notify>,
}

/// Open nameplates by number.
#[derive(Debug, Default)]
pub(crate) struct Rendezvous {
    pub(crate) plates: BTreeMap<u32, Plate>,
}

impl Plate {
    /// Bytes of messages this nameplate holds.
    pub(crate) fn bytes(&self) -> usize {
        self.messages.iter().map(|(_, _, b)| b.len()).sum()
    }
}

impl Rendezvous {
    /// Opens a free nameplate drawn at random, with `host` (from `ip`) as side 0.
    pub(crate) fn open(&mut self, host: Hash, ip: IpAddr, expires_at: u64) -> Option<u32> {
        if self.plates.len() >= MAX_OPEN {
            return None;
        }
        let space = SPACE.max(10 * self.plates.len() as u32);
        // At most a tenth of the space is taken, so a free number turns up within a few draws.
        let number = loop {
            let n = 1 + rand_core::RngCore::next_u32(&mut rand_core::OsRng) % space;
            if !self.plates.contains_key(&n) {
                break n;
            }
        };
        self.plates.insert(
            number,
            Plate {
                sides: vec![(host, ip)],
                messages: Vec::new(),
                expires_at,
                closed: false,
                notify: Arc::new(Notify::new()),
            },
        );
        Some(number)
    }

    /// Sides of open nameplates that `ip` holds.
    pub(crate) fn held_by(&self, ip: IpAddr) -> usize {
        self.plates.values().filter(|p| !p.closed).flat_map(|p| &p.sides).filter(|(_, at)| *at == ip).count()
    }

    /// Which side `token_hash` is on `number`.
    pub(crate) fn side(&self, number: u32, token_hash: &Hash) -> Option<usize> {
        self.plates.get(&number)?.sides.iter().position(|(s, _)| s == token_hash)
    }

    /// Bytes of messages held across all nameplates.
    pub(crate) fn bytes(&self) -> usize {
        self.plates.values().map(Plate::bytes).sum()
    }

    /// Drops nameplates past their expiry; returns how many remain.
    pub(crate) fn sweep(&mut self, now: u64) -> usize {
        self.plates.retain(|_, p| {
            if now >= p.expires_at {
                p.closed = true;
                p.notify.notify_waiters();
                false
            } else {
                true
            }
        });
        self.plates.len()
    }
}
