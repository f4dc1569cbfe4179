//! Append hints: what one node tells the others after a commit (`NOTIFY wire_appends`).
//! The first line names the node (`@node`), then a line per envelope stored: `slot seq`,
//! or, when the whole batch fits in one notification, `slot seq lane received_at base64`,
//! which the other nodes hand to their streams without reading the envelope back.

use bytes::Bytes;
use wire_core::proto::api::Lane;

use super::lane_code;
use crate::store::Stored;

/// The channel of append hints.
pub const CHANNEL: &str = "wire_appends";
/// Largest NOTIFY payload PostgreSQL takes is 8,000 bytes; hints are cut below it.
const MAX_HINT: usize = 7_000;

/// The notifications of a hint from `node` for `stored`: one carrying the envelopes when
/// they fit, else lines of `slot seq` cut below [`MAX_HINT`].
pub(super) fn hint_payloads(node: &str, stored: &[(&str, Stored)]) -> Vec<String> {
    let head = format!("@{node}\n");
    // Encoded line by line, given up once past the limit: a large batch costs a few
    // envelopes' encoding, not all of them.
    let mut carried = head.clone();
    for (slot, s) in stored {
        let envelope = wire_core::proto::b64::encode(&s.envelope);
        carried.push_str(&format!("{slot} {} {} {} {envelope}\n", s.seq, lane_code(s.lane), s.received_at));
        if carried.len() > MAX_HINT {
            break;
        }
    }
    if carried.len() <= MAX_HINT {
        return vec![carried];
    }
    let mut payloads = vec![head.clone()];
    for (slot, s) in stored {
        let line = format!("{slot} {}\n", s.seq);
        if payloads.last().is_some_and(|p| p.len() + line.len() > MAX_HINT) {
            payloads.push(head.clone());
        }
        payloads.last_mut().expect("one at least").push_str(&line);
    }
    payloads
}

/// A hint, parsed.
#[derive(Debug, Default, PartialEq)]
pub struct Hint {
    /// The node that sent it (its first line, `@node`).
    pub node: Option<String>,
    /// Slots it appended to without carrying the envelopes: their streams read them.
    pub slots: Vec<String>,
    /// Envelopes it carried, in commit order, with their slots.
    pub envelopes: Vec<(String, Stored)>,
}

/// Parses a hint's payload (see `PostgresStore::hint`); a line it cannot read whole only
/// names its slot.
pub fn parse_hint(payload: &str) -> Hint {
    let mut hint = Hint::default();
    for line in payload.lines() {
        if let Some(node) = line.strip_prefix('@') {
            hint.node = Some(node.to_owned());
            continue;
        }
        let mut parts = line.split(' ');
        let Some(slot) = parts.next().filter(|s| !s.is_empty()) else { continue };
        let carried = (|| {
            let seq = parts.next()?.parse().ok()?;
            let lane = if parts.next()? == "1" { Lane::Intro } else { Lane::Inbox };
            let received_at = parts.next()?.parse().ok()?;
            let envelope = Bytes::from(wire_core::proto::b64::decode(parts.next()?).ok()?);
            Some(Stored { seq, lane, envelope, received_at })
        })();
        match carried {
            Some(stored) => hint.envelopes.push((slot.to_owned(), stored)),
            None if hint.slots.last().is_some_and(|s| s == slot) => {}
            None => hint.slots.push(slot.to_owned()),
        }
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: u64, byte: u8) -> Stored {
        Stored { seq, lane: Lane::Inbox, envelope: Bytes::from(vec![byte; 1040]), received_at: 1_700_000_000_000 + seq }
    }

    #[test]
    fn a_small_batch_carries_its_envelopes_and_a_large_one_names_its_slots() {
        let small = [("s1", stored(7, 1)), ("s2", stored(1, 2))];
        let payloads = hint_payloads("n1", &small);
        assert_eq!(payloads.len(), 1);
        let hint = parse_hint(&payloads[0]);
        assert_eq!(hint.node.as_deref(), Some("n1"));
        assert!(hint.slots.is_empty());
        assert_eq!(hint.envelopes, small.iter().map(|(s, st)| ((*s).to_owned(), st.clone())).collect::<Vec<_>>());

        let large: Vec<(&str, Stored)> =
            (1..=2_000).map(|n| (if n % 2 == 0 { "s1" } else { "s2" }, stored(n, 3))).collect();
        let payloads = hint_payloads("n1", &large);
        assert!(payloads.len() > 1 && payloads.iter().all(|p| p.len() <= MAX_HINT));
        let hints: Vec<Hint> = payloads.iter().map(|p| parse_hint(p)).collect();
        assert!(hints.iter().all(|h| h.envelopes.is_empty() && h.node.as_deref() == Some("n1")));
        let named: std::collections::BTreeSet<&str> =
            hints.iter().flat_map(|h| h.slots.iter().map(String::as_str)).collect();
        assert_eq!(named.into_iter().collect::<Vec<_>>(), vec!["s1", "s2"]);

        // A line from a node that does not carry envelopes, or one cut short, names its slot.
        let hint = parse_hint("@n2\ns3 9\ns4 2 0 17 not-base64!\n");
        assert_eq!((hint.slots, hint.envelopes.len()), (vec!["s3".to_owned(), "s4".to_owned()], 0));
    }
}
