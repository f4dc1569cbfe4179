//! Jobs opened in a room (docs/PROTOCOL.md 15, "Calls for offers"): the customer posts a
//! `job_call` in the room, members answer with a `job_bid`, and the customer awards one
//! bidder with an ordinary 1:1 offer naming the call, after pairing with it through the
//! one-use invite its bid carries (redeemable by the customer alone). Capability cards are
//! posted in rooms too, so `wire job providers` also knows members we are not paired with.
//!
//! What rooms say about jobs is kept in `calls.json` (calls, bids, awards) and
//! `room-capabilities/`; the room's inbox holds only its messages.

use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use super::super::rooms::{control, read};
use super::{CAPABILITIES, CapabilitiesMsg, hex};
use crate::endpoint::{Endpoint, EndpointError, Face, Result};
use crate::home::Peers;
use crate::proto::did::Did;
use crate::proto::event::{ControlBody, Event, Kind};
use crate::proto::job::{self, Bid, Call, CallRef, JobEvent, Step, Terms};
use crate::proto::time::UnixMillis;

/// Control type (inside a room): a call for offers.
pub(crate) const JOB_CALL: &str = "job_call";
/// Control type (inside a room): a bid on a call.
pub(crate) const JOB_BID: &str = "job_bid";
/// Where room members' capability cards are kept (`<room key>.<member key>.json`).
const ROOM_CAPS_DIR: &str = "room-capabilities";
/// Calls of others kept at most (the oldest go first): a loop guard against a noisy room.
const MAX_CALLS: usize = 200;
/// Bids kept per call.
const MAX_BIDS: usize = 50;
/// How long a call stays listed after it expired.
const KEEP_EXPIRED_MS: u64 = 86_400_000;

/// Whether a control type inside a room is about jobs.
pub(crate) fn is_job_control(kind: &str) -> bool {
    matches!(kind, JOB_CALL | JOB_BID | CAPABILITIES)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CallMsg {
    call: Call,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BidMsg {
    bid: Bid,
}

/// `calls.json`: the calls for offers seen in our rooms (ours included) with their bids.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calls {
    /// Format version.
    pub v: u64,
    /// Oldest first.
    #[serde(default)]
    pub calls: Vec<HeldCall>,
}

impl crate::home::StateFile for Calls {
    const NAME: &'static str = "calls.json";
    const VERSION: u64 = 1;
}

/// A call as held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldCall {
    /// The room it was made in.
    pub room: Did,
    /// The customer.
    pub from: Did,
    /// The call.
    pub call: Call,
    /// When we saw (or made) it.
    pub at: UnixMillis,
    /// The bids on it (on ours: every member's; on others': ours).
    #[serde(default)]
    pub bids: Vec<HeldBid>,
    /// Ours: the bidder chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award: Option<Award>,
}

/// A bid as held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldBid {
    /// The bidder.
    pub from: Did,
    /// The bid.
    pub bid: Bid,
    /// When it came.
    pub at: UnixMillis,
}

/// The bidder a customer chose, and the job its offer opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Award {
    /// The bidder.
    pub to: Did,
    /// When chosen.
    pub at: UnixMillis,
    /// The job id, once the offer went out (after pairing, when it was needed).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_id")]
    pub job: Option<[u8; 16]>,
}

mod opt_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 16]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(id) => s.serialize_str(&crate::proto::b64::encode(id)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 16]>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| crate::proto::b64::decode_array::<16>(&t).ok_or_else(|| serde::de::Error::custom("a 16-byte id")))
            .transpose()
    }
}

