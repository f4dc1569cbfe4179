//! The 1:1 side of rooms: the control messages that add a member (`room_kp_request`,
//! `room_key_package`, `room_welcome`), applied with a pull's batch before its ack.

use super::read;
use super::{ADMIN, ASK_TTL_MS, JOIN, KEY_PACKAGE, KP_REQUEST, Loaded, RoomSyncReport, WELCOME, control, room_err};
use crate::client::RelayUrl;
use crate::endpoint::{Endpoint, Face, Result};
use crate::home::{OutboxItem, Peers};
use crate::proto::did::Did;
use crate::proto::event::ControlBody;
use crate::room::{Asked, Policy, Role, Room, Standing};
use crate::room::{mls, msg};

impl Endpoint {
    /// Applies room control messages that came with a pull's batch; returns what to send
    /// back (queued with the batch, before its ack). Hold the lock.
    pub(crate) fn take_room_controls(
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
            let peer = peers.get(&sender);
            let applied = match c.kind.as_str() {
                KP_REQUEST => (|| {
                    let peer = peer.ok_or_else(|| room_err("a key package request from an unpaired sender"))?;
                    let room = read::<msg::KpRequest>(&c)?.room;
                    let kp = mls::key_package(&loaded.provider, &self.identity, &self.credential_lineage()?)
                        .map_err(room_err)?;
                    loaded.file.asked.retain(|a| !(a.room == room && a.by == sender));
                    loaded.file.asked.push(Asked { room: room.clone(), by: sender.clone(), at: now });
                    let body = control(KEY_PACKAGE, &msg::KeyPackage { room, key_package: kp });
                    out.push(self.control_item(peer, body)?);
                    Ok(())
                })(),
                KEY_PACKAGE => (|| {
                    let msg::KeyPackage { room: room_id, key_package: bytes } = read(&c)?;
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
                JOIN => self.take_join(&mut loaded, &sender, &c),
                ADMIN => (|| {
                    let msg::Admin { room: room_id, token } = read(&c)?;
                    let room = loaded.file.rooms.iter_mut().find(|r| r.id == room_id && r.standing == Standing::Active);
                    match room {
                        Some(room) if room.policy().owner == sender => {
                            room.token = token;
                            room.role = Role::Admin;
                            Ok(())
                        }
                        _ => Err(room_err("an admin grant from someone who does not own that room")),
                    }
                })(),
                _ => Ok(()),
            };
            report.due |= applied.is_ok() && c.kind != KP_REQUEST;
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

    /// A join request by room invite (its event was verified under the card it carries):
    /// the invite must be ours, unused, unexpired, for a room we manage, with its secret.
    fn take_join(&self, loaded: &mut Loaded, sender: &Did, c: &ControlBody) -> Result<()> {
        let msg::Join { room: room_id, invite: id, secret, card, key_package: bytes, send_token: token, prekeys } =
            read(c)?;
        let now = self.home.now();
        let at = loaded
            .file
            .invites
            .iter()
            .position(|i| i.id == id && i.room == room_id && i.expires_at > now && i.secret.ct_eq(&secret))
            .ok_or_else(|| room_err("a join request for an invite we did not issue, or used, or expired"))?;
        let (_, did) = mls::read_key_package(&loaded.provider, &bytes).map_err(room_err)?;
        if &did != sender {
            return Err(room_err("a key package for another identity than its sender"));
        }
        let room = loaded
            .file
            .rooms
            .iter_mut()
            .find(|r| r.id == room_id && r.standing == Standing::Active && r.policy().manages(self.identity.did()))
            .ok_or_else(|| room_err("a join request for a room we no longer manage"))?;
        loaded.file.invites.remove(at);
        room.adds.retain(|a| &a.did != sender);
        room.adds.push(crate::room::PendingAdd { did: did.clone(), key_package: Some(bytes), asked_at: now });
        room.routes.retain(|r| &r.did != sender);
        room.routes.push(crate::room::Route { did, card, token, prekeys });
        Ok(())
    }

    fn take_welcome(
        &self,
        loaded: &mut Loaded,
        sender: &Did,
        c: &ControlBody,
        report: &mut RoomSyncReport,
    ) -> Result<()> {
        let msg::Welcome { room: room_id, policy, relay, slot, token, wrap_key, welcome, after } = read(c)?;
        if !loaded.file.asked.iter().any(|a| a.room == room_id && &a.by == sender) {
            return Err(room_err("a welcome to a room we gave this peer no key package for"));
        }
        if loaded.file.rooms.iter().any(|r| r.id == room_id && r.standing == Standing::Active && r.cursor >= after) {
            return Ok(()); // a repeat
        }
        // Added again after a removal: the old group goes.
        if let Some(mut old) = mls::load(&loaded.provider, room_id.as_str().as_bytes()).map_err(room_err)? {
            mls::delete(&mut old, &loaded.provider).map_err(room_err)?;
        }
        let parsed = Policy::verify(&policy, &room_id).map_err(room_err)?;
        let (group, adder) = mls::join(&loaded.provider, &welcome).map_err(room_err)?;
        if &adder != sender || group.group_id().as_slice() != room_id.as_str().as_bytes() {
            return Err(room_err("a welcome from another member than its sender, or to another group"));
        }
        let relay = RelayUrl::parse(&relay).map_err(room_err)?.to_string();
        let role = if parsed.admins.contains(self.identity.did()) { Role::Admin } else { Role::Member };
        loaded.file.rooms.retain(|r| r.id != room_id);
        loaded.file.asked.retain(|a| a.room != room_id);
        loaded.file.joining.retain(|j| j.room != room_id);
        let place = crate::room::Place { relay, slot, token };
        loaded.file.rooms.push(Room::new(room_id, policy, role, place, wrap_key, after, self.home.now()));
        report.joined.push(parsed.name);
        Ok(())
    }
}
