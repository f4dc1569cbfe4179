//! The code flow (version 2): SPAKE2 over a short code, key confirmation, a commitment to
//! each side's card and nonce before either is revealed, SAS, two-phase finalize.
//!
//! ```text
//! host                        rendezvous (nameplate N)                      guest
//!  start -> Pake(X, v2) -------------------------------------------------->
//!          <-----------------------------------------------  Pake(Y, v2)  <- start
//!  K = SPAKE2(code)                                          K = SPAKE2(code)
//!  Confirm(mac_host), Sealed#0(Commit{C_host}) -------------------------->
//!          <-------------------  Confirm(mac_guest), Sealed#0(Commit{C_guest})
//!  both: check peer's confirm MAC (wrong code -> abort, nameplate burned)
//!  each, once it holds the peer's commitment:
//!  Sealed#1(Hello{card,token,n}) ---------------------------------------->
//!          <-------------------------------------- Sealed#1(Hello{card,token,n})
//!  both: check the opening against the commitment (else abort protocol_violation)
//!  both: SAS = 6 digits from K, both cards, both nonces -> operators compare
//!  Sealed#2(Vote) ------------------------------------------------------->
//!          <----------------------------------------------------  Sealed#2(Vote)
//!  paired once own vote is cast AND the peer's vote has arrived
//! ```
//!
//! `C = SHA-256("wire/v2/sas-commit" || role || transcript || SHA-256(card) || n)`. A man in
//! the middle who knows the code runs one PAKE with each side, but must commit to its card
//! and nonce towards each before it sees that side's nonce, so it cannot grind the digits:
//! one try per pairing, 1 in 10^6 (version 1 let it choose its card after seeing both).
//!
//! Every state is plain data ([`CodePairing`] is `Serialize`), and the SPAKE2 scalar is
//! drawn from a [`SeededRng`] over a persisted seed, so a detached pairing survives a
//! restart of whichever process drives it. Any message that is not the one the current
//! state waits for aborts cleanly; the relay never learns the code.

use core::fmt;
use core::time::Duration;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as PakeIdentity, Password, Spake2};
use zeroize::Zeroizing;

use super::{Paired, Tier};
use crate::proto::b64;
use crate::proto::card::Card;
use crate::proto::character::{ADJECTIVES, NOUNS};
use crate::proto::labels;
use crate::proto::rng::SeededRng;
use crate::proto::secret::{Secret32, Token};
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// Bits of secret in a code: one adjective and one noun of 1024 each.
pub const CODE_SECRET_BITS: u32 = 20;
/// The code flow's version, sent with the PAKE message. Version 1 (no commitment) is
/// refused: its SAS could be ground by anyone who knew the code.
pub const CODE_FLOW_VERSION: u64 = 2;
/// Digits of the SAS.
pub const SAS_DIGITS: u32 = 6;
/// Default time for the whole exchange, including the operators' comparison.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A pairing code: `<nameplate>-<adjective>-<noun>`, e.g. `17-brave-otter`.
/// The nameplate is public (the relay assigned it); the words are the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

/// Why a typed code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Not three dash-separated parts.
    #[error("a pairing code looks like `17-brave-otter`: a number and two words")]
    Malformed,
    /// The nameplate is not 1 to 8 digits.
    #[error("a pairing code starts with the number the relay assigned (1 to 8 digits)")]
    BadNameplate,
    /// A word that is not in the list: a typo, most likely.
    #[error("`{0}` is not a pairing code word; check the spelling with the other operator")]
    UnknownWord(String),
}

impl Code {
    /// A fresh code for `nameplate`.
    pub fn generate(nameplate: &str, rng: &mut impl CryptoRngCore) -> Result<Self, CodeError> {
        check_nameplate(nameplate)?;
        let adjective = ADJECTIVES[(rng.next_u32() & 0x3ff) as usize];
        let noun = NOUNS[(rng.next_u32() & 0x3ff) as usize];
        Ok(Self(format!("{nameplate}-{adjective}-{noun}")))
    }

