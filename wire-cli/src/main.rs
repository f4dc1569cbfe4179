//! `wire`: a phone line for AI agents. This file parses arguments and hands off; each
//! command lives in `cmd/`. See `docs/ARCHITECTURE.md` for the map.

mod cmd;
mod daemon;
mod output;
mod service;
mod setup;
mod signals;
mod ui;

use std::time::Duration;

use clap::{Parser, Subcommand};
use wire_core::endpoint::{MAX_WAIT, NextStep, Problem};
use wire_core::home::ReceiptState;

/// `--wait delivered|read`.
fn parse_receipt(text: &str) -> Result<ReceiptState, String> {
    match text {
        "delivered" => Ok(ReceiptState::Delivered),
        "read" => Ok(ReceiptState::Read),
        other => Err(format!("`{other}`: wait for `delivered` or `read`")),
    }
}

/// A wait bound: a duration of 1 s to [`MAX_WAIT`].
pub(crate) fn parse_wait(text: &str) -> Result<Duration, String> {
    let d = wire_core::duration::parse(text)?;
    if d < Duration::from_secs(1) || d > MAX_WAIT {
        return Err(format!("`{text}`: between 1s and {}s", MAX_WAIT.as_secs()));
    }
    Ok(d)
}

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
    /// See wire work in seconds: an embedded relay, three agents, pairing by invite and (two
    /// that never met) by code, an encrypted message each way, and what the relay saw.
    /// Leaves nothing behind.
    Demo {
        /// Keep the relay running and the agents' homes, and print how to continue.
        #[arg(long)]
        keep: bool,
    },
    /// Create this agent's identity, get a mailbox on a relay, claim its handle.
    ///
    /// Idempotent: run again, it reports what exists. The identity lives in WIRE_HOME
    /// (default: the platform data directory).
    Init {
        /// Relay address (`https://relay.example`, or `host:port`; loopback hosts use http).
        /// Default: the relay this identity is on, or a local relay at 127.0.0.1:8771.
        #[arg(long, env = "WIRE_RELAY")]
        relay: Option<String>,
    },
    /// `wire init` on the given relay; with `--reregister`, recover after the relay lost
    /// this agent's mailbox.
    Up {
        /// Relay address.
        #[arg(required_unless_present = "reregister")]
        relay: Option<String>,
        /// The relay lost this agent's mailbox (`wire status` says so): get a new one there for
        /// the same identity and re-introduce this agent to every pinned peer (pins are kept).
        #[arg(long, conflicts_with_all = ["relay", "also"])]
        reregister: bool,
        /// Another address of the same relay for the card (its Unix socket, a LAN or public
        /// address); peers try the closest first. Repeatable.
        #[arg(long = "also", value_name = "ADDR")]
        also: Vec<String>,
        /// A further mailbox on another relay, for a new identity: listed in the card after
        /// the first, read like it; senders fall over to it when the first refuses.
        /// Repeatable.
        #[arg(long = "mailbox", value_name = "RELAY", conflicts_with = "reregister")]
        mailboxes: Vec<String>,
    },
    /// Show this agent: face, DID, fingerprint, relay, handle.
    Whoami,
    /// Look up an agent by `nick@relay` (verifies its card) or by DID.
    Whois {
        /// `nick@relay` or a DID.
        target: String,
    },
    /// List pinned peers with their tier and last contact.
    Peers,
    /// Identity, relay reachability, inbox/outbox/pending counts, refused events.
    Status,
    /// Move this identity to the keys it committed to in advance, and commit to new ones.
    /// Peers follow (same face, same inbox); one that is offline catches up when it returns.
    Rotate,
    /// Revocation for a lost home: `--export FILE` now (keep the file offline), `--publish
    /// FILE` after the loss (no home needed): every peer then stops trusting this identity.
    Revoke {
        /// Sign a revocation now and write it, with what it takes to reach every peer, to FILE.
        #[arg(long, value_name = "FILE", conflicts_with = "publish", required_unless_present = "publish")]
        export: Option<std::path::PathBuf>,
        /// Deliver a revocation exported earlier to every peer it names.
        #[arg(long, value_name = "FILE")]
        publish: Option<std::path::PathBuf>,
    },
    /// Print a `wire://pair?...` URL that lets one agent (or --uses N) pair with you.
    Invite {
        /// How many agents may use it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it stays valid (e.g. 30m, 24h).
        #[arg(long, default_value = "24h", value_parser = wire_core::duration::parse)]
        ttl: std::time::Duration,
    },
    /// Pair using an invite URL, or accept a pending pair request by nickname or DID.
    Accept {
        /// A `wire://pair?...` URL, or the nickname/DID of a pending request.
        target: String,
    },
    /// Decline a pending pair request. Nothing is pinned.
    Reject {
        /// Nickname or DID of the request.
        target: String,
    },
    /// Ask a stranger to pair, by handle; it waits for their operator's consent.
    Dial {
        /// `nick@relay`.
        handle: String,
        /// A short note shown to their operator.
        #[arg(long)]
        note: Option<String>,
    },
    /// List pair requests waiting for your decision, and your own requests in flight.
    Pending,
    /// `wire verify PEER FINGERPRINT`: raise a TOFU peer (paired by dial) to VERIFIED after
    /// comparing its fingerprint with its operator over a channel you trust (a mismatch changes
    /// nothing; operators only).
    ///
    /// `wire verify FILE|- [--did DID]`: check signed events again, offline (an inbox file, a
    /// single line, a job's events): each line against the pinned keys (any key the sender's
    /// lineage held), or against DID alone. Tampered lines are reported by line number; exit 1
    /// when any line fails.
    Verify {
        /// Nickname, `nick@relay` or DID; or, without a fingerprint, the file to check (`-`: stdin).
        peer: String,
        /// The fingerprint its operator read out (`wire whoami` on its side).
        fingerprint: Option<String>,
        /// Check the file against this DID instead of the pinned keys (no home needed).
        #[arg(long, conflicts_with = "fingerprint")]
        did: Option<String>,
    },
    /// Find what is silently wrong with this identity, each with what to do: no identity or
    /// relay, relay unreachable or its mailbox gone, no daemon (or a failing one), failing
    /// outbox items, parked pairing answers, waiting pair requests, refused events. Exit 0
    /// when healthy, 1 with findings.
    Doctor,
    /// Check that a peer's endpoint is online: a signed probe its endpoint (daemon, `wire
    /// mcp`) answers by itself; prints the round trip, or "no answer" after the timeout (exit
    /// 1). Never reaches its inbox or its agent. At most 6 a minute per peer.
    Ping {
        /// Nickname, `nick@relay` or DID.
        peer: String,
        /// How long to wait for the answer (at most 60s).
        #[arg(long, default_value = "10s", value_parser = wire_core::duration::parse)]
        timeout: Duration,
    },
    /// Block an identity: its pair requests, dials and messages are dropped at receive and
    /// counted, never shown; a pinned peer is unpinned and its send grant revoked (it is not
    /// told); a stranger's waiting request goes. Follows the identity across key rotations.
    Block {
        /// Nickname, `nick@relay` or DID of a peer, a stranger in `wire pending`, or any DID.
        target: String,
    },
    /// Take an identity off the block list (a former peer must pair again).
    Unblock {
        /// Nickname or DID, as `wire blocked` lists it.
        target: String,
    },
    /// The block list, with how many envelopes from each were dropped.
    Blocked,
    /// Move this agent's mailbox to another relay without re-pairing: a new mailbox there,
    /// and every pinned peer told (a signed re-introduction with a new send grant). The old
    /// mailbox is read until every peer confirmed, or for 14 days.
    Move {
        /// The relay to move to.
        relay: String,
    },
    /// Drop received and sent history older than a cut from this home (inboxes, room
    /// inboxes, sent logs). Envelopes sealed to prekeys can no longer be opened once the
    /// prekey's secret is deleted; this removes what was already opened.
    Prune {
        /// An age (`30d`, `12h`: what is older) or a UTC date (`YYYY-MM-DD`: what came before).
        #[arg(long, value_parser = wire_core::home::Before::parse)]
        before: wire_core::home::Before,
    },
    /// Unpair: revoke the peer's access to your mailbox, tell it, unpin it.
    Forget {
        /// Nickname, `nick@relay` or DID.
        peer: String,
    },
    /// Send a signed, encrypted event to a paired peer. Prints the verdict.
    Send {
        /// Nickname, `nick@relay` or DID.
        peer: String,
        /// The message (several words are joined with spaces; words starting with `-` are
        /// text too); `-` reads it from stdin. A first word that names a kind (`claim`,
        /// `decision`, `question`, ...) followed by more words sets the kind.
        #[arg(required = true, num_args = 1..)]
        body: Vec<String>,
        /// message, claim, decision, question, ack or heartbeat (default: message).
        #[arg(long)]
        kind: Option<String>,
        /// If the relay is unreachable, queue it; `wire pull` or the daemon delivers it later.
        #[arg(long)]
        queue: bool,
        /// Then wait for the peer's signed receipt: `delivered` (in its inbox) or `read` (its
        /// agent read it).
        #[arg(long, value_parser = parse_receipt)]
        wait: Option<ReceiptState>,
        /// How long --wait waits (e.g. 30s, 2m; at most 2m).
        #[arg(long, default_value = "30s", value_parser = parse_wait)]
        timeout: Duration,
    },
    /// What we sent, with each message's state: queued, sent, delivered or read (by the
    /// peer's signed receipt), failed with the reason.
    Sent {
        /// Only this peer.
        peer: Option<String>,
        /// How many of the latest.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The agent's read: wait until a message arrives (woken by the relay's stream), print
    /// what is unread and mark it read (which sends `read` receipts).
    Wait {
        /// Only this peer.
        peer: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Give up after this long (e.g. 30s, 2m; at most 2m).
        #[arg(long, default_value = "30s", value_parser = parse_wait)]
        timeout: Duration,
        /// Print whole inbox lines (with signed bytes) under --json.
        #[arg(long)]
        full: bool,
    },
    /// Fetch, verify and store everything waiting; answer pairing messages; deliver the outbox.
    Pull,
    /// Show the inbox (one JSONL file per peer under WIRE_HOME/inbox).
    Tail {
        /// Only this peer.
        peer: Option<String>,
        /// How many of the latest events.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep going: pull every second and print new events.
        #[arg(long)]
        follow: bool,
        /// Only what the operator has not read (oldest first).
        #[arg(long, conflicts_with = "follow")]
        unread: bool,
        /// Mark what is shown read for the operator (implies --unread). Sends no receipts.
        #[arg(long, conflicts_with = "follow")]
        mark_read: bool,
    },
    /// Pair with a spoken code: prints a code to read aloud (or joins with --code), then
    /// both operators compare 6 digits. Nothing is pinned until both confirm.
    ///
    /// Both sides must use the same relay for the rendezvous (yours unless --relay).
    Pair {
        /// Join the pairing whose code the other operator read to you.
        #[arg(long)]
        code: Option<String>,
        #[command(flatten)]
        opts: PairOpts,
    },
    /// Start a code pairing as host; with --detach, return at once and confirm later.
    PairHost {
        /// Return after printing the code; drive it with `pair-list` / `pair-confirm`.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        opts: PairOpts,
    },
    /// Join a code pairing; with --detach, return at once and confirm later.
    PairJoin {
        /// The code the other operator read to you.
        code: String,
        /// Return at once; drive it with `pair-list` / `pair-confirm`.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        opts: PairOpts,
    },
    /// Code pairings with their state and, once known, the 6 digits to compare.
    PairList {
        /// Under --json, include the code's words and the digits (for the operator's eyes;
        /// agents never pass it).
        #[arg(long)]
        reveal: bool,
    },
    /// Confirm a code pairing with the digits shown on the OTHER screen (never your own).
    PairConfirm {
        /// The code (or its number).
        code: String,
        /// The 6 digits the other operator read from their screen.
        digits: String,
    },
    /// Cancel a code pairing (both sides abort; nothing is pinned).
    PairCancel {
        /// The code (or its number).
        code: String,
    },
    /// Rooms: end-to-end encrypted group channels (MLS) with paired peers on any relays:
    /// `create`, `add`, `send`, `tail`, `members`, `remove`, `leave`, `sync`.
    #[command(subcommand)]
    Room(cmd::room::RoomCommand),
    /// List your rooms: role, members, epoch.
    Rooms,
    /// Jobs: signed work contracts with a paired peer: `offer`, `accept`, `reject`,
    /// `counter`, `invoice`, `pay`, `progress`, `deliver`, `settle`, `dispute`, `cancel`,
    /// `list`, `show`.
    #[command(subcommand)]
    Job(cmd::job::JobCommand),
    /// What this agent can do, told to its paired peers (`wire job providers` on theirs).
    #[command(subcommand)]
    Capabilities(cmd::job::CapabilitiesCommand),
    /// Sessions: one identity per project on this machine (`new`, `list`, `current`, `bind`,
    /// `pair-all-local`).
    #[command(subcommand)]
    Session(cmd::session::SessionCommand),
    /// The sister sessions on this machine: `status`, `broadcast`, `role set`, `route`.
    #[command(subcommand)]
    Mesh(cmd::session::MeshCommand),
    /// The operator's dashboard in a browser: who we are, peers and conversations, pairing
    /// (invites with QR codes, code pairing with the digits, pending requests), rooms, jobs,
    /// this machine's sessions and the relay's figures, live. Serves 127.0.0.1 only and
    /// prints a one-time sign-in link; Ctrl-C stops it.
    Ui {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Open the link in the desktop's browser.
        #[arg(long)]
        open: bool,
        /// The relay whose `/metrics` the Relay view charts (default: our own relay).
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
    },
    /// Serve MCP on stdin/stdout for agent hosts (Claude Code, Cursor, ...): the wire_* tools,
    /// inbox resources with update notifications. Acts as the identity `wire whoami` shows.
    Mcp,
    /// Register `wire mcp` with agent hosts: Claude Code, Cursor, VS Code, Codex CLI, Gemini
    /// CLI, Windsurf and Zed (those installed). Without --apply, prints what it would do.
    ///
    /// Comments, key order and other servers are kept; the previous version of each file is
    /// kept beside it (`<file>.wire-backup`); `--remove` gives back the file as it was.
    Setup {
        /// Write the config files (a second run changes nothing).
        #[arg(long, conflicts_with = "remove")]
        apply: bool,
        /// Take the wire entry out of the config files.
        #[arg(long)]
        remove: bool,
        /// Show what would be written, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// This project's files (.mcp.json, .vscode/mcp.json, ...) instead of the user's:
        /// they name `wire` and pin no WIRE_HOME, so they can be committed.
        #[arg(long)]
        project: bool,
        /// Only these hosts (repeatable); a named host is written even if not detected.
        #[arg(long = "host", value_enum, value_name = "HOST")]
        hosts: Vec<setup::Host>,
    },
    /// Run the daemon (and with --local-relay a loopback relay) as user services: systemd,
    /// launchd or Task Scheduler.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// The background sync daemon: one per user, serving every registered WIRE_HOME.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Print shell completions (bash, zsh, fish, powershell, elvish) on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: `wire man > wire.1`.
    Man,
    /// Run a mailbox relay: stores and forwards sealed envelopes it cannot read.
    ///
    /// Prints where it listens (JSON with --json) on stdout and logs to stderr. Stops
    /// cleanly on SIGINT or SIGTERM, draining in-flight requests.
    RelayServer(cmd::relay_server::Args),
}

