//! Types for secret material: they zeroize on drop and never print their contents.

use core::fmt;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 secret bytes: an invite secret, a PAKE seed, a derived key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret32([u8; 32]);

impl Secret32 {
    /// Wraps existing key material.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Draws 32 fresh bytes from `rng`.
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret bytes. Named so every use is visible in review.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Equality in constant time (for secrets a peer presents).
    pub fn ct_eq(&self, other: &Secret32) -> bool {
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(..)")
    }
}

impl Serialize for Secret32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::b64::fixed::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Secret32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::b64::fixed::deserialize(d).map(Self)
    }
}

/// A relay capability token (owner, send or intro): a bearer secret.
///
/// Tokens are opaque to clients. The accepted alphabet is base64url plus `.`, 16 to 256
/// characters, so a token can never smuggle whitespace or control characters into a header.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Token(String);

/// A string that is not a well-formed token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed token: expected 16 to 256 characters of [A-Za-z0-9_.-]")]
pub struct MalformedToken;

impl Token {
    /// Validates and wraps a token string.
    pub fn new(text: impl Into<String>) -> Result<Self, MalformedToken> {
        let text = text.into();
        let ok = (16..=256).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok { Ok(Self(text)) } else { Err(MalformedToken) }
    }

    /// Draws a fresh token with `prefix` (e.g. `"send"`) and 32 random bytes.
    pub fn random(prefix: &str, rng: &mut impl CryptoRngCore) -> Self {
        let secret = Secret32::random(rng);
        Self(format!("{prefix}.{}", super::b64::encode(secret.expose())))
    }

    /// The token text, for an `Authorization` header. Named so every use is visible.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret32::from_bytes([7; 32]);
        assert_eq!(format!("{s:?}"), "Secret32(..)");
        let t = Token::new("send.abcdefghijklmnop").expect("valid");
        assert_eq!(format!("{t:?}"), "Token(..)");
    }

    #[test]
    fn token_alphabet_is_enforced() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has space in the middle").is_err());
        assert!(Token::new("line\nbreak.abcdefghijk").is_err());
        assert!(Token::new("a".repeat(257)).is_err());
        assert!(Token::new("send.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_ok());
    }
}
