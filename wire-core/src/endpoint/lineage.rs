//! Identity lineages at run time (docs/PROTOCOL.md, "Identity lineage"): our own keys and
//! their committed successor in `identity.json`, `wire rotate`, the revocation kept offline
//! (`wire revoke --export`, `--publish`), and the statements peers send us.
//!
//! Our statements travel in our card: a peer whose card lists the `lineage` feature gets a
//! `card_update` carrying them once per statement (`Peer::told`); a peer that does not
//! cannot follow a rotation and must pair again.

use std::path::Path;
use std::time::Duration;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use super::route::{deliver, seal_for};
use super::{Endpoint, EndpointError, Face, Result};
use crate::home::{Account, Home, HomeError, Peer, Peers};
use crate::proto::card::Card;
use crate::proto::did::Did;
use crate::proto::envelope;
use crate::proto::event::{ControlBody, Event, Kind};
use crate::proto::identity::{Held, Identity};
use crate::proto::lineage::{Change, Keys, Pin, SignedStatement, Standing};
use crate::proto::secret::Token;
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// The feature flag of a card whose agent follows lineages.
pub const FEATURE: &str = "lineage";
/// The control message type that carries a revocation.
pub const REVOCATION: &str = "revocation";
/// How long envelopes sealed to a predecessor's encryption key are still opened after a
/// rotation: how long an event stays acceptable (30 days) plus the relay's retention (14).
pub const GRACE: Duration = Duration::from_secs(44 * 86_400);

/// Our lineage as the home holds it. [`Endpoint::open`] made sure it has one.
pub(crate) fn held(home: &Home) -> Result<Held> {
    read(home)?.ok_or(EndpointError::Internal("a home without its lineage (opened without Endpoint::open)"))
}

fn read(home: &Home) -> Result<Option<Held>> {
    let path = home.root().join("identity.json");
    let bytes =
        zeroize::Zeroizing::new(std::fs::read(&path).map_err(|e| HomeError::Io { path: path.clone(), source: e })?);
    Held::from_secret_file(&bytes).map_err(|e| HomeError::Corrupt { path, detail: e.to_string() }.into())
}

/// Our lineage; a home from before lineages gets its inception now (a fresh next key,
/// committed to), under the home's lock so two processes never make two.
pub(crate) fn migrate(home: &Home) -> Result<Held> {
    if let Some(held) = read(home)? {
        return Ok(held);
    }
    let _lock = home.lock()?;
    if let Some(held) = read(home)? {
        return Ok(held);
    }
    let current = home.identity()?;
    let (keys, inception) = Keys::incept(current, Identity::generate(&mut OsRng), home.now());
    let held = Held { keys, statements: vec![inception], past: Vec::new() };
    save(home, &held)?;
    Ok(held)
}

fn save(home: &Home, held: &Held) -> Result<()> {
    let path = home.root().join("identity.json");
    crate::files::write_atomic(&path, &held.to_secret_file(), Some(0o600))
        .map_err(|e| HomeError::Io { path, source: e }.into())
}

/// When `identity.json` was last written (none if it cannot be read).
pub(crate) fn keys_written(home: &Home) -> Option<std::time::SystemTime> {
    std::fs::metadata(home.root().join("identity.json")).and_then(|m| m.modified()).ok()
}

impl Endpoint {
    /// Whether our keys changed on disk since this endpoint was opened (a rotation by
    /// another process): open it again before using the keys.
    pub fn keys_changed(&self) -> bool {
        keys_written(&self.home) != self.keys_written
    }
}

/// What `wire rotate` did.
#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    /// Us (the face stays: it is the inception DID's).
    pub face: Face,
    /// The new seq.
    pub seq: u64,
    /// The fingerprint of the new current signing key.
    pub key_fingerprint: String,
    /// Peers told (their card lists `lineage`); the update is queued for the offline ones.
    pub told: Vec<Face>,
    /// Peers whose wire cannot follow a rotation: they must pair again.
    pub cannot_follow: Vec<Face>,
}

