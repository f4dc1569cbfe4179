//! Jobs: the pure state machine of a signed work contract between two agents (docs/PROTOCOL.md,
//! "Jobs"). No I/O and no clock: the caller verifies each event's signature and hands over
//! [`Entry`]s; [`derive()`] says what state the set of them is in.
//!
//! - A job starts with the customer's `offer` to one provider. Every later event names the
//!   hashes of the job events its signer had seen last (`prev`), so the events form a graph.
//! - An event is **valid** when its signer may sign that step in the state its own past (its
//!   ancestors) is in; one that breaks the rules is **refused** and never applied. An event
//!   whose past has not all arrived waits (**pending**).
//! - The state is a function of the *set* of valid events, whatever order they arrived in:
//!   they are put in one order (parents first; among events neither saw, by [`precedence`],
//!   then time, then hash) and folded, each applied if the state then allows it and passed
//!   over otherwise. So two steps that crossed are settled by a written rule: a `deliver`
//!   beats a `cancel` it did not see; a `cancel` beats an `accept`, a `counter` or a
//!   `progress` it did not see; a `reject` beats an `accept` (both the same side's); a
//!   `dispute` beats a `settle`.
//! - Expiry is judged on the signer's `created_at`: an `accept` signed after the offer's
//!   `expires_at` (plus the skew window) is refused; an offer nobody accepted reads as
//!   expired after that time ([`Job::phase_at`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::did::Did;
use super::time::UnixMillis;

/// SHA-256 of an event's signed document: how events name each other.
pub type Hash = [u8; 32];

/// How far a signer's clock may be ahead when expiry is judged (as for events, section 6).
pub const SKEW_MS: u64 = 5 * 60 * 1000;
/// Longest text field (task, status, reason, invoice, reference), in characters.
pub const MAX_TEXT: usize = 2_000;

/// The price of a job: a decimal amount in one currency (ISO 4217 or a registered code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// A decimal string: digits, at most one `.` (e.g. `12.50`).
    pub amount: String,
    /// `EUR`, `USD`, `sats`, ...
    pub currency: String,
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// The customer asks the provider for work.
    Offer {
        /// What kind of task (the provider's capability names it).
        task: String,
        /// The input (text or JSON).
        input: serde_json::Value,
        /// The price, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        terms: Option<Terms>,
        /// When the result is wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<UnixMillis>,
        /// After this the offer cannot be accepted.
        expires_at: UnixMillis,
        /// The room call for offers this offer awards, if any (the provider's budget for
        /// that room applies).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<CallRef>,
    },
    /// The side whose turn it is takes the offer (or the last counter).
    Accept,
    /// The side whose turn it is declines.
    Reject {
        /// Why (shown to the other side).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The side whose turn it is proposes other terms; the turn passes.
    Counter {
        /// The terms proposed.
        terms: Terms,
    },
    /// The provider asks to be paid before it works (an opaque invoice).
    PaymentRequired {
        /// The invoice, opaque to wire.
        invoice: String,
    },
    /// The customer says it paid (an opaque reference).
    Payment {
        /// The reference, opaque to wire.
        reference: String,
    },
    /// The provider reports progress.
    Progress {
        /// What it is doing.
        status: String,
        /// How far, 0 to 100.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<u8>,
        /// A partial result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partial: Option<String>,
    },
    /// The provider delivers the result.
    Deliver {
        /// The result (text or JSON).
        result: serde_json::Value,
    },
    /// The customer accepts the result: the job is done.
    Settle,
    /// The customer disputes the result.
    Dispute {
        /// Why.
        reason: String,
    },
    /// Either side ends the job before delivery.
    Cancel {
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Step {
    /// The step's name, as in `job_<name>`.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Offer { .. } => "offer",
            Step::Accept => "accept",
            Step::Reject { .. } => "reject",
            Step::Counter { .. } => "counter",
            Step::PaymentRequired { .. } => "payment_required",
            Step::Payment { .. } => "payment",
            Step::Progress { .. } => "progress",
            Step::Deliver { .. } => "deliver",
            Step::Settle => "settle",
            Step::Dispute { .. } => "dispute",
            Step::Cancel { .. } => "cancel",
        }
    }
}

