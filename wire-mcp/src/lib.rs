//! # wire-mcp
//!
//! The MCP server behind `wire mcp`: tools, resources and notifications over stdio for
//! agent hosts. Not built yet; it will sit on `wire-core`'s endpoint API.
