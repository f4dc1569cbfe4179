//! Jobs in the endpoint (docs/PROTOCOL.md 15): each step is a `job` event to the other side;
//! a home holds the whole job in its inbox (their steps) and sent log (ours), and the state
//! is derived from those by `proto::job::derive` every time it is needed. A received step
//! that the state machine refuses is rejected at receive, never stored.

use rand_core::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Endpoint, EndpointError, Face, Result, refusal, seal_for};
use crate::client::ClientError;
use crate::home::{InboxLine, OutboxItem, Peers, SentRecord};
use crate::proto::api::ErrorCode;
use crate::proto::did::Did;
use crate::proto::event::{Event, Kind};
use crate::proto::job::{self, Entry, Job, JobEvent, Phase, Step};
use crate::proto::time::UnixMillis;

mod budget;
mod calls;

pub use budget::{Budget, BudgetScope, Budgets};
pub use calls::{AwardView, BidView, CallView, Calls};
pub(crate) use calls::{RoomJobMsg, is_job_control};

/// A job as `wire job list` and `wire job show` give it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The job id (32 hex digits).
    pub id: String,
    /// The other side.
    pub peer: Face,
    /// Our side: `customer` or `provider`.
    pub role: job::Party,
    /// Where it stands now (an offer nobody took reads `expired` after its expiry).
    pub phase: Phase,
    /// The whole job as its events say.
    pub job: Job,
    /// Its events: applied, passed over (a step that crossed one that won) or pending.
    pub events: Vec<JobEventView>,
}

/// One event of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobEventView {
    /// Its hash (base64url).
    pub hash: String,
    /// Who signed it.
    pub from: Face,
    /// The step.
    pub step: &'static str,
    /// When it was signed.
    pub created_at: UnixMillis,
    /// `applied`, `passed_over` or `pending`.
    pub fate: &'static str,
    /// `wire job show`: for the other side's events, whether the signed bytes in our inbox
    /// verify under its pinned key now (false after a key rotation for older ones); null
    /// for ours (the sent log holds what we signed) and in `wire job list`.
    pub verified: Option<bool>,
}

/// What a job command did.
#[derive(Debug, Clone, Serialize)]
pub struct JobStepReport {
    /// The job id.
    pub id: String,
    /// The step sent.
    pub step: &'static str,
    /// `sent`, or `queued` (the peer's relay did not answer; `wire pull` or the daemon
    /// sends it).
    pub verdict: &'static str,
    /// The job's phase after it, on our side.
    pub phase: Phase,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A job event's hash: SHA-256 of the event's signed payload.
fn hash_of(payload: &[u8]) -> job::Hash {
    Sha256::digest(payload).into()
}

fn entry(event: &Event, payload: &[u8]) -> Option<Entry> {
    let body: JobEvent = serde_json::from_value(event.body.clone()).ok()?;
    Some(Entry {
        hash: hash_of(payload),
        signer: event.from.clone(),
        to: event.to.clone(),
        created_at: event.created_at,
        event: body,
    })
}

impl Endpoint {
    /// Every job event with `peer`: theirs from the inbox (and `extra`, not stored yet), ours
    /// from the sent log.
    pub(crate) fn job_entries(&self, peer: &Did, extra: &[InboxLine]) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for line in self.home.read_inbox_of(peer)?.iter().chain(extra) {
            if line.event.kind == Kind::Job
                && let Some(e) = entry(&line.event, &line.signed.payload)
            {
                out.push(e);
            }
        }
        for event in self.home.sent_events(peer)? {
            if event.kind == Kind::Job {
                // The payload we signed: the event as serialized (`Event::sign`).
                let payload = serde_json::to_vec(&event).expect("events serialize");
                out.extend(entry(&event, &payload));
            }
        }
        Ok(out)
    }

