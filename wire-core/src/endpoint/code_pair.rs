//! Code pairing (SPAKE2 + SAS) over the relay's rendezvous, persisted so any process can
//! drive it: the interactive `wire pair`, the detached `pair-*` commands, later the daemon.
//!
//! One step ([`Endpoint::pair_drive`]) long-polls the rendezvous *outside* the home lock,
//! then, under the lock, reloads the session, applies the messages it has not seen, checks
//! the deadline, posts what the state machine produced and saves. On `Paired` it pins the
//! peer and closes the nameplate; on an abort it revokes our grant, closes (burns) the
//! nameplate and, if our vote was cast, sends the peer a `close` so no side stays paired
//! alone.

use std::time::Duration;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use super::{Endpoint, EndpointError, Face, Result, seal_for};
use crate::client::{Client, ClientError, RelayUrl};
use crate::home::{Peer, Peers};
use crate::proto::api::ErrorCode;
use crate::proto::event::{Event, Kind};
use crate::proto::pairing::code::{Code, CodePairing, Role, Status};
use crate::proto::secret::{Secret32, Token};
use crate::proto::time::UnixMillis;

/// A code pairing in progress (or recently ended), as stored in `pairings/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeSession {
    /// Format version.
    pub v: u64,
    /// Relay holding the nameplate.
    pub relay: String,
    /// The nameplate.
    pub nameplate: String,
    /// Our side's capability on it.
    pub side_token: Token,
    /// Grant we minted for the peer on our slot.
    pub grant_id: String,
    /// Rendezvous messages applied so far.
    pub cursor: u64,
    /// The state machine.
    pub pairing: CodePairing,
    /// When it started.
    pub started_at: UnixMillis,
    /// Whether the end (pin or cleanup) has been carried out.
    #[serde(default)]
    pub settled: bool,
    /// Messages produced but not yet accepted by the rendezvous (base64url), saved before
    /// posting: a driver that restarts re-posts exactly these, and the relay treats a
    /// repeat as the same message.
    #[serde(default)]
    pub unsent: Vec<String>,
}

/// What `pair-list` and the pairing commands show.
#[derive(Debug, Clone, Serialize)]
pub struct PairView {
    /// The whole code (the host reads it aloud; it is a secret until the pairing ends).
    pub code: String,
    /// The public nameplate.
    pub nameplate: String,
    /// `host` or `guest`.
    pub role: Role,
    /// `waiting`, `sas_ready`, `confirmed`, `paired` or `aborted`.
    pub state: &'static str,
    /// The six digits, once known.
    pub sas: Option<String>,
    /// For an abort: why (`wrong_code`, `sas_mismatch`, `cancelled`, `timeout`, ...).
    pub reason: Option<crate::proto::pairing::code::AbortReason>,
    /// For an abort: what happened and what to do.
    pub message: Option<String>,
    /// The peer, once paired.
    pub peer: Option<Face>,
    /// Relay holding the nameplate.
    pub relay: String,
    /// The state as a typed value (not serialized; `state`, `sas` and `reason` carry it).
    #[serde(skip)]
    pub status: Status,
}

impl CodeSession {
    fn view(&self) -> PairView {
        let status = self.pairing.status();
        let (state, reason, message) = match &status {
            Status::Waiting => ("waiting", None, None),
            Status::SasReady { .. } => ("sas_ready", None, None),
            Status::Confirmed { .. } => ("confirmed", None, None),
            // "paired" means pinned: the session is saved once before the pin (to keep its
            // unsent messages), and a reader must not see "paired" in that moment.
            Status::Paired if self.settled => ("paired", None, None),
            Status::Paired => ("confirmed", None, None),
            Status::Aborted { reason, by_peer } => {
                let text = if *by_peer {
                    format!("the other side ended the pairing: {}", reason.explain())
                } else {
                    reason.explain().to_owned()
                };
                ("aborted", Some(*reason), Some(text))
            }
        };
        PairView {
            code: self.pairing.code().expose().to_owned(),
            nameplate: self.nameplate.clone(),
            role: self.pairing.role(),
            state,
            sas: self.pairing.sas().map(str::to_owned),
            reason,
            message,
            peer: self.pairing.paired().map(|p| Face::of(p.card.did())),
            relay: self.relay.clone(),
            status,
        }
    }
}

/// The keyed store code pairings live in (0600: they hold PAKE keys and tokens).
const PAIRINGS: &str = "pairings";

