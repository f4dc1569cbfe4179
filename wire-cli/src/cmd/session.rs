//! `wire session ...` (one identity per project on this machine) and `wire mesh ...` (the
//! sister sessions talking through the local relay).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use wire_core::client::{Reach, RelayUrl};
use wire_core::endpoint::{self, BroadcastVerdict, Delivery, Endpoint};
use wire_core::session::Sessions;

use super::agent::{chosen, open, runtime};
use crate::output::{self, face};

/// `wire session ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// Make a session (its own identity) for this project and bind the current directory to
    /// it. Idempotent. The relay defaults to the local one (`wire service install
    /// --local-relay`, or `wire relay-server --local-only`).
    New {
        /// Session name [default: the current directory's name].
        name: Option<String>,
        /// Relay address.
        #[arg(long, env = "WIRE_RELAY", default_value = "127.0.0.1:8771")]
        relay: String,
        /// Only this machine: the relay must be loopback, and no handle is claimed (nobody
        /// can dial this session).
        #[arg(long)]
        local_only: bool,
        /// The local relay's Unix socket: sister sessions reach this one through it first,
        /// and over loopback when it is gone [default: the socket `wire service install
        /// --local-relay` runs, when it exists].
        #[arg(long, value_name = "PATH")]
        with_uds: Option<PathBuf>,
        /// Another address of the same relay (a LAN address, a public name) for the card;
        /// peers use the closest that answers. Repeatable.
        #[arg(long, value_name = "ADDR")]
        also: Vec<String>,
        /// Do not bind the current directory.
        #[arg(long)]
        no_bind: bool,
    },
    /// Every session of this OS user: name, home, bound directories, role.
    List,
    /// Which identity commands here act as, and why.
    Current,
    /// Bind the current directory (and everything below it) to a session.
    Bind {
        /// Session name.
        name: String,
    },
    /// Pair every session with every other (tier LOCAL: the filesystem is the trust
    /// anchor). Idempotent.
    PairAllLocal,
}

/// `wire mesh ...`.
#[derive(Debug, clap::Subcommand)]
pub enum MeshCommand {
    /// Every session: role, who it is paired with, when it was last heard from.
    Status {
        /// Call a session silent after this long without a message to any sister.
        #[arg(long, default_value = "1h", value_parser = wire_core::duration::parse)]
        silent_after: Duration,
    },
    /// Send a message to every paired sister session (each gets its own verdict).
    Broadcast {
        /// The message.
        body: String,
        /// message, claim, decision, question, ack or heartbeat.
        #[arg(long, default_value = "message")]
        kind: String,
    },
    /// This session's role, used by `wire mesh route`.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Send a message to the sister sessions with a role.
    Route {
        /// The role (e.g. reviewer).
        role: String,
        /// The message.
        body: String,
        /// message, claim, decision, question, ack or heartbeat.
        #[arg(long, default_value = "message")]
        kind: String,
    },
}

/// `wire mesh role ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RoleCommand {
    /// Set this session's role.
    Set {
        /// 1-32 lowercase letters, digits, `-` or `_`.
        role: String,
    },
    /// Clear this session's role.
    Clear,
}

fn cwd() -> anyhow::Result<PathBuf> {
    std::env::current_dir().context("reading the current directory")
}

/// Runs a `wire session` command.
pub fn session(command: SessionCommand, json: bool) -> anyhow::Result<()> {
    let sessions = Sessions::from_env()?;
    match command {
        SessionCommand::New { name, relay, local_only, with_uds, also, no_bind } => {
            new(&sessions, NewArgs { name, relay, local_only, uds: with_uds, also, no_bind }, json)
        }
        SessionCommand::List => {
            let list = sessions.list()?;
            if json {
                output::json(&list);
            } else if list.is_empty() {
                println!("no sessions yet; `wire session new` makes one for the current directory");
            } else {
                for s in &list {
                    let role = s.role.as_deref().map(|r| format!(" role={r}")).unwrap_or_default();
                    let state = if s.initialized { "" } else { " (not set up: run `wire session new` again)" };
                    println!("{}{role}{state}", s.name);
                    println!("  home   {}", s.home.display());
                    for d in &s.bound {
                        println!("  bound  {}", d.display());
                    }
                }
            }
            Ok(())
        }
        SessionCommand::Current => {
            let c = chosen()?;
            let v = json!({
                "session": c.session,
                "home": c.home.root(),
                "chosen_by": c.rule,
                "initialized": Endpoint::open(c.home.clone()).is_ok(),
            });
            if json {
                output::json(&v);
            } else {
                match &c.session {
                    Some(name) => println!("{name} (chosen by {})", c.rule.describe()),
                    None => println!("no session: {} (chosen by {})", c.home.root().display(), c.rule.describe()),
                }
            }
            Ok(())
        }
        SessionCommand::Bind { name } => {
            let dir = sessions.bind(&name, &cwd()?)?;
            if json {
                output::json(&json!({ "session": name, "bound": dir }));
            } else {
                println!("{} is bound to session {name}", dir.display());
            }
            Ok(())
        }
        SessionCommand::PairAllLocal => pair_all_local(&sessions, json),
    }
}