    /// Whether a job event received from `peer` holds, with what is known of its job; the
    /// reason when it is refused.
    pub(crate) fn job_verdict(
        &self,
        peer: &Did,
        line: &InboxLine,
        batch: &[InboxLine],
    ) -> std::result::Result<(), String> {
        let Some(new) = entry(&line.event, &line.signed.payload) else {
            return Err("a job event whose body is not a job step".into());
        };
        let mut entries: Vec<Entry> = self
            .job_entries(peer, batch)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|e| e.event.job == new.event.job)
            .collect();
        entries.push(new.clone());
        let derived = job::derive(&entries);
        match derived.refused.iter().find(|(h, _)| *h == new.hash) {
            Some((_, why)) => Err(format!("job {} step `{}`: {why}", hex(&new.event.job), new.event.step.name())),
            None => Ok(()),
        }
    }

    /// Every job with every peer.
    pub fn jobs(&self) -> Result<Vec<JobView>> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut out = Vec::new();
        for peer in &peers.peers {
            let entries = self.job_entries(peer.card.did(), &[])?;
            let mut ids: Vec<[u8; 16]> = entries.iter().map(|e| e.event.job).collect();
            ids.sort();
            ids.dedup();
            for id in ids {
                let of_job: Vec<Entry> = entries.iter().filter(|e| e.event.job == id).cloned().collect();
                out.extend(self.view(peer.card.did(), &of_job));
            }
        }
        Ok(out)
    }

    fn view(&self, peer: &Did, entries: &[Entry]) -> Option<JobView> {
        let derived = job::derive(entries);
        let job = derived.job?;
        let role = if &job.customer == self.identity.did() { job::Party::Customer } else { job::Party::Provider };
        let fate = |h: &job::Hash| {
            if derived.applied.contains(h) {
                "applied"
            } else if derived.passed_over.contains(h) {
                "passed_over"
            } else {
                "pending"
            }
        };
        let mut events: Vec<JobEventView> = entries
            .iter()
            .filter(|e| !derived.refused.iter().any(|(h, _)| *h == e.hash))
            .map(|e| JobEventView {
                hash: crate::proto::b64::encode(e.hash),
                from: Face::of(&e.signer),
                step: e.event.step.name(),
                created_at: e.created_at,
                fate: fate(&e.hash),
                verified: None,
            })
            .collect();
        events.sort_by_key(|e| e.created_at);
        events.dedup_by(|a, b| a.hash == b.hash);
        Some(JobView {
            id: hex(&job.id),
            peer: Face::of(peer),
            role,
            phase: job.phase_at(self.home.now()),
            job,
            events,
        })
    }

    /// `wire job show`: one job by id (or a prefix of at least 8 hex digits).
    pub fn job_show(&self, id: &str) -> Result<JobView> {
        let matches: Vec<JobView> =
            self.jobs()?.into_iter().filter(|j| id.len() >= 8 && j.id.starts_with(id)).collect();
        match matches.len() {
            1 => {
                let mut view = matches.into_iter().next().expect("one");
                self.reverify(&mut view)?;
                Ok(view)
            }
            0 => Err(EndpointError::NoSuchJob(id.to_owned())),
            _ => Err(EndpointError::Job(format!("`{id}` names several jobs; give more of the id"))),
        }
    }

    /// Re-checks the signed bytes of the other side's events of a job (from our inbox)
    /// under its pinned key.
    fn reverify(&self, view: &mut JobView) -> Result<()> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let did = Did::parse(&view.peer.did).map_err(|e| EndpointError::Job(e.to_string()))?;
        let key = peers.get(&did).and_then(|p| ed25519_dalek::VerifyingKey::from_bytes(&p.pin().key).ok());
        let lines = self.home.read_inbox_of(&did)?;
        for event in view.events.iter_mut().filter(|e| e.from.did == view.peer.did) {
            let line = lines.iter().find(|l| {
                l.event.kind == Kind::Job && crate::proto::b64::encode(hash_of(&l.signed.payload)) == event.hash
            });
            event.verified = Some(match (line, &key) {
                (Some(line), Some(key)) => {
                    line.signed.verify(crate::proto::labels::SIGN_EVENT, key).is_ok()
                        && serde_json::from_slice::<Event>(&line.signed.payload).is_ok_and(|e| e == line.event)
                }
                _ => false,
            });
        }
        Ok(())
    }

    /// `wire job offer`: a new job to a paired peer.
    pub async fn job_offer(
        &self,
        peer: &str,
        task: &str,
        input: serde_json::Value,
        terms: Option<job::Terms>,
        ttl: std::time::Duration,
    ) -> Result<JobStepReport> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let to = self.find_peer(&peers, peer)?.card.did().clone();
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut id);
        let step = Step::Offer {
            task: task.to_owned(),
            input,
            terms,
            deadline: None,
            expires_at: self.home.now().saturating_add(ttl),
            call: None,
        };
        self.job_send(&to, JobEvent { job: id, prev: Vec::new(), step }).await
    }

    /// `wire job accept|reject|...`: the next step of a job, if our side may take it now.
    pub async fn job_step(&self, id: &str, step: Step) -> Result<JobStepReport> {
        let view = self.job_show(id)?;
        let peer = Did::parse(&view.peer.did).map_err(|e| EndpointError::Job(e.to_string()))?;
        view.job.allows(view.role, &step, self.home.now()).map_err(|why| {
            EndpointError::Job(format!("cannot {} job {} now: {why} (it is {:?})", step.name(), view.id, view.phase))
        })?;
        let entries: Vec<Entry> =
            self.job_entries(&peer, &[])?.into_iter().filter(|e| e.event.job == view.job.id).collect();
        // `prev`: the heads of what we hold (the valid events no other valid one names).
        let derived = job::derive(&entries);
        let valid: Vec<job::Hash> = derived.applied.iter().chain(derived.passed_over.iter()).copied().collect();
        let named: Vec<job::Hash> =
            entries.iter().filter(|e| valid.contains(&e.hash)).flat_map(|e| e.event.prev.clone()).collect();
        let mut prev: Vec<job::Hash> = valid.into_iter().filter(|h| !named.contains(h)).collect();
        prev.sort();
        prev.dedup();
        self.job_send(&peer, JobEvent { job: view.job.id, prev, step }).await
    }

    /// Signs and sends a job event to `to` (queued if its relay does not answer); logged in
    /// the sent log either way, which is where our side of the job lives.
    async fn job_send(&self, to: &Did, body: JobEvent) -> Result<JobStepReport> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let peer =
            peers.get(to).ok_or_else(|| EndpointError::Job("the job's peer is no longer paired".into()))?.clone();
        let step = body.step.name();
        let id = body.job;
        let value = serde_json::to_value(&body).expect("job events serialize");
        let event = Event::new(&self.identity, to.clone(), Kind::Job, value, self.home.now(), &mut OsRng);
        let sealed = seal_for(&self.identity, &peer, event.clone())?;
        let sent = |queued| SentRecord::Sent { event: event.clone(), at: self.home.now(), queued };
        let outcome = super::deliver_sealed(&peer, &sealed).await;
        let stale = matches!(outcome, Ok(None));
        let wait = match &outcome {
            Ok(None) => true,
            Err(e) => matches!(e, ClientError::Unreachable { .. }) || e.code() == Some(ErrorCode::NotFound),
            Ok(Some(_)) => false,
        };
        let verdict = match outcome {
            Ok(Some(_)) => {
                self.home.record_sent(to, &[sent(false)])?;
                "sent"
            }
            _ if wait => {
                let mut item = sealed.item(&peer, self.home.now())?;
                item.logged = true;
                let _lock = self.home.lock()?;
                self.home.record_sent(to, &[sent(true)])?;
                if stale {
                    self.ask_prekeys_of(to)?;
                }
                self.home.queue(&item)?;
                "queued"
            }
            Ok(None) => return Err(EndpointError::PrekeysStale(Face::of(to).nickname)),
            Err(e) => return Err(refusal(&Face::of(to), e)),
        };
        let entries: Vec<Entry> = self.job_entries(to, &[])?.into_iter().filter(|e| e.event.job == id).collect();
        let phase = self.view(to, &entries).map_or(Phase::Offered, |v| v.phase);
        Ok(JobStepReport { id: hex(&id), step, verdict, phase })
    }
}

