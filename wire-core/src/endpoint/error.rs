//! One error model for every surface: each failure has a stable `code` agents can branch on
//! (docs/CLI.md, "Error codes") and, where there is one, a structured next step that each
//! surface says in its own words: a command for the terminal, a tool for an MCP host.

use std::fmt;

use serde::Serialize;

use crate::client::ClientError;
use crate::home::HomeError;
use crate::proto::api::ErrorCode;
use crate::proto::envelope::SealError;
use crate::proto::event::{Kind, UnknownKind};
use crate::proto::invite::InviteError;
use crate::proto::pairing::PairingError;

/// Why an operation failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Home directory trouble.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Relay trouble.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Session trouble.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    /// A pairing message was refused.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// A bad invite URL.
    #[error(transparent)]
    Invite(#[from] InviteError),
    /// The peer's receipt did not come in time (the message itself was sent).
    #[error(
        "sent, but no signed `{state}` receipt from {peer} within {secs}s; `wire sent` shows its state \
         (receipts come only from peers that want them, and not over TOFU pairings)"
    )]
    ReceiptTimeout {
        /// The peer's nickname.
        peer: String,
        /// The receipt waited for.
        state: &'static str,
        /// How long we waited.
        secs: u64,
    },
    /// No pinned peer by that name (and the pinned nickname it was probably meant to be).
    #[error(
        "no paired peer `{0}`; {1}`wire peers` lists them (pair first with `wire invite`, `wire accept` or `wire dial`)"
    )]
    UnknownPeer(String, DidYouMean),
    /// Several pinned peers share that nickname.
    #[error("`{0}` names several peers; use the full DID (`wire peers` shows them)")]
    AmbiguousPeer(String),
    /// No pending request by that name.
    #[error("no pending pair request from `{0}`; `wire pending` lists them")]
    NoSuchRequest(String),
    /// The peer's card does not list pings (an older wire).
    #[error("{0} runs a wire that does not answer pings; `wire status` on its side says whether it is online")]
    PingUnsupported(String),
    /// Too many pings to one peer in a minute.
    #[error("{0} was pinged 6 times in the last minute; wait a little")]
    PingRateLimited(String),
    /// `wire block` named ourselves.
    #[error("you cannot block yourself")]
    BlockSelf,
    /// `wire unblock` named nobody on the block list.
    #[error("`{0}` is not blocked; `wire blocked` lists the block list")]
    NotBlocked(String),
    /// Agents may not send protocol kinds.
    #[error(
        "`{0}` is a protocol kind that wire sends itself; use message, claim, decision, question, ack or heartbeat"
    )]
    ProtocolKind(Kind),
    /// An unknown kind.
    #[error(transparent)]
    Kind(#[from] UnknownKind),
    /// The message cannot be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Not `nick@relay` (or, for `whois`, not a DID either).
    #[error("`{0}` is not nick@relay{1}")]
    BadHandle(String, &'static str),
    /// A directory answered with a card that is not the one asked for.
    #[error("the relay returned a card for `{found}`, not `{asked}`; refusing it")]
    DirectoryMismatch {
        /// The nickname asked for.
        asked: String,
        /// The card's nickname.
        found: String,
    },
    /// The invite was used up or expired at the issuer's relay.
    #[error("this invite was already used or has expired; ask the issuer for a new one (`wire invite`)")]
    InviteSpent,
    /// No open code pairing with that nameplate on the relay.
    #[error(
        "there is no open pairing {nameplate} on {relay}; check the number at the start of the code and the relay (--relay)"
    )]
    NoSuchNameplate {
        /// The nameplate.
        nameplate: String,
        /// The relay asked.
        relay: String,
    },
    /// A third party joined the nameplate first.
    #[error("pairing {0} already has two sides: someone may be guessing. Ask for a new code")]
    NameplateTaken(String),
    /// `pair-join` without a code.
    #[error("joining needs the code")]
    CodeMissing,
    /// `wire init`/`wire up` named another relay than the one this identity is on.
    #[error(
        "this identity is on {current}, not {asked}; moving to another relay is not supported yet (`wire status` shows where it is)"
    )]
    OtherRelay {
        /// Where it is.
        current: String,
        /// What was asked.
        asked: String,
    },
    /// Not a file `wire revoke --export` wrote.
    #[error("{0} is not a revocation file written by `wire revoke --export`")]
    BadRevocationFile(String),
    /// The peer's identity is frozen (two successors seen) or revoked.
    #[error(
        "{peer}'s identity is {standing}; nothing is sent to it or taken from it. Pair again if its operator asks you to"
    )]
    PeerLineageClosed {
        /// The peer's nickname.
        peer: String,
        /// `frozen (two different key rotations were seen)` or `revoked by its owner`.
        standing: &'static str,
    },
    /// An invite asked for more than a relay grants.
    #[error("an invite works 1 to {max_uses} time(s) (--uses) and for 1s to 30d (--ttl)", max_uses = crate::proto::api::MAX_INTRO_USES)]
    InviteLimits,
    /// Not a mesh role name.
    #[error("`{0}` is not a role: use 1-32 lowercase letters, digits, `-` or `_` (e.g. reviewer)")]
    BadRole(String),
    /// A state this build never writes (a bug, or a hand-edited file).
    #[error("internal: {0}")]
    Internal(&'static str),
    /// A bad pairing code.
    #[error(transparent)]
    Code(#[from] crate::proto::pairing::code::CodeError),
    /// No code pairing by that code or nameplate.
    #[error("no code pairing `{0}` on this agent; `wire pair-list` shows them")]
    NoSuchPairing(String),
    /// The operator's confirmation was not possible.
    #[error(transparent)]
    Confirm(#[from] crate::proto::pairing::code::ConfirmError),
    /// Cancelling now would split the two sides.
    #[error(transparent)]
    Cancel(#[from] crate::proto::pairing::code::CancelError),
    /// The peer revoked our send token.
    #[error("{0} revoked your access (you are no longer paired); pair again to talk")]
    Revoked(String),
    /// No room of ours by that name.
    #[error("no room `{0}` here; `wire rooms` lists them")]
    NoSuchRoom(String),
    /// A room name already in use here.
    #[error("a room named `{0}` exists here already; pick another name")]
    RoomExists(String),
    /// Only the owner or an admin may do this in the room.
    #[error("only the owner or an admin of `{0}` may add or remove members")]
    NotRoomManager(String),
    /// The room does not let us post (owner-only-write), or we are no longer in it.
    #[error("{0}")]
    RoomClosed(String),
    /// A room name, welcome or message out of bounds, or a room document that does not hold.
    #[error("{0}")]
    Room(String),
    /// No job by that id here.
    #[error("no job `{0}` here; `wire job list` lists them")]
    NoSuchJob(String),
    /// A job step this side may not take now, or an id that names several jobs.
    #[error("{0}")]
    Job(String),
    /// The peer's card does not list this kind: it runs an older wire.
    #[error("{peer} runs an older wire that cannot read `{kind}` events; it must upgrade first")]
    PeerLacksKind {
        /// The peer's nickname.
        peer: String,
        /// The kind it lacks.
        kind: Kind,
    },
    /// `wire up --mailbox` for an identity that exists: its mailboxes are fixed when it is
    /// made (its peers hold tokens for those).
    #[error("this identity's mailboxes were set when it was made; `--mailbox` takes effect only for a new identity")]
    MailboxesFixed,
    /// `wire move` to the relay we are on.
    #[error("this identity is on {0} already; `wire move` takes another relay")]
    SameRelay(String),
    /// The peer publishes prekeys and we hold none it still takes: the send waits in the
    /// outbox for its fresh bundle (asked for), and is never sealed to its long-term key.
    #[error("{0} has not sent us a fresh prekey bundle; the message waits in the outbox until it does")]
    PrekeysStale(String),
    /// No address of the peer's relay answered a send.
    #[error("could not reach {0}: {1}; retry later, or send with --queue to have it delivered when the relay answers")]
    PeerUnreachable(String, ClientError),
    /// Our relay no longer knows our slot (its data was lost or reset).
    #[error(
        "relay {relay} no longer knows this agent's mailbox (its data was lost or reset); run `wire up --reregister` \
         to get a new mailbox there and re-introduce yourself to your peers (pins are kept)"
    )]
    SlotGone {
        /// The relay.
        relay: String,
    },
    /// The peer's relay no longer knows its slot: it lost its data.
    #[error(
        "{0}'s relay no longer knows its mailbox (the relay lost its data); once {0} runs `wire up --reregister` it \
         re-introduces itself and sends work again (or queue with --queue)"
    )]
    PeerSlotGone(String),
    /// `wire verify` with a fingerprint that is not the peer's.
    #[error(
        "that is not {0}'s fingerprint: do not trust this peer's key; compare again with its operator over a channel \
         you trust (its tier is unchanged)"
    )]
    FingerprintMismatch(String),
    /// `--reregister` while the relay still knows our slot.
    #[error(
        "relay {relay} still knows this agent's mailbox; there is nothing to recover (`wire status` shows its state)"
    )]
    SlotAlive {
        /// The relay.
        relay: String,
    },
    /// The peer's mailbox is full.
    #[error("{0}'s mailbox is full; it must pull before it can receive more (or queue with --queue)")]
    MailboxFull(String),
}

