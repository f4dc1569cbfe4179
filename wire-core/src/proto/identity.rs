//! An agent's identity: an Ed25519 signing key (who it is) and an X25519 key (how to seal
//! to it), plus the secret file format that stores both.

use core::fmt;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::b64;
use super::did::Did;

/// The secret file's `format` field.
pub const SECRET_FILE_FORMAT: &str = "wire-identity";
/// The secret file's version before any rotation.
pub const SECRET_FILE_VERSION: u32 = 1;
/// The secret file's version once the identity rotated (its current key is not its DID's).
pub const SECRET_FILE_LINEAGE_VERSION: u32 = 2;

/// An agent's key pair set. Both secrets zeroize on drop; `Debug` prints only the DID.
pub struct Identity {
    signing: SigningKey,
    encryption: StaticSecret,
    did: Did,
}

/// Why a secret file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// Not JSON, or missing fields.
    #[error("identity file is not a wire identity file: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A `format` other than [`SECRET_FILE_FORMAT`].
    #[error("identity file has format `{0}`, expected `wire-identity`")]
    WrongFormat(String),
    /// A version this build does not read.
    #[error("identity file version {0} is not supported by this build (expected {SECRET_FILE_VERSION}); upgrade wire")]
    UnsupportedVersion(u32),
    /// A key field that is not 32 bytes of base64url.
    #[error("identity file field `{0}` is not 32 bytes of base64url")]
    BadKey(&'static str),
}

/// On-disk shape of the secret file (docs/PROTOCOL.md, "Identity file"). `v` is 2 once
/// the identity rotated: a build that predates lineages would take the current key for the
/// DID, so it must refuse the file.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SecretFile {
    format: String,
    v: u32,
    ed25519_seed: String,
    x25519_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[zeroize(skip)]
    lineage: Option<LineageFile>,
}

/// The lineage part of the secret file: the next keys (secret until the rotation that
/// reveals them), the statements so far, and earlier key pairs kept for their grace period.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct LineageFile {
    #[zeroize(skip)]
    did: Did,
    #[zeroize(skip)]
    seq: u64,
    #[serde(with = "b64::fixed")]
    #[zeroize(skip)]
    last: [u8; 32],
    next_ed25519_seed: String,
    next_x25519_secret: String,
    #[zeroize(skip)]
    statements: Vec<super::lineage::SignedStatement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    past: Vec<PastFile>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PastFile {
    ed25519_seed: String,
    x25519_secret: String,
    #[zeroize(skip)]
    until: super::time::UnixMillis,
}

/// An identity's lineage as its home holds it (docs/PROTOCOL.md, "Identity lineage").
pub struct Held {
    /// The keys in use and the committed next ones.
    pub keys: super::lineage::Keys,
    /// Every statement so far, inception first (cards carry them).
    pub statements: Vec<super::lineage::SignedStatement>,
    /// Earlier key pairs and when they stopped being current: envelopes sealed to them are
    /// still opened for a grace period.
    pub past: Vec<(Identity, super::time::UnixMillis)>,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held").field("keys", &self.keys).field("past", &self.past.len()).finish_non_exhaustive()
    }
}

fn seed_of(id: &Identity) -> String {
    b64::encode(id.signing.to_bytes())
}

fn x_of(id: &Identity) -> String {
    b64::encode(id.encryption.to_bytes())
}

fn pair(seed: &str, x: &str) -> Result<Identity, SecretFileError> {
    let seed = Zeroizing::new(b64::decode_array::<32>(seed).ok_or(SecretFileError::BadKey("ed25519_seed"))?);
    let x = b64::decode_array::<32>(x).ok_or(SecretFileError::BadKey("x25519_secret"))?;
    Ok(Identity::from_secret_bytes(&seed, x))
}

impl Held {
    /// The whole secret file: the current keys as version 1 fields, the lineage beside them.
    pub fn to_secret_file(&self) -> Zeroizing<Vec<u8>> {
        let current = &self.keys.current;
        let file = SecretFile {
            format: SECRET_FILE_FORMAT.to_owned(),
            v: if self.keys.seq > 0 { SECRET_FILE_LINEAGE_VERSION } else { SECRET_FILE_VERSION },
            ed25519_seed: b64::encode(current.signing.to_bytes()),
            x25519_secret: b64::encode(current.encryption.to_bytes()),
            lineage: Some(LineageFile {
                did: current.did().clone(),
                seq: self.keys.seq,
                last: self.keys.last,
                next_ed25519_seed: seed_of(&self.keys.next),
                next_x25519_secret: x_of(&self.keys.next),
                statements: self.statements.clone(),
                past: self
                    .past
                    .iter()
                    .map(|(id, until)| PastFile { ed25519_seed: seed_of(id), x25519_secret: x_of(id), until: *until })
                    .collect(),
            }),
        };
        let mut out = serde_json::to_vec_pretty(&file).expect("plain struct serializes");
        out.push(b'\n');
        Zeroizing::new(out)
    }

    /// The lineage in a secret file, if it has one (a file from before lineages has none).
    pub fn from_secret_file(bytes: &[u8]) -> Result<Option<Self>, SecretFileError> {
        let current = Identity::from_secret_file(bytes)?;
        let mut file: SecretFile = serde_json::from_slice(bytes).map_err(SecretFileError::Malformed)?;
        let Some(l) = file.lineage.take() else { return Ok(None) };
        let next = pair(&l.next_ed25519_seed, &l.next_x25519_secret)?;
        let past = l
            .past
            .iter()
            .map(|p| pair(&p.ed25519_seed, &p.x25519_secret).map(|id| (id.in_lineage(l.did.clone()), p.until)))
            .collect::<Result<_, _>>()?;
        let keys = super::lineage::Keys { current, next, seq: l.seq, last: l.last };
        Ok(Some(Held { keys, statements: l.statements.clone(), past }))
    }
}

