//! The MLS layer of rooms, over `openmls`: the provider (crypto, randomness, storage), the
//! member's signer and credential, and the group operations rooms use. Nothing here
//! touches the relay or the home; `crate::room` persists what it produces.
//!
//! - Ciphersuite MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519: the primitives of the
//!   rest of wire.
//! - The member's MLS signature key is its wire identity key. MLS signs
//!   `SignContent = {opaque label<V> = "MLS 1.0 " + Label; opaque content<V>}`, whose first
//!   byte is the label's length (under 64); every wire signature input starts with
//!   `wire/` (0x77): the two can never be the same bytes.
//! - The credential (a basic credential) is `{"did": <lineage DID>, "lineage": [statements]}`;
//!   every member checks that the leaf's signature key is that lineage's current key
//!   ([`member_did`]), so a roster entry is self-certifying.
//! - Handshake and application messages are both `PrivateMessage`s (the relay cannot read
//!   who commits or who is added), padded to 32 bytes, with a ratchet-tree extension in the
//!   Welcome, and secrets of 2 past epochs kept ([`MAX_PAST_EPOCHS`]).

use std::sync::Mutex;

/// The openmls types callers hold (a group, a leaf index).
pub use openmls::prelude::{LeafNodeIndex, MlsGroup};

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::proto::did::Did;
use crate::proto::identity::Identity;
use crate::proto::lineage::{Pin, SignedStatement, Standing};
use crate::proto::rng::SeededRng;
use crate::proto::secret::Secret32;
use crate::proto::time::UnixMillis;

/// The one ciphersuite of rooms.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;

/// Epochs whose secrets a member keeps after moving on, so application messages sent just
/// before a commit (racing it in slot order) still decrypt. The cost: a member whose
/// device is taken within two epochs of a removal still holds keys that read those
/// epochs' messages.
pub const MAX_PAST_EPOCHS: usize = 2;

/// Application messages are padded to a multiple of this many bytes before encryption.
const PADDING: usize = 32;

/// What went wrong in the MLS layer. Messages are for operators; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    /// Bytes that are not the MLS message expected.
    #[error("not a valid MLS {what}: {detail}")]
    Malformed {
        /// What was expected.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// A member credential that does not bind its key to its lineage.
    #[error("a member credential does not hold: {0}")]
    Credential(String),
    /// openmls refused an operation.
    #[error("MLS: {0}")]
    Group(String),
}

fn group_err(e: impl std::fmt::Display) -> MlsError {
    MlsError::Group(e.to_string())
}

// ------------------------------------------------------------------ provider

/// Where openmls draws randomness: the OS, or a seeded stream in tests.
#[derive(Debug)]
pub enum Rand {
    /// The OS RNG.
    Os,
    /// A deterministic stream (tests only: never where two runs must differ).
    Seeded(Mutex<SeededRng>),
}

/// The randomness error openmls sees.
#[derive(Debug, thiserror::Error)]
#[error("no randomness: {0}")]
pub struct RandError(String);

impl OpenMlsRand for Rand {
    type Error = RandError;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        let mut out = vec![0u8; len];
        self.fill(&mut out)?;
        Ok(out)
    }
}

impl Rand {
    fn fill(&self, out: &mut [u8]) -> Result<(), RandError> {
        match self {
            Rand::Os => rand_core::OsRng.try_fill_bytes(out).map_err(|e| RandError(e.to_string()))?,
            Rand::Seeded(rng) => rng.lock().map_err(|_| RandError("poisoned".into()))?.fill_bytes(out),
        }
        Ok(())
    }
}

/// The openmls provider of one home: its MLS storage (every room's group state and the
/// private halves of its key packages), persisted whole by [`Provider::to_bytes`].
#[derive(Debug)]
pub struct Provider {
    crypto: RustCrypto,
    rand: Rand,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = Rand;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.rand
    }
}

/// Storage file header: format and version.
const STORAGE_MAGIC: &[u8; 8] = b"wiremls1";

impl Provider {
    /// An empty store drawing from the OS RNG.
    pub fn new() -> Self {
        Self { crypto: RustCrypto::default(), rand: Rand::Os, storage: MemoryStorage::default() }
    }

