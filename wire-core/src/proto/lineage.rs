//! Identity as a lineage (docs/PROTOCOL.md, "Identity lineage"): the inception DID is the
//! stable identifier, and signed statements move its current keys.
//!
//! - **Inception** (`seq` 0), signed by the inception key: commits to the hash of the next
//!   signing key ([`commit`]). Peers pin the commitment when they first see it.
//! - **Rotation** (`seq` n + 1): names the new signing and encryption keys and commits to
//!   the key after them. It is signed twice, by the current key and by the new one, and the
//!   new key must hash to the pinned commitment: a thief of the current key alone cannot
//!   rotate. Two different valid rotations for one `seq` freeze the pin.
//! - **Revocation**: signed by any key the lineage has held; once seen, the peer trusts the
//!   lineage no more. It can be signed ahead of time and kept offline.
//!
//! Pure: statements and the peer-side state machine ([`Pin`]) only; the runtime stores the
//! keys and the pins and carries statements in control messages.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::b64;
use super::did::Did;
use super::identity::Identity;
use super::labels;
use super::signed::{Signed, peek_version, signing_input};
use super::time::UnixMillis;

/// The statement format this build writes and reads.
pub const LINEAGE_VERSION: u64 = 1;

/// A 32-byte public key or hash, as base64url in JSON.
pub type Bytes32 = [u8; 32];

/// The commitment to a next signing key: SHA-256(`wire/v1/next-key` || 0x00 || key).
pub fn commit(next: &VerifyingKey) -> Bytes32 {
    Sha256::digest(signing_input(labels::NEXT_KEY, next.as_bytes())).into()
}

/// What a statement says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// The lineage's first keys and the commitment to the next signing key.
    Inception,
    /// New current keys (the committed ones) and a commitment to the key after them.
    Rotation,
    /// The lineage is no longer to be trusted.
    Revocation,
}

/// The signed content of a statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Format version, [`LINEAGE_VERSION`].
    pub v: u64,
    /// What it says.
    pub act: Act,
    /// The inception DID: the lineage's stable identifier.
    pub lineage: Did,
    /// Inception 0; each rotation one more. A revocation names the `seq` of its signing key.
    pub seq: u64,
    /// The Ed25519 key this statement establishes (inception, rotation) or is signed by
    /// (revocation).
    #[serde(with = "b64::fixed")]
    pub key: Bytes32,
    /// The X25519 key envelopes are sealed to from now on (inception, rotation).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub x25519: Option<Bytes32>,
    /// [`commit`] of the next signing key (inception, rotation).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub next: Option<Bytes32>,
    /// The digest of the statement this one succeeds (rotation).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub prior: Option<Bytes32>,
    /// When it was made.
    pub at: UnixMillis,
}

/// A signed statement: signed by the key it is made under, and for a rotation also by the
/// new key (`new_sig`), which proves the new key's holder made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedStatement {
    /// The signature of the current key (the inception key for an inception, the signing
    /// key named by a revocation) over `wire/v1/lineage`.
    #[serde(flatten)]
    pub signed: Signed,
    /// A rotation's signature by the new key over `wire/v1/lineage-new` and the same bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub new_sig: Option<[u8; 64]>,
}

/// Why a statement was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineageError {
    /// Not a statement, or a version this build does not read.
    #[error("not a lineage statement this build reads")]
    Malformed,
    /// About another lineage than the pin's.
    #[error("the statement is about another identity")]
    OtherLineage,
    /// A signature does not verify, or is missing.
    #[error("a lineage statement's signature does not verify")]
    BadSignature,
    /// A rotation to a key that is not the committed one: the current key may be stolen.
    #[error("a rotation to a key the identity never committed to was refused (its current key may be stolen)")]
    NotCommitted,
    /// A rotation that does not follow the pinned state (a gap, or an old one).
    #[error("a rotation out of order (seq {got}, expected {want})")]
    OutOfOrder {
        /// The statement's seq.
        got: u64,
        /// The one that would follow the pin.
        want: u64,
    },
    /// The pin is frozen or revoked: nothing moves it any more.
    #[error("this identity's pin is {0}; pair again to talk")]
    Closed(&'static str),
}

