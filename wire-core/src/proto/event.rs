//! Events: what one agent signs and sends to another.
//!
//! An [`Event`] is serialized to JSON, signed with the sender's key (`labels::SIGN_EVENT`)
//! and carried as a [`Signed`] document inside a sealed envelope. The receiver keeps the
//! signed bytes, so any event in an inbox can be re-verified later.

use core::fmt;
use core::str::FromStr;
use core::time::Duration;
use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use super::did::Did;
use super::identity::Identity;
use super::labels;
use super::signed::{Signed, peek_version};
use super::time::UnixMillis;

/// The event format this build writes and reads.
pub const EVENT_VERSION: u64 = 1;

macro_rules! kinds {
    ($($variant:ident = $name:literal, $protocol:literal, $doc:literal;)*) => {
        /// The one registry of event kinds. Unknown kinds are refused at send and flagged at
        /// receive; they are never remapped to a known kind.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Kind { $(#[doc = $doc] $variant,)* }

        impl Kind {
            /// Every kind, in registry order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }

            /// Protocol kinds are produced by wire itself (pairing, card updates, close);
            /// agents send the others.
            pub fn is_protocol(self) -> bool {
                match self { $(Kind::$variant => $protocol,)* }
            }
        }

        impl FromStr for Kind {
            type Err = UnknownKind;
            fn from_str(s: &str) -> Result<Self, UnknownKind> {
                match s { $($name => Ok(Kind::$variant),)* other => Err(UnknownKind(other.chars().take(64).collect())) }
            }
        }
    };
}

kinds! {
    Message = "message", false, "Free text or JSON for the peer to read.";
    Claim = "claim", false, "The sender claims a piece of work (coordination).";
    Decision = "decision", false, "The sender records a decision.";
    Question = "question", false, "The sender asks something and expects an answer.";
    Ack = "ack", false, "Acknowledges an earlier event (`reply_to`).";
    Heartbeat = "heartbeat", false, "Liveness signal; carries no content of note.";
    PairRequest = "pair_request", true, "Asks to pair (invite and dial flows).";
    PairAccept = "pair_accept", true, "Accepts a pair request and carries a send token.";
    PairReject = "pair_reject", true, "Declines a pair request.";
    CardUpdate = "card_update", true, "Carries the sender's new card (new endpoints or keys).";
    Close = "close", true, "The sender unpinned the receiver; stop sending.";
    Control = "control", true, "A control message: `{\"type\": T, \"v\": N, ...}`; a type the receiver does not know is ignored and counted.";
    Job = "job", true, "A step of a job, a signed work contract (docs/PROTOCOL.md 15): the body is a job event.";
}

/// Feature flags a card lists beside its kinds (docs/PROTOCOL.md, "Formats that evolve").
/// `receipts`: reads signed receipts (control type `receipt`) and wants them. `rooms`: reads
/// the room control types (`room_kp_request`, `room_key_package`, `room_welcome`). `ping`:
/// answers the control type `ping` with a `pong`.
pub const FEATURES: &[&str] = &["receipts", "lineage", "rooms", "ping", super::prekey::FEATURE, "move"];

/// What this build puts in its card's `capabilities`: every kind it reads, then its
/// feature flags. A new kind or field is sent only to peers whose card lists it.
pub fn capabilities() -> Vec<String> {
    Kind::ALL.iter().map(|k| k.as_str()).chain(FEATURES.iter().copied()).map(str::to_owned).collect()
}

/// The one shape of control messages (the body of a [`Kind::Control`] event): a type, its
/// version, and fields of that type. Receivers that do not know `type` ignore it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlBody {
    /// What it is (`receipt`, `prekeys`, `key_package`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The version of that type.
    pub v: u64,
    /// The type's own fields.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A kind name that is not in the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind `{0}` (known: message, claim, decision, question, ack, heartbeat)")]
pub struct UnknownKind(pub String);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// A random 128-bit event id, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub [u8; 16]);

