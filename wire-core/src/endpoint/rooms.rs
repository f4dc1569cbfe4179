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
use sha2::{Digest, Sha256};

use super::{Endpoint, EndpointError, Face, Result};
use crate::client::{Client, ClientError, RelayUrl};
use crate::home::{HomeError, InboxLine, OutboxItem, Peer, Peers};
use crate::proto::api::{ErrorCode, GrantKind, GrantRequest, SlotId};
use crate::proto::did::Did;
use crate::proto::event::{Acceptance, ControlBody, Event, Kind, SignedEvent};
use crate::proto::identity::Identity;
use crate::proto::lineage::SignedStatement;
use crate::proto::secret::Token;
use crate::proto::signed::Signed;
use crate::room::mls::{self, Incoming, Provider};
use crate::room::{self, Asked, PendingAdd, PendingCommit, Policy, Role, Room, RoomsFile, Standing};

/// Control type: "send me a key package for this room".
pub(crate) const KP_REQUEST: &str = "room_kp_request";
/// Control type: a key package, answering [`KP_REQUEST`].
pub(crate) const KEY_PACKAGE: &str = "room_key_package";
/// Control type: the Welcome, the room's policy, slot and a member grant.
pub(crate) const WELCOME: &str = "room_welcome";
/// The feature flag a card lists when its wire reads room control messages.
pub(crate) const FEATURE: &str = "rooms";
/// The rooms file in the home.
const FILE: &str = "rooms.json";
/// Room envelopes read per page.
const PAGE: u32 = 200;
/// A key package request older than this is forgotten (the peer never answered).
const ASK_TTL_MS: u64 = 7 * 86_400_000;

/// Whether a control type is one of rooms'.
pub(crate) fn is_room_control(kind: &str) -> bool {
    matches!(kind, KP_REQUEST | KEY_PACKAGE | WELCOME)
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

/// What syncing rooms did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomSyncReport {
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

fn control(kind: &str, fields: serde_json::Value) -> serde_json::Value {
    let serde_json::Value::Object(fields) = fields else { unreachable!("control fields are objects") };
    serde_json::to_value(ControlBody { kind: kind.into(), v: 1, fields }).expect("control bodies serialize")
}

fn field<'a>(c: &'a ControlBody, name: &str) -> Result<&'a serde_json::Value> {
    c.fields.get(name).ok_or_else(|| room_err(format!("`{}` without `{name}`", c.kind)))
}

fn field_str<'a>(c: &'a ControlBody, name: &str) -> Result<&'a str> {
    field(c, name)?.as_str().ok_or_else(|| room_err(format!("`{}`: `{name}` is not a string", c.kind)))
}

fn field_bytes(c: &ControlBody, name: &str) -> Result<Vec<u8>> {
    crate::proto::b64::decode(field_str(c, name)?).map_err(|_| room_err(format!("`{}`: `{name}` is not base64url", c.kind)))
}