/// Among events neither side saw of the other, the order they are applied in (lower
/// first): the written rule for steps that crossed.
pub fn precedence(step: &Step) -> u8 {
    match step {
        Step::Offer { .. } => 0,
        Step::Deliver { .. } => 1,
        Step::Cancel { .. } => 2,
        Step::Reject { .. } => 3,
        Step::Accept => 4,
        Step::Counter { .. } => 5,
        Step::PaymentRequired { .. } => 6,
        Step::Payment { .. } => 7,
        Step::Progress { .. } => 8,
        Step::Dispute { .. } => 9,
        Step::Settle => 10,
    }
}

/// One task an agent offers to do, as its capability card says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// The task kind.
    pub task: String,
    /// Its price, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Terms>,
    /// A note (limits, what the input should be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What an agent tells its peers it can do (the body of a `capabilities` control message,
/// signed with the event that carries it). The newest by `created_at` counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Format version (1).
    pub v: u64,
    /// Whose.
    pub did: Did,
    /// Whether it takes jobs now.
    pub available: bool,
    /// The tasks.
    pub tasks: Vec<Capability>,
    /// When set.
    pub created_at: UnixMillis,
}

impl Capabilities {
    /// Whether the fields are within bounds (at most 64 tasks; texts as for steps).
    pub fn check(&self) -> Result<(), &'static str> {
        let long = |t: &str| t.is_empty() || t.chars().count() > MAX_TEXT;
        let bad = self.v != 1
            || self.tasks.len() > 64
            || self.tasks.iter().any(|c| {
                long(&c.task) || c.note.as_deref().is_some_and(long) || c.terms.as_ref().is_some_and(|t| !terms_ok(t))
            });
        if bad { Err("a capability card out of bounds") } else { Ok(()) }
    }
}

/// Names a call for offers: the room it was made in and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRef {
    /// The room.
    pub room: Did,
    /// The call's id.
    #[serde(with = "super::b64::fixed")]
    pub id: [u8; 16],
}

/// A call for offers: a customer asks a room who will do a task (the body of a `job_call`
/// control message inside the room, signed with the event that carries it). Members answer
/// with a [`Bid`]; the customer awards one by an ordinary offer naming the call
/// ([`CallRef`]), and the job goes on 1:1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// Format version (1).
    pub v: u64,
    /// Random, drawn by the customer.
    #[serde(with = "super::b64::fixed")]
    pub id: [u8; 16],
    /// The task kind.
    pub task: String,
    /// The input.
    pub input: serde_json::Value,
    /// The price offered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Terms>,
    /// After this bids are no longer taken.
    pub expires_at: UnixMillis,
}

impl Call {
    /// Whether the fields are within bounds (as for an offer).
    pub fn check(&self) -> Result<(), &'static str> {
        let bad = self.v != 1
            || self.task.is_empty()
            || self.task.chars().count() > MAX_TEXT
            || self.terms.as_ref().is_some_and(|t| !terms_ok(t));
        if bad { Err("a call for offers out of bounds") } else { Ok(()) }
    }
}

/// A member's answer to a [`Call`] (the body of a `job_bid` control message in the room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bid {
    /// Format version (1).
    pub v: u64,
    /// The call answered.
    #[serde(with = "super::b64::fixed")]
    pub call: [u8; 16],
    /// The bidder's price, if it differs from the call's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Terms>,
    /// A note for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the bidder is not paired with the customer: a one-use pairing invite URL that
    /// only the customer's identity may redeem, so the job can go on 1:1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

impl Bid {
    /// Whether the fields are within bounds.
    pub fn check(&self) -> Result<(), &'static str> {
        let bad = self.v != 1
            || self.note.as_deref().is_some_and(|n| n.chars().count() > MAX_TEXT)
            || self.invite.as_deref().is_some_and(|u| u.len() > super::invite::MAX_URL_LEN)
            || self.terms.as_ref().is_some_and(|t| !terms_ok(t));
        if bad { Err("a bid out of bounds") } else { Ok(()) }
    }
}

/// A job event's content (the body of its wire event). (Unknown fields are not refused here:
/// serde cannot with a flattened step; the step itself refuses them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The job (random, drawn by the customer for its offer).
    #[serde(with = "super::b64::fixed")]
    pub job: [u8; 16],
    /// The job events its signer had seen last (none for the offer).
    #[serde(default, with = "hashes")]
    pub prev: Vec<Hash>,
    /// The step.
    #[serde(flatten)]
    pub step: Step,
}

