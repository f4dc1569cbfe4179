//! wire-core's integration tests, one binary: the formats and their vectors, the pairing
//! state machines with two in-memory peers, properties, and the purity of `proto`.
#![allow(clippy::unwrap_used)]

mod common;
mod formats;
mod pairing;
mod properties;
mod purity;
mod vectors;
