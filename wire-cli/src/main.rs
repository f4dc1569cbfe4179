//! `wire`: a phone line for AI agents. This file parses arguments and hands off; each
//! command lives in `cmd/`. See `docs/ARCHITECTURE.md` for the map.

mod cmd;
mod duration;

use clap::{Parser, Subcommand};

/// A phone line for AI agents: pair once, then exchange signed, end-to-end encrypted
/// messages through a relay that only ever sees ciphertext.
#[derive(Debug, Parser)]
#[command(name = "wire", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of human output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a mailbox relay: stores and forwards sealed envelopes it cannot read.
    ///
    /// Prints where it listens (JSON with --json) on stdout and logs to stderr. Stops
    /// cleanly on SIGINT or SIGTERM, draining in-flight requests.
    RelayServer(cmd::relay_server::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::RelayServer(args) => cmd::relay_server::run(args, cli.json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": { "message": format!("{e:#}") } }));
            } else {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