    /// Parses what an operator typed: case, surrounding space, and spaces or underscores
    /// for dashes are forgiven; unknown words are named.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let normal: String =
            text.trim().chars().map(|c| if c == ' ' || c == '_' { '-' } else { c.to_ascii_lowercase() }).collect();
        let parts: Vec<&str> = normal.split('-').filter(|p| !p.is_empty()).collect();
        let [nameplate, adjective, noun] = parts[..] else { return Err(CodeError::Malformed) };
        check_nameplate(nameplate)?;
        if ADJECTIVES.binary_search(&adjective).is_err() {
            return Err(CodeError::UnknownWord(adjective.chars().take(32).collect()));
        }
        if NOUNS.binary_search(&noun).is_err() {
            return Err(CodeError::UnknownWord(noun.chars().take(32).collect()));
        }
        Ok(Self(format!("{nameplate}-{adjective}-{noun}")))
    }

    /// The public nameplate.
    pub fn nameplate(&self) -> &str {
        self.0.split('-').next().unwrap_or_default()
    }

    /// The whole code, to show the operator who reads it aloud. Named so uses are visible.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn check_nameplate(nameplate: &str) -> Result<(), CodeError> {
    if (1..=8).contains(&nameplate.len()) && nameplate.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CodeError::BadNameplate)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({}-..)", self.nameplate())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Which side of the pairing this is. The host obtained the nameplate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Obtained the nameplate and printed the code.
    Host,
    /// Typed the code.
    Guest,
}

impl Role {
    fn name(self) -> &'static [u8] {
        match self {
            Role::Host => b"host",
            Role::Guest => b"guest",
        }
    }

    fn peer(self) -> Role {
        match self {
            Role::Host => Role::Guest,
            Role::Guest => Role::Host,
        }
    }
}

/// Why a code pairing ended without pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// Key confirmation failed: the two sides typed different codes. Someone may be
    /// guessing; the nameplate is burned.
    WrongCode,
    /// The digits the operator typed differ from ours: the channel may be intercepted.
    SasMismatch,
    /// An operator cancelled.
    Cancelled,
    /// The deadline passed.
    Timeout,
    /// A message arrived that the state does not expect (replayed, reordered, forged).
    ProtocolViolation,
    /// The peer's card did not verify, or was our own.
    InvalidCard,
    /// The rendezvous disappeared (the relay restarted or closed the nameplate).
    RendezvousLost,
    /// The other side runs a wire whose code pairing lacks the SAS commitment.
    OutdatedPeer,
}

impl AbortReason {
    /// What to tell the operator.
    pub fn explain(self) -> &'static str {
        match self {
            AbortReason::WrongCode => {
                "the codes did not match; someone may be guessing codes. This code is burned: start a new pairing"
            }
            AbortReason::SasMismatch => {
                "the SAS digits did not match; the connection may be intercepted. Nothing was pinned"
            }
            AbortReason::Cancelled => "the pairing was cancelled",
            AbortReason::Timeout => "the pairing timed out; start a new one",
            AbortReason::ProtocolViolation => {
                "an unexpected message arrived (replayed or out of order); nothing was pinned"
            }
            AbortReason::InvalidCard => "the peer's agent card is invalid; nothing was pinned",
            AbortReason::RendezvousLost => "the relay lost the pairing (it may have restarted); start a new pairing",
            AbortReason::OutdatedPeer => {
                "the other side runs an older wire whose code pairing can be attacked; both sides must upgrade"
            }
        }
    }
}

/// Messages on the rendezvous channel.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Pake {
        #[serde(with = "b64::bytes")]
        msg: Vec<u8>,
        /// The code-flow version (absent: 1).
        #[serde(default = "version_one")]
        v: u64,
    },
    Confirm {
        #[serde(with = "b64::fixed")]
        mac: [u8; 32],
    },
    Sealed {
        seq: u64,
        #[serde(with = "b64::bytes")]
        ct: Vec<u8>,
    },
    /// Unauthenticated, and honoured in any state: the relay can always stall a pairing, so
    /// an injected abort gives it nothing new, and a peer that missed a sealed message can
    /// still read it.
    Abort { reason: AbortReason },
}

/// Plaintext inside `Wire::Sealed`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
enum Inner {
    /// The commitment to our card and nonce, sent before either is revealed.
    Commit {
        #[serde(with = "b64::fixed")]
        c: [u8; 32],
    },
    /// The opening: sent only once the peer's commitment is held.
    Hello {
        card: Signed,
        send_token: Token,
        #[serde(with = "b64::fixed")]
        n: [u8; 32],
    },
    Vote,
}

fn version_one() -> u64 {
    1
}

fn six() -> u32 {
    SAS_DIGITS
}

/// Keys derived from the PAKE key, each bound to the transcript.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Keys {
    confirm_mine: Secret32,
    confirm_theirs: Secret32,
    send: Secret32,
    recv: Secret32,
    sas: Secret32,
    send_seq: u64,
    recv_seq: u64,
    /// SHA-256 of the PAKE identity and both PAKE messages (commitments bind it).
    #[serde(default, with = "b64::fixed")]
    transcript: [u8; 32],
}

/// The peer as learned from its Hello.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Peer {
    card: Card,
    token: Token,
}

