//! Agent cards: the signed statement "this DID seals to this X25519 key and is reachable
//! at these relay slots".

use serde::{Deserialize, Serialize};
use x25519_dalek::PublicKey as X25519Public;

use super::api::SlotId;
use super::b64;
use super::character::Character;
use super::did::Did;
use super::identity::Identity;
use super::labels;
use super::lineage::{LineageError, Pin, SignedStatement, Standing};
use super::signed::{Signed, peek_version};
use super::time::UnixMillis;
use ed25519_dalek::VerifyingKey;

/// The capability prefix of a card's machine tag.
pub const MACHINE_PREFIX: &str = "machine:";

/// The card format this build writes and reads.
pub const CARD_VERSION: u64 = 1;

/// Where an agent can be reached: a relay and a mailbox slot on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Base URL of the relay (`https://relay.example` or `http://127.0.0.1:8771`).
    pub relay: String,
    /// The slot id on that relay.
    pub slot: SlotId,
}

/// The signed content of a card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBody {
    /// Format version, [`CARD_VERSION`].
    pub v: u64,
    /// The agent's DID; its key signs the card.
    pub did: Did,
    /// X25519 public key that envelopes for this agent are sealed to.
    #[serde(with = "b64::fixed")]
    pub x25519: [u8; 32],
    /// Reachability, in order of preference.
    pub endpoints: Vec<Endpoint>,
    /// Event kinds (and future feature flags) this agent accepts.
    pub capabilities: Vec<String>,
    /// When the card was issued. A newer card from the same DID supersedes an older one.
    pub created_at: UnixMillis,
    /// The identity's lineage statements, inception first (docs/PROTOCOL.md, "Identity
    /// lineage"): present once the identity rotated, or to hand a peer the commitment to
    /// its next key. Then the card is signed by the key the statements make current, and
    /// `x25519` is theirs. Absent: signed by the DID's own key, as before lineages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<SignedStatement>,
}

/// A card whose signature has been verified against its own DID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    signed: Signed,
    body: CardBody,
}

/// Why a card was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// Not a signed document or not a card body.
    #[error("malformed agent card: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A card version this build does not read.
    #[error("agent card version {0} is not supported (expected {CARD_VERSION}); the peer may run a newer wire")]
    UnsupportedVersion(u64),
    /// The signature does not verify under the key the card's DID encodes: the card was
    /// altered, or signed by a key other than the DID it claims.
    #[error("agent card signature does not match its DID (tampered, or signed by another key)")]
    BadSignature,
    /// The lineage statements it carries do not lead from its DID to the key that signed it.
    #[error("agent card lineage does not verify: {0}")]
    Lineage(LineageError),
    /// Larger than any card this build issues: refused before it is kept anywhere.
    #[error("agent card is {0} bytes; at most {MAX_CARD_BYTES} are accepted")]
    TooLarge(usize),
}

/// Largest card payload accepted. A card with its key, a few endpoints and capabilities is
/// under 1 KiB; the bound keeps what a stranger can make us store (pending requests, peers)
/// small.
pub const MAX_CARD_BYTES: usize = 16 * 1024;

impl Card {
    /// Issues and signs a card for `identity`.
    pub fn issue(identity: &Identity, endpoints: Vec<Endpoint>, capabilities: Vec<String>, now: UnixMillis) -> Self {
        Self::issue_in_lineage(identity, endpoints, capabilities, now, Vec::new())
    }

    /// Issues a card that carries `lineage` (inception first); `identity` holds the keys
    /// the statements make current.
    pub fn issue_in_lineage(
        identity: &Identity,
        endpoints: Vec<Endpoint>,
        capabilities: Vec<String>,
        now: UnixMillis,
        lineage: Vec<SignedStatement>,
    ) -> Self {
        let body = CardBody {
            v: CARD_VERSION,
            did: identity.did().clone(),
            x25519: identity.x25519_public().to_bytes(),
            endpoints,
            capabilities,
            created_at: now,
            lineage,
        };
        let payload = serde_json::to_vec(&body).expect("card body serializes");
        Self { signed: Signed::sign(identity, labels::SIGN_CARD, payload), body }
    }

