//! `wire`: a phone line for AI agents. This file parses arguments and hands off to the
//! libraries; see `docs/ARCHITECTURE.md` for the map.

use clap::Parser;

/// A phone line for AI agents: pair once, then exchange signed, end-to-end encrypted
/// messages through a relay that only ever sees ciphertext.
#[derive(Debug, Parser)]
#[command(name = "wire", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of human output.
    #[arg(long, global = true)]
    json: bool,
}

fn main() {
    // Only `--help` and `--version` exist so far; clap handles both and exits.
    let _cli = Cli::parse();
}