/// Options every code-pairing start shares.
#[derive(Debug, clap::Args)]
struct PairOpts {
    /// The relay holding the rendezvous (default: yours). Both sides must use the same one.
    #[arg(long)]
    relay: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = wire_core::duration::parse)]
    timeout: std::time::Duration,
    /// Under --json, include the code's words and the digits (for the operator's eyes;
    /// agents never pass it).
    #[arg(long)]
    reveal: bool,
}

#[derive(Debug, Subcommand)]
enum DaemonCommand {
    /// Start the daemon in the background (does nothing if one is running).
    Start {
        /// No desktop notifications.
        #[arg(long)]
        no_notify: bool,
    },
    /// Stop the running daemon.
    Stop,
    /// Whether it runs, its pid, and per identity: stream, cursor, last sync, outbox, refusals.
    Status,
    /// Run the daemon in the foreground (what `start` launches).
    Run {
        /// No desktop notifications.
        #[arg(long)]
        no_notify: bool,
    },
}

/// `wire send PEER -x` sends the text `-x`: in `send`, a word that starts with `-` and is
/// not one of its options is message text. The options are moved before a `--` so the
/// parser reads every other word as text (`wire send bob -x --json` stays JSON).
fn send_words_as_text(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const FLAGS: [&str; 4] = ["--json", "--queue", "-h", "--help"];
    const VALUED: [&str; 3] = ["--kind", "--wait", "--timeout"];
    let Some(at) = args.iter().skip(1).position(|a| a != "--json").map(|i| i + 1) else { return args };
    if args[at] != "send" {
        return args;
    }
    let (mut options, mut words) = (Vec::new(), Vec::new());
    let mut rest = args[at + 1..].iter();
    while let Some(a) = rest.next() {
        let text = a.to_string_lossy();
        if text == "--" {
            words.extend(rest.by_ref().cloned());
        } else if FLAGS.contains(&text.as_ref()) || VALUED.iter().any(|v| text.starts_with(&format!("{v}="))) {
            options.push(a.clone());
        } else if VALUED.contains(&text.as_ref()) {
            options.push(a.clone());
            options.extend(rest.next().cloned());
        } else {
            words.push(a.clone());
        }
    }
    if !words.iter().any(|w| w.to_string_lossy().starts_with('-') && w != "-") {
        return args;
    }
    let mut out = args[..=at].to_vec();
    out.extend(options);
    out.push("--".into());
    out.extend(words);
    out
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse_from(send_words_as_text(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // Used by the docs test: every command line quoted in AGENT.md and README.md must parse.
    if std::env::var_os("WIRE_PARSE_ONLY").is_some() {
        return std::process::ExitCode::SUCCESS;
    }
    let json = cli.json;
    let result = match wire_core::home::check_settings() {
        Err(e) => Err(e.into()),
        Ok(()) => run(cli.command, json),
    };
    report(result, cli.json)
}

fn run(command: Command, json: bool) -> anyhow::Result<()> {
    use cmd::agent;
    match command {
        Command::Demo { keep } => cmd::demo::run(keep, json),
        Command::Ui { port, open, relay } => ui::run(port, open, relay, json),
        Command::Init { relay } => agent::init(relay.as_deref(), &[], &[], json),
        Command::Up { reregister: true, .. } => agent::reregister(json),
        Command::Up { relay, also, mailboxes, .. } => {
            agent::init(Some(relay.as_deref().unwrap_or_default()), &also, &mailboxes, json)
        }
        Command::Whoami => agent::whoami(json),
        Command::Whois { target } => agent::whois(&target, json),
        Command::Peers => agent::peers(json),
        Command::Status => agent::status(json),
        Command::Invite { uses, ttl } => agent::invite(uses, ttl, json),
        Command::Rotate => agent::rotate(json),
        Command::Revoke { export, publish } => agent::revoke(export.as_deref(), publish.as_deref(), json),
        Command::Accept { target } => agent::accept(&target, json),
        Command::Reject { target } => agent::reject(&target, json),
        Command::Dial { handle, note } => agent::dial(&handle, note, json),
        Command::Pending => agent::pending(json),
        Command::Verify { peer, fingerprint: Some(fingerprint), .. } => agent::verify(&peer, &fingerprint, json),
        Command::Verify { peer: file, fingerprint: None, did } => {
            cmd::operator::verify_file(&file, did.as_deref(), json)
        }
        Command::Forget { peer } => agent::forget(&peer, json),
        Command::Ping { peer, timeout } => cmd::operator::ping(&peer, timeout, json),
        Command::Doctor => cmd::doctor::doctor(json),
        Command::Block { target } => cmd::operator::block(&target, json),
        Command::Prune { before } => cmd::operator::prune(before, json),
        Command::Move { relay } => cmd::agent::move_to(&relay, json),
        Command::Unblock { target } => cmd::operator::unblock(&target, json),
        Command::Blocked => cmd::operator::blocked(json),
        Command::Send { peer, body, kind, queue, wait, timeout } => {
            let (kind, body) = agent::kind_and_body(kind, body);
            agent::send(&peer, &kind, &body, queue, wait, timeout, json)
        }
        Command::Sent { peer, limit } => agent::sent(peer.as_deref(), limit, json),
        Command::Wait { peer, limit, timeout, full } => agent::wait(peer.as_deref(), limit, timeout, full, json),
        Command::Pull => agent::pull(json),
        Command::Tail { peer, limit, follow, unread, mark_read } => {
            agent::tail(peer.as_deref(), limit, follow, unread, mark_read, json)
        }
        Command::Pair { code, opts } => {
            cmd::pair::start(code.as_deref(), opts.relay.as_deref(), opts.timeout, false, opts.reveal, json)
        }
        Command::PairHost { detach, opts } => {
            cmd::pair::start(None, opts.relay.as_deref(), opts.timeout, detach, opts.reveal, json)
        }
        Command::PairJoin { code, detach, opts } => {
            cmd::pair::start(Some(&code), opts.relay.as_deref(), opts.timeout, detach, opts.reveal, json)
        }
        Command::PairList { reveal } => cmd::pair::list(reveal, json),
        Command::PairConfirm { code, digits } => cmd::pair::confirm(&code, &digits, json),
        Command::PairCancel { code } => cmd::pair::cancel(&code, json),
        Command::Mcp => cmd::mcp::serve(),
        Command::Setup { apply, remove, dry_run, project, hosts } => {
            setup::run(setup::Request { apply, dry_run, remove, project, hosts }, json)
        }
        Command::Service(c) => service::run(c, json),
        Command::Room(c) => cmd::room::run(c, json),
        Command::Rooms => cmd::room::list(json),
        Command::Job(c) => cmd::job::run(c, json),
        Command::Capabilities(c) => cmd::job::capabilities(c, json),
        Command::Session(c) => cmd::session::session(c, json),
        Command::Mesh(c) => cmd::session::mesh(c, json),
        Command::Daemon(DaemonCommand::Start { no_notify }) => daemon::start(no_notify, json),
        Command::Daemon(DaemonCommand::Stop) => daemon::stop(json),
        Command::Daemon(DaemonCommand::Status) => daemon::status(json),
        Command::Daemon(DaemonCommand::Run { no_notify }) => daemon::run(no_notify),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "wire", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use std::io::Write;
            std::io::stdout().write_all(man_page()?.as_bytes()).map_err(anyhow::Error::from)
        }
        Command::RelayServer(args) => cmd::relay_server::run(args, json),
    }
}

/// One man page for the whole command: every subcommand is a section of it (there are no
/// `wire-<command>(1)` pages to point at), and `code` in help text is set in bold.
fn man_page() -> anyhow::Result<String> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    fn section(cmd: &clap::Command, path: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            let name = format!("{path} {}", sub.get_name());
            let man = clap_mangen::Man::new(sub.clone().bin_name(&name));
            writeln!(out, ".SS {}", name.replace('-', "\\-"))?;
            let mut part = Vec::new();
            man.render_synopsis_section(&mut part)?;
            man.render_description_section(&mut part)?;
            man.render_options_section(&mut part)?;
            // Sub-headings inside a section read as paragraphs.
            let text =
                String::from_utf8_lossy(&part).replace(".SH SYNOPSIS\n", "").replace(".SH DESCRIPTION\n", ".PP\n");
            out.extend_from_slice(text.replace(".SH OPTIONS\n", ".PP\nOptions:\n").as_bytes());
            section(sub, &name, out)?;
        }
        Ok(())
    }
    use std::io::Write;
    section(&cmd, "wire", &mut out)?;
    man.render_version_section(&mut out)?;
    let text = String::from_utf8(out)?;
    // `code` -> bold, pair by pair; a lone backtick stays.
    let mut bold = String::with_capacity(text.len());
    let mut parts = text.split('`').peekable();
    let mut inside = false;
    while let Some(part) = parts.next() {
        bold.push_str(part);
        if parts.peek().is_some() {
            bold.push_str(if inside { "\\fR" } else { "\\fB" });
            inside = !inside;
        }
    }
    Ok(bold)
}

