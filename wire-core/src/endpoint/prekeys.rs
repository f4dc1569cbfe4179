//! Our prekeys and our peers' bundles (docs/PROTOCOL.md 7.1): rotation and deletion of our
//! secrets, the bundle sent with pairing and after every rotation, and the ask for a fresh
//! bundle when every prekey of a peer's we hold is past its `send_until`.

use std::time::Duration;

use rand_core::OsRng;
use x25519_dalek::StaticSecret;

use super::rooms::control;
use super::route::seal_for;
use super::{Endpoint, Result};
use crate::home::{OutboxItem, Peer, Peers, StateFile};
use crate::proto::event::{ControlBody, Event, Kind, SignedEvent};
use crate::proto::prekey::{self, Bundle, OurPrekeys};
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// The control type carrying a signed bundle (`{"bundle": Signed}`).
pub(crate) const BUNDLE: &str = "prekeys";
/// The control type asking for one (no fields).
pub(crate) const ASK: &str = "prekeys_request";
/// A peer is asked for a fresh bundle at most this often.
const ASK_EVERY: Duration = Duration::from_secs(3600);

impl StateFile for OurPrekeys {
    const NAME: &'static str = "prekeys.json";
    const VERSION: u64 = 1;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BundleMsg {
    bundle: Signed,
}

/// Whether an event of ours only manages keys or ends a pairing (a bundle, an ask, a
/// `close`; `control` is a control message's type): nothing secret, sealed to the
/// long-term key so it reaches a peer whose prekeys we lack.
pub(crate) fn is_key_management(kind: Kind, control: Option<&str>) -> bool {
    match kind {
        Kind::Close => true,
        Kind::Control => control.is_some_and(|t| t == BUNDLE || t == ASK),
        _ => false,
    }
}

/// [`is_key_management`] of a signed event of ours (an outbox item's).
pub(crate) fn signed_is_key_management(signed: &Signed) -> bool {
    SignedEvent::parse(signed.clone())
        .is_ok_and(|e| is_key_management(e.claimed_kind(), e.claimed_control().as_ref().map(|c| c.kind.as_str())))
}

/// A peer's bundle from a control message or a pairing, checked against the key we pin for
/// it. A bundle older than the one held changes nothing.
pub(crate) fn take_bundle(peer: &mut Peer, signed: &Signed) -> std::result::Result<bool, String> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&peer.pin().key).map_err(|e| e.to_string())?;
    let bundle = Bundle::verify(signed, &key, peer.card.did()).map_err(|e| e.to_string())?;
    if peer.prekeys.as_ref().is_some_and(|held| held.issued >= bundle.issued) {
        return Ok(false);
    }
    peer.prekeys = Some(bundle);
    Ok(true)
}

/// The bundle a control message carries.
pub(crate) fn bundle_of(control: &ControlBody) -> Option<Signed> {
    super::rooms::read::<BundleMsg>(control).ok().map(|m| m.bundle)
}

impl Endpoint {
    /// Our prekeys at this moment: rotated when due (the new bundle queued to every peer that
    /// publishes prekeys), secrets past their time deleted. Hold the lock.
    pub(crate) fn our_prekeys(&self) -> Result<OurPrekeys> {
        let now = self.home.now();
        let mut ours = self.home.load::<OurPrekeys>()?.unwrap_or(OurPrekeys { v: 1, keys: Vec::new() });
        let changed = ours.maintain(now, &mut OsRng);
        if changed.rotated || changed.deleted > 0 {
            self.home.save(&ours)?;
        }
        if changed.rotated
            && let Some(bundle) = ours.bundle(&self.identity, now)
        {
            let peers = self.home.load::<Peers>()?.unwrap_or_default();
            for peer in peers.peers.iter().filter(|p| p.card.speaks(prekey::FEATURE)) {
                if let Some(item) = self.bundle_item(peer, &bundle)? {
                    self.home.queue(&item)?;
                }
            }
        }
        Ok(ours)
    }

    /// Our current signed bundle (sent with pairing messages). Hold the lock.
    pub(crate) fn our_bundle(&self) -> Result<Option<Signed>> {
        Ok(self.our_prekeys()?.bundle(&self.identity, self.home.now()))
    }

    /// The secrets an envelope may be sealed to, newest first. Hold the lock.
    pub(crate) fn prekey_secrets(&self) -> Result<Vec<StaticSecret>> {
        Ok(self.our_prekeys()?.secrets().collect())
    }

    fn key_control(&self, peer: &Peer, body: serde_json::Value) -> Result<Option<OutboxItem>> {
        let event =
            Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, self.home.now(), &mut OsRng);
        let sealed = seal_for(&self.identity, peer, event)?;
        Ok(sealed.item(peer, self.home.now()).ok().map(|mut item| {
            item.quiet = true;
            item
        }))
    }

    /// Our bundle for `peer`, as an outbox item.
    pub(crate) fn bundle_item(&self, peer: &Peer, bundle: &Signed) -> Result<Option<OutboxItem>> {
        self.key_control(peer, control(BUNDLE, &BundleMsg { bundle: bundle.clone() }))
    }

    /// Our current bundle for a peer that asked. Hold the lock.
    pub(super) fn answer_ask(&self, peer: &Peer) -> Result<Option<OutboxItem>> {
        match self.our_bundle()? {
            Some(bundle) => self.bundle_item(peer, &bundle),
            None => Ok(None),
        }
    }

    /// Asks `peer` for a fresh bundle unless we did within [`ASK_EVERY`]; true when asked.
    /// Hold the lock.
    pub(super) fn ask_prekeys(&self, peer: &mut Peer, now: UnixMillis) -> Result<bool> {
        if peer.prekeys_asked.is_some_and(|t| t.saturating_add(ASK_EVERY) > now) {
            return Ok(false);
        }
        let body = control(ASK, &serde_json::Map::new());
        let Some(item) = self.key_control(peer, body)? else { return Ok(false) };
        self.home.queue(&item)?;
        peer.prekeys_asked = Some(now);
        Ok(true)
    }

    /// [`Endpoint::ask_prekeys`] for a pinned peer by DID, saving the peers. Hold the lock.
    pub(super) fn ask_prekeys_of(&self, did: &crate::proto::did::Did) -> Result<()> {
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        let now = self.home.now();
        if let Some(peer) = peers.peers.iter_mut().find(|p| p.card.did() == did)
            && self.ask_prekeys(peer, now)?
        {
            self.home.save(&peers)?;
        }
        Ok(())
    }

    /// `wire prune --before`: drops inbox and sent-log lines older than the cut. Returns
    /// what went.
    pub fn prune(&self, before: crate::home::Before) -> Result<crate::home::Pruned> {
        let _lock = self.home.lock()?;
        // Expired prekey secrets go first, so a pruned home holds no key to the relay's copy.
        self.our_prekeys()?;
        Ok(self.home.prune_before(before.at(self.home.now()))?)
    }
}
