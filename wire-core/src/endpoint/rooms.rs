//! Rooms in the endpoint (docs/PROTOCOL.md, "Rooms"): create, add over the 1:1 channel,
//! send, read, members, remove, leave; and the room work of every pull.
//!
//! Adding a paired peer takes three control messages over the 1:1 channel: we ask for a key
//! package (`room_kp_request`), its endpoint answers with one (`room_key_package`), and once
//! our commit adding it is read back from the room slot as its epoch's first commit, we send
//! the Welcome with a member grant (`room_welcome`). What arrives on the 1:1 channel is
//! applied with the pull's batch, before its ack; what needs the room's relay (commits,
//! grants, reading the room) runs after the pull ([`Endpoint::step_rooms`]), one room at a
//! time, so a failing room relay delays only that room.

use rand_core::OsRng;
use serde::Serialize;

use super::{Endpoint, EndpointError, Face, Result};
use crate::client::{Client, RelayUrl};
use crate::home::{HomeError, InboxLine, OutboxItem, Peer, Peers};

use crate::proto::api::{GrantKind, GrantRequest};
use crate::proto::did::Did;
use crate::proto::event::{ControlBody, Event, Kind};
use crate::proto::identity::Identity;
use crate::proto::lineage::SignedStatement;
use crate::proto::time::UnixMillis;
use crate::room::mls::{self, Provider};
use crate::room::{self, PendingAdd, Policy, Role, Room, RoomsFile, Standing};

mod control;
mod invite;
mod sync;

/// Control type: "send me a key package for this room".
pub(crate) const KP_REQUEST: &str = "room_kp_request";
/// Control type: a key package, answering [`KP_REQUEST`].
pub(crate) const KEY_PACKAGE: &str = "room_key_package";
/// Control type: the Welcome, the room's policy, slot and a member grant.
pub(crate) const WELCOME: &str = "room_welcome";
/// Control type (from a stranger holding a room invite): its key package, card, the
/// invite's secret and a send token for the Welcome.
pub(crate) const JOIN: &str = "room_join";
/// Control type (1:1, from the owner): an admin grant for a member made admin.
pub(crate) const ADMIN: &str = "room_admin";
/// Control type inside a room (from the owner): a newer policy, signed by the room key.
pub(crate) const POLICY: &str = "room_policy";
/// The feature flag a card lists when its wire reads room control messages.
pub(crate) const FEATURE: &str = "rooms";
/// The rooms file in the home.
const FILE: &str = "rooms.json";
/// Room envelopes read per page.
const PAGE: u32 = 200;
/// A key package request older than this is forgotten (the peer never answered).
pub(super) const ASK_TTL_MS: u64 = 7 * 86_400_000;

/// Whether a control type is one of rooms'.
pub(crate) fn is_room_control(kind: &str) -> bool {
    matches!(kind, KP_REQUEST | KEY_PACKAGE | WELCOME | ADMIN | JOIN)
}

/// A room as `wire rooms` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    /// Its name.
    pub name: String,
    /// Its id (the room key's DID).
    pub id: String,
    /// Our part: owner, admin, member.
    pub role: Role,
    /// Active, removed or left.
    pub standing: Standing,
    /// Members in the roster (ourselves included).
    pub members: usize,
    /// The MLS epoch.
    pub epoch: u64,
    /// Only the owner and admins post.
    pub owner_only_write: bool,
    /// The welcome text (peer-authored when we did not create the room).
    pub welcome: Option<String>,
    /// Members being added (asked for a key package, or committed, not yet welcomed).
    pub adding: usize,
    /// Envelopes evicted by the relay before we read them.
    pub missed: u64,
    /// Messages and commits refused.
    pub refused: u64,
    /// The relay of the room slot.
    pub relay: String,
}

/// One member in `wire room members`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomMember {
    /// Its face (a display identity: not a paired peer unless `paired`).
    pub face: Face,
    /// Owner, admin or member.
    pub role: Role,
    /// Whether it is one of our paired peers.
    pub paired: bool,
    /// Whether it is us.
    pub me: bool,
}

