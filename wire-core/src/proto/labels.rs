//! Every domain-separation label used for signing and key derivation, in one place.
//!
//! Labels are versioned: a change to any construction gets a new label, never a reuse.

/// Prefix of the bytes an agent card signature covers.
pub const SIGN_CARD: &[u8] = b"wire/v1/card";
/// Prefix of the bytes an event signature covers.
pub const SIGN_EVENT: &[u8] = b"wire/v1/event";
/// Prefix of the bytes an invite signature covers.
pub const SIGN_INVITE: &[u8] = b"wire/v1/invite";
/// HKDF salt and info prefix of the envelope key schedule.
pub const ENVELOPE: &[u8] = b"wire/v1/envelope";
/// HMAC label of the invite possession proof carried in a `pair_request`.
pub const INVITE_PROOF: &[u8] = b"wire/v1/invite-proof";
/// The SPAKE2 symmetric identity string.
pub const PAKE_IDENTITY: &[u8] = b"wire/v1/pake";
/// HKDF info of the key-confirmation MAC keys (followed by the role name).
pub const PAKE_CONFIRM: &[u8] = b"wire/v1/pake/confirm";
/// HKDF info of the PAKE channel AEAD keys (followed by the direction).
pub const PAKE_CHANNEL: &[u8] = b"wire/v1/pake/channel";
/// HKDF info of the short authentication string.
pub const SAS: &[u8] = b"wire/v1/sas";
/// The SAS of code-flow version 2: also over both sides' committed nonces.
pub const SAS_V2: &[u8] = b"wire/v2/sas";
/// The hash label of a side's SAS commitment (code-flow version 2).
pub const SAS_COMMIT: &[u8] = b"wire/v2/sas-commit";
/// The seed label of a side's SAS nonce (code-flow version 2).
pub const SAS_NONCE: &[u8] = b"wire/v2/sas-nonce";
/// HMAC label of the deterministic RNG that re-creates a PAKE state from its seed.
pub const SEEDED_RNG: &[u8] = b"wire/v1/seeded-rng";
/// Hash prefix of the character (nickname, emoji, palette) derivation.
pub const CHARACTER: &[u8] = b"wire/v1/character";
/// Hash prefix of the human-comparable key fingerprint.
pub const FINGERPRINT: &[u8] = b"wire/v1/fingerprint";
/// Hash prefix of the intro-lane sender tag (stable per sender and recipient slot).
pub const INTRO_TAG: &[u8] = b"wire/v1/intro-tag";
/// The machine tag a card carries (`machine:<hex>` capability): hashes the OS machine id.
pub const MACHINE_TAG: &[u8] = b"wire/v1/machine-tag";
/// Prefix of the bytes a lineage statement's signature covers (by the current key).
pub const SIGN_LINEAGE: &[u8] = b"wire/v1/lineage";
/// Prefix of the bytes a rotation's second signature covers (by the new key).
pub const SIGN_LINEAGE_NEW: &[u8] = b"wire/v1/lineage-new";
/// Hash prefix of the commitment to a lineage's next signing key.
pub const NEXT_KEY: &[u8] = b"wire/v1/next-key";
/// Prefix of the bytes a prekey bundle signature covers.
pub const SIGN_PREKEYS: &[u8] = b"wire/v1/prekeys";
