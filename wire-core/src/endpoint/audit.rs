//! `wire verify FILE|-`: signed events checked again offline, so a third party can check what
//! was said without the relay or the sender. Every line is judged on its own and reported by
//! its number: a line that is not JSON, carries no signature, does not verify under any key
//! the sender's lineage held, or whose readable fields differ from the bytes that were signed.

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use super::{Endpoint, Face, Result};
use crate::home::Peers;
use crate::proto::did::Did;
use crate::proto::event::Event;
use crate::proto::signed::Signed;

/// Whom the signatures must come from.
#[derive(Debug)]
pub enum Against {
    /// Any pinned peer, under any key its lineage held (past keys sign older events).
    Pins(Peers),
    /// This DID alone, under its own key.
    Did(Did),
}

/// One line's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct LineVerdict {
    /// Its number in the input, from 1.
    pub line: usize,
    /// Whether it verified.
    pub ok: bool,
    /// The event's id, when the signed bytes are an event.
    pub id: Option<String>,
    /// Its signer as the signed bytes say.
    pub from: Option<Face>,
    /// Why it failed: `not_json`, `no_signature`, `not_an_event`, `not_pinned`, `other_signer`,
    /// `bad_signature`, `fields_differ`.
    pub problem: Option<&'static str>,
}

/// `wire verify FILE|-`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Every non-empty line, in order.
    pub lines: Vec<LineVerdict>,
    /// Lines that verified.
    pub verified: usize,
    /// Lines that did not.
    pub failed: usize,
}

impl Endpoint {
    /// Verifies `text` (JSONL) against this home's pinned peers.
    pub fn verify_lines(&self, text: &str) -> Result<VerifyReport> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(verify_lines(text, &Against::Pins(peers)))
    }
}

/// Verifies each non-empty line of `text`: an inbox line (the event's fields and `signed`),
/// or a bare signed document (`{"payload", "sig"}`).
pub fn verify_lines(text: &str, against: &Against) -> VerifyReport {
    let lines: Vec<LineVerdict> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| judge(i + 1, l, against)).collect();
    let verified = lines.iter().filter(|l| l.ok).count();
    VerifyReport { failed: lines.len() - verified, verified, lines }
}

fn judge(line: usize, text: &str, against: &Against) -> LineVerdict {
    let mut verdict = LineVerdict { line, ok: false, id: None, from: None, problem: None };
    let fail = |mut v: LineVerdict, why| {
        v.problem = Some(why);
        v
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else { return fail(verdict, "not_json") };
    let signed_part = value.get("signed").cloned().unwrap_or_else(|| value.clone());
    let Ok(signed) = serde_json::from_value::<Signed>(signed_part) else { return fail(verdict, "no_signature") };
    let Ok(event) = serde_json::from_slice::<Event>(&signed.payload) else { return fail(verdict, "not_an_event") };
    verdict.id = Some(event.id.to_string());
    verdict.from = Some(Face::of(&event.from));
    let keys: Vec<VerifyingKey> = match against {
        Against::Did(did) if did != &event.from => return fail(verdict, "other_signer"),
        Against::Did(did) => vec![did.verifying_key()],
        Against::Pins(peers) => match peers.get(&event.from) {
            None => return fail(verdict, "not_pinned"),
            Some(peer) => {
                let pin = peer.pin();
                std::iter::once(pin.key)
                    .chain(pin.before.iter().map(|p| p.key))
                    .filter_map(|k| VerifyingKey::from_bytes(&k).ok())
                    .chain(std::iter::once(event.from.verifying_key()))
                    .collect()
            }
        },
    };
    if !keys.iter().any(|k| signed.verify(crate::proto::labels::SIGN_EVENT, k).is_ok()) {
        return fail(verdict, "bad_signature");
    }
    // An inbox line repeats the event's fields beside the signed bytes: they must agree, or
    // what a reader sees is not what was signed.
    if value.get("signed").is_some() {
        let shown = serde_json::from_value::<crate::home::InboxLine>(value.clone());
        if !shown.is_ok_and(|shown| shown.event == event) {
            return fail(verdict, "fields_differ");
        }
    }
    verdict.ok = true;
    verdict
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::event::Kind;
    use crate::proto::identity::Identity;
    use crate::proto::rng::SeededRng;
    use crate::proto::time::UnixMillis;

    fn line(from: &Identity, to: &Identity, body: &str, rng: &mut SeededRng) -> serde_json::Value {
        let event = Event::new(from, to.did().clone(), Kind::Message, body.into(), UnixMillis(1), rng);
        let signed = Signed::sign(from, crate::proto::labels::SIGN_EVENT, serde_json::to_vec(&event).unwrap());
        let mut v = serde_json::to_value(&event).unwrap();
        v["received_at"] = 2.into();
        v["signed"] = serde_json::to_value(&signed).unwrap();
        v
    }

    #[test]
    fn tampered_lines_are_named_by_number_and_others_verify() {
        let mut rng = SeededRng::new(&crate::proto::secret::Secret32::from_bytes([3; 32]), b"verify-test");
        let (alice, bob) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
        let good = line(&alice, &bob, "hello", &mut rng);
        let mut shown_changed = line(&alice, &bob, "pay 10", &mut rng);
        shown_changed["body"] = "pay 1000".into();
        // Another event's signature on these bytes.
        let mut resigned = line(&alice, &bob, "x", &mut rng);
        resigned["signed"]["sig"] = good["signed"]["sig"].clone();
        let text = format!("{good}\n\n{shown_changed}\nnot json\n{resigned}\n{}\n", good["signed"]);
        let report = verify_lines(&text, &Against::Did(alice.did().clone()));
        let problems: Vec<(usize, Option<&str>)> = report.lines.iter().map(|l| (l.line, l.problem)).collect();
        assert_eq!(
            problems,
            [(1, None), (3, Some("fields_differ")), (4, Some("not_json")), (5, Some("bad_signature")), (6, None)]
        );
        assert_eq!((report.verified, report.failed), (2, 3));
        let other = verify_lines(&good.to_string(), &Against::Did(bob.did().clone()));
        assert_eq!(other.lines[0].problem, Some("other_signer"));
        let unpinned = verify_lines(&good.to_string(), &Against::Pins(Peers::default()));
        assert_eq!(unpinned.lines[0].problem, Some("not_pinned"));
    }
}
