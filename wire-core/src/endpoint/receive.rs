//! The one receive path: `Endpoint::pull`. The CLI calls it directly; the daemon calls it
//! whenever its event stream says something arrived.
//!
//! Decide, then act. Each stored envelope is classified against one batch state (store this
//! line, pin this peer, queue this dial request, close, reject with a reason); a pairing
//! answer is built and *parked* in the outbox with the grant it carries. Then the inbox is
//! appended, the state and the outbox are saved and the relay is acked. Only then does any
//! post to a peer happen (the outbox flush), each with its outcome recorded on the item. A
//! peer, address or relay that fails therefore delays only its own item; it never stops
//! the envelopes after it, and it never makes the batch run (and mint) again.

use rand_core::OsRng;

use super::{Endpoint, EndpointError, Face, PullReport, Result, face_of_peer, pin};
use crate::client::{Client, ClientError, RelayUrl};
use crate::home::{Account, InboxLine, OutboxItem, Peers, Pending, ReceiptState, Rejected, SentRecord};
use crate::proto::api::{ErrorCode, Lane, StoredEnvelope};
use crate::proto::card::Card;
use crate::proto::did::Did;
use crate::proto::event::{Acceptance, ControlBody, EventError, EventId, Kind, SignedEvent};
use crate::proto::pairing::dial::DialAnswer;
use crate::proto::pairing::{IncomingRequest, receive_request};
use crate::proto::time::UnixMillis;

/// Envelopes read per batch (a page of the list, or what the stream delivered together).
const BATCH: usize = 200;
/// How many of a peer's newest inbox ids an ordinary pull checks for repeats. A repeat can
/// only come from a batch that was stored but not acked (a crash in between), or from a
/// sender's retry of a recent event, so this bounds the check without it growing with the
/// history; after the relay's store changed, the whole index is checked instead.
const DEDUPE_WINDOW: usize = 1024;
/// How far before a pin's `paired_at` a protocol event may be dated (the clock skew allowed
/// between two machines, as for event acceptance).
const REPLAY_SKEW_MS: u64 = 5 * 60 * 1000;

impl Endpoint {
    /// `wire pull`: delivers queued envelopes, then fetches, opens, verifies and appends
    /// everything waiting on our slot, answers pairing messages, and acks.
    pub async fn pull(&self) -> Result<PullReport> {
        self.receive_batches(None, true).await
    }

    /// Receives envelopes that arrived whole on our event stream, in order, without fetching
    /// them again (what the sync engine does on each wake). Those at or below our cursor are
    /// skipped (another process took them first). It only stores and acks: the caller tells
    /// its readers, then posts what the batch queued with [`Endpoint::flush`], so a reader
    /// waiting for the message does not wait for our receipts to go out.
    pub async fn pull_streamed(&self, streamed: Vec<StoredEnvelope>) -> Result<PullReport> {
        self.receive_batches(Some(streamed), false).await
    }

    /// Posts what the outbox holds that is due (each item on its own, as a pull does).
    pub async fn flush(&self) -> Result<PullReport> {
        let _lock = self.home.lock()?;
        let mut report = PullReport::default();
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        if !self.tell_lineage(&mut peers)?.is_empty() {
            self.home.save(&peers)?;
        }
        self.flush_outbox(&mut report).await?;
        Ok(report)
    }