impl EventId {
    /// A fresh random id.
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut id = [0; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// Not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event id: expected 32 lowercase hex digits")]
pub struct MalformedEventId;

impl FromStr for EventId {
    type Err = MalformedEventId;
    fn from_str(s: &str) -> Result<Self, MalformedEventId> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return Err(MalformedEventId);
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(MalformedEventId),
        };
        let mut out = [0; 16];
        for (i, pair) in bytes.chunks(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(Self(out))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// The inner event, as signed by the sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Format version, [`EVENT_VERSION`].
    pub v: u64,
    /// Random id; receivers drop duplicates by id.
    pub id: EventId,
    /// Sender DID (the signer).
    pub from: Did,
    /// Recipient DID.
    pub to: Did,
    /// What kind of event.
    pub kind: Kind,
    /// Text (a JSON string) or any JSON value.
    pub body: serde_json::Value,
    /// Sender's clock when created.
    pub created_at: UnixMillis,
    /// The event this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<EventId>,
}

impl Event {
    /// A new event from `identity` to `to`.
    pub fn new(
        identity: &Identity,
        to: Did,
        kind: Kind,
        body: serde_json::Value,
        now: UnixMillis,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        Self {
            v: EVENT_VERSION,
            id: EventId::random(rng),
            from: identity.did().clone(),
            to,
            kind,
            body,
            created_at: now,
            reply_to: None,
        }
    }

    /// Sets `reply_to`.
    #[must_use]
    pub fn replying_to(mut self, id: EventId) -> Self {
        self.reply_to = Some(id);
        self
    }

    /// Signs the event. Fails if `identity` is not the `from` DID.
    pub fn sign(self, identity: &Identity) -> Result<SignedEvent, EventError> {
        if &self.from != identity.did() {
            return Err(EventError::NotFromSigner);
        }
        let payload = serde_json::to_vec(&self).expect("event serializes");
        Ok(SignedEvent { signed: Signed::sign(identity, labels::SIGN_EVENT, payload), event: self })
    }
}

/// A signed event as received: parsed, but not yet checked against a trusted key.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedEvent {
    signed: Signed,
    event: Event,
}

/// Rules for accepting an event.
#[derive(Clone, Debug)]
pub struct Acceptance<'a> {
    /// Our DID; the event must be addressed to it.
    pub me: &'a Did,
    /// Our clock.
    pub now: UnixMillis,
    /// How far in the future `created_at` may be (sender clock skew).
    pub max_skew: Duration,
    /// How old an event may be (a little over the relay retention).
    pub max_age: Duration,
}

impl<'a> Acceptance<'a> {
    /// Defaults: 5 minutes of skew, 30 days of age.
    pub fn new(me: &'a Did, now: UnixMillis) -> Self {
        Self { me, now, max_skew: Duration::from_secs(300), max_age: Duration::from_secs(30 * 86_400) }
    }
}

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not a signed document or not an event body.
    #[error("malformed event: {0}")]
    Malformed(#[source] serde_json::Error),
    /// An event version this build does not read.
    #[error("event version {0} is not supported (expected {EVENT_VERSION}); the sender may run a newer wire")]
    UnsupportedVersion(u64),
    /// The `from` DID is not the pinned key we were told to check against.
    #[error("event claims to be from {claimed}, which is not the expected sender")]
    UnexpectedSender {
        /// The DID the event names.
        claimed: Did,
    },
    /// The signature does not verify.
    #[error("event signature does not verify")]
    BadSignature,
    /// Addressed to another DID.
    #[error("event is addressed to {0}, not to us")]
    WrongRecipient(Did),
    /// `created_at` is too far in the future.
    #[error("event is dated {created_at}, more than the allowed skew ahead of our clock ({now})")]
    FromTheFuture {
        /// The event's time.
        created_at: UnixMillis,
        /// Our time.
        now: UnixMillis,
    },
    /// `created_at` is older than `max_age`.
    #[error("event is dated {created_at}, older than the acceptance window")]
    TooOld {
        /// The event's time.
        created_at: UnixMillis,
    },
    /// Only `pair_request` may come from a sender that is not pinned.
    #[error("event kind `{0}` from an unpinned sender")]
    NotFromStranger(Kind),
    /// Attempted to sign an event whose `from` is another DID.
    #[error("an event can only be signed by its `from` identity")]
    NotFromSigner,
    /// A well-formed event of a kind this build does not know (a newer peer's).
    #[error("unsupported kind `{}` from a newer peer", .0.kind)]
    UnsupportedKind(Box<UnsupportedEvent>),
}