/// States, named for what they wait for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum State {
    AwaitingPeerPake,
    AwaitingPeerConfirm {
        keys: Keys,
    },
    AwaitingPeerCommit {
        keys: Keys,
    },
    AwaitingPeerHello {
        keys: Keys,
        #[serde(default, with = "b64::fixed")]
        commit: [u8; 32],
    },
    AwaitingOperator {
        keys: Keys,
        peer: Peer,
        sas: String,
        peer_voted: bool,
    },
    AwaitingPeerVote {
        keys: Keys,
        peer: Peer,
        sas: String,
    },
    Paired {
        peer: Peer,
        sas: String,
    },
    Aborted {
        reason: AbortReason,
        by_peer: bool,
        voted: bool,
        peer: Option<Peer>,
    },
}

/// What `pair-list` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the other side (PAKE, confirmation or cards).
    Waiting,
    /// The digits are ready for the operator to compare.
    SasReady {
        /// Our 6 digits.
        sas: String,
    },
    /// Our operator confirmed; waiting for the other operator.
    Confirmed {
        /// Our 6 digits.
        sas: String,
    },
    /// Both confirmed and both hold each other's send token.
    Paired,
    /// Ended without pairing.
    Aborted {
        /// Why.
        reason: AbortReason,
        /// Whether the peer reported it.
        by_peer: bool,
    },
}

/// What a step produced: messages to post to the rendezvous, in order.
#[derive(Debug, Default)]
pub struct Progress {
    /// Serialized messages to send to the peer through the rendezvous.
    pub send: Vec<Vec<u8>>,
}

/// The operator's confirmation was not possible in this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfirmError {
    /// The SAS is not known yet.
    #[error("the SAS digits are not ready yet; wait for the other side")]
    NotReady,
    /// Already confirmed.
    #[error("this pairing is already confirmed; waiting for the other operator")]
    AlreadyConfirmed,
    /// Paired or aborted.
    #[error("this pairing has already finished")]
    Finished,
}

/// A cancel that would split the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// Our vote is cast: the peer may already count us as paired.
    #[error(
        "this side already confirmed, so the peer may already be paired; wait for it, or unpin afterwards with `wire forget`"
    )]
    AlreadyVoted,
    /// Paired or aborted.
    #[error("this pairing has already finished")]
    Finished,
}

/// One side of a code pairing. Serialize it to persist a detached pairing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodePairing {
    role: Role,
    code: Code,
    seed: Secret32,
    my_card: Card,
    my_token: Token,
    deadline: UnixMillis,
    #[serde(with = "b64::bytes")]
    my_pake: Vec<u8>,
    state: State,
    /// SAS length (6; shorter only in the tests that play an attacker).
    #[serde(default = "six")]
    sas_len: u32,
}

impl CodePairing {
    /// Starts one side. `my_token` is a send token on our slot, for the peer; `seed` is
    /// fresh randomness that is persisted with the state.
    pub fn start(
        role: Role,
        code: Code,
        my_card: Card,
        my_token: Token,
        seed: Secret32,
        now: UnixMillis,
        timeout: Duration,
    ) -> (Self, Progress) {
        let (_, my_pake) = spake(&code, &seed);
        let first = encode(&Wire::Pake { msg: my_pake.clone(), v: CODE_FLOW_VERSION });
        let this = Self {
            role,
            code,
            seed,
            my_card,
            my_token,
            deadline: now.saturating_add(timeout),
            my_pake,
            state: State::AwaitingPeerPake,
            sas_len: SAS_DIGITS,
        };
        (this, Progress { send: vec![first] })
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The code (the caller shows it to the host operator).
    pub fn code(&self) -> &Code {
        &self.code
    }

    /// When the pairing times out.
    pub fn deadline(&self) -> UnixMillis {
        self.deadline
    }

    /// Where things stand.
    pub fn status(&self) -> Status {
        match &self.state {
            State::AwaitingPeerPake
            | State::AwaitingPeerConfirm { .. }
            | State::AwaitingPeerCommit { .. }
            | State::AwaitingPeerHello { .. } => Status::Waiting,
            State::AwaitingOperator { sas, .. } => Status::SasReady { sas: sas.clone() },
            State::AwaitingPeerVote { sas, .. } => Status::Confirmed { sas: sas.clone() },
            State::Paired { .. } => Status::Paired,
            State::Aborted { reason, by_peer, .. } => Status::Aborted { reason: *reason, by_peer: *by_peer },
        }
    }

    /// The six SAS digits, once known (also after pairing).
    pub fn sas(&self) -> Option<&str> {
        match &self.state {
            State::AwaitingOperator { sas, .. } | State::AwaitingPeerVote { sas, .. } | State::Paired { sas, .. } => {
                Some(sas)
            }
            _ => None,
        }
    }

    /// The result, once paired.
    pub fn paired(&self) -> Option<Paired> {
        match &self.state {
            State::Paired { peer, .. } => {
                Some(Paired { card: peer.card.clone(), send_token: peer.token.clone(), tier: Tier::Verified })
            }
            _ => None,
        }
    }

    /// After an abort that followed our vote (a timeout), the peer may have counted us as
    /// paired. Returns its card and token so the caller can send it a `close`.
    pub fn peer_to_notify(&self) -> Option<(&Card, &Token)> {
        match &self.state {
            State::Aborted { voted: true, by_peer: false, peer: Some(peer), .. } => Some((&peer.card, &peer.token)),
            _ => None,
        }
    }

    /// Whether the pairing has ended (paired or aborted).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Paired { .. } | State::Aborted { .. })
    }

