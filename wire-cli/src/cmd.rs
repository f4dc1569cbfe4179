//! One module per command family.

pub mod agent;
pub mod pair;
pub mod relay_server;
