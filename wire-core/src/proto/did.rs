//! Decentralized identifiers in the W3C `did:key` form for Ed25519.
//!
//! `did:key:z<base58btc(0xed 0x01 || public key)>`. The DID *is* the public key, so a card,
//! a relay or a directory cannot lie about which key stands behind it.

use core::fmt;
use core::str::FromStr;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use sha2::{Digest, Sha256};

const PREFIX: &str = "did:key:z";
/// Multicodec `ed25519-pub` (0xed) as an unsigned varint.
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// A parsed, canonical `did:key` for an Ed25519 public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did {
    text: String,
    key: [u8; 32],
}

/// Why a string is not a usable DID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DidError {
    /// Does not start with `did:key:z`.
    #[error("not a did:key identifier (expected `did:key:z6Mk...`)")]
    NotDidKey,
    /// The multibase body is not valid base58btc.
    #[error("did:key body is not valid base58btc")]
    InvalidBase58,
    /// The multicodec is not `ed25519-pub`.
    #[error("did:key does not hold an Ed25519 public key")]
    NotEd25519,
    /// The key is not 32 bytes or not a valid curve point.
    #[error("did:key holds a malformed Ed25519 public key")]
    InvalidKey,
    /// Decodes, but is not in canonical form.
    #[error("did:key is not in canonical form")]
    NotCanonical,
}

impl Did {
    /// The DID of an Ed25519 public key.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        let mut raw = Vec::with_capacity(34);
        raw.extend_from_slice(&ED25519_MULTICODEC);
        raw.extend_from_slice(key.as_bytes());
        let text = format!("{PREFIX}{}", bs58::encode(raw).into_string());
        Self { text, key: key.to_bytes() }
    }

    /// Parses a `did:key` string.
    pub fn parse(text: &str) -> Result<Self, DidError> {
        let body = text.strip_prefix(PREFIX).ok_or(DidError::NotDidKey)?;
        // 34 bytes encode to at most 47 base58 characters; refuse long input before decoding.
        if body.len() > 64 {
            return Err(DidError::InvalidKey);
        }
        let raw = bs58::decode(body).into_vec().map_err(|_| DidError::InvalidBase58)?;
        let key = raw.strip_prefix(&ED25519_MULTICODEC).ok_or(DidError::NotEd25519)?;
        let key: [u8; 32] = key.try_into().map_err(|_| DidError::InvalidKey)?;
        let vk = VerifyingKey::from_bytes(&key).map_err(|_| DidError::InvalidKey)?;
        let did = Self::from_verifying_key(&vk);
        if did.text != text {
            return Err(DidError::NotCanonical);
        }
        Ok(did)
    }

    /// The DID string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The Ed25519 public key this DID encodes.
    pub fn verifying_key(&self) -> VerifyingKey {
        // Checked to be a valid point when the Did was built.
        VerifyingKey::from_bytes(&self.key).expect("Did holds a validated key")
    }

    /// The raw public key bytes.
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// A human-comparable fingerprint: the first 16 bytes of SHA-256 over the key, as eight
    /// groups of four hex digits (`a1b2-c3d4-...`). Operators compare these out of band.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new().chain_update(super::labels::FINGERPRINT).chain_update(self.key).finalize();
        digest[..16].chunks(2).map(|pair| format!("{:02x}{:02x}", pair[0], pair[1])).collect::<Vec<_>>().join("-")
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({})", self.text)
    }
}

impl FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // did:key test vector from the W3C did:key specification (Ed25519 section).
    const SPEC_DID: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";

    #[test]
    fn parses_and_reformats_spec_vector() {
        let did = Did::parse(SPEC_DID).expect("spec DID parses");
        assert_eq!(did.as_str(), SPEC_DID);
        assert_eq!(Did::from_verifying_key(&did.verifying_key()), did);
    }

    #[test]
    fn malformed_dids_are_typed_errors() {
        assert_eq!(Did::parse("did:web:example.com"), Err(DidError::NotDidKey));
        assert_eq!(Did::parse("did:key:z0OIl"), Err(DidError::InvalidBase58));
        // A valid multibase body with the X25519 multicodec (0xec) instead of Ed25519.
        let x = format!("did:key:z{}", bs58::encode([[0xec, 0x01].as_slice(), &[9u8; 32]].concat()).into_string());
        assert_eq!(Did::parse(&x), Err(DidError::NotEd25519));
        let short = format!("did:key:z{}", bs58::encode([0xed, 0x01, 1, 2, 3]).into_string());
        assert_eq!(Did::parse(&short), Err(DidError::InvalidKey));
        assert_eq!(Did::parse(""), Err(DidError::NotDidKey));
    }

    #[test]
    fn fingerprint_is_stable_and_grouped() {
        let did = Did::parse(SPEC_DID).expect("spec DID parses");
        let fp = did.fingerprint();
        assert_eq!(fp.len(), 8 * 4 + 7);
        assert_eq!(fp, did.fingerprint());
    }
}
