//! Who is who: ourselves (`wire whoami`), our pinned peers (`wire peers`, finding one by
//! name), and anyone by handle or DID (`wire whois`).

use super::report::{LineageView, PeerReport, Whoami, WhoisReport, WhoisSource};
use super::{DidYouMean, Endpoint, EndpointError, Face, Result, lineage, nickname_collisions, peer_report};
use crate::client::{Client, RelayUrl};
use crate::home::{Peer, Peers};
use crate::proto::card::Card;
use crate::proto::did::Did;
use crate::proto::pairing::PairingError;

impl Endpoint {
    /// `wire whoami`.
    pub fn whoami(&self) -> Result<Whoami> {
        let a = self.account()?;
        let held = lineage::held(&self.home)?;
        Ok(Whoami {
            face: Face::of(self.identity.did()),
            relay: a.relay,
            slot: a.slot.to_string(),
            handle: a.handle,
            home: self.home.root().display().to_string(),
            lineage: LineageView {
                seq: held.keys.seq,
                key_fingerprint: Did::from_verifying_key(&held.keys.current.verifying_key()).fingerprint(),
                standing: "active",
                committed: true,
            },
        })
    }

    /// Finds a pinned peer by full DID, nickname, or `nick@relay`.
    pub fn find_peer<'a>(&self, peers: &'a Peers, name: &str) -> Result<&'a Peer> {
        let name = name.trim();
        if let Ok(did) = Did::parse(name) {
            return peers.get(&did).ok_or_else(|| EndpointError::UnknownPeer(name.to_owned(), DidYouMean::default()));
        }
        let (nick, relay) = match name.split_once('@') {
            Some((n, r)) => (n, Some(RelayUrl::parse(r)?)),
            None => (name, None),
        };
        let matches: Vec<&Peer> = peers
            .peers
            .iter()
            .filter(|p| p.card.character().nickname() == nick)
            .filter(|p| {
                relay.as_ref().is_none_or(|r| {
                    p.card.body().endpoints.iter().any(|e| RelayUrl::parse(&e.relay).is_ok_and(|u| &u == r))
                })
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => {
                let nicks: Vec<String> = peers.peers.iter().map(|p| p.card.character().nickname()).collect();
                Err(EndpointError::UnknownPeer(
                    name.to_owned(),
                    DidYouMean::among(nick, nicks.iter().map(String::as_str)),
                ))
            }
            _ => Err(EndpointError::AmbiguousPeer(name.to_owned())),
        }
    }

    /// `wire peers`.
    pub fn peers(&self) -> Result<Vec<PeerReport>> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(peers.peers.iter().map(peer_report).collect())
    }

    /// `wire whois`: resolves `nick@relay` through that relay's directory and verifies the
    /// card, or describes a DID (with its pinned card, if any).
    pub async fn whois(&self, target: &str) -> Result<WhoisReport> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let (card, source) = if let Ok(did) = Did::parse(target.trim()) {
            match peers.get(&did) {
                Some(p) => (Some(p.card.clone()), WhoisSource::Pinned),
                None => {
                    return Ok(WhoisReport {
                        face: Face::of(&did),
                        source: WhoisSource::Did,
                        pinned: false,
                        endpoints: None,
                        card_created_at: None,
                        nickname_collides_with: None,
                        lineage: None,
                    });
                }
            }
        } else if !target.contains('@') {
            // A bare nickname: a pinned peer (`nick@relay` asks the relay's directory).
            (Some(self.find_peer(&peers, target)?.card.clone()), WhoisSource::Pinned)
        } else {
            let (nick, relay) =
                target.split_once('@').ok_or_else(|| EndpointError::BadHandle(target.to_owned(), " nor a DID"))?;
            let client = Client::new(RelayUrl::parse(relay)?);
            let resolved = client.resolve(nick).await?;
            let card = Card::verify(resolved.card).map_err(PairingError::from)?;
            if card.character().nickname() != nick {
                return Err(EndpointError::DirectoryMismatch {
                    asked: nick.to_owned(),
                    found: card.character().nickname(),
                });
            }
            (Some(card), WhoisSource::Directory)
        };
        let card = card.expect("set above");
        let known: Vec<Did> = peers.peers.iter().map(|p| p.card.did().clone()).collect();
        let collisions: Vec<String> =
            nickname_collisions(card.did(), &known).into_iter().map(|d| d.to_string()).collect();
        Ok(WhoisReport {
            face: Face::of(card.did()),
            source,
            pinned: peers.get(card.did()).is_some(),
            endpoints: Some(card.body().endpoints.clone()),
            card_created_at: Some(card.body().created_at),
            nickname_collides_with: Some(collisions),
            lineage: Some(LineageView::of(&peers.get(card.did()).map_or_else(|| card.lineage_pin(), |p| p.pin()))),
        })
    }
}
