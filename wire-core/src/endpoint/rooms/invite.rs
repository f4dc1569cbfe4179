//! Room invites: a single-use, expiring URL that lets an agent we are not paired with join
//! a room (docs/PROTOCOL.md 14, "Joining by invite"). Neither side pins the other.

use rand_core::OsRng;

use super::{JOIN, RoomInviteReport, RoomJoinReport, control, room_err};
use crate::client::{Client, RelayUrl};
use crate::endpoint::{Endpoint, EndpointError, Face, Result};
use crate::proto::api::{GrantKind, GrantRequest};
use crate::proto::did::Did;
use crate::proto::event::{Event, Kind};
use crate::room::{self, Standing, mls};

impl Endpoint {
    /// `wire room invite`: a single-use, expiring URL that lets someone we are not paired
    /// with join: it posts its key package (sealed, with the invite's secret) to our
    /// mailbox once; we commit the add and send the Welcome. It becomes a member, not a peer.
    pub async fn room_invite(&self, name: &str, ttl: std::time::Duration) -> Result<RoomInviteReport> {
        let max = std::time::Duration::from_secs(crate::proto::api::MAX_INTRO_TTL_SECS);
        if ttl < std::time::Duration::from_secs(1) || ttl > max {
            return Err(EndpointError::InviteLimits);
        }
        let _lock = self.home.lock()?;
        let mut loaded = self.load_rooms()?;
        let account = self.account()?;
        let room = Self::find_room(&mut loaded.file.rooms, name)?;
        if room.standing != Standing::Active || !room.policy().manages(self.identity.did()) {
            return Err(EndpointError::NotRoomManager(name.to_owned()));
        }
        let grant = self
            .our_client(&account)?
            .grant(
                &account.slot,
                &account.owner_token,
                &GrantRequest { kind: GrantKind::Intro, ttl_secs: Some(ttl.as_secs()), uses: Some(1) },
            )
            .await?;
        let expires_at = grant.expires_at.unwrap_or_else(|| self.home.now().saturating_add(ttl));
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut id);
        let body = room::InviteBody {
            v: 1,
            id,
            room: room.id.clone(),
            name: room.policy().name,
            card: account.card.signed().clone(),
            relay: account.relay.clone(),
            slot: account.slot.clone(),
            intro_token: grant.token,
            secret: crate::proto::secret::Secret32::random(&mut OsRng),
            expires_at,
        };
        let url = room::RoomInvite::url(&self.identity, &body);
        let issued = room::Issued { id, room: room.id.clone(), secret: body.secret.clone(), expires_at };
        loaded.file.invites.push(issued);
        self.save_rooms(&mut loaded)?;
        Ok(RoomInviteReport { room: body.name, url, expires_at })
    }

    /// `wire room join URL`: asks to join by a room invite. Our key package, card and a
    /// send token on our mailbox (valid a day, for the Welcome) go sealed to the inviter.
    pub async fn room_join(&self, url: &str) -> Result<RoomJoinReport> {
        use crate::proto::invite::InviteError;
        let invite = room::RoomInvite::parse(url, self.home.now()).map_err(|e| match e {
            InviteError::NotAnInvite => EndpointError::Invite(InviteError::NotAnInvite).with_room_words(url),
            InviteError::CutAtAmpersand => room_err(
                "the room invite stops before `&inv=`: the shell cut it at `&`. Quote the whole URL: \
                 wire room join 'wire://room?v=1&inv=...'",
            ),
            other => other.into(),
        })?;
        let body = &invite.body;
        let inviter = invite.inviter.clone();
        let _lock = self.home.lock()?;
        let mut loaded = self.load_rooms()?;
        if loaded.file.rooms.iter().any(|r| r.id == body.room && r.standing == Standing::Active) {
            return Err(EndpointError::RoomExists(body.name.clone()));
        }
        let account = self.account()?;
        let token = self
            .our_client(&account)?
            .grant(
                &account.slot,
                &account.owner_token,
                &GrantRequest { kind: GrantKind::Send, ttl_secs: Some(86_400), uses: None },
            )
            .await?
            .token;
        let kp = mls::key_package(&loaded.provider, &self.identity, &self.credential_lineage()?).map_err(room_err)?;
        let fields = room::msg::Join {
            room: body.room.clone(),
            invite: body.id,
            secret: body.secret.clone(),
            card: account.card.signed().clone(),
            key_package: kp,
            send_token: token,
            prekeys: self.our_bundle()?,
        };
        let event = Event::new(
            &self.identity,
            inviter.did().clone(),
            Kind::Control,
            control(JOIN, &fields),
            self.home.now(),
            &mut OsRng,
        );
        let signed = event.sign(&self.identity).map_err(room_err)?;
        let env = crate::proto::envelope::seal(&signed, &inviter.x25519_public(), &mut OsRng)?;
        let now = self.home.now();
        loaded.file.asked.retain(|a| a.room != body.room);
        loaded.file.asked.push(room::Asked { room: body.room.clone(), by: inviter.did().clone(), at: now });
        loaded.file.joining.retain(|j| j.room != body.room);
        loaded.file.joining.push(room::Joining { room: body.room.clone(), card: body.card.clone(), at: now });
        self.save_rooms(&mut loaded)?;
        let client = Client::new(RelayUrl::parse(&body.relay)?);
        client.append(&body.slot, &body.intro_token, &env.0).await.map_err(|e| match e.code() {
            Some(crate::proto::api::ErrorCode::Gone) => EndpointError::InviteSpent,
            _ => EndpointError::from(e),
        })?;
        Ok(RoomJoinReport { room: body.name.clone(), inviter: Face::of(inviter.did()), state: "requested" })
    }

    /// The inviter's card of a room we asked to join, if `sender` is that inviter (its
    /// Welcome is checked under it: it is not a paired peer).
    pub(crate) fn joining_card(&self, sender: &Did) -> Option<crate::proto::card::Card> {
        let loaded = self.load_rooms().ok()?;
        let joining = loaded
            .file
            .joining
            .iter()
            .find(|j| crate::proto::card::Card::verify(j.card.clone()).is_ok_and(|c| c.did() == sender))?;
        crate::proto::card::Card::verify(joining.card.clone()).ok()
    }
}
