//! Prekeys: forward secrecy for 1:1 envelopes (docs/PROTOCOL.md 7.1).
//!
//! Each identity keeps a few X25519 prekeys, makes a new one every [`ROTATE_EVERY`], and
//! publishes the public halves in a bundle signed by its current signing key. A sender
//! seals to the newest prekey of the newest bundle it holds, as long as that prekey's
//! `send_until` has not passed (the staleness bound); past it, the sender waits for a
//! fresh bundle and never falls back to the long-term key. The recipient deletes a
//! prekey's secret [`KEEP_AFTER`] after its `send_until`: by then every envelope sealed to
//! it has been read or has expired at the relay. Whoever later steals the home finds no
//! key that opens what the relay kept.
//!
//! The envelope format is unchanged (section 7): only the recipient key differs, so
//! nothing in the clear says whether a prekey or the long-term key was used.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

use super::b64;
use super::did::Did;
use super::identity::Identity;
use super::labels;
use super::secret::Secret32;
use super::signed::{Signed, peek_version};
use super::time::UnixMillis;

/// The card capability of a peer that publishes prekeys and takes envelopes sealed to them.
pub const FEATURE: &str = "prekeys";
/// A new prekey is made when the newest is this old.
pub const ROTATE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How long a prekey may be sealed to after it was made: the sender's staleness bound.
pub const SEND_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a prekey's secret outlives its `send_until`: the longest an envelope sealed to
/// it may wait unread at a relay (the relay's retention, 14 days by default). The outbox
/// does not add to it: it re-seals at every attempt.
pub const KEEP_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);
/// Most prekeys a bundle may list (a day's rotation for a week fits with room to spare).
pub const MAX_IN_BUNDLE: usize = 16;
/// Bundle format version.
pub const BUNDLE_VERSION: u64 = 1;

/// One prekey as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prekey {
    /// The X25519 public key.
    #[serde(with = "b64::fixed")]
    pub key: [u8; 32],
    /// When it was made.
    pub created: UnixMillis,
    /// Senders seal to it until this time, not after.
    pub send_until: UnixMillis,
}

/// A signed bundle's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Format version ([`BUNDLE_VERSION`]).
    pub v: u64,
    /// Whose prekeys.
    pub did: Did,
    /// When it was signed; a newer bundle replaces an older one.
    pub issued: UnixMillis,
    /// Live prekeys, any order.
    pub prekeys: Vec<Prekey>,
}

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not signed by the key we hold for the peer.
    #[error("prekey bundle: signature does not verify")]
    BadSignature,
    /// Not valid JSON of the bundle's shape.
    #[error("prekey bundle: malformed ({0})")]
    Malformed(String),
    /// A version this build does not read.
    #[error("prekey bundle: unsupported version {0}")]
    UnsupportedVersion(u64),
    /// Someone else's bundle.
    #[error("prekey bundle: for another identity")]
    WrongIdentity,
    /// No prekey, too many, or one that no sender could use safely (a low-order point).
    #[error("prekey bundle: {0}")]
    Invalid(&'static str),
}

impl Bundle {
    /// Verifies a bundle signed by `key` for `did`.
    pub fn verify(signed: &Signed, key: &VerifyingKey, did: &Did) -> Result<Self, BundleError> {
        signed.verify(labels::SIGN_PREKEYS, key).map_err(|_| BundleError::BadSignature)?;
        let v = peek_version(&signed.payload).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if v != BUNDLE_VERSION {
            return Err(BundleError::UnsupportedVersion(v));
        }
        let bundle: Bundle =
            serde_json::from_slice(&signed.payload).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if &bundle.did != did {
            return Err(BundleError::WrongIdentity);
        }
        if bundle.prekeys.is_empty() || bundle.prekeys.len() > MAX_IN_BUNDLE {
            return Err(BundleError::Invalid("it must list 1 to 16 prekeys"));
        }
        // A low-order key would make every envelope sealed to it readable by anyone.
        let probe = StaticSecret::from([7u8; 32]);
        if bundle.prekeys.iter().any(|p| !probe.diffie_hellman(&X25519Public::from(p.key)).was_contributory()) {
            return Err(BundleError::Invalid("a prekey is a low-order point"));
        }
        Ok(bundle)
    }

    /// The key to seal to at `now`: the usable prekey that stays usable longest. `None`
    /// when every prekey is past its `send_until` (the sender waits for a fresh bundle).
    pub fn seal_key(&self, now: UnixMillis) -> Option<X25519Public> {
        self.prekeys
            .iter()
            .filter(|p| p.send_until > now)
            .max_by_key(|p| p.send_until)
            .map(|p| X25519Public::from(p.key))
    }

    /// When the last usable prekey stops being usable.
    pub fn usable_until(&self) -> UnixMillis {
        self.prekeys.iter().map(|p| p.send_until).max().unwrap_or(UnixMillis(0))
    }
}

/// One of our prekeys with its secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrekeySecret {
    /// The X25519 secret.
    pub secret: Secret32,
    /// When it was made.
    pub created: UnixMillis,
    /// Senders seal to it until this time.
    pub send_until: UnixMillis,
}

impl std::fmt::Debug for PrekeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrekeySecret").field("created", &self.created).finish_non_exhaustive()
    }
}

impl PrekeySecret {
    /// The X25519 secret as a key.
    pub fn key(&self) -> StaticSecret {
        StaticSecret::from(*self.secret.expose())
    }

