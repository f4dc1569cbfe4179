//! The job state machine: paths, crossings, refusals and convergence.

use super::*;
use crate::proto::identity::Identity;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn did(seed: u8) -> Did {
    Identity::from_secret_bytes(&[seed; 32], [seed; 32]).did().clone()
}

/// A side's view: what it signed and what reached it.
#[derive(Clone, Default)]
struct View(Vec<Entry>);

impl View {
    /// Signs `step` on top of what this side holds (its valid events' heads).
    fn sign(&mut self, me: &Did, to: &Did, step: Step, at: u64) -> Entry {
        let d = derive(&self.0);
        let valid: BTreeSet<Hash> = d.applied.iter().chain(d.passed_over.iter()).copied().collect();
        let referenced: BTreeSet<Hash> =
            self.0.iter().filter(|e| valid.contains(&e.hash)).flat_map(|e| e.event.prev.clone()).collect();
        let prev: Vec<Hash> = valid.difference(&referenced).copied().collect();
        let event = JobEvent { job: [9; 16], prev, step };
        let hash: Hash = Sha256::new()
            .chain_update(serde_json::to_vec(&event).unwrap())
            .chain_update(me.as_str())
            .chain_update(at.to_be_bytes())
            .finalize()
            .into();
        let entry = Entry { hash, signer: me.clone(), to: to.clone(), created_at: UnixMillis(at), event };
        self.0.push(entry.clone());
        entry
    }

    fn job(&self) -> Job {
        derive(&self.0).job.expect("the offer is in")
    }
}

fn offer(expires_at: u64) -> Step {
    Step::Offer {
        task: "sha256".into(),
        input: "hello".into(),
        terms: Some(Terms { amount: "1.50".into(), currency: "EUR".into() }),
        deadline: None,
        expires_at: UnixMillis(expires_at),
        call: None,
    }
}

fn started() -> (Did, Did, View, View) {
    let (c, p) = (did(1), did(2));
    let (mut cv, mut pv) = (View::default(), View::default());
    let o = cv.sign(&c, &p, offer(1_000_000), 1);
    pv.0.push(o);
    (c, p, cv, pv)
}

#[test]
fn the_happy_path_with_payment_progress_and_settle() {
    let (c, p, mut cv, mut pv) = started();
    let e = pv.sign(&p, &c, Step::Accept, 2);
    cv.0.push(e);
    let e = pv.sign(&p, &c, Step::PaymentRequired { invoice: "lnbc1...".into() }, 3);
    cv.0.push(e);
    let e = cv.sign(&c, &p, Step::Payment { reference: "preimage".into() }, 4);
    pv.0.push(e);
    for i in 0..3 {
        let e = pv.sign(
            &p,
            &c,
            Step::Progress { status: format!("step {i}"), percent: Some(30 * i), partial: None },
            5 + u64::from(i),
        );
        cv.0.push(e);
    }
    let e = pv.sign(&p, &c, Step::Deliver { result: "2cf24d".into() }, 9);
    cv.0.push(e);
    let e = cv.sign(&c, &p, Step::Settle, 10);
    pv.0.push(e);
    let (jc, jp) = (cv.job(), pv.job());
    assert_eq!(jc, jp);
    assert_eq!((jc.phase, jc.invoice.as_deref(), jc.progress.len()), (Phase::Settled, Some("lnbc1..."), 3));
    assert_eq!(jc.result, Some("2cf24d".into()));
    assert!(derive(&cv.0).refused.is_empty());
}

