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
//! drawn from a [`SeededRng`](crate::proto::rng::SeededRng) over a persisted seed, so a detached pairing survives a
//! restart of whichever process drives it. Any message that is not the one the current
//! state waits for aborts cleanly; the relay never learns the code.

mod schedule;

use core::fmt;
use core::time::Duration;

use hmac::Mac;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use self::schedule::{Keys, commitment, confirm_mac, derive_keys, open, sas_digits, sas_nonce, seal, spake};
use super::{Extras, Paired, Tier};
use crate::proto::b64;
use crate::proto::card::Card;
use crate::proto::character::{ADJECTIVES, NOUNS};
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

/// Plaintext inside `Wire::Sealed`. (Parsed once per message and dropped: the size of the
/// Hello variant costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prekeys: Option<Signed>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tokens: Vec<super::SlotToken>,
    },
    Vote,
}

fn version_one() -> u64 {
    1
}

fn six() -> u32 {
    SAS_DIGITS
}

/// The peer as learned from its Hello.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Peer {
    card: Card,
    token: Token,
    #[serde(default)]
    extras: Extras,
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
    /// Not six digits: a typo, not a mismatch. The pairing is kept.
    #[error("type the 6 digits shown on the other screen (e.g. 123 456); the pairing is still open")]
    BadDigits,
}

/// The six digits in what an operator typed (spaces and dashes forgiven), if that is all it is.
fn six_digits(typed: &str) -> Option<String> {
    let kept: String = typed.chars().filter(|c| !matches!(c, ' ' | '-' | '\t')).collect();
    (kept.len() == 6 && kept.bytes().all(|b| b.is_ascii_digit())).then_some(kept)
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
    /// Our signed prekey bundle and further tokens, sent with our Hello.
    #[serde(default)]
    my_extras: Extras,
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
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        role: Role,
        code: Code,
        my_card: Card,
        my_extras: Extras,
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
            my_extras,
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
            State::Paired { peer, .. } => Some(Paired {
                card: peer.card.clone(),
                send_token: peer.token.clone(),
                tier: Tier::Verified,
                extras: peer.extras.clone(),
            }),
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
                            prekeys: self.my_extras.prekeys.clone(),
                            tokens: self.my_extras.tokens.clone(),
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
                    Some(Inner::Hello { card, send_token, n, prekeys, tokens }) => {
                        self.on_hello(keys, commit, (card, send_token, Extras { prekeys, tokens }), n)
                    }
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
        let typed = six_digits(typed_digits).ok_or(ConfirmError::BadDigits)?;
        self.settle_vote(Some(typed))
    }

    /// The operator says the two screens show different digits: the channel may be
    /// intercepted, and the pairing ends.
    pub fn mismatch(&mut self, now: UnixMillis) -> Result<Progress, ConfirmError> {
        if let Some(p) = self.expire(now) {
            return Ok(p);
        }
        self.settle_vote(None)
    }

    /// Votes yes when `typed` equals the SAS, else aborts with a mismatch.
    fn settle_vote(&mut self, typed: Option<String>) -> Result<Progress, ConfirmError> {
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
        // Both values are public to the operators; a plain comparison leaks nothing.
        if typed.as_deref() != Some(sas.as_str()) {
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

    fn on_hello(
        &mut self,
        keys: Keys,
        commit: [u8; 32],
        (card, token, extras): (Signed, Token, Extras),
        n: [u8; 32],
    ) -> Progress {
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
        self.state = State::AwaitingOperator { keys, peer: Peer { card, token, extras }, sas, peer_voted: false };
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

fn encode(wire: &Wire) -> Vec<u8> {
    serde_json::to_vec(wire).expect("wire message serializes")
}

#[cfg(test)]
mod tests;
