//! The relay over real sockets: the HTTP API (`api`), listeners and lifecycle
//! (`transports`). One test binary; `common` re-exports the shared test kit.
#![allow(clippy::unwrap_used)]

mod api;
mod common;
mod limits;
mod rooms;
mod transports;