    /// An empty store drawing from a stream seeded with `seed` (tests).
    pub fn seeded(seed: &Secret32) -> Self {
        let rand = Rand::Seeded(Mutex::new(SeededRng::new(seed, b"wire/v1/room-test")));
        Self { crypto: RustCrypto::default(), rand, storage: MemoryStorage::default() }
    }

    /// The store as bytes: `wiremls1`, then per entry u32 BE key length, u32 BE value
    /// length, key, value; entries sorted by key so equal stores give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let values = self.storage.values.read().unwrap_or_else(|p| p.into_inner());
        let mut entries: Vec<_> = values.iter().collect();
        entries.sort();
        let mut out = STORAGE_MAGIC.to_vec();
        for (k, v) in entries {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }

    /// Loads what [`Self::to_bytes`] wrote into this provider (replacing its store).
    pub fn load(&self, bytes: &[u8]) -> Result<(), MlsError> {
        let bad = |detail: &str| MlsError::Malformed { what: "room store", detail: detail.into() };
        let mut rest = bytes.strip_prefix(STORAGE_MAGIC.as_slice()).ok_or_else(|| bad("unknown format"))?;
        let mut map = std::collections::HashMap::new();
        let take = |n: usize, rest: &mut &[u8]| -> Result<Vec<u8>, MlsError> {
            if rest.len() < n {
                return Err(bad("cut short"));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head.to_vec())
        };
        while !rest.is_empty() {
            let k = u32::from_be_bytes(take(4, &mut rest)?.try_into().map_err(|_| bad("length"))?) as usize;
            let v = u32::from_be_bytes(take(4, &mut rest)?.try_into().map_err(|_| bad("length"))?) as usize;
            let key = take(k, &mut rest)?;
            map.insert(key, take(v, &mut rest)?);
        }
        *self.storage.values.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }
}

impl Default for Provider {
    fn default() -> Self {
        Self::new()
    }
}

// ------------------------------------------------------------------ signer and credential

/// The member's MLS signer: its wire identity key (module docs on domain separation).
#[derive(Debug)]
pub struct MemberSigner<'a>(pub &'a Identity);

impl Signer for MemberSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.0.sign_mls(payload).map(|s| s.to_vec()).ok_or(SignerError::SigningError)
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// What a member's basic credential holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    /// The member's lineage (inception DID).
    pub did: Did,
    /// The lineage's statements, inception first (empty for an identity that never
    /// rotated: its DID's key is current).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<SignedStatement>,
}

/// The credential and key a member presents: its lineage and its current key.
pub fn credential_with_key(identity: &Identity, lineage: &[SignedStatement]) -> CredentialWithKey {
    let body = CredentialBody { did: identity.did().clone(), lineage: lineage.to_vec() };
    let bytes = serde_json::to_vec(&body).expect("credential bodies serialize");
    CredentialWithKey {
        credential: BasicCredential::new(bytes).into(),
        signature_key: identity.verifying_key().as_bytes().to_vec().into(),
    }
}

/// The DID a credential binds to `signature_key`, checked: the lineage's statements verify
/// from its DID on, it is not revoked, and its current key is `signature_key`.
pub fn member_did(credential: &Credential, signature_key: &[u8]) -> Result<Did, MlsError> {
    let body: CredentialBody = serde_json::from_slice(credential.serialized_content())
        .map_err(|e| MlsError::Credential(format!("not a wire member credential: {e}")))?;
    let mut pin = Pin::of(&body.did);
    for statement in &body.lineage {
        // The time only dates the statement's application; a room has no skew rule of its own.
        pin.apply(statement, UnixMillis(u64::MAX / 2)).map_err(|e| MlsError::Credential(e.to_string()))?;
    }
    if pin.standing != Standing::Active {
        return Err(MlsError::Credential(format!("{} is frozen or revoked", body.did)));
    }
    if pin.key.as_slice() != signature_key {
        return Err(MlsError::Credential(format!("the key of this leaf is not the current key of {}", body.did)));
    }
    Ok(body.did)
}

// ------------------------------------------------------------------ group operations

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .max_past_epochs(MAX_PAST_EPOCHS)
        .padding_size(PADDING)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(64, 10_000))
        .build()
}

