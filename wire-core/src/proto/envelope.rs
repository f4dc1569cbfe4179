//! Sealed envelopes: what the relay stores and forwards.
//!
//! ```text
//! envelope   = version (0x01) || epk (32) || ciphertext
//! ciphertext = ChaCha20-Poly1305(key, nonce, aad = version || epk, padded)
//! padded     = u32be(len) || plaintext || zeros, to the smallest size bucket
//! plaintext  = sig (64) || payload: the sender's signed event, in binary
//! ```
//!
//! Key schedule (modelled on RFC 9180 HPKE base mode with DHKEM(X25519)):
//! `dh = X25519(esk, pkR)`; `prk = HKDF-Extract(salt = "wire/v1/envelope", ikm = dh)`;
//! `key || nonce = HKDF-Expand(prk, "wire/v1/envelope" || version || epk || pkR, 44)`.
//! Each envelope has a fresh ephemeral key, so the derived nonce is never reused.
//!
//! Nothing in the clear names the sender, the recipient or the kind; the length reveals
//! only the size bucket. Every failure to open is the same opaque [`OpenError`].

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

use super::event::{SignedEvent, VerifiedEvent};
use super::identity::Identity;
use super::labels;
use super::signed::Signed;

/// Envelope format version byte.
pub const ENVELOPE_VERSION: u8 = 1;
/// Padded plaintext sizes. An envelope is `1 + 32 + bucket + 16` bytes long.
pub const BUCKETS: [usize; 7] = [256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];
/// Bytes of header and tag around the padded plaintext.
pub const OVERHEAD: usize = 1 + 32 + 16;
/// The largest signed event that fits in an envelope.
pub const MAX_PLAINTEXT: usize = BUCKETS[BUCKETS.len() - 1] - 4;
/// The largest envelope this version produces (relays may set a lower limit).
pub const MAX_ENVELOPE: usize = BUCKETS[BUCKETS.len() - 1] + OVERHEAD;

/// Envelope bytes, ready to post to a relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedEnvelope(pub Vec<u8>);

/// Why an event could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The event is too large for any bucket.
    #[error("message is too large: {size} bytes signed; the largest envelope holds {MAX_PLAINTEXT}")]
    TooLarge {
        /// Signed event size.
        size: usize,
    },
    /// The recipient's X25519 key is a low-order point: anything sealed to it would be
    /// readable by anyone. Only a broken or hostile card carries such a key.
    #[error("the recipient's encryption key is invalid (low-order point); refusing to seal")]
    InvalidRecipientKey,
}

/// The envelope could not be opened: wrong recipient key, tampered bytes, wrong version,
/// truncated, or malformed inside. Deliberately says no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("could not open envelope")]
pub struct OpenError;

/// The size bucket for a plaintext of `len` bytes (the 4-byte length prefix is added).
pub fn bucket_for(len: usize) -> Option<usize> {
    BUCKETS.iter().copied().find(|b| len + 4 <= *b)
}

/// Seals a signed event to the recipient's X25519 key.
pub fn seal(
    event: &SignedEvent,
    recipient: &X25519Public,
    rng: &mut impl CryptoRngCore,
) -> Result<SealedEnvelope, SealError> {
    seal_signed(event.signed(), recipient, rng)
}

/// Seals an already verified event (re-sealing for another endpoint, tests).
pub fn seal_verified(
    event: &VerifiedEvent,
    recipient: &X25519Public,
    rng: &mut impl CryptoRngCore,
) -> Result<SealedEnvelope, SealError> {
    seal_signed(event.signed(), recipient, rng)
}

/// Seals a signed document as it is: an event this build may not be able to parse (a newer
/// peer's kind, in compatibility tests), or one kept from earlier.
pub fn seal_signed(
    signed: &Signed,
    recipient: &X25519Public,
    rng: &mut impl CryptoRngCore,
) -> Result<SealedEnvelope, SealError> {
    let plaintext_len = 64 + signed.payload.len();
    let bucket = bucket_for(plaintext_len).ok_or(SealError::TooLarge { size: plaintext_len })?;
    let mut padded = Zeroizing::new(Vec::with_capacity(bucket));
    let len = u32::try_from(plaintext_len).expect("bounded by MAX_PLAINTEXT");
    padded.extend_from_slice(&len.to_be_bytes());
    padded.extend_from_slice(&signed.sig);
    padded.extend_from_slice(&signed.payload);
    padded.resize(bucket, 0);

    let esk = EphemeralSecret::random_from_rng(rng);
    let epk = X25519Public::from(&esk);
    let dh = esk.diffie_hellman(recipient);
    if !dh.was_contributory() {
        return Err(SealError::InvalidRecipientKey);
    }
    let (aead, nonce) = cipher(dh.as_bytes(), &epk, recipient);
    let mut out = Vec::with_capacity(OVERHEAD + bucket);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(epk.as_bytes());
    let ct =
        aead.encrypt(&nonce.into(), Payload { msg: &padded, aad: &aad(&epk) }).expect("in-memory AEAD cannot fail");
    out.extend_from_slice(&ct);
    Ok(SealedEnvelope(out))
}