    async fn receive_batches(&self, mut streamed: Option<Vec<StoredEnvelope>>, act: bool) -> Result<PullReport> {
        let _lock = self.home.lock()?;
        let mut report = PullReport::default();
        if act {
            self.flush_outbox(&mut report).await?;
        }
        let mut account = self.account()?;
        let mut peers = self.home.load::<Peers>()?.unwrap_or(Peers { v: 1, ..Peers::default() });
        let mut pending = self.home.load::<Pending>()?.unwrap_or(Pending { v: 1, ..Pending::default() });
        let mut later = After::default();
        let mut blocked = self.home.load::<super::Blocked>()?;
        let prekeys = self.prekey_secrets()?;
        let blocked_before = blocked.as_ref().map(|b| b.blocked.iter().map(|e| e.dropped).sum::<u64>());
        // Our mailbox first, then our spares and those we moved from (`wire move`), each on
        // its own: one that fails is reported and blocks nothing.
        let (mut first_failed, mut read) = (None, false);
        for which in 0..account.mailbox_count() {
            let streamed = if which == 0 { streamed.take() } else { None };
            let mut st = Reading {
                account: &mut account,
                peers: &mut peers,
                pending: &mut pending,
                later: &mut later,
                blocked: &mut blocked,
                blocked_before,
                prekeys: &prekeys,
            };
            match self.read_mailbox(which, streamed, &mut st, &mut report).await {
                Ok(()) => read |= which <= account.spares.len(),
                // With spares, our first mailbox failing blocks them no more than they block it.
                Err(e) if which == 0 && account.spares.is_empty() => return Err(e),
                Err(e) => {
                    report.mailbox_errors.push(format!("{}: {e}", account.mailbox(which).0));
                    if which == 0 {
                        first_failed = Some(e);
                    }
                }
            }
        }
        // Our first mailbox and every spare failed: the pull failed.
        if let (Some(e), false) = (first_failed, read) {
            return Err(e);
        }
        self.settle_moves(&later.answered).await?;
        let account = self.account()?;
        for did in later.due {
            for mut item in self.home.outbox()?.into_iter().filter(|i| i.to == did && i.not_before.is_some()) {
                item.not_before = None;
                self.home.queue(&item)?;
            }
        }
        // Act: revocations are courtesies to our own relay; answers go out with the outbox.
        let ours = self.our_client(&account)?;
        for grant in later.revoke {
            let _ = ours.revoke(&account.slot, &account.owner_token, &grant).await;
            self.revoke_spare_grants(&grant).await?;
        }
        if act {
            // Peers that follow lineages and have not heard our latest statement (a new
            // pairing, an upgrade, a rotation) get it with the outbox.
            let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
            if !self.tell_lineage(&mut peers)?.is_empty() {
                self.home.save(&peers)?;
            }
            self.flush_outbox(&mut report).await?;
            // Rooms after the 1:1 work: a failing room relay is reported, never blocks it.
            let mut rooms = std::mem::take(&mut report.rooms);
            self.step_rooms(None, &mut rooms).await?;
            report.rooms = rooms;
        }
        report.cursor = account.cursor;
        Ok(report)
    }