mod hashes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(value: &[super::Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(value.iter().map(super::super::b64::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::Hash>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| super::super::b64::decode_array::<32>(t).ok_or_else(|| D::Error::custom("a 32-byte hash")))
            .collect()
    }
}

/// A verified job event: its hash, who signed it and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// SHA-256 of its signed document.
    pub hash: Hash,
    /// The signer's lineage (checked by the caller).
    pub signer: Did,
    /// Whom it was signed to (the wire event's `to`): for the offer, the provider.
    pub to: Did,
    /// The signer's clock at signing.
    pub created_at: UnixMillis,
    /// The content.
    pub event: JobEvent,
}

/// A side of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// Who offered.
    Customer,
    /// Who was asked.
    Provider,
}

impl Party {
    fn other(self) -> Party {
        match self {
            Party::Customer => Party::Provider,
            Party::Provider => Party::Customer,
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Offered (or countered): the side in [`Job::turn`] answers.
    Offered,
    /// Taken: the provider works (or asks to be paid first).
    Accepted,
    /// The provider asked to be paid.
    PaymentRequired,
    /// The customer says it paid.
    Paid,
    /// The result is in: the customer settles or disputes.
    Delivered,
    /// Done.
    Settled,
    /// The customer disputes the result.
    Disputed,
    /// Declined.
    Rejected,
    /// Ended before delivery.
    Cancelled,
    /// Nobody accepted before the offer expired (a view: see [`Job::phase_at`]).
    Expired,
}

/// A job as its events say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Its id.
    #[serde(with = "super::b64::fixed")]
    pub id: [u8; 16],
    /// Who offered.
    pub customer: Did,
    /// Who was asked.
    pub provider: Did,
    /// The task kind.
    pub task: String,
    /// The input.
    pub input: serde_json::Value,
    /// The terms agreed (or proposed last, while offered).
    pub terms: Option<Terms>,
    /// When the result is wanted.
    pub deadline: Option<UnixMillis>,
    /// When the offer stops.
    pub expires_at: UnixMillis,
    /// The room call it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallRef>,
    /// Where it stands.
    pub phase: Phase,
    /// While offered: who answers.
    pub turn: Party,
    /// The invoice asked for.
    pub invoice: Option<String>,
    /// The payment reference given.
    pub payment: Option<String>,
    /// Progress reports, in order.
    pub progress: Vec<(String, Option<u8>)>,
    /// The result.
    pub result: Option<serde_json::Value>,
    /// The reason of a reject, dispute or cancel.
    pub reason: Option<String>,
}

impl Job {
    /// The phase at `now`: an offer nobody took reads as expired after its expiry.
    pub fn phase_at(&self, now: UnixMillis) -> Phase {
        if self.phase == Phase::Offered && now.0 > self.expires_at.0 { Phase::Expired } else { self.phase }
    }

    fn party(&self, did: &Did) -> Option<Party> {
        if did == &self.customer {
            Some(Party::Customer)
        } else if did == &self.provider {
            Some(Party::Provider)
        } else {
            None
        }
    }

    /// Whether `party` may sign `step` now (signed at `at`), and why not.
    pub fn allows(&self, party: Party, step: &Step, at: UnixMillis) -> Result<(), &'static str> {
        use Phase::*;
        let open = matches!(self.phase, Offered | Accepted | PaymentRequired | Paid);
        let ok = match step {
            Step::Offer { .. } => return Err("a job has one offer"),
            Step::Accept | Step::Reject { .. } | Step::Counter { .. } => {
                if self.phase != Offered {
                    return Err("only an open offer is answered");
                }
                if party != self.turn {
                    return Err("it is the other side's turn to answer");
                }
                if matches!(step, Step::Accept) && at.0 > self.expires_at.0.saturating_add(SKEW_MS) {
                    return Err("accepted after the offer expired");
                }
                true
            }
            Step::PaymentRequired { .. } => party == Party::Provider && self.phase == Accepted,
            Step::Payment { .. } => party == Party::Customer && self.phase == PaymentRequired,
            Step::Progress { .. } | Step::Deliver { .. } => {
                party == Party::Provider && matches!(self.phase, Accepted | Paid)
            }
            Step::Settle | Step::Dispute { .. } => party == Party::Customer && self.phase == Delivered,
            Step::Cancel { .. } => open,
        };
        if ok { Ok(()) } else { Err("not this side's step in this state") }
    }

