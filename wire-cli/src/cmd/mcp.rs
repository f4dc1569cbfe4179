//! `wire mcp`: the stdio MCP server (`wire setup` registers it with agent hosts).

use anyhow::Context;

use super::agent::chosen;

/// `wire mcp`: serves MCP on stdin/stdout as the identity the session rule picks.
pub fn serve() -> anyhow::Result<()> {
    let chosen = chosen()?;
    // Nothing named an identity: the client's roots may (a host that runs the server
    // outside the project directory still gets the project's session).
    let roots_may_choose = chosen.rule == wire_core::session::Rule::Default;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(wire_mcp::serve_stdio(chosen.home, roots_may_choose, Some(super::doctor::for_mcp)))
        .map_err(anyhow::Error::msg)
}
