//! Endpoint operations: what `wire` (and later the daemon and the MCP server) does, as
//! async functions over the home directory and the relay client. Every mutating operation
//! holds the home lock and reloads state under it, so concurrent processes never lose or
//! double anything. Results are `Serialize` so the CLI prints them as `--json`.

mod audit;
mod block;
mod code_pair;
mod error;
mod flush;
mod jobs;
pub mod lineage;
mod mailboxes;
mod mesh;
mod ping;
pub(crate) mod prekeys;
mod receipts;
mod receive;
mod recover;
mod relocate;
mod report;
mod rooms;
mod route;
mod setup;
mod who;

pub use audit::{Against, LineVerdict, VerifyReport, verify_lines};
pub use block::{BlockEntry, BlockReport, Blocked, BlockedView};
pub use code_pair::{CodeSession, PairView, drive_to_end};
pub use error::{DidYouMean, EndpointError, NextStep, Problem};
pub use jobs::{
    AwardView, BidView, Budget, BudgetScope, Budgets, CallView, Calls, CapabilitiesReport, JobEventView, JobStepReport,
    JobView, ProviderView,
};
pub use mesh::{BroadcastVerdict, Delivery, MeshMember, mesh_status, pair_local, sessions_with_role, valid_role};
pub use ping::{MAX_PING_WAIT, PER_MINUTE as PINGS_PER_MINUTE, PingReport, Pings, SentPing};
pub use receipts::{Compact, MAX_WAIT};
pub use recover::{ReintroState, Reintroduction, ReregisterReport};
pub use relocate::MoveReport;
pub use report::{
    AnswerState, Decision, DecisionReport, Face, FailingItem, Flow, ForgetReport, InitReport, InviteReport,
    LineageView, Mailbox, OutboxStatus, OutgoingRequest, PeerReport, PendingCounts, PendingReport, PendingRequest,
    PullReport, Reachability, RejectedCounts, RelayStatus, RequestReport, RequestState, SendReport, StatusReport,
    Verdict, WaitingAnswer, WaitingReintro, Whoami, WhoisReport, WhoisSource,
};
pub use rooms::{
    RoomAddReport, RoomInviteReport, RoomJoinReport, RoomMember, RoomSendReport, RoomStream, RoomSyncReport, RoomView,
};
use route::refusal;
pub(crate) use route::{deliver, deliver_sealed, post, seal_for};
pub use setup::{init, init_mailboxes, init_with};

use std::time::Duration;

use rand_core::OsRng;
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError, RelayUrl};
use crate::home::{Account, Home, HomeError, InboxLine, OutboxItem, Peer, Peers, Pending, SentRecord};
use crate::proto::api::{ErrorCode, GrantKind, GrantRequest};
use crate::proto::card::Card;
use crate::proto::character::nickname_collisions;
use crate::proto::did::Did;
use crate::proto::event::{Acceptance, Event, Kind};
use crate::proto::identity::Identity;
use crate::proto::invite::Invite;
use crate::proto::pairing::dial;
use crate::proto::pairing::invite::{self as invite_flow, IssuedInvite};
use crate::proto::pairing::{Outgoing, Paired, PairingError, Tier};
use crate::proto::time::UnixMillis;

type Result<T, E = EndpointError> = std::result::Result<T, E>;

/// Wall-clock time as protocol time, for callers without a home at hand (logs).
pub fn now() -> UnixMillis {
    crate::clock::Clock::now(&crate::clock::SystemClock)
}

/// The capabilities this build's card lists. With `WIRE_COMPAT_RELEASE=0.1` it lists those
/// of release 0.1 instead (the kinds before `control`, no feature flags), so one binary can
/// stand in for a peer on that release in the compatibility tests.
/// This build also lists the machine tag ([`crate::files::machine_tag`]).
pub fn card_capabilities() -> Vec<String> {
    if std::env::var("WIRE_COMPAT_RELEASE").is_ok_and(|v| v == "0.1") {
        return Kind::ALL.iter().filter(|k| **k != Kind::Control).map(|k| k.as_str().to_owned()).collect();
    }
    let mut caps = crate::proto::event::capabilities();
    caps.extend(crate::files::machine_tag().map(|t| format!("{}{t}", crate::proto::card::MACHINE_PREFIX)));
    caps
}

