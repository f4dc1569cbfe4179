//! Rooms: end-to-end encrypted group channels on MLS (RFC 9420), carried by a relay room
//! slot (docs/PROTOCOL.md, "Rooms").
//!
//! - A room is named by a key of its own: its id is the `did:key` of an Ed25519 key the
//!   owner draws at creation. The room key signs the room's [`Policy`] (owner, admins,
//!   owner-only-write, the welcome text, the per-member rate), which every member checks.
//!   Messages are wire events `to` that DID, so they verify like 1:1 events.
//! - The relay slot holds one envelope per message, in the 1:1 envelope format: version,
//!   32 random bytes, the padded MLS message sealed under the room's wrap key (shared with
//!   members in the Welcome), tag. The relay cannot tell a room envelope from a 1:1 one,
//!   nor the MLS message's length within its size bucket.
//! - Everything a member holds about its rooms, MLS store included, is one file written
//!   atomically ([`RoomsFile`]): a crash leaves the state before or after a batch, never
//!   between the MLS state and the cursor.

pub mod mls;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::proto::api::SlotId;
use crate::proto::did::Did;
use crate::proto::envelope::{BUCKETS, ENVELOPE_VERSION, OVERHEAD, bucket_for};
use crate::proto::identity::Identity;
use crate::proto::secret::Token;
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// Signature label of room invites.
pub const SIGN_INVITE: &[u8] = b"wire/v1/room-invite";
/// The room invite URL's prefix.
pub const INVITE_PREFIX: &str = "wire://room?";
/// Signature label of room policies.
pub const SIGN_POLICY: &[u8] = b"wire/v1/room-policy";
/// HKDF label of the room wrap.
const WRAP: &[u8] = b"wire/v1/room-wrap";
/// Default posts per member per minute that every receiver accepts.
pub const DEFAULT_RATE: u32 = 6;
/// The highest rate an owner may set.
pub const MAX_RATE: u32 = 10_000;
/// Longest room name.
pub const MAX_NAME: usize = 64;
/// Longest welcome text.
pub const MAX_WELCOME: usize = 2_000;

/// A room's rules, signed by the room key. Every member keeps the newest it has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version.
    pub v: u64,
    /// The room (the room key's DID).
    pub room: Did,
    /// Its name, as the owner gave it.
    pub name: String,
    /// The owner's lineage.
    pub owner: Did,
    /// Members who may add and remove (besides the owner).
    #[serde(default)]
    pub admins: Vec<Did>,
    /// Only the owner (and admins) may post.
    #[serde(default)]
    pub owner_only_write: bool,
    /// Members join only when added or invited (always, this version).
    pub invite_only: bool,
    /// What a member reads on joining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<String>,
    /// Posts per member per minute every receiver accepts; more are dropped.
    pub rate_per_minute: u32,
    /// When signed; a newer policy replaces an older one.
    pub created_at: UnixMillis,
}

/// Why a room document was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// A policy that is not signed by its room's key, or malformed.
    #[error("room policy: {0}")]
    Policy(String),
    /// A room name or welcome out of bounds.
    #[error("{0}")]
    Bad(String),
}

impl Policy {
    /// Whether `did` may add and remove members.
    pub fn manages(&self, did: &Did) -> bool {
        &self.owner == did || self.admins.contains(did)
    }

    /// Whether `did` may post.
    pub fn may_post(&self, did: &Did) -> bool {
        !self.owner_only_write || self.manages(did)
    }

    /// Signs the policy with the room key.
    pub fn sign(&self, room_key: &Identity) -> Signed {
        Signed::sign(room_key, SIGN_POLICY, serde_json::to_vec(self).expect("policies serialize"))
    }

    /// Checks a signed policy for `room`.
    pub fn verify(signed: &Signed, room: &Did) -> Result<Self, RoomError> {
        signed.verify(SIGN_POLICY, &room.verifying_key()).map_err(|_| RoomError::Policy("bad signature".into()))?;
        let policy: Policy = serde_json::from_slice(&signed.payload).map_err(|e| RoomError::Policy(e.to_string()))?;
        if &policy.room != room || policy.v != 1 {
            return Err(RoomError::Policy("for another room, or another version".into()));
        }
        Ok(policy)
    }
}