impl SignedStatement {
    fn sign(current: &Identity, statement: &Statement, new: Option<&Identity>) -> Self {
        let payload = serde_json::to_vec(statement).expect("a statement serialises");
        let new_sig = new.map(|n| n.sign(labels::SIGN_LINEAGE_NEW, &payload));
        Self { signed: Signed::sign(current, labels::SIGN_LINEAGE, payload), new_sig }
    }

    /// The statement inside, unverified.
    pub fn statement(&self) -> Result<Statement, LineageError> {
        if peek_version(&self.signed.payload).map_err(|_| LineageError::Malformed)? != LINEAGE_VERSION {
            return Err(LineageError::Malformed);
        }
        serde_json::from_slice(&self.signed.payload).map_err(|_| LineageError::Malformed)
    }

    /// SHA-256 of the signed bytes: what a rotation names as `prior`.
    pub fn digest(&self) -> Bytes32 {
        Sha256::digest(&self.signed.payload).into()
    }

    fn verify_by(&self, key: &Bytes32) -> Result<(), LineageError> {
        let key = VerifyingKey::from_bytes(key).map_err(|_| LineageError::BadSignature)?;
        self.signed.verify(labels::SIGN_LINEAGE, &key).map_err(|_| LineageError::BadSignature)
    }

    fn verify_new(&self, key: &Bytes32) -> Result<(), LineageError> {
        let sig = self.new_sig.ok_or(LineageError::BadSignature)?;
        let key = VerifyingKey::from_bytes(key).map_err(|_| LineageError::BadSignature)?;
        key.verify_strict(&signing_input(labels::SIGN_LINEAGE_NEW, &self.signed.payload), &Signature::from_bytes(&sig))
            .map_err(|_| LineageError::BadSignature)
    }
}

/// Our own side of a lineage: the keys in use (an [`Identity`] whose DID is the inception
/// DID) and the next signing key, kept until the rotation that reveals it.
pub struct Keys {
    /// The keys in use; `current.did()` is the lineage.
    pub current: Identity,
    /// The pre-committed next key pair (Ed25519 seed, X25519 secret), secret until used.
    pub next: Identity,
    /// The current `seq`.
    pub seq: u64,
    /// The digest of the statement that made the current keys current.
    pub last: Bytes32,
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keys").field("lineage", self.current.did()).field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Keys {
    /// The inception statement of a fresh lineage: `current` is the inception identity,
    /// `next` the key pair it commits to.
    pub fn incept(current: Identity, next: Identity, at: UnixMillis) -> (Self, SignedStatement) {
        let statement = Statement {
            v: LINEAGE_VERSION,
            act: Act::Inception,
            lineage: current.did().clone(),
            seq: 0,
            key: current.verifying_key().to_bytes(),
            x25519: Some(current.x25519_public().to_bytes()),
            next: Some(commit(&next.verifying_key())),
            prior: None,
            at,
        };
        let signed = SignedStatement::sign(&current, &statement, None);
        (Self { last: signed.digest(), current, next, seq: 0 }, signed)
    }

    /// Rotates to the committed next keys; `after` becomes the new next key pair. The
    /// rotation is signed by the current key and by the new one.
    pub fn rotate(self, after: Identity, at: UnixMillis) -> (Self, SignedStatement) {
        let (keys, statement, _) = self.rotate_retiring(after, at);
        (keys, statement)
    }

    /// [`Self::rotate`], also handing back the retired key pair (its encryption key still
    /// opens what was sealed to it for a while).
    pub fn rotate_retiring(self, after: Identity, at: UnixMillis) -> (Self, SignedStatement, Identity) {
        let lineage = self.current.did().clone();
        let new = self.next.in_lineage(lineage.clone());
        let statement = Statement {
            v: LINEAGE_VERSION,
            act: Act::Rotation,
            lineage,
            seq: self.seq + 1,
            key: new.verifying_key().to_bytes(),
            x25519: Some(new.x25519_public().to_bytes()),
            next: Some(commit(&after.verifying_key())),
            prior: Some(self.last),
            at,
        };
        let signed = SignedStatement::sign(&self.current, &statement, Some(&new));
        (Self { last: signed.digest(), current: new, next: after, seq: statement.seq }, signed, self.current)
    }

