//! # wire-relay
//!
//! The mailbox relay: slots, capabilities, the intro lane, the handle directory and the
//! SPAKE2 rendezvous. It stores sealed envelopes and never sees plaintext, a sender or a
//! key. This crate is a library; `wire relay-server` runs it.
//!
//! The server itself is not built yet; the HTTP API it will serve is specified in
//! `docs/PROTOCOL.md` and its request and response types live in `wire_core::proto::api`.

pub use wire_core::proto::api;
