//! The SPAKE2 rendezvous: short public nameplates, at most two sides, messages relayed
//! between them, closed after use, on abort or on timeout. The relay sees only the opaque
//! messages and the nameplate, never the code's words or any function of them. Held in
//! memory: a relay restart ends pairings in progress (each side then times out cleanly).

use std::collections::BTreeMap;
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

#[derive(Debug)]
pub(crate) struct Plate {
    pub(crate) sides: Vec<Hash>,
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
    /// Opens the smallest free nameplate (short codes), with `host` as side 0.
    pub(crate) fn open(&mut self, host: Hash, expires_at: u64) -> Option<u32> {
        if self.plates.len() >= MAX_OPEN {
            return None;
        }
        let number = (1..).find(|n| !self.plates.contains_key(n))?;
        self.plates.insert(
            number,
            Plate {
                sides: vec![host],
                messages: Vec::new(),
                expires_at,
                closed: false,
                notify: Arc::new(Notify::new()),
            },
        );
        Some(number)
    }

    /// Which side `token_hash` is on `number`.
    pub(crate) fn side(&self, number: u32, token_hash: &Hash) -> Option<usize> {
        self.plates.get(&number)?.sides.iter().position(|s| s == token_hash)
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