/// What `wire revoke --export` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The file.
    pub file: String,
    /// The peers it can reach.
    pub peers: usize,
}

/// The file `wire revoke --export` writes: everything needed to tell every peer, with no
/// home: the signed revocation, and per peer a signed event carrying it, the card to seal
/// to and the token to post with.
#[derive(Serialize, Deserialize)]
struct RevocationFile {
    format: String,
    v: u64,
    lineage: Did,
    statement: SignedStatement,
    peers: Vec<RevocationPeer>,
}

#[derive(Serialize, Deserialize)]
struct RevocationPeer {
    card: Card,
    send_token: Token,
    event: Signed,
}

const REVOCATION_FORMAT: &str = "wire-revocation";

/// What `wire revoke --publish` did, per peer.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    /// The revoked identity.
    pub lineage: Face,
    /// Per peer: whether its relay took the revocation, or why not.
    pub peers: Vec<Published>,
}

/// One peer's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// The peer.
    pub peer: Face,
    /// `sent` or `failed`.
    pub verdict: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Endpoint {
    /// Our keys after the migration to lineages, the card carrying our statements (a
    /// rotated identity's card is signed by its current key and must carry them).
    pub(crate) fn lineage_card(&self, account: &Account, held: &Held, now: UnixMillis) -> Card {
        Card::issue_in_lineage(
            &held.keys.current,
            account.card.body().endpoints.clone(),
            account.card.body().capabilities.clone(),
            now.max(account.card.body().created_at.saturating_add(Duration::from_millis(1))),
            held.statements.clone(),
        )
    }

    /// Queues, for each peer that follows lineages and has not heard our latest statement,
    /// a card update carrying our statements. Hold the lock; the caller saves `peers`.
    pub(crate) fn tell_lineage(&self, peers: &mut Peers) -> Result<Vec<Face>> {
        // Every flush asks; the keys file is read only when some peer is due.
        let seq = self.seq;
        if !peers.peers.iter().any(|p| p.card.speaks(FEATURE) && p.told.is_none_or(|t| t < seq)) {
            return Ok(Vec::new());
        }
        let held = held(&self.home)?;
        if held.keys.seq != seq {
            // Rotated by another process: these keys are stale; whoever reopens tells.
            return Ok(Vec::new());
        }
        let account = self.account()?;
        let card = if seq > 0 { account.card.clone() } else { self.lineage_card(&account, &held, self.home.now()) };
        self.tell_card(peers, &card, seq)
    }

    /// Queues `card` (carrying our statements through `seq`) to each peer that follows
    /// lineages and has not heard `seq`.
    fn tell_card(&self, peers: &mut Peers, card: &Card, seq: u64) -> Result<Vec<Face>> {
        let due: Vec<usize> = (0..peers.peers.len())
            .filter(|&i| peers.peers[i].card.speaks(FEATURE) && peers.peers[i].told.is_none_or(|t| t < seq))
            .collect();
        let now = self.home.now();
        let mut told = Vec::new();
        for i in due {
            let peer = &mut peers.peers[i];
            let body = serde_json::to_value(card.signed()).expect("a signed card serializes");
            let event = Event::new(&self.identity, peer.card.did().clone(), Kind::CardUpdate, body, now, &mut OsRng);
            let mut item = seal_for(&self.identity, peer, event)?.item(peer, now)?;
            item.quiet = true;
            self.home.queue(&item)?;
            peer.told = Some(seq);
            told.push(Face::of(peer.card.did()));
        }
        Ok(told)
    }

    /// `wire rotate`: moves to the committed next keys, commits to fresh ones, re-issues our
    /// card under the new key and queues it to every peer that follows lineages. Envelopes
    /// sealed to the old encryption key are opened for [`GRACE`] more.
    pub async fn rotate(&self) -> Result<RotateReport> {
        let report = {
            let _lock = self.home.lock()?;
            let before = held(&self.home)?;
            let now = self.home.now();
            let (keys, statement, old) = before.keys.rotate_retiring(Identity::generate(&mut OsRng), now);
            let mut statements = before.statements;
            statements.push(statement);
            let mut past = before.past;
            past.push((old, now));
            past.retain(|(_, until)| now <= until.saturating_add(GRACE));
            // The keys first: a crash after this leaves the old card, which `open` re-issues.
            save(&self.home, &Held { keys, statements, past })?;
            let held = self::held(&self.home)?;
            let mut account = self.account()?;
            account.card = self.lineage_card(&account, &held, now);
            self.home.save(&account)?;
            let seq = held.keys.seq;
            let key_fingerprint = Did::from_verifying_key(&held.keys.current.verifying_key()).fingerprint();
            let rotated = Endpoint {
                home: self.home.clone(),
                identity: held.keys.current,
                past: Vec::new(),
                keys_written: None,
                seq,
            };
            let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
            let told = rotated.tell_card(&mut peers, &account.card, seq)?;
            self.home.save(&peers)?;
            let cannot_follow =
                peers.peers.iter().filter(|p| !p.card.speaks(FEATURE)).map(|p| Face::of(p.card.did())).collect();
            (
                RotateReport { face: Face::of(self.identity.did()), seq, key_fingerprint, told, cannot_follow },
                rotated,
                account,
            )
        };
        // Deliver now what can be (signed by the new key); the rest waits in the outbox.
        let (report, rotated, account) = report;
        let _ = rotated.flush().await;
        // The handle directory hands out the new card from now on (best effort: a relay
        // without a directory, or unreachable now, keeps the old one until the next claim).
        if account.handle.is_some()
            && let Ok(client) = self.our_client(&account)
        {
            let nick = account.card.character().nickname();
            let _ = client.claim_handle(&account.owner_token, &nick, account.card.signed()).await;
        }
        Ok(report)
    }

    /// `wire revoke --export FILE`: signs a revocation now and writes it, with what it takes
    /// to deliver it to every peer, to `file` (0600), for the operator to keep offline.
    pub fn export_revocation(&self, file: &Path) -> Result<ExportReport> {
        let held = held(&self.home)?;
        let now = self.home.now();
        let statement = held.keys.revocation(now);
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut out = Vec::new();
        for peer in &peers.peers {
            let body = ControlBody {
                kind: REVOCATION.to_owned(),
                v: 1,
                fields: serde_json::Map::from_iter([(
                    "statement".to_owned(),
                    serde_json::to_value(&statement).expect("a statement serializes"),
                )]),
            };
            let body = serde_json::to_value(body).expect("a control body serializes");
            let event = Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, now, &mut OsRng);
            let signed = event.sign(&self.identity).expect("events built here are from `me`");
            out.push(RevocationPeer {
                card: peer.card.clone(),
                send_token: peer.send_token.clone(),
                event: signed.signed().clone(),
            });
        }
        let doc = RevocationFile {
            format: REVOCATION_FORMAT.to_owned(),
            v: 1,
            lineage: self.identity.did().clone(),
            statement,
            peers: out,
        };
        let mut bytes = serde_json::to_vec_pretty(&doc).expect("the revocation file serializes");
        bytes.push(b'\n');
        crate::files::write_atomic(file, &bytes, Some(0o600))
            .map_err(|e| HomeError::Io { path: file.to_owned(), source: e })?;
        Ok(ExportReport { file: file.display().to_string(), peers: doc.peers.len() })
    }
}

