//! Mailboxes on several relays (docs/PROTOCOL.md, "Several mailboxes"): our card lists a
//! first mailbox and spares on other relays; each peer gets a send token on every one of
//! them with the pairing. A sender falls over from one mailbox to the next on any refusal
//! (`route::deliver`); we read them all (`receive::read_mailbox`), and repeats are
//! dropped by event id.

use serde::{Deserialize, Serialize};

use super::{Endpoint, Result};
use crate::client::{Client, RelayUrl};
use crate::home::{Account, StateFile};
use crate::proto::api::{GrantKind, GrantRequest, SlotId};
use crate::proto::pairing::{Extras, SlotToken};

/// The send grants we minted on our spares (`spare_grants.json`), each with the grant on
/// our first mailbox it went out with, so forgetting a peer revokes them all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SpareGrants {
    /// Format version.
    pub v: u64,
    /// (spare slot, grant on our first mailbox, grant on the spare).
    #[serde(default)]
    pub grants: Vec<(SlotId, String, String)>,
}

impl StateFile for SpareGrants {
    const NAME: &'static str = "spare_grants.json";
    const VERSION: u64 = 1;
}

impl Endpoint {
    /// What a pairing of ours sends besides our card and the send token `first_grant` on
    /// our first mailbox: our prekey bundle, and a send token minted on each spare (kept
    /// with `first_grant`, so forgetting the peer revokes them all). Hold the lock.
    pub(crate) async fn our_extras(&self, account: &Account, first_grant: &str) -> Result<Extras> {
        let prekeys = self.our_bundle()?;
        if account.spares.is_empty() {
            return Ok(Extras { prekeys, tokens: Vec::new() });
        }
        let mut minted = self.home.load::<SpareGrants>()?.unwrap_or(SpareGrants { v: 1, grants: Vec::new() });
        let mut tokens = Vec::new();
        let request = GrantRequest { kind: GrantKind::Send, ttl_secs: None, uses: None };
        for spare in &account.spares {
            let client = Client::new(RelayUrl::parse(&spare.relay)?);
            let grant = client.grant(&spare.slot, &spare.owner_token, &request).await?;
            minted.grants.push((spare.slot.clone(), first_grant.to_owned(), grant.grant_id));
            tokens.push(SlotToken { slot: spare.slot.clone(), token: grant.token });
        }
        self.home.save(&minted)?;
        Ok(Extras { prekeys, tokens })
    }

    /// Revokes the grants on our spares minted with `first_grant` (a peer forgotten or a
    /// pairing given up). Best effort, like every revocation. Hold the lock.
    pub(crate) async fn revoke_spare_grants(&self, first_grant: &str) -> Result<()> {
        let Some(mut minted) = self.home.load::<SpareGrants>()? else { return Ok(()) };
        let account = self.account()?;
        for (slot, _, grant) in minted.grants.iter().filter(|(_, first, _)| first == first_grant) {
            let Some(spare) = account.spares.iter().find(|s| &s.slot == slot) else { continue };
            let Ok(url) = RelayUrl::parse(&spare.relay) else { continue };
            let _ = Client::new(url).revoke(slot, &spare.owner_token, grant).await;
        }
        minted.grants.retain(|(_, first, _)| first != first_grant);
        self.home.save(&minted)?;
        Ok(())
    }

    /// The grants on our spares minted with `old` now go with `new` (our first grant for a
    /// peer was replaced). Hold the lock.
    pub(crate) fn rekey_spare_grants(&self, old: &str, new: &str) -> Result<()> {
        let Some(mut minted) = self.home.load::<SpareGrants>()? else { return Ok(()) };
        for (_, first, _) in minted.grants.iter_mut().filter(|(_, first, _)| first == old) {
            *first = new.to_owned();
        }
        self.home.save(&minted)?;
        Ok(())
    }
}
