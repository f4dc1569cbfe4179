//! Same-machine sessions: direct pairing (tier LOCAL), roles, broadcast and routing.
//!
//! Two sessions of one OS user can read each other's homes, so the filesystem is the trust
//! anchor: `pair_local` pins each card in the other home directly, with a send grant minted
//! on each slot, and no pairing messages cross the relay.

use std::time::Duration;

use serde::Serialize;

use super::{Endpoint, EndpointError, Face, Result, seal_for};
use crate::home::{Peers, SentRecord};
use crate::proto::did::Did;
use crate::proto::event::{Event, Kind};
use crate::proto::pairing::{Paired, Tier};
use crate::session::Sessions;

/// Checks a role name: 1-32 lowercase letters, digits, `-` or `_`.
pub fn valid_role(role: &str) -> Result<()> {
    let ok = (1..=32).contains(&role.len())
        && role.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if ok { Ok(()) } else { Err(EndpointError::BadRole(role.chars().take(40).collect())) }
}

/// Pairs two sessions directly (tier LOCAL). Returns false when they already were.
pub async fn pair_local(a: &Endpoint, b: &Endpoint) -> Result<bool> {
    if a.identity.did() == b.identity.did() {
        return Ok(false);
    }
    // Two locks, always taken in path order, so two concurrent runs cannot deadlock.
    let (first, second) = if a.home.root() <= b.home.root() { (a, b) } else { (b, a) };
    let _l1 = first.home.lock()?;
    let _l2 = second.home.lock()?;
    let (account_a, account_b) = (a.account()?, b.account()?);
    let mut peers_a = a.home.load::<Peers>()?.unwrap_or(Peers { v: 1, ..Peers::default() });
    let mut peers_b = b.home.load::<Peers>()?.unwrap_or(Peers { v: 1, ..Peers::default() });
    if peers_a.get(b.identity.did()).is_some() && peers_b.get(a.identity.did()).is_some() {
        return Ok(false);
    }
    // Half-paired (one side forgot): start both directions afresh.
    for (me, account, peers, other) in [(a, &account_a, &peers_a, b), (b, &account_b, &peers_b, a)] {
        if let Some(grant) = peers.get(other.identity.did()).and_then(|p| p.our_grant.clone()) {
            let _ = me.our_client(account)?.revoke(&account.slot, &account.owner_token, &grant).await;
        }
    }
    let grant_a = a.mint_send_grant(&account_a).await?;
    let grant_b = b.mint_send_grant(&account_b).await?;
    let at = a.home.now();
    let extras_b = b.our_extras(&account_b, &grant_b.grant_id).await?;
    let extras_a = a.our_extras(&account_a, &grant_a.grant_id).await?;
    let paired_b =
        Paired { card: account_b.card.clone(), send_token: grant_b.token, tier: Tier::Local, extras: extras_b };
    let paired_a =
        Paired { card: account_a.card.clone(), send_token: grant_a.token, tier: Tier::Local, extras: extras_a };
    super::pin(&mut peers_a, paired_b, Some(grant_a.grant_id), at, false);
    super::pin(&mut peers_b, paired_a, Some(grant_b.grant_id), at, false);
    a.home.save(&peers_a)?;
    b.home.save(&peers_b)?;
    Ok(true)
}

/// One recipient's outcome in a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastVerdict {
    /// Its relay stored it (only a signed receipt says it was delivered: `wire sent`).
    Sent,
    /// It did not go out (see `error`).
    Failed,
}