/// An event of a kind this build does not know: enough to check who signed it and to
/// report it, never to act on it.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedEvent {
    /// The claimed sender.
    pub from: Did,
    /// The claimed recipient.
    pub to: Did,
    /// The kind's name as sent (at most 64 characters).
    pub kind: String,
    signed: Signed,
}

/// The fields every event version 1 has, read without knowing the kind or refusing fields.
#[derive(Deserialize)]
struct EventHead {
    from: Did,
    to: Did,
    kind: String,
}

impl UnsupportedEvent {
    /// Checks the signature against the `pinned` key of the claimed sender and that the
    /// event is addressed to us.
    pub fn verify(&self, pinned: &VerifyingKey, me: &Did) -> Result<(), EventError> {
        if self.from.key_bytes() != pinned.as_bytes() {
            return Err(EventError::UnexpectedSender { claimed: self.from.clone() });
        }
        self.verify_under(pinned, me)
    }

    /// [`Self::verify`] under `key`, the current key of the sender's lineage (the caller
    /// matched `from` to the pin).
    pub fn verify_under(&self, key: &VerifyingKey, me: &Did) -> Result<(), EventError> {
        self.signed.verify(labels::SIGN_EVENT, key).map_err(|_| EventError::BadSignature)?;
        if &self.to != me {
            return Err(EventError::WrongRecipient(self.to.clone()));
        }
        Ok(())
    }
}

impl SignedEvent {
    /// Parses a signed event. The signature is not checked yet: call [`Self::verify`].
    pub fn parse(signed: Signed) -> Result<Self, EventError> {
        let v = peek_version(&signed.payload).map_err(EventError::Malformed)?;
        if v != EVENT_VERSION {
            return Err(EventError::UnsupportedVersion(v));
        }
        match serde_json::from_slice(&signed.payload) {
            Ok(event) => Ok(Self { signed, event }),
            Err(e) => match serde_json::from_slice::<EventHead>(&signed.payload) {
                Ok(head) if head.kind.parse::<Kind>().is_err() => {
                    Err(EventError::UnsupportedKind(Box::new(UnsupportedEvent {
                        from: head.from,
                        to: head.to,
                        kind: head.kind.chars().take(64).collect(),
                        signed,
                    })))
                }
                _ => Err(EventError::Malformed(e)),
            },
        }
    }

    /// The DID the event claims as sender: use it to look up the pinned key.
    pub fn claimed_sender(&self) -> &Did {
        &self.event.from
    }

    /// The claimed kind (unverified).
    pub fn claimed_kind(&self) -> Kind {
        self.event.kind
    }

    /// The claimed body (unverified: for routing only, as [`Self::claimed_control`]).
    pub fn claimed_body(&self) -> &serde_json::Value {
        &self.event.body
    }

    /// The claimed control body, if this is a control message (unverified: for routing
    /// only, before the signature is checked under the right key).
    pub fn claimed_control(&self) -> Option<ControlBody> {
        (self.event.kind == Kind::Control).then(|| serde_json::from_value(self.event.body.clone()).ok()).flatten()
    }