    /// Feeds one message received from the rendezvous.
    pub fn receive(&mut self, message: &[u8], now: UnixMillis) -> Progress {
        if self.is_finished() {
            return Progress::default();
        }
        if let Some(p) = self.expire(now) {
            return p;
        }
        let Ok(wire) = serde_json::from_slice::<Wire>(message) else {
            return self.abort(AbortReason::ProtocolViolation);
        };
        if let Wire::Abort { reason } = wire {
            self.end(reason, true);
            return Progress::default();
        }
        let state = core::mem::replace(&mut self.state, State::AwaitingPeerPake);
        match (state, wire) {
            (State::AwaitingPeerPake, Wire::Pake { v, .. }) if v < CODE_FLOW_VERSION => {
                self.abort(AbortReason::OutdatedPeer)
            }
            (State::AwaitingPeerPake, Wire::Pake { msg, .. }) => self.on_pake(&msg),
            (State::AwaitingPeerConfirm { keys }, Wire::Confirm { mac }) => {
                let expected = confirm_mac(&keys.confirm_theirs);
                if expected.verify_slice(&mac).is_err() {
                    self.state = State::AwaitingPeerConfirm { keys };
                    return self.abort(AbortReason::WrongCode);
                }
                self.state = State::AwaitingPeerCommit { keys };
                Progress::default()
            }
            (State::AwaitingPeerCommit { mut keys }, Wire::Sealed { seq, ct }) => match open(&mut keys, seq, &ct) {
                // Our own commitment reflected back is refused (roles are bound).
                Some(Inner::Commit { c }) if c != self.my_commitment(&keys) => {
                    // Only now, holding the peer's commitment, do we reveal ours.
                    let hello = seal(
                        &mut keys,
                        &Inner::Hello {
                            card: self.my_card.signed().clone(),
                            send_token: self.my_token.clone(),
                            n: sas_nonce(&self.seed),
                        },
                    );
                    self.state = State::AwaitingPeerHello { keys, commit: c };
                    Progress { send: vec![hello] }
                }
                _ => {
                    self.state = State::AwaitingPeerCommit { keys };
                    self.abort(AbortReason::ProtocolViolation)
                }
            },
            (State::AwaitingPeerHello { mut keys, commit }, Wire::Sealed { seq, ct }) => {
                match open(&mut keys, seq, &ct) {
                    Some(Inner::Hello { card, send_token, n }) => self.on_hello(keys, commit, card, send_token, n),
                    _ => {
                        self.state = State::AwaitingPeerHello { keys, commit };
                        self.abort(AbortReason::ProtocolViolation)
                    }
                }
            }
            (State::AwaitingOperator { mut keys, peer, sas, peer_voted: false }, Wire::Sealed { seq, ct }) => {
                match open(&mut keys, seq, &ct) {
                    Some(Inner::Vote) => {
                        self.state = State::AwaitingOperator { keys, peer, sas, peer_voted: true };
                        Progress::default()
                    }
                    _ => {
                        self.state = State::AwaitingOperator { keys, peer, sas, peer_voted: false };
                        self.abort(AbortReason::ProtocolViolation)
                    }
                }
            }
            (State::AwaitingPeerVote { mut keys, peer, sas }, Wire::Sealed { seq, ct }) => {
                match open(&mut keys, seq, &ct) {
                    Some(Inner::Vote) => {
                        self.state = State::Paired { peer, sas };
                        Progress::default()
                    }
                    _ => {
                        self.state = State::AwaitingPeerVote { keys, peer, sas };
                        self.abort(AbortReason::ProtocolViolation)
                    }
                }
            }
            (state, _) => {
                self.state = state;
                self.abort(AbortReason::ProtocolViolation)
            }
        }
    }