#[test]
fn a_deliver_beats_a_cancel_it_did_not_see_and_a_cancel_beats_an_accept() {
    let (c, p, mut cv, mut pv) = started();
    let accept = pv.sign(&p, &c, Step::Accept, 2);
    cv.0.push(accept);
    // Both act without seeing the other: the customer cancels, the provider delivers.
    let cancel = cv.sign(&c, &p, Step::Cancel { reason: Some("changed my mind".into()) }, 3);
    let deliver = pv.sign(&p, &c, Step::Deliver { result: "done".into() }, 3);
    cv.0.push(deliver);
    pv.0.push(cancel.clone());
    assert_eq!(cv.job(), pv.job());
    assert_eq!(cv.job().phase, Phase::Delivered);
    assert_eq!(derive(&pv.0).passed_over, vec![cancel.hash]);
    // Before any accept: a cancel that crosses the accept wins.
    let (c, p, mut cv, mut pv) = started();
    let cancel = cv.sign(&c, &p, Step::Cancel { reason: None }, 2);
    let accept = pv.sign(&p, &c, Step::Accept, 2);
    cv.0.push(accept);
    pv.0.push(cancel);
    assert_eq!((cv.job().phase, pv.job().phase), (Phase::Cancelled, Phase::Cancelled));
}

#[test]
fn wrong_party_late_accept_replays_and_strangers_are_refused_or_ignored() {
    let (c, p, mut cv, mut pv) = started();
    // The customer cannot accept its own offer (it is the provider's turn).
    let own = cv.sign(&c, &p, Step::Accept, 2);
    assert_eq!(derive(&cv.0).refused, vec![(own.hash, "it is the other side's turn to answer".into())]);
    cv.0.pop();
    // The provider cannot settle.
    let accept = pv.sign(&p, &c, Step::Accept, 2);
    let settle = pv.sign(&p, &c, Step::Settle, 3);
    let d = derive(&pv.0);
    assert!(d.refused.iter().any(|(h, _)| *h == settle.hash), "{:?}", d.refused);
    // A replay changes nothing.
    cv.0.push(accept.clone());
    let once = derive(&cv.0);
    cv.0.push(accept.clone());
    assert_eq!(derive(&cv.0), once);
    // A third party's event is refused.
    let mut other = cv.clone();
    let stranger = other.sign(&did(3), &c, Step::Progress { status: "x".into(), percent: None, partial: None }, 4);
    assert!(derive(&other.0).refused.iter().any(|(h, _)| *h == stranger.hash));
    // An accept signed after expiry (past the skew window) is refused; the offer reads expired.
    let (c, p, cv, mut pv) = started();
    let late = pv.sign(&p, &c, Step::Accept, 1_000_000 + SKEW_MS + 1);
    assert!(derive(&pv.0).refused.iter().any(|(h, _)| *h == late.hash));
    assert_eq!(cv.job().phase_at(UnixMillis(1_000_001)), Phase::Expired);
    // An event whose past has not arrived waits.
    let mut partial = View::default();
    partial.0.push(late);
    assert!(derive(&partial.0).job.is_none());
}

#[test]
fn a_job_event_round_trips_through_json() {
    let (c, p, mut cv, _) = started();
    let e = cv.sign(&c, &p, Step::Cancel { reason: Some("no".into()) }, 2);
    for event in [&cv.0[0].event, &e.event] {
        let v = serde_json::to_value(event).unwrap();
        assert_eq!(&serde_json::from_value::<JobEvent>(v.clone()).unwrap(), event, "{v}");
    }
    let wrong = serde_json::json!({"job": crate::proto::b64::encode([1u8; 16]), "prev": [], "step": "launch"});
    assert!(serde_json::from_value::<JobEvent>(wrong).is_err());
}

#[test]
fn counters_pass_the_turn_and_bad_terms_are_refused() {
    let (c, p, mut cv, mut pv) = started();
    let counter = pv.sign(&p, &c, Step::Counter { terms: Terms { amount: "3".into(), currency: "EUR".into() } }, 2);
    cv.0.push(counter);
    let accept = cv.sign(&c, &p, Step::Accept, 3);
    pv.0.push(accept);
    assert_eq!(pv.job().phase, Phase::Accepted);
    assert_eq!(pv.job().terms.unwrap().amount, "3");
    let bad = pv.sign(&p, &c, Step::Progress { status: "x".into(), percent: Some(101), partial: None }, 4);
    assert!(derive(&pv.0).refused.iter().any(|(h, _)| *h == bad.hash));
    assert!(!terms_ok(&Terms { amount: "1.2.3".into(), currency: "EUR".into() }));
    assert!(!terms_ok(&Terms { amount: "-1".into(), currency: "EUR".into() }));
    assert!(terms_ok(&Terms { amount: "0.001".into(), currency: "sats".into() }));
}

