//! `wire job ...`: signed work contracts with a paired peer (docs/PROTOCOL.md 15). Each
//! command sends one step; the state is derived from both sides' signed steps.

use clap::Subcommand;
use serde_json::Value;
use wire_core::endpoint::{BudgetScope, CallView, JobView};
use wire_core::proto::job::{Step, Terms};

use super::agent::{open, runtime};
use crate::output::{self, face};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Offer a job to a paired peer, or call for offers in a room (its members bid with
    /// `wire job bid`; you award one with `wire job award`).
    Offer {
        /// The provider (nickname, `nick@relay` or DID), or a room you are in.
        peer: String,
        /// The kind of task (what the provider's capability calls it).
        #[arg(long)]
        task: String,
        /// The input (text).
        #[arg(long, default_value = "")]
        input: String,
        #[command(flatten)]
        price: Price,
        /// How long the offer stands (e.g. 30m, 24h).
        #[arg(long, default_value = "24h", value_parser = wire_core::duration::parse)]
        expires: std::time::Duration,
    },
    /// Every job with every peer.
    List,
    /// The calls for offers in your rooms (open ones; --all for every one kept).
    Calls {
        /// Also those expired or awarded.
        #[arg(long)]
        all: bool,
    },
    /// Answer another member's call for offers in its room.
    Bid {
        /// The call id (or its first 8 or more hex digits).
        call: String,
        #[command(flatten)]
        price: Price,
        /// A note for the customer.
        #[arg(long)]
        note: Option<String>,
    },
    /// Choose a bid on your call: the job is offered 1:1 to the bidder (after pairing
    /// through its bid's invite, when you are not paired yet).
    Award {
        /// The call id.
        call: String,
        /// The bidder (nickname or DID).
        bidder: String,
    },
    /// What peers (or a room's calls) may ask of you: offers past it are rejected at once,
    /// with the reason (the other side sees it). Without --peer or --room it is the default
    /// for every peer; a room's budget applies on top, to offers awarding its calls.
    Budget {
        /// Only this peer (it replaces the default for it).
        #[arg(long, conflicts_with = "room")]
        peer: Option<String>,
        /// Offers from this room's calls, every peer's counted together.
        #[arg(long)]
        room: Option<String>,
        /// Most jobs open at once (default 10 per peer).
        #[arg(long)]
        max_open: Option<u32>,
        /// Most offers in an hour (default 30 per peer).
        #[arg(long)]
        max_offers_per_hour: Option<u32>,
        /// The largest price of one job (needs --currency; other currencies are refused).
        #[arg(long, requires = "currency")]
        max_amount: Option<String>,
        /// The most the jobs offered in the last 24 hours may add up to (needs --currency).
        #[arg(long, requires = "currency")]
        max_amount_per_day: Option<String>,
        /// The currency of the amounts.
        #[arg(long)]
        currency: Option<String>,
    },
    /// The paired peers whose capability card lists a task (`wire capabilities set` on their
    /// side), available ones first.
    Providers {
        /// The task kind.
        task: String,
    },
    /// One job: its state and every signed step.
    Show {
        /// The job id (or its first 8 or more hex digits).
        id: String,
    },
    /// Take the offer (or the last counter).
    Accept {
        /// The job.
        id: String,
    },
    /// Decline the offer.
    Reject {
        /// The job.
        id: String,
        /// Why (the other side sees it).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Propose other terms; the other side answers.
    Counter {
        /// The job.
        id: String,
        /// A decimal amount.
        #[arg(long)]
        price: String,
        /// Its currency.
        #[arg(long)]
        currency: String,
    },
    /// (provider) Ask to be paid first: an invoice, opaque to wire.
    Invoice {
        /// The job.
        id: String,
        /// The invoice.
        invoice: String,
    },
    /// (customer) Say you paid: a reference, opaque to wire.
    Pay {
        /// The job.
        id: String,
        /// The payment reference.
        reference: String,
    },
    /// (provider) Report progress.
    Progress {
        /// The job.
        id: String,
        /// What you are doing.
        status: String,
        /// How far, 0 to 100.
        #[arg(long)]
        percent: Option<u8>,
    },
    /// (provider) Deliver the result.
    Deliver {
        /// The job.
        id: String,
        /// The result (text).
        result: String,
    },
    /// (customer) Accept the result: the job is done.
    Settle {
        /// The job.
        id: String,
    },
    /// (customer) Dispute the result.
    Dispute {
        /// The job.
        id: String,
        /// Why.
        reason: String,
    },
    /// The provider loop: accept offers of one task from the peers you name, run a command
    /// for each (input on stdin, in a scrubbed environment) and deliver its output.
    Serve(Serve),
    /// End the job before delivery (either side).
    Cancel {
        /// The job.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `wire capabilities ...`.
#[derive(Debug, Subcommand)]
pub enum CapabilitiesCommand {
    /// Say what this agent can do: sent to every paired peer that reads jobs (queued for
    /// those offline); it replaces what you said before.
    Set {
        /// A task kind you take (repeatable).
        #[arg(long = "task", required = true)]
        tasks: Vec<String>,
        #[command(flatten)]
        price: Price,
        /// A note (limits, what the input should be).
        #[arg(long)]
        note: Option<String>,
        /// Say you take no jobs now (the tasks stay listed).
        #[arg(long)]
        unavailable: bool,
    },
}

/// `wire capabilities set`.
pub fn capabilities(command: CapabilitiesCommand, json: bool) -> anyhow::Result<()> {
    let CapabilitiesCommand::Set { tasks, price, note, unavailable } = command;
    let terms = price.terms();
    let tasks = tasks
        .into_iter()
        .map(|task| wire_core::proto::job::Capability { task, terms: terms.clone(), note: note.clone() })
        .collect();
    let report = runtime()?.block_on(open()?.capabilities_set(!unavailable, tasks))?;
    if json {
        output::json(&report);
    } else {
        let told: Vec<String> = report.told.iter().map(face).collect();
        println!(
            "capabilities sent to {} peer(s){}",
            told.len(),
            if told.is_empty() { String::new() } else { format!(": {}", told.join(", ")) }
        );
        if !report.rooms.is_empty() {
            println!(
                "and posted in {}",
                report.rooms.iter().map(|r| output::untrusted(r)).collect::<Vec<_>>().join(", ")
            );
        }
        for (room, why) in &report.failed_rooms {
            eprintln!("not posted in {}: {why}", output::untrusted(room));
        }
    }
    Ok(())
}

/// `--price A --currency C`, both or neither.
#[derive(Debug, clap::Args)]
pub struct Price {
    /// A price: a decimal amount (needs --currency).
    #[arg(long = "price", value_name = "PRICE", requires = "currency")]
    amount: Option<String>,
    /// The price's currency (ISO 4217 or a registered code).
    #[arg(long, requires = "amount")]
    currency: Option<String>,
}

impl Price {
    fn terms(self) -> Option<Terms> {
        terms(self.amount, self.currency)
    }
}

fn terms(price: Option<String>, currency: Option<String>) -> Option<Terms> {
    Some(Terms { amount: price?, currency: currency? })
}

/// `wire job ...`.
pub fn run(command: JobCommand, json: bool) -> anyhow::Result<()> {
    if let JobCommand::Serve(args) = command {
        return serve(args, json);
    }
    let ep = open()?;
    let rt = runtime()?;
    let (id, step) = match command {
        JobCommand::Serve(_) => unreachable!("served above"),
        JobCommand::List => {
            let jobs = ep.jobs()?;
            if json {
                output::json(&jobs);
            } else if jobs.is_empty() {
                eprintln!("no jobs yet: `wire job offer PEER --task KIND`");
            } else {
                let rows: Vec<Vec<String>> = jobs.iter().map(row).collect();
                output::table(&rows).iter().for_each(|l| println!("{l}"));
            }
            return Ok(());
        }
        JobCommand::Budget { peer, room, max_open, max_offers_per_hour, max_amount, max_amount_per_day, currency } => {
            if currency.is_some() && max_amount.is_none() && max_amount_per_day.is_none() {
                anyhow::bail!("--currency goes with --max-amount or --max-amount-per-day");
            }
            let budget = wire_core::endpoint::Budget {
                max_open,
                max_offers_per_hour,
                max_amount: terms(max_amount, currency.clone()),
                max_amount_per_day: terms(max_amount_per_day, currency),
            };
            let scope = match (&peer, &room) {
                (Some(p), _) => BudgetScope::Peer(p),
                (None, Some(r)) => BudgetScope::Room(r),
                (None, None) => BudgetScope::Default,
            };
            let all = ep.budget_set(scope, budget)?;
            if json {
                output::json(&all);
            } else {
                let whom = match (peer, room) {
                    (Some(p), _) => format!(" for {p}"),
                    (None, Some(r)) => format!(" for room {r}"),
                    (None, None) => " (default)".into(),
                };
                println!("budget set{whom}");
            }
            return Ok(());
        }
        JobCommand::Calls { all } => {
            let calls = ep.calls(all)?;
            if json {
                output::json(&calls);
            } else if calls.is_empty() {
                eprintln!("no open calls in your rooms (`wire job offer ROOM --task KIND` makes one)");
            } else {
                for c in &calls {
                    show_call(c);
                }
            }
            return Ok(());
        }
        JobCommand::Bid { call, price, note } => {
            let view = rt.block_on(ep.job_bid(&call, price.terms(), note))?;
            if json {
                output::json(&view);
            } else {
                println!("bid sent on call {} in {}", &view.id[..8], output::untrusted(&view.room));
            }
            return Ok(());
        }
        JobCommand::Award { call, bidder } => {
            let view = rt.block_on(ep.job_award(&call, &bidder))?;
            if json {
                output::json(&view);
            } else if let Some(a) = &view.award {
                match &a.job {
                    Some(job) => println!("awarded to {}: job {} offered", face(&a.to), &job[..8]),
                    None => println!(
                        "awarded to {}: pairing through its invite; the job is offered once it answers",
                        face(&a.to)
                    ),
                }
            }
            return Ok(());
        }
        JobCommand::Providers { task } => {
            let found = ep.providers(&task)?;
            if json {
                output::json(&found);
            } else if found.is_empty() {
                eprintln!("no paired peer or room member says it does `{}`", output::untrusted(&task));
            } else {
                let rows: Vec<Vec<String>> = found
                    .iter()
                    .map(|p| {
                        let price = p
                            .terms
                            .as_ref()
                            .map(|t| format!("{} {}", output::untrusted(&t.amount), output::untrusted(&t.currency)))
                            .unwrap_or_default();
                        let state = if p.available { "available" } else { "unavailable" };
                        let note = p.note.as_deref().map(output::untrusted).unwrap_or_default();
                        let via = if p.paired {
                            "paired".to_owned()
                        } else {
                            let rooms: Vec<String> = p.rooms.iter().map(|r| output::untrusted(r)).collect();
                            format!("in {} (call there)", rooms.join(", "))
                        };
                        vec![face(&p.peer), state.to_owned(), via, price, note]
                    })
                    .collect();
                output::table(&rows).iter().for_each(|l| println!("{l}"));
            }
            return Ok(());
        }
        JobCommand::Show { id } => {
            let job = ep.job_show(&id)?;
            if json {
                output::json(&job);
            } else {
                show(&job);
            }
            return Ok(());
        }
        JobCommand::Offer { peer, task, input, price, expires } => {
            let terms = price.terms();
            let is_peer = ep.peers()?.iter().any(|p| p.face.nickname == peer || p.face.did == peer);
            let room = ep.rooms()?.into_iter().find(|r| r.name == peer || r.id == peer);
            if let (false, Some(room)) = (is_peer, room) {
                let call = rt.block_on(ep.job_call(&room.name, &task, Value::String(input), terms, expires))?;
                if json {
                    output::json(&call);
                } else {
                    println!(
                        "call {} posted in {}: members bid with `wire job bid {}`; `wire job calls` shows the bids",
                        &call.id[..8],
                        output::untrusted(&call.room),
                        &call.id[..8]
                    );
                }
                return Ok(());
            }
            let report = rt.block_on(ep.job_offer(&peer, &task, Value::String(input), terms, expires))?;
            say(&report, json);
            return Ok(());
        }
        JobCommand::Accept { id } => (id, Step::Accept),
        JobCommand::Reject { id, reason } => (id, Step::Reject { reason }),
        JobCommand::Counter { id, price, currency } => (id, Step::Counter { terms: Terms { amount: price, currency } }),
        JobCommand::Invoice { id, invoice } => (id, Step::PaymentRequired { invoice }),
        JobCommand::Pay { id, reference } => (id, Step::Payment { reference }),
        JobCommand::Progress { id, status, percent } => (id, Step::Progress { status, percent, partial: None }),
        JobCommand::Deliver { id, result } => (id, Step::Deliver { result: Value::String(result) }),
        JobCommand::Settle { id } => (id, Step::Settle),
        JobCommand::Dispute { id, reason } => (id, Step::Dispute { reason }),
        JobCommand::Cancel { id, reason } => (id, Step::Cancel { reason }),
    };
    let report = rt.block_on(ep.job_step(&id, step))?;
    say(&report, json);
    Ok(())
}

fn say(report: &wire_core::endpoint::JobStepReport, json: bool) {
    if json {
        output::json(report);
    } else {
        println!("{} job {} ({}); it is {:?} now", report.verdict, &report.id, report.step, report.phase);
    }
}

fn show_call(c: &CallView) {
    let price =
        c.terms.as_ref().map(|t| format!(" for {} {}", output::untrusted(&t.amount), output::untrusted(&t.currency)));
    let state = match (&c.award, c.open) {
        (Some(a), _) => format!("awarded to {} ({})", face(&a.to), a.state),
        (None, true) => format!("open until {}", output::when(c.expires_at)),
        (None, false) => "expired".to_owned(),
    };
    println!(
        "call {} in {} by {}: `{}`{}; {state}",
        &c.id[..8],
        output::untrusted(&c.room),
        face(&c.from),
        output::untrusted(&c.task),
        price.unwrap_or_default()
    );
    for b in &c.bids {
        let price =
            b.terms.as_ref().map(|t| format!(" {} {}", output::untrusted(&t.amount), output::untrusted(&t.currency)));
        let note = b.note.as_deref().map(|n| format!(": {}", output::untrusted(n))).unwrap_or_default();
        let paired = if b.paired { "" } else { " (not paired)" };
        println!("  bid by {}{paired}{}{note}", face(&b.from), price.unwrap_or_default());
    }
}

fn row(j: &JobView) -> Vec<String> {
    vec![
        j.id[..8].to_owned(),
        face(&j.peer),
        format!("{:?}", j.role).to_lowercase(),
        format!("{:?}", j.phase).to_lowercase(),
        output::untrusted(&j.job.task),
    ]
}

fn show(j: &JobView) {
    println!("job {} with {} (you are the {:?})", j.id, face(&j.peer), j.role);
    println!("  task      {}", output::untrusted(&j.job.task));
    println!("  state     {:?}", j.phase);
    if let Some(t) = &j.job.terms {
        println!("  terms     {} {}", output::untrusted(&t.amount), output::untrusted(&t.currency));
    }
    if let Some(r) = &j.job.result {
        println!("  result    {}", output::untrusted_block(&r.as_str().map_or_else(|| r.to_string(), str::to_owned)));
    }
    for e in &j.events {
        println!("  {}  {}  {}  ({})", output::when(e.created_at), face(&e.from), e.step, e.fate);
    }
}

/// `wire job serve`: what the provider loop may do.
#[derive(Debug, clap::Args)]
pub struct Serve {
    /// The task kind served.
    #[arg(long)]
    pub task: String,
    /// The command that does it (run by `sh -c`): the job's input on its stdin, its stdout
    /// delivered, each stderr line sent as progress.
    #[arg(long)]
    pub run: String,
    /// A peer this is served for (repeatable; nobody else: their offers are rejected).
    #[arg(long = "peer", required_unless_present = "rooms")]
    pub peers: Vec<String>,
    /// A room whose calls for the task are bid on, and whose awarded offers are served,
    /// from any member (repeatable).
    #[arg(long = "room")]
    pub rooms: Vec<String>,
    /// Longest a run may take; past it its process group is killed and the job cancelled.
    #[arg(long, default_value = "5m", value_parser = wire_core::duration::parse)]
    pub timeout: std::time::Duration,
    /// Serve one job, then exit.
    #[arg(long)]
    pub once: bool,
}

/// Largest result delivered (bytes of stdout).
const MAX_OUTPUT: usize = 768 * 1024;
/// Most progress steps sent per run (stderr lines past it are dropped).
const MAX_PROGRESS: usize = 20;
/// Longest progress line (characters).
const MAX_LINE: usize = 200;

/// What a run gave.
enum Ran {
    Done(String),
    Failed(String),
}

/// Runs `cmd` with `input` on stdin in a scrubbed environment (no `WIRE_*`, no tokens: only
/// `PATH`), in its own process group; `progress` gets each stderr line; killed past `timeout`.
fn run_task(cmd: &str, input: &str, timeout: std::time::Duration, progress: &mut dyn FnMut(String)) -> Ran {
    use std::io::{BufRead, Read, Write};
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("sh");
    command.args(["-c", cmd]).env_clear().process_group(0);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Ran::Failed(format!("could not start the task: {e}")),
    };
    let pid = child.id();
    /// What the threads around the child report.
    enum Msg {
        Line(String),
        StderrDone,
        Output(Vec<u8>),
        Exit(Option<i32>),
    }
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_owned();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let (stderr, lines) = (child.stderr.take().expect("piped"), tx.clone());
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(Msg::Line(line)).is_err() {
                return;
            }
        }
        let _ = lines.send(Msg::StderrDone);
    });
    let (mut stdout, out) = (child.stdout.take().expect("piped"), tx.clone());
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout).take(MAX_OUTPUT as u64 + 1).read_to_end(&mut buf);
        let _ = out.send(Msg::Output(buf));
    });
    std::thread::spawn(move || {
        let code = child.wait().ok().and_then(|s| s.code());
        let _ = tx.send(Msg::Exit(code));
    });
    let deadline = std::time::Instant::now() + timeout;
    let (mut sent, mut code, mut output, mut stderr_done) = (0, None, None, false);
    // Until the process exited and both its outputs are read (a line written just before
    // the exit still counts).
    while code.is_none() || output.is_none() || !stderr_done {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(Msg::Line(line)) => {
                if sent < MAX_PROGRESS {
                    sent += 1;
                    progress(line.chars().take(MAX_LINE).collect());
                }
            }
            Ok(Msg::StderrDone) => stderr_done = true,
            Ok(Msg::Output(bytes)) => output = Some(bytes),
            Ok(Msg::Exit(c)) => code = Some(c),
            Err(_) => {
                // The whole group: a shell's children go too.
                let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
                return Ran::Failed(format!("the task ran over {}s and was killed", timeout.as_secs()));
            }
        }
    }
    let out = output.unwrap_or_default();
    match code.flatten() {
        Some(0) if out.len() > MAX_OUTPUT => Ran::Failed(format!("the result is over {MAX_OUTPUT} bytes")),
        Some(0) => Ran::Done(String::from_utf8_lossy(&out).into_owned()),
        Some(code) => Ran::Failed(format!("the task failed (exit {code})")),
        None => Ran::Failed("the task was killed by a signal".into()),
    }
}