/// `wire revoke --publish FILE`: delivers an exported revocation to every peer it names,
/// with no home (the home may be lost). Each peer's relay gets the pre-signed event, sealed
/// to that peer now; one unreachable peer does not stop the others.
pub async fn publish_revocation(file: &Path) -> Result<PublishReport> {
    let bytes = std::fs::read(file).map_err(|e| HomeError::Io { path: file.to_owned(), source: e })?;
    let doc: RevocationFile = serde_json::from_slice(&bytes)
        .ok()
        .filter(|d: &RevocationFile| d.format == REVOCATION_FORMAT && d.v == 1)
        .ok_or_else(|| EndpointError::BadRevocationFile(file.display().to_string()))?;
    let mut peers = Vec::new();
    for p in &doc.peers {
        let face = Face::of(p.card.did());
        let peer = Peer::new(p.card.clone(), p.send_token.clone(), crate::proto::pairing::Tier::Tofu, UnixMillis(0));
        let outcome = match envelope::seal_signed(&p.event, &p.card.x25519_public(), &mut OsRng) {
            Ok(sealed) => deliver(&peer, &sealed.0).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        peers.push(match outcome {
            Ok(()) => Published { peer: face, verdict: "sent", error: None },
            Err(e) => Published { peer: face, verdict: "failed", error: Some(e) },
        });
    }
    Ok(PublishReport { lineage: Face::of(&doc.lineage), peers })
}

/// Applies the statements a peer's new card carries to our pin of it. `Ok` with the
/// change (or none), `Err` with why the card update is refused.
pub(crate) fn follow_card(
    peer: &mut Peer,
    card: &Card,
    now: UnixMillis,
) -> std::result::Result<Option<Change>, String> {
    if card.lineage().is_empty() {
        return Ok(None);
    }
    let mut pin = peer.pin();
    let mut last = None;
    for statement in card.lineage() {
        match pin.apply(statement, now) {
            Ok(Change::Unchanged) => {}
            Ok(change) => last = Some(change),
            Err(e) => {
                // A refused rotation changes nothing; a frozen pin is kept frozen.
                return Err(e.to_string());
            }
        }
        if pin.standing != Standing::Active {
            break;
        }
    }
    peer.lineage = Some(pin);
    Ok(last)
}

/// The key a card update's statements would make current, if they move `pin` (checked:
/// the statements carry their own signatures and the commitment).
/// `Err` says why the statements are refused (reported when the event verifies under no
/// key we could accept).
pub(crate) fn announced_key(
    pin: &Pin,
    body: &serde_json::Value,
    now: UnixMillis,
) -> std::result::Result<Option<[u8; 32]>, String> {
    let Ok(signed) = serde_json::from_value(body.clone()) else { return Ok(None) };
    let card = Card::verify(signed).map_err(|e| e.to_string())?;
    let mut tentative = pin.clone();
    for statement in card.lineage() {
        tentative.apply(statement, now).map_err(|e| e.to_string())?;
    }
    Ok((tentative.standing == Standing::Active && tentative.key != pin.key).then_some(tentative.key))
}

/// A revocation control message: `Ok(true)` when it revoked the pin. The event must be
/// signed by a key the lineage has held (checked by the caller with [`Pin::held`]).
pub(crate) fn apply_revocation(
    pin: &mut Pin,
    fields: &serde_json::Map<String, serde_json::Value>,
    now: UnixMillis,
) -> std::result::Result<bool, String> {
    let statement: SignedStatement = fields
        .get("statement")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or("a revocation without a statement")?;
    match pin.apply(&statement, now) {
        Ok(Change::Revoked) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// Opens an envelope with one of our prekeys (newest first), our current key, or one a
/// rotation retired less than [`GRACE`] ago.
pub(crate) fn open_any(ep: &Endpoint, prekeys: &[x25519_dalek::StaticSecret], bytes: &[u8]) -> Option<Signed> {
    prekeys
        .iter()
        .find_map(|k| envelope::open_signed_with(k, bytes).ok())
        .or_else(|| envelope::open_signed(&ep.identity, bytes).ok())
        .or_else(|| ep.past.iter().find_map(|id| envelope::open_signed(id, bytes).ok()))
}