struct NewArgs {
    name: Option<String>,
    relay: String,
    local_only: bool,
    uds: Option<PathBuf>,
    also: Vec<String>,
    no_bind: bool,
}

fn new(sessions: &Sessions, args: NewArgs, json: bool) -> anyhow::Result<()> {
    let NewArgs { name, relay, local_only, uds, also, no_bind } = args;
    let relay = relay.as_str();
    let cwd = cwd()?;
    let name = match name {
        Some(n) => n,
        None => cwd
            .file_name()
            .map(|n| n.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect())
            .filter(|n: &String| !n.is_empty())
            .context("the current directory has no name; give the session one: `wire session new NAME`")?,
    };
    let url = RelayUrl::parse(relay)?;
    if local_only && url.reach() > Reach::Loopback {
        bail!("--local-only needs a loopback relay (e.g. 127.0.0.1:8771), not {url}");
    }
    if let Some(path) = &uds
        && !path.is_absolute()
    {
        bail!("--with-uds needs an absolute path, not {}", path.display());
    }
    // The service-run local relay's socket, when this session lives on a loopback relay.
    let uds = uds.or_else(|| {
        let default = wire_core::session::local_relay_socket()?;
        let is_socket = std::os::unix::fs::FileTypeExt::is_socket(&std::fs::metadata(&default).ok()?.file_type());
        (url.reach() == Reach::Loopback && is_socket).then_some(default)
    });
    for a in &also {
        if local_only && RelayUrl::parse(a)?.reach() > Reach::Loopback {
            bail!("--local-only sessions list no addresses beyond this machine; drop --also {a}");
        }
    }
    let also: Vec<String> = uds.iter().map(|p| format!("unix:{}", p.display())).chain(also).collect();
    let (home, created) = sessions.create(&name, uds.clone(), endpoint::now())?;
    let report = match runtime()?.block_on(endpoint::init_with(&home, relay, &also, !local_only)) {
        Ok(report) => report,
        Err(e) => {
            // Bad input changes nothing: a new session that never got a mailbox is removed (its
            // fresh keys were never shown to anyone).
            if created && home.load::<wire_core::home::Account>().ok().flatten().is_none() {
                let _ = std::fs::remove_dir_all(home.root());
            }
            return Err(anyhow::Error::from(e).context(format!(
                "setting up session {name} on {url} (is the local relay running? `wire service install --local-relay`)"
            )));
        }
    };
    if let Err(e) = crate::daemon::register(home.root()) {
        eprintln!("note: could not register this session with the daemon: {e:#}");
    }
    let bound = if no_bind { None } else { Some(sessions.bind(&name, &cwd)?) };
    if json {
        output::json(&json!({
            "session": name,
            "created": created || report.created,
            "home": home.root(),
            "bound": bound,
            "identity": report,
        }));
        return Ok(());
    }
    let verb = if created || report.created { "is ready" } else { "already exists" };
    println!("session {name} {verb}: {}", face(&report.face));
    println!("  home   {}", home.root().display());
    println!("  relay  {}{}", report.relay, uds.map(|p| format!(" (and unix:{})", p.display())).unwrap_or_default());
    if let Some(dir) = bound {
        println!("  bound  {} (commands run there act as {name})", dir.display());
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    eprintln!("next: `wire session pair-all-local` to pair it with the other sessions here");
    Ok(())
}

fn pair_all_local(sessions: &Sessions, json: bool) -> anyhow::Result<()> {
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    for name in sessions.names()? {
        match Endpoint::open(sessions.home(&name)?) {
            Ok(ep) => ready.push((name, ep)),
            Err(_) => skipped.push(name),
        }
    }
    let rt = runtime()?;
    let mut made = Vec::new();
    let mut already = 0usize;
    for i in 0..ready.len() {
        for j in i + 1..ready.len() {
            let (a, b) = (&ready[i], &ready[j]);
            let new = rt
                .block_on(endpoint::pair_local(&a.1, &b.1))
                .with_context(|| format!("pairing sessions {} and {}", a.0, b.0))?;
            if new {
                made.push(json!([a.0, b.0]));
                if !json {
                    println!("paired {} and {} (LOCAL)", a.0, b.0);
                }
            } else {
                already += 1;
            }
        }
    }
    if json {
        output::json(
            &json!({ "sessions": ready.len(), "paired": made, "already_paired": already, "skipped": skipped }),
        );
    } else {
        println!("{} session(s): {} pair(s) made, {already} already paired", ready.len(), made.len());
        if !skipped.is_empty() {
            eprintln!("skipped (not set up): {}; run `wire session new NAME` for each", skipped.join(", "));
        }
    }
    Ok(())
}

/// Runs a `wire mesh` command.
pub fn mesh(command: MeshCommand, json: bool) -> anyhow::Result<()> {
    match command {
        MeshCommand::Status { silent_after } => {
            let members = endpoint::mesh_status(&Sessions::from_env()?, silent_after)?;
            if json {
                output::json(&members);
                return Ok(());
            }
            if members.is_empty() {
                println!("no sessions; `wire session new` makes one");
            }
            for m in &members {
                let who = m.face.as_ref().map(face).unwrap_or_else(|| "(not set up)".into());
                let role = m.role.as_deref().map(|r| format!(" role={r}")).unwrap_or_default();
                let heard = match m.last_heard {
                    Some(t) => format!("last heard {}", output::when(t)),
                    None if m.new => "new, nothing heard yet".into(),
                    None => "never heard".into(),
                };
                let silent = if m.silent { " SILENT" } else { "" };
                println!("{} {who}{role}: {heard}{silent}", m.session);
                if !m.paired_with.is_empty() {
                    println!("  paired with      {}", m.paired_with.join(", "));
                }
                if !m.not_paired_with.is_empty() {
                    println!("  not paired with  {} (`wire session pair-all-local`)", m.not_paired_with.join(", "));
                }
            }
            Ok(())
        }
        MeshCommand::Broadcast { body, kind } => {
            let ep = open()?;
            let out = runtime()?.block_on(ep.broadcast(&kind, Value::String(body), None))?;
            report(out, "no sister sessions are paired with this one; run `wire session pair-all-local`", json)
        }
        MeshCommand::Route { role, body, kind } => {
            let ep = open()?;
            let targets = endpoint::sessions_with_role(&Sessions::from_env()?, &role)?;
            let out = runtime()?.block_on(ep.broadcast(&kind, Value::String(body), Some(&targets)))?;
            report(
                out,
                &format!("no paired sister session has the role `{role}` (`wire mesh status` shows roles)"),
                json,
            )
        }
        MeshCommand::Role(RoleCommand::Set { role }) => role_changed(open()?.set_role(Some(&role))?, json),
        MeshCommand::Role(RoleCommand::Clear) => role_changed(open()?.set_role(None)?, json),
    }
}

fn role_changed(role: Option<String>, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(&json!({ "role": role }));
    } else {
        match role {
            Some(r) => println!("role set to {r}"),
            None => println!("role cleared"),
        }
    }
    Ok(())
}

fn report(out: Vec<Delivery>, none: &str, json: bool) -> anyhow::Result<()> {
    if out.is_empty() {
        bail!("{none}");
    }
    let failed = out.iter().filter(|d| d.verdict != BroadcastVerdict::Sent).count();
    if json {
        output::json(&json!({ "deliveries": out, "sent": out.len() - failed, "failed": failed }));
    } else {
        for d in &out {
            match &d.error {
                None => println!("sent to {} via {}", face(&d.to), d.via.as_deref().unwrap_or("?")),
                Some(e) => println!("FAILED for {}: {e}", face(&d.to)),
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} sends failed", out.len());
    }
    Ok(())
}
