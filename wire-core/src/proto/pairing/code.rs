//! The code flow: SPAKE2 over a short code, key confirmation, SAS, two-phase finalize.
//!
//! ```text
//! host                        rendezvous (nameplate N)                      guest
//!  start -> Pake(X)  ---------------------------------------------------->
//!          <--------------------------------------------------  Pake(Y)   <- start
//!  K = SPAKE2(code)                                          K = SPAKE2(code)
//!  Confirm(mac_host), Sealed#0(Hello{card,token}) ---------------------->
//!          <-------------------  Confirm(mac_guest), Sealed#0(Hello{card,token})
//!  both: check peer's confirm MAC (wrong code -> abort, nameplate burned)
//!  both: SAS = 6 digits from K and both cards -> operator compares, types peer's digits
//!  Sealed#1(Vote) ------------------------------------------------------->
//!          <----------------------------------------------------  Sealed#1(Vote)
//!  paired once own vote is cast AND the peer's vote has arrived
//! ```
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
    Hello { card: Signed, send_token: Token },
    Vote,
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
    AwaitingPeerConfirm { keys: Keys },
    AwaitingPeerHello { keys: Keys },
    AwaitingOperator { keys: Keys, peer: Peer, sas: String, peer_voted: bool },
    AwaitingPeerVote { keys: Keys, peer: Peer, sas: String },
    Paired { peer: Peer, sas: String },
    Aborted { reason: AbortReason, by_peer: bool, voted: bool, peer: Option<Peer> },
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
        let first = encode(&Wire::Pake { msg: my_pake.clone() });
        let this = Self {
            role,
            code,
            seed,
            my_card,
            my_token,
            deadline: now.saturating_add(timeout),
            my_pake,
            state: State::AwaitingPeerPake,
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
            State::AwaitingPeerPake | State::AwaitingPeerConfirm { .. } | State::AwaitingPeerHello { .. } => {
                Status::Waiting
            }
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
            (State::AwaitingPeerPake, Wire::Pake { msg }) => self.on_pake(&msg),
            (State::AwaitingPeerConfirm { keys }, Wire::Confirm { mac }) => {
                let expected = confirm_mac(&keys.confirm_theirs);
                if expected.verify_slice(&mac).is_err() {
                    self.state = State::AwaitingPeerConfirm { keys };
                    return self.abort(AbortReason::WrongCode);
                }
                self.state = State::AwaitingPeerHello { keys };
                Progress::default()
            }
            (State::AwaitingPeerHello { mut keys }, Wire::Sealed { seq, ct }) => match open(&mut keys, seq, &ct) {
                Some(Inner::Hello { card, send_token }) => self.on_hello(keys, card, send_token),
                _ => {
                    self.state = State::AwaitingPeerHello { keys };
                    self.abort(AbortReason::ProtocolViolation)
                }
            },
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
        let hello =
            seal(&mut keys, &Inner::Hello { card: self.my_card.signed().clone(), send_token: self.my_token.clone() });
        self.state = State::AwaitingPeerConfirm { keys };
        Progress { send: vec![confirm, hello] }
    }

    fn on_hello(&mut self, keys: Keys, card: Signed, token: Token) -> Progress {
        let card = match Card::verify(card) {
            Ok(card) if card.did() != self.my_card.did() => card,
            _ => {
                self.state = State::AwaitingPeerHello { keys };
                return self.abort(AbortReason::InvalidCard);
            }
        };
        let (host, guest) = match self.role {
            Role::Host => (&self.my_card, &card),
            Role::Guest => (&card, &self.my_card),
        };
        let sas = sas_digits(&keys.sas, host, guest);
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
    }
}

fn confirm_mac(key: &Secret32) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(labels::PAKE_CONFIRM);
    mac
}

/// SAS = HKDF-Expand(sas_key, "wire/v1/sas" || host DID || 0 || guest DID || 0 ||
/// SHA-256(host card payload) || SHA-256(guest card payload), 8) as u64 BE mod 10^6.
fn sas_digits(sas_key: &Secret32, host: &Card, guest: &Card) -> String {
    let hk = Hkdf::<Sha256>::from_prk(sas_key.expose()).expect("32-byte PRK");
    let host_hash = Sha256::digest(&host.signed().payload);
    let guest_hash = Sha256::digest(&guest.signed().payload);
    let mut out = [0u8; 8];
    hk.expand_multi_info(
        &[
            labels::SAS,
            host.did().as_str().as_bytes(),
            &[0],
            guest.did().as_str().as_bytes(),
            &[0],
            &host_hash,
            &guest_hash,
        ],
        &mut out,
    )
    .expect("8 bytes is a valid HKDF-SHA256 length");
    format!("{:06}", u64::from_be_bytes(out) % 1_000_000)
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