/// One recipient's outcome in a broadcast.
#[derive(Debug, Serialize)]
pub struct Delivery {
    /// The recipient.
    pub to: Face,
    /// Delivered or failed.
    pub verdict: BroadcastVerdict,
    /// The relay address that carried it.
    pub via: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Endpoint {
    /// Sets (or with `None` clears) our mesh role.
    pub fn set_role(&self, role: Option<&str>) -> Result<Option<String>> {
        if let Some(r) = role {
            valid_role(r)?;
        }
        let _lock = self.home.lock()?;
        let mut account = self.account()?;
        account.role = role.map(str::to_owned);
        self.home.save(&account)?;
        Ok(account.role)
    }

    /// Sends one event to each LOCAL peer (sister sessions), or to those in `only`. Every
    /// recipient gets its own verdict; one failure does not stop the others.
    pub async fn broadcast(&self, kind: &str, body: serde_json::Value, only: Option<&[Did]>) -> Result<Vec<Delivery>> {
        let kind: Kind = kind.parse()?;
        if kind.is_protocol() {
            return Err(EndpointError::ProtocolKind(kind));
        }
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut out = Vec::new();
        for peer in peers.peers.iter().filter(|p| p.tier == Tier::Local) {
            if only.is_some_and(|only| !only.contains(peer.card.did())) {
                continue;
            }
            let event = Event::new(
                &self.identity,
                peer.card.did().clone(),
                kind,
                body.clone(),
                self.home.now(),
                &mut rand_core::OsRng,
            );
            let to = Face::of(peer.card.did());
            let record = SentRecord::Sent { event: event.clone(), at: self.home.now(), queued: false };
            let sent = match seal_for(&self.identity, peer, event) {
                Ok(sealed) => match super::deliver_sealed(peer, &sealed).await {
                    Ok(Some(done)) => Ok(done),
                    Ok(None) => Err(EndpointError::PrekeysStale(to.nickname.clone()).to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            let mut records = vec![record];
            if let (Err(reason), SentRecord::Sent { event, .. }) = (&sent, &records[0]) {
                records.push(SentRecord::Failed { id: event.id, at: self.home.now(), reason: reason.clone() });
            }
            self.home.record_sent(peer.card.did(), &records)?;
            out.push(match sent {
                Ok((_, via)) => Delivery { to, verdict: BroadcastVerdict::Sent, via: Some(via), error: None },
                Err(error) => Delivery { to, verdict: BroadcastVerdict::Failed, via: None, error: Some(error) },
            });
        }
        Ok(out)
    }
}

/// One session in `wire mesh status`.
#[derive(Debug, Serialize)]
pub struct MeshMember {
    /// Session name.
    pub session: String,
    /// Its face (absent until `wire init` ran in it).
    pub face: Option<Face>,
    /// Its role.
    pub role: Option<String>,
    /// Sister sessions it has pinned.
    pub paired_with: Vec<String>,
    /// Sister sessions it has not.
    pub not_paired_with: Vec<String>,
    /// The latest time any sister received an event from it.
    pub last_heard: Option<crate::proto::time::UnixMillis>,
    /// Nothing heard from it within the window (a session made within the window and not
    /// heard yet is `new` instead).
    pub silent: bool,
    /// Made within the window and not heard from yet.
    pub new: bool,
}

/// `wire mesh status`: every session, who it is paired with, and who has gone silent.
pub fn mesh_status(sessions: &Sessions, silent_after: Duration) -> Result<Vec<MeshMember>> {
    let mut members: Vec<(String, Option<Endpoint>)> = Vec::new();
    for name in sessions.names()? {
        let home = sessions.home(&name)?;
        members.push((name, Endpoint::open(home).ok()));
    }
    let pinned: Vec<Peers> = members
        .iter()
        .map(|(_, e)| e.as_ref().and_then(|e| e.home.load::<Peers>().ok().flatten()).unwrap_or_default())
        .collect();
    let cutoff = crate::clock::from_env().now().0.saturating_sub(silent_after.as_millis() as u64);
    Ok(members
        .iter()
        .enumerate()
        .map(|(i, (name, ep))| {
            let did = ep.as_ref().map(|e| e.identity.did().clone());
            let mut paired_with = Vec::new();
            let mut not_paired_with = Vec::new();
            let mut last_heard = None;
            for (j, (other, other_ep)) in members.iter().enumerate() {
                if i == j || other_ep.is_none() {
                    continue;
                }
                let other_did = other_ep.as_ref().map(|e| e.identity.did().clone());
                match other_did.and_then(|d| pinned[i].get(&d).map(|_| ())) {
                    Some(()) => paired_with.push(other.clone()),
                    None => not_paired_with.push(other.clone()),
                }
                if let Some(heard) = did.as_ref().and_then(|d| pinned[j].get(d)).and_then(|p| p.last_contact) {
                    last_heard = last_heard.max(Some(heard));
                }
            }
            let made = ep.as_ref().and_then(|e| e.account().ok()).map(|a| a.card.body().created_at);
            let new = last_heard.is_none() && made.is_some_and(|t| t.0 >= cutoff);
            MeshMember {
                session: name.clone(),
                face: did.as_ref().map(Face::of),
                role: ep.as_ref().and_then(|e| e.account().ok()).and_then(|a| a.role),
                paired_with,
                not_paired_with,
                silent: !new && last_heard.is_none_or(|t| t.0 < cutoff),
                new,
                last_heard,
            }
        })
        .collect())
}

/// The DIDs of sessions whose role is `role`.
pub fn sessions_with_role(sessions: &Sessions, role: &str) -> Result<Vec<Did>> {
    valid_role(role)?;
    let mut out = Vec::new();
    for name in sessions.names()? {
        let home = sessions.home(&name)?;
        if let Ok(ep) = Endpoint::open(home)
            && ep.account()?.role.as_deref() == Some(role)
        {
            out.push(ep.identity.did().clone());
        }
    }
    Ok(out)
}