/// `wire room invite`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomInviteReport {
    /// The room.
    pub room: String,
    /// The single-use URL (quote it in a shell: it holds `&`).
    pub url: String,
    /// When it stops working.
    pub expires_at: crate::proto::time::UnixMillis,
}

/// `wire room join`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomJoinReport {
    /// The room's name, as the invite says.
    pub room: String,
    /// Who invited us (it sends the Welcome).
    pub inviter: Face,
    /// `requested`: the join request is on the inviter's relay; we are in once its wire
    /// commits and its Welcome reaches ours (`wire pull`, or the daemon).
    pub state: &'static str,
}

/// `wire room add`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomAddReport {
    /// The room.
    pub room: String,
    /// Peers asked for a key package (they join once their wire answers and we commit).
    pub asked: Vec<Face>,
    /// Peers already in the room, left as they are.
    pub already: Vec<Face>,
}

/// `wire room send`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSendReport {
    /// The room.
    pub room: String,
    /// The event id.
    pub event_id: String,
    /// Its sequence number in the room slot.
    pub seq: u64,
    /// Members who read it (the roster at this epoch, us included).
    pub members: usize,
}

/// What [`Endpoint::room_append`] posted.
pub(crate) struct Posted {
    /// The room.
    pub room: Did,
    /// Its name.
    pub name: String,
    /// The event.
    pub event: Event,
    /// Its signed document.
    pub signed: crate::proto::signed::Signed,
    /// Its sequence number in the room slot.
    pub seq: u64,
    /// Members of the room then.
    pub members: usize,
}

/// A room slot the sync engine holds a stream on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStream {
    /// The room.
    pub id: Did,
    /// Its relay.
    pub relay: String,
    /// Its slot.
    pub slot: crate::proto::api::SlotId,
    /// Our token there.
    pub token: crate::proto::secret::Token,
    /// Where our reading stands.
    pub cursor: u64,
}

/// What syncing rooms did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomSyncReport {
    /// Room work arrived on the 1:1 channel (a key package, a Welcome, a grant): the rooms
    /// should be synced next (the sync engine does).
    #[serde(skip)]
    pub due: bool,
    /// Messages stored, all rooms.
    pub received: usize,
    /// Rooms joined (from Welcomes).
    pub joined: Vec<String>,
    /// Commits of ours merged.
    pub committed: usize,
    /// Members welcomed.
    pub welcomed: usize,
    /// Envelopes evicted by a relay before we read them (the relay said so).
    pub missed: u64,
    /// Messages and commits refused.
    pub refused: usize,
    /// Rooms we were removed from.
    pub removed_from: Vec<String>,
    /// Rooms that could not be synced now, with why (they are tried again next time).
    pub failing: Vec<(String, String)>,
}

/// The rooms file and the MLS store it carries.
struct Loaded {
    file: RoomsFile,
    provider: Provider,
}

fn room_err(e: impl std::fmt::Display) -> EndpointError {
    EndpointError::Room(e.to_string())
}

/// A control event's body of type `kind` with `fields` (a struct of `room::msg`).
pub(crate) fn control(kind: &str, fields: &impl Serialize) -> serde_json::Value {
    let serde_json::Value::Object(fields) = serde_json::to_value(fields).expect("control fields serialize") else {
        unreachable!("control fields are structs")
    };
    serde_json::to_value(ControlBody { kind: kind.into(), v: 1, fields }).expect("control bodies serialize")
}

/// The typed fields of a control message.
pub(crate) fn read<T: serde::de::DeserializeOwned>(c: &ControlBody) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(c.fields.clone()))
        .map_err(|e| room_err(format!("a malformed `{}`: {e}", c.kind)))
}