/// Control type: our capability card, to each peer that reads jobs.
pub(crate) const CAPABILITIES: &str = "capabilities";
/// Where capability cards are kept (`capabilities/<key>.json`: `self`, or a peer's DID key).
const CAPS_DIR: &str = "capabilities";

/// The `capabilities` control message's fields.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct CapabilitiesMsg {
    capabilities: job::Capabilities,
}

/// `wire capabilities set`.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilitiesReport {
    /// What we now say we can do.
    pub capabilities: job::Capabilities,
    /// Peers it was sent to (queued for those offline).
    pub told: Vec<Face>,
    /// Rooms it was posted in.
    pub rooms: Vec<String>,
    /// Rooms it could not be posted in, and why.
    pub failed_rooms: Vec<(String, String)>,
}

/// An agent that can do a task, by its latest capability card: a paired peer, or a member
/// of one of our rooms (reached through a call for offers there).
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    /// The agent.
    pub peer: Face,
    /// Whether we are paired with it (else: offer the job as a call in one of `rooms`).
    pub paired: bool,
    /// The rooms where it posted the card.
    pub rooms: Vec<String>,
    /// Whether it takes jobs now.
    pub available: bool,
    /// Its price for the task.
    pub terms: Option<job::Terms>,
    /// Its note.
    pub note: Option<String>,
    /// When it said so.
    pub since: UnixMillis,
}