    /// Reads one of our mailboxes to its end (`which`: [`Account::mailbox`]), batch by batch: each batch is stored and its state saved before its ack.
    async fn read_mailbox(
        &self,
        which: usize,
        mut streamed: Option<Vec<StoredEnvelope>>,
        st: &mut Reading<'_>,
        report: &mut PullReport,
    ) -> Result<()> {
        let (relay, slot, owner, mut cursor, mut incarnation) = st.account.mailbox(which);
        let client = if which == 0 { self.our_client(st.account)? } else { Client::new(RelayUrl::parse(&relay)?) };
        let gone = |e: ClientError| match e.code() {
            Some(ErrorCode::NotFound) => EndpointError::SlotGone { relay: relay.clone() },
            _ => e.into(),
        };
        // Whether the relay's store is not the one our cursor counts in: then we read from
        // its floor and check repeats against the whole inbox.
        let mut rewound = false;
        // Whether the account changed without a batch saving it (a first incarnation).
        let mut unsaved = false;
        let mut done = false;
        while !done {
            let events: Vec<StoredEnvelope> = match streamed.take() {
                Some(batch) => {
                    done = true;
                    batch.into_iter().filter(|e| e.seq > cursor).collect()
                }
                None => {
                    let mut page = match client.list(&slot, &owner, Some(cursor), BATCH as u32).await {
                        // Our cursor is outside the slot's window: events expired unread, or
                        // the store lost data. Read from the floor.
                        Err(ClientError::Api { code: ErrorCode::CursorExpired, .. }) => {
                            rewound = true;
                            client.list(&slot, &owner, None, BATCH as u32).await.map_err(gone)?
                        }
                        other => other.map_err(gone)?,
                    };
                    if let Some(now) = page.incarnation.clone() {
                        if incarnation.as_ref().is_some_and(|seen| *seen != now) && !rewound {
                            rewound = true;
                            page = client.list(&slot, &owner, None, BATCH as u32).await.map_err(gone)?;
                        }
                        unsaved |= incarnation.as_ref() != Some(&now);
                        incarnation = Some(now);
                    }
                    done = !page.more;
                    page.events
                }
            };
            let Some(last) = events.last().map(|e| e.seq) else { break };
            let mut inbox: Vec<(Did, InboxLine)> = Vec::new();
            for stored in events {
                self.receive(
                    st.prekeys,
                    st.blocked.as_mut(),
                    stored.seq,
                    stored.lane,
                    &stored.envelope,
                    st.account,
                    st.peers,
                    st.pending,
                    &mut inbox,
                    st.later,
                    report,
                )
                .await?;
            }
            // Inbox first (fsynced), then state, then the relay ack: a crash anywhere in
            // between re-fetches the same envelopes, and the id check drops the repeats.
            let mut by_peer: std::collections::BTreeMap<Did, Vec<InboxLine>> = std::collections::BTreeMap::new();
            for (did, line) in inbox {
                by_peer.entry(did).or_default().push(line);
            }
            for (did, lines) in by_peer {
                let seen = if rewound {
                    self.home.inbox_ids(&did)?
                } else {
                    self.home.recent_inbox_ids(&did, DEDUPE_WINDOW)?
                };
                let mut fresh = Vec::new();
                for line in lines {
                    if seen.contains(&line.event.id) || fresh.iter().any(|l: &InboxLine| l.event.id == line.event.id) {
                        report.duplicates += 1;
                    } else {
                        fresh.push(line);
                    }
                }
                report.received += fresh.len();
                self.home.append_inbox(&did, &fresh)?;
                // Durably in the inbox: `delivered` receipts, parked with the batch.
                if let Some(peer) = st.peers.get(&did) {
                    st.later.parked.extend(self.receipts_for(
                        peer,
                        ReceiptState::Delivered,
                        &fresh.iter().collect::<Vec<_>>(),
                    )?);
                }
            }
            for (did, record) in st.later.receipts.drain(..) {
                self.home.record_sent(&did, &[record])?;
            }
            for (did, id) in st.later.seen.drain(..) {
                self.home.remember_protocol_ids(&did, &[id])?;
            }
            // Parked answers and their grants are state: written before the ack.
            for item in st.later.parked.drain(..) {
                self.home.queue(&item)?;
            }
            for (did, control) in st.later.capabilities.drain(..) {
                if let Err(why) = self.take_capabilities(&did, &control.fields) {
                    report.rejected += 1;
                    self.home.reject(&Rejected {
                        at: self.home.now(),
                        seq: 0,
                        reason: format!("capabilities: {why}"),
                    })?;
                }
            }
            for (did, id) in st.later.reintros.drain(..) {
                if let Some(item) = st.peers.get(&did).map(|p| self.reintro_ack(p, id)).transpose()?.flatten() {
                    self.home.queue(&item)?;
                }
            }
            for did in st.later.asks.drain(..) {
                if let Some(item) = st.peers.get(&did).map(|p| self.answer_ask(p)).transpose()?.flatten() {
                    self.home.queue(&item)?;
                }
            }
            if !st.later.pings.is_empty() || !st.later.pongs.is_empty() {
                self.take_pings(st.peers, &mut st.later.pings, &mut st.later.pongs)?;
            }
            // Room control messages change the rooms file and answer: also before the ack.
            for item in self.take_room_controls(std::mem::take(&mut st.later.rooms), st.peers, &mut report.rooms)? {
                self.home.queue(&item)?;
            }
            // A room call awarded to a bidder we just paired with: its offer goes now.
            for item in self.award_items(st.peers)? {
                self.home.queue(&item)?;
            }
            cursor = last;
            st.account.set_mailbox(which, cursor, incarnation.clone());
            if let Some(b) = &st.blocked
                && Some(b.blocked.iter().map(|e| e.dropped).sum::<u64>()) != st.blocked_before
            {
                self.home.save(b)?;
            }
            self.home.save(st.peers)?;
            self.home.save(st.pending)?;
            self.home.save(st.account)?;
            unsaved = false;
            client.ack(&slot, &owner, last).await.map_err(gone)?;
        }
        if which == 0 {
            report.reread = rewound;
        }
        if unsaved {
            st.account.set_mailbox(which, cursor, incarnation);
            self.home.save(st.account)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn receive(
        &self,
        prekeys: &[x25519_dalek::StaticSecret],
        blocked: Option<&mut super::Blocked>,
        seq: u64,
        lane: Lane,
        bytes: &[u8],
        account: &Account,
        peers: &mut Peers,
        pending: &mut Pending,
        inbox: &mut Vec<(Did, InboxLine)>,
        later: &mut After,
        report: &mut PullReport,
    ) -> Result<()> {
        let mut reject = |reason: String| -> Result<()> {
            report.rejected += 1;
            self.home.reject(&Rejected { at: self.home.now(), seq, reason })?;
            Ok(())
        };
        let Some(signed) = super::lineage::open_any(self, prekeys, bytes) else {
            return reject("could not open envelope (not sealed to us, or damaged)".into());
        };
        let event = match SignedEvent::parse(signed) {
            Ok(event) => event,
            Err(EventError::UnsupportedKind(unknown)) => {
                let pin = peers.get(&unknown.from).map(|p| p.pin());
                let pinned = pin.is_some();
                let key = pin
                    .and_then(|p| ed25519_dalek::VerifyingKey::from_bytes(&p.key).ok())
                    .unwrap_or_else(|| unknown.from.verifying_key());
                return match unknown.verify_under(&key, self.identity.did()) {
                    Ok(()) if pinned => {
                        report.unsupported += 1;
                        reject(format!("unsupported kind `{}` from a newer peer", unknown.kind))
                    }
                    Ok(()) => {
                        reject(format!("unsupported kind `{}` from a sender we have not paired with", unknown.kind))
                    }
                    Err(e) => reject(e.to_string()),
                };
            }
            Err(e) => return reject(format!("malformed event: {e}")),
        };
        let sender = event.claimed_sender().clone();
        // Blocked: dropped first, counted, never stored (a forgery in its name is dropped too).
        if blocked.is_some_and(|b| b.drops(&sender)) {
            report.blocked += 1;
            return Ok(());
        }
        if let Some(peer) = peers.peers.iter_mut().find(|p| p.card.did() == &sender) {
            let nick = Face::of(&sender).nickname;
            let mut pin = peer.pin();
            // A revocation may be signed long ago (kept offline), by any key the lineage held.
            if let Some(control) = event.claimed_control().filter(|c| c.kind == super::lineage::REVOCATION && c.v == 1)
            {
                let key = control
                    .fields
                    .get("statement")
                    .and_then(|s| serde_json::from_value::<crate::proto::lineage::SignedStatement>(s.clone()).ok())
                    .and_then(|s| s.statement().ok())
                    .map(|s| s.key)
                    .filter(|k| pin.held(k))
                    .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok());
                let Some(key) = key else { return reject(format!("revocation from {nick}: not signed by its keys")) };
                let rules = Acceptance { max_age: std::time::Duration::MAX, ..self.rules() };
                if let Err(e) = event.verify_under(&key, &rules) {
                    return reject(format!("revocation from {nick}: {e}"));
                }
                return match super::lineage::apply_revocation(&mut pin, &control.fields, self.home.now()) {
                    Ok(revoked) => {
                        peer.lineage = Some(pin);
                        if revoked {
                            report.revoked.push(Face::of(&sender));
                        }
                        Ok(())
                    }
                    Err(why) => reject(format!("revocation from {nick}: {why}")),
                };
            }
            if pin.standing != crate::proto::lineage::Standing::Active {
                return reject(format!("from {nick}: its identity is frozen or revoked"));
            }
            // A card update that carries a rotation is signed by the new key: the statements
            // in it (signed by the pinned key and the committed next one) name that key.
            let mut keys = vec![pin.key];
            let mut refused_statements = None;
            if event.claimed_kind() == Kind::CardUpdate {
                match super::lineage::announced_key(&pin, event.claimed_body(), self.home.now()) {
                    Ok(key) => keys.extend(key),
                    Err(why) => refused_statements = Some(why),
                }
            }
            let rules = self.rules();
            // The pinned key's verdict is the one reported when no key verifies.
            let mut verdict = Err(EventError::BadSignature);
            for (i, key) in keys.iter().filter_map(|k| ed25519_dalek::VerifyingKey::from_bytes(k).ok()).enumerate() {
                let attempt = event.clone().verify_under(&key, &rules);
                if attempt.is_ok() || i == 0 {
                    verdict = attempt;
                }
                if verdict.is_ok() {
                    break;
                }
            }
            let verified = match (verdict, refused_statements) {
                (Ok(v), _) => v,
                (Err(_), Some(why)) => return reject(format!("card update from {nick}: {why}")),
                (Err(e), None) => return reject(format!("from {nick}: {e}")),
            };
            peer.last_contact = Some(self.home.now());
            let e = verified.event();
            // Replay rules (docs/PROTOCOL.md, "Receiving"). A paired peer writes to the inbox
            // lane; only a re-introduction (its proof of freshness is a newer card) comes on
            // the intro lane, where a peer whose token died has to knock.
            let reintro =
                e.kind == Kind::Control && e.body.get("type").and_then(|t| t.as_str()) == Some(super::recover::REINTRO);
            if lane == Lane::Intro && !reintro {
                return reject(format!(
                    "`{}` from {nick} on the intro lane: a paired peer writes to its inbox (a replay?)",
                    e.kind
                ));
            }
            if e.kind.is_protocol() {
                // Protocol events older than this pairing belong to an earlier one.
                let floor = UnixMillis(peer.paired_at.0.saturating_sub(REPLAY_SKEW_MS));
                if e.created_at < floor {
                    return reject(format!("`{}` from {nick} dated before this pairing (a replay)", e.kind));
                }
                let seen = |id| later.seen.iter().any(|(d, i)| d == &sender && *i == id);
                if seen(e.id) || self.home.protocol_ids(&sender)?.contains(&e.id) {
                    report.duplicates += 1;
                    return Ok(());
                }
                later.seen.push((sender.clone(), e.id));
            }
            match e.kind {
                Kind::Close => {
                    let peer = peer.clone();
                    later.revoke.extend(peer.our_grant.clone());
                    peers.peers.retain(|p| p.card.did() != &sender);
                    report.closed.push(face_of_peer(&peer));
                }
                Kind::CardUpdate => match serde_json::from_value(e.body.clone())
                    .map_err(|e| e.to_string())
                    .and_then(|s| Card::verify(s).map_err(|e| e.to_string()))
                {
                    Ok(card) if card.did() == &sender => {
                        // Its statements move (or freeze) our pin first; a card signed by a
                        // key the pin does not hold now is not taken.
                        match super::lineage::follow_card(peer, &card, self.home.now()) {
                            Ok(Some(crate::proto::lineage::Change::Rotated { .. })) => {
                                report.rotated.push(Face::of(&sender))
                            }
                            Ok(Some(crate::proto::lineage::Change::Frozen)) => {
                                report.frozen.push(Face::of(&sender));
                                return reject(format!(
                                    "card update from {nick}: a second, different key rotation; its pin is frozen"
                                ));
                            }
                            Ok(_) => {}
                            Err(reason) => return reject(format!("card update from {nick}: {reason}")),
                        }
                        let current = card.lineage().is_empty() || card.lineage_pin().key == peer.pin().key;
                        if current && card.body().created_at > peer.card.body().created_at {
                            peer.card = card
                        }
                    }
                    Ok(_) => {}
                    Err(reason) => return reject(format!("card update from {nick}: {reason}")),
                },
                Kind::PairRequest | Kind::PairAccept | Kind::PairReject => {} // a repeat of a finished pairing
                // A job step: stored only if the job's state machine takes it.
                Kind::Job => {
                    let line =
                        InboxLine { event: e.clone(), received_at: self.home.now(), signed: verified.signed().clone() };
                    let batch: Vec<InboxLine> =
                        inbox.iter().filter(|(d, _)| d == &sender).map(|(_, l)| l.clone()).collect();
                    if let Err(why) = self.job_verdict(&sender, &line, &batch) {
                        return reject(why);
                    }
                    // An offer over our budget is answered at once: a reject with the reason.
                    if let Some(offer) =
                        Self::job_entry(&line).filter(|e| matches!(e.event.step, crate::proto::job::Step::Offer { .. }))
                        && let Ok(held) = self.job_entries(&sender, &batch)
                        && let Some(reason) = self.over_budget(&sender, &offer, &held)
                    {
                        later.parked.push(self.budget_reject(peer, &offer, reason)?);
                    }
                    inbox.push((sender, line));
                }
                Kind::Control => match serde_json::from_value::<ControlBody>(e.body.clone()) {
                    Ok(control) if control.kind == super::recover::REINTRO && control.v == 1 => {
                        match super::recover::apply_reintro(peer, &control.fields) {
                            Ok(super::recover::Reintro::Accepted) => {
                                report.reintroduced.push(Face::of(&sender));
                                later.due.push(sender.clone());
                                later.reintros.push((sender.clone(), e.id));
                            }
                            Ok(super::recover::Reintro::Repeat) => {}
                            Err(why) => {
                                return reject(format!("re-introduction from {}: {why}", Face::of(&sender).nickname));
                            }
                        }
                    }
                    // A fresh prekey bundle: what waited for one goes now.
                    Ok(control) if control.kind == super::prekeys::BUNDLE && control.v == 1 => {
                        let taken = super::prekeys::bundle_of(&control)
                            .ok_or_else(|| "no bundle".to_owned())
                            .and_then(|b| super::prekeys::take_bundle(peer, &b));
                        match taken {
                            Ok(true) => later.due.push(sender.clone()),
                            Ok(false) => {}
                            Err(why) => return reject(format!("prekeys from {nick}: {why}")),
                        }
                    }
                    // A peer took our move: the mailbox we left need not wait for it.
                    Ok(control) if control.kind == super::relocate::REINTRO_ACK && control.v == 1 => {
                        later.answered.push(sender.clone());
                    }
                    Ok(control) if control.kind == super::prekeys::ASK && control.v == 1 => {
                        if !later.asks.contains(&sender) {
                            later.asks.push(sender.clone());
                        }
                    }
                    Ok(control) if control.kind == super::jobs::CAPABILITIES && control.v == 1 => {
                        later.capabilities.push((sender.clone(), control));
                    }
                    Ok(control) if super::rooms::is_room_control(&control.kind) && control.v == 1 => {
                        later.rooms.push((sender.clone(), control));
                    }
                    // A probe: answered with the batch unless this peer used its minute's
                    // answers; its answer: the round trip of our ping. Neither is stored.
                    Ok(control) if control.kind == super::ping::PING && control.v == 1 => {
                        if let Some(nonce) = super::ping::nonce_of(&control.fields) {
                            later.pings.push((sender.clone(), nonce));
                        }
                    }
                    Ok(control) if control.kind == super::ping::PONG && control.v == 1 => {
                        if let Some(nonce) = super::ping::nonce_of(&control.fields) {
                            later.pongs.push((sender.clone(), nonce));
                        }
                    }
                    Ok(control) if control.kind == super::receipts::RECEIPT && control.v == 1 => {
                        match super::receipts::receipt_record(&control.fields, verified.signed(), self.home.now()) {
                            Ok(record) => later.receipts.push((sender.clone(), record)),
                            Err(why) => return reject(format!("receipt from {}: {why}", Face::of(&sender).nickname)),
                        }
                    }
                    Ok(control) => {
                        report.unsupported += 1;
                        return reject(format!("unsupported control message `{}` from a newer peer", control.kind));
                    }
                    Err(err) => {
                        return reject(format!("malformed control message from {}: {err}", Face::of(&sender).nickname));
                    }
                },
                _ => {
                    let line =
                        InboxLine { event: e.clone(), received_at: self.home.now(), signed: verified.signed().clone() };
                    inbox.push((sender, line));
                }
            }
            return Ok(());
        }
        match event.claimed_kind() {
            Kind::PairRequest => match receive_request(&self.identity, event, self.home.now()) {
                Ok(IncomingRequest::Invite(claim)) => {
                    let Some(issued) = pending.issued.iter_mut().find(|i| i.id == claim.invite_id) else {
                        return reject("pair request for an invite we did not issue or already used up".into());
                    };
                    let request = match issued.redeem(&self.identity, claim, self.home.now()) {
                        Ok(r) => r,
                        Err(e) => return reject(e.to_string()),
                    };
                    let expires_at = issued.expires_at;
                    pending.issued.retain(|i| i.uses_left > 0 && i.expires_at > self.home.now());
                    // Our own relay: if it cannot mint, the pull fails as a whole (it could
                    // not list or ack either). The answer itself is parked, never posted here.
                    let grant = self.mint_send_grant(account).await?;
                    let (paired, out) = request.answer(
                        &self.identity,
                        &account.card,
                        &self.our_extras(account, &grant.grant_id).await?,
                        grant.token,
                        self.home.now(),
                        &mut OsRng,
                    )?;
                    let to = paired.card.did().clone();
                    later.parked.push(super::parked_answer(
                        to,
                        &out,
                        grant.grant_id.clone(),
                        expires_at,
                        self.home.now(),
                    )?);
                    report.paired.push(pin(peers, paired, Some(grant.grant_id), self.home.now(), true));
                }
                Ok(IncomingRequest::Dial(request)) => {
                    if lane != Lane::Intro {
                        return reject("dial request outside the intro lane".into());
                    }
                    let face = Face::of(request.from.did());
                    if request.from.body().endpoints.is_empty() {
                        return reject(format!(
                            "dial request from {}: its card names no address to answer",
                            face.nickname
                        ));
                    }
                    let others = pending.requests.iter().filter(|r| r.from.did() != request.from.did()).count();
                    let cap = self.home.pending_cap();
                    if others >= cap {
                        return reject(format!(
                            "dial request from {}: {cap} requests are waiting already; \
                             accept or reject some (`wire pending`)",
                            face.nickname
                        ));
                    }
                    report.requests.push(face);
                    pending.requests.retain(|r| r.from.did() != request.from.did());
                    pending.requests.push(request);
                }
                Err(e) => return reject(format!("pair request: {e}")),
            },
            Kind::PairAccept | Kind::PairReject => {
                if let Some(i) = pending.joined.iter().position(|(w, _)| w.issuer.did() == &sender) {
                    match pending.joined[i].0.receive(&self.identity, event, self.home.now()) {
                        Ok(paired) => {
                            let (_, grant) = pending.joined.remove(i);
                            report.paired.push(pin(peers, paired, Some(grant), self.home.now(), true));
                        }
                        Err(e) => return reject(format!("pair answer: {e}")),
                    }
                } else if let Some(i) = pending.dialed.iter().position(|(w, _)| w.peer.did() == &sender) {
                    match pending.dialed[i].0.receive(&self.identity, event, self.home.now()) {
                        Ok(DialAnswer::Accepted(paired)) => {
                            let (_, grant) = pending.dialed.remove(i);
                            report.paired.push(pin(peers, *paired, Some(grant), self.home.now(), true));
                        }
                        Ok(DialAnswer::Rejected { .. }) => {
                            let (w, grant) = pending.dialed.remove(i);
                            later.revoke.push(grant);
                            report.declined.push(Face::of(w.peer.did()));
                        }
                        Err(e) => return reject(format!("pair answer: {e}")),
                    }
                } else {
                    return reject(format!(
                        "pairing answer from {} that we did not ask for",
                        Face::of(&sender).nickname
                    ));
                }
            }
            // Rooms: a join request by room invite (checked under the card it carries), and
            // the Welcome of a room we asked to join by invite (under the inviter's card).
            Kind::Control => {
                let control = event.claimed_control();
                let card = match control.as_ref().map(|c| c.kind.as_str()) {
                    Some(super::rooms::JOIN) => control
                        .as_ref()
                        .and_then(|c| c.fields.get("card"))
                        .and_then(|v| serde_json::from_value::<crate::proto::signed::Signed>(v.clone()).ok())
                        .and_then(|s| Card::verify(s).ok())
                        .filter(|c| c.did() == &sender),
                    Some(super::rooms::WELCOME) => self.joining_card(&sender),
                    _ => None,
                };
                let Some(card) = card else {
                    return reject(format!("`control` event from an unpaired sender ({})", Face::of(&sender).nickname));
                };
                match event.verify_as(&card, &self.rules()) {
                    Ok(verified) => later.rooms.extend(verified.control().map(|c| (sender.clone(), c))),
                    Err(e) => return reject(format!("room message from {}: {e}", Face::of(&sender).nickname)),
                }
            }
            other => {
                return reject(format!("`{other}` event from an unpaired sender ({})", Face::of(&sender).nickname));
            }
        }
        Ok(())
    }
}

/// What a pull reads into, across our mailboxes.
struct Reading<'a> {
    account: &'a mut Account,
    peers: &'a mut Peers,
    pending: &'a mut Pending,
    later: &'a mut After,
    blocked: &'a mut Option<super::Blocked>,
    blocked_before: Option<u64>,
    prekeys: &'a [x25519_dalek::StaticSecret],
}

