//! Invite URLs: `wire://pair?v=1&inv=<base64url(sig || payload)>`.
//!
//! The payload is JSON ([`InviteBody`]) signed by the issuer with `labels::SIGN_INVITE`:
//! the issuer's card, the relay and slot to write to, a single-use expiring intro token,
//! and a fresh 32-byte secret the guest proves it saw. The URL is a bearer capability for
//! one pairing: whoever holds it can pair with the issuer until it is used or expires.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::api::SlotId;
use super::b64;
use super::card::{Card, CardError};
use super::identity::Identity;
use super::labels;
use super::secret::{Secret32, Token};
use super::signed::{Signed, peek_version};
use super::time::UnixMillis;

/// The invite format this build writes and reads.
pub const INVITE_VERSION: u64 = 1;
const URL_PREFIX: &str = "wire://pair?";
/// Longest invite URL accepted before any decoding (a card with many endpoints fits well).
pub const MAX_URL_LEN: usize = 16 * 1024;

/// The signed content of an invite.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Format version, [`INVITE_VERSION`].
    pub v: u64,
    /// Random invite id; the issuer tracks uses by it.
    #[serde(with = "b64::fixed")]
    pub id: [u8; 16],
    /// The issuer's signed card.
    pub card: Signed,
    /// Relay base URL of the issuer's slot.
    pub relay: String,
    /// The issuer's slot.
    pub slot: SlotId,
    /// Intro capability: lets the guest post its `pair_request` to the slot once.
    pub intro_token: Token,
    /// The secret the guest proves knowledge of.
    pub secret: Secret32,
    /// After this the invite is refused by both the issuer and the guest.
    pub expires_at: UnixMillis,
}

/// A verified invite.
#[derive(Clone, Debug)]
pub struct Invite {
    signed: Signed,
    body: InviteBody,
    issuer: Card,
}

/// Why an invite URL was refused. Each says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// Not a `wire://pair?` URL at all.
    #[error("not a wire invite: expected a URL starting with `wire://pair?`")]
    NotAnInvite,
    /// Longer than [`MAX_URL_LEN`].
    #[error("invite URL is too long ({0} bytes); ask for a new invite")]
    TooLong(usize),
    /// Only `v=1` arrived: an unquoted URL was cut by the shell at `&`.
    #[error(
        "invite URL stops before `&inv=`: the shell cut it at `&`. Quote the whole URL: \
         wire accept 'wire://pair?v=1&inv=...'"
    )]
    CutAtAmpersand,
    /// A required query parameter is missing.
    #[error("invite URL is missing `{0}=`; it was probably cut off when copied: copy the whole URL")]
    MissingParameter(&'static str),
    /// A version this build does not read.
    #[error("invite version `{0}` is not supported by this build (expected 1); upgrade wire or ask for a new invite")]
    WrongVersion(String),
    /// Cut off: the payload ends early.
    #[error("invite URL is truncated; copy the whole URL (it is long) and try again")]
    Truncated,
    /// Not valid base64url or not an invite payload.
    #[error("invite URL is corrupted (not valid invite data); copy it again from the issuer")]
    Corrupted,
    /// The signature does not verify, or the embedded card is not valid.
    #[error("invite URL has been altered (signature check failed); do not use it, ask the issuer for a new one")]
    Tampered,
    /// Past `expires_at`.
    #[error("invite expired at {expired_at}; ask the issuer for a new one (`wire invite`)")]
    Expired {
        /// When it expired.
        expired_at: UnixMillis,
    },
}

impl Invite {
    /// Issues an invite. `card` must be `issuer`'s own card.
    pub fn issue(
        issuer: &Identity,
        card: &Card,
        relay: String,
        slot: SlotId,
        intro_token: Token,
        expires_at: UnixMillis,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        debug_assert_eq!(card.did(), issuer.did(), "an invite carries the issuer's own card");
        let mut id = [0; 16];
        rng.fill_bytes(&mut id);
        let body = InviteBody {
            v: INVITE_VERSION,
            id,
            card: card.signed().clone(),
            relay,
            slot,
            intro_token,
            secret: Secret32::random(rng),
            expires_at,
        };
        let payload = serde_json::to_vec(&body).expect("invite body serializes");
        Self { signed: Signed::sign(issuer, labels::SIGN_INVITE, payload), body, issuer: card.clone() }
    }