/// An initialized endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// The home directory.
    pub home: Home,
    /// Our keys: the current keys of our lineage (the DID is the inception DID).
    pub identity: Identity,
    /// Key pairs a rotation retired less than [`lineage::GRACE`] ago: envelopes sealed to
    /// them still open.
    pub(crate) past: Vec<Identity>,
    /// When `identity.json` was last written, as of opening: a long-lived holder (the sync
    /// engine) reopens when it changes (another process rotated the keys).
    pub(crate) keys_written: Option<std::time::SystemTime>,
    /// Our lineage's `seq` as of opening (it moves only with the keys).
    pub(crate) seq: u64,
}

/// Whether mailbox `which` of ours answers, and knows our slot.
async fn mailbox_status(client: Client, account: &Account, which: usize) -> RelayStatus {
    let (url, slot, owner, cursor, _) = account.mailbox(which);
    let (reachable, mailbox) = match client.health().await {
        Ok(()) => {
            let mailbox = match client.list(&slot, &owner, Some(cursor), 1).await {
                Err(e) if e.code() == Some(ErrorCode::NotFound) => Mailbox::Gone,
                Err(ClientError::Unreachable { .. }) => Mailbox::Unknown,
                _ => Mailbox::Ok,
            };
            (Reachability { ok: true, error: None }, mailbox)
        }
        Err(e) => (Reachability { ok: false, error: Some(e.to_string()) }, Mailbox::Unknown),
    };
    RelayStatus { url, reachable, mailbox, cursor }
}

fn intro_tag(me: &Did, slot: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(crate::proto::labels::INTRO_TAG)
        .chain_update(me.as_str())
        .chain_update([0])
        .chain_update(slot)
        .finalize()[..16]
        .to_vec()
}

/// Refuses a peer whose identity is frozen or revoked: nothing goes to it.
fn closed_lineage(peer: &Peer) -> Result<()> {
    let standing = match peer.pin().standing {
        crate::proto::lineage::Standing::Active => return Ok(()),
        crate::proto::lineage::Standing::Frozen { .. } => "frozen (two different key rotations were seen)",
        crate::proto::lineage::Standing::Revoked { .. } => "revoked by its owner",
    };
    Err(EndpointError::PeerLineageClosed { peer: Face::of(peer.card.did()).nickname, standing })
}

/// Pins a freshly paired peer (the one place that builds a [`Peer`] from a pairing), with
/// the grant we minted for it when there is one; returns its face. `heard` is true when the
/// pairing ended with a message from the peer (it counts as last contact).
pub(crate) fn pin(peers: &mut Peers, paired: Paired, our_grant: Option<String>, at: UnixMillis, heard: bool) -> Face {
    let face = Face::of(paired.card.did());
    let did = paired.card.did().clone();
    // Tokens only for mailboxes its card lists after the first.
    let tokens = (paired.extras.tokens.iter())
        .filter(|t| paired.card.body().endpoints.iter().skip(1).any(|e| e.slot == t.slot))
        .cloned()
        .collect();
    // A card that carries statements (a rotated peer) pins its lineage from the start.
    let paired_lineage = (!paired.card.lineage().is_empty()).then(|| paired.card.lineage_pin());
    peers.pin(Peer {
        our_grant,
        last_contact: heard.then_some(at),
        lineage: paired_lineage,
        tokens,
        ..Peer::new(paired.card, paired.send_token, paired.tier, at)
    });
    // Its bundle, when the pairing carried one (checked against the key just pinned).
    if let (Some(bundle), Some(peer)) =
        (paired.extras.prekeys.as_ref(), peers.peers.iter_mut().find(|p| p.card.did() == &did))
    {
        let _ = prekeys::take_bundle(peer, bundle);
    }
    face
}