/// What one side may try next, by index (the state decides whether it is allowed).
fn step_for(party: Party, pick: u8) -> Step {
    let customer = [
        Step::Accept,
        Step::Counter { terms: Terms { amount: "2".into(), currency: "EUR".into() } },
        Step::Payment { reference: "ref".into() },
        Step::Settle,
        Step::Dispute { reason: "wrong".into() },
        Step::Cancel { reason: None },
        Step::Reject { reason: None },
    ];
    let provider = [
        Step::Accept,
        Step::Reject { reason: None },
        Step::Counter { terms: Terms { amount: "5".into(), currency: "EUR".into() } },
        Step::PaymentRequired { invoice: "inv".into() },
        Step::Progress { status: "working".into(), percent: Some(50), partial: None },
        Step::Deliver { result: "r".into() },
        Step::Cancel { reason: None },
    ];
    let list = if party == Party::Customer { &customer } else { &provider };
    list[usize::from(pick) % list.len()].clone()
}

proptest! {
    /// Any interleaving of the two sides' steps and of the messages between them: an
    /// honest side's events are never refused, and once both hold every event they are
    /// in the same state, whatever order the events reached each.
    #[test]
    fn both_sides_converge_whatever_crossed(actions in proptest::collection::vec((0u8..4, any::<u8>()), 1..40), order in any::<u64>()) {
        let (c, p, mut cv, mut pv) = started();
        let (mut to_c, mut to_p): (Vec<Entry>, Vec<Entry>) = (Vec::new(), Vec::new());
        for (i, (what, pick)) in actions.into_iter().enumerate() {
            let at = 2 + i as u64;
            match what {
                0 | 1 => {
                    let (party, me, them, view, outbox) = if what == 0 {
                        (Party::Customer, &c, &p, &mut cv, &mut to_p)
                    } else {
                        (Party::Provider, &p, &c, &mut pv, &mut to_c)
                    };
                    let step = step_for(party, pick);
                    let job = view.job();
                    let mine = job.party(me).expect("a side");
                    if job.allows(mine, &step, UnixMillis(at)).is_ok() {
                        outbox.push(view.sign(me, them, step, at));
                    }
                }
                2 if !to_c.is_empty() => {
                    let e = to_c.remove(usize::from(pick) % to_c.len());
                    cv.0.push(e);
                }
                3 if !to_p.is_empty() => {
                    let e = to_p.remove(usize::from(pick) % to_p.len());
                    pv.0.push(e);
                }
                _ => {}
            }
            prop_assert!(derive(&cv.0).refused.is_empty(), "customer: {:?}", derive(&cv.0).refused);
            prop_assert!(derive(&pv.0).refused.is_empty(), "provider: {:?}", derive(&pv.0).refused);
        }
        cv.0.append(&mut to_c);
        pv.0.append(&mut to_p);
        // Each side's copy in another order: the state does not depend on it.
        let mut shuffled = cv.0.clone();
        let n = shuffled.len();
        for k in 0..n {
            shuffled.swap(k, (order.rotate_left(k as u32) as usize) % n);
        }
        let (jc, jp, js) = (cv.job(), pv.job(), derive(&shuffled).job.expect("offer"));
        prop_assert_eq!(&jc, &jp);
        prop_assert_eq!(&jc, &js);
        prop_assert!(derive(&cv.0).pending.is_empty());
    }
}