    /// A revocation under the current key: sign it now, keep it offline, publish it after
    /// the home is lost.
    pub fn revocation(&self, at: UnixMillis) -> SignedStatement {
        let statement = Statement {
            v: LINEAGE_VERSION,
            act: Act::Revocation,
            lineage: self.current.did().clone(),
            seq: self.seq,
            key: self.current.verifying_key().to_bytes(),
            x25519: None,
            next: None,
            prior: None,
            at,
        };
        SignedStatement::sign(&self.current, &statement, None)
    }
}

/// Where a pinned lineage stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Standing {
    /// Trusted; its statements move it.
    Active,
    /// Two different valid rotations for `seq` were seen: neither is accepted, the peer
    /// must be paired again.
    Frozen {
        /// The contested seq.
        seq: u64,
    },
    /// Revoked by its owner.
    Revoked {
        /// When the revocation says it was made.
        at: UnixMillis,
    },
}

/// A peer's lineage as pinned: the current keys, the commitment to the next one, and every
/// key it held before (a revocation may be signed by any of them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The inception DID.
    pub lineage: Did,
    /// The current seq.
    pub seq: u64,
    /// The current signing key.
    #[serde(with = "b64::fixed")]
    pub key: Bytes32,
    /// The current X25519 key, once a statement named it (else the card's).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub x25519: Option<Bytes32>,
    /// The commitment to the next signing key, once known.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub next: Option<Bytes32>,
    /// The digest of the statement that made `key` current (none before the inception
    /// statement is seen).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub last: Option<Bytes32>,
    /// Earlier signing keys, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<PastKey>,
    /// Active, frozen or revoked.
    pub standing: Standing,
}

/// A key a lineage held before, and when it stopped being current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastKey {
    /// The signing key.
    #[serde(with = "b64::fixed")]
    pub key: Bytes32,
    /// Its X25519 key, if a statement named it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]
    pub x25519: Option<Bytes32>,
    /// When the rotation away from it was applied.
    pub until: UnixMillis,
}

/// What applying a statement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Already applied (a duplicate).
    Unchanged,
    /// The commitment to the next key is now pinned.
    Committed,
    /// The current keys moved to `seq`.
    Rotated {
        /// The new seq.
        seq: u64,
    },
    /// A conflicting rotation: the pin is frozen.
    Frozen,
    /// The lineage is revoked.
    Revoked,
}

impl Pin {
    /// A peer pinned by its DID alone: the DID's key is current, no commitment known yet.
    pub fn of(lineage: &Did) -> Self {
        Pin {
            lineage: lineage.clone(),
            seq: 0,
            key: *lineage.key_bytes(),
            x25519: None,
            next: None,
            last: None,
            before: Vec::new(),
            standing: Standing::Active,
        }
    }

    /// Whether events signed by `key` are accepted: only the current key of an active pin.
    /// (A predecessor's key may be the stolen one the rotation ended: nothing it signs
    /// counts after the pin moved. The grace period after a rotation is the other way
    /// round: the rotated side still opens envelopes sealed to its old encryption key.)
    pub fn accepts(&self, key: &Bytes32) -> bool {
        self.standing == Standing::Active && key == &self.key
    }

    /// Whether `key` is one this lineage has held, now or before (a revocation may be signed
    /// by any of them).
    pub fn held(&self, key: &Bytes32) -> bool {
        key == &self.key || self.before.iter().any(|p| &p.key == key)
    }