/// What to do after a failure, independent of the surface that says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NextStep {
    /// Set this agent up on a relay.
    SetUp,
    /// Get a new slot after relay data loss.
    Reregister,
    /// Look at the paired peers.
    ListPeers,
    /// Look at pending pair requests and answers.
    ListPending,
    /// Look at code pairings.
    ListPairings,
    /// Look at this agent's state and its relay.
    Status,
    /// Look at sent messages and their receipts.
    ListSent,
    /// Ask the other operator for a new invite.
    AskForInvite,
    /// Ask the other operator for a new pairing code.
    AskForCode,
    /// Pair with the peer again.
    PairAgain,
    /// Send again, queued for later delivery.
    SendQueued,
    /// Wait and try again.
    RetryLater,
    /// Check the relay address and that it runs.
    CheckRelay,
    /// The relay speaks TLS: use its https:// address.
    UseHttps,
    /// Trust the relay's private CA.
    SetCaFile,
    /// Upgrade this wire.
    Upgrade,
    /// The peer must upgrade.
    PeerUpgrades,
    /// Correct the argument.
    FixArgument,
    /// Look at our rooms.
    ListRooms,
    /// Look at a room's members and roles.
    RoomMembers,
    /// Look at our jobs.
    ListJobs,
}

impl NextStep {
    /// The step as a command line (terminal, AGENT.md).
    pub fn command(self) -> &'static str {
        match self {
            NextStep::SetUp => "wire up <relay>",
            NextStep::Reregister => "wire up --reregister",
            NextStep::ListPeers => "wire peers",
            NextStep::ListPending => "wire pending",
            NextStep::ListPairings => "wire pair-list",
            NextStep::Status => "wire status",
            NextStep::ListSent => "wire sent",
            NextStep::AskForInvite => "ask the issuer for a new invite (they run `wire invite`)",
            NextStep::AskForCode => "ask the other side for a new code (they run `wire pair-host`)",
            NextStep::PairAgain => "wire invite (or wire dial <nick@relay>)",
            NextStep::SendQueued => "wire send --queue <peer> <message>",
            NextStep::RetryLater => "retry later",
            NextStep::CheckRelay => "wire status",
            NextStep::UseHttps => "use the relay's https:// address",
            NextStep::SetCaFile => "set WIRE_CA_FILE to the relay's CA certificate (PEM)",
            NextStep::Upgrade => "upgrade wire",
            NextStep::PeerUpgrades => "ask the peer's operator to upgrade wire",
            NextStep::FixArgument => "wire <command> --help",
            NextStep::ListRooms => "wire rooms",
            NextStep::RoomMembers => "wire room members <room>",
            NextStep::ListJobs => "wire job list",
        }
    }

    /// The MCP tool that takes the step, when an agent can take it itself.
    pub fn tool(self) -> Option<&'static str> {
        match self {
            NextStep::ListPeers => Some("wire_peers"),
            NextStep::ListPending => Some("wire_pending"),
            NextStep::ListPairings => Some("wire_pair_list"),
            NextStep::Status | NextStep::CheckRelay => Some("wire_status"),
            NextStep::PairAgain => Some("wire_invite"),
            NextStep::ListSent => Some("wire_sent"),
            NextStep::ListRooms => Some("wire_rooms"),
            NextStep::RoomMembers => Some("wire_room_members"),
            NextStep::SetUp => Some("wire_init"),
            _ => None,
        }
    }
}