fn caps_key(did: &Did) -> String {
    did.as_str().trim_start_matches("did:key:").to_owned()
}

impl Endpoint {
    /// `wire capabilities set`: what we can do, sent to every peer that reads jobs.
    pub async fn capabilities_set(&self, available: bool, tasks: Vec<job::Capability>) -> Result<CapabilitiesReport> {
        let doc =
            job::Capabilities { v: 1, did: self.identity.did().clone(), available, tasks, created_at: self.home.now() };
        doc.check().map_err(|why| EndpointError::Job(why.into()))?;
        let mut told = Vec::new();
        {
            let _lock = self.home.lock()?;
            self.home.save_keyed(CAPS_DIR, "self", &doc)?;
            let peers = self.home.load::<Peers>()?.unwrap_or_default();
            for peer in peers.peers.iter().filter(|p| p.card.speaks(Kind::Job.as_str())) {
                let body = super::rooms::control(CAPABILITIES, &CapabilitiesMsg { capabilities: doc.clone() });
                let event = Event::new(
                    &self.identity,
                    peer.card.did().clone(),
                    Kind::Control,
                    body,
                    self.home.now(),
                    &mut OsRng,
                );
                if let Ok(mut item) = seal_for(&self.identity, peer, event)?.item(peer, self.home.now()) {
                    item.quiet = true;
                    self.home.queue(&item)?;
                    told.push(Face::of(peer.card.did()));
                }
            }
        }
        self.flush().await?;
        let failed_rooms = self.post_card_in_rooms(&doc).await;
        let rooms = self
            .rooms()?
            .into_iter()
            .filter(|r| r.standing == crate::room::Standing::Active && !failed_rooms.iter().any(|(n, _)| *n == r.name))
            .map(|r| r.name)
            .collect();
        Ok(CapabilitiesReport { capabilities: doc, told, rooms, failed_rooms })
    }