fn field_did(c: &ControlBody, name: &str) -> Result<Did> {
    Did::parse(field_str(c, name)?).map_err(room_err)
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
        let event = Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, self.home.now(), &mut OsRng);
        let (event_id, envelope) = super::seal_for(&self.identity, peer, event)?;
        let mut item = OutboxItem::to_peer(peer, event_id, envelope, self.home.now())
            .ok_or(crate::proto::pairing::PairingError::NoEndpoint)?;
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
        loaded.file.rooms.push(Room {
            id: room_key.did().clone(),
            policy: policy.sign(&room_key),
            role: Role::Owner,
            standing: Standing::Active,
            relay: url.to_string(),
            slot: slot.slot,
            token: slot.owner_token,
            wrap_key,
            room_secret: Some(seed),
            cursor: 0,
            adds: Vec::new(),
            removes: Vec::new(),
            commit: None,
            grants: Vec::new(),
            missed: 0,
            refused: 0,
            joined_at: self.home.now(),
        });
        self.save_rooms(&mut loaded)?;
        let room = loaded.file.rooms.last().expect("just pushed");
        Ok(view(room, &loaded.provider))
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
                let body = control(KP_REQUEST, serde_json::json!({ "room": room.id, "name": room.policy().name }));
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
    ) -> Result<RoomSendReport> {
        let kind: Kind = kind.parse()?;
        if kind.is_protocol() {
            return Err(EndpointError::ProtocolKind(kind));
        }
        // Catch up first: the message goes out in the epoch the room is in.
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
        let mut mentioned = Vec::new();
        for m in mentions {
            let leaf = roster
                .iter()
                .find(|l| l.did.as_str() == m || Face::of(&l.did).nickname == *m)
                .ok_or_else(|| room_err(format!("no member `{m}` to mention (`wire room members`)")))?;
            mentioned.push(leaf.did.clone());
        }
        let body = serde_json::json!({ "body": body, "mentions": mentioned });
        let event = Event::new(&self.identity, room.id.clone(), kind, body, self.home.now(), &mut OsRng);
        let signed = event.clone().sign(&self.identity).map_err(room_err)?;
        let plaintext = serde_json::to_vec(signed.signed()).expect("signed documents serialize");
        let ciphertext = mls::encrypt(&mut group, &loaded.provider, &self.identity, &plaintext).map_err(room_err)?;
        let env = room::wrap(&room.wrap_key, &ciphertext, &mut OsRng)
            .ok_or_else(|| room_err("the message is too large for a room envelope"))?;
        // The ratchet moved: saved before the post, so a crash cannot reuse its key.
        self.save_rooms(&mut loaded)?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?;
        let seq = room_client(room)?.append(&room.slot, &room.token, &env).await?.seq;
        let line = InboxLine { event: event.clone(), received_at: self.home.now(), signed: signed.signed().clone() };
        self.home.append_room_inbox(&room.id, &[line])?;
        Ok(RoomSendReport {
            room: policy.name,
            event_id: event.id.to_string(),
            seq,
            members: roster.len(),
        })
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

    // ------------------------------------------------------------------ the 1:1 side

    /// Applies room control messages that came with a pull's batch; returns what to send
    /// back (queued with the batch, before its ack). Hold the lock.
    pub(super) fn take_room_controls(
        &self,
        controls: Vec<(Did, ControlBody)>,
        peers: &Peers,
        report: &mut RoomSyncReport,
    ) -> Result<Vec<OutboxItem>> {
        if controls.is_empty() {
            return Ok(Vec::new());
        }
        let mut loaded = self.load_rooms()?;
        let now = self.home.now();
        loaded.file.asked.retain(|a| a.at.0 + ASK_TTL_MS > now.0);
        let mut out = Vec::new();
        for (sender, c) in controls {
            let Some(peer) = peers.get(&sender) else { continue };
            let applied = match c.kind.as_str() {
                KP_REQUEST => (|| {
                    let room = field_did(&c, "room")?;
                    let kp = mls::key_package(&loaded.provider, &self.identity, &self.credential_lineage()?)
                        .map_err(room_err)?;
                    loaded.file.asked.retain(|a| !(a.room == room && a.by == sender));
                    loaded.file.asked.push(Asked { room: room.clone(), by: sender.clone(), at: now });
                    let body = control(
                        KEY_PACKAGE,
                        serde_json::json!({ "room": room, "key_package": crate::proto::b64::encode(kp) }),
                    );
                    out.push(self.control_item(peer, body)?);
                    Ok(())
                })(),
                KEY_PACKAGE => (|| {
                    let room_id = field_did(&c, "room")?;
                    let bytes = field_bytes(&c, "key_package")?;
                    let (_, did) = mls::read_key_package(&loaded.provider, &bytes).map_err(room_err)?;
                    if did != sender {
                        return Err(room_err("a key package for another identity than its sender"));
                    }
                    let room = loaded.file.rooms.iter_mut().find(|r| r.id == room_id);
                    let add = room.and_then(|r| r.adds.iter_mut().find(|a| a.did == sender));
                    match add {
                        Some(add) => {
                            add.key_package = Some(bytes);
                            Ok(())
                        }
                        None => Err(room_err("a key package nobody asked for")),
                    }
                })(),
                WELCOME => self.take_welcome(&mut loaded, &sender, &c, report),
                _ => Ok(()),
            };
            if let Err(e) = applied {
                report.refused += 1;
                self.home.reject(&crate::home::Rejected {
                    at: now,
                    seq: 0,
                    reason: format!("room message `{}` from {}: {e}", c.kind, Face::of(&sender).nickname),
                })?;
            }
        }
        self.save_rooms(&mut loaded)?;
        Ok(out)
    }

    fn take_welcome(
        &self,
        loaded: &mut Loaded,
        sender: &Did,
        c: &ControlBody,
        report: &mut RoomSyncReport,
    ) -> Result<()> {
        let room_id = field_did(c, "room")?;
        if !loaded.file.asked.iter().any(|a| a.room == room_id && &a.by == sender) {
            return Err(room_err("a welcome to a room we gave this peer no key package for"));
        }
        let after = field(c, "after")?.as_u64().ok_or_else(|| room_err("`after` is not a number"))?;
        if loaded.file.rooms.iter().any(|r| r.id == room_id && r.standing == Standing::Active && r.cursor >= after) {
            return Ok(()); // a repeat
        }
        // Added again after a removal: the old group goes.
        if let Some(mut old) = mls::load(&loaded.provider, room_id.as_str().as_bytes()).map_err(room_err)? {
            mls::delete(&mut old, &loaded.provider).map_err(room_err)?;
        }
        let policy: Signed = serde_json::from_value(field(c, "policy")?.clone()).map_err(room_err)?;
        let parsed = Policy::verify(&policy, &room_id).map_err(room_err)?;
        let welcome = field_bytes(c, "welcome")?;
        let (group, adder) = mls::join(&loaded.provider, &welcome).map_err(room_err)?;
        if &adder != sender || group.group_id().as_slice() != room_id.as_str().as_bytes() {
            return Err(room_err("a welcome from another member than its sender, or to another group"));
        }
        let wrap_key = crate::proto::b64::decode_array::<32>(field_str(c, "wrap_key")?)
            .ok_or_else(|| room_err("`wrap_key` is not 32 bytes"))?;
        let slot = SlotId::new(field_str(c, "slot")?.to_owned()).map_err(room_err)?;
        let relay = RelayUrl::parse(field_str(c, "relay")?).map_err(room_err)?.to_string();
        let token: Token = serde_json::from_value(field(c, "token")?.clone()).map_err(room_err)?;
        let role = if parsed.admins.contains(self.identity.did()) { Role::Admin } else { Role::Member };
        loaded.file.rooms.retain(|r| r.id != room_id);
        loaded.file.asked.retain(|a| a.room != room_id);
        loaded.file.rooms.push(Room {
            id: room_id,
            policy,
            role,
            standing: Standing::Active,
            relay,
            slot,
            token,
            wrap_key,
            room_secret: None,
            cursor: after,
            adds: Vec::new(),
            removes: Vec::new(),
            commit: None,
            grants: Vec::new(),
            missed: 0,
            refused: 0,
            joined_at: self.home.now(),
        });
        report.joined.push(parsed.name);
        Ok(())
    }

    // ------------------------------------------------------------------ the room side

    /// Syncs each active room (or `only`) and takes the next step of its work. Hold the lock.
    pub(super) async fn step_rooms(&self, only: Option<&str>, report: &mut RoomSyncReport) -> Result<()> {
        let loaded = self.load_rooms()?;
        let ids: Vec<(Did, String)> = loaded
            .file
            .rooms
            .iter()
            .filter(|r| r.standing == Standing::Active && only.is_none_or(|n| r.named(n)))
            .map(|r| (r.id.clone(), r.policy().name))
            .collect();
        drop(loaded);
        for (id, name) in ids {
            if let Err(e) = self.step_room(&id, report).await {
                report.failing.push((name, e.to_string()));
                if only.is_some() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One room: read what is new; send what is due; commit waiting adds and removals and
    /// read the commit back (at most a few rounds: a commit that loses its epoch is made
    /// again in the next).
    async fn step_room(&self, id: &Did, report: &mut RoomSyncReport) -> Result<()> {
        for _round in 0..4 {
            self.read_room(id, report).await?;
            self.send_due(id, report).await?;
            if !self.commit_waiting(id).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads the room slot past our cursor and applies it, page by page: inbox lines
    /// first, then the rooms file (MLS state and cursor in one write).
    async fn read_room(&self, id: &Did, report: &mut RoomSyncReport) -> Result<()> {
        loop {
            let mut loaded = self.load_rooms()?;
            let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(()) };
            if room.standing != Standing::Active {
                return Ok(());
            }
            let client = room_client(room)?;
            let page = match client.list(&room.slot, &room.token, Some(room.cursor), PAGE).await {
                Ok(page) => page,
                Err(e @ ClientError::Api { code: ErrorCode::Forbidden, .. }) => {
                    // Our grant was revoked: we were removed (the commit may be evicted).
                    room.standing = Standing::Removed;
                    report.removed_from.push(room.policy().name);
                    self.save_rooms(&mut loaded)?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(missed) = page.missed {
                room.missed += missed;
                report.missed += missed;
            }
            let Some(last) = page.events.last().map(|e| e.seq) else { return Ok(()) };
            let mut group = mls::load(&loaded.provider, id.as_str().as_bytes())
                .map_err(room_err)?
                .ok_or_else(|| room_err("the room's group state is missing"))?;
            let mut lines = Vec::new();
            let recent = self.home.read_room_tail(id, 64)?;
            for stored in &page.events {
                let env_hash: [u8; 32] = Sha256::digest(&stored.envelope).into();
                let policy = room.policy();
                match self.apply_envelope(room, &mut group, &loaded.provider, stored.seq, &stored.envelope, env_hash) {
                    Ok(Some(line)) => {
                        if over_rate(&policy, &line, recent.iter().chain(lines.iter())) {
                            room.refused += 1;
                            report.refused += 1;
                        } else {
                            lines.push(line);
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        room.refused += 1;
                        report.refused += 1;
                        self.home.reject(&crate::home::Rejected {
                            at: self.home.now(),
                            seq: stored.seq,
                            reason: format!("room {}: {reason}", policy.name),
                        })?;
                    }
                }
                if room.standing != Standing::Active {
                    report.removed_from.push(policy.name);
                    break;
                }
            }
            room.cursor = last;
            // A crash between the inbox and the rooms file replays the page: drop repeats.
            let seen: std::collections::HashSet<_> =
                self.home.read_room_tail(id, 2 * PAGE as usize)?.into_iter().map(|l| l.event.id).collect();
            lines.retain(|l| !seen.contains(&l.event.id));
            report.received += lines.len();
            self.home.append_room_inbox(id, &lines)?;
            failpoint("room-after-inbox");
            self.save_rooms(&mut loaded)?;
            failpoint("room-after-state");
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Applies one room envelope; an inbox line for a message. `Err` is a refusal (recorded;
    /// the room goes on).
    fn apply_envelope(
        &self,
        room: &mut Room,
        group: &mut openmls::prelude::MlsGroup,
        provider: &Provider,
        seq: u64,
        envelope: &[u8],
        hash: [u8; 32],
    ) -> std::result::Result<Option<InboxLine>, String> {
        let policy = room.policy();
        let mls_bytes = room::unwrap(&room.wrap_key, envelope).ok_or("an envelope that does not open")?;
        // Our own commit, read back: merged if it is the first commit of its epoch.
        if let Some(commit) = room.commit.as_mut().filter(|c| c.hash == hash && c.merged_at.is_none()) {
            if mls::epoch(group) == commit.epoch && group.pending_commit().is_some() {
                mls::merge_own(group, provider).map_err(|e| e.to_string())?;
                // What the merge owes (Welcomes, revocations) is sent next.
                commit.merged_at = Some(seq);
                let (adds, removes) = (commit.adds.clone(), commit.removes.clone());
                room.adds.retain(|a| !adds.contains(&a.did));
                room.removes.retain(|d| !removes.contains(d));
            } else {
                room.commit = None;
            }
            return Ok(None);
        }
        match mls::process(group, provider, &mls_bytes).map_err(|e| e.to_string())? {
            Incoming::Own | Incoming::OtherEpoch { .. } => Ok(None),
            Incoming::Application { sender, bytes } => {
                let signed: Signed = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                let event = SignedEvent::parse(signed).map_err(|e| e.to_string())?;
                if event.claimed_sender() != &sender {
                    return Err(format!("a message signed as another member than its sender ({})", Face::of(&sender).nickname));
                }
                let key = mls::members(group)
                    .into_iter()
                    .find(|l| l.did == sender)
                    .and_then(|l| group.member_at(openmls::prelude::LeafNodeIndex::new(l.index)))
                    .and_then(|m| <[u8; 32]>::try_from(m.signature_key.as_slice()).ok())
                    .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                    .ok_or("a sender without a key in the roster")?;
                let rules = Acceptance::new(&room.id, self.home.now());
                let verified = event.verify_under(&key, &rules).map_err(|e| e.to_string())?;
                if !policy.may_post(&sender) {
                    return Err(format!("{} may not post here (owner-only-write)", Face::of(&sender).nickname));
                }
                let line = InboxLine {
                    event: verified.event().clone(),
                    received_at: self.home.now(),
                    signed: verified.signed().clone(),
                };
                Ok(Some(line))
            }
            Incoming::Commit { sender, added, removed, removes_us, staged } => {
                let self_only = added.is_empty() && removed.iter().all(|d| d == &sender);
                if !policy.manages(&sender) && !self_only {
                    return Err(format!(
                        "a roster change by {}, who is not the owner or an admin (refused)",
                        Face::of(&sender).nickname
                    ));
                }
                if room.commit.as_ref().is_some_and(|c| c.merged_at.is_none()) {
                    // Ours lost the epoch: drop it; its work waits and is committed again.
                    room.commit = None;
                    mls::discard_own(group, provider).map_err(|e| e.to_string())?;
                }
                mls::merge(group, provider, *staged).map_err(|e| e.to_string())?;
                room.adds.retain(|a| !added.contains(&a.did));
                room.removes.retain(|d| !removed.contains(d));
                if removes_us {
                    room.standing = Standing::Removed;
                }
                Ok(None)
            }
            Incoming::Proposal { sender, removes, .. } => {
                // A member leaving: its managers remove it with their next commit.
                if removes.as_ref() == Some(&sender) && policy.manages(self.identity.did()) && !room.removes.contains(&sender)
                {
                    room.removes.push(sender);
                }
                Ok(None)
            }
        }
    }

    /// Sends what a merged commit of ours owes: a Welcome (with a member grant) to each
    /// member it added, a revocation for each it removed.
    async fn send_due(&self, id: &Did, report: &mut RoomSyncReport) -> Result<()> {
        let mut loaded = self.load_rooms()?;
        let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(()) };
        let Some((commit, after)) = room.commit.clone().and_then(|c| c.merged_at.map(|at| (c, at))) else {
            return Ok(());
        };
        let client = room_client(room)?;
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut items = Vec::new();
        for did in &commit.adds {
            let Some(peer) = peers.get(did) else { continue };
            let grant = match room.grants.iter().find(|(d, _)| d == did) {
                Some(_) => None,
                None => Some(
                    client.grant(&room.slot, &room.token, &GrantRequest { kind: GrantKind::Member, ttl_secs: None, uses: None }).await?,
                ),
            };
            let Some(grant) = grant else { continue };
            room.grants.push((did.clone(), grant.grant_id.clone()));
            let body = control(
                WELCOME,
                serde_json::json!({
                    "room": room.id,
                    "policy": room.policy,
                    "relay": room.relay,
                    "slot": room.slot,
                    "token": grant.token,
                    "wrap_key": crate::proto::b64::encode(room.wrap_key),
                    "welcome": crate::proto::b64::encode(commit.welcome.as_deref().unwrap_or_default()),
                    "after": after,
                }),
            );
            items.push(self.control_item(peer, body)?);
        }
        for did in &commit.removes {
            for (_, grant_id) in room.grants.iter().filter(|(d, _)| d == did) {
                match client.revoke(&room.slot, &room.token, grant_id).await {
                    Ok(_) | Err(ClientError::Api { code: ErrorCode::NotFound, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            room.grants.retain(|(d, _)| d != did);
        }
        room.commit = None;
        for item in &items {
            self.home.queue(item)?;
        }
        self.save_rooms(&mut loaded)?;
        if !items.is_empty() {
            let mut pull = super::PullReport::default();
            self.flush_outbox(&mut pull).await?;
        }
        report.welcomed += commit.adds.len();
        report.committed += 1;
        Ok(())
    }

    /// Commits waiting adds (with key packages) or removals, posts the commit and leaves it
    /// pending until it is read back. `true` when a commit is in flight.
    async fn commit_waiting(&self, id: &Did) -> Result<bool> {
        let mut loaded = self.load_rooms()?;
        let Some(room) = loaded.file.rooms.iter_mut().find(|r| &r.id == id) else { return Ok(false) };
        if room.standing != Standing::Active {
            return Ok(false);
        }
        if room.commit.is_none() {
            if !room.policy().manages(self.identity.did()) {
                return Ok(false);
            }
            let mut group = mls::load(&loaded.provider, id.as_str().as_bytes())
                .map_err(room_err)?
                .ok_or_else(|| room_err("the room's group state is missing"))?;
            let roster = mls::members(&group);
            let leaves: Vec<_> = roster
                .iter()
                .filter(|l| room.removes.contains(&l.did))
                .map(|l| openmls::prelude::LeafNodeIndex::new(l.index))
                .collect();
            room.removes.retain(|d| roster.iter().any(|l| &l.did == d));
            let epoch = mls::epoch(&group);
            let (out, adds, removes) = if !leaves.is_empty() {
                let removes = room.removes.clone();
                (mls::remove(&mut group, &loaded.provider, &self.identity, &leaves).map_err(room_err)?, vec![], removes)
            } else {
                room.adds.retain(|a| !roster.iter().any(|l| l.did == a.did));
                let ready: Vec<(Did, Vec<u8>)> =
                    room.adds.iter().filter_map(|a| a.key_package.clone().map(|k| (a.did.clone(), k))).collect();
                if ready.is_empty() {
                    return Ok(false);
                }
                let mut kps = Vec::new();
                let mut adds = Vec::new();
                for (did, bytes) in ready {
                    match mls::read_key_package(&loaded.provider, &bytes) {
                        Ok((kp, _)) => {
                            kps.push(kp);
                            adds.push(did);
                        }
                        Err(_) => room.adds.retain(|a| a.did != did),
                    }
                }
                if kps.is_empty() {
                    self.save_rooms(&mut loaded)?;
                    return Ok(false);
                }
                (mls::add(&mut group, &loaded.provider, &self.identity, &kps).map_err(room_err)?, adds, vec![])
            };
            let envelope = room::wrap(&room.wrap_key, &out.commit, &mut OsRng)
                .ok_or_else(|| room_err("a commit too large for a room envelope"))?;
            room.commit = Some(PendingCommit {
                hash: Sha256::digest(&envelope).into(),
                envelope,
                posted: false,
                epoch,
                adds,
                removes,
                welcome: out.welcome,
                merged_at: None,
            });
            // Saved before the post: after a crash the same commit is posted again (the
            // relay keeps one copy by hash).
            self.save_rooms(&mut loaded)?;
            failpoint("room-commit-saved");
        }
        let room = loaded.file.rooms.iter_mut().find(|r| &r.id == id).expect("found above");
        let Some(commit) = room.commit.as_mut().filter(|c| c.merged_at.is_none()) else { return Ok(true) };
        if !commit.posted {
            room_client(room)?.append(&room.slot, &room.token, &room.commit.as_ref().expect("set").envelope).await?;
            room.commit.as_mut().expect("set").posted = true;
            self.save_rooms(&mut loaded)?;
            failpoint("room-commit-posted");
        }
        Ok(true)
    }
}

fn room_client(room: &Room) -> Result<Client> {
    Ok(Client::new(RelayUrl::parse(&room.relay)?))
}

/// Whether `line` is one post too many for its sender within a minute (the room's rate,
/// enforced by every receiver).
fn over_rate<'a>(policy: &Policy, line: &InboxLine, before: impl Iterator<Item = &'a InboxLine>) -> bool {
    let from = &line.event.from;
    let at = line.event.created_at.0;
    let recent = before
        .filter(|l| &l.event.from == from && l.event.created_at.0 <= at && l.event.created_at.0 + 60_000 > at)
        .count();
    recent >= policy.rate_per_minute as usize
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