/// The pinned nickname a mistyped one was probably meant to be, said as "did you mean".
#[derive(Debug, Clone, Default)]
pub struct DidYouMean(pub Option<String>);

impl fmt::Display for DidYouMean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(nick) => write!(f, "did you mean `{nick}`? "),
            None => Ok(()),
        }
    }
}

impl DidYouMean {
    /// The candidate closest to `name` within two edits (case ignored), if any.
    pub fn among<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        let name = name.to_lowercase();
        let best = candidates
            .into_iter()
            .map(|c| (edit_distance(&name, &c.to_lowercase()), c))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d);
        DidYouMean(best.map(|(_, c)| c.to_owned()))
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A failure as every surface reports it (`--json`, MCP): code, message, next step.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Stable code (docs/CLI.md, "Error codes").
    pub code: &'static str,
    /// What happened, in words.
    pub message: String,
    /// What to do next, if there is a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<NextStep>,
}

impl Problem {
    /// The problem behind any error of this crate; other errors are `failed`.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Self {
        let (code, next) = if let Some(e) = e.downcast_ref::<EndpointError>() {
            (e.code(), e.next_step())
        } else if let Some(e) = e.downcast_ref::<ClientError>() {
            (client_code(e), client_next(e))
        } else if let Some(e) = e.downcast_ref::<HomeError>() {
            (home_code(e), home_next(e))
        } else if let Some(e) = e.downcast_ref::<crate::session::SessionError>() {
            session(e)
        } else {
            ("failed", None)
        };
        Problem { code, message: e.to_string(), next }
    }
}

