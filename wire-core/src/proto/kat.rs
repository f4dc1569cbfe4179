//! Known-answer tests of the primitives through our own wrappers, against the RFC vectors
//! committed in `tests/vectors/rfc.json`. Crate-internal because the X25519 agreement is.

use super::did::Did;
use super::identity::Identity;

fn hex32(text: &str) -> [u8; 32] {
    hex::decode(text).expect("hex").try_into().expect("32 bytes")
}

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../../tests/vectors/rfc.json")).expect("valid JSON")
}

#[test]
fn rfc8032_ed25519_through_identity_and_did() {
    let v = vectors();
    for case in v["rfc8032_ed25519"].as_array().expect("array") {
        let name = case["name"].as_str().expect("name");
        let seed = hex32(case["secret_key"].as_str().expect("sk"));
        let public = hex32(case["public_key"].as_str().expect("pk"));
        let id = Identity::from_secret_bytes(&seed, [0; 32]);
        assert_eq!(id.verifying_key().to_bytes(), public, "{name}: public key derivation");
        // The DID round-trips the key, and the RFC signature verifies under the DID's key
        // with the same strict verification `Signed::verify` uses.
        let did = Did::parse(id.did().as_str()).expect("our DID parses");
        let message = hex::decode(case["message"].as_str().expect("msg")).expect("hex");
        let sig: [u8; 64] =
            hex::decode(case["signature"].as_str().expect("sig")).expect("hex").try_into().expect("64 bytes");
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        assert!(did.verifying_key().verify_strict(&message, &sig).is_ok(), "{name}: signature verifies");
        // Ed25519 is deterministic: our signer yields the RFC signature for the raw input.
        let raw = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(ed25519_dalek::Signer::sign(&raw, &message), sig, "{name}: deterministic signature");
    }
}

#[test]
fn rfc7748_x25519_through_identity() {
    let v = &vectors()["rfc7748_x25519"];
    let get = |k: &str| hex32(v[k].as_str().expect("field"));
    let alice = Identity::from_secret_bytes(&[1; 32], get("alice_private"));
    let bob = Identity::from_secret_bytes(&[2; 32], get("bob_private"));
    assert_eq!(alice.x25519_public().to_bytes(), get("alice_public"));
    assert_eq!(bob.x25519_public().to_bytes(), get("bob_public"));
    assert_eq!(alice.diffie_hellman(&bob.x25519_public()).to_bytes(), get("shared"));
    assert_eq!(bob.diffie_hellman(&alice.x25519_public()).to_bytes(), get("shared"));
}