/// What a batch leaves to do after its ack.
#[derive(Debug, Default)]
pub(super) struct After {
    /// Pairing answers to park in the outbox (written before the ack).
    parked: Vec<OutboxItem>,
    /// Grants on our slot to revoke (peers that closed, dials declined).
    revoke: Vec<String>,
    /// Peers that re-introduced themselves: what waits for them in the outbox is due now.
    due: Vec<Did>,
    /// Protocol events applied in this batch (recorded before the ack).
    seen: Vec<(Did, EventId)>,
    /// Receipts for what we sent (written to the sent log before the ack).
    receipts: Vec<(Did, SentRecord)>,
    /// Room control messages (applied with the batch, before the ack).
    rooms: Vec<(Did, ControlBody)>,
    /// Capability cards of peers (kept with the batch, before the ack).
    capabilities: Vec<(Did, ControlBody)>,
    /// Pings to answer (peer, nonce).
    pings: Vec<(Did, String)>,
    /// Answers to our pings (peer, nonce).
    pongs: Vec<(Did, String)>,
    /// Peers that asked for our prekey bundle.
    asks: Vec<Did>,
    /// Re-introductions we took (peer, event id): each is answered with a `reintro_ack`.
    reintros: Vec<(Did, EventId)>,
    /// Peers that answered our move.
    answered: Vec<Did>,
}
