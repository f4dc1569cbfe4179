//! `wire init` / `wire up`: the identity, its mailbox (and spares on other relays), its
//! card and its handle.

use rand_core::OsRng;

use super::{EndpointError, Face, InitReport, Result, card_capabilities};
use crate::client::{Client, ClientError, RelayUrl};
use crate::home::{Account, Home};
use crate::proto::api::ErrorCode;
use crate::proto::card::{Card, Endpoint as CardEndpoint};
use crate::proto::identity::Identity;

/// Creates the identity, allocates a slot and claims the handle. Idempotent.
pub async fn init(home: &Home, relay: &str) -> Result<InitReport> {
    init_with(home, relay, &[], true).await
}

/// [`init`], with `also`: further addresses of the same relay for the card (its Unix
/// socket, a LAN address), which peers try first when closer; and without claiming a
/// handle when `claim` is false (a same-machine session nobody should dial).
pub async fn init_with(home: &Home, relay: &str, also: &[String], claim: bool) -> Result<InitReport> {
    init_mailboxes(home, relay, also, &[], claim).await
}

/// [`init_with`], with further mailboxes on other relays (`spares`) for a new identity:
/// listed in the card after the first (docs/PROTOCOL.md, "Several mailboxes").
pub async fn init_mailboxes(
    home: &Home,
    relay: &str,
    also: &[String],
    spares: &[String],
    claim: bool,
) -> Result<InitReport> {
    let url = RelayUrl::parse(relay)?;
    let also = also.iter().map(|a| RelayUrl::parse(a)).collect::<Result<Vec<_>, _>>()?;
    let spare_urls = spares.iter().map(|a| RelayUrl::parse(a)).collect::<Result<Vec<_>, _>>()?;
    let _lock = home.lock()?;
    let identity = if home.exists() {
        home.identity()?
    } else {
        let id = Identity::generate(&mut OsRng);
        home.write_identity(&id)?;
        id
    };
    if let Some(account) = home.load::<Account>()? {
        if RelayUrl::parse(&account.relay).ok().as_ref() != Some(&url) {
            return Err(EndpointError::OtherRelay { current: account.relay, asked: url.to_string() });
        }
        let held: Vec<Option<RelayUrl>> = account.spares.iter().map(|s| RelayUrl::parse(&s.relay).ok()).collect();
        if spare_urls.iter().any(|u| !held.contains(&Some(u.clone()))) {
            return Err(EndpointError::MailboxesFixed);
        }
        return Ok(InitReport {
            created: false,
            face: Face::of(identity.did()),
            relay: account.relay.clone(),
            slot: account.slot.to_string(),
            handle: account.handle.clone(),
            notes: vec![],
        });
    }
    let client = Client::new(url.clone());
    let slot = client.allocate_slot().await?;
    // A Unix socket listed beside the relay must be the same relay: owner calls go there
    // (`Account::owner_relay`) and so do nearby peers. The new slot answering on it proves
    // it; one that does not is left out of the card.
    let mut notes = Vec::new();
    let mut listed = Vec::new();
    for u in also {
        if u.reach() == crate::client::Reach::Unix
            && Client::new(u.clone()).list(&slot.slot, &slot.owner_token, Some(0), 1).await.is_err()
        {
            notes.push(format!("{u} does not serve this relay's slot; it is left out of the card"));
            continue;
        }
        listed.push(u);
    }
    let mut endpoints = listed
        .iter()
        .chain([&url])
        .map(|u| CardEndpoint { relay: u.to_string(), slot: slot.slot.clone() })
        .collect::<Vec<_>>();
    // Further mailboxes: a slot of their own on each further relay, listed after the first.
    let mut spares = Vec::new();
    for u in spare_urls {
        let spare = Client::new(u.clone()).allocate_slot().await?;
        endpoints.push(CardEndpoint { relay: u.to_string(), slot: spare.slot.clone() });
        spares.push(crate::home::Mailbox {
            relay: u.to_string(),
            slot: spare.slot,
            owner_token: spare.owner_token,
            cursor: 0,
            incarnation: None,
        });
    }
    let card = Card::issue(&identity, endpoints, card_capabilities(), home.now());
    let nick = card.character().nickname();
    let claimed =
        if claim { client.claim_handle(&slot.owner_token, &nick, card.signed()).await.map(Some) } else { Ok(None) };
    let handle = match claimed {
        Ok(Some(_)) => Some(format!("{nick}@{}", url.handle_host())),
        Ok(None) => None,
        Err(ClientError::Api { code: ErrorCode::NotFound, .. }) => {
            notes.push("this relay has no handle directory (local-only): others cannot dial you by handle".into());
            None
        }
        Err(ClientError::Api { code: ErrorCode::Conflict, .. }) => {
            notes.push(format!("the handle {nick} is taken on this relay by another agent; pair by invite instead"));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let account = Account {
        v: 1,
        relay: url.to_string(),
        slot: slot.slot,
        owner_token: slot.owner_token,
        card,
        handle,
        cursor: 0,
        incarnation: None,
        role: None,
        spares,
        moved_from: Vec::new(),
    };
    home.save(&account)?;
    Ok(InitReport {
        created: true,
        face: Face::of(identity.did()),
        relay: account.relay,
        slot: account.slot.to_string(),
        handle: account.handle,
        notes,
    })
}
