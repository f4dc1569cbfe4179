//! Shared helpers for wire-core's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use rand_core::OsRng;
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
        let id = Identity::generate(&mut OsRng);
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
    Token::random(kind, &mut OsRng)
}

pub fn seeded_rng(seed: u8) -> SeededRng {
    SeededRng::new(&Secret32::from_bytes([seed; 32]), b"test")
}