/// Checks a room name: 1 to 64 characters, letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), RoomError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RoomError::Bad(format!(
            "a room name is 1 to {MAX_NAME} letters, digits, `-`, `_` or `.` (got `{}`)",
            name.escape_debug()
        )))
    }
}

// ------------------------------------------------------------------ control messages

/// The fields of rooms' control messages (docs/PROTOCOL.md 14), typed. Unknown fields are
/// ignored (formats that evolve add fields).
pub mod msg {
    use serde::{Deserialize, Serialize};

    use crate::proto::api::SlotId;
    use crate::proto::did::Did;
    use crate::proto::secret::{Secret32, Token};
    use crate::proto::signed::Signed;

    /// `room_kp_request`: send me a key package for this room.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct KpRequest {
        /// The room.
        pub room: Did,
        /// Its name.
        pub name: String,
    }

    /// `room_key_package`: the answer.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct KeyPackage {
        /// The room.
        pub room: Did,
        /// The MLS key package.
        #[serde(with = "crate::proto::b64::bytes")]
        pub key_package: Vec<u8>,
    }

    /// `room_welcome`: what a new member needs.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Welcome {
        /// The room.
        pub room: Did,
        /// Its policy, signed by the room key.
        pub policy: Signed,
        /// The relay of the room slot.
        pub relay: String,
        /// The room slot.
        pub slot: SlotId,
        /// The new member's grant.
        pub token: Token,
        /// The envelope wrap's key.
        #[serde(with = "crate::proto::b64::fixed")]
        pub wrap_key: [u8; 32],
        /// The MLS Welcome.
        #[serde(with = "crate::proto::b64::bytes")]
        pub welcome: Vec<u8>,
        /// The sequence number of the commit that added the member: it reads after it.
        pub after: u64,
    }

    /// `room_admin`: an admin grant, from the owner.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Admin {
        /// The room.
        pub room: Did,
        /// The admin grant.
        pub token: Token,
    }

    /// `room_policy` (inside the room): a newer policy.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct PolicyUpdate {
        /// Signed by the room key.
        pub policy: Signed,
    }

    /// `room_join`: a join request by room invite.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Join {
        /// The room.
        pub room: Did,
        /// The invite's id.
        #[serde(with = "crate::proto::b64::fixed")]
        pub invite: [u8; 16],
        /// The invite's secret.
        pub secret: Secret32,
        /// The joiner's signed card.
        pub card: Signed,
        /// Its MLS key package.
        #[serde(with = "crate::proto::b64::bytes")]
        pub key_package: Vec<u8>,
        /// A send token on its mailbox, for the Welcome.
        pub send_token: Token,
        /// Its signed prekey bundle, so the Welcome is sealed to a prekey.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prekeys: Option<Signed>,
    }

    /// A room message's body: the text (or JSON) and the members it mentions.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Post {
        /// What was said.
        pub body: serde_json::Value,
        /// Members woken by it.
        #[serde(default)]
        pub mentions: Vec<Did>,
    }
}

// ------------------------------------------------------------------ room invites

/// What a room invite URL carries, signed by the inviter (owner or admin): where to post a
/// join request once (its mailbox and an intro token), the secret the joiner proves it saw,
/// and the room it leads to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Format version (1).
    pub v: u64,
    /// Random invite id; the inviter tracks its use by it.
    #[serde(with = "crate::proto::b64::fixed")]
    pub id: [u8; 16],
    /// The room.
    pub room: Did,
    /// Its name (as the inviter shows it).
    pub name: String,
    /// The inviter's signed card.
    pub card: Signed,
    /// The inviter's relay.
    pub relay: String,
    /// The inviter's mailbox.
    pub slot: SlotId,
    /// Lets the joiner post its join request there once.
    pub intro_token: Token,
    /// What the joiner proves it saw.
    pub secret: crate::proto::secret::Secret32,
    /// After this the invite is refused.
    pub expires_at: UnixMillis,
}

/// A verified room invite.
#[derive(Debug, Clone)]
pub struct RoomInvite {
    /// The content.
    pub body: InviteBody,
    /// The inviter's card, verified.
    pub inviter: crate::proto::card::Card,
}

