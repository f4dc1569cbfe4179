//! Criterion benchmarks of the hot protocol paths: sealing and opening envelopes (1 KiB
//! and 64 KiB bodies) and verifying an agent card. Figures live in docs/BENCHMARKS.md.
//!
//! Run: `cargo bench -p wire-core --bench proto`
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_core::OsRng;
use std::hint::black_box;
use wire_core::proto::api::SlotId;
use wire_core::proto::card::{Card, Endpoint};
use wire_core::proto::envelope;
use wire_core::proto::event::{Acceptance, Event, Kind};
use wire_core::proto::identity::Identity;
use wire_core::proto::time::UnixMillis;

const NOW: UnixMillis = UnixMillis(1_790_000_000_000);

fn seal_open(c: &mut Criterion) {
    let alice = Identity::generate(&mut OsRng);
    let bob = Identity::generate(&mut OsRng);
    let mut group = c.benchmark_group("envelope");
    for size in [1024usize, 64 * 1024] {
        // Leave room for the event's own fields so the envelope stays in the named bucket.
        let body = "x".repeat(size - 600);
        let event =
            Event::new(&alice, bob.did().clone(), Kind::Message, body.into(), NOW, &mut OsRng).sign(&alice).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &event, |b, ev| {
            b.iter(|| envelope::seal(black_box(ev), &bob.x25519_public(), &mut OsRng).unwrap())
        });
        let sealed = envelope::seal(&event, &bob.x25519_public(), &mut OsRng).unwrap();
        group.bench_with_input(BenchmarkId::new("open_verify", size), &sealed, |b, s| {
            b.iter(|| {
                let opened = envelope::open(&bob, black_box(&s.0)).unwrap();
                opened.verify(&alice.verifying_key(), &Acceptance::new(bob.did(), NOW)).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("seal_open_verify", size), &event, |b, ev| {
            b.iter(|| {
                let s = envelope::seal(black_box(ev), &bob.x25519_public(), &mut OsRng).unwrap();
                let opened = envelope::open(&bob, &s.0).unwrap();
                opened.verify(&alice.verifying_key(), &Acceptance::new(bob.did(), NOW)).unwrap()
            })
        });
        // Baseline in the same run: the bare primitives (two X25519 agreements, AEAD
        // encrypt and decrypt of the same padded size), with no framing, JSON or signature.
        let bucket = envelope::bucket_for(64 + event.signed().payload.len()).unwrap();
        let padded = vec![0u8; bucket];
        group.bench_with_input(BenchmarkId::new("primitives_baseline", size), &padded, |b, p| {
            use chacha20poly1305::aead::Aead;
            use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
            let bob_x = x25519_dalek::StaticSecret::random_from_rng(OsRng);
            let bob_pub = x25519_dalek::PublicKey::from(&bob_x);
            b.iter(|| {
                let esk = x25519_dalek::EphemeralSecret::random_from_rng(OsRng);
                let epk = x25519_dalek::PublicKey::from(&esk);
                let k1 = esk.diffie_hellman(&bob_pub);
                let aead = ChaCha20Poly1305::new_from_slice(k1.as_bytes()).unwrap();
                let ct = aead.encrypt(&[0u8; 12].into(), black_box(p.as_slice())).unwrap();
                let k2 = bob_x.diffie_hellman(&epk);
                let aead = ChaCha20Poly1305::new_from_slice(k2.as_bytes()).unwrap();
                aead.decrypt(&[0u8; 12].into(), ct.as_slice()).unwrap()
            })
        });
    }
    group.finish();
}

fn card_verify(c: &mut Criterion) {
    let alice = Identity::generate(&mut OsRng);
    let endpoint =
        Endpoint { relay: "https://relay.example".into(), slot: SlotId::new("aaaaaaaaaaaaaaaaaaaaaa").unwrap() };
    let card = Card::issue(&alice, vec![endpoint], vec!["message".into()], NOW);
    let json = card.to_json();
    c.bench_function("card/verify", |b| b.iter(|| Card::from_json(black_box(&json)).unwrap()));
    // Baseline in the same run: one bare Ed25519 strict verification of the same bytes.
    let signed = card.signed().clone();
    c.bench_function("card/ed25519_verify_baseline", |b| {
        b.iter(|| signed.verify(wire_core::proto::labels::SIGN_CARD, black_box(&alice.verifying_key())).unwrap())
    });
}

criterion_group!(benches, seal_open, card_verify);
criterion_main!(benches);