/// A new group with `identity` as its only member, under `group_id`.
pub fn create(
    provider: &Provider,
    identity: &Identity,
    lineage: &[SignedStatement],
    group_id: &[u8],
) -> Result<MlsGroup, MlsError> {
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .padding_size(PADDING)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(64, 10_000))
        .build();
    MlsGroup::new_with_group_id(
        provider,
        &MemberSigner(identity),
        &config,
        GroupId::from_slice(group_id),
        credential_with_key(identity, lineage),
    )
    .map_err(group_err)
}

/// Loads a group from the provider's store.
pub fn load(provider: &Provider, group_id: &[u8]) -> Result<Option<MlsGroup>, MlsError> {
    MlsGroup::load(provider.storage(), &GroupId::from_slice(group_id)).map_err(group_err)
}

/// A fresh key package (its private keys stay in the provider's store), serialized.
pub fn key_package(provider: &Provider, identity: &Identity, lineage: &[SignedStatement]) -> Result<Vec<u8>, MlsError> {
    let bundle = KeyPackage::builder()
        .build(CIPHERSUITE, provider, &MemberSigner(identity), credential_with_key(identity, lineage))
        .map_err(group_err)?;
    bundle.key_package().tls_serialize_detached().map_err(group_err)
}

/// Reads and validates a key package someone sent: signature, ciphersuite, lifetime, and
/// its credential ([`member_did`]).
pub fn read_key_package(provider: &Provider, bytes: &[u8]) -> Result<(KeyPackage, Did), MlsError> {
    let bad = |detail: String| MlsError::Malformed { what: "key package", detail };
    let kp = KeyPackageIn::tls_deserialize_exact(bytes).map_err(|e| bad(e.to_string()))?;
    let kp = kp.validate(provider.crypto(), ProtocolVersion::Mls10).map_err(|e| bad(e.to_string()))?;
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(bad("another ciphersuite".into()));
    }
    let leaf = kp.leaf_node();
    let did = member_did(leaf.credential(), leaf.signature_key().as_slice())?;
    Ok((kp, did))
}

/// What a commit of ours produced: the commit for the room, the Welcome for new members.
#[derive(Debug)]
pub struct CommitOut {
    /// The commit (a `PrivateMessage`), for the room slot.
    pub commit: Vec<u8>,
    /// The Welcome, when members were added.
    pub welcome: Option<Vec<u8>>,
}

fn commit_out(commit: MlsMessageOut, welcome: Option<MlsMessageOut>) -> Result<CommitOut, MlsError> {
    Ok(CommitOut {
        commit: commit.tls_serialize_detached().map_err(group_err)?,
        welcome: welcome.map(|w| w.tls_serialize_detached()).transpose().map_err(group_err)?,
    })
}

/// Commits adding `key_packages` (left pending until it is read back from the room).
pub fn add(
    group: &mut MlsGroup,
    provider: &Provider,
    identity: &Identity,
    key_packages: &[KeyPackage],
) -> Result<CommitOut, MlsError> {
    let (commit, welcome, _) = group.add_members(provider, &MemberSigner(identity), key_packages).map_err(group_err)?;
    commit_out(commit, Some(welcome))
}

/// Commits removing the members at `leaves` (left pending until read back).
pub fn remove(
    group: &mut MlsGroup,
    provider: &Provider,
    identity: &Identity,
    leaves: &[LeafNodeIndex],
) -> Result<CommitOut, MlsError> {
    let (commit, welcome, _) = group.remove_members(provider, &MemberSigner(identity), leaves).map_err(group_err)?;
    commit_out(commit, welcome)
}

/// Joins from a Welcome, returning the group and the DID of the member who added us.
pub fn join(provider: &Provider, welcome: &[u8]) -> Result<(MlsGroup, Did), MlsError> {
    let bad = |detail: String| MlsError::Malformed { what: "welcome", detail };
    let message = MlsMessageIn::tls_deserialize_exact(welcome).map_err(|e| bad(e.to_string()))?;
    let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
        return Err(bad("another message type".into()));
    };
    let staged = StagedWelcome::new_from_welcome(provider, &join_config(), welcome, None).map_err(group_err)?;
    let adder = staged.welcome_sender().map_err(group_err)?;
    let adder = member_did(adder.credential(), adder.signature_key().as_slice())?;
    let group = staged.into_group(provider).map_err(group_err)?;
    Ok((group, adder))
}

