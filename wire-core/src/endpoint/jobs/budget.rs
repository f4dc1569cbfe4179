//! Budgets and loop guards for jobs we are asked to do: enforced by the receive path (an
//! offer over budget is rejected with the reason before the batch is acked), never left to
//! the model. A peer's budget (or the default) always applies; an offer that awards a room
//! call for offers is also judged by that room's budget, counted over every peer's offers
//! from that room.

use serde::{Deserialize, Serialize};

use super::super::{Endpoint, EndpointError, Result};
use crate::home::Peers;
use crate::proto::did::Did;
use crate::proto::job::{self, Entry, Job, Phase, Step, Terms};
use crate::proto::time::UnixMillis;

/// What jobs a peer (or a room) may ask of us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Most jobs open (offered, accepted, payment required, paid) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open: Option<u32>,
    /// Most offers in an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_offers_per_hour: Option<u32>,
    /// The largest price of one job; offers in another currency are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Terms>,
    /// The most all jobs offered in the last 24 hours may add up to (those rejected,
    /// cancelled or expired do not count); offers in another currency are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount_per_day: Option<Terms>,
}

/// `budgets.json`: the default for every peer, per-peer budgets that replace it, and
/// per-room budgets that apply on top to offers from a room's calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Budgets {
    /// Format version.
    pub v: u64,
    /// For every peer without its own.
    #[serde(default)]
    pub default: Budget,
    /// By peer DID.
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, Budget>,
    /// By room DID.
    #[serde(default)]
    pub rooms: std::collections::BTreeMap<String, Budget>,
}

impl crate::home::StateFile for Budgets {
    const NAME: &'static str = "budgets.json";
    const VERSION: u64 = 1;
}

/// Where a budget applies: `wire job budget [--peer P | --room R]`.
#[derive(Debug, Clone, Copy)]
pub enum BudgetScope<'a> {
    /// Every peer without its own.
    Default,
    /// One peer (nickname or DID).
    Peer(&'a str),
    /// Offers from one room's calls (name or DID).
    Room(&'a str),
}

/// Budget when none was set: 10 open jobs and 30 offers an hour per peer, any price.
fn default_budget() -> Budget {
    Budget { max_open: Some(10), max_offers_per_hour: Some(30), max_amount: None, max_amount_per_day: None }
}

/// `a` compared with `b`, both decimal strings ([`job::terms_ok`]).
pub(crate) fn amount_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (aw, af, bw, bf) = aligned(a, b);
    aw.len().cmp(&bw.len()).then(aw.cmp(&bw)).then(af.cmp(&bf))
}

/// Whole parts without leading zeros, fractions padded to one length.
fn aligned(a: &str, b: &str) -> (String, String, String, String) {
    let split = |s: &str| {
        let (w, f) = s.split_once('.').unwrap_or((s, ""));
        (w.trim_start_matches('0').to_owned(), f.trim_end_matches('0').to_owned())
    };
    let ((aw, af), (bw, bf)) = (split(a), split(b));
    let n = af.len().max(bf.len());
    (aw, format!("{af:0<n$}"), bw, format!("{bf:0<n$}"))
}

/// `a + b`, both decimal strings.
pub(crate) fn amount_add(a: &str, b: &str) -> String {
    let (aw, af, bw, bf) = aligned(a, b);
    let (x, y) = (format!("{aw}{af}"), format!("{bw}{bf}"));
    let n = x.len().max(y.len());
    let (x, y) = (format!("{x:0>n$}"), format!("{y:0>n$}"));
    let mut digits = Vec::with_capacity(n + 1);
    let mut carry = 0;
    for (p, q) in x.bytes().rev().zip(y.bytes().rev()) {
        let d = (p - b'0') + (q - b'0') + carry;
        digits.push(b'0' + d % 10);
        carry = d / 10;
    }
    if carry > 0 {
        digits.push(b'0' + carry);
    }
    digits.reverse();
    let text = String::from_utf8(digits).expect("ascii digits");
    let (whole, frac) = text.split_at(text.len() - af.len());
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        w => w,
    };
    match frac.trim_end_matches('0') {
        "" => whole.to_owned(),
        frac => format!("{whole}.{frac}"),
    }
}

/// What an offer is judged against: the jobs in the budget's scope (the offer's own
/// excluded) and their offers.
struct Scope<'a> {
    jobs: Vec<Job>,
    offers: Vec<&'a Entry>,
}

impl<'a> Scope<'a> {
    /// The jobs of `entries` (one job's events share an id) that `keep` selects.
    fn of(entries: &'a [Entry], offer: &Entry, keep: impl Fn(&Job) -> bool) -> Self {
        let mut ids: Vec<[u8; 16]> = entries.iter().map(|e| e.event.job).filter(|j| *j != offer.event.job).collect();
        ids.sort();
        ids.dedup();
        let jobs: Vec<Job> = ids
            .iter()
            .filter_map(|id| {
                let of: Vec<Entry> = entries.iter().filter(|e| e.event.job == *id).cloned().collect();
                job::derive(&of).job
            })
            .filter(|j| keep(j))
            .collect();
        let offers = entries
            .iter()
            .filter(|e| matches!(e.event.step, Step::Offer { .. }) && jobs.iter().any(|j| j.id == e.event.job))
            .collect();
        Self { jobs, offers }
    }
}