impl RoomInvite {
    /// Signs `body` as `inviter` and gives the URL.
    pub fn url(inviter: &Identity, body: &InviteBody) -> String {
        let signed = Signed::sign(inviter, SIGN_INVITE, serde_json::to_vec(body).expect("invites serialize"));
        crate::proto::invite::signed_to_url(INVITE_PREFIX, &signed)
    }

    /// Parses and verifies a room invite URL, refusing it if expired at `now`.
    pub fn parse(url: &str, now: UnixMillis) -> Result<Self, crate::proto::invite::InviteError> {
        use crate::proto::invite::InviteError;
        let signed = crate::proto::invite::signed_from_url(INVITE_PREFIX, url)?;
        let body: InviteBody = serde_json::from_slice(&signed.payload).map_err(|_| InviteError::Corrupted)?;
        let inviter = crate::proto::card::Card::verify(body.card.clone()).map_err(|_| InviteError::Tampered)?;
        signed.verify(SIGN_INVITE, &inviter.current_key()).map_err(|_| InviteError::Tampered)?;
        if now >= body.expires_at {
            return Err(InviteError::Expired { expired_at: body.expires_at });
        }
        Ok(Self { body, inviter })
    }
}

/// An invite we issued, until it is used or expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issued {
    /// Its id.
    #[serde(with = "crate::proto::b64::fixed")]
    pub id: [u8; 16],
    /// The room.
    pub room: Did,
    /// The secret a join request must carry.
    pub secret: crate::proto::secret::Secret32,
    /// When it stops.
    pub expires_at: UnixMillis,
}

/// A room we asked to join by invite: who will send the Welcome (not a paired peer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joining {
    /// The room.
    pub room: Did,
    /// The inviter's card (its Welcome is verified under it).
    pub card: Signed,
    /// When we asked.
    pub at: UnixMillis,
}

/// How to reach a member added by invite (not a paired peer) with its Welcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    /// The member.
    pub did: Did,
    /// Its card, from its join request.
    pub card: Signed,
    /// A send token on its mailbox it gave for the Welcome (it expires by itself).
    pub token: Token,
    /// Its signed prekey bundle, from its join request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prekeys: Option<Signed>,
}

// ------------------------------------------------------------------ the envelope wrap

fn wrap_keys(wrap_key: &[u8; 32], nonce_seed: &[u8]) -> Zeroizing<[u8; 44]> {
    let hk = Hkdf::<Sha256>::new(Some(WRAP), wrap_key);
    let mut okm = Zeroizing::new([0u8; 44]);
    let mut info = WRAP.to_vec();
    info.push(ENVELOPE_VERSION);
    info.extend_from_slice(nonce_seed);
    hk.expand(&info, okm.as_mut()).expect("44 bytes is a valid HKDF length");
    okm
}

/// Seals an MLS message for the room slot: `0x01 || r (32 random) || AEAD(padded) || tag`,
/// key and nonce from HKDF(wrap key, r). `None` if it fits no bucket.
pub fn wrap(wrap_key: &[u8; 32], mls: &[u8], rng: &mut impl CryptoRngCore) -> Option<Vec<u8>> {
    let bucket = bucket_for(mls.len())?;
    let mut padded = Zeroizing::new(Vec::with_capacity(bucket));
    padded.extend_from_slice(&(mls.len() as u32).to_be_bytes());
    padded.extend_from_slice(mls);
    padded.resize(bucket, 0);
    let mut r = [0u8; 32];
    rng.fill_bytes(&mut r);
    let okm = wrap_keys(wrap_key, &r);
    let cipher = ChaCha20Poly1305::new_from_slice(&okm[..32]).expect("32-byte key");
    let mut aad = vec![ENVELOPE_VERSION];
    aad.extend_from_slice(&r);
    let sealed = cipher.encrypt(okm[32..].into(), Payload { msg: &padded, aad: &aad }).ok()?;
    let mut out = aad;
    out.extend_from_slice(&sealed);
    Some(out)
}