/// Opens an envelope addressed to `me`, returning the signed event inside, not yet
/// verified: look up the pinned key for [`SignedEvent::claimed_sender`] and call
/// [`SignedEvent::verify`].
pub fn open(me: &Identity, envelope: &[u8]) -> Result<SignedEvent, OpenError> {
    SignedEvent::parse(open_signed(me, envelope)?).map_err(|_| OpenError)
}

/// Opens an envelope addressed to `me` down to the signed document, without reading the
/// event inside: the receive path parses it itself, so an event of a kind from a newer
/// peer is told apart from a damaged envelope.
pub fn open_signed(me: &Identity, envelope: &[u8]) -> Result<Signed, OpenError> {
    open_to(envelope, &me.x25519_public(), |epk| me.diffie_hellman(epk))
}

/// Opens an envelope sealed to one of our prekeys (docs/PROTOCOL.md 7.1): the same
/// construction with the prekey in place of the identity's X25519 key.
pub fn open_signed_with(secret: &StaticSecret, envelope: &[u8]) -> Result<Signed, OpenError> {
    open_to(envelope, &X25519Public::from(secret), |epk| secret.diffie_hellman(epk))
}

fn open_to(
    envelope: &[u8],
    recipient: &X25519Public,
    dh: impl FnOnce(&X25519Public) -> x25519_dalek::SharedSecret,
) -> Result<Signed, OpenError> {
    let (&version, rest) = envelope.split_first().ok_or(OpenError)?;
    if version != ENVELOPE_VERSION || rest.len() < 32 + 16 {
        return Err(OpenError);
    }
    let (epk_bytes, ct) = rest.split_at(32);
    let epk_arr: [u8; 32] = epk_bytes.try_into().map_err(|_| OpenError)?;
    let epk = X25519Public::from(epk_arr);
    if !BUCKETS.contains(&(ct.len() - 16)) {
        return Err(OpenError);
    }
    let dh = dh(&epk);
    if !dh.was_contributory() {
        return Err(OpenError);
    }
    let (aead, nonce) = cipher(dh.as_bytes(), &epk, recipient);
    let padded =
        Zeroizing::new(aead.decrypt(&nonce.into(), Payload { msg: ct, aad: &aad(&epk) }).map_err(|_| OpenError)?);
    let (len, body) = padded.split_at(4);
    let len = usize::try_from(u32::from_be_bytes(len.try_into().map_err(|_| OpenError)?)).map_err(|_| OpenError)?;
    if len < 64 || len > body.len() || body[len..].iter().any(|b| *b != 0) {
        return Err(OpenError);
    }
    let (sig, payload) = body[..len].split_at(64);
    Ok(Signed { payload: payload.to_vec(), sig: sig.try_into().map_err(|_| OpenError)? })
}

fn aad(epk: &X25519Public) -> [u8; 33] {
    let mut aad = [0; 33];
    aad[0] = ENVELOPE_VERSION;
    aad[1..].copy_from_slice(epk.as_bytes());
    aad
}

fn cipher(dh: &[u8; 32], epk: &X25519Public, recipient: &X25519Public) -> (ChaCha20Poly1305, [u8; 12]) {
    let hk = Hkdf::<Sha256>::new(Some(labels::ENVELOPE), dh);
    let mut info = Vec::with_capacity(labels::ENVELOPE.len() + 65);
    info.extend_from_slice(labels::ENVELOPE);
    info.push(ENVELOPE_VERSION);
    info.extend_from_slice(epk.as_bytes());
    info.extend_from_slice(recipient.as_bytes());
    let mut okm = Zeroizing::new([0u8; 44]);
    hk.expand(&info, okm.as_mut()).expect("44 bytes is a valid HKDF-SHA256 length");
    let key = ChaCha20Poly1305::new_from_slice(&okm[..32]).expect("32-byte key");
    let mut nonce = [0; 12];
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}
