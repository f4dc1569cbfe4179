//! The code flow's key schedule: SPAKE2 from the code, the keys derived from its output and
//! the transcript, the commitment and the SAS, and the sealed channel between the sides
//! (docs/PROTOCOL.md 9.3).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as PakeIdentity, Password, Spake2};
use zeroize::Zeroizing;

use super::{Code, Inner, Role, Wire, encode};
use crate::proto::b64;
use crate::proto::card::Card;
use crate::proto::labels;
use crate::proto::rng::SeededRng;
use crate::proto::secret::Secret32;

/// Keys derived from the PAKE key, each bound to the transcript.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Keys {
    pub(super) confirm_mine: Secret32,
    pub(super) confirm_theirs: Secret32,
    pub(super) send: Secret32,
    pub(super) recv: Secret32,
    pub(super) sas: Secret32,
    pub(super) send_seq: u64,
    pub(super) recv_seq: u64,
    /// SHA-256 of the PAKE identity and both PAKE messages (commitments bind it).
    #[serde(default, with = "b64::fixed")]
    pub(super) transcript: [u8; 32],
}

pub(super) fn spake(code: &Code, seed: &Secret32) -> (Spake2<Ed25519Group>, Vec<u8>) {
    Spake2::<Ed25519Group>::start_symmetric_with_rng(
        &Password::new(code.expose().as_bytes()),
        &PakeIdentity::new(labels::PAKE_IDENTITY),
        SeededRng::new(seed, b"spake2"),
    )
}

pub(super) fn derive_keys(key: &[u8], host_msg: &[u8], guest_msg: &[u8], role: Role) -> Keys {
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
        transcript: transcript.into(),
    }
}

pub(super) fn confirm_mac(key: &Secret32) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(labels::PAKE_CONFIRM);
    mac
}

/// A side's SAS nonce: 32 bytes from its persisted seed.
pub(super) fn sas_nonce(seed: &Secret32) -> [u8; 32] {
    let mut n = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut SeededRng::new(seed, labels::SAS_NONCE), &mut n);
    n
}

/// C = SHA-256("wire/v2/sas-commit" || role || transcript || SHA-256(card payload) || n).
pub(super) fn commitment(role: Role, transcript: &[u8; 32], card: &Card, n: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(labels::SAS_COMMIT)
        .chain_update(role.name())
        .chain_update(transcript)
        .chain_update(Sha256::digest(&card.signed().payload))
        .chain_update(n)
        .finalize()
        .into()
}

/// SAS = HKDF-Expand(sas_key, "wire/v2/sas" || host DID || 0 || guest DID || 0 ||
/// SHA-256(host card payload) || SHA-256(guest card payload) || n_host || n_guest, 8) as
/// u64 BE mod 10^digits.
pub(super) fn sas_digits(
    sas_key: &Secret32,
    host: (&Card, &[u8; 32]),
    guest: (&Card, &[u8; 32]),
    digits: u32,
) -> String {
    let hk = Hkdf::<Sha256>::from_prk(sas_key.expose()).expect("32-byte PRK");
    let host_hash = Sha256::digest(&host.0.signed().payload);
    let guest_hash = Sha256::digest(&guest.0.signed().payload);
    let mut out = [0u8; 8];
    hk.expand_multi_info(
        &[
            labels::SAS_V2,
            host.0.did().as_str().as_bytes(),
            &[0],
            guest.0.did().as_str().as_bytes(),
            &[0],
            &host_hash,
            &guest_hash,
            host.1,
            guest.1,
        ],
        &mut out,
    )
    .expect("8 bytes is a valid HKDF-SHA256 length");
    format!("{:0width$}", u64::from_be_bytes(out) % 10u64.pow(digits), width = digits as usize)
}

pub(super) fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

pub(super) fn seal(keys: &mut Keys, inner: &Inner) -> Vec<u8> {
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
pub(super) fn open(keys: &mut Keys, seq: u64, ct: &[u8]) -> Option<Inner> {
    if seq != keys.recv_seq {
        return None;
    }
    let aead = ChaCha20Poly1305::new_from_slice(keys.recv.expose()).expect("32-byte key");
    let plain = Zeroizing::new(aead.decrypt(&nonce(seq).into(), Payload { msg: ct, aad: labels::PAKE_CHANNEL }).ok()?);
    keys.recv_seq += 1;
    serde_json::from_slice(&plain).ok()
}
