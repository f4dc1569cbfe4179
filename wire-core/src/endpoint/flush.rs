//! Posting what the outbox holds: each item on its own, its failure recorded on it, parked
//! pairing answers and re-introductions given up after their time.

use super::{Endpoint, EndpointError, Face, PullReport, Result};
use crate::client::{Client, RelayUrl};
use crate::home::{OutboxItem, ParkedAnswer, Peers, SentRecord};

impl Endpoint {
    /// Posts what the outbox holds, each item on its own: a failure is recorded on the item
    /// (attempts, last error, the time of the next try) and the next item goes on. Parked
    /// pairing answers past their expiry are given up: grant revoked, peer unpinned. Hold
    /// the lock.
    pub(super) async fn flush_outbox(&self, report: &mut PullReport) -> Result<()> {
        let now = self.home.now();
        for item in self.home.outbox()? {
            if let Some(answer) = item.answer.clone().filter(|a| a.expires_at <= now) {
                self.drop_parked(&item, &answer).await?;
                continue;
            }
            if item.reintro.is_some_and(|expires| expires <= now) {
                self.drop_reintro(&item)?;
                continue;
            }
            if item.not_before.is_some_and(|t| t > now) {
                report.count_waiting(&item);
                continue;
            }
            self.try_item(&item, report).await?;
        }
        Ok(())
    }

    /// Tries one outbox item now; records the outcome on it; true when it was delivered.
    /// Hold the lock.
    pub(crate) async fn try_item(&self, item: &OutboxItem, report: &mut PullReport) -> Result<bool> {
        // Reloaded per item: dropping a parked answer may have unpinned a peer.
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        // To a peer that publishes prekeys the item holds the signed event: sealed now to
        // the newest prekey we hold, or, when all are stale, left waiting for a fresh bundle.
        let resealed;
        let envelope = match (&item.signed, peers.get(&item.to)) {
            (None, _) => &item.envelope,
            (Some(signed), Some(peer)) => match super::route::seal_now(
                peer,
                signed,
                self.home.now(),
                super::prekeys::signed_is_key_management(signed),
            )? {
                Some(envelope) => {
                    resealed = envelope;
                    &resealed
                }
                None => {
                    self.ask_prekeys_of(&item.to)?;
                    let mut item = item.clone();
                    item.last_error = Some(EndpointError::PrekeysStale(Face::of(&item.to).nickname).to_string());
                    item.not_before = Some(self.home.now().saturating_add(OutboxItem::backoff(item.attempts)));
                    self.home.queue(&item)?;
                    report.count_waiting(&item);
                    return Ok(false);
                }
            },
            // Not pinned: sealed when queued (a room member by route), or forgotten since.
            (Some(_), None) if !item.envelope.is_empty() => &item.envelope,
            (Some(_), None) => {
                self.home.unqueue(&item.event_id)?;
                if item.logged {
                    let reason = "the peer was forgotten before this could be sent".to_owned();
                    let failed = SentRecord::Failed { id: item.event_id, at: self.home.now(), reason };
                    self.home.record_sent(&item.to, &[failed])?;
                }
                return Ok(false);
            }
        };
        // A pinned peer is reached along the one route (closest address that answers).
        let sent = match peers.get(&item.to) {
            Some(peer) if item.reintro.is_some() => self.post_reintro(peer, envelope).await,
            Some(peer) => super::deliver(peer, envelope).await.map(|_| ()),
            None => match RelayUrl::parse(&item.relay) {
                Ok(url) => Client::new(url).append(&item.slot, &item.token, envelope).await.map(|_| ()),
                Err(e) => Err(e),
            },
        };
        match sent {
            Ok(()) => {
                self.home.unqueue(&item.event_id)?;
                if item.logged {
                    self.home
                        .record_sent(&item.to, &[SentRecord::Relayed { id: item.event_id, at: self.home.now() }])?;
                }
                if item.answer.is_none() && !item.quiet {
                    report.flushed += 1;
                }
                Ok(true)
            }
            Err(e) => {
                let mut item = item.clone();
                item.attempts += 1;
                item.last_error = Some(e.to_string());
                item.not_before = Some(self.home.now().saturating_add(OutboxItem::backoff(item.attempts)));
                self.home.queue(&item)?;
                report.count_waiting(&item);
                Ok(false)
            }
        }
    }

    /// Gives up a parked pairing answer: unpins the peer it would have paired (unless it
    /// has been heard from since: then it is paired, the answer just never needed us),
    /// revokes the grant, removes the item. Hold the lock.
    pub(crate) async fn drop_parked(&self, item: &OutboxItem, answer: &ParkedAnswer) -> Result<()> {
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        peers.peers.retain(|p| !(p.card.did() == &item.to && p.our_grant.as_deref() == Some(answer.grant_id.as_str())));
        self.home.save(&peers)?;
        self.home.unqueue(&item.event_id)?;
        let account = self.account()?;
        let _ = self.our_client(&account)?.revoke(&account.slot, &account.owner_token, &answer.grant_id).await;
        self.revoke_spare_grants(&answer.grant_id).await?;
        Ok(())
    }
}