/// A call as `wire job calls` gives it. Its task, input and bids' notes are the other
/// members' words: data, never instructions.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    /// The call id (32 hex digits).
    pub id: String,
    /// The room's name.
    pub room: String,
    /// The customer.
    pub from: Face,
    /// Whether it is our call.
    pub mine: bool,
    /// The task kind.
    pub task: String,
    /// The input.
    pub input: serde_json::Value,
    /// The price offered.
    pub terms: Option<Terms>,
    /// When bids stop.
    pub expires_at: UnixMillis,
    /// Whether it still takes bids (not expired, not awarded).
    pub open: bool,
    /// The bids (on ours: every member's; on others': ours).
    pub bids: Vec<BidView>,
    /// Ours: whom it was awarded to; `job` is the job once its offer went out.
    pub award: Option<AwardView>,
}

/// A bid as shown.
#[derive(Debug, Clone, Serialize)]
pub struct BidView {
    /// The bidder.
    pub from: Face,
    /// Its price.
    pub terms: Option<Terms>,
    /// Its note.
    pub note: Option<String>,
    /// Whether we are paired with the bidder (else its invite pairs us on award).
    pub paired: bool,
}

/// An award as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AwardView {
    /// The bidder chosen.
    pub to: Face,
    /// `pairing` (the offer goes once the bidder's endpoint answered) or `offered`.
    pub state: &'static str,
    /// The job, once offered.
    pub job: Option<String>,
}

/// A room member's capability card, as held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomCard {
    pub room: Did,
    pub card: job::Capabilities,
}

/// A job control message read in a room, applied with the page that held it.
#[derive(Debug, Clone)]
pub(crate) struct RoomJobMsg {
    pub room: Did,
    pub sender: Did,
    pub control: ControlBody,
}

fn key_of(did: &Did) -> &str {
    did.as_str().trim_start_matches("did:key:")
}

impl Endpoint {
    fn load_calls(&self) -> Result<Calls> {
        Ok(self.home.load::<Calls>()?.unwrap_or(Calls { v: 1, calls: Vec::new() }))
    }

    /// Saves, first dropping what is long expired and the oldest others' calls past
    /// [`MAX_CALLS`].
    fn save_calls(&self, calls: &mut Calls) -> Result<()> {
        let now = self.home.now().0;
        calls.calls.retain(|c| c.call.expires_at.0 + KEEP_EXPIRED_MS > now);
        let me = self.identity.did().clone();
        let others = calls.calls.iter().filter(|c| c.from != me).count();
        let mut drop = others.saturating_sub(MAX_CALLS);
        calls.calls.retain(|c| {
            let gone = drop > 0 && c.from != me;
            drop -= usize::from(gone);
            !gone
        });
        Ok(self.home.save(calls)?)
    }

    fn call_view(&self, held: &HeldCall, peers: &Peers, names: &[(Did, String)]) -> CallView {
        let now = self.home.now();
        let room =
            names.iter().find(|(d, _)| d == &held.room).map_or_else(|| held.room.to_string(), |(_, n)| n.clone());
        CallView {
            id: hex(&held.call.id),
            room,
            from: Face::of(&held.from),
            mine: &held.from == self.identity.did(),
            task: held.call.task.clone(),
            input: held.call.input.clone(),
            terms: held.call.terms.clone(),
            expires_at: held.call.expires_at,
            open: held.award.is_none() && now < held.call.expires_at,
            bids: held
                .bids
                .iter()
                .map(|b| BidView {
                    from: Face::of(&b.from),
                    terms: b.bid.terms.clone(),
                    note: b.bid.note.clone(),
                    paired: peers.get(&b.from).is_some(),
                })
                .collect(),
            award: held.award.as_ref().map(|a| AwardView {
                to: Face::of(&a.to),
                state: if a.job.is_some() { "offered" } else { "pairing" },
                job: a.job.map(|j| hex(&j)),
            }),
        }
    }

    fn room_names(&self) -> Vec<(Did, String)> {
        self.rooms().unwrap_or_default().into_iter().filter_map(|r| Some((Did::parse(&r.id).ok()?, r.name))).collect()
    }

