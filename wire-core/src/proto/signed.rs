//! Signatures over exact bytes.
//!
//! A [`Signed`] document carries its payload as the bytes that were signed, so verification
//! never depends on re-serializing JSON. The signature covers `label || 0x00 || payload`,
//! where the label names the document type (see [`super::labels`]), so a signature over a
//! card can never be replayed as a signature over an event.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::b64;
use super::identity::Identity;

/// A payload and an Ed25519 signature over it. JSON: `{"payload": b64u, "sig": b64u}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The exact signed bytes (a JSON document for every current type).
    #[serde(with = "b64::bytes")]
    pub payload: Vec<u8>,
    /// Ed25519 signature over `label || 0x00 || payload`.
    #[serde(with = "b64::fixed")]
    pub sig: [u8; 64],
}

/// The signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

impl Signed {
    /// Signs `payload` as a document of type `label`.
    pub fn sign(identity: &Identity, label: &[u8], payload: Vec<u8>) -> Self {
        let sig = identity.sign(label, &payload);
        Self { payload, sig }
    }

    /// Verifies with `key` (strict: rejects non-canonical signatures and small-order keys).
    pub fn verify(&self, label: &[u8], key: &VerifyingKey) -> Result<(), BadSignature> {
        let sig = Signature::from_bytes(&self.sig);
        key.verify_strict(&signing_input(label, &self.payload), &sig).map_err(|_| BadSignature)
    }
}

/// The bytes a signature covers.
pub(crate) fn signing_input(label: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(label.len() + 1 + payload.len());
    input.extend_from_slice(label);
    input.push(0);
    input.extend_from_slice(payload);
    input
}

/// Reads the `v` field of a JSON payload without committing to the rest of its shape, so
/// an unknown version is reported as such rather than as a parse error.
pub(crate) fn peek_version(payload: &[u8]) -> Result<u64, serde_json::Error> {
    #[derive(Deserialize)]
    struct Versioned {
        v: u64,
    }
    serde_json::from_slice::<Versioned>(payload).map(|v| v.v)
}
