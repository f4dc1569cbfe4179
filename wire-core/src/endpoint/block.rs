//! The block list (`blocked.json`): identities whose pair requests, dials and messages the
//! receive path drops before anything else (counted here, never stored, never shown to the
//! agent or the model). Blocking a pinned peer also revokes its send grant at our relay and
//! unpins it, without telling it; blocking a stranger drops its waiting request. An entry is
//! the identity's DID, which its lineage keeps across key rotations; a fresh identity is not
//! stopped (keys are free: that is the intro lane's proof of work and rate limits' job).

use serde::{Deserialize, Serialize};

use super::{Endpoint, EndpointError, Face, Result};
use crate::client::ClientError;
use crate::home::{Peers, Pending, StateFile};
use crate::proto::api::ErrorCode;
use crate::proto::did::Did;
use crate::proto::time::UnixMillis;

/// The block list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Blocked {
    /// Format version.
    pub v: u64,
    /// Blocked identities, oldest first.
    #[serde(default)]
    pub blocked: Vec<BlockEntry>,
}

impl StateFile for Blocked {
    const NAME: &'static str = "blocked.json";
    const VERSION: u64 = 1;
}

/// One blocked identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Its DID (the lineage's: rotations keep it).
    pub did: Did,
    /// When it was blocked.
    pub at: UnixMillis,
    /// Envelopes from it dropped since.
    #[serde(default)]
    pub dropped: u64,
}

impl Blocked {
    /// Counts a drop when `did` is blocked; whether it is.
    pub(super) fn drops(&mut self, did: &Did) -> bool {
        match self.blocked.iter_mut().find(|b| &b.did == did) {
            Some(entry) => {
                entry.dropped += 1;
                true
            }
            None => false,
        }
    }
}

/// `wire block`.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// Who.
    pub blocked: Face,
    /// It was a pinned peer: unpinned, and its send grant revoked at our relay.
    pub unpinned: bool,
    /// Its waiting pair request was dropped.
    pub dropped_request: bool,
    /// It was blocked already (nothing changed).
    pub already: bool,
}

/// `wire blocked`: one entry.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedView {
    /// Who.
    pub face: Face,
    /// Since when.
    pub at: UnixMillis,
    /// Envelopes from it dropped since.
    pub dropped: u64,
}

impl Endpoint {
    /// `wire block <nick|DID>`: a pinned peer, a stranger waiting in `wire pending`, or any DID.
    pub async fn block(&self, name: &str) -> Result<BlockReport> {
        let _lock = self.home.lock()?;
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut pending = self.home.load::<Pending>()?.unwrap_or_default();
        let did = match self.find_peer(&peers, name) {
            Ok(peer) => peer.card.did().clone(),
            Err(not_pinned) => {
                let waiting = pending
                    .requests
                    .iter()
                    .find(|r| r.from.did().as_str() == name.trim() || r.from.character().nickname() == name.trim());
                match (waiting, Did::parse(name.trim())) {
                    (Some(r), _) => r.from.did().clone(),
                    (None, Ok(did)) => did,
                    (None, Err(_)) => return Err(not_pinned),
                }
            }
        };
        if did == *self.identity.did() {
            return Err(EndpointError::BlockSelf);
        }
        let mut blocked = self.home.load::<Blocked>()?.unwrap_or(Blocked { v: 1, ..Blocked::default() });
        let already = blocked.blocked.iter().any(|b| b.did == did);
        if !already {
            blocked.blocked.push(BlockEntry { did: did.clone(), at: self.home.now(), dropped: 0 });
            self.home.save(&blocked)?;
        }
        let mut unpinned = false;
        if let Some(peer) = peers.get(&did).cloned() {
            if let Some(grant) = &peer.our_grant {
                let account = self.account()?;
                match self.our_client(&account)?.revoke(&account.slot, &account.owner_token, grant).await {
                    Ok(_) | Err(ClientError::Api { code: ErrorCode::NotFound, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            peers.peers.retain(|p| p.card.did() != &did);
            self.home.save(&peers)?;
            unpinned = true;
        }
        let before = pending.requests.len();
        pending.requests.retain(|r| r.from.did() != &did);
        let dropped_request = pending.requests.len() != before;
        if dropped_request {
            self.home.save(&pending)?;
        }
        Ok(BlockReport { blocked: Face::of(&did), unpinned, dropped_request, already })
    }

    /// `wire unblock <nick|DID>`: off the list (a former peer must pair again).
    pub fn unblock(&self, name: &str) -> Result<Face> {
        let _lock = self.home.lock()?;
        let mut blocked = self.home.load::<Blocked>()?.unwrap_or_default();
        let name = name.trim();
        let Some(i) = blocked.blocked.iter().position(|b| b.did.as_str() == name || Face::of(&b.did).nickname == name)
        else {
            return Err(EndpointError::NotBlocked(name.to_owned()));
        };
        let entry = blocked.blocked.remove(i);
        self.home.save(&blocked)?;
        Ok(Face::of(&entry.did))
    }

    /// `wire blocked`.
    pub fn blocked(&self) -> Result<Vec<BlockedView>> {
        let blocked = self.home.load::<Blocked>()?.unwrap_or_default();
        Ok(blocked
            .blocked
            .iter()
            .map(|b| BlockedView { face: Face::of(&b.did), at: b.at, dropped: b.dropped })
            .collect())
    }
}
