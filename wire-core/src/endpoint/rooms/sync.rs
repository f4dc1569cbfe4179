//! The room side of rooms: reading a room slot, applying what it holds (messages, commits,
//! proposals) in slot order, and the commits, Welcomes and revocations our work needs.
//! Every page is applied as inbox lines first, then the rooms file (MLS state and cursor in
//! one atomic write), so a crash anywhere replays at most a page, whose repeats are dropped.

use rand_core::OsRng;
use sha2::{Digest, Sha256};

use super::{PAGE, POLICY, RoomSyncReport, WELCOME, control, failpoint, room_client, room_err};
use crate::client::ClientError;
use crate::endpoint::jobs::RoomJobMsg;
use crate::endpoint::{Endpoint, Face, Result};
use crate::home::{InboxLine, Peers};
use crate::proto::api::{ErrorCode, GrantKind, GrantRequest};
use crate::proto::did::Did;
use crate::proto::event::{Acceptance, SignedEvent};
use crate::proto::signed::Signed;
use crate::room::mls::{self, Incoming, Provider};
use crate::room::{self, PendingCommit, Policy, Room, Standing};

impl Endpoint {
    /// Syncs each active room (or `only`) and takes the next step of its work. Hold the lock.
    pub(crate) async fn step_rooms(&self, only: Option<&str>, report: &mut RoomSyncReport) -> Result<()> {
        let loaded = self.load_rooms()?;
        let ids: Vec<(Did, String)> = loaded
            .file
            .rooms
            .iter()
            .filter(|r| r.standing == Standing::Active && only.is_none_or(|n| r.named(n)))
            .map(|r| (r.id.clone(), r.policy().name))
            .collect();
        drop(loaded);
        for (id, name) in ids {
            if let Err(e) = self.step_room(&id, report).await {
                report.failing.push((name, e.to_string()));
                if only.is_some() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One room: read what is new; send what is due; commit waiting adds and removals and
    /// read the commit back (at most a few rounds: a commit that loses its epoch is made
    /// again in the next).
    async fn step_room(&self, id: &Did, report: &mut RoomSyncReport) -> Result<()> {
        for _round in 0..4 {
            // A commit saved before a crash goes out before we read: if another commit won
            // its epoch meanwhile, everyone skips it in slot order.
            self.post_commit(id).await?;
            self.read_room(id, report).await?;
            self.send_due(id, report).await?;
            if !self.commit_waiting(id).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads the room slot past our cursor and applies it, page by page: inbox lines
    /// first, then the rooms file (MLS state and cursor in one write).
    async fn read_room(&self, id: &Did, report: &mut RoomSyncReport) -> Result<()> {
        loop {
            let mut loaded = self.load_rooms()?;
            let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(()) };
            if room.standing != Standing::Active {
                return Ok(());
            }
            let client = room_client(room)?;
            let page = match client.list(&room.slot, &room.token, Some(room.cursor), PAGE).await {
                Ok(page) => page,
                Err(e @ ClientError::Api { code: ErrorCode::Forbidden, .. }) => {
                    // Our grant was revoked: we were removed (the commit may be evicted).
                    room.standing = Standing::Removed;
                    report.removed_from.push(room.policy().name);
                    self.save_rooms(&mut loaded)?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(missed) = page.missed {
                room.missed += missed;
                report.missed += missed;
            }
            let Some(last) = page.events.last().map(|e| e.seq) else { return Ok(()) };
            let mut group = mls::load(&loaded.provider, id.as_str().as_bytes())
                .map_err(room_err)?
                .ok_or_else(|| room_err("the room's group state is missing"))?;
            let (mut lines, mut jobs) = (Vec::new(), Vec::new());
            let recent = self.home.read_room_tail(id, 64)?;
            for stored in &page.events {
                let policy = room.policy();
                match self.apply_envelope(room, &mut group, &loaded.provider, stored, &mut jobs) {
                    Ok(Some(line)) => {
                        if over_rate(&policy, &line, recent.iter().chain(lines.iter())) {
                            room.refused += 1;
                            report.refused += 1;
                        } else {
                            lines.push(line);
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        room.refused += 1;
                        report.refused += 1;
                        self.home.reject(&crate::home::Rejected {
                            at: self.home.now(),
                            seq: stored.seq,
                            reason: format!("room {}: {reason}", policy.name),
                        })?;
                    }
                }
                if room.standing != Standing::Active {
                    report.removed_from.push(policy.name);
                    break;
                }
            }
            room.cursor = last;
            // A crash between the inbox and the rooms file replays the page: drop repeats.
            let seen: std::collections::HashSet<_> =
                self.home.read_room_tail(id, 2 * PAGE as usize)?.into_iter().map(|l| l.event.id).collect();
            lines.retain(|l| !seen.contains(&l.event.id));
            report.received += lines.len();
            // What the room said about jobs first: a replayed page repeats it harmlessly.
            for reason in self.take_room_job_msgs(jobs)? {
                report.refused += 1;
                self.home.reject(&crate::home::Rejected { at: self.home.now(), seq: 0, reason })?;
            }
            self.home.append_room_inbox(id, &lines)?;
            failpoint("room-after-inbox");
            self.save_rooms(&mut loaded)?;
            failpoint("room-after-state");
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Applies one room envelope; an inbox line for a message. `Err` is a refusal (recorded;
    /// the room goes on).
    fn apply_envelope(
        &self,
        room: &mut Room,
        group: &mut openmls::prelude::MlsGroup,
        provider: &Provider,
        stored: &crate::proto::api::StoredEnvelope,
        jobs: &mut Vec<RoomJobMsg>,
    ) -> std::result::Result<Option<InboxLine>, String> {
        let (seq, envelope) = (stored.seq, &stored.envelope);
        let hash: [u8; 32] = Sha256::digest(envelope).into();
        let policy = room.policy();
        let mls_bytes = room::unwrap(&room.wrap_key, envelope).ok_or("an envelope that does not open")?;
        // Our own commit, read back: merged if it is the first commit of its epoch.
        if let Some(commit) = room.commit.as_mut().filter(|c| c.hash == hash && c.merged_at.is_none()) {
            if mls::epoch(group) == commit.epoch && group.pending_commit().is_some() {
                mls::merge_own(group, provider).map_err(|e| e.to_string())?;
                // What the merge owes (Welcomes, revocations) is sent next.
                commit.merged_at = Some(seq);
                let (adds, removes) = (commit.adds.clone(), commit.removes.clone());
                room.adds.retain(|a| !adds.contains(&a.did));
                room.removes.retain(|d| !removes.contains(d));
                owe_revocations(room, &removes);
            } else {
                room.commit = None;
            }
            return Ok(None);
        }
        match mls::process(group, provider, &mls_bytes).map_err(|e| e.to_string())? {
            Incoming::Own | Incoming::OtherEpoch { .. } => Ok(None),
            Incoming::Application { sender, bytes } => {
                let signed: Signed = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                let event = SignedEvent::parse(signed).map_err(|e| e.to_string())?;
                if event.claimed_sender() != &sender {
                    return Err(format!(
                        "a message signed as another member than its sender ({})",
                        Face::of(&sender).nickname
                    ));
                }
                let key = mls::members(group)
                    .into_iter()
                    .find(|l| l.did == sender)
                    .and_then(|l| group.member_at(openmls::prelude::LeafNodeIndex::new(l.index)))
                    .and_then(|m| <[u8; 32]>::try_from(m.signature_key.as_slice()).ok())
                    .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                    .ok_or("a sender without a key in the roster")?;
                let rules = Acceptance::new(&room.id, self.home.now());
                let verified = event.verify_under(&key, &rules).map_err(|e| e.to_string())?;
                if let Some(control) = verified.control() {
                    // A newer policy signed by the room key (the owner's): roles, rules.
                    if crate::endpoint::jobs::is_job_control(&control.kind) && control.v == 1 {
                        // Calls for offers, bids, capability cards: applied with the page.
                        jobs.push(RoomJobMsg { room: room.id.clone(), sender, control });
                    } else if control.kind == POLICY && control.v == 1 {
                        let signed =
                            super::read::<room::msg::PolicyUpdate>(&control).map_err(|e| e.to_string())?.policy;
                        let newer = Policy::verify(&signed, &room.id).map_err(|e| e.to_string())?;
                        if newer.created_at > policy.created_at {
                            room.policy = signed;
                        }
                    }
                    return Ok(None);
                }
                if !policy.may_post(&sender) {
                    return Err(format!("{} may not post here (owner-only-write)", Face::of(&sender).nickname));
                }
                let line = InboxLine {
                    event: verified.event().clone(),
                    received_at: self.home.now(),
                    signed: verified.signed().clone(),
                };
                Ok(Some(line))
            }
            Incoming::Commit { sender, added, removed, removes_us, staged } => {
                let self_only = added.is_empty() && removed.iter().all(|d| d == &sender);
                if !policy.manages(&sender) && !self_only {
                    return Err(format!(
                        "a roster change by {}, who is not the owner or an admin (refused)",
                        Face::of(&sender).nickname
                    ));
                }
                if room.commit.as_ref().is_some_and(|c| c.merged_at.is_none()) {
                    // Ours lost the epoch: drop it; its work waits and is committed again.
                    room.commit = None;
                    mls::discard_own(group, provider).map_err(|e| e.to_string())?;
                }
                mls::merge(group, provider, *staged).map_err(|e| e.to_string())?;
                room.adds.retain(|a| !added.contains(&a.did));
                room.removes.retain(|d| !removed.contains(d));
                owe_revocations(room, &removed);
                if removes_us {
                    room.standing = Standing::Removed;
                }
                Ok(None)
            }
            Incoming::Proposal { sender, removes, .. } => {
                // A member leaving: its managers remove it with their next commit.
                if removes.as_ref() == Some(&sender)
                    && policy.manages(self.identity.did())
                    && !room.removes.contains(&sender)
                {
                    room.removes.push(sender);
                }
                Ok(None)
            }
        }
    }

    /// Sends what a merged commit of ours owes: a Welcome (with a member grant) to each
    /// member it added, a revocation for each it removed.
    async fn send_due(&self, id: &Did, report: &mut RoomSyncReport) -> Result<()> {
        let mut loaded = self.load_rooms()?;
        let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(()) };
        let client = room_client(room)?;
        // Removed members' grants, whoever committed the removal: revoked by whoever minted them.
        if !room.revoke.is_empty() {
            for grant_id in &room.revoke {
                match client.revoke(&room.slot, &room.token, grant_id).await {
                    Ok(_) | Err(ClientError::Api { code: ErrorCode::NotFound, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            room.revoke.clear();
            self.save_rooms(&mut loaded)?;
        }
        let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(()) };
        let Some((commit, after)) = room.commit.clone().and_then(|c| c.merged_at.map(|at| (c, at))) else {
            return Ok(());
        };
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut items = Vec::new();
        for did in &commit.adds {
            // A paired peer, or a member that joined by invite (the route its request gave).
            let routed = room.routes.iter().find(|r| &r.did == did).and_then(|r| {
                let card = crate::proto::card::Card::verify(r.card.clone()).ok()?;
                let mut peer = crate::home::Peer::new(
                    card,
                    r.token.clone(),
                    crate::proto::pairing::Tier::Tofu,
                    crate::proto::time::UnixMillis(0),
                );
                if let Some(bundle) = &r.prekeys {
                    let _ = crate::endpoint::prekeys::take_bundle(&mut peer, bundle);
                }
                Some(peer)
            });
            let Some(peer) = peers.get(did).or(routed.as_ref()) else { continue };
            let grant = match room.grants.iter().find(|(d, _)| d == did) {
                Some(_) => None,
                None => Some(
                    client
                        .grant(
                            &room.slot,
                            &room.token,
                            &GrantRequest { kind: GrantKind::Member, ttl_secs: None, uses: None },
                        )
                        .await?,
                ),
            };
            let Some(grant) = grant else { continue };
            room.grants.push((did.clone(), grant.grant_id.clone()));
            let welcome = room::msg::Welcome {
                room: room.id.clone(),
                policy: room.policy.clone(),
                relay: room.relay.clone(),
                slot: room.slot.clone(),
                token: grant.token,
                wrap_key: room.wrap_key,
                welcome: commit.welcome.clone().unwrap_or_default(),
                after,
            };
            let body = control(WELCOME, &welcome);
            items.push(self.control_item(peer, body)?);
        }
        room.commit = None;
        room.routes.retain(|r| !commit.adds.contains(&r.did));
        for item in &items {
            self.home.queue(item)?;
        }
        self.save_rooms(&mut loaded)?;
        if !items.is_empty() {
            let mut pull = crate::endpoint::PullReport::default();
            self.flush_outbox(&mut pull).await?;
        }
        report.welcomed += commit.adds.len();
        report.committed += 1;
        Ok(())
    }

    /// Commits waiting adds (with key packages) or removals, posts the commit and leaves it
    /// pending until it is read back. `true` when a commit is in flight.
    async fn commit_waiting(&self, id: &Did) -> Result<bool> {
        let mut loaded = self.load_rooms()?;
        let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(false) };
        if room.standing != Standing::Active {
            return Ok(false);
        }
        if room.commit.is_none() {
            if !room.policy().manages(self.identity.did()) {
                return Ok(false);
            }
            let mut group = mls::load(&loaded.provider, id.as_str().as_bytes())
                .map_err(room_err)?
                .ok_or_else(|| room_err("the room's group state is missing"))?;
            let roster = mls::members(&group);
            let leaves: Vec<_> = roster
                .iter()
                .filter(|l| room.removes.contains(&l.did))
                .map(|l| openmls::prelude::LeafNodeIndex::new(l.index))
                .collect();
            room.removes.retain(|d| roster.iter().any(|l| &l.did == d));
            let epoch = mls::epoch(&group);
            let (out, adds, removes) = if !leaves.is_empty() {
                let removes = room.removes.clone();
                (mls::remove(&mut group, &loaded.provider, &self.identity, &leaves).map_err(room_err)?, vec![], removes)
            } else {
                room.adds.retain(|a| !roster.iter().any(|l| l.did == a.did));
                let ready: Vec<(Did, Vec<u8>)> =
                    room.adds.iter().filter_map(|a| a.key_package.clone().map(|k| (a.did.clone(), k))).collect();
                if ready.is_empty() {
                    return Ok(false);
                }
                let mut kps = Vec::new();
                let mut adds = Vec::new();
                for (did, bytes) in ready {
                    match mls::read_key_package(&loaded.provider, &bytes) {
                        Ok((kp, _)) => {
                            kps.push(kp);
                            adds.push(did);
                        }
                        Err(_) => room.adds.retain(|a| a.did != did),
                    }
                }
                if kps.is_empty() {
                    self.save_rooms(&mut loaded)?;
                    return Ok(false);
                }
                (mls::add(&mut group, &loaded.provider, &self.identity, &kps).map_err(room_err)?, adds, vec![])
            };
            let envelope = room::wrap(&room.wrap_key, &out.commit, &mut OsRng)
                .ok_or_else(|| room_err("a commit too large for a room envelope"))?;
            room.commit = Some(PendingCommit {
                hash: Sha256::digest(&envelope).into(),
                envelope,
                posted: false,
                epoch,
                adds,
                removes,
                welcome: out.welcome,
                merged_at: None,
            });
            // Saved before the post: after a crash the same commit is posted again (the
            // relay keeps one copy by hash).
            self.save_rooms(&mut loaded)?;
            failpoint("room-commit-saved");
        }
        drop(loaded);
        self.post_commit(id).await
    }

    /// Posts our commit if it was saved and not posted (a crash before the post, or a relay
    /// that did not answer). `true` when a commit of ours is in flight.
    async fn post_commit(&self, id: &Did) -> Result<bool> {
        let mut loaded = self.load_rooms()?;
        let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(false) };
        let Some(commit) = room.commit.as_ref().filter(|c| c.merged_at.is_none()) else { return Ok(false) };
        if !commit.posted {
            room_client(room)?.append(&room.slot, &room.token, &commit.envelope).await?;
            room.commit.as_mut().expect("checked").posted = true;
            self.save_rooms(&mut loaded)?;
            failpoint("room-commit-posted");
        }
        Ok(true)
    }
}

/// Moves the grants of `removed` members we minted to the list to revoke.
fn owe_revocations(room: &mut Room, removed: &[Did]) {
    let (owed, kept): (Vec<_>, Vec<_>) = room.grants.drain(..).partition(|(d, _)| removed.contains(d));
    room.grants = kept;
    room.revoke.extend(owed.into_iter().map(|(_, g)| g));
}

/// Whether `line` is one post too many for its sender within a minute (the room's rate,
/// enforced by every receiver).
fn over_rate<'a>(policy: &Policy, line: &InboxLine, before: impl Iterator<Item = &'a InboxLine>) -> bool {
    let from = &line.event.from;
    let at = line.event.created_at.0;
    let recent = before
        .filter(|l| &l.event.from == from && l.event.created_at.0 <= at && l.event.created_at.0 + 60_000 > at)
        .count();
    recent >= policy.rate_per_minute as usize
}