    /// Applies a statement received at `now`.
    pub fn apply(&mut self, signed: &SignedStatement, now: UnixMillis) -> Result<Change, LineageError> {
        let s = signed.statement()?;
        if s.lineage != self.lineage {
            return Err(LineageError::OtherLineage);
        }
        if let Standing::Revoked { .. } = self.standing {
            return Err(LineageError::Closed("revoked"));
        }
        match s.act {
            Act::Revocation => {
                if !self.held(&s.key) {
                    return Err(LineageError::BadSignature);
                }
                signed.verify_by(&s.key)?;
                self.standing = Standing::Revoked { at: s.at };
                Ok(Change::Revoked)
            }
            _ if matches!(self.standing, Standing::Frozen { .. }) => Err(LineageError::Closed("frozen")),
            Act::Inception => {
                if s.seq != 0 || s.key != *self.lineage.key_bytes() {
                    return Err(LineageError::BadSignature);
                }
                signed.verify_by(&s.key)?;
                match self.last {
                    // Seen before: the same one changes nothing; another one, once we moved on
                    // or for seq 0, is a conflict.
                    Some(last) if last == signed.digest() || self.seq > 0 => Ok(Change::Unchanged),
                    Some(_) => {
                        self.standing = Standing::Frozen { seq: 0 };
                        Ok(Change::Frozen)
                    }
                    None => {
                        self.next = s.next;
                        self.x25519 = s.x25519;
                        self.last = Some(signed.digest());
                        Ok(Change::Committed)
                    }
                }
            }
            Act::Rotation => self.rotate(signed, &s, now),
        }
    }

    fn rotate(&mut self, signed: &SignedStatement, s: &Statement, now: UnixMillis) -> Result<Change, LineageError> {
        if s.seq <= self.seq {
            // The one we applied is a duplicate; any other valid one for that seq is a
            // second successor: freeze. (Older seqs are history: ignored.)
            if s.seq == self.seq && self.last != Some(signed.digest()) && self.valid_past_rotation(signed, s) {
                self.standing = Standing::Frozen { seq: s.seq };
                return Ok(Change::Frozen);
            }
            return Ok(Change::Unchanged);
        }
        if s.seq != self.seq + 1 {
            return Err(LineageError::OutOfOrder { got: s.seq, want: self.seq + 1 });
        }
        signed.verify_by(&self.key)?;
        let new = VerifyingKey::from_bytes(&s.key).map_err(|_| LineageError::BadSignature)?;
        match self.next {
            Some(committed) if committed == commit(&new) => {}
            _ => return Err(LineageError::NotCommitted),
        }
        signed.verify_new(&s.key)?;
        if s.prior != self.last || s.next.is_none() || s.x25519.is_none() {
            return Err(LineageError::Malformed);
        }
        self.before.push(PastKey { key: self.key, x25519: self.x25519, until: now });
        self.seq = s.seq;
        self.key = s.key;
        self.x25519 = s.x25519;
        self.next = s.next;
        self.last = Some(signed.digest());
        Ok(Change::Rotated { seq: s.seq })
    }

