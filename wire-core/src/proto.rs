//! The wire protocol, as pure functions and state machines.
//!
//! Nothing under this module performs I/O, reads a clock or touches the OS RNG; the
//! invariant is checked by `tests/purity.rs`. Callers pass `now` and an RNG explicitly,
//! which is what lets the pairing handshakes run between two in-memory peers in tests and
//! be re-created from persisted state after a restart.

pub mod api;
pub mod b64;
pub mod card;
pub mod character;
pub mod did;
pub mod envelope;
pub mod event;
pub mod identity;
pub mod invite;
pub mod job;
pub mod labels;
pub mod lineage;
pub mod pairing;
pub mod prekey;
pub mod rng;
pub mod secret;
pub mod signed;
pub mod time;

#[cfg(test)]
mod kat;
