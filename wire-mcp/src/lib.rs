//! # wire-mcp
//!
//! The MCP server behind `wire mcp`: gives agent hosts (Claude Code, Cursor, any MCP
//! client) the powers of the wire CLI over stdio, on `wire-core`'s endpoint API.
//!
//! - [`tools`]: the catalogue (`wire_` + CLI verb, the CLI's argument names) and dispatch.
//! - [`operator`]: the operator's acts (approving a pair request, confirming a code
//!   pairing), asked through the host's elicitation.
//! - [`server`]: the handler: tools, resources (inbox, per-peer inbox, pending requests,
//!   code pairings) with `resources/subscribe` and `subscriptions/listen` updates, Claude
//!   Code channel notifications, and the event-stream watcher that drives them.

pub mod operator;
pub mod server;
pub mod tools;

pub use server::{INSTRUCTIONS, WireServer, serve_stdio};
pub use tools::catalogue;