    /// The operator typed the digits shown on the *other* side. If they equal ours, cast
    /// our vote; otherwise abort both sides with `SasMismatch`.
    pub fn confirm(&mut self, typed_digits: &str, now: UnixMillis) -> Result<Progress, ConfirmError> {
        if let Some(p) = self.expire(now) {
            return Ok(p);
        }
        let state = core::mem::replace(&mut self.state, State::AwaitingPeerPake);
        let (mut keys, peer, sas, peer_voted) = match state {
            State::AwaitingOperator { keys, peer, sas, peer_voted } => (keys, peer, sas, peer_voted),
            other => {
                let err = match &other {
                    State::AwaitingPeerVote { .. } => ConfirmError::AlreadyConfirmed,
                    State::Paired { .. } | State::Aborted { .. } => ConfirmError::Finished,
                    _ => ConfirmError::NotReady,
                };
                self.state = other;
                return Err(err);
            }
        };
        let typed: String = typed_digits.chars().filter(|c| c.is_ascii_digit()).collect();
        // Both values are public to the operators; a plain comparison leaks nothing.
        if typed != sas {
            self.state = State::AwaitingOperator { keys, peer, sas, peer_voted };
            return Ok(self.abort(AbortReason::SasMismatch));
        }
        let vote = seal(&mut keys, &Inner::Vote);
        self.state = if peer_voted { State::Paired { peer, sas } } else { State::AwaitingPeerVote { keys, peer, sas } };
        Ok(Progress { send: vec![vote] })
    }

    /// The operator cancels. Refused once our vote is cast (see [`CancelError`]).
    pub fn cancel(&mut self) -> Result<Progress, CancelError> {
        match self.state {
            State::Paired { .. } | State::Aborted { .. } => Err(CancelError::Finished),
            State::AwaitingPeerVote { .. } => Err(CancelError::AlreadyVoted),
            _ => Ok(self.abort(AbortReason::Cancelled)),
        }
    }

    /// The rendezvous is gone: ends the pairing without a message (there is nowhere to
    /// send one). If our vote was cast, [`Self::peer_to_notify`] names the peer to close.
    pub fn lost_rendezvous(&mut self) {
        if !self.is_finished() {
            self.end(AbortReason::RendezvousLost, false);
        }
    }

    /// Checks the deadline; call it when a timer fires.
    pub fn tick(&mut self, now: UnixMillis) -> Progress {
        if self.is_finished() { Progress::default() } else { self.expire(now).unwrap_or_default() }
    }

    fn expire(&mut self, now: UnixMillis) -> Option<Progress> {
        (now >= self.deadline).then(|| self.abort(AbortReason::Timeout))
    }

    fn on_pake(&mut self, peer_msg: &[u8]) -> Progress {
        if peer_msg == self.my_pake.as_slice() {
            return self.abort(AbortReason::ProtocolViolation); // our own message reflected
        }
        let (pake, _) = spake(&self.code, &self.seed);
        let Ok(key) = pake.finish(peer_msg) else {
            return self.abort(AbortReason::ProtocolViolation);
        };
        let key = Zeroizing::new(key);
        let (host_msg, guest_msg) = match self.role {
            Role::Host => (self.my_pake.as_slice(), peer_msg),
            Role::Guest => (peer_msg, self.my_pake.as_slice()),
        };
        let mut keys = derive_keys(&key, host_msg, guest_msg, self.role);
        let confirm = encode(&Wire::Confirm { mac: confirm_mac(&keys.confirm_mine).finalize().into_bytes().into() });
        let c = self.my_commitment(&keys);
        let commit = seal(&mut keys, &Inner::Commit { c });
        self.state = State::AwaitingPeerConfirm { keys };
        Progress { send: vec![confirm, commit] }
    }

    /// Our commitment: the same after a restart (the nonce comes from the persisted seed).
    fn my_commitment(&self, keys: &Keys) -> [u8; 32] {
        commitment(self.role, &keys.transcript, &self.my_card, &sas_nonce(&self.seed))
    }