/// `wire job serve`: accepts offers of `--task` from `--peer`s, runs `--run` for each and
/// delivers its output; rejects the same task from anyone else. Woken by the sync engine.
pub fn serve(args: Serve, json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = super::agent::engine_runtime()?;
    let peers = ep.peers()?;
    let mut allowed = Vec::new();
    for name in &args.peers {
        let found = peers.iter().find(|p| p.face.nickname == *name || p.face.did == *name);
        let Some(p) = found else { anyhow::bail!("`{name}` is not a paired peer (`wire peers`)") };
        allowed.push(p.face.did.clone());
    }
    let rooms = ep.rooms()?;
    let mut served_rooms = Vec::new();
    for name in &args.rooms {
        let Some(r) = rooms.iter().find(|r| r.name == *name || r.id == *name) else {
            anyhow::bail!("`{name}` is not a room you are in (`wire rooms`)")
        };
        served_rooms.push((r.id.clone(), r.name.clone()));
    }
    let me = ep.identity.did().to_string();
    let mut waker = rt.block_on(async {
        wire_core::sync::waker(ep.home.clone(), wire_core::sync::Options { drive_pairings: false })
    });
    if !json {
        eprintln!(
            "serving `{}` for {} peer(s) and {} room(s); Ctrl-C stops",
            output::untrusted(&args.task),
            allowed.len(),
            served_rooms.len()
        );
    }
    loop {
        // Open calls for the task in the rooms served: one bid each.
        for call in ep.calls(false)? {
            let ours = served_rooms.iter().any(|(_, n)| *n == call.room);
            if call.mine || !ours || call.task != args.task || call.bids.iter().any(|b| b.from.did == me) {
                continue;
            }
            match rt.block_on(ep.job_bid(&call.id, None, None)) {
                Ok(_) if json => output::json(&serde_json::json!({ "call": call.id, "verdict": "bid" })),
                Ok(_) => println!("call {} in {}: bid", &call.id[..8], output::untrusted(&call.room)),
                Err(e) => eprintln!("call {}: no bid: {e}", &call.id[..8]),
            }
        }
        for job in ep.jobs()? {
            let theirs = job.role == wire_core::proto::job::Party::Provider
                && job.phase == wire_core::proto::job::Phase::Offered
                && job.job.turn == wire_core::proto::job::Party::Provider
                && job.job.task == args.task;
            if !theirs {
                continue;
            }
            let from_room =
                job.job.call.as_ref().is_some_and(|c| served_rooms.iter().any(|(id, _)| id == c.room.as_str()));
            let verdict = if !allowed.contains(&job.peer.did) && !from_room {
                let reason = Some(format!("this agent does not serve `{}` for you", args.task));
                rt.block_on(ep.job_step(&job.id, Step::Reject { reason }))?;
                "rejected"
            } else {
                rt.block_on(ep.job_step(&job.id, Step::Accept))?;
                let input = job.job.input.as_str().map_or_else(|| job.job.input.to_string(), str::to_owned);
                let mut progress = |status: String| {
                    let step = Step::Progress { status, percent: None, partial: None };
                    let _ = rt.block_on(ep.job_step(&job.id, step));
                };
                match run_task(&args.run, &input, args.timeout, &mut progress) {
                    Ran::Done(result) => {
                        rt.block_on(ep.job_step(&job.id, Step::Deliver { result: Value::String(result) }))?;
                        "delivered"
                    }
                    Ran::Failed(why) => {
                        rt.block_on(ep.job_step(&job.id, Step::Cancel { reason: Some(why) }))?;
                        "cancelled"
                    }
                }
            };
            if json {
                output::json(&serde_json::json!({ "job": job.id, "peer": job.peer, "verdict": verdict }));
            } else {
                println!("job {} from {}: {verdict}", &job.id[..8], face(&job.peer));
            }
            if args.once && verdict != "rejected" {
                return Ok(());
            }
        }
        if rt.block_on(waker.wake.changed()).is_err() {
            return Ok(());
        }
    }
}
