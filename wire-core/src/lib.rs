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
//! - [`home`]: WIRE_HOME on disk: typed versioned state files, atomic writes, the
//!   advisory lock, the inbox (one JSONL file per peer), the outbox.
//! - [`session`]: one identity per project; which identity a command acts as.
//! - [`client`]: the relay client (HTTP/1.1, TLS with Mozilla roots).
//! - [`endpoint`]: the operations the CLI, the daemon and the MCP server share: init,
//!   invite/accept, dial/decide, send, pull (the one receive path), tail, status.
//!
//! Start reading at [`proto::envelope`] (what travels) and [`proto::pairing`] (how two
//! agents come to trust each other). `docs/PROTOCOL.md` is the normative description.

pub mod client;
pub mod duration;
pub mod endpoint;
pub mod home;
pub mod proto;
pub mod session;