/// Why `offer` breaks `budget` given what is in scope (`whose`: "with you", "from this room").
fn judge(budget: &Budget, offer: &Entry, scope: &Scope, now: UnixMillis, whose: &str) -> Option<String> {
    let Step::Offer { terms, .. } = &offer.event.step else { return None };
    for max in [&budget.max_amount, &budget.max_amount_per_day].into_iter().flatten() {
        if let Some(t) = terms.as_ref().filter(|t| t.currency != max.currency) {
            return Some(format!("this agent's budget is in {}, not {}", max.currency, t.currency));
        }
    }
    if let (Some(max), Some(t)) = (&budget.max_amount, terms)
        && amount_cmp(&t.amount, &max.amount).is_gt()
    {
        return Some(format!("over budget: at most {} {} a job", max.amount, max.currency));
    }
    let open = |p: Phase| matches!(p, Phase::Offered | Phase::Accepted | Phase::PaymentRequired | Phase::Paid);
    let open_now = scope.jobs.iter().filter(|j| open(j.phase_at(now))).count();
    if budget.max_open.is_some_and(|m| open_now >= m as usize) {
        return Some(format!("over budget: {open_now} jobs {whose} are open already"));
    }
    let hour_ago = now.0.saturating_sub(3_600_000);
    let recent = scope.offers.iter().filter(|e| e.created_at.0 >= hour_ago).count();
    if budget.max_offers_per_hour.is_some_and(|m| recent >= m as usize) {
        return Some(format!("over budget: {recent} offers {whose} in the last hour"));
    }
    if let (Some(max), Some(t)) = (&budget.max_amount_per_day, terms) {
        let day_ago = now.0.saturating_sub(86_400_000);
        let counted = |j: &&Job| {
            !matches!(j.phase_at(now), Phase::Rejected | Phase::Cancelled | Phase::Expired)
                && scope.offers.iter().any(|e| e.event.job == j.id && e.created_at.0 >= day_ago)
        };
        let spent = scope
            .jobs
            .iter()
            .filter(counted)
            .filter_map(|j| j.terms.as_ref().filter(|t| t.currency == max.currency))
            .fold("0".to_owned(), |sum, t| amount_add(&sum, &t.amount));
        if amount_cmp(&amount_add(&spent, &t.amount), &max.amount).is_gt() {
            return Some(format!(
                "over budget: {spent} {} {whose} in the last 24 hours, at most {} a day",
                max.currency, max.amount
            ));
        }
    }
    None
}

impl Endpoint {
    /// `wire job budget`: sets the budget of one scope.
    pub fn budget_set(&self, scope: BudgetScope, budget: Budget) -> Result<Budgets> {
        let bad = |t: &Option<Terms>| t.as_ref().is_some_and(|t| !job::terms_ok(t));
        if bad(&budget.max_amount) || bad(&budget.max_amount_per_day) {
            return Err(EndpointError::Job("a budget's amount is a decimal and a currency code".into()));
        }
        let _lock = self.home.lock()?;
        let mut all = self.home.load::<Budgets>()?.unwrap_or(Budgets { v: 1, ..Budgets::default() });
        match scope {
            BudgetScope::Peer(name) => {
                let peers = self.home.load::<Peers>()?.unwrap_or_default();
                let did = self.find_peer(&peers, name)?.card.did().to_string();
                all.peers.insert(did, budget);
            }
            BudgetScope::Room(name) => {
                let rooms = self.rooms()?;
                let room = rooms.iter().find(|r| r.name == name || r.id == name);
                let room = room.ok_or_else(|| EndpointError::Job(format!("no room `{name}` (`wire rooms`)")))?;
                all.rooms.insert(room.id.clone(), budget);
            }
            BudgetScope::Default => all.default = budget,
        }
        self.home.save(&all)?;
        Ok(all)
    }

    /// Why an offer from `peer` is over our budget, if it is (`entries`: what we hold of
    /// our jobs with that peer, the offer included).
    pub(crate) fn over_budget(&self, peer: &Did, offer: &Entry, entries: &[Entry]) -> Option<String> {
        let Step::Offer { call, .. } = &offer.event.step else { return None };
        let now = self.home.now();
        let all = self.home.load::<Budgets>().ok().flatten();
        let budget = match &all {
            Some(b) => b.peers.get(peer.as_str()).cloned().unwrap_or_else(|| b.default.clone()),
            None => default_budget(),
        };
        let theirs = Scope::of(entries, offer, |j| &j.customer == peer);
        if let Some(why) = judge(&budget, offer, &theirs, now, "from you") {
            return Some(why);
        }
        let room = call.as_ref().map(|c| &c.room)?;
        let budget = all.as_ref().and_then(|b| b.rooms.get(room.as_str()))?;
        // Every peer's jobs from this room's calls.
        let peers = self.home.load::<Peers>().ok().flatten().unwrap_or_default();
        let mut everyone: Vec<Entry> = entries.to_vec();
        for p in peers.peers.iter().filter(|p| p.card.did() != peer) {
            everyone.extend(self.job_entries(p.card.did(), &[]).ok()?);
        }
        let from_room = Scope::of(&everyone, offer, |j| {
            j.provider == *self.identity.did() && j.call.as_ref().is_some_and(|c| &c.room == room)
        });
        judge(budget, offer, &from_room, now, "from this room")
    }
}

#[cfg(test)]
mod tests {
    use super::{amount_add, amount_cmp};

    #[test]
    fn decimal_amounts_add_and_compare() {
        assert_eq!(amount_add("0", "1.50"), "1.5");
        assert_eq!(amount_add("9.99", "0.01"), "10");
        assert_eq!(amount_add("4.99", "5"), "9.99");
        assert_eq!(amount_add("007", "3.5"), "10.5");
        assert_eq!(amount_add("999", "1"), "1000");
        assert!(amount_cmp("10.00", "9.999").is_gt());
        assert!(amount_cmp("2.5", "2.50").is_eq());
        assert!(amount_cmp("0.1", "1").is_lt());
    }
}
