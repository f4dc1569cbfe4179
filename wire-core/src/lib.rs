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
//! - [`clock`]: the [`clock::Clock`] trait every runtime part reads time through (the
//!   relay and the endpoint take one, so expiry tests advance a manual clock instead of
//!   sleeping).
//!
//! The runtime modules below sit behind the default `runtime` feature; `wire-relay`
//! builds this crate without it.
//!
//! - `home`: WIRE_HOME on disk: typed versioned state files, atomic writes, the
//!   advisory lock, the inbox (one JSONL file per peer), the outbox.
//! - `files`: the one atomic write and the platform directories.
//! - `sync`: the one sync engine (stream wake-ups, pulls, backoff) the daemon and
//!   `wire mcp` share.
//! - `session`: one identity per project; which identity a command acts as.
//! - `client`: the relay client (HTTP/1.1, TLS with Mozilla roots).
//! - `endpoint`: the operations the CLI, the daemon and the MCP server share: init,
//!   invite/accept, dial/decide, send, pull (the one receive path), tail, status.
//!
//! Start reading at [`proto::envelope`] (what travels) and [`proto::pairing`] (how two
//! agents come to trust each other). `docs/PROTOCOL.md` is the normative description.

pub mod clock;
pub mod duration;
pub mod proto;

#[cfg(feature = "runtime")]
pub mod client;
#[cfg(feature = "runtime")]
pub mod endpoint;
#[cfg(feature = "runtime")]
pub mod files;
#[cfg(feature = "runtime")]
pub mod home;
#[cfg(feature = "rooms")]
pub mod room;
#[cfg(feature = "runtime")]
pub mod session;
#[cfg(feature = "runtime")]
pub mod sync;