    /// Verifies a signed card: known version, well-formed body, signature by the DID's key.
    pub fn verify(signed: Signed) -> Result<Self, CardError> {
        if signed.payload.len() > MAX_CARD_BYTES {
            return Err(CardError::TooLarge(signed.payload.len()));
        }
        let v = peek_version(&signed.payload).map_err(CardError::Malformed)?;
        if v != CARD_VERSION {
            return Err(CardError::UnsupportedVersion(v));
        }
        let body: CardBody = serde_json::from_slice(&signed.payload).map_err(CardError::Malformed)?;
        let key = match body.lineage.as_slice() {
            [] => body.did.verifying_key(),
            statements => {
                let pin = Self::replay(&body.did, statements, body.created_at)?;
                if pin.x25519.is_some_and(|x| x != body.x25519) {
                    return Err(CardError::Lineage(LineageError::Malformed));
                }
                VerifyingKey::from_bytes(&pin.key).map_err(|_| CardError::BadSignature)?
            }
        };
        signed.verify(labels::SIGN_CARD, &key).map_err(|_| CardError::BadSignature)?;
        Ok(Self { signed, body })
    }

    /// The pin a stranger derives from a card's statements alone, from its DID on.
    fn replay(did: &Did, statements: &[SignedStatement], at: UnixMillis) -> Result<Pin, CardError> {
        let mut pin = Pin::of(did);
        for statement in statements {
            pin.apply(statement, at).map_err(CardError::Lineage)?;
        }
        if pin.standing != Standing::Active {
            return Err(CardError::Lineage(LineageError::Closed("not active")));
        }
        Ok(pin)
    }

    /// The lineage as this card alone shows it: its statements replayed from its DID (for a
    /// card without statements, the DID's own key and no commitment).
    pub fn lineage_pin(&self) -> Pin {
        Self::replay(&self.body.did, &self.body.lineage, self.body.created_at)
            .unwrap_or_else(|_| Pin::of(&self.body.did))
    }

    /// The key its owner signs with now: the one its statements make current (the DID's
    /// own key for a card without statements).
    pub fn current_key(&self) -> VerifyingKey {
        VerifyingKey::from_bytes(&self.lineage_pin().key).unwrap_or_else(|_| self.body.did.verifying_key())
    }

    /// The lineage statements the card carries (empty for a card signed by its DID's key).
    pub fn lineage(&self) -> &[SignedStatement] {
        &self.body.lineage
    }

    /// Parses and verifies the JSON form `{"payload":..,"sig":..}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CardError> {
        Self::verify(serde_json::from_slice(bytes).map_err(CardError::Malformed)?)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.signed).expect("signed document serializes")
    }

    /// The signed document, to embed in other messages.
    pub fn signed(&self) -> &Signed {
        &self.signed
    }

    /// The verified content.
    pub fn body(&self) -> &CardBody {
        &self.body
    }

    /// The card's DID.
    pub fn did(&self) -> &Did {
        &self.body.did
    }

    /// The X25519 key to seal to.
    pub fn x25519_public(&self) -> X25519Public {
        X25519Public::from(self.body.x25519)
    }

    /// The machine tag the card lists (`machine:<hex>`), if any: two cards with the same
    /// tag were issued on the same machine, so their Unix-socket and loopback addresses mean
    /// the same thing to both.
    pub fn machine(&self) -> Option<&str> {
        self.body.capabilities.iter().find_map(|c| c.strip_prefix(MACHINE_PREFIX))
    }

    /// Whether the card lists `capability` (a kind or a feature flag).
    pub fn speaks(&self, capability: &str) -> bool {
        self.body.capabilities.iter().any(|c| c == capability)
    }

    /// The agent's character (emoji, nickname, palette).
    pub fn character(&self) -> Character {
        Character::of(&self.body.did)
    }
}

impl Serialize for Card {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.signed.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Card {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::verify(Signed::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