/// Opens what [`wrap`] sealed; `None` for anything else (another room, damage).
pub fn unwrap(wrap_key: &[u8; 32], envelope: &[u8]) -> Option<Vec<u8>> {
    if envelope.len() < OVERHEAD || envelope[0] != ENVELOPE_VERSION || !BUCKETS.contains(&(envelope.len() - OVERHEAD)) {
        return None;
    }
    let (aad, sealed) = envelope.split_at(33);
    let okm = wrap_keys(wrap_key, &aad[1..]);
    let cipher = ChaCha20Poly1305::new_from_slice(&okm[..32]).expect("32-byte key");
    let padded = Zeroizing::new(cipher.decrypt(okm[32..].into(), Payload { msg: sealed, aad }).ok()?);
    let len = u32::from_be_bytes(padded.get(..4)?.try_into().ok()?) as usize;
    padded.get(4..4 + len).map(<[u8]>::to_vec)
}

// ------------------------------------------------------------------ what a member keeps

/// Our part in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created it: holds the room key and the slot's owner token.
    Owner,
    /// May add and remove members (holds an admin grant).
    Admin,
    /// Reads and posts.
    Member,
}

/// Where a room stands for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// A member.
    Active,
    /// Removed by a commit.
    Removed,
    /// We left.
    Left,
}

/// A member we are adding: asked for a key package, then committed, then welcomed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAdd {
    /// Who.
    pub did: Did,
    /// Its key package, once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::proto::b64::opt_bytes")]
    pub key_package: Option<Vec<u8>>,
    /// When we asked.
    pub asked_at: UnixMillis,
}

/// A commit of ours posted to the slot and not yet read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingCommit {
    /// SHA-256 of the envelope we posted: reading it back first in its epoch merges it.
    #[serde(with = "crate::proto::b64::fixed")]
    pub hash: [u8; 32],
    /// The envelope, posted again if the post failed.
    #[serde(with = "crate::proto::b64::bytes")]
    pub envelope: Vec<u8>,
    /// Whether the relay acknowledged it.
    pub posted: bool,
    /// The epoch it was made in.
    pub epoch: u64,
    /// Members it adds (their Welcome goes out once it is merged).
    #[serde(default)]
    pub adds: Vec<Did>,
    /// Members it removes (their grants are revoked once it is merged).
    #[serde(default)]
    pub removes: Vec<Did>,
    /// The Welcome for `adds`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::proto::b64::opt_bytes")]
    pub welcome: Option<Vec<u8>>,
    /// Set once it was read back and merged: its sequence number in the slot. What it owes
    /// (Welcomes, revocations) is sent next, then the commit is forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<u64>,
}

/// One room, as a member keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Room {
    /// The room's DID (its key's).
    pub id: Did,
    /// The newest policy, signed by the room key.
    pub policy: Signed,
    /// Our part.
    pub role: Role,
    /// Where we stand.
    pub standing: Standing,
    /// The relay of the room slot.
    pub relay: String,
    /// The room slot.
    pub slot: SlotId,
    /// Our token on it: owner, admin or member.
    pub token: Token,
    /// The key of the envelope wrap.
    #[serde(with = "crate::proto::b64::fixed")]
    pub wrap_key: [u8; 32],
    /// The room key (the owner's only): it signs policies.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::proto::b64::opt_fixed")]
    pub room_secret: Option<[u8; 32]>,
    /// The last slot sequence number we processed.
    pub cursor: u64,
    /// Members being added.
    #[serde(default)]
    pub adds: Vec<PendingAdd>,
    /// Members to remove.
    #[serde(default)]
    pub removes: Vec<Did>,
    /// Our commit in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<PendingCommit>,
    /// Member grants we minted, by member (revoked on removal).
    #[serde(default)]
    pub grants: Vec<(Did, String)>,
    /// Grants of removed members still to revoke (the removal was merged).
    #[serde(default)]
    pub revoke: Vec<String>,
    /// Envelopes evicted before we read them, and refused ones.
    #[serde(default)]
    pub missed: u64,
    /// Messages and commits refused (forged, over the rate, not allowed).
    #[serde(default)]
    pub refused: u64,
    /// Members added by invite, until their Welcome is sent.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Lines of the room's inbox the agent has seen through `wire room wait` (each is
    /// looked at once; those not addressed to us are not shown there, only in the tail).
    #[serde(default)]
    pub seen: u64,
    /// When we joined or created it.
    pub joined_at: UnixMillis,
}

