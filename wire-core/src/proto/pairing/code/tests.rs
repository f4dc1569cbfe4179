//! The code flow's tests that need its internals: code parsing, and the attacker who knows
//! the code (docs/PROTOCOL.md 9.3).

use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::*;
use crate::proto::identity::Identity;
use crate::proto::labels;
use crate::proto::rng::SeededRng;

impl CodePairing {
    /// A shorter SAS, so a test can play an attacker in a bounded number of tries.
    fn with_sas_len(mut self, digits: u32) -> Self {
        self.sas_len = digits;
        self
    }
}

/// Version 1's SAS: over both cards only, so whoever controls one card chooses it after
/// seeing the other.
fn sas_v1(sas_key: &Secret32, host: &Card, guest: &Card, digits: u32) -> String {
    let hk = Hkdf::<Sha256>::from_prk(sas_key.expose()).unwrap();
    let (h, g) = (Sha256::digest(&host.signed().payload), Sha256::digest(&guest.signed().payload));
    let mut out = [0u8; 8];
    let info: [&[u8]; 7] =
        [labels::SAS, host.did().as_str().as_bytes(), &[0], guest.did().as_str().as_bytes(), &[0], &h, &g];
    hk.expand_multi_info(&info, &mut out).unwrap();
    format!("{:0w$}", u64::from_be_bytes(out) % 10u64.pow(digits), w = digits as usize)
}

fn card(seed: u8, at: u64) -> (Identity, Card) {
    let id = Identity::from_secret_bytes(&[seed; 32], [seed ^ 0x55; 32]);
    let card = Card::issue(&id, vec![], vec!["message".into()], UnixMillis(at));
    (id, card)
}

fn side(role: Role, seed: u8, card: &Card) -> (CodePairing, Vec<Vec<u8>>) {
    let code = Code::parse("7-brave-otter").unwrap();
    let token = Token::new("send.test-token-00").unwrap();
    let now = UnixMillis(1_000);
    let (p, out) = CodePairing::start(
        role,
        code,
        card.clone(),
        Default::default(),
        token,
        Secret32::from_bytes([seed; 32]),
        now,
        DEFAULT_TIMEOUT,
    );
    (p.with_sas_len(3), out.send)
}

/// Delivers messages both ways until neither side has anything to say.
fn pump(a: &mut CodePairing, b: &mut CodePairing, mut to_a: Vec<Vec<u8>>, mut to_b: Vec<Vec<u8>>) {
    let now = UnixMillis(2_000);
    while !to_a.is_empty() || !to_b.is_empty() {
        for m in std::mem::take(&mut to_a) {
            to_b.extend(a.receive(&m, now).send);
        }
        for m in std::mem::take(&mut to_b) {
            to_a.extend(b.receive(&m, now).send);
        }
    }
}

fn sas_of(p: &CodePairing) -> String {
    p.sas().expect("digits ready").to_owned()
}