    fn apply(&mut self, party: Party, step: &Step) {
        match step {
            Step::Offer { .. } => {}
            Step::Accept => self.phase = Phase::Accepted,
            Step::Reject { reason } => {
                self.phase = Phase::Rejected;
                self.reason = reason.clone();
            }
            Step::Counter { terms } => {
                self.terms = Some(terms.clone());
                self.turn = party.other();
            }
            Step::PaymentRequired { invoice } => {
                self.phase = Phase::PaymentRequired;
                self.invoice = Some(invoice.clone());
            }
            Step::Payment { reference } => {
                self.phase = Phase::Paid;
                self.payment = Some(reference.clone());
            }
            Step::Progress { status, percent, .. } => self.progress.push((status.clone(), *percent)),
            Step::Deliver { result } => {
                self.phase = Phase::Delivered;
                self.result = Some(result.clone());
            }
            Step::Settle => self.phase = Phase::Settled,
            Step::Dispute { reason } => {
                self.phase = Phase::Disputed;
                self.reason = Some(reason.clone());
            }
            Step::Cancel { reason } => {
                self.phase = Phase::Cancelled;
                self.reason = reason.clone();
            }
        }
    }
}

/// What a set of a job's events says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Derived {
    /// The job (none until its offer is in).
    pub job: Option<Job>,
    /// Events applied, in the order they were.
    #[serde(skip)]
    pub applied: Vec<Hash>,
    /// Valid events the state did not take (a step that crossed one that won).
    #[serde(skip)]
    pub passed_over: Vec<Hash>,
    /// Events refused, with why: never applied.
    #[serde(skip)]
    pub refused: Vec<(Hash, String)>,
    /// Events whose past has not all arrived.
    #[serde(skip)]
    pub pending: Vec<Hash>,
}

fn check_text(step: &Step) -> Result<(), &'static str> {
    let long = |t: &str| t.chars().count() > MAX_TEXT;
    let bad = match step {
        Step::Offer { task, terms, .. } => {
            long(task) || task.is_empty() || terms.as_ref().is_some_and(|t| !terms_ok(t))
        }
        Step::Counter { terms } => !terms_ok(terms),
        Step::Reject { reason } | Step::Cancel { reason } => reason.as_deref().is_some_and(long),
        Step::PaymentRequired { invoice: t } | Step::Payment { reference: t } | Step::Dispute { reason: t } => long(t),
        Step::Progress { status, percent, .. } => long(status) || percent.is_some_and(|p| p > 100),
        _ => false,
    };
    if bad { Err("a field out of bounds (text too long, percent over 100, or malformed terms)") } else { Ok(()) }
}

