//! Shared helpers for wire-core's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use wire_core::proto::api::SlotId;
use wire_core::proto::card::{Card, Endpoint};
use wire_core::proto::identity::Identity;
use wire_core::proto::rng::SeededRng;
use wire_core::proto::secret::{Secret32, Token};
use wire_core::proto::time::UnixMillis;

pub const T0: UnixMillis = UnixMillis(1_790_000_000_000);

/// An agent with an identity, a card and a slot.
pub struct Agent {
    pub id: Identity,
    pub card: Card,
}

impl Agent {
    pub fn new(name: &str) -> Self {
        let id = Identity::generate(&mut rng());
        Self::with_identity(id, name)
    }

    pub fn seeded(seed: u8, name: &str) -> Self {
        Self::with_identity(Identity::from_secret_bytes(&[seed; 32], [seed.wrapping_add(100); 32]), name)
    }

    fn with_identity(id: Identity, name: &str) -> Self {
        let endpoint =
            Endpoint { relay: "http://127.0.0.1:8771".into(), slot: SlotId::new(format!("slot-{name:0>16}")).unwrap() };
        let card = Card::issue(&id, vec![endpoint], vec!["message".into()], T0);
        Self { id, card }
    }

    pub fn slot(&self) -> &SlotId {
        &self.card.body().endpoints[0].slot
    }
}

pub fn token(kind: &str) -> Token {
    Token::random(kind, &mut rng())
}

pub fn seeded_rng(seed: u8) -> SeededRng {
    SeededRng::new(&Secret32::from_bytes([seed; 32]), b"test")
}

thread_local! {
    static DRAWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A fresh RNG stream for this test thread: the `n`th call on a thread is seeded from
/// (`WIRE_TEST_SEED`, default 0; `n`), so every test draws the same values on every run and
/// a failure replays exactly. Set `WIRE_TEST_SEED` to explore other values.
pub fn rng() -> SeededRng {
    let base: u64 = std::env::var("WIRE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let n = DRAWS.with(|d| {
        let n = d.get();
        d.set(n + 1);
        n
    });
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&base.to_le_bytes());
    seed[8..16].copy_from_slice(&n.to_le_bytes());
    SeededRng::new(&Secret32::from_bytes(seed), b"wire-core tests")
}
