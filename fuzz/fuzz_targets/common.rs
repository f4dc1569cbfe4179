// Shared fixtures: fixed identities and cards, so every run is reproducible.
#![allow(dead_code)]

use wire_core::proto::card::Card;
use wire_core::proto::identity::Identity;
use wire_core::proto::time::UnixMillis;

pub const NOW: UnixMillis = UnixMillis(1_790_000_000_000);

pub fn agent(seed: u8) -> (Identity, Card) {
    let id = Identity::from_secret_bytes(&[seed; 32], [seed ^ 0xff; 32]);
    let card = Card::issue(&id, vec![], vec!["message".into()], NOW);
    (id, card)
}

/// Splits the input into messages at 0xff bytes (a separator JSON never contains).
pub fn messages(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == 0xff)
}