    /// A peer's capability card (from a control message, its event verified): kept if it
    /// is the peer's own and newer than what we hold. Hold the lock.
    pub(crate) fn take_capabilities(
        &self,
        sender: &Did,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<(), String> {
        let doc = serde_json::from_value::<CapabilitiesMsg>(serde_json::Value::Object(fields.clone()))
            .map_err(|e| format!("a malformed capabilities message: {e}"))?
            .capabilities;
        if &doc.did != sender {
            return Err("another agent's capability card".into());
        }
        doc.check()?;
        let held: Vec<job::Capabilities> = self.home.load_keyed(CAPS_DIR).map_err(|e| e.to_string())?;
        if held.iter().any(|h| &h.did == sender && h.created_at >= doc.created_at) {
            return Ok(());
        }
        self.home.save_keyed(CAPS_DIR, &caps_key(sender), &doc).map_err(|e| e.to_string())
    }

    /// `wire job providers`: the paired peers and room members whose latest capability
    /// card lists `task`, available ones first.
    pub fn providers(&self, task: &str) -> Result<Vec<ProviderView>> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let names: Vec<(String, String)> = self.rooms()?.into_iter().map(|r| (r.id, r.name)).collect();
        let mut cards: Vec<(job::Capabilities, Option<String>)> = Vec::new();
        for c in self.home.load_keyed::<job::Capabilities>(CAPS_DIR)? {
            if peers.get(&c.did).is_some() {
                cards.push((c, None));
            }
        }
        for rc in self.room_cards()? {
            let room = names.iter().find(|(id, _)| *id == rc.room.as_str()).map(|(_, n)| n.clone());
            if room.is_some() && &rc.card.did != self.identity.did() {
                cards.push((rc.card, room));
            }
        }
        // The newest card of each agent counts; the rooms it was seen in are listed.
        cards.sort_by_key(|(c, _)| std::cmp::Reverse(c.created_at));
        let (mut out, mut decided): (Vec<ProviderView>, Vec<Did>) = (Vec::new(), Vec::new());
        for (c, room) in cards {
            if let Some(seen) = out.iter_mut().find(|p| p.peer.did == c.did.as_str()) {
                seen.rooms.extend(room);
                continue;
            }
            if decided.contains(&c.did) {
                continue;
            }
            decided.push(c.did.clone());
            // Only its newest card counts: if that one does not list the task, it is not offered.
            let Some(t) = c.tasks.iter().find(|t| t.task == task) else { continue };
            out.push(ProviderView {
                peer: Face::of(&c.did),
                paired: peers.get(&c.did).is_some(),
                rooms: room.into_iter().collect(),
                available: c.available,
                terms: t.terms.clone(),
                note: t.note.clone(),
                since: c.created_at,
            });
        }
        for p in &mut out {
            p.rooms.sort();
            p.rooms.dedup();
        }
        out.sort_by_key(|p| (!p.available, !p.paired, p.peer.nickname.clone()));
        Ok(out)
    }
}

impl Endpoint {
    /// A `reject` of `offer` with `reason`, logged as sent and queued (the receive path
    /// posts it with the batch's other answers).
    pub(crate) fn budget_reject(&self, peer: &crate::home::Peer, offer: &Entry, reason: String) -> Result<OutboxItem> {
        let body =
            JobEvent { job: offer.event.job, prev: vec![offer.hash], step: Step::Reject { reason: Some(reason) } };
        self.queued_job_step(peer, body)
    }

    /// A job step to `peer`, signed, logged as sent and returned to be queued. Hold the lock.
    pub(crate) fn queued_job_step(&self, peer: &crate::home::Peer, body: JobEvent) -> Result<OutboxItem> {
        let value = serde_json::to_value(&body).expect("job events serialize");
        let event = Event::new(&self.identity, peer.card.did().clone(), Kind::Job, value, self.home.now(), &mut OsRng);
        let mut item = seal_for(&self.identity, peer, event.clone())?.item(peer, self.home.now())?;
        item.logged = true;
        self.home.record_sent(peer.card.did(), &[SentRecord::Sent { event, at: self.home.now(), queued: true }])?;
        Ok(item)
    }

    /// The entry of a job event line (for the receive path).
    pub(crate) fn job_entry(line: &InboxLine) -> Option<Entry> {
        entry(&line.event, &line.signed.payload)
    }
}
