//! One module per command.

pub mod relay_server;
