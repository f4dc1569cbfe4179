//! One module per command family.

pub mod agent;
pub mod demo;
pub mod doctor;
pub mod job;
pub mod mcp;
pub mod operator;
pub mod pair;
pub mod relay_server;
pub mod room;
pub mod session;