fn client_code(e: &ClientError) -> &'static str {
    match e {
        ClientError::BadUrl(_) => "bad_relay_url",
        ClientError::PlainHttp(_) => "plain_http_refused",
        ClientError::Unreachable { reason, .. } if reason.contains("TLS: its certificate is signed by a CA") => {
            "tls_unknown_ca"
        }
        ClientError::Unreachable { reason, .. } if reason.starts_with("TLS:") => "tls_failed",
        ClientError::Unreachable { reason, .. } if reason.contains("if this relay speaks TLS") => "tls_required",
        ClientError::Unreachable { .. } => "relay_unreachable",
        ClientError::Api { code: ErrorCode::RateLimited, .. } => "rate_limited",
        ClientError::Api { code: ErrorCode::QuotaExceeded, .. } => "quota_exceeded",
        ClientError::Api { code: ErrorCode::NotFound, .. } => "not_found",
        ClientError::Api { code: ErrorCode::Gone, .. } => "gone",
        ClientError::Api { code: ErrorCode::Conflict, .. } => "conflict",
        ClientError::Api { code: ErrorCode::Unauthorized | ErrorCode::Forbidden, .. } => "not_allowed",
        ClientError::Api { .. } => "relay_refused",
        ClientError::Protocol { .. } => "relay_protocol",
    }
}

fn client_next(e: &ClientError) -> Option<NextStep> {
    match client_code(e) {
        "bad_relay_url" => Some(NextStep::FixArgument),
        "tls_unknown_ca" => Some(NextStep::SetCaFile),
        "tls_required" | "plain_http_refused" => Some(NextStep::UseHttps),
        "relay_unreachable" | "tls_failed" | "relay_protocol" => Some(NextStep::CheckRelay),
        "rate_limited" | "quota_exceeded" => Some(NextStep::RetryLater),
        _ => None,
    }
}

fn home_code(e: &HomeError) -> &'static str {
    match e {
        HomeError::NotInitialized(_) | HomeError::NoDefault => "not_initialized",
        HomeError::Corrupt { .. } => "home_damaged",
        HomeError::Version { .. } => "home_too_new",
        HomeError::BadSetting { .. } => "bad_setting",
        _ => "home_io",
    }
}