/// Drives the code pairing `nameplate` of `home` until it is paired or aborted, or `timeout`
/// passes, awaiting `step()` after each move (the rendezvous is long-polled, so this waits on
/// the other side, not on a timer). A failing relay is retried every 2 s, 30 times. What
/// `wire mcp` and `wire ui` run for the pairings they start.
pub async fn drive_to_end<F: std::future::Future<Output = ()>>(
    home: crate::home::Home,
    nameplate: &str,
    timeout: Duration,
    mut step: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut failures = 0u32;
    while tokio::time::Instant::now() < deadline {
        let Ok(ep) = Endpoint::open(home.clone()) else { return };
        match ep.pair_drive(nameplate, Duration::from_secs(10)).await {
            Ok(view) => {
                failures = 0;
                step().await;
                if matches!(view.state, "paired" | "aborted") {
                    return;
                }
            }
            Err(_) if failures < 30 => {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(_) => return,
        }
    }
}

impl Endpoint {
    fn save_pairing(&self, session: &CodeSession) -> Result<()> {
        Ok(self.home.save_keyed(PAIRINGS, &session.nameplate, session)?)
    }

    /// Every code-pairing session, oldest first.
    fn pairings(&self) -> Result<Vec<CodeSession>> {
        let mut all: Vec<CodeSession> = self.home.load_keyed(PAIRINGS)?;
        all.sort_by_key(|s| s.started_at);
        Ok(all)
    }

    fn rendezvous_client(&self, relay: Option<&str>) -> Result<Client> {
        match relay {
            Some(r) => Ok(Client::new(RelayUrl::parse(r)?)),
            None => self.our_client(&self.account()?),
        }
    }

    async fn start_pairing(
        &self,
        role: Role,
        code: Option<Code>,
        relay: Option<&str>,
        timeout: Duration,
    ) -> Result<PairView> {
        let client = self.rendezvous_client(relay)?;
        let account = self.account()?;
        let (nameplate, side_token, code) = match (role, code) {
            (Role::Host, _) => {
                let plate = client.open_nameplate().await?;
                let code = Code::generate(&plate.nameplate, &mut OsRng)?;
                (plate.nameplate, plate.side_token, code)
            }
            (Role::Guest, Some(code)) => {
                let joined = client.join_nameplate(code.nameplate()).await.map_err(|e| match e.code() {
                    Some(ErrorCode::NotFound | ErrorCode::Gone) => EndpointError::NoSuchNameplate {
                        nameplate: code.nameplate().to_owned(),
                        relay: client.url().to_string(),
                    },
                    Some(ErrorCode::Conflict) => EndpointError::NameplateTaken(code.nameplate().to_owned()),
                    _ => e.into(),
                })?;
                (code.nameplate().to_owned(), joined.side_token, code)
            }
            (Role::Guest, None) => return Err(EndpointError::CodeMissing),
        };
        let grant = self.mint_send_grant(&account).await?;
        let extras = {
            let _lock = self.home.lock()?;
            self.our_extras(&account, &grant.grant_id).await?
        };
        let (pairing, progress) = CodePairing::start(
            role,
            code,
            account.card.clone(),
            extras,
            grant.token,
            Secret32::random(&mut OsRng),
            self.home.now(),
            timeout,
        );
        for message in &progress.send {
            client.post_rendezvous(&nameplate, &side_token, message).await?;
        }
        let session = CodeSession {
            v: 1,
            relay: client.url().to_string(),
            nameplate,
            side_token,
            grant_id: grant.grant_id,
            cursor: 0,
            pairing,
            started_at: self.home.now(),
            settled: false,
            unsent: Vec::new(),
        };
        let _lock = self.home.lock()?;
        self.save_pairing(&session)?;
        Ok(session.view())
    }

    /// `wire pair` / `wire pair-host`: opens a nameplate and starts the host side.
    pub async fn pair_host(&self, relay: Option<&str>, timeout: Duration) -> Result<PairView> {
        self.start_pairing(Role::Host, None, relay, timeout).await
    }

    /// `wire pair --code` / `wire pair-join`: joins with the code the other operator read.
    pub async fn pair_join(&self, code: &str, relay: Option<&str>, timeout: Duration) -> Result<PairView> {
        self.start_pairing(Role::Guest, Some(Code::parse(code)?), relay, timeout).await
    }

    fn find_session(&self, key: &str) -> Result<CodeSession> {
        let key = key.trim();
        let nameplate = key.split('-').next().unwrap_or(key).to_owned();
        self.pairings()?
            .into_iter()
            .rev()
            .find(|s| {
                s.nameplate == nameplate && (key == nameplate || Code::parse(key).is_ok_and(|c| &c == s.pairing.code()))
            })
            .ok_or_else(|| EndpointError::NoSuchPairing(key.to_owned()))
    }

    /// One step of a pairing: poll (up to `wait`), apply, post, save; pin or clean up at
    /// the end.
    pub async fn pair_drive(&self, key: &str, wait: Duration) -> Result<PairView> {
        let session = self.find_session(key)?;
        if session.settled {
            return Ok(session.view());
        }
        let client = Client::new(RelayUrl::parse(&session.relay)?);
        let wait = if session.pairing.is_finished() { 0 } else { wait.as_secs().min(10) };
        let polled = client.poll_rendezvous(&session.nameplate, &session.side_token, session.cursor, wait).await;
        let _lock = self.home.lock()?;
        let mut session = self.find_session(key)?;
        let mut outgoing = Vec::new();
        match polled {
            Ok(poll) => {
                let seen = session.cursor;
                for m in poll.messages.iter().filter(|m| m.seq > seen) {
                    outgoing.extend(session.pairing.receive(&m.body, self.home.now()).send);
                    session.cursor = m.seq;
                }
                if poll.closed && !session.pairing.is_finished() {
                    session.pairing.lost_rendezvous();
                }
            }
            Err(ClientError::Api { code: ErrorCode::NotFound | ErrorCode::Gone | ErrorCode::Unauthorized, .. }) => {
                session.pairing.lost_rendezvous();
            }
            // Unreachable: keep the state; the deadline still applies.
            Err(_) => {}
        }
        outgoing.extend(session.pairing.tick(self.home.now()).send);
        self.post_and_settle(&client, &mut session, outgoing).await?;
        self.save_pairing(&session)?;
        Ok(session.view())
    }

    /// Queues `outgoing` in the session, saves it, posts everything unsent in order, then
    /// pins the peer or cleans up if the pairing ended. Hold the lock.
    async fn post_and_settle(&self, client: &Client, session: &mut CodeSession, outgoing: Vec<Vec<u8>>) -> Result<()> {
        session.unsent.extend(outgoing.iter().map(crate::proto::b64::encode));
        self.save_pairing(session)?;
        while let Some(first) = session.unsent.first() {
            let message = crate::proto::b64::decode(first).unwrap_or_default();
            match client.post_rendezvous(&session.nameplate, &session.side_token, &message).await {
                Ok(()) => {
                    session.unsent.remove(0);
                }
                Err(e) if e.code().is_some() => {
                    session.unsent.clear();
                    session.pairing.lost_rendezvous();
                    break;
                }
                // Unreachable: keep the rest for the next drive.
                Err(_) => break,
            }
        }
        if session.settled || !session.pairing.is_finished() {
            return Ok(());
        }
        let account = self.account()?;
        if let Some(paired) = session.pairing.paired() {
            let mut peers = self.home.load::<Peers>()?.unwrap_or(Peers { v: 1, ..Peers::default() });
            super::pin(&mut peers, paired, Some(session.grant_id.clone()), self.home.now(), true);
            self.home.save(&peers)?;
        } else {
            let _ = self.our_client(&account)?.revoke(&account.slot, &account.owner_token, &session.grant_id).await;
            if let Some((card, token)) = session.pairing.peer_to_notify() {
                // Our vote was cast: the peer may count us as paired. Tell it otherwise.
                let peer =
                    Peer::new(card.clone(), token.clone(), crate::proto::pairing::Tier::Verified, self.home.now());
                let close = Event::new(
                    &self.identity,
                    card.did().clone(),
                    Kind::Close,
                    serde_json::Value::Null,
                    self.home.now(),
                    &mut OsRng,
                );
                if let Ok(sealed) = seal_for(&self.identity, &peer, close) {
                    let _ = super::deliver_sealed(&peer, &sealed).await;
                }
            }
        }
        // Burn the nameplate either way: a code is good for one pairing and one guess.
        let _ = client.close_nameplate(&session.nameplate, &session.side_token).await;
        session.settled = true;
        Ok(())
    }

    /// Drives every unsettled pairing one step (used by `pair-list`).
    pub async fn pair_drive_all(&self, wait: Duration) -> Result<Vec<PairView>> {
        for session in self.pairings()? {
            if !session.settled {
                self.pair_drive(&session.nameplate, wait).await?;
            }
        }
        self.pair_list()
    }

    /// `wire pair-list`, without driving.
    pub fn pair_list(&self) -> Result<Vec<PairView>> {
        Ok(self.pairings()?.iter().map(CodeSession::view).collect())
    }

    /// `wire pair-confirm CODE DIGITS`: the digits the operator read on the *other* screen.
    pub async fn pair_confirm(&self, key: &str, digits: &str) -> Result<PairView> {
        self.pair_drive(key, Duration::ZERO).await?;
        {
            let _lock = self.home.lock()?;
            let mut session = self.find_session(key)?;
            let progress = session.pairing.confirm(digits, self.home.now())?;
            let client = Client::new(RelayUrl::parse(&session.relay)?);
            self.post_and_settle(&client, &mut session, progress.send).await?;
            self.save_pairing(&session)?;
        }
        // The peer's vote may already be waiting.
        self.pair_drive(key, Duration::ZERO).await
    }

    /// The operator saw different digits on the two screens: ends the pairing (both sides).
    pub async fn pair_mismatch(&self, key: &str) -> Result<PairView> {
        let _lock = self.home.lock()?;
        let mut session = self.find_session(key)?;
        let progress = session.pairing.mismatch(self.home.now())?;
        let client = Client::new(RelayUrl::parse(&session.relay)?);
        self.post_and_settle(&client, &mut session, progress.send).await?;
        self.save_pairing(&session)?;
        Ok(session.view())
    }

    /// `wire pair-cancel CODE`.
    pub async fn pair_cancel(&self, key: &str) -> Result<PairView> {
        let _lock = self.home.lock()?;
        let mut session = self.find_session(key)?;
        let progress = session.pairing.cancel()?;
        let client = Client::new(RelayUrl::parse(&session.relay)?);
        self.post_and_settle(&client, &mut session, progress.send).await?;
        self.save_pairing(&session)?;
        Ok(session.view())
    }
}