/// Encrypts an application message for the group's current epoch.
pub fn encrypt(
    group: &mut MlsGroup,
    provider: &Provider,
    identity: &Identity,
    plaintext: &[u8],
) -> Result<Vec<u8>, MlsError> {
    let out = group.create_message(provider, &MemberSigner(identity), plaintext).map_err(group_err)?;
    out.tls_serialize_detached().map_err(group_err)
}

/// A member as the group's tree lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Its leaf index.
    pub index: u32,
    /// Its lineage, checked against its key.
    pub did: Did,
}

/// The group's members, each checked ([`member_did`]); leaves whose credential does not
/// hold are left out.
pub fn members(group: &MlsGroup) -> Vec<Leaf> {
    group
        .members()
        .filter_map(|m| member_did(&m.credential, &m.signature_key).ok().map(|did| Leaf { index: m.index.u32(), did }))
        .collect()
}

/// What reading one message from the room gave.
#[derive(Debug)]
pub enum Incoming {
    /// An application message from `sender`.
    Application {
        /// Its sender's lineage (checked against the leaf key).
        sender: Did,
        /// The plaintext.
        bytes: Vec<u8>,
    },
    /// Another member's commit, staged (not merged): the caller decides, then merges.
    Commit {
        /// Its sender's lineage.
        sender: Did,
        /// Members it adds.
        added: Vec<Did>,
        /// Members it removes, by lineage.
        removed: Vec<Did>,
        /// Whether it removes us.
        removes_us: bool,
        /// The staged commit.
        staged: Box<StagedCommit>,
    },
    /// A proposal from `sender` (a member asking to leave): stored for a later commit.
    Proposal {
        /// Its sender's lineage.
        sender: Did,
        /// The member it removes, if it is a removal.
        removes: Option<Did>,
        /// The proposal.
        proposal: Box<QueuedProposal>,
    },
    /// One of our own messages (we cannot decrypt what we sent).
    Own,
    /// A message for another epoch than ours, not decryptable here.
    OtherEpoch {
        /// Its epoch.
        epoch: u64,
    },
}

/// Reads one message from the room (a `PrivateMessage`).
pub fn process(group: &mut MlsGroup, provider: &Provider, bytes: &[u8]) -> Result<Incoming, MlsError> {
    let bad = |detail: String| MlsError::Malformed { what: "room message", detail };
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| bad(e.to_string()))?;
    let protocol = message.try_into_protocol_message().map_err(|e| bad(e.to_string()))?;
    // Application messages of the past epochs we keep decrypt; handshake messages count only
    // in the current epoch (a commit that lost its epoch to another is skipped by everyone).
    let (epoch, current) = (protocol.epoch().as_u64(), group.epoch().as_u64());
    let kept = match protocol.content_type() {
        ContentType::Application => epoch <= current && epoch + MAX_PAST_EPOCHS as u64 >= current,
        _ => epoch == current,
    };
    if !kept {
        return Ok(Incoming::OtherEpoch { epoch });
    }
    let processed = group.process_message(provider, protocol).map_err(group_err)?;
    let sender_did = |processed: &ProcessedMessage| -> Result<Did, MlsError> {
        let Sender::Member(index) = processed.sender() else {
            return Err(MlsError::Credential("a sender from outside the group".into()));
        };
        let member = group.member_at(*index).ok_or_else(|| MlsError::Credential("an unknown leaf".into()))?;
        member_did(processed.credential(), &member.signature_key)
    };
    let sender = match processed.content() {
        ProcessedMessageContent::OwnPrivateMessage => return Ok(Incoming::Own),
        _ => sender_did(&processed)?,
    };
    Ok(match processed.into_content() {
        ProcessedMessageContent::ApplicationMessage(m) => Incoming::Application { sender, bytes: m.into_bytes() },
        ProcessedMessageContent::StagedCommitMessage(staged) => {
            let added = staged
                .add_proposals()
                .filter_map(|p| {
                    let leaf = p.add_proposal().key_package().leaf_node();
                    member_did(leaf.credential(), leaf.signature_key().as_slice()).ok()
                })
                .collect();
            let removed_leaves: Vec<u32> =
                staged.remove_proposals().map(|p| p.remove_proposal().removed().u32()).collect();
            let removed =
                members(group).into_iter().filter(|l| removed_leaves.contains(&l.index)).map(|l| l.did).collect();
            let removes_us = staged.self_removed();
            Incoming::Commit { sender, added, removed, removes_us, staged }
        }
        ProcessedMessageContent::ProposalMessage(proposal) => {
            let removes = match proposal.proposal() {
                Proposal::Remove(r) => members(group).into_iter().find(|l| l.index == r.removed().u32()).map(|l| l.did),
                _ => None,
            };
            Incoming::Proposal { sender, removes, proposal }
        }
        other => return Err(bad(format!("unexpected content {other:?}"))),
    })
}

