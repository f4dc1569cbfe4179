//! `wire move <relay>`: our mailbox moves to another relay without re-pairing
//! (docs/PROTOCOL.md, "Moving to another relay").
//!
//! We get a slot on the new relay, re-issue our card with it, and send every pinned peer a
//! re-introduction (the `reintro` control message of recovery: the new card and a fresh send
//! grant on the new slot, sealed to the peer). The old mailbox is kept in the account and
//! read beside the new one, so what a peer posts there before it hears of the move still
//! arrives. A peer that takes the re-introduction answers with a signed `reintro_ack`; the
//! old mailbox is released (its grants revoked, no longer read) once every peer it waited
//! for has answered, or after the relay's retention, whichever comes first. A peer that is
//! offline during the move finds the re-introduction in its own mailbox when it returns.

use std::time::Duration;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use super::recover::ReregisterReport;
use super::rooms::control;
use super::{Endpoint, EndpointError, Face, Result, seal_for};
use crate::client::{Client, RelayUrl};
use crate::home::{Account, Mailbox, OldMailbox, OutboxItem, Peer, Peers};
use crate::proto::card::{Card, Endpoint as CardEndpoint};
use crate::proto::did::Did;
use crate::proto::event::{Event, EventId, Kind};

/// The control type a peer answers a re-introduction with.
pub(crate) const REINTRO_ACK: &str = "reintro_ack";
/// The card feature: answers re-introductions with `reintro_ack`.
pub(crate) const FEATURE: &str = "move";
/// How long an old mailbox is read at most: the relay's default retention, after which
/// nothing posted there before the move is left to read.
pub const OLD_MAILBOX_READ_FOR: Duration = Duration::from_secs(14 * 86_400);

#[derive(Serialize, Deserialize)]
struct AckMsg {
    /// The re-introduction answered.
    id: EventId,
}

/// `wire move`: what `wire up --reregister` reports (the relay and slot are the new ones),
/// and the relay we left.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    /// The relay we left (read until every peer confirmed, or its retention passed).
    pub from: String,
    /// Where we are now and each pinned peer's re-introduction.
    #[serde(flatten)]
    pub moved: ReregisterReport,
}

impl Endpoint {
    /// `wire move <relay>`: moves our mailbox to `relay` and tells every pinned peer.
    pub async fn move_to(&self, relay: &str) -> Result<MoveReport> {
        let url = RelayUrl::parse(relay)?;
        let _lock = self.home.lock()?;
        let mut account = self.account()?;
        if RelayUrl::parse(&account.relay).ok().as_ref() == Some(&url) {
            return Err(EndpointError::SameRelay(url.to_string()));
        }
        let client = Client::new(url.clone());
        let fresh = client.allocate_slot().await?;
        // The new first mailbox, then our spares as before (peers keep their tokens there).
        let mut endpoints = vec![CardEndpoint { relay: url.to_string(), slot: fresh.slot.clone() }];
        let spare_slots: Vec<_> = account.spares.iter().map(|s| &s.slot).collect();
        endpoints.extend(account.card.body().endpoints.iter().filter(|e| spare_slots.contains(&&e.slot)).cloned());
        // Strictly newer than the card peers hold, whatever the clock says.
        let now = self.home.now();
        let at = now.max(account.card.body().created_at.saturating_add(Duration::from_millis(1)));
        let chain = account.card.lineage().to_vec();
        let card = Card::issue_in_lineage(&self.identity, endpoints, super::card_capabilities(), at, chain);
        let handle = match &account.handle {
            Some(_) => client
                .claim_handle(&fresh.owner_token, &card.character().nickname(), card.signed())
                .await
                .ok()
                .map(|r| r.handle),
            None => None,
        };
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let old = OldMailbox {
            mailbox: Mailbox {
                relay: account.relay.clone(),
                slot: account.slot.clone(),
                owner_token: account.owner_token.clone(),
                cursor: account.cursor,
                incarnation: account.incarnation.clone(),
            },
            until: now.saturating_add(OLD_MAILBOX_READ_FOR),
            waiting: peers.peers.iter().filter(|p| p.card.speaks(FEATURE)).map(|p| p.card.did().clone()).collect(),
            grants: peers.peers.iter().filter_map(|p| p.our_grant.clone()).collect(),
        };
        let from = old.mailbox.relay.clone();
        account.moved_from.push(old);
        account = Account {
            relay: url.to_string(),
            slot: fresh.slot,
            owner_token: fresh.owner_token,
            card,
            handle,
            cursor: 0,
            incarnation: None,
            ..account
        };
        self.home.save(&account)?;
        let report = self.reintroduce_all(&account).await?;
        let moved = ReregisterReport {
            face: Face::of(self.identity.did()),
            relay: account.relay.clone(),
            slot: account.slot.to_string(),
            handle: account.handle.clone(),
            peers: report,
        };
        Ok(MoveReport { from, moved })
    }

    /// Our answer to a peer's re-introduction `id`, as an outbox item (a peer that moved
    /// releases its old mailbox when every peer answered).
    pub(super) fn reintro_ack(&self, peer: &Peer, id: EventId) -> Result<Option<OutboxItem>> {
        if !peer.card.speaks(FEATURE) {
            return Ok(None);
        }
        let body = control(REINTRO_ACK, &AckMsg { id });
        let event =
            Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, self.home.now(), &mut OsRng);
        Ok(seal_for(&self.identity, peer, event)?.item(peer, self.home.now()).ok().map(|mut item| {
            item.quiet = true;
            item
        }))
    }

    /// Takes peers' answers to our move and releases the old mailboxes nobody is left to
    /// post to (every peer answered, or the retention passed): their grants are revoked and
    /// they are read no more. Hold the lock.
    pub(super) async fn settle_moves(&self, answered: &[Did]) -> Result<()> {
        let mut account = self.account()?;
        if account.moved_from.is_empty() {
            return Ok(());
        }
        let now = self.home.now();
        for old in &mut account.moved_from {
            old.waiting.retain(|d| !answered.contains(d));
        }
        let (done, kept): (Vec<OldMailbox>, Vec<OldMailbox>) =
            std::mem::take(&mut account.moved_from).into_iter().partition(|m| m.waiting.is_empty() || m.until <= now);
        account.moved_from = kept;
        self.home.save(&account)?;
        for old in done {
            if let Ok(url) = RelayUrl::parse(&old.mailbox.relay) {
                let client = Client::new(url);
                for grant in &old.grants {
                    let _ = client.revoke(&old.mailbox.slot, &old.mailbox.owner_token, grant).await;
                }
            }
        }
        Ok(())
    }
}
