//! The end-to-end suite: the real `wire` binary and real relay processes, each identity in
//! its own WIRE_HOME under a test temp dir. One binary (one link step) with a module per
//! area; `common` holds the helpers, on top of `wire-testkit`.
//!
//! Tests that need something a developer machine may lack (root, network namespaces, npm,
//! systemd) are `#[ignore = "needs ..."]`; `.ci/test` installs what they need and runs
//! them with `--include-ignored`, so they can never pass by skipping.
#![allow(clippy::unwrap_used)]

mod common;

mod audit;
mod block;
mod cli;
mod clock;
mod code_pairing;
mod compat;
mod daemon;
mod demo;
mod docs_commands;
mod doctor;
mod errors;
mod first_hour;
mod flows;
mod install;
mod jobs;
mod json_shapes;
mod lineage;
mod mcp;
mod mesh;
mod netns;
mod nodes;
mod packaging;
mod ping;
mod prekeys;
mod receive;
mod relay_process;
mod relocate;
mod replay;
mod rooms;
mod service;
mod setup;
mod snapshots;
mod strangers;
mod ui;