    /// Verifies the signature against the `pinned` key of the expected sender, and checks
    /// the recipient and the time window.
    pub fn verify(self, pinned: &VerifyingKey, rules: &Acceptance<'_>) -> Result<VerifiedEvent, EventError> {
        if self.event.from.key_bytes() != pinned.as_bytes() {
            return Err(EventError::UnexpectedSender { claimed: self.event.from });
        }
        self.verify_under(pinned, rules)
    }

    /// Verifies the signature against `key`, the current key of the sender's lineage (the
    /// caller matched `from`, the lineage's inception DID, to the pin), and checks the
    /// recipient and the time window.
    pub fn verify_under(self, key: &VerifyingKey, rules: &Acceptance<'_>) -> Result<VerifiedEvent, EventError> {
        self.signed.verify(labels::SIGN_EVENT, key).map_err(|_| EventError::BadSignature)?;
        if &self.event.to != rules.me {
            return Err(EventError::WrongRecipient(self.event.to));
        }
        if self.event.created_at > rules.now.saturating_add(rules.max_skew) {
            return Err(EventError::FromTheFuture { created_at: self.event.created_at, now: rules.now });
        }
        if self.event.created_at < rules.now.saturating_sub(rules.max_age) {
            return Err(EventError::TooOld { created_at: self.event.created_at });
        }
        Ok(VerifiedEvent(self))
    }

    /// Verifies a `pair_request` from a sender nobody has pinned yet, against the key its
    /// own DID encodes (a DID is self-certifying), or, when the card it carries has lineage
    /// statements (a rotated identity), the key they make current. Any other kind is refused.
    pub fn verify_from_stranger(self, rules: &Acceptance<'_>) -> Result<VerifiedEvent, EventError> {
        if self.event.kind != Kind::PairRequest {
            return Err(EventError::NotFromStranger(self.event.kind));
        }
        let carried = self
            .event
            .body
            .get("card")
            .and_then(|c| serde_json::from_value::<Signed>(c.clone()).ok())
            .and_then(|c| super::card::Card::verify(c).ok())
            .filter(|c| c.did() == &self.event.from);
        match carried {
            Some(card) => self.verify_as(&card, rules),
            None => {
                let key = self.event.from.verifying_key();
                self.verify(&key, rules)
            }
        }
    }

    /// Verifies an event claimed to be from `card`'s owner, under the key it signs with now.
    pub fn verify_as(self, card: &super::card::Card, rules: &Acceptance<'_>) -> Result<VerifiedEvent, EventError> {
        if &self.event.from != card.did() {
            return Err(EventError::UnexpectedSender { claimed: self.event.from });
        }
        self.verify_under(&card.current_key(), rules)
    }

    /// The signed document (to seal or to store).
    pub fn signed(&self) -> &Signed {
        &self.signed
    }
}

/// An event whose signature, recipient and time have been checked.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedEvent(SignedEvent);

impl VerifiedEvent {
    /// The event.
    pub fn event(&self) -> &Event {
        &self.0.event
    }

    /// The exact signed bytes, for the inbox.
    pub fn signed(&self) -> &Signed {
        &self.0.signed
    }

    /// The control body, if this is a control message (verified).
    pub fn control(&self) -> Option<ControlBody> {
        (self.event().kind == Kind::Control).then(|| serde_json::from_value(self.event().body.clone()).ok()).flatten()
    }

    /// Unwraps into the event.
    pub fn into_event(self) -> Event {
        self.0.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_unknown_is_an_error() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(*kind));
            let json = serde_json::to_string(kind).expect("serializes");
            assert_eq!(serde_json::from_str::<Kind>(&json).expect("parses"), *kind);
        }
        assert_eq!("memo".parse::<Kind>(), Err(UnknownKind("memo".into())));
        assert!(serde_json::from_str::<Kind>("\"Message\"").is_err(), "no case folding, no remap");
    }

    #[test]
    fn event_id_hex() {
        let id = EventId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        assert!("AB".repeat(16).parse::<EventId>().is_err());
        assert!("abc".parse::<EventId>().is_err());
    }
}