/// Which of `(did, nickname)` a name means: a full DID, or a nickname worn by exactly one.
/// Two requests wearing one nickname (a DID ground to imitate another) are never guessed
/// between: the operator must give the DID.
fn pick(named: &[(String, String)], name: &str) -> Result<Option<usize>> {
    let name = name.trim();
    if let Some(i) = named.iter().position(|(did, _)| did == name) {
        return Ok(Some(i));
    }
    let mut worn = named.iter().enumerate().filter(|(_, (_, nick))| nick == name).map(|(i, _)| i);
    match (worn.next(), worn.next()) {
        (Some(_), Some(_)) => Err(EndpointError::AmbiguousPeer(name.to_owned())),
        (one, _) => Ok(one),
    }
}

/// How long an answer to an accepted dial stays parked when the dialer cannot be reached.
const PARKED_ANSWER_TTL: Duration = Duration::from_secs(7 * 86_400);

/// A pairing answer as an outbox item, parked until it reaches the peer `to` (pinned with
/// `grant_id` by the caller).
pub(crate) fn parked_answer(
    to: Did,
    out: &Outgoing,
    grant_id: String,
    expires_at: UnixMillis,
    now: UnixMillis,
) -> Result<OutboxItem> {
    let first = out.endpoints.first().ok_or(PairingError::NoEndpoint)?;
    let token = out.token.clone().ok_or(EndpointError::Internal("an answer without a token"))?;
    Ok(OutboxItem {
        v: 1,
        event_id: out.event_id,
        to,
        relay: first.relay.clone(),
        slot: first.slot.clone(),
        token,
        envelope: out.envelope.0.clone(),
        signed: None,
        queued_at: now,
        attempts: 0,
        last_error: None,
        not_before: None,
        answer: Some(crate::home::ParkedAnswer { grant_id, expires_at }),
        reintro: None,
        logged: false,
        quiet: false,
    })
}

fn peer_report(p: &Peer) -> PeerReport {
    PeerReport {
        face: face_of_peer(p),
        tier: p.tier,
        paired_at: p.paired_at,
        last_contact: p.last_contact,
        relay: p.card.body().endpoints.first().map(|e| e.relay.clone()),
        lineage: report::LineageView::of(&p.pin()),
    }
}

fn face_of_peer(p: &Peer) -> Face {
    Face::of(p.card.did())
}

impl Endpoint {
    /// Opens an initialized home.
    pub fn open(home: Home) -> Result<Self> {
        if !home.exists() {
            return Err(HomeError::NotInitialized(home.root().to_owned()).into());
        }
        let Some(account) = home.load::<Account>()? else {
            return Err(HomeError::NotInitialized(home.root().to_owned()).into());
        };
        let held = lineage::migrate(&home)?;
        let now = home.now();
        let past = held
            .past
            .into_iter()
            .filter(|(_, until)| now <= until.saturating_add(lineage::GRACE))
            .map(|(id, _)| id)
            .collect();
        let rotated_card_missing = held.keys.seq > 0 && account.card.lineage().len() != held.statements.len();
        let keys_written = lineage::keys_written(&home);
        let seq = held.keys.seq;
        let ep = Self { home, identity: held.keys.current, past, keys_written, seq };
        if account.card.body().capabilities != card_capabilities() || rotated_card_missing {
            ep.migrate_card()?;
        }
        Ok(ep)
    }

    /// Migrates a home written by an earlier release in place: re-issues our card with this
    /// build's capabilities (same keys, same endpoints) and queues a `card_update` to every
    /// peer in the outbox, so peers learn what we now read at the next sync. Idempotent.
    fn migrate_card(&self) -> Result<()> {
        let _lock = self.home.lock()?;
        let mut account = self.account()?;
        let wanted = card_capabilities();
        let held = lineage::held(&self.home)?;
        let chain = if held.keys.seq > 0 { held.statements } else { Vec::new() };
        if account.card.body().capabilities == wanted && account.card.lineage() == chain.as_slice() {
            return Ok(()); // another process migrated it first
        }
        let now = self.home.now().max(account.card.body().created_at.saturating_add(Duration::from_millis(1)));
        // A rotated identity's card carries its statements (it is signed by the current key).
        account.card =
            Card::issue_in_lineage(&self.identity, account.card.body().endpoints.clone(), wanted, now, chain);
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        for peer in &peers.peers {
            let body = serde_json::to_value(account.card.signed()).expect("a signed card serializes");
            let event = Event::new(&self.identity, peer.card.did().clone(), Kind::CardUpdate, body, now, &mut OsRng);
            let item = seal_for(&self.identity, peer, event)?.item(peer, now)?;
            self.home.queue(&item)?;
        }
        // Peers that already read prekeys get our bundle with the card (the others ask for
        // it once they do). Our first prekey's bundle goes to them as it is made.
        let made = self.home.load::<crate::proto::prekey::OurPrekeys>()?.is_some();
        if let Some(bundle) = self.our_bundle()?.filter(|_| made) {
            for peer in peers.peers.iter().filter(|p| p.card.speaks(crate::proto::prekey::FEATURE)) {
                if let Some(item) = self.bundle_item(peer, &bundle)? {
                    self.home.queue(&item)?;
                }
            }
        }
        // The card is saved last: a crash before this point re-runs the migration (a peer
        // may get two card updates; it keeps the newer).
        self.home.save(&account).map_err(EndpointError::from)
    }

