//! The one receive path: `Endpoint::pull`. The CLI calls it directly; the daemon calls it
//! whenever its event stream says something arrived.

use rand_core::OsRng;

use super::{Endpoint, EndpointError, Face, PullReport, Result, face_of_peer, pin, post};
use crate::client::{Client, ClientError, RelayUrl};
use crate::home::{Account, InboxLine, Peers, Pending, Rejected};
use crate::proto::api::{ErrorCode, Lane};
use crate::proto::card::Card;
use crate::proto::did::Did;
use crate::proto::envelope;
use crate::proto::event::{ControlBody, EventError, Kind, SignedEvent};
use crate::proto::pairing::dial::DialAnswer;
use crate::proto::pairing::{IncomingRequest, receive_request};

impl Endpoint {
    /// `wire pull`: delivers queued envelopes, then fetches, opens, verifies and appends
    /// everything waiting on our slot, answers pairing messages, and acks.
    pub async fn pull(&self) -> Result<PullReport> {
        let _lock = self.home.lock()?;
        let mut report = PullReport::default();
        self.flush_outbox(&mut report).await?;
        let mut account = self.account()?;
        let client = self.our_client(&account)?;
        let mut peers = self.home.load::<Peers>()?.unwrap_or(Peers { v: 1, ..Peers::default() });
        let mut pending = self.home.load::<Pending>()?.unwrap_or(Pending { v: 1, ..Pending::default() });
        loop {
            let page = match client.list(&account.slot, &account.owner_token, account.cursor, 200).await {
                Err(ClientError::Api { code: ErrorCode::CursorExpired, message, .. }) => {
                    return Err(EndpointError::Argument(format!(
                        "the relay no longer holds events after {}: {message}",
                        account.cursor
                    )));
                }
                other => other?,
            };
            let Some(last) = page.events.last().map(|e| e.seq) else { break };
            let mut inbox: Vec<(Did, InboxLine)> = Vec::new();
            for stored in page.events {
                self.receive(
                    stored.seq,
                    stored.lane,
                    &stored.envelope,
                    &account,
                    &mut peers,
                    &mut pending,
                    &mut inbox,
                    &mut report,
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
                let seen = self.home.inbox_ids(&did)?;
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
            }
            account.cursor = last;
            self.home.save(&peers)?;
            self.home.save(&pending)?;
            self.home.save(&account)?;
            client.ack(&account.slot, &account.owner_token, last).await?;
            if !page.more {
                break;
            }
        }
        report.cursor = account.cursor;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn receive(
        &self,
        seq: u64,
        lane: Lane,
        bytes: &[u8],
        account: &Account,
        peers: &mut Peers,
        pending: &mut Pending,
        inbox: &mut Vec<(Did, InboxLine)>,
        report: &mut PullReport,
    ) -> Result<()> {
        let mut reject = |reason: String| -> Result<()> {
            report.rejected += 1;
            self.home.reject(&Rejected { at: self.home.now(), seq, reason })?;
            Ok(())
        };
        let Ok(signed) = envelope::open_signed(&self.identity, bytes) else {
            return reject("could not open envelope (not sealed to us, or damaged)".into());
        };
        let event = match SignedEvent::parse(signed) {
            Ok(event) => event,
            Err(EventError::UnsupportedKind(unknown)) => {
                let pinned = peers.get(&unknown.from).is_some();
                return match unknown.verify(&unknown.from.verifying_key(), self.identity.did()) {
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
        if let Some(peer) = peers.peers.iter_mut().find(|p| p.card.did() == &sender) {
            let verified = match event.verify(&sender.verifying_key(), &self.rules()) {
                Ok(v) => v,
                Err(e) => return reject(format!("from {}: {e}", Face::of(&sender).nickname)),
            };
            peer.last_contact = Some(self.home.now());
            let e = verified.event();
            match e.kind {
                Kind::Close => {
                    let peer = peer.clone();
                    if let Some(grant) = &peer.our_grant {
                        let _ = self.our_client(account)?.revoke(&account.slot, &account.owner_token, grant).await;
                    }
                    peers.peers.retain(|p| p.card.did() != &sender);
                    report.closed.push(face_of_peer(&peer));
                }
                Kind::CardUpdate => match serde_json::from_value(e.body.clone())
                    .map_err(|e| e.to_string())
                    .and_then(|s| Card::verify(s).map_err(|e| e.to_string()))
                {
                    Ok(card) if card.did() == &sender && card.body().created_at > peer.card.body().created_at => {
                        peer.card = card
                    }
                    Ok(_) => {}
                    Err(reason) => return reject(format!("card update from {}: {reason}", Face::of(&sender).nickname)),
                },
                Kind::PairRequest | Kind::PairAccept | Kind::PairReject => {} // a repeat of a finished pairing
                Kind::Control => match serde_json::from_value::<ControlBody>(e.body.clone()) {
                    // No control type is defined yet: every one is from a newer peer.
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
                    pending.issued.retain(|i| i.uses_left > 0 && i.expires_at > self.home.now());
                    let grant = self.mint_send_grant(account).await?;
                    let (paired, out) =
                        request.answer(&self.identity, &account.card, grant.token, self.home.now(), &mut OsRng)?;
                    post(&self.identity, &out).await?;
                    report.paired.push(pin(peers, paired, Some(grant.grant_id), self.home.now(), true));
                }
                Ok(IncomingRequest::Dial(request)) => {
                    if lane != Lane::Intro {
                        return reject("dial request outside the intro lane".into());
                    }
                    report.requests.push(Face::of(request.from.did()));
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
                            let _ = self.our_client(account)?.revoke(&account.slot, &account.owner_token, &grant).await;
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
            other => {
                return reject(format!("`{other}` event from an unpaired sender ({})", Face::of(&sender).nickname));
            }
        }
        Ok(())
    }

    async fn flush_outbox(&self, report: &mut PullReport) -> Result<()> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        for mut item in self.home.outbox()? {
            // A pinned peer is reached through the closest of its addresses that answers.
            let sent = match peers.get(&item.to) {
                Some(peer) => super::deliver(peer, &item.envelope).await.map(|_| ()),
                None => Client::new(RelayUrl::parse(&item.relay)?)
                    .append(&item.slot, &item.token, &item.envelope)
                    .await
                    .map(|_| ()),
            };
            match sent {
                Ok(()) => {
                    self.home.unqueue(&item.event_id)?;
                    report.flushed += 1;
                }
                Err(e) => {
                    item.attempts += 1;
                    item.last_error = Some(e.to_string());
                    self.home.queue(&item)?;
                    report.still_queued += 1;
                }
            }
        }
        Ok(())
    }
}
