//! `wire job ...`: signed work contracts with a paired peer (docs/PROTOCOL.md 15). Each
//! command sends one step; the state is derived from both sides' signed steps.

use clap::Subcommand;
use serde_json::Value;
use wire_core::endpoint::JobView;
use wire_core::proto::job::{Step, Terms};

use super::agent::{open, runtime};
use crate::output::{self, face};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Offer a job to a paired peer.
    Offer {
        /// The provider (nickname, `nick@relay` or DID).
        peer: String,
        /// The kind of task (what the provider's capability calls it).
        #[arg(long)]
        task: String,
        /// The input (text).
        #[arg(long, default_value = "")]
        input: String,
        /// A price: a decimal amount (needs --currency).
        #[arg(long, requires = "currency")]
        price: Option<String>,
        /// The price's currency (ISO 4217 or a registered code).
        #[arg(long, requires = "price")]
        currency: Option<String>,
        /// How long the offer stands (e.g. 30m, 24h).
        #[arg(long, default_value = "24h", value_parser = wire_core::duration::parse)]
        expires: std::time::Duration,
    },
    /// Every job with every peer.
    List,
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
    /// End the job before delivery (either side).
    Cancel {
        /// The job.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

fn terms(price: Option<String>, currency: Option<String>) -> Option<Terms> {
    Some(Terms { amount: price?, currency: currency? })
}

/// `wire job ...`.
pub fn run(command: JobCommand, json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = runtime()?;
    let (id, step) = match command {
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
        JobCommand::Show { id } => {
            let job = ep.job_show(&id)?;
            if json {
                output::json(&job);
            } else {
                show(&job);
            }
            return Ok(());
        }
        JobCommand::Offer { peer, task, input, price, currency, expires } => {
            let report =
                rt.block_on(ep.job_offer(&peer, &task, Value::String(input), terms(price, currency), expires))?;
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
