//! One module per command family.

pub mod agent;
pub mod relay_server;
