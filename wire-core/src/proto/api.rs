//! Relay HTTP API types, shared by the relay server and its clients (docs/PROTOCOL.md,
//! "Relay API"). JSON over HTTP; binary fields are base64url; envelopes are posted as
//! `application/octet-stream` bodies.

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use super::b64;
use super::secret::Token;
use super::signed::Signed;
use super::time::UnixMillis;

/// A mailbox id on a relay: 16 to 64 characters of base64url alphabet.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(String);

/// Not a well-formed slot id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed slot id: expected 16 to 64 characters of [A-Za-z0-9_-]")]
pub struct MalformedSlotId;

impl SlotId {
    /// Validates a slot id.
    pub fn new(text: impl Into<String>) -> Result<Self, MalformedSlotId> {
        let text = text.into();
        let ok = (16..=64).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Self(text)) } else { Err(MalformedSlotId) }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotId({})", self.0)
    }
}

impl Serialize for SlotId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SlotId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `POST /v1/slots` request body (optional: no body allocates a mailbox).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocateSlotRequest {
    /// A room slot: read by member grants, kept by retention (oldest evicted, never
    /// refused), never acked. A mailbox when false.
    #[serde(default)]
    pub room: bool,
}

/// `POST /v1/slots` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocateSlotResponse {
    /// The new slot.
    pub slot: SlotId,
    /// The owner capability: read, stream, ack, mint, revoke. The relay stores its hash.
    pub owner_token: Token,
}

/// What a grant lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// Append to the slot, until revoked. One per paired peer.
    Send,
    /// Append once to the slot's intro lane (invites), until it expires.
    Intro,
    /// Room slots only: append, list and stream that slot, until revoked.
    Member,
    /// Room slots only: what a member may, and mint and revoke member grants (no delete).
    Admin,
}

impl GrantKind {
    /// The prefix of this kind's tokens.
    pub fn token_prefix(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Intro => "intro",
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }

    /// Whether the kind reads a room slot (member or admin).
    pub fn reads_room(self) -> bool {
        matches!(self, Self::Member | Self::Admin)
    }
}

/// The longest an intro grant (an invite) may live: 30 days.
pub const MAX_INTRO_TTL_SECS: u64 = 30 * 86_400;
/// The most agents one intro grant (an invite) may admit.
pub const MAX_INTRO_USES: u32 = 100;

/// `POST /v1/slots/{id}/grants` request (owner token).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Send or intro.
    pub kind: GrantKind,
    /// Lifetime in seconds; required for intro grants, optional for send grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// How many appends the grant allows (intro grants: default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// A random grant handle for revocation (not itself a capability).
pub type GrantId = String;

/// `POST /v1/slots/{id}/grants` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantResponse {
    /// Handle to revoke the grant with.
    pub grant_id: GrantId,
    /// The capability to hand to the peer.
    pub token: Token,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<UnixMillis>,
}

/// `POST /v1/slots/{id}/events` response (send, intro or owner token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The envelope's sequence number in this slot.
    pub seq: u64,
    /// True when the same envelope bytes were already stored (the append was a no-op).
    pub duplicate: bool,
}

/// Which lane of a slot an envelope arrived on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The inbox: appended with a send, intro or owner token.
    #[default]
    Inbox,
    /// The intro lane for strangers: no token, rate-limited, one pending request per sender.
    Intro,
}

/// One stored envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnvelope {
    /// Per-slot sequence number, strictly increasing.
    pub seq: u64,
    /// The lane it arrived on.
    #[serde(default)]
    pub lane: Lane,
    /// The envelope bytes.
    #[serde(with = "b64::bytes")]
    pub envelope: Vec<u8>,
    /// Relay clock at append.
    pub received_at: UnixMillis,
}

/// `GET /v1/slots/{id}/events?after=N&limit=M` response (owner token).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListResponse {
    /// Envelopes with `seq > after`, oldest first.
    pub events: Vec<StoredEnvelope>,
    /// Whether more are waiting past the last one returned.
    pub more: bool,
    /// The relay's store incarnation (absent from relays before it): when it differs from
    /// the one a client saw last, the client re-reads from the floor (its cursor may name
    /// sequence numbers of another store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// Room slots: how many events past the cursor were evicted by retention before this
    /// reader came for them (the page starts at the floor instead). Absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// A room stream's `event: missed` frame: events the reader's cursor still wanted were