/// Where a member reads a room: its relay, slot and our token there.
#[derive(Debug, Clone)]
pub struct Place {
    /// The relay of the room slot.
    pub relay: String,
    /// The room slot.
    pub slot: SlotId,
    /// Our token on it.
    pub token: Token,
}

impl Room {
    /// A room we just created or joined, with nothing in flight.
    pub fn new(
        id: Did,
        policy: Signed,
        role: Role,
        place: Place,
        wrap_key: [u8; 32],
        cursor: u64,
        now: UnixMillis,
    ) -> Self {
        Room {
            id,
            policy,
            role,
            standing: Standing::Active,
            relay: place.relay,
            slot: place.slot,
            token: place.token,
            wrap_key,
            room_secret: None,
            cursor,
            adds: Vec::new(),
            removes: Vec::new(),
            commit: None,
            grants: Vec::new(),
            revoke: Vec::new(),
            missed: 0,
            refused: 0,
            routes: Vec::new(),
            seen: 0,
            joined_at: now,
        }
    }

    /// The policy (it was verified when stored).
    pub fn policy(&self) -> Policy {
        serde_json::from_slice(&self.policy.payload).expect("stored policies were verified")
    }

    /// Whether `name` names this room: its name, its DID, or a prefix of the DID's key.
    pub fn named(&self, name: &str) -> bool {
        let id = self.id.as_str();
        self.policy().name == name
            || id == name
            || (name.len() >= 8 && id.trim_start_matches("did:key:").starts_with(name))
    }
}

/// Rooms we were asked a key package for, by whom: a Welcome is taken only from a peer we
/// gave a key package for that room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asked {
    /// The room.
    pub room: Did,
    /// The peer that asked.
    pub by: Did,
    /// When.
    pub at: UnixMillis,
}

/// Everything about rooms in one home, written atomically (`rooms.json`, 0600).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RoomsFile {
    /// Format version.
    pub v: u64,
    /// Our rooms.
    #[serde(default)]
    pub rooms: Vec<Room>,
    /// Key packages handed out, not yet used.
    #[serde(default)]
    pub asked: Vec<Asked>,
    /// Room invites we issued, not used yet.
    #[serde(default)]
    pub invites: Vec<Issued>,
    /// Rooms we asked to join by invite.
    #[serde(default)]
    pub joining: Vec<Joining>,
    /// The MLS store ([`mls::Provider::to_bytes`]).
    #[serde(default, with = "crate::proto::b64::bytes")]
    pub mls: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrap_round_trips_and_looks_like_an_envelope() {
        let key = [7u8; 32];
        let mut rng = rand_core::OsRng;
        let env = wrap(&key, b"an mls message", &mut rng).expect("fits");
        assert_eq!(env.len(), 256 + OVERHEAD, "the smallest bucket");
        assert_eq!(env[0], ENVELOPE_VERSION);
        assert_eq!(unwrap(&key, &env).expect("opens"), b"an mls message");
        assert!(unwrap(&[8u8; 32], &env).is_none(), "another room's key");
        let mut bent = env.clone();
        bent[40] ^= 1;
        assert!(unwrap(&key, &bent).is_none(), "tampered");
        assert!(wrap(&key, &vec![0u8; 1 << 20], &mut rng).is_none(), "too large");
    }

    #[test]
    fn a_policy_verifies_under_its_room_key_only() {
        let room = Identity::generate(&mut rand_core::OsRng);
        let owner = Identity::generate(&mut rand_core::OsRng);
        let policy = Policy {
            v: 1,
            room: room.did().clone(),
            name: "lab".into(),
            owner: owner.did().clone(),
            admins: vec![],
            owner_only_write: true,
            invite_only: true,
            welcome: Some("hi".into()),
            rate_per_minute: DEFAULT_RATE,
            created_at: UnixMillis(1),
        };
        let signed = policy.sign(&room);
        assert_eq!(Policy::verify(&signed, room.did()).expect("verifies"), policy);
        assert!(Policy::verify(&policy.sign(&owner), room.did()).is_err(), "signed by another key");
        assert!(Policy::verify(&signed, owner.did()).is_err(), "for another room");
        assert!(policy.may_post(owner.did()) && !policy.may_post(room.did()));
        assert!(check_name("lab-1").is_ok() && check_name("").is_err() && check_name("a b").is_err());
    }
}