/// A relay (or anyone) that knows the spoken code runs one PAKE with each side and tries
/// to make both screens show the same digits. With a 3-digit SAS, version 1 falls to a
/// few thousand tries of its own card; version 2's commitments leave it one try.
#[test]
fn an_attacker_who_knows_the_code_grinds_version_1_and_gets_one_try_at_version_2() {
    let (_, host_card) = card(1, 10);
    let (_, guest_card) = card(2, 10);
    let (mitm, mitm_card) = card(9, 10);

    // Version 1, at the derivation: the attacker holds both PAKE keys and both honest
    // cards, fixes its card towards the guest, then grinds its card towards the host.
    let (k_host, k_guest) = (Secret32::from_bytes([11; 32]), Secret32::from_bytes([12; 32]));
    let target = sas_v1(&k_guest, &mitm_card, &guest_card, 3);
    let tries = (1..=50_000u64)
        .find(|t| sas_v1(&k_host, &host_card, &Card::issue(&mitm, vec![], vec![], UnixMillis(*t)), 3) == target);
    assert!(tries.is_some(), "the version 1 grind succeeds within the bound: the attack is real");

    // Version 2, through the real state machines. Channel 1: host <-> attacker (guest).
    let (mut host, host_out) = side(Role::Host, 1, &host_card);
    let (mut m_guest, mg_out) = side(Role::Guest, 21, &mitm_card);
    pump(&mut host, &mut m_guest, mg_out, host_out);
    let host_sas = sas_of(&host);
    // Channel 2: attacker (host) <-> guest. The attacker withholds its own opening until
    // it has the guest's, then looks for a card that would match the host's digits.
    let (mut m_host, mh_out) = side(Role::Host, 22, &mitm_card);
    let (mut guest, guest_out) = side(Role::Guest, 2, &guest_card);
    let now = UnixMillis(2_000);
    let to_guest = m_host.receive(&guest_out[0], now).send; // [confirm, commitment]
    let mut from_guest = guest.receive(&mh_out[0], now).send; // [confirm, commitment]
    for m in &to_guest {
        from_guest.extend(guest.receive(m, now).send); // it holds the commitment: its opening
    }
    assert_eq!(from_guest.len(), 3, "confirm, commitment, opening");
    let mut withheld = Vec::new();
    for m in &from_guest {
        withheld.extend(m_host.receive(m, now).send); // the attacker's own opening: kept back
    }
    // The guest revealed (it held the attacker's commitment); the attacker now knows
    // every input of the guest's SAS except what it committed to.
    let State::AwaitingOperator { keys, .. } = &m_host.state else { panic!("the attacker has the guest's opening") };
    let guest_n = match &guest.state {
        State::AwaitingPeerHello { .. } => sas_nonce(&Secret32::from_bytes([2; 32])),
        other => panic!("the guest waits for the attacker's opening, not {other:?}"),
    };
    let n = sas_nonce(&Secret32::from_bytes([22; 32]));
    let forged = (1..=50_000u64)
        .map(|t| Card::issue(&mitm, vec![], vec!["message".into()], UnixMillis(t)))
        .find(|c| sas_digits(&keys.sas, (c, &n), (&guest_card, &guest_n), 3) == host_sas);
    let forged = forged.expect("offline, a matching card is easy to find");
    // ... but the guest takes only the opening the attacker committed to.
    let mut k = keys.clone();
    k.send_seq = 1;
    let fake = seal(
        &mut k,
        &Inner::Hello {
            card: forged.signed().clone(),
            send_token: m_host.my_token.clone(),
            n,
            prekeys: None,
            tokens: vec![],
        },
    );
    let mut honest_guest = guest.clone();
    guest.receive(&fake, now);
    assert_eq!(guest.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });
    assert!(guest.paired().is_none());
    // Its one try, the committed opening, shows other digits than the host's screen.
    assert_eq!(withheld.len(), 1);
    honest_guest.receive(&withheld[0], now);
    assert_ne!(sas_of(&honest_guest), host_sas, "one try in 10^3 here (10^6 with six digits), and it missed");
}

#[test]
fn codes_parse_forgivingly_and_name_typos() {
    let code = Code::parse("  17 Brave_Otter ").expect("valid");
    assert_eq!(code.expose(), "17-brave-otter");
    assert_eq!(code.nameplate(), "17");
    assert_eq!(Code::parse("17-brave"), Err(CodeError::Malformed));
    assert_eq!(Code::parse("x7-brave-otter"), Err(CodeError::BadNameplate));
    assert_eq!(Code::parse("17-brvae-otter"), Err(CodeError::UnknownWord("brvae".into())));
    assert_eq!(format!("{code:?}"), "Code(17-..)", "the secret words never print");
}

#[test]
fn generated_codes_parse() {
    let mut rng = SeededRng::new(&Secret32::from_bytes([5; 32]), b"test");
    for _ in 0..100 {
        let code = Code::generate("42", &mut rng).expect("valid nameplate");
        assert_eq!(Code::parse(code.expose()), Ok(code));
    }
}