fn report(result: anyhow::Result<()>, json: bool) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<output::Findings>().is_some() => std::process::ExitCode::FAILURE,
        Err(e) if e.downcast_ref::<output::Usage>().is_some() => {
            // A command line that parsed but says something impossible: like clap's refusals.
            if json {
                let error = serde_json::json!({
                    "code": "usage",
                    "message": e.to_string(),
                    "next": { "step": NextStep::FixArgument, "command": NextStep::FixArgument.command() },
                });
                println!("{}", serde_json::json!({ "error": error }));
            } else {
                eprintln!("{} {e}", output::error_label());
            }
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            // The code and next step of the innermost error of ours; the message keeps the
            // whole chain of context.
            let problem = e.chain().map(Problem::of).find(|p| p.code != "failed");
            let code = problem.as_ref().map_or("failed", |p| p.code);
            let next = problem.and_then(|p| p.next);
            if json {
                let mut error = serde_json::json!({ "code": code, "message": format!("{e:#}") });
                if let Some(step) = next {
                    error["next"] = serde_json::json!({ "step": step, "command": step.command() });
                }
                println!("{}", serde_json::json!({ "error": error }));
            } else {
                eprintln!("{} {e:#}", output::error_label());
                if let Some(step) = next.filter(|s| !format!("{e:#}").contains(s.command())) {
                    eprintln!("next: {}", step.command());
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// A command line clap refused. With `--json` anywhere on it, the refusal is JSON on stdout
/// like every other error (code `usage`); help and version requests print as usual.
fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args().any(|a| a == "--json");
    if !json
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        e.exit();
    }
    let message = e.render().to_string();
    let message: Vec<&str> = message
        .trim()
        .trim_start_matches("error: ")
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    let error = serde_json::json!({
        "code": "usage",
        "message": message,
        "next": { "step": NextStep::FixArgument, "command": NextStep::FixArgument.command() },
    });
    println!("{}", serde_json::json!({ "error": error }));
    std::process::ExitCode::from(2)
}