/// The failpoint hook of the crash tests: with `WIRE_FAILPOINT=<name>` the process dies at
/// that step like `kill -9` (no destructors, nothing flushed).
fn failpoint(name: &str) {
    if std::env::var("WIRE_FAILPOINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

impl Endpoint {
    fn rooms_path(&self) -> std::path::PathBuf {
        self.home.root().join(FILE)
    }

    /// Reads the rooms file (empty when there is none). Hold the lock.
    fn load_rooms(&self) -> Result<Loaded> {
        let path = self.rooms_path();
        let provider = Provider::new();
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: RoomsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: e.to_string() })?;
                if !file.mls.is_empty() {
                    provider.load(&file.mls).map_err(|e| HomeError::Corrupt { path, detail: e.to_string() })?;
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RoomsFile { v: 1, ..RoomsFile::default() },
            Err(e) => return Err(HomeError::Io { path, source: e }.into()),
        };
        Ok(Loaded { file, provider })
    }

    /// Writes the rooms file with the MLS store, atomically (0600). Hold the lock.
    fn save_rooms(&self, loaded: &mut Loaded) -> Result<()> {
        loaded.file.mls = loaded.provider.to_bytes();
        let bytes = serde_json::to_vec(&loaded.file).expect("the rooms file serializes");
        let path = self.rooms_path();
        crate::files::write_atomic(&path, &bytes, Some(0o600)).map_err(|e| HomeError::Io { path, source: e })?;
        Ok(())
    }

    /// Our lineage's statements for a credential (none before the first rotation: the
    /// DID's key is current).
    fn credential_lineage(&self) -> Result<Vec<SignedStatement>> {
        let held = super::lineage::held(&self.home)?;
        Ok(if held.keys.seq == 0 { Vec::new() } else { held.statements })
    }

    /// A quiet control message to a paired peer, as an outbox item.
    fn control_item(&self, peer: &Peer, body: serde_json::Value) -> Result<OutboxItem> {
        if !peer.card.speaks(FEATURE) {
            return Err(EndpointError::Room(format!(
                "{} runs a wire without rooms; it must upgrade first",
                Face::of(peer.card.did()).nickname
            )));
        }
        let event =
            Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, self.home.now(), &mut OsRng);
        let mut item = super::seal_for(&self.identity, peer, event)?.item(peer, self.home.now())?;
        item.quiet = true;
        Ok(item)
    }

    fn find_room<'a>(rooms: &'a mut [Room], name: &str) -> Result<&'a mut Room> {
        rooms.iter_mut().find(|r| r.named(name)).ok_or_else(|| EndpointError::NoSuchRoom(name.to_owned()))
    }

    // ------------------------------------------------------------------ commands

    /// `wire room create`: a room slot on our relay, a new MLS group with us alone, and a
    /// policy signed by a fresh room key.
    pub async fn room_create(
        &self,
        name: &str,
        owner_only_write: bool,
        welcome: Option<&str>,
        rate_per_minute: Option<u32>,
    ) -> Result<RoomView> {
        room::check_name(name).map_err(room_err)?;
        let rate_per_minute = rate_per_minute.unwrap_or(room::DEFAULT_RATE);
        if rate_per_minute == 0 || rate_per_minute > room::MAX_RATE {
            return Err(room_err(format!("a room's rate is 1 to {} posts per member per minute", room::MAX_RATE)));
        }
        if welcome.is_some_and(|w| w.chars().count() > room::MAX_WELCOME) {
            return Err(room_err(format!("a welcome is at most {} characters", room::MAX_WELCOME)));
        }
        let _lock = self.home.lock()?;
        let mut loaded = self.load_rooms()?;
        if loaded.file.rooms.iter().any(|r| r.policy().name == name && r.standing == Standing::Active) {
            return Err(EndpointError::RoomExists(name.to_owned()));
        }
        let account = self.account()?;
        let url = RelayUrl::parse(&account.relay)?;
        let slot = Client::new(url.clone()).allocate_room().await?;
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut seed);
        let mut x = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut x);
        let room_key = Identity::from_secret_bytes(&seed, x);
        let policy = Policy {
            v: 1,
            room: room_key.did().clone(),
            name: name.to_owned(),
            owner: self.identity.did().clone(),
            admins: Vec::new(),
            owner_only_write,
            invite_only: true,
            welcome: welcome.map(str::to_owned),
            rate_per_minute,
            created_at: self.home.now(),
        };
        let mut wrap_key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut wrap_key);
        mls::create(&loaded.provider, &self.identity, &self.credential_lineage()?, room_key.did().as_str().as_bytes())
            .map_err(room_err)?;
        let place = room::Place { relay: url.to_string(), slot: slot.slot, token: slot.owner_token };
        let mut created =
            Room::new(room_key.did().clone(), policy.sign(&room_key), Role::Owner, place, wrap_key, 0, self.home.now());
        created.room_secret = Some(seed);
        loaded.file.rooms.push(created);
        self.save_rooms(&mut loaded)?;
        let room = loaded.file.rooms.last().expect("just pushed");
        Ok(view(room, &loaded.provider))
    }

    /// The room slots to hold streams on (active rooms), for the sync engine.
    pub fn room_streams(&self) -> Result<Vec<RoomStream>> {
        let loaded = self.load_rooms()?;
        Ok(loaded
            .file
            .rooms
            .into_iter()
            .filter(|r| r.standing == Standing::Active)
            .map(|r| RoomStream { id: r.id, relay: r.relay, slot: r.slot, token: r.token, cursor: r.cursor })
            .collect())
    }

    /// When the rooms file last changed (the sync engine re-reads its streams then).
    pub fn rooms_written(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.rooms_path()).and_then(|m| m.modified()).ok()
    }

    /// `wire rooms`.
    pub fn rooms(&self) -> Result<Vec<RoomView>> {
        let loaded = self.load_rooms()?;
        Ok(loaded.file.rooms.iter().map(|r| view(r, &loaded.provider)).collect())
    }

    /// `wire room members`: the roster (from the MLS tree) with roles from the policy.
    pub fn room_members(&self, name: &str) -> Result<Vec<RoomMember>> {
        let mut loaded = self.load_rooms()?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?.clone();
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let policy = room.policy();
        let group = mls::load(&loaded.provider, room.id.as_str().as_bytes()).map_err(room_err)?;
        Ok(group
            .as_ref()
            .map(mls::members)
            .unwrap_or_default()
            .into_iter()
            .map(|leaf| RoomMember {
                role: if leaf.did == policy.owner {
                    Role::Owner
                } else if policy.admins.contains(&leaf.did) {
                    Role::Admin
                } else {
                    Role::Member
                },
                paired: peers.get(&leaf.did).is_some(),
                me: &leaf.did == self.identity.did(),
                face: Face::of(&leaf.did),
            })
            .collect())
    }

    /// `wire room add`: asks each paired peer for a key package; they are committed and
    /// welcomed as their answers come in (on a pull, or the daemon's).
    pub async fn room_add(&self, name: &str, peer_names: &[String]) -> Result<RoomAddReport> {
        let (report, items) = {
            let _lock = self.home.lock()?;
            let mut loaded = self.load_rooms()?;
            let peers = self.home.load::<Peers>()?.unwrap_or_default();
            let room = Self::find_room(&mut loaded.file.rooms, name)?;
            if room.standing != Standing::Active || !room.policy().manages(self.identity.did()) {
                return Err(EndpointError::NotRoomManager(name.to_owned()));
            }
            let members: Vec<Did> = mls::load(&loaded.provider, room.id.as_str().as_bytes())
                .map_err(room_err)?
                .as_ref()
                .map(mls::members)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.did)
                .collect();
            let mut report = RoomAddReport { room: room.policy().name, asked: Vec::new(), already: Vec::new() };
            let mut items = Vec::new();
            for peer_name in peer_names {
                let peer = self.find_peer(&peers, peer_name)?;
                let did = peer.card.did().clone();
                if members.contains(&did) {
                    report.already.push(Face::of(&did));
                    continue;
                }
                let body =
                    control(KP_REQUEST, &room::msg::KpRequest { room: room.id.clone(), name: room.policy().name });
                items.push(self.control_item(peer, body)?);
                room.adds.retain(|a| a.did != did);
                room.adds.push(PendingAdd { did: did.clone(), key_package: None, asked_at: self.home.now() });
                report.asked.push(Face::of(&did));
            }
            for item in &items {
                self.home.queue(item)?;
            }
            self.save_rooms(&mut loaded)?;
            (report, items)
        };
        if !items.is_empty() {
            self.flush().await?;
        }
        Ok(report)
    }

    /// `wire room admin`: (the owner) makes a member an admin. A newer policy, signed by the
    /// room key, is posted in the room; the admin grant travels over our 1:1 channel, so the
    /// member must be a paired peer.
    pub async fn room_admin(&self, name: &str, member: &str) -> Result<RoomView> {
        let view = {
            let _lock = self.home.lock()?;
            let mut loaded = self.load_rooms()?;
            let peers = self.home.load::<Peers>()?.unwrap_or_default();
            let room = Self::find_room(&mut loaded.file.rooms, name)?;
            let (Some(seed), Standing::Active) = (room.room_secret, room.standing) else {
                return Err(EndpointError::NotRoomManager(name.to_owned()));
            };
            let peer = self.find_peer(&peers, member)?;
            let did = peer.card.did().clone();
            let mut group = mls::load(&loaded.provider, room.id.as_str().as_bytes())
                .map_err(room_err)?
                .ok_or_else(|| room_err("the room's group state is missing"))?;
            if !mls::members(&group).iter().any(|l| l.did == did) {
                return Err(room_err(format!("{member} is not in `{name}`; add it first")));
            }
            let mut policy = room.policy();
            if !policy.admins.contains(&did) {
                policy.admins.push(did.clone());
            }
            policy.created_at = UnixMillis(self.home.now().0.max(policy.created_at.0 + 1));
            let signed = policy.sign(&Identity::from_secret_bytes(&seed, [0; 32]));
            let client = room_client(room)?;
            let grant = client
                .grant(&room.slot, &room.token, &GrantRequest { kind: GrantKind::Admin, ttl_secs: None, uses: None })
                .await?;
            room.grants.push((did.clone(), grant.grant_id));
            let body = control(ADMIN, &room::msg::Admin { room: room.id.clone(), token: grant.token });
            self.home.queue(&self.control_item(peer, body)?)?;
            // The policy goes to every member inside the room.
            let body = control(POLICY, &room::msg::PolicyUpdate { policy: signed.clone() });
            let event = Event::new(&self.identity, room.id.clone(), Kind::Control, body, self.home.now(), &mut OsRng);
            let signed_event = event.sign(&self.identity).map_err(room_err)?;
            let plaintext = serde_json::to_vec(signed_event.signed()).expect("signed documents serialize");
            let ciphertext =
                mls::encrypt(&mut group, &loaded.provider, &self.identity, &plaintext).map_err(room_err)?;
            let env = room::wrap(&room.wrap_key, &ciphertext, &mut OsRng)
                .ok_or_else(|| room_err("the policy is too large for a room envelope"))?;
            room.policy = signed;
            self.save_rooms(&mut loaded)?;
            let room = Self::find_room(&mut loaded.file.rooms, name)?;
            client.append(&room.slot, &room.token, &env).await?;
            view(room, &loaded.provider)
        };
        self.flush().await?;
        Ok(view)
    }

    /// `wire room remove`: commits the removal and revokes the member's grant once the
    /// commit is read back.
    pub async fn room_remove(&self, name: &str, member: &str) -> Result<RoomSyncReport> {
        {
            let _lock = self.home.lock()?;
            let mut loaded = self.load_rooms()?;
            let room = Self::find_room(&mut loaded.file.rooms, name)?;
            if room.standing != Standing::Active || !room.policy().manages(self.identity.did()) {
                return Err(EndpointError::NotRoomManager(name.to_owned()));
            }
            let group = mls::load(&loaded.provider, room.id.as_str().as_bytes()).map_err(room_err)?;
            let roster = group.as_ref().map(mls::members).unwrap_or_default();
            let target = roster
                .iter()
                .find(|l| l.did.as_str() == member || Face::of(&l.did).nickname == member)
                .ok_or_else(|| room_err(format!("no member `{member}` in this room (`wire room members`)")))?;
            if &target.did == self.identity.did() {
                return Err(room_err("to leave a room, use `wire room leave`"));
            }
            if !room.removes.contains(&target.did) {
                room.removes.push(target.did.clone());
            }
            room.adds.retain(|a| a.did != target.did);
            self.save_rooms(&mut loaded)?;
        }
        self.sync_rooms(Some(name)).await
    }

    /// `wire room leave`: tells the room (a proposal its managers commit) and stops reading
    /// it; what was received stays in the room's inbox.
    pub async fn room_leave(&self, name: &str) -> Result<RoomView> {
        let _lock = self.home.lock()?;
        let mut loaded = self.load_rooms()?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?;
        if room.role == Role::Owner {
            return Err(room_err("the owner cannot leave its room (it holds the room key); remove the others"));
        }
        if let Some(mut group) = mls::load(&loaded.provider, room.id.as_str().as_bytes()).map_err(room_err)? {
            if room.standing == Standing::Active
                && let Ok(proposal) = mls::propose_leave(&mut group, &loaded.provider, &self.identity)
                && let Some(env) = room::wrap(&room.wrap_key, &proposal, &mut OsRng)
            {
                // Best effort: the managers also drop a member whose grant they revoke.
                let _ = room_client(room)?.append(&room.slot, &room.token, &env).await;
            }
            mls::delete(&mut group, &loaded.provider).map_err(room_err)?;
        }
        room.standing = Standing::Left;
        let v = view(room, &loaded.provider);
        self.save_rooms(&mut loaded)?;
        Ok(v)
    }

    /// `wire room send`: one signed event, encrypted for the room's epoch, one append.
    pub async fn room_send(
        &self,
        name: &str,
        kind: &str,
        body: serde_json::Value,
        mentions: &[String],
        reply_to: Option<&str>,
    ) -> Result<RoomSendReport> {
        let kind: Kind = kind.parse()?;
        let reply_to = reply_to
            .map(|r| r.parse::<crate::proto::event::EventId>())
            .transpose()
            .map_err(|_| room_err("`reply_to` is an event id (32 hex digits)"))?;
        if kind.is_protocol() {
            return Err(EndpointError::ProtocolKind(kind));
        }
        let mut mentioned = Vec::new();
        let posted = self
            .room_append(name, |room, roster| {
                for m in mentions {
                    let leaf = roster
                        .iter()
                        .find(|l| l.did.as_str() == m || Face::of(&l.did).nickname == *m)
                        .ok_or_else(|| room_err(format!("no member `{m}` to mention (`wire room members`)")))?;
                    mentioned.push(leaf.did.clone());
                }
                let body =
                    serde_json::to_value(room::msg::Post { body, mentions: mentioned }).expect("posts serialize");
                let event = Event::new(&self.identity, room.clone(), kind, body, self.home.now(), &mut OsRng);
                Ok(match reply_to {
                    Some(id) => event.replying_to(id),
                    None => event,
                })
            })
            .await?;
        let line = InboxLine { event: posted.event.clone(), received_at: self.home.now(), signed: posted.signed };
        self.home.append_room_inbox(&posted.room, &[line])?;
        Ok(RoomSendReport {
            room: posted.name,
            event_id: posted.event.id.to_string(),
            seq: posted.seq,
            members: posted.members,
        })
    }

    /// Signs the event `make` gives (to the room, for its roster), encrypts it in the
    /// epoch the room is in (caught up first) and appends it to the room slot.
    pub(crate) async fn room_append(
        &self,
        name: &str,
        make: impl FnOnce(&Did, &[mls::Leaf]) -> Result<Event>,
    ) -> Result<Posted> {
        self.sync_rooms(Some(name)).await?;
        let _lock = self.home.lock()?;
        let mut loaded = self.load_rooms()?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?;
        if room.standing != Standing::Active {
            return Err(EndpointError::RoomClosed(format!("you are no longer in `{name}`")));
        }
        let policy = room.policy();
        if !policy.may_post(self.identity.did()) {
            return Err(EndpointError::RoomClosed(format!("only the owner and admins post in `{name}`")));
        }
        let mut group = mls::load(&loaded.provider, room.id.as_str().as_bytes())
            .map_err(room_err)?
            .ok_or_else(|| room_err("the room's group state is missing"))?;
        let roster = mls::members(&group);
        let event = make(&room.id, &roster)?;
        let signed = event.clone().sign(&self.identity).map_err(room_err)?;
        let plaintext = serde_json::to_vec(signed.signed()).expect("signed documents serialize");
        let ciphertext = mls::encrypt(&mut group, &loaded.provider, &self.identity, &plaintext).map_err(room_err)?;
        let env = room::wrap(&room.wrap_key, &ciphertext, &mut OsRng)
            .ok_or_else(|| room_err("the message is too large for a room envelope"))?;
        // The ratchet moved: saved before the post, so a crash cannot reuse its key.
        self.save_rooms(&mut loaded)?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?;
        let seq = room_client(room)?.append(&room.slot, &room.token, &env).await?.seq;
        Ok(Posted {
            room: room.id.clone(),
            name: policy.name,
            event,
            signed: signed.signed().clone(),
            seq,
            members: roster.len(),
        })
    }

    /// `wire room wait`: the room's new messages that mention us (every new one with `all`),
    /// oldest first, at most `limit`; waits until there is one or `timeout` passes, woken
    /// by the sync engine (`wake`), never a timer. Each new line is looked at once: those
    /// not for us are passed over here (pile-on control) and stay in `wire room tail`.
    pub async fn room_wait(
        &self,
        name: &str,
        all: bool,
        limit: usize,
        timeout: std::time::Duration,
        wake: &mut tokio::sync::watch::Receiver<u64>,
    ) -> Result<Vec<InboxLine>> {
        let deadline = tokio::time::Instant::now() + timeout.min(super::MAX_WAIT);
        // What is on the relay now is read before the first look.
        let _ = self.sync_rooms(Some(name)).await;
        loop {
            wake.borrow_and_update();
            let found = {
                let _lock = self.home.lock()?;
                let mut loaded = self.load_rooms()?;
                let room = Self::find_room(&mut loaded.file.rooms, name)?;
                let lines = self.home.read_room_tail(&room.id, usize::MAX)?;
                // A rotated room inbox starts over.
                let seen = if room.seen as usize > lines.len() { 0 } else { room.seen as usize };
                let me = self.identity.did().as_str();
                let mut found: Vec<InboxLine> = Vec::new();
                let mut taken = seen;
                for line in &lines[seen..] {
                    if found.len() == limit {
                        break;
                    }
                    taken += 1;
                    let mentioned = line.event.body["mentions"].as_array().is_some_and(|m| m.iter().any(|d| d == me));
                    if line.event.from != *self.identity.did() && (all || mentioned) {
                        found.push(line.clone());
                    }
                }
                if taken != seen {
                    room.seen = taken as u64;
                    self.save_rooms(&mut loaded)?;
                }
                found
            };
            if !found.is_empty() {
                return Ok(found);
            }
            if !matches!(tokio::time::timeout_at(deadline, wake.changed()).await, Ok(Ok(()))) {
                return Ok(Vec::new());
            }
        }
    }

    /// `wire room tail`: the room's last `limit` messages (ours included), oldest first.
    pub fn room_tail(&self, name: &str, limit: usize) -> Result<Vec<InboxLine>> {
        let mut loaded = self.load_rooms()?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?;
        Ok(self.home.read_room_tail(&room.id, limit)?)
    }

    /// Reads every room (or one) and takes the next step of its work: commits, welcomes,
    /// revocations. One room's failure is reported and does not stop the others.
    pub async fn sync_rooms(&self, only: Option<&str>) -> Result<RoomSyncReport> {
        let _lock = self.home.lock()?;
        let mut report = RoomSyncReport::default();
        if let Some(name) = only {
            Self::find_room(&mut self.load_rooms()?.file.rooms, name)?;
        }
        self.step_rooms(only, &mut report).await?;
        Ok(report)
    }
}

fn room_client(room: &Room) -> Result<Client> {
    Ok(Client::new(RelayUrl::parse(&room.relay)?))
}

fn view(room: &Room, provider: &Provider) -> RoomView {
    let policy = room.policy();
    let group = mls::load(provider, room.id.as_str().as_bytes()).ok().flatten();
    RoomView {
        name: policy.name,
        id: room.id.to_string(),
        role: room.role,
        standing: room.standing,
        members: group.as_ref().map(|g| mls::members(g).len()).unwrap_or(0),
        epoch: group.as_ref().map(mls::epoch).unwrap_or(0),
        owner_only_write: policy.owner_only_write,
        welcome: policy.welcome,
        adding: room.adds.len(),
        missed: room.missed,
        refused: room.refused,
        relay: room.relay.clone(),
    }
}