    fn on_hello(&mut self, keys: Keys, commit: [u8; 32], card: Signed, token: Token, n: [u8; 32]) -> Progress {
        let card = match Card::verify(card) {
            Ok(card) if card.did() != self.my_card.did() => card,
            _ => {
                self.state = State::AwaitingPeerHello { keys, commit };
                return self.abort(AbortReason::InvalidCard);
            }
        };
        // The opening must be what the peer committed to before it saw ours.
        if commitment(self.role.peer(), &keys.transcript, &card, &n) != commit {
            self.state = State::AwaitingPeerHello { keys, commit };
            return self.abort(AbortReason::ProtocolViolation);
        }
        let mine = sas_nonce(&self.seed);
        let (host, guest) = match self.role {
            Role::Host => ((&self.my_card, &mine), (&card, &n)),
            Role::Guest => ((&card, &n), (&self.my_card, &mine)),
        };
        let sas = sas_digits(&keys.sas, host, guest, self.sas_len);
        self.state = State::AwaitingOperator { keys, peer: Peer { card, token }, sas, peer_voted: false };
        Progress::default()
    }

    /// Aborts locally and tells the peer.
    fn abort(&mut self, reason: AbortReason) -> Progress {
        self.end(reason, false);
        Progress { send: vec![encode(&Wire::Abort { reason })] }
    }

    fn end(&mut self, reason: AbortReason, by_peer: bool) {
        let state = core::mem::replace(&mut self.state, State::AwaitingPeerPake);
        let (voted, peer) = match state {
            State::AwaitingPeerVote { peer, .. } => (true, Some(peer)),
            State::AwaitingOperator { peer, .. } => (false, Some(peer)),
            _ => (false, None),
        };
        self.state = State::Aborted { reason, by_peer, voted, peer };
    }
}

fn spake(code: &Code, seed: &Secret32) -> (Spake2<Ed25519Group>, Vec<u8>) {
    Spake2::<Ed25519Group>::start_symmetric_with_rng(
        &Password::new(code.expose().as_bytes()),
        &PakeIdentity::new(labels::PAKE_IDENTITY),
        SeededRng::new(seed, b"spake2"),
    )
}

fn derive_keys(key: &[u8], host_msg: &[u8], guest_msg: &[u8], role: Role) -> Keys {
    let transcript = Sha256::new()
        .chain_update(labels::PAKE_IDENTITY)
        .chain_update((host_msg.len() as u64).to_be_bytes())
        .chain_update(host_msg)
        .chain_update((guest_msg.len() as u64).to_be_bytes())
        .chain_update(guest_msg)
        .finalize();
    let hk = Hkdf::<Sha256>::new(Some(&transcript), key);
    let expand = |parts: &[&[u8]]| {
        let mut out = [0u8; 32];
        hk.expand_multi_info(parts, &mut out).expect("32 bytes is a valid HKDF-SHA256 length");
        Secret32::from_bytes(out)
    };
    let direction = |from: Role| -> Vec<u8> { [from.name(), b"->", from.peer().name()].concat() };
    Keys {
        confirm_mine: expand(&[labels::PAKE_CONFIRM, role.name()]),
        confirm_theirs: expand(&[labels::PAKE_CONFIRM, role.peer().name()]),
        send: expand(&[labels::PAKE_CHANNEL, &direction(role)]),
        recv: expand(&[labels::PAKE_CHANNEL, &direction(role.peer())]),
        sas: expand(&[labels::SAS]),
        send_seq: 0,
        recv_seq: 0,
        transcript: transcript.into(),
    }
}

fn confirm_mac(key: &Secret32) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(labels::PAKE_CONFIRM);
    mac
}

/// A side's SAS nonce: 32 bytes from its persisted seed.
fn sas_nonce(seed: &Secret32) -> [u8; 32] {
    let mut n = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut SeededRng::new(seed, labels::SAS_NONCE), &mut n);
    n
}

/// C = SHA-256("wire/v2/sas-commit" || role || transcript || SHA-256(card payload) || n).
fn commitment(role: Role, transcript: &[u8; 32], card: &Card, n: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(labels::SAS_COMMIT)
        .chain_update(role.name())
        .chain_update(transcript)
        .chain_update(Sha256::digest(&card.signed().payload))
        .chain_update(n)
        .finalize()
        .into()
}

/// SAS = HKDF-Expand(sas_key, "wire/v2/sas" || host DID || 0 || guest DID || 0 ||
/// SHA-256(host card payload) || SHA-256(guest card payload) || n_host || n_guest, 8) as
/// u64 BE mod 10^digits.
fn sas_digits(sas_key: &Secret32, host: (&Card, &[u8; 32]), guest: (&Card, &[u8; 32]), digits: u32) -> String {
    let hk = Hkdf::<Sha256>::from_prk(sas_key.expose()).expect("32-byte PRK");
    let host_hash = Sha256::digest(&host.0.signed().payload);
    let guest_hash = Sha256::digest(&guest.0.signed().payload);
    let mut out = [0u8; 8];
    hk.expand_multi_info(
        &[
            labels::SAS_V2,
            host.0.did().as_str().as_bytes(),
            &[0],
            guest.0.did().as_str().as_bytes(),
            &[0],
            &host_hash,
            &guest_hash,
            host.1,
            guest.1,
        ],
        &mut out,
    )
    .expect("8 bytes is a valid HKDF-SHA256 length");
    format!("{:0width$}", u64::from_be_bytes(out) % 10u64.pow(digits), width = digits as usize)
}

fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

fn seal(keys: &mut Keys, inner: &Inner) -> Vec<u8> {
    let plain = Zeroizing::new(serde_json::to_vec(inner).expect("inner message serializes"));
    let aead = ChaCha20Poly1305::new_from_slice(keys.send.expose()).expect("32-byte key");
    let seq = keys.send_seq;
    let ct = aead
        .encrypt(&nonce(seq).into(), Payload { msg: &plain, aad: labels::PAKE_CHANNEL })
        .expect("in-memory AEAD cannot fail");
    keys.send_seq += 1;
    encode(&Wire::Sealed { seq, ct })
}

/// Opens the next message from the peer; a replayed, skipped or forged one gives `None`.
fn open(keys: &mut Keys, seq: u64, ct: &[u8]) -> Option<Inner> {
    if seq != keys.recv_seq {
        return None;
    }
    let aead = ChaCha20Poly1305::new_from_slice(keys.recv.expose()).expect("32-byte key");
    let plain = Zeroizing::new(aead.decrypt(&nonce(seq).into(), Payload { msg: ct, aad: labels::PAKE_CHANNEL }).ok()?);
    keys.recv_seq += 1;
    serde_json::from_slice(&plain).ok()
}

fn encode(wire: &Wire) -> Vec<u8> {
    serde_json::to_vec(wire).expect("wire message serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::Identity;

    impl CodePairing {
        /// A shorter SAS, so a test can play an attacker in a bounded number of tries.
        fn with_sas_len(mut self, digits: u32) -> Self {
            self.sas_len = digits;
            self
        }
    }

    /// Version 1's SAS: over both cards only, so whoever controls one card chooses it after
    /// seeing the other.
    fn sas_v1(sas_key: &Secret32, host: &Card, guest: &Card, digits: u32) -> String {
        let hk = Hkdf::<Sha256>::from_prk(sas_key.expose()).unwrap();
        let (h, g) = (Sha256::digest(&host.signed().payload), Sha256::digest(&guest.signed().payload));
        let mut out = [0u8; 8];
        let info: [&[u8]; 7] =
            [labels::SAS, host.did().as_str().as_bytes(), &[0], guest.did().as_str().as_bytes(), &[0], &h, &g];
        hk.expand_multi_info(&info, &mut out).unwrap();
        format!("{:0w$}", u64::from_be_bytes(out) % 10u64.pow(digits), w = digits as usize)
    }

    fn card(seed: u8, at: u64) -> (Identity, Card) {
        let id = Identity::from_secret_bytes(&[seed; 32], [seed ^ 0x55; 32]);
        let card = Card::issue(&id, vec![], vec!["message".into()], UnixMillis(at));
        (id, card)
    }

    fn side(role: Role, seed: u8, card: &Card) -> (CodePairing, Vec<Vec<u8>>) {
        let code = Code::parse("7-brave-otter").unwrap();
        let token = Token::new("send.test-token-00").unwrap();
        let now = UnixMillis(1_000);
        let (p, out) =
            CodePairing::start(role, code, card.clone(), token, Secret32::from_bytes([seed; 32]), now, DEFAULT_TIMEOUT);
        (p.with_sas_len(3), out.send)
    }

    /// Delivers messages both ways until neither side has anything to say.
    fn pump(a: &mut CodePairing, b: &mut CodePairing, mut to_a: Vec<Vec<u8>>, mut to_b: Vec<Vec<u8>>) {
        let now = UnixMillis(2_000);
        while !to_a.is_empty() || !to_b.is_empty() {
            for m in std::mem::take(&mut to_a) {
                to_b.extend(a.receive(&m, now).send);
            }
            for m in std::mem::take(&mut to_b) {
                to_a.extend(b.receive(&m, now).send);
            }
        }
    }

    fn sas_of(p: &CodePairing) -> String {
        p.sas().expect("digits ready").to_owned()
    }

    /// A relay (or anyone) that knows the spoken code runs one PAKE with each side and tries
    /// to make both screens show the same digits. With a 3-digit SAS, version 1 falls to a
    /// few thousand tries of its own card; version 2's commitments leave it one try.
    #[test]
    fn an_attacker_who_knows_the_code_grinds_version_1_and_gets_one_try_at_version_2() {
        let (_, host_card) = card(1, 10);
        let (_, guest_card) = card(2, 10);
        let (mitm, mitm_card) = card(9, 10);

        // Version 1, at the derivation: the attacker holds both PAKE keys and both honest
        // cards, fixes its card towards the guest, then grinds its card towards the host.
        let (k_host, k_guest) = (Secret32::from_bytes([11; 32]), Secret32::from_bytes([12; 32]));
        let target = sas_v1(&k_guest, &mitm_card, &guest_card, 3);
        let tries = (1..=50_000u64)
            .find(|t| sas_v1(&k_host, &host_card, &Card::issue(&mitm, vec![], vec![], UnixMillis(*t)), 3) == target);
        assert!(tries.is_some(), "the version 1 grind succeeds within the bound: the attack is real");

        // Version 2, through the real state machines. Channel 1: host <-> attacker (guest).
        let (mut host, host_out) = side(Role::Host, 1, &host_card);
        let (mut m_guest, mg_out) = side(Role::Guest, 21, &mitm_card);
        pump(&mut host, &mut m_guest, mg_out, host_out);
        let host_sas = sas_of(&host);
        // Channel 2: attacker (host) <-> guest. The attacker withholds its own opening until
        // it has the guest's, then looks for a card that would match the host's digits.
        let (mut m_host, mh_out) = side(Role::Host, 22, &mitm_card);
        let (mut guest, guest_out) = side(Role::Guest, 2, &guest_card);
        let now = UnixMillis(2_000);
        let to_guest = m_host.receive(&guest_out[0], now).send; // [confirm, commitment]
        let mut from_guest = guest.receive(&mh_out[0], now).send; // [confirm, commitment]
        for m in &to_guest {
            from_guest.extend(guest.receive(m, now).send); // it holds the commitment: its opening
        }
        assert_eq!(from_guest.len(), 3, "confirm, commitment, opening");
        let mut withheld = Vec::new();
        for m in &from_guest {
            withheld.extend(m_host.receive(m, now).send); // the attacker's own opening: kept back
        }
        // The guest revealed (it held the attacker's commitment); the attacker now knows
        // every input of the guest's SAS except what it committed to.
        let State::AwaitingOperator { keys, .. } = &m_host.state else {
            panic!("the attacker has the guest's opening")
        };
        let guest_n = match &guest.state {
            State::AwaitingPeerHello { .. } => sas_nonce(&Secret32::from_bytes([2; 32])),
            other => panic!("the guest waits for the attacker's opening, not {other:?}"),
        };
        let n = sas_nonce(&Secret32::from_bytes([22; 32]));
        let forged = (1..=50_000u64)
            .map(|t| Card::issue(&mitm, vec![], vec!["message".into()], UnixMillis(t)))
            .find(|c| sas_digits(&keys.sas, (c, &n), (&guest_card, &guest_n), 3) == host_sas);
        let forged = forged.expect("offline, a matching card is easy to find");
        // ... but the guest takes only the opening the attacker committed to.
        let mut k = keys.clone();
        k.send_seq = 1;
        let fake =
            seal(&mut k, &Inner::Hello { card: forged.signed().clone(), send_token: m_host.my_token.clone(), n });
        let mut honest_guest = guest.clone();
        guest.receive(&fake, now);
        assert_eq!(guest.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });
        assert!(guest.paired().is_none());
        // Its one try, the committed opening, shows other digits than the host's screen.
        assert_eq!(withheld.len(), 1);
        honest_guest.receive(&withheld[0], now);
        assert_ne!(sas_of(&honest_guest), host_sas, "one try in 10^3 here (10^6 with six digits), and it missed");
    }

    #[test]
    fn codes_parse_forgivingly_and_name_typos() {
        let code = Code::parse("  17 Brave_Otter ").expect("valid");
        assert_eq!(code.expose(), "17-brave-otter");
        assert_eq!(code.nameplate(), "17");
        assert_eq!(Code::parse("17-brave"), Err(CodeError::Malformed));
        assert_eq!(Code::parse("x7-brave-otter"), Err(CodeError::BadNameplate));
        assert_eq!(Code::parse("17-brvae-otter"), Err(CodeError::UnknownWord("brvae".into())));
        assert_eq!(format!("{code:?}"), "Code(17-..)", "the secret words never print");
    }

    #[test]
    fn generated_codes_parse() {
        let mut rng = SeededRng::new(&Secret32::from_bytes([5; 32]), b"test");
        for _ in 0..100 {
            let code = Code::generate("42", &mut rng).expect("valid nameplate");
            assert_eq!(Code::parse(code.expose()), Ok(code));
        }
    }
}