impl Identity {
    /// Generates a fresh identity.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let signing = SigningKey::generate(rng);
        let encryption = StaticSecret::random_from_rng(rng);
        Self::from_keys(signing, encryption)
    }

    /// Builds an identity from raw secret bytes (known-answer tests, imports).
    pub fn from_secret_bytes(ed25519_seed: &[u8; 32], x25519_secret: [u8; 32]) -> Self {
        Self::from_keys(SigningKey::from_bytes(ed25519_seed), StaticSecret::from(x25519_secret))
    }

    fn from_keys(signing: SigningKey, encryption: StaticSecret) -> Self {
        let did = Did::from_verifying_key(&signing.verifying_key());
        Self { signing, encryption, did }
    }

    /// Serializes both secrets into the identity file format (JSON). The buffer zeroizes.
    pub fn to_secret_file(&self) -> Zeroizing<Vec<u8>> {
        let file = SecretFile {
            format: SECRET_FILE_FORMAT.to_owned(),
            v: SECRET_FILE_VERSION,
            ed25519_seed: b64::encode(self.signing.to_bytes()),
            x25519_secret: b64::encode(self.encryption.to_bytes()),
            lineage: None,
        };
        let mut out = serde_json::to_vec_pretty(&file).expect("plain struct serializes");
        out.push(b'\n');
        Zeroizing::new(out)
    }

    /// Parses an identity file.
    pub fn from_secret_file(bytes: &[u8]) -> Result<Self, SecretFileError> {
        let file: SecretFile = serde_json::from_slice(bytes).map_err(SecretFileError::Malformed)?;
        if file.format != SECRET_FILE_FORMAT {
            return Err(SecretFileError::WrongFormat(file.format.clone()));
        }
        if file.v != SECRET_FILE_VERSION && file.v != SECRET_FILE_LINEAGE_VERSION {
            return Err(SecretFileError::UnsupportedVersion(file.v));
        }
        let seed =
            Zeroizing::new(b64::decode_array::<32>(&file.ed25519_seed).ok_or(SecretFileError::BadKey("ed25519_seed"))?);
        let x = b64::decode_array::<32>(&file.x25519_secret).ok_or(SecretFileError::BadKey("x25519_secret"))?;
        let current = Self::from_secret_bytes(&seed, x);
        // After a rotation the current keys act for the inception DID.
        Ok(match file.lineage.as_ref() {
            Some(l) => current.in_lineage(l.did.clone()),
            None => current,
        })
    }

    /// These keys as the current keys of `lineage` (an identity after a rotation): the DID
    /// stays the inception DID while the keys are new (docs/PROTOCOL.md, "Identity
    /// lineage").
    pub fn in_lineage(self, lineage: Did) -> Self {
        Self { signing: self.signing.clone(), encryption: self.encryption.clone(), did: lineage }
    }

    /// This identity's DID.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The X25519 public key others seal envelopes to.
    pub fn x25519_public(&self) -> X25519Public {
        X25519Public::from(&self.encryption)
    }

    /// Signs `label || 0x00 || message`.
    pub(crate) fn sign(&self, label: &[u8], message: &[u8]) -> [u8; 64] {
        self.signing.sign(&super::signed::signing_input(label, message)).to_bytes()
    }

    /// X25519 with our static secret.
    /// Signs an MLS signature input (rooms sign with the identity key). MLS signs
    /// `SignContent`, which starts with its label's length (under 64, one byte); every wire
    /// signature input starts with `wire/`. Anything else is refused (`None`), so this can
    /// never sign what a wire verifier would take.
    #[cfg(feature = "rooms")]
    pub(crate) fn sign_mls(&self, sign_content: &[u8]) -> Option<[u8; 64]> {
        let first = *sign_content.first()?;
        (first < 0x40 && sign_content.get(1..first as usize + 1)?.starts_with(b"MLS 1.0 "))
            .then(|| self.signing.sign(sign_content).to_bytes())
    }

    pub(crate) fn diffie_hellman(&self, their_public: &X25519Public) -> x25519_dalek::SharedSecret {
        self.encryption.diffie_hellman(their_public)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("did", &self.did).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_round_trip() {
        let id = Identity::from_secret_bytes(&[1; 32], [2; 32]);
        let file = id.to_secret_file();
        let back = Identity::from_secret_file(&file).expect("round trip");
        assert_eq!(back.did(), id.did());
        assert_eq!(back.x25519_public().as_bytes(), id.x25519_public().as_bytes());
    }

    #[test]
    fn debug_prints_no_secret() {
        let id = Identity::from_secret_bytes(&[1; 32], [2; 32]);
        let text = format!("{id:?}");
        assert!(text.contains("did:key:"));
        assert!(!text.contains(&b64::encode([1u8; 32])));
    }

    #[test]
    fn bad_secret_files_are_refused() {
        assert!(matches!(Identity::from_secret_file(b"{"), Err(SecretFileError::Malformed(_))));
        let wrong = br#"{"format":"pem","v":1,"ed25519_seed":"","x25519_secret":""}"#;
        assert!(matches!(Identity::from_secret_file(wrong), Err(SecretFileError::WrongFormat(_))));
        let future = br#"{"format":"wire-identity","v":9,"ed25519_seed":"","x25519_secret":""}"#;
        assert!(matches!(Identity::from_secret_file(future), Err(SecretFileError::UnsupportedVersion(9))));
        let short = br#"{"format":"wire-identity","v":1,"ed25519_seed":"AAAA","x25519_secret":""}"#;
        assert!(matches!(Identity::from_secret_file(short), Err(SecretFileError::BadKey("ed25519_seed"))));
    }
}