/// Merges a staged commit another member made.
pub fn merge(group: &mut MlsGroup, provider: &Provider, staged: StagedCommit) -> Result<(), MlsError> {
    group.merge_staged_commit(provider, staged).map_err(group_err)
}

/// Merges our own pending commit (it was read back as the epoch's first commit).
pub fn merge_own(group: &mut MlsGroup, provider: &Provider) -> Result<(), MlsError> {
    group.merge_pending_commit(provider).map_err(group_err)
}

/// Drops our own pending commit (another member's commit won the epoch).
pub fn discard_own(group: &mut MlsGroup, provider: &Provider) -> Result<(), MlsError> {
    group.clear_pending_commit(provider.storage()).map_err(group_err)
}

/// A proposal to remove ourselves (leaving), for a member who may commit to take in.
pub fn propose_leave(group: &mut MlsGroup, provider: &Provider, identity: &Identity) -> Result<Vec<u8>, MlsError> {
    let out = group.leave_group(provider, &MemberSigner(identity)).map_err(group_err)?;
    out.tls_serialize_detached().map_err(group_err)
}

/// Keeps a received proposal for our next commit.
pub fn keep_proposal(group: &mut MlsGroup, provider: &Provider, proposal: QueuedProposal) -> Result<(), MlsError> {
    group.store_pending_proposal(provider.storage(), proposal).map_err(group_err)
}

/// Commits every kept proposal (left pending until read back).
pub fn commit_proposals(group: &mut MlsGroup, provider: &Provider, identity: &Identity) -> Result<CommitOut, MlsError> {
    let (commit, welcome, _) =
        group.commit_to_pending_proposals(provider, &MemberSigner(identity)).map_err(group_err)?;
    commit_out(commit, welcome)
}

/// The group's epoch.
pub fn epoch(group: &MlsGroup) -> u64 {
    group.epoch().as_u64()
}