    /// Our account as saved: relay, slot, card, cursor.
    pub fn account(&self) -> Result<Account> {
        self.home.load::<Account>()?.ok_or_else(|| HomeError::NotInitialized(self.home.root().to_owned()).into())
    }

    /// Mints a send token on our slot for a peer (each peer gets its own, revocable).
    pub(crate) async fn mint_send_grant(&self, account: &Account) -> Result<crate::proto::api::GrantResponse> {
        let request = GrantRequest { kind: GrantKind::Send, ttl_secs: None, uses: None };
        Ok(self.our_client(account)?.grant(&account.slot, &account.owner_token, &request).await?)
    }

    pub(crate) fn our_client(&self, account: &Account) -> Result<Client> {
        Ok(Client::new(RelayUrl::parse(account.owner_relay())?))
    }

    fn rules(&self) -> Acceptance<'_> {
        Acceptance::new(self.identity.did(), self.home.now())
    }

    /// `wire invite`: mints a single-use (or `uses`-use) intro token and prints a URL.
    pub async fn invite(&self, uses: u32, ttl: Duration) -> Result<InviteReport> {
        self.invite_for(uses, ttl, None).await
    }

    /// An invite that only `only` may redeem, when given (a job bid's invite).
    pub(crate) async fn invite_for(&self, uses: u32, ttl: Duration, only: Option<Did>) -> Result<InviteReport> {
        let max_ttl = Duration::from_secs(crate::proto::api::MAX_INTRO_TTL_SECS);
        if !(1..=crate::proto::api::MAX_INTRO_USES).contains(&uses) || ttl < Duration::from_secs(1) || ttl > max_ttl {
            return Err(EndpointError::InviteLimits);
        }
        let _lock = self.home.lock()?;
        let account = self.account()?;
        let client = self.our_client(&account)?;
        let grant = client
            .grant(
                &account.slot,
                &account.owner_token,
                &GrantRequest { kind: GrantKind::Intro, ttl_secs: Some(ttl.as_secs().max(1)), uses: Some(uses) },
            )
            .await?;
        let expires_at = grant.expires_at.unwrap_or_else(|| self.home.now().saturating_add(ttl));
        let invite = Invite::issue(
            &self.identity,
            &account.card,
            account.relay.clone(),
            account.slot.clone(),
            grant.token,
            expires_at,
            &mut OsRng,
        );
        let mut pending = self.home.load::<Pending>()?.unwrap_or(Pending { v: 1, ..Pending::default() });
        pending.issued.push(IssuedInvite { only, ..IssuedInvite::new(&invite, uses) });
        self.home.save(&pending)?;
        Ok(InviteReport { url: invite.to_url(), uses, expires_at })
    }

    /// `wire accept <URL>`: redeems an invite. The issuer answers on its next pull; ours
    /// then pins it.
    pub async fn accept_invite(&self, url: &str) -> Result<RequestReport> {
        let invite = Invite::parse_url(url, self.home.now())?;
        let _lock = self.home.lock()?;
        let account = self.account()?;
        let issuer = Face::of(invite.issuer().did());
        if self.home.load::<Peers>()?.unwrap_or_default().get(invite.issuer().did()).is_some() {
            return Ok(RequestReport { state: RequestState::AlreadyPaired, peer: issuer });
        }
        let client = self.our_client(&account)?;
        let grant = self.mint_send_grant(&account).await?;
        let (waiting, out) = invite_flow::join(
            &self.identity,
            &account.card,
            &self.our_extras(&account, &grant.grant_id).await?,
            &invite,
            grant.token,
            self.home.now(),
            &mut OsRng,
        )?;
        if let Err(e) = post(&self.identity, &out).await {
            // The invite was refused (used, expired) or unreachable: take back our grant.
            let _ = client.revoke(&account.slot, &account.owner_token, &grant.grant_id).await;
            return Err(match e {
                EndpointError::Client(ClientError::Api { code: ErrorCode::Gone, .. }) => EndpointError::InviteSpent,
                other => other,
            });
        }
        let mut pending = self.home.load::<Pending>()?.unwrap_or(Pending { v: 1, ..Pending::default() });
        pending.joined.push((waiting, grant.grant_id));
        self.home.save(&pending)?;
        Ok(RequestReport { state: RequestState::Requested, peer: issuer })
    }

    /// `wire dial <nick@relay>`: asks a stranger to pair; it waits for their consent.
    pub async fn dial(&self, handle: &str, note: Option<String>) -> Result<RequestReport> {
        let (nick, relay) = handle.split_once('@').ok_or_else(|| EndpointError::BadHandle(handle.to_owned(), ""))?;
        let remote = Client::new(RelayUrl::parse(relay)?);
        let resolved = remote.resolve(nick).await?;
        let theirs = Card::verify(resolved.card).map_err(PairingError::from)?;
        if theirs.character().nickname() != nick {
            return Err(EndpointError::DirectoryMismatch {
                asked: nick.to_owned(),
                found: theirs.character().nickname(),
            });
        }
        let _lock = self.home.lock()?;
        let account = self.account()?;
        let client = self.our_client(&account)?;
        let grant = self.mint_send_grant(&account).await?;
        let (waiting, out) = dial::dial(
            &self.identity,
            &account.card,
            &self.our_extras(&account, &grant.grant_id).await?,
            &theirs,
            grant.token,
            note,
            self.home.now(),
            &mut OsRng,
        )?;
        if let Err(e) = post(&self.identity, &out).await {
            let _ = client.revoke(&account.slot, &account.owner_token, &grant.grant_id).await;
            return Err(e);
        }
        let mut pending = self.home.load::<Pending>()?.unwrap_or(Pending { v: 1, ..Pending::default() });
        pending.dialed.retain(|(w, _)| w.peer.did() != theirs.did());
        pending.dialed.push((waiting, grant.grant_id));
        self.home.save(&pending)?;
        Ok(RequestReport { state: RequestState::Requested, peer: Face::of(theirs.did()) })
    }

    /// `wire pending`: strangers waiting for consent, and our own requests in flight.
    pub fn pending(&self) -> Result<PendingReport> {
        let p = self.home.load::<Pending>()?.unwrap_or_default();
        let requests = p
            .requests
            .iter()
            .map(|r| PendingRequest { from: Face::of(r.from.did()), note: r.note.clone(), received_at: r.received_at })
            .collect();
        let outgoing = p
            .joined
            .iter()
            .map(|(w, _)| OutgoingRequest { to: Face::of(w.issuer.did()), flow: Flow::Invite })
            .chain(p.dialed.iter().map(|(w, _)| OutgoingRequest { to: Face::of(w.peer.did()), flow: Flow::Dial }))
            .collect();
        let answers = self
            .home
            .outbox()?
            .iter()
            .filter_map(|i| {
                let a = i.answer.as_ref()?;
                Some(WaitingAnswer {
                    to: Face::of(&i.to),
                    attempts: i.attempts,
                    last_error: i.last_error.clone(),
                    expires_at: a.expires_at,
                })
            })
            .collect();
        Ok(PendingReport { requests, outgoing, answers, invites_open: p.issued.len() })
    }

    /// `wire accept <nick>` / `wire reject <nick>` for a pending dial request.
    pub async fn decide(&self, name: &str, accept: bool) -> Result<DecisionReport> {
        let _lock = self.home.lock()?;
        let account = self.account()?;
        let mut pending = self.home.load::<Pending>()?.unwrap_or_default();
        let named: Vec<(String, String)> =
            pending.requests.iter().map(|r| (r.from.did().to_string(), r.from.character().nickname())).collect();
        let Some(index) = pick(&named, name)? else {
            // `wire reject` also drops a parked pairing answer (unpin, revoke).
            let named = |d: &Did| d.as_str() == name || Face::of(d).nickname == name;
            let parked = self.home.outbox()?.into_iter().find(|i| i.answer.is_some() && named(&i.to));
            if let (false, Some(item)) = (accept, parked) {
                let answer = item.answer.clone().expect("filtered on answer");
                self.drop_parked(&item, &answer).await?;
                return Ok(DecisionReport { peer: Face::of(&item.to), decision: Decision::Dropped, answer: None });
            }
            return Err(EndpointError::NoSuchRequest(name.to_owned()));
        };
        let request = pending.requests.remove(index);
        let face = Face::of(request.from.did());
        let mut answer = None;
        if accept {
            let grant = self.mint_send_grant(&account).await?;
            let (paired, out) = request.accept(
                &self.identity,
                &account.card,
                &self.our_extras(&account, &grant.grant_id).await?,
                grant.token,
                self.home.now(),
                &mut OsRng,
            )?;
            // The answer is parked first, like one the receive path makes: a dialer whose
            // addresses do not answer now is answered at a later sync (until the request's
            // own window closes), and the decision is saved either way.
            let expires = self.home.now().saturating_add(PARKED_ANSWER_TTL);
            let item =
                parked_answer(paired.card.did().clone(), &out, grant.grant_id.clone(), expires, self.home.now())?;
            self.pin(paired, Some(grant.grant_id))?;
            self.home.queue(&item)?;
            self.home.save(&pending)?;
            let delivered = self.try_item(&item, &mut PullReport::default()).await?;
            answer = Some(if delivered { AnswerState::Delivered } else { AnswerState::Queued });
        } else {
            // Telling the dialer is a courtesy; the decision stands if it cannot be told (or
            // its card names nowhere to tell it).
            let out = request.reject(&self.identity, None, self.home.now(), &mut OsRng);
            self.home.save(&pending)?;
            if let Ok(out) = out {
                let _ = post(&self.identity, &out).await;
            }
        }
        let decision = if accept { Decision::Accepted } else { Decision::Rejected };
        Ok(DecisionReport { peer: face, decision, answer })
    }

    fn pin(&self, paired: Paired, our_grant: Option<String>) -> Result<Face> {
        let mut peers = self.home.load::<Peers>()?.unwrap_or(Peers { v: 1, ..Peers::default() });
        let face = pin(&mut peers, paired, our_grant, self.home.now(), false);
        self.home.save(&peers)?;
        Ok(face)
    }

    /// `wire verify <peer> <fingerprint>`: the operator compared the peer's fingerprint with
    /// its operator; when it matches, a TOFU peer becomes VERIFIED. A mismatch changes
    /// nothing. Returns the peer.
    pub fn verify(&self, name: &str, fingerprint: &str) -> Result<PeerReport> {
        let _lock = self.home.lock()?;
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        let did = self.find_peer(&peers, name)?.card.did().clone();
        let squash = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        if squash(&did.fingerprint()) != squash(fingerprint) {
            return Err(EndpointError::FingerprintMismatch(Face::of(&did).nickname));
        }
        let peer = peers.peers.iter_mut().find(|p| p.card.did() == &did).expect("found above");
        if peer.tier == Tier::Tofu {
            peer.tier = Tier::Verified;
        }
        let report = peer_report(peer);
        self.home.save(&peers)?;
        Ok(report)
    }

    /// `wire forget`: revokes the peer's send token on our slot, tells it, unpins it.
    pub async fn forget(&self, name: &str) -> Result<ForgetReport> {
        let _lock = self.home.lock()?;
        let account = self.account()?;
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        let peer = self.find_peer(&peers, name)?.clone();
        if let Some(grant) = &peer.our_grant {
            match self.our_client(&account)?.revoke(&account.slot, &account.owner_token, grant).await {
                Ok(_) | Err(ClientError::Api { code: ErrorCode::NotFound, .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.revoke_spare_grants(grant).await?;
        }
        let close = Event::new(
            &self.identity,
            peer.card.did().clone(),
            Kind::Close,
            serde_json::Value::Null,
            self.home.now(),
            &mut OsRng,
        );
        let told = match seal_for(&self.identity, &peer, close) {
            Ok(sealed) => matches!(deliver_sealed(&peer, &sealed).await, Ok(Some(_))),
            Err(_) => false,
        };
        peers.peers.retain(|p| p.card.did() != peer.card.did());
        self.home.save(&peers)?;
        Ok(ForgetReport { forgotten: face_of_peer(&peer), told })
    }

    /// `wire send`.
    pub async fn send(&self, name: &str, kind: &str, body: serde_json::Value, queue: bool) -> Result<SendReport> {
        let kind: Kind = kind.parse()?;
        if kind.is_protocol() {
            return Err(EndpointError::ProtocolKind(kind));
        }
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let peer = self.find_peer(&peers, name)?.clone();
        closed_lineage(&peer)?;
        let event = Event::new(&self.identity, peer.card.did().clone(), kind, body, self.home.now(), &mut OsRng);
        let to = peer.card.did().clone();
        let sent = |queued| SentRecord::Sent { event: event.clone(), at: self.home.now(), queued };
        let sealed = seal_for(&self.identity, &peer, event.clone())?;
        let event_id = sealed.id;
        let face = face_of_peer(&peer);
        let outcome = deliver_sealed(&peer, &sealed).await;
        // Queued when nobody answered, when the peer's relay lost its slot (it comes back
        // with a re-introduction, and the outbox follows its new card), or when we hold no
        // usable prekey of the peer's (it is asked for a fresh bundle).
        let stale = matches!(outcome, Ok(None));
        let wait = match &outcome {
            Ok(None) => Some(EndpointError::PrekeysStale(face.nickname.clone()).to_string()),
            Err(e) if matches!(e, ClientError::Unreachable { .. }) || e.code() == Some(ErrorCode::NotFound) => {
                Some(e.to_string())
            }
            _ => None,
        };
        match outcome {
            Ok(Some((seq, via))) => {
                self.home.record_sent(&to, &[sent(false)])?;
                Ok(SendReport {
                    verdict: Verdict::Sent,
                    event_id: event_id.to_string(),
                    to: face,
                    seq: Some(seq),
                    via: Some(via),
                    reason: None,
                })
            }
            _ if queue && wait.is_some() => {
                let mut item = sealed.item(&peer, self.home.now())?;
                item.logged = true;
                let _lock = self.home.lock()?;
                // Logged before it is queued: a flush can only ever find it in the log.
                self.home.record_sent(&to, &[sent(true)])?;
                if stale {
                    item.last_error = wait.clone();
                    self.ask_prekeys_of(&to)?;
                }
                self.home.queue(&item)?;
                Ok(SendReport {
                    verdict: Verdict::Queued,
                    event_id: event_id.to_string(),
                    to: face,
                    seq: None,
                    via: None,
                    reason: wait,
                })
            }
            Ok(None) => Err(EndpointError::PrekeysStale(face.nickname)),
            Err(e) => {
                let reason = e.to_string();
                let failed = SentRecord::Failed { id: event_id, at: self.home.now(), reason };
                self.home.record_sent(&to, &[sent(false), failed])?;
                Err(refusal(&face, e))
            }
        }
    }

    /// `wire tail`: the last `limit` inbox lines (of one peer, or all).
    pub fn tail(&self, peer: Option<&str>, limit: usize) -> Result<Vec<InboxLine>> {
        // Read from the end of the files: the cost follows `limit`, not the history.
        match peer {
            Some(name) => {
                let peers = self.home.load::<Peers>()?.unwrap_or_default();
                let did = match Did::parse(name) {
                    Ok(did) => did,
                    Err(_) => self.find_peer(&peers, name)?.card.did().clone(),
                };
                Ok(self.home.read_inbox_tail_of(&did, limit)?)
            }
            None => Ok(self.home.read_inbox_tail(limit)?),
        }
    }

    /// Whether the relay holds events for us past our cursor (what a pull would take).
    pub async fn waiting_at_relay(&self) -> Result<bool> {
        let account = self.account()?;
        let page =
            self.our_client(&account)?.list(&account.slot, &account.owner_token, Some(account.cursor), 1).await?;
        Ok(!page.events.is_empty())
    }

    /// How far the relay's clock is ahead of ours, in ms (negative: behind), measured at the
    /// middle of one `/healthz` round trip; `None` when the relay does not say its time.
    pub async fn clock_skew(&self) -> Result<Option<i64>> {
        let client = self.our_client(&self.account()?)?;
        let before = self.home.now().0;
        let relay = client.relay_time().await?;
        let after = self.home.now().0;
        let middle = before / 2 + after / 2;
        Ok(relay.map(|r| i64::try_from(r.0).unwrap_or(i64::MAX) - i64::try_from(middle).unwrap_or(i64::MAX)))
    }

    /// `wire status`.
    pub async fn status(&self) -> Result<StatusReport> {
        let account = self.account()?;
        let relay = mailbox_status(self.our_client(&account)?, &account, 0).await;
        let mut mailboxes = Vec::new();
        for which in 1..account.mailbox_count() {
            let role = if which <= account.spares.len() { "spare" } else { "moved_from" };
            let client = Client::new(RelayUrl::parse(&account.mailbox(which).0)?);
            mailboxes.push(report::OtherMailbox { role, status: mailbox_status(client, &account, which).await });
        }
        let pending = self.home.load::<Pending>()?.unwrap_or_default();
        // Our receipts wait in the outbox too; the counts here are of messages.
        let outbox: Vec<OutboxItem> = self.home.outbox()?.into_iter().filter(|i| !i.quiet).collect();
        // Parked pairing answers are said once, under `pending.answers` (`wire pending`).
        let failing = outbox
            .iter()
            .filter(|i| i.attempts > 0 && i.answer.is_none())
            .map(|i| FailingItem {
                to: Face::of(&i.to).nickname,
                attempts: i.attempts,
                last_error: i.last_error.clone(),
            })
            .collect();
        let reintroductions = outbox
            .iter()
            .filter(|i| i.reintro.is_some())
            .map(|i| WaitingReintro { to: Face::of(&i.to), attempts: i.attempts, last_error: i.last_error.clone() })
            .collect();
        let rejected = self.home.rejected()?;
        let mut reasons = std::collections::BTreeMap::new();
        for r in &rejected {
            *reasons.entry(r.reason.clone()).or_default() += 1;
        }
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(StatusReport {
            identity: self.whoami()?,
            relay,
            mailboxes,
            peers: peers.peers.len(),
            inbox: self.home.inbox_len()?,
            unread: self.home.unread(crate::home::Consumer::Agent, None, 1000)?.lines.len(),
            sent: self.home.sent(None, usize::MAX)?.iter().fold(Default::default(), |mut counts, v| {
                *counts.entry(v.state).or_default() += 1;
                counts
            }),
            outbox: OutboxStatus { queued: outbox.len(), failing },
            pending: PendingCounts {
                requests: pending.requests.len(),
                outgoing: pending.joined.len() + pending.dialed.len(),
                invites_open: pending.issued.len(),
            },
            rejected: RejectedCounts { total: rejected.len(), reasons },
            reintroductions,
            needs_repair: peers.peers.iter().filter(|p| p.needs_repair).map(face_of_peer).collect(),
            rooms: self.rooms()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_nickname_worn_by_two_requests_is_never_guessed() {
        let named = vec![
            ("did:key:a".to_owned(), "brave-otter".to_owned()),
            ("did:key:b".to_owned(), "brave-otter".to_owned()),
        ];
        assert!(matches!(pick(&named, "brave-otter"), Err(EndpointError::AmbiguousPeer(_))));
        assert_eq!(pick(&named, "did:key:b").unwrap(), Some(1), "the DID picks one");
        assert_eq!(pick(&named[..1], "brave-otter").unwrap(), Some(0));
        assert_eq!(pick(&named, "calm-heron").unwrap(), None);
    }
}