    /// The URL form.
    pub fn to_url(&self) -> String {
        signed_to_url(URL_PREFIX, &self.signed)
    }

    /// Parses and verifies an invite URL, refusing it if expired at `now`.
    pub fn parse_url(url: &str, now: UnixMillis) -> Result<Self, InviteError> {
        let signed = signed_from_url(URL_PREFIX, url)?;
        let json_error =
            |e: serde_json::Error| if e.is_eof() { InviteError::Truncated } else { InviteError::Corrupted };
        let body: InviteBody = serde_json::from_slice(&signed.payload).map_err(json_error)?;
        let issuer = Card::verify(body.card.clone()).map_err(|e| match e {
            CardError::UnsupportedVersion(v) => InviteError::WrongVersion(format!("card {v}")),
            _ => InviteError::Tampered,
        })?;
        // Signed by the key the issuer signs with now (its card's lineage, if it rotated).
        signed.verify(labels::SIGN_INVITE, &issuer.current_key()).map_err(|_| InviteError::Tampered)?;
        if now >= body.expires_at {
            return Err(InviteError::Expired { expired_at: body.expires_at });
        }
        Ok(Self { signed, body, issuer })
    }

    /// The verified content.
    pub fn body(&self) -> &InviteBody {
        &self.body
    }

    /// The issuer's verified card.
    pub fn issuer(&self) -> &Card {
        &self.issuer
    }
}

/// `prefix` + `v=1&inv=` + base64url(sig || payload): the URL form of a signed invite
/// (pairing invites here, room invites in `crate::room`).
pub fn signed_to_url(prefix: &str, signed: &Signed) -> String {
    let mut raw = Vec::with_capacity(64 + signed.payload.len());
    raw.extend_from_slice(&signed.sig);
    raw.extend_from_slice(&signed.payload);
    format!("{prefix}v={INVITE_VERSION}&inv={}", b64::encode(raw))
}

/// The signed document of a URL made by [`signed_to_url`] (signature not checked yet;
/// `v` must be 1 in the URL and in the payload).
pub fn signed_from_url(prefix: &str, url: &str) -> Result<Signed, InviteError> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(InviteError::TooLong(url.len()));
    }
    let query = url.strip_prefix(prefix).ok_or(InviteError::NotAnInvite)?;
    let (mut version, mut inv) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("v", value)) => version = Some(value),
            Some(("inv", value)) => inv = Some(value),
            _ => {}
        }
    }
    let version = version.ok_or(InviteError::MissingParameter("v"))?;
    if version != "1" {
        return Err(InviteError::WrongVersion(version.chars().take(16).collect()));
    }
    let inv = match inv {
        Some(inv) => inv,
        None if !query.contains('&') => return Err(InviteError::CutAtAmpersand),
        None => return Err(InviteError::MissingParameter("inv")),
    };
    let raw = b64::decode(inv).map_err(|e| match e {
        base64::DecodeError::InvalidByte(..) => InviteError::Corrupted,
        _ => InviteError::Truncated,
    })?;
    if raw.len() < 64 {
        return Err(InviteError::Truncated);
    }
    let (sig, payload) = raw.split_at(64);
    let signed = Signed { payload: payload.to_vec(), sig: sig.try_into().map_err(|_| InviteError::Truncated)? };
    let json_error = |e: serde_json::Error| if e.is_eof() { InviteError::Truncated } else { InviteError::Corrupted };
    let v = peek_version(&signed.payload).map_err(json_error)?;
    if v != INVITE_VERSION {
        return Err(InviteError::WrongVersion(v.to_string()));
    }
    Ok(signed)
}