/// Forgets a group (we left or were removed).
pub fn delete(group: &mut MlsGroup, provider: &Provider) -> Result<(), MlsError> {
    group.delete(provider.storage()).map_err(group_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member: identity and a provider seeded from its name, so runs repeat.
    struct M {
        id: Identity,
        p: Provider,
    }

    fn member(name: u8) -> M {
        let mut rng = seeded_rng(name);
        M { id: Identity::generate(&mut rng), p: Provider::seeded(&Secret32::from_bytes([name; 32])) }
    }

    /// A seeded RNG from the crate's own construction (no extra test dependency).
    fn seeded_rng(name: u8) -> SeededRng {
        SeededRng::new(&Secret32::from_bytes([name ^ 0x5a; 32]), b"test-identity")
    }

    fn kp(m: &M) -> KeyPackage {
        let bytes = key_package(&m.p, &m.id, &[]).expect("key package");
        let (kp, did) = read_key_package(&m.p, &bytes).expect("reads back");
        assert_eq!(&did, m.id.did());
        kp
    }

    fn app(group: &mut MlsGroup, m: &M, bytes: &[u8]) -> (Did, Vec<u8>) {
        match process(group, &m.p, bytes).expect("process") {
            Incoming::Application { sender, bytes } => (sender, bytes),
            other => panic!("expected an application message, got {other:?}"),
        }
    }

    fn take_commit(group: &mut MlsGroup, m: &M, bytes: &[u8]) -> (Did, Vec<Did>, Vec<Did>, bool) {
        match process(group, &m.p, bytes).expect("process") {
            Incoming::Commit { sender, added, removed, removes_us, staged } => {
                merge(group, &m.p, *staged).expect("merge");
                (sender, added, removed, removes_us)
            }
            other => panic!("expected a commit, got {other:?}"),
        }
    }

    #[test]
    fn three_members_talk_and_a_removed_one_reads_nothing_after() {
        let (a, b, c) = (member(1), member(2), member(3));
        let mut ga = create(&a.p, &a.id, &[], b"room-1").expect("create");
        let out = add(&mut ga, &a.p, &a.id, &[kp(&b), kp(&c)]).expect("add");
        // The committer reads its commit back from the room before merging it.
        assert!(matches!(process(&mut ga, &a.p, &out.commit).expect("own"), Incoming::Own));
        merge_own(&mut ga, &a.p).expect("merge own");
        let welcome = out.welcome.expect("a welcome");
        let (mut gb, adder) = join(&b.p, &welcome).expect("b joins");
        assert_eq!(&adder, a.id.did());
        let (mut gc, _) = join(&c.p, &welcome).expect("c joins");
        let roster = |g: &MlsGroup| members(g).into_iter().map(|l| l.did).collect::<Vec<_>>();
        assert_eq!(roster(&ga), vec![a.id.did().clone(), b.id.did().clone(), c.id.did().clone()]);
        assert_eq!(roster(&gb), roster(&ga));

        let hello = encrypt(&mut ga, &a.p, &a.id, b"hello room").expect("encrypt");
        assert_eq!(app(&mut gb, &b, &hello), (a.id.did().clone(), b"hello room".to_vec()));
        assert_eq!(app(&mut gc, &c, &hello).1, b"hello room");
        let reply = encrypt(&mut gb, &b.p, &b.id, b"hi").expect("encrypt");
        assert_eq!(app(&mut ga, &a, &reply).0, *b.id.did());

        // A removes C; everyone, C included, reads the commit.
        let c_leaf = members(&ga).into_iter().find(|l| &l.did == c.id.did()).expect("c").index;
        let out = remove(&mut ga, &a.p, &a.id, &[LeafNodeIndex::new(c_leaf)]).expect("remove");
        assert!(matches!(process(&mut ga, &a.p, &out.commit).expect("own"), Incoming::Own));
        merge_own(&mut ga, &a.p).expect("merge");
        let (sender, added, removed, removes_us) = take_commit(&mut gb, &b, &out.commit);
        assert_eq!((sender, added, removed, removes_us), (a.id.did().clone(), vec![], vec![c.id.did().clone()], false));
        assert!(matches!(
            process(&mut gc, &c.p, &out.commit).expect("c reads"),
            Incoming::Commit { removes_us: true, .. }
        ));
        // What follows is for A and B only: C, with the state it had, reads none of it.
        let secret = encrypt(&mut ga, &a.p, &a.id, b"after c left").expect("encrypt");
        assert_eq!(app(&mut gb, &b, &secret).1, b"after c left");
        let read = process(&mut gc, &c.p, &secret);
        assert!(!matches!(read, Ok(Incoming::Application { .. })), "a removed member decrypted a later message");
        assert_eq!((epoch(&ga), epoch(&gb)), (2, 2));
    }

    #[test]
    fn concurrent_commits_resolve_to_the_first_in_slot_order() {
        let (a, b, c, d) = (member(11), member(12), member(13), member(14));
        let mut ga = create(&a.p, &a.id, &[], b"room-2").expect("create");
        let out = add(&mut ga, &a.p, &a.id, &[kp(&b)]).expect("add");
        merge_own(&mut ga, &a.p).expect("merge");
        let (mut gb, _) = join(&b.p, &out.welcome.expect("welcome")).expect("join");
        // Both commit in epoch 1: A adds C, B adds D. The slot orders A's first.
        let first = add(&mut ga, &a.p, &a.id, &[kp(&c)]).expect("a commits");
        let second = add(&mut gb, &b.p, &b.id, &[kp(&d)]).expect("b commits");
        let slot = [first.commit.clone(), second.commit.clone()];
        // A: its own first (merge), then B's, which is for an epoch gone by (skipped).
        assert!(matches!(process(&mut ga, &a.p, &slot[0]).expect("own"), Incoming::Own));
        merge_own(&mut ga, &a.p).expect("merge");
        assert!(matches!(process(&mut ga, &a.p, &slot[1]).expect("skip"), Incoming::OtherEpoch { epoch: 1 }));
        // B: A's wins, so B drops its own, takes A's, and skips its own when it comes.
        discard_own(&mut gb, &b.p).expect("discard");
        take_commit(&mut gb, &b, &slot[0]);
        assert!(matches!(process(&mut gb, &b.p, &slot[1]).expect("skip"), Incoming::OtherEpoch { epoch: 1 }));
        assert_eq!((epoch(&ga), epoch(&gb)), (2, 2));
        let roster = |g: &MlsGroup| members(g).into_iter().map(|l| l.did).collect::<Vec<_>>();
        assert_eq!(roster(&ga), roster(&gb));
        assert!(!roster(&gb).contains(d.id.did()), "the losing commit's add did not happen");
        let late = encrypt(&mut ga, &a.p, &a.id, b"epoch two").expect("encrypt");
        assert_eq!(app(&mut gb, &b, &late).1, b"epoch two");
    }

    #[test]
    fn a_message_racing_a_commit_still_decrypts() {
        let (a, b) = (member(21), member(22));
        let mut ga = create(&a.p, &a.id, &[], b"room-3").expect("create");
        let out = add(&mut ga, &a.p, &a.id, &[kp(&b)]).expect("add");
        merge_own(&mut ga, &a.p).expect("merge");
        let (mut gb, _) = join(&b.p, &out.welcome.expect("welcome")).expect("join");
        // B sends in epoch 1; A commits (epoch 2) before reading it; it lands after the commit.
        let raced = encrypt(&mut gb, &b.p, &b.id, b"sent in epoch one").expect("encrypt");
        let c = member(23);
        let commit = add(&mut ga, &a.p, &a.id, &[kp(&c)]).expect("commit");
        merge_own(&mut ga, &a.p).expect("merge");
        take_commit(&mut gb, &b, &commit.commit);
        assert_eq!(app(&mut ga, &a, &raced).1, b"sent in epoch one");
    }

    #[test]
    fn the_store_round_trips_and_a_group_reloads_from_it() {
        let (a, b) = (member(31), member(32));
        let mut ga = create(&a.p, &a.id, &[], b"room-4").expect("create");
        let out = add(&mut ga, &a.p, &a.id, &[kp(&b)]).expect("add");
        merge_own(&mut ga, &a.p).expect("merge");
        let (_, _) = join(&b.p, &out.welcome.expect("welcome")).expect("join");
        let saved = b.p.to_bytes();
        let reopened = Provider::new();
        reopened.load(&saved).expect("load");
        assert_eq!(reopened.to_bytes(), saved, "the same bytes back");
        let mut gb = load(&reopened, b"room-4").expect("load").expect("the group");
        let m = encrypt(&mut ga, &a.p, &a.id, b"after reload").expect("encrypt");
        match process(&mut gb, &reopened, &m).expect("process") {
            Incoming::Application { bytes, .. } => assert_eq!(bytes, b"after reload"),
            other => panic!("{other:?}"),
        }
        assert!(Provider::new().load(b"wiremls1\x00\x00\x00\x09").is_err(), "cut short");
        assert!(Provider::new().load(b"other").is_err());
    }

    #[test]
    fn a_credential_binds_its_key_to_its_lineage() {
        let (a, b) = (member(41), member(42));
        let ok = credential_with_key(&a.id, &[]);
        assert_eq!(member_did(&ok.credential, ok.signature_key.as_slice()).expect("holds"), *a.id.did());
        // A's DID with B's key: refused.
        assert!(member_did(&ok.credential, b.id.verifying_key().as_bytes()).is_err());
        let junk: Credential = BasicCredential::new(b"not json".to_vec()).into();
        assert!(member_did(&junk, a.id.verifying_key().as_bytes()).is_err());
        // The identity key signs MLS inputs only.
        assert!(a.id.sign_mls(b"wire/v1/event\x00{}").is_none());
        assert!(a.id.sign_mls(b"\x10MLS 1.0 LeafNodeTBS").is_some());
    }
}