/// evicted by retention; the stream goes on from `floor`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamMissed {
    /// How many events were lost to this reader.
    pub missed: u64,
    /// The highest evicted sequence number; envelopes follow from `floor + 1`.
    pub floor: u64,
}

/// The first event of a slot's stream (`event: hello`), before any envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamHello {
    /// The relay's store incarnation, as in [`ListResponse`].
    pub incarnation: String,
}

/// `POST /v1/slots/{id}/ack` request (owner token): delete everything through `through`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Highest sequence number the client has durably stored.
    pub through: u64,
}

/// `POST /v1/slots/{id}/ack` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AckResponse {
    /// Everything through this sequence number is gone.
    pub acked_through: u64,
    /// How many envelopes this ack deleted.
    pub removed: u64,
}

/// `DELETE /v1/slots/{id}/grants/{grant_id}` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The revoked grant.
    pub revoked: GrantId,
}

/// `POST /v1/handles` request: claim `nick@relay` for a card.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimHandleRequest {
    /// The nickname; must equal the card DID's derived nickname.
    pub nick: String,
    /// The signed card to publish.
    pub card: Signed,
}

/// `GET /.well-known/wire/agent?handle=nick` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResolveHandleResponse {
    /// The handle, `nick@relay-host`.
    pub handle: String,
    /// The published signed card.
    pub card: Signed,
}

/// `POST /v1/rendezvous` response: a fresh nameplate for a SPAKE2 pairing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NameplateResponse {
    /// Short public number; the first part of the pairing code.
    pub nameplate: String,
    /// This side's capability on the nameplate.
    pub side_token: Token,
    /// When the nameplate closes if the pairing has not finished.
    pub expires_at: UnixMillis,
}

/// `POST /v1/rendezvous/{nameplate}/join` response: the second side's capability.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinResponse {
    /// This side's capability on the nameplate.
    pub side_token: Token,
    /// When the nameplate closes.
    pub expires_at: UnixMillis,
}

/// One rendezvous message from the other side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RendezvousMessage {
    /// Per-nameplate sequence number.
    pub seq: u64,
    /// The message bytes (opaque to the relay).
    #[serde(with = "b64::bytes")]
    pub body: Vec<u8>,
}

/// `GET /v1/rendezvous/{nameplate}/messages?after=N&wait=S` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RendezvousPoll {
    /// Messages from the other side with `seq > after`.
    pub messages: Vec<RendezvousMessage>,
    /// The nameplate was closed (by either side, or on timeout).
    pub closed: bool,
}

/// Header carrying the intro-lane sender tag: base64url of 16 to 64 bytes, stable per
/// (sender, recipient slot), opaque to the relay. One pending request per tag.
pub const INTRO_TAG_HEADER: &str = "wire-intro-tag";
/// Header carrying the intro-lane proof-of-work nonce (base64url, up to 32 bytes).
pub const INTRO_POW_HEADER: &str = "wire-pow";
/// Header a relay sets on intro-lane errors to say how many proof-of-work bits it wants.
pub const INTRO_POW_BITS_HEADER: &str = "wire-pow-bits";

/// Error codes (docs/PROTOCOL.md has the table with HTTP statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed request.
    BadRequest,
    /// No or unknown token.
    Unauthorized,
    /// The token exists but does not allow this.
    Forbidden,
    /// Unknown slot, grant, handle or nameplate, or an unknown route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// Handle taken, nameplate full.
    Conflict,
    /// Expired intro token, closed nameplate.
    Gone,
    /// Body larger than the limit.
    PayloadTooLarge,
    /// Slot quota exhausted.
    QuotaExceeded,
    /// Rate limit; see `Retry-After`.
    RateLimited,
    /// `after` names a sequence that was acked or expired, or is in the future.
    CursorExpired,
    /// The request's body did not arrive within the relay's request timeout.
    RequestTimeout,
    /// A fault in the relay.
    Internal,
}

/// The body of every error response: `{"error":{"code":..,"message":..}}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and human message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What happened and what to do next.
    pub message: String,
}