    /// Whether `signed`, a rotation to the seq we are at, would have been valid from the
    /// state before it: signed by the key we held then, to the committed key (the one we
    /// rotated to; a second successor made from the same home reveals it too).
    fn valid_past_rotation(&self, signed: &SignedStatement, s: &Statement) -> bool {
        let Some(previous) = self.before.last() else { return false };
        s.key == self.key && signed.verify_by(&previous.key).is_ok() && signed.verify_new(&s.key).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMillis = UnixMillis(1_790_000_000_000);

    fn id(seed: u8) -> Identity {
        Identity::from_secret_bytes(&[seed; 32], [seed ^ 0xff; 32])
    }

    fn lineage() -> (Keys, SignedStatement) {
        Keys::incept(id(1), id(2), T)
    }

    #[test]
    fn a_rotation_moves_the_pin_and_retires_the_predecessor() {
        let (keys, inception) = lineage();
        let mut pin = Pin::of(keys.current.did());
        assert_eq!(pin.apply(&inception, T).unwrap(), Change::Committed);
        assert_eq!(pin.apply(&inception, T).unwrap(), Change::Unchanged);
        let old = keys.current.verifying_key().to_bytes();
        let (keys, rotation) = keys.rotate(id(3), T);
        assert_eq!(keys.current.did(), &pin.lineage, "the DID stays the inception DID");
        assert_eq!(pin.apply(&rotation, T).unwrap(), Change::Rotated { seq: 1 });
        assert_eq!(pin.key, keys.current.verifying_key().to_bytes());
        assert_eq!(pin.apply(&rotation, T).unwrap(), Change::Unchanged);
        assert!(!pin.accepts(&old) && pin.held(&old) && pin.accepts(&pin.key.clone()));
        // And again: the chain continues from the new state.
        let (_, second) = keys.rotate(id(4), T);
        assert_eq!(pin.apply(&second, T).unwrap(), Change::Rotated { seq: 2 });
    }

    #[test]
    fn a_stolen_current_key_cannot_rotate() {
        let (keys, inception) = lineage();
        let mut pin = Pin::of(keys.current.did());
        pin.apply(&inception, T).unwrap();
        // The thief holds the current key, not the committed next one: it rotates to its own.
        let thief = Keys { current: id(1), next: id(66), seq: 0, last: inception.digest() };
        let (_, forged) = thief.rotate(id(67), T);
        assert_eq!(pin.apply(&forged, T), Err(LineageError::NotCommitted));
        // Nor can it pass off the committed public key without its secret (no new signature).
        let (_, mut real) = keys.rotate(id(3), T);
        real.new_sig = None;
        assert_eq!(pin.apply(&real, T), Err(LineageError::BadSignature));
        assert_eq!(pin.seq, 0);
    }

    #[test]
    fn two_different_successions_freeze_the_pin() {
        let (keys, inception) = lineage();
        let mut pin = Pin::of(keys.current.did());
        pin.apply(&inception, T).unwrap();
        // Whoever stole the whole home rotates too: same next key, another key after it.
        let twin = Keys { current: id(1), next: id(2), seq: 0, last: inception.digest() };
        let (_, one) = keys.rotate(id(3), T);
        let (_, other) = twin.rotate(id(99), T);
        assert_eq!(pin.apply(&one, T).unwrap(), Change::Rotated { seq: 1 });
        assert_eq!(pin.apply(&other, T).unwrap(), Change::Frozen);
        assert_eq!(pin.standing, Standing::Frozen { seq: 1 });
        assert!(!pin.accepts(&pin.key.clone()));
        assert_eq!(pin.apply(&one, T), Err(LineageError::Closed("frozen")));
    }

    #[test]
    fn a_revocation_signed_ahead_of_time_ends_the_lineage_even_after_a_rotation() {
        let (keys, inception) = lineage();
        let mut pin = Pin::of(keys.current.did());
        pin.apply(&inception, T).unwrap();
        let revocation = keys.revocation(T);
        let (keys, rotation) = keys.rotate(id(3), T);
        pin.apply(&rotation, T).unwrap();
        assert_eq!(pin.apply(&revocation, T).unwrap(), Change::Revoked);
        assert!(!pin.accepts(&keys.current.verifying_key().to_bytes()));
        // A revocation by a key the lineage never held is refused.
        let stranger = Keys::incept(id(50), id(51), T).0.revocation(T);
        let mut forged = stranger.clone();
        let mut s = stranger.statement().unwrap();
        s.lineage = pin.lineage.clone();
        forged.signed.payload = serde_json::to_vec(&s).unwrap();
        let mut fresh = Pin::of(&pin.lineage);
        assert_eq!(fresh.apply(&forged, T), Err(LineageError::BadSignature));
    }

    #[test]
    fn bad_statements_are_refused_and_change_nothing() {
        let (keys, inception) = lineage();
        let mut pin = Pin::of(keys.current.did());
        let mut tampered = inception.clone();
        tampered.signed.payload[10] ^= 1;
        assert!(pin.apply(&tampered, T).is_err());
        let other = Keys::incept(id(9), id(10), T).1;
        assert_eq!(pin.apply(&other, T), Err(LineageError::OtherLineage));
        assert_eq!(pin, Pin::of(keys.current.did()));
        // A rotation before the commitment is known cannot be checked: refused.
        let (_, rotation) = keys.rotate(id(3), T);
        assert_eq!(pin.apply(&rotation, T), Err(LineageError::NotCommitted));
        let json = serde_json::to_string(&inception).unwrap();
        assert_eq!(serde_json::from_str::<SignedStatement>(&json).unwrap(), inception);
    }
}