fn home_next(e: &HomeError) -> Option<NextStep> {
    match e {
        HomeError::NotInitialized(_) => Some(NextStep::SetUp),
        HomeError::Version { .. } => Some(NextStep::Upgrade),
        _ => None,
    }
}

fn session(e: &crate::session::SessionError) -> (&'static str, Option<NextStep>) {
    use crate::session::SessionError;
    match e {
        SessionError::Home(h) => (home_code(h), home_next(h)),
        SessionError::BadName(_) => ("bad_session_name", Some(NextStep::FixArgument)),
        SessionError::Unknown(_) => ("no_such_session", None),
        _ => ("session_failed", None),
    }
}

impl EndpointError {
    /// A URL given to `wire room join` that is not a room invite: says which command takes
    /// what it is.
    pub(crate) fn with_room_words(self, url: &str) -> Self {
        let what = if url.trim().starts_with("wire://pair?") {
            "a pairing invite (wire://pair?...): `wire accept` takes it"
        } else {
            "not a room invite: expected a URL starting with wire://room?"
        };
        match self {
            EndpointError::Invite(_) => EndpointError::Room(what.to_owned()),
            other => other,
        }
    }

    /// The stable code of this failure (docs/CLI.md, "Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            EndpointError::Home(e) => home_code(e),
            EndpointError::Client(e) => client_code(e),
            EndpointError::Session(e) => session(e).0,
            EndpointError::Pairing(PairingError::InviteUsedUp) => "invite_spent",
            EndpointError::Pairing(PairingError::InviteExpired(_)) => "invite_expired",
            EndpointError::Pairing(_) => "pairing_refused",
            EndpointError::Invite(InviteError::Expired { .. }) => "invite_expired",
            EndpointError::Invite(_) => "bad_invite",
            EndpointError::UnknownPeer(..) => "not_paired",
            EndpointError::AmbiguousPeer(_) => "ambiguous_peer",
            EndpointError::NoSuchRequest(_) => "no_such_request",
            EndpointError::BlockSelf => "block_self",
            EndpointError::PingUnsupported(_) => "ping_unsupported",
            EndpointError::PingRateLimited(_) => "ping_rate_limited",
            EndpointError::NotBlocked(_) => "not_blocked",
            EndpointError::ProtocolKind(_) => "protocol_kind",
            EndpointError::Kind(_) => "unknown_kind",
            EndpointError::Seal(_) => "seal_failed",
            EndpointError::BadHandle(..) => "bad_handle",
            EndpointError::DirectoryMismatch { .. } => "directory_mismatch",
            EndpointError::InviteSpent => "invite_spent",
            EndpointError::NoSuchNameplate { .. } => "no_such_nameplate",
            EndpointError::NameplateTaken(_) => "nameplate_taken",
            EndpointError::CodeMissing => "code_missing",
            EndpointError::InviteLimits => "bad_invite_limits",
            EndpointError::BadRevocationFile(_) => "bad_revocation_file",
            EndpointError::PeerLineageClosed { .. } => "peer_lineage_closed",
            EndpointError::OtherRelay { .. } => "other_relay",
            EndpointError::BadRole(_) => "bad_role",
            EndpointError::Internal(_) => "internal",
            EndpointError::Code(_) => "bad_code",
            EndpointError::NoSuchPairing(_) => "no_such_pairing",
            EndpointError::Confirm(crate::proto::pairing::code::ConfirmError::BadDigits) => "bad_digits",
            EndpointError::Confirm(_) => "confirm_failed",
            EndpointError::Cancel(_) => "cancel_refused",
            EndpointError::Revoked(_) => "revoked",
            EndpointError::PeerLacksKind { .. } => "peer_lacks_kind",
            EndpointError::PrekeysStale(_) => "prekeys_stale",
            EndpointError::SameRelay(_) => "same_relay",
            EndpointError::MailboxesFixed => "mailboxes_fixed",
            EndpointError::NoSuchRoom(_) => "no_such_room",
            EndpointError::RoomExists(_) => "room_exists",
            EndpointError::NotRoomManager(_) => "not_room_manager",
            EndpointError::RoomClosed(_) => "room_closed",
            EndpointError::Room(_) => "room_refused",
            EndpointError::NoSuchJob(_) => "no_such_job",
            EndpointError::Job(_) => "job_refused",
            EndpointError::PeerUnreachable(..) => "peer_unreachable",
            EndpointError::MailboxFull(_) => "mailbox_full",
            EndpointError::SlotGone { .. } => "slot_gone",
            EndpointError::PeerSlotGone(_) => "peer_slot_gone",
            EndpointError::SlotAlive { .. } => "slot_alive",
            EndpointError::FingerprintMismatch(_) => "fingerprint_mismatch",
            EndpointError::ReceiptTimeout { .. } => "receipt_timeout",
        }
    }

    /// What to do next, if there is a step.
    pub fn next_step(&self) -> Option<NextStep> {
        match self {
            EndpointError::Home(e) => home_next(e),
            EndpointError::Client(e) => client_next(e),
            EndpointError::Session(e) => session(e).1,
            EndpointError::Pairing(PairingError::InviteUsedUp | PairingError::InviteExpired(_))
            | EndpointError::Invite(_)
            | EndpointError::InviteSpent => Some(NextStep::AskForInvite),
            EndpointError::UnknownPeer(..) | EndpointError::AmbiguousPeer(_) => Some(NextStep::ListPeers),
            EndpointError::NoSuchRequest(_) => Some(NextStep::ListPending),
            EndpointError::BlockSelf | EndpointError::NotBlocked(_) => Some(NextStep::FixArgument),
            EndpointError::PingUnsupported(_) | EndpointError::PingRateLimited(_) => None,
            EndpointError::NoSuchPairing(_) => Some(NextStep::ListPairings),
            EndpointError::NoSuchNameplate { .. } | EndpointError::NameplateTaken(_) | EndpointError::Code(_) => {
                Some(NextStep::AskForCode)
            }
            EndpointError::ProtocolKind(_)
            | EndpointError::Kind(_)
            | EndpointError::BadHandle(..)
            | EndpointError::BadRole(_)
            | EndpointError::CodeMissing
            | EndpointError::InviteLimits
            | EndpointError::Confirm(crate::proto::pairing::code::ConfirmError::BadDigits) => {
                Some(NextStep::FixArgument)
            }
            EndpointError::Revoked(_) => Some(NextStep::PairAgain),
            EndpointError::PeerLacksKind { .. } => Some(NextStep::PeerUpgrades),
            EndpointError::NoSuchRoom(_) | EndpointError::RoomExists(_) => Some(NextStep::ListRooms),
            EndpointError::NoSuchJob(_) | EndpointError::Job(_) => Some(NextStep::ListJobs),
            EndpointError::NotRoomManager(_) | EndpointError::RoomClosed(_) => Some(NextStep::RoomMembers),
            EndpointError::PeerUnreachable(..) | EndpointError::PeerSlotGone(_) | EndpointError::PrekeysStale(_) => {
                Some(NextStep::SendQueued)
            }
            EndpointError::MailboxFull(_) => Some(NextStep::RetryLater),
            EndpointError::SlotGone { .. } => Some(NextStep::Reregister),
            EndpointError::SlotAlive { .. } | EndpointError::OtherRelay { .. } => Some(NextStep::Status),
            EndpointError::ReceiptTimeout { .. } => Some(NextStep::ListSent),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_picks_the_closest_nickname_within_two_edits() {
        let nicks = ["ardent-fawn", "legal-kiln", "ardent-lark"];
        assert_eq!(DidYouMean::among("ardnet-fawn", nicks).0.as_deref(), Some("ardent-fawn"));
        assert_eq!(DidYouMean::among("Legal-Kiln", nicks).0.as_deref(), Some("legal-kiln"));
        assert_eq!(DidYouMean::among("bob", nicks).0, None);
        let e = EndpointError::UnknownPeer("ardent-fwan".into(), DidYouMean::among("ardent-fwan", nicks));
        assert!(e.to_string().starts_with("no paired peer `ardent-fwan`; did you mean `ardent-fawn`? "), "{e}");
    }
}