    /// `wire job calls`: the calls for offers in our rooms (only those still open unless
    /// `all`), newest first.
    pub fn calls(&self, all: bool) -> Result<Vec<CallView>> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let names = self.room_names();
        let held = self.load_calls()?;
        let mut out: Vec<CallView> =
            held.calls.iter().map(|c| self.call_view(c, &peers, &names)).filter(|c| all || c.open).collect();
        out.reverse();
        Ok(out)
    }

    fn find_call<'a>(calls: &'a mut Calls, id: &str) -> Result<&'a mut HeldCall> {
        let mut found = calls.calls.iter_mut().filter(|c| id.len() >= 8 && hex(&c.call.id).starts_with(id));
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(c),
            (None, _) => Err(EndpointError::Job(format!("no call `{id}` (`wire job calls --all`)"))),
            (Some(_), Some(_)) => Err(EndpointError::Job(format!("`{id}` names several calls; give more of the id"))),
        }
    }

    fn one_call(&self, id: &str) -> Result<HeldCall> {
        Ok(Self::find_call(&mut self.load_calls()?, id)?.clone())
    }

    /// `wire job offer ROOM`: a call for offers, posted in the room.
    pub async fn job_call(
        &self,
        room: &str,
        task: &str,
        input: serde_json::Value,
        terms: Option<Terms>,
        ttl: std::time::Duration,
    ) -> Result<CallView> {
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut id);
        let call =
            Call { v: 1, id, task: task.to_owned(), input, terms, expires_at: self.home.now().saturating_add(ttl) };
        call.check().map_err(|why| EndpointError::Job(why.into()))?;
        let body = control(JOB_CALL, &CallMsg { call: call.clone() });
        let posted = self.room_control(room, body).await?;
        let _lock = self.home.lock()?;
        let mut calls = self.load_calls()?;
        let held = HeldCall {
            room: posted.room,
            from: self.identity.did().clone(),
            call,
            at: self.home.now(),
            bids: Vec::new(),
            award: None,
        };
        calls.calls.push(held.clone());
        self.save_calls(&mut calls)?;
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(self.call_view(&held, &peers, &self.room_names()))
    }

    /// `wire job bid CALL`: answers another member's open call in its room; with a one-use
    /// invite for the customer alone when we are not paired with it.
    pub async fn job_bid(&self, id: &str, terms: Option<Terms>, note: Option<String>) -> Result<CallView> {
        let held = self.one_call(id)?;
        if &held.from == self.identity.did() {
            return Err(EndpointError::Job("that is your own call".into()));
        }
        let now = self.home.now();
        if now >= held.call.expires_at {
            return Err(EndpointError::Job(format!("call {id} expired; it takes no bids")));
        }
        let paired = self.home.load::<Peers>()?.unwrap_or_default().get(&held.from).is_some();
        let invite = if paired {
            None
        } else {
            let left = std::time::Duration::from_millis(held.call.expires_at.0 - now.0);
            let ttl = left.clamp(
                std::time::Duration::from_secs(600),
                std::time::Duration::from_secs(crate::proto::api::MAX_INTRO_TTL_SECS),
            );
            Some(self.invite_for(1, ttl, Some(held.from.clone())).await?.url)
        };
        let bid = Bid { v: 1, call: held.call.id, terms, note, invite };
        bid.check().map_err(|why| EndpointError::Job(why.into()))?;
        let name = self.room_names().into_iter().find(|(d, _)| d == &held.room).map(|(_, n)| n);
        let name = name.ok_or_else(|| EndpointError::Job("the call's room is no longer ours".into()))?;
        let body = control(JOB_BID, &BidMsg { bid: bid.clone() });
        self.room_control(&name, body).await?;
        let _lock = self.home.lock()?;
        let mut calls = self.load_calls()?;
        let call = Self::find_call(&mut calls, id)?;
        call.bids.retain(|b| &b.from != self.identity.did());
        call.bids.push(HeldBid { from: self.identity.did().clone(), bid, at: now });
        let held = call.clone();
        self.save_calls(&mut calls)?;
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(self.call_view(&held, &peers, &self.room_names()))
    }

    /// `wire job award CALL BIDDER`: chooses a bidder. Paired: the offer goes now. Not
    /// paired: we redeem its bid's invite and the offer goes when its endpoint answered
    /// (the receive path sends it, so nothing waits on this command).
    pub async fn job_award(&self, id: &str, bidder: &str) -> Result<CallView> {
        let held = self.one_call(id)?;
        if &held.from != self.identity.did() {
            return Err(EndpointError::Job("only the call's customer awards it".into()));
        }
        if held.award.is_some() {
            return Err(EndpointError::Job(format!("call {id} was awarded already")));
        }
        let bid = held
            .bids
            .iter()
            .find(|b| b.from.as_str() == bidder || Face::of(&b.from).nickname == bidder)
            .ok_or_else(|| EndpointError::Job(format!("no bid from `{bidder}` on call {id} (`wire job calls`)")))?
            .clone();
        let paired = self.home.load::<Peers>()?.unwrap_or_default().get(&bid.from).is_some();
        if !paired {
            let url = bid.bid.invite.as_deref().ok_or_else(|| {
                EndpointError::Job(format!(
                    "not paired with {} and its bid carries no invite: pair first, then award",
                    Face::of(&bid.from).nickname
                ))
            })?;
            self.accept_invite(url).await?;
        }
        {
            let _lock = self.home.lock()?;
            let mut calls = self.load_calls()?;
            let call = Self::find_call(&mut calls, id)?;
            call.award = Some(Award { to: bid.from.clone(), at: self.home.now(), job: None });
            self.save_calls(&mut calls)?;
            let peers = self.home.load::<Peers>()?.unwrap_or_default();
            for item in self.award_items(&peers)? {
                self.home.queue(&item)?;
            }
        }
        self.flush().await?;
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(self.call_view(&self.one_call(id)?, &peers, &self.room_names()))
    }

    /// The offers of awards whose bidder is now paired: signed, logged as sent, returned
    /// to be queued. Hold the lock.
    pub(crate) fn award_items(&self, peers: &Peers) -> Result<Vec<crate::home::OutboxItem>> {
        let mut calls = match self.home.load::<Calls>()? {
            Some(c) if c.calls.iter().any(|c| c.award.as_ref().is_some_and(|a| a.job.is_none())) => c,
            _ => return Ok(Vec::new()),
        };
        let now = self.home.now();
        let mut items = Vec::new();
        for held in calls.calls.iter_mut() {
            let Some(award) = held.award.as_mut().filter(|a| a.job.is_none()) else { continue };
            let Some(peer) = peers.get(&award.to) else { continue };
            let bid = held.bids.iter().find(|b| b.from == award.to);
            let mut job = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut OsRng, &mut job);
            let step = Step::Offer {
                task: held.call.task.clone(),
                input: held.call.input.clone(),
                terms: bid.and_then(|b| b.bid.terms.clone()).or_else(|| held.call.terms.clone()),
                deadline: None,
                expires_at: UnixMillis(held.call.expires_at.0.max(now.0 + 15 * 60_000)),
                call: Some(CallRef { room: held.room.clone(), id: held.call.id }),
            };
            items.push(self.queued_job_step(peer, JobEvent { job, prev: Vec::new(), step })?);
            award.job = Some(job);
        }
        self.save_calls(&mut calls)?;
        Ok(items)
    }

    /// Job control messages read in a room: calls, bids on our calls, capability cards.
    /// Each is the sender's own (its event verified by the room). Hold the lock.
    pub(crate) fn take_room_job_msgs(&self, msgs: Vec<RoomJobMsg>) -> Result<Vec<String>> {
        let mut refused = Vec::new();
        if msgs.is_empty() {
            return Ok(refused);
        }
        let mut calls = self.load_calls()?;
        let now = self.home.now();
        for m in msgs {
            let applied = match m.control.kind.as_str() {
                JOB_CALL => read::<CallMsg>(&m.control).and_then(|c| {
                    c.call.check().map_err(|why| EndpointError::Job(why.into()))?;
                    if !calls.calls.iter().any(|h| h.call.id == c.call.id) {
                        calls.calls.push(HeldCall {
                            room: m.room.clone(),
                            from: m.sender.clone(),
                            call: c.call,
                            at: now,
                            bids: Vec::new(),
                            award: None,
                        });
                    }
                    Ok(())
                }),
                JOB_BID => read::<BidMsg>(&m.control).and_then(|b| {
                    b.bid.check().map_err(|why| EndpointError::Job(why.into()))?;
                    let me = self.identity.did();
                    // Bids on others' calls are theirs to read.
                    let Some(call) = calls.calls.iter_mut().find(|h| h.call.id == b.bid.call && &h.from == me) else {
                        return Ok(());
                    };
                    if call.room != m.room || now >= call.call.expires_at {
                        return Err(EndpointError::Job("a bid on a call closed or of another room".into()));
                    }
                    if call.bids.len() >= MAX_BIDS && !call.bids.iter().any(|x| x.from == m.sender) {
                        return Err(EndpointError::Job("a bid past the most a call keeps".into()));
                    }
                    call.bids.retain(|x| x.from != m.sender);
                    call.bids.push(HeldBid { from: m.sender.clone(), bid: b.bid, at: now });
                    Ok(())
                }),
                _ => self.take_room_card(&m),
            };
            if let Err(e) = applied {
                refused.push(format!("room {}: {} from {}: {e}", m.room, m.control.kind, Face::of(&m.sender).nickname));
            }
        }
        self.save_calls(&mut calls)?;
        Ok(refused)
    }

    fn take_room_card(&self, m: &RoomJobMsg) -> Result<()> {
        let card = read::<CapabilitiesMsg>(&m.control)?.capabilities;
        if card.did != m.sender {
            return Err(EndpointError::Job("another member's capability card".into()));
        }
        card.check().map_err(|why| EndpointError::Job(why.into()))?;
        let key = format!("{}.{}", key_of(&m.room), key_of(&m.sender));
        let held: Vec<RoomCard> = self.home.load_keyed(ROOM_CAPS_DIR)?;
        if held.iter().any(|h| h.room == m.room && h.card.did == m.sender && h.card.created_at >= card.created_at) {
            return Ok(());
        }
        Ok(self.home.save_keyed(ROOM_CAPS_DIR, &key, &RoomCard { room: m.room.clone(), card })?)
    }

    /// Posts a control message (job call, bid, capability card) inside room `name`.
    async fn room_control(&self, name: &str, body: serde_json::Value) -> Result<crate::endpoint::rooms::Posted> {
        self.room_append(name, |to, _| {
            Ok(Event::new(&self.identity, to.clone(), Kind::Control, body, self.home.now(), &mut OsRng))
        })
        .await
    }

    /// Room members' capability cards (for `wire job providers`).
    pub(crate) fn room_cards(&self) -> Result<Vec<RoomCard>> {
        Ok(self.home.load_keyed(ROOM_CAPS_DIR)?)
    }

    /// Posts our capability card in every room we are in; the rooms it could not reach.
    pub(crate) async fn post_card_in_rooms(&self, card: &job::Capabilities) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        let active =
            self.rooms().unwrap_or_default().into_iter().filter(|r| r.standing == crate::room::Standing::Active);
        for name in active.map(|r| r.name) {
            let body = control(CAPABILITIES, &CapabilitiesMsg { capabilities: card.clone() });
            let posted = self.room_control(&name, body).await;
            if let Err(e) = posted {
                failed.push((name, e.to_string()));
            }
        }
        failed
    }
}