/// Whether terms are a decimal amount and a currency code.
pub fn terms_ok(t: &Terms) -> bool {
    let mut parts = t.amount.split('.');
    let whole = parts.next().unwrap_or_default();
    let frac = parts.next();
    let digits = |s: &str| !s.is_empty() && s.len() <= 30 && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole)
        && frac.is_none_or(digits)
        && parts.next().is_none()
        && (1..=12).contains(&t.currency.len())
        && t.currency.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The state of a job from the set of its events (duplicates count once; the order they
/// are given in does not matter).
pub fn derive(entries: &[Entry]) -> Derived {
    let mut by_hash: BTreeMap<Hash, &Entry> = BTreeMap::new();
    for e in entries {
        by_hash.entry(e.hash).or_insert(e);
    }
    let mut out =
        Derived { job: None, applied: Vec::new(), passed_over: Vec::new(), refused: Vec::new(), pending: Vec::new() };
    // The offer: the one event with no past. Others with no past are refused.
    let offers: Vec<&Entry> = by_hash.values().copied().filter(|e| e.event.prev.is_empty()).collect();
    let Some(offer) = offers.iter().copied().find(|e| matches!(e.event.step, Step::Offer { .. })) else {
        out.pending = by_hash.keys().copied().collect();
        return out;
    };
    let Step::Offer { task, input, terms, deadline, expires_at, call } = &offer.event.step else {
        unreachable!("found above")
    };
    let provider = offer.to.clone();
    if provider == offer.signer {
        out.refused.push((offer.hash, "an offer to its own signer".into()));
        return out;
    }
    let genesis = Job {
        id: offer.event.job,
        customer: offer.signer.clone(),
        provider,
        task: task.clone(),
        input: input.clone(),
        terms: terms.clone(),
        deadline: *deadline,
        expires_at: *expires_at,
        call: call.clone(),
        phase: Phase::Offered,
        turn: Party::Provider,
        invoice: None,
        payment: None,
        progress: Vec::new(),
        result: None,
        reason: None,
    };
    if let Err(why) = check_text(&offer.event.step) {
        out.refused.push((offer.hash, why.into()));
        return out;
    }
    for e in offers.iter().filter(|e| e.hash != offer.hash) {
        out.refused.push((e.hash, "a second event without a past (a job has one offer)".into()));
    }
    // Validity, parents first: each event against the state of its own past.
    let mut valid: HashMap<Hash, BTreeSet<Hash>> = HashMap::new(); // hash -> its ancestors
    valid.insert(offer.hash, BTreeSet::new());
    let mut undecided: Vec<&Entry> = by_hash.values().copied().filter(|e| !e.event.prev.is_empty()).collect();
    let mut refused: BTreeSet<Hash> = BTreeSet::new();
    loop {
        let mut progressed = false;
        let mut still = Vec::new();
        for e in undecided {
            if e.event.job != offer.event.job {
                out.refused.push((e.hash, "an event of another job".into()));
                refused.insert(e.hash);
                progressed = true;
                continue;
            }
            if e.event.prev.iter().any(|p| refused.contains(p)) {
                out.refused.push((e.hash, "it follows a refused event".into()));
                refused.insert(e.hash);
                progressed = true;
                continue;
            }
            if !e.event.prev.iter().all(|p| valid.contains_key(p)) {
                still.push(e);
                continue;
            }
            let mut past: BTreeSet<Hash> = BTreeSet::new();
            for p in &e.event.prev {
                past.insert(*p);
                past.extend(valid[p].iter().copied());
            }
            let before = fold(&genesis, &by_hash, &past, offer.hash).0;
            let verdict = match before.party(&e.signer) {
                None => Err("signed by neither side of the job"),
                Some(party) => {
                    check_text(&e.event.step).and_then(|()| before.allows(party, &e.event.step, e.created_at))
                }
            };
            match verdict {
                Ok(()) => {
                    valid.insert(e.hash, past);
                }
                Err(why) => {
                    out.refused.push((e.hash, why.into()));
                    refused.insert(e.hash);
                }
            }
            progressed = true;
        }
        undecided = still;
        if !progressed {
            break;
        }
    }
    out.pending = undecided.iter().map(|e| e.hash).collect();
    let all: BTreeSet<Hash> = valid.keys().copied().filter(|h| *h != offer.hash).collect();
    let (job, applied, passed_over) = fold(&genesis, &by_hash, &all, offer.hash);
    out.job = Some(job);
    out.applied = applied;
    out.passed_over = passed_over;
    out.refused.sort();
    out.pending.sort();
    out
}

/// Folds the events `set` (plus the offer) in their one order, applying each the state
/// then allows. Returns the job, the events applied and those passed over.
fn fold(
    genesis: &Job,
    by_hash: &BTreeMap<Hash, &Entry>,
    set: &BTreeSet<Hash>,
    offer: Hash,
) -> (Job, Vec<Hash>, Vec<Hash>) {
    let mut job = genesis.clone();
    let mut applied = vec![offer];
    let mut passed_over = Vec::new();
    // Kahn's order over the set: an event is ready once its parents (in the set or the
    // offer) are done; among ready ones the lowest (precedence, time, hash) goes first.
    let mut done: BTreeSet<Hash> = BTreeSet::from([offer]);
    let mut left: Vec<&Entry> = set.iter().filter_map(|h| by_hash.get(h).copied()).collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event.prev.iter().all(|p| done.contains(p)))
            .min_by_key(|(_, e)| (precedence(&e.event.step), e.created_at.0, e.hash))
            .map(|(i, _)| i);
        let Some(i) = ready else { break };
        let e = left.remove(i);
        done.insert(e.hash);
        match job.party(&e.signer) {
            Some(party) if job.allows(party, &e.event.step, e.created_at).is_ok() => {
                job.apply(party, &e.event.step);
                applied.push(e.hash);
            }
            _ => passed_over.push(e.hash),
        }
    }
    (job, applied, passed_over)
}

#[cfg(test)]
mod tests;
