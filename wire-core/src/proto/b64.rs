//! base64url without padding (RFC 4648 §5): the one text encoding of binary fields in
//! JSON documents and URLs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url. Padding, other alphabets and trailing bits are rejected.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

/// Decodes unpadded base64url into exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text).ok()?.try_into().ok()
}

/// `#[serde(with = "b64::bytes")]` for `Vec<u8>` fields.
pub mod bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes as a base64url string.
    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(value))
    }

    /// Deserializes from a base64url string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        super::decode(&text).map_err(|_| D::Error::custom("invalid base64url"))
    }
}

/// `#[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_bytes")]` for
/// `Option<Vec<u8>>` fields.
pub mod opt_bytes {
    use serde::{Deserializer, Serializer};

    /// Serializes a present value as a base64url string.
    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => super::bytes::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes a base64url string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        super::bytes::deserialize(d).map(Some)
    }
}

/// `#[serde(default, skip_serializing_if = "Option::is_none", with = "b64::opt_fixed")]` for
/// `Option<[u8; N]>` fields.
pub mod opt_fixed {
    use serde::{Deserializer, Serializer};

    /// Serializes a present value as a base64url string.
    pub fn serialize<S: Serializer, const N: usize>(value: &Option<[u8; N]>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => super::fixed::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes a base64url string of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<Option<[u8; N]>, D::Error> {
        super::fixed::deserialize(d).map(Some)
    }
}

/// `#[serde(with = "b64::fixed")]` for `[u8; N]` fields.
pub mod fixed {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes as a base64url string.
    pub fn serialize<S: Serializer, const N: usize>(value: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(value))
    }

    /// Deserializes from a base64url string of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        super::decode_array(&text).ok_or_else(|| D::Error::custom(format!("expected {N} bytes of base64url")))
    }
}