    /// Its public half, as published.
    pub fn public(&self) -> Prekey {
        Prekey { key: X25519Public::from(&self.key()).to_bytes(), created: self.created, send_until: self.send_until }
    }

    /// When its secret is deleted.
    pub fn delete_at(&self) -> UnixMillis {
        self.send_until.saturating_add(KEEP_AFTER)
    }
}

/// What [`OurPrekeys::maintain`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Maintained {
    /// A new prekey was made: peers need the new bundle.
    pub rotated: bool,
    /// Secrets deleted.
    pub deleted: usize,
}

/// Our prekeys with their secrets (the state file `prekeys.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OurPrekeys {
    /// Format version.
    pub v: u64,
    /// Newest last.
    pub keys: Vec<PrekeySecret>,
}

impl OurPrekeys {
    /// Deletes secrets past their time and makes a new prekey when the newest is
    /// [`ROTATE_EVERY`] old (or there is none).
    pub fn maintain(&mut self, now: UnixMillis, rng: &mut impl CryptoRngCore) -> Maintained {
        let before = self.keys.len();
        self.keys.retain(|k| k.delete_at() > now);
        let deleted = before - self.keys.len();
        let due = self.keys.last().is_none_or(|k| k.created.saturating_add(ROTATE_EVERY) <= now);
        if due {
            self.keys.push(PrekeySecret {
                secret: Secret32::random(rng),
                created: now,
                send_until: now.saturating_add(SEND_FOR),
            });
        }
        Maintained { rotated: due, deleted }
    }

    /// The signed bundle of the prekeys senders may still use (at most [`MAX_IN_BUNDLE`],
    /// newest). `None` before the first [`OurPrekeys::maintain`].
    pub fn bundle(&self, me: &Identity, now: UnixMillis) -> Option<Signed> {
        let live: Vec<Prekey> = self
            .keys
            .iter()
            .rev()
            .filter(|k| k.send_until > now)
            .take(MAX_IN_BUNDLE)
            .map(PrekeySecret::public)
            .collect();
        if live.is_empty() {
            return None;
        }
        let bundle = Bundle { v: BUNDLE_VERSION, did: me.did().clone(), issued: now, prekeys: live };
        Some(Signed::sign(me, labels::SIGN_PREKEYS, serde_json::to_vec(&bundle).expect("bundles serialize")))
    }

    /// Every secret still held, newest first (the order to try them in).
    pub fn secrets(&self) -> impl Iterator<Item = StaticSecret> + '_ {
        self.keys.iter().rev().map(PrekeySecret::key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::rng::SeededRng;

    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn rotation_keeps_a_week_of_prekeys_and_deletes_secrets_after_their_wait() {
        let me = Identity::from_secret_bytes(&[1; 32], [2; 32]);
        let mut rng = SeededRng::new(&Secret32::from_bytes([3; 32]), b"test");
        let mut ours = OurPrekeys { v: 1, keys: vec![] };
        let t0 = UnixMillis(1_700_000_000_000);
        assert!(ours.maintain(t0, &mut rng).rotated);
        assert!(!ours.maintain(UnixMillis(t0.0 + DAY - 1), &mut rng).rotated, "not before a day");
        for day in 1..=30 {
            ours.maintain(UnixMillis(t0.0 + day * DAY), &mut rng);
        }
        let now = UnixMillis(t0.0 + 30 * DAY);
        // Kept: made within the last 7 + 14 days.
        assert_eq!(ours.keys.len(), 21, "{:?}", ours.keys);
        assert!(ours.keys.iter().all(|k| k.delete_at() > now));
        let bundle = Bundle::verify(&ours.bundle(&me, now).unwrap(), &me.verifying_key(), me.did()).unwrap();
        assert_eq!(bundle.prekeys.len(), 7, "only those senders may use");
        assert_eq!(bundle.seal_key(now).unwrap().to_bytes(), ours.keys.last().unwrap().public().key);
        assert!(bundle.seal_key(UnixMillis(now.0 + 7 * DAY)).is_none(), "stale past the bound");
    }

    #[test]
    fn bundles_are_checked() {
        let me = Identity::from_secret_bytes(&[1; 32], [2; 32]);
        let other = Identity::from_secret_bytes(&[4; 32], [5; 32]);
        let mut rng = SeededRng::new(&Secret32::from_bytes([3; 32]), b"test");
        let mut ours = OurPrekeys::default();
        let now = UnixMillis(1_700_000_000_000);
        ours.maintain(now, &mut rng);
        let signed = ours.bundle(&me, now).unwrap();
        assert_eq!(Bundle::verify(&signed, &other.verifying_key(), me.did()), Err(BundleError::BadSignature));
        assert_eq!(Bundle::verify(&signed, &me.verifying_key(), other.did()), Err(BundleError::WrongIdentity));
        let low = Bundle {
            v: 1,
            did: me.did().clone(),
            issued: now,
            prekeys: vec![Prekey { key: [0; 32], created: now, send_until: now }],
        };
        let low = Signed::sign(&me, labels::SIGN_PREKEYS, serde_json::to_vec(&low).unwrap());
        assert!(matches!(Bundle::verify(&low, &me.verifying_key(), me.did()), Err(BundleError::Invalid(_))));
        let card_sig = Signed::sign(&me, labels::SIGN_CARD, signed.payload.clone());
        assert_eq!(Bundle::verify(&card_sig, &me.verifying_key(), me.did()), Err(BundleError::BadSignature));
    }
}
