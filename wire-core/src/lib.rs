//! # wire-core
//!
//! Everything a wire endpoint is. If you are writing a client, an agent harness, or another
//! implementation of the wire protocol, this is the crate you want; the relay server lives
//! in `wire-relay` and the MCP server in `wire-mcp`.
//!
//! # Layout
//!
//! - [`proto`]: the pure protocol. No I/O, no clocks, no OS randomness: time is passed in
//!   as [`proto::time::UnixMillis`] and randomness as a `rand_core::CryptoRngCore`. Identity,
//!   DIDs, signed agent cards, characters, events, sealed envelopes, invite URLs, the
//!   pairing state machines and the relay API types all live here.
//!
//! Start reading at [`proto::envelope`] (what travels) and [`proto::pairing`] (how two
//! agents come to trust each other). `docs/PROTOCOL.md` is the normative description.

pub mod proto;
