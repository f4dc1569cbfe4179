//! Routing and handlers for the v1 API (docs/PROTOCOL.md, "Relay API").

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HOST};
use hyper::{Method, Request, Response, StatusCode};
use rand_core::OsRng;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use wire_core::proto::api::{
    AckRequest, AckResponse, AllocateSlotRequest, AllocateSlotResponse, AppendResponse, ClaimHandleRequest, ErrorCode,
    GrantKind, GrantRequest, GrantResponse, INTRO_POW_BITS_HEADER, INTRO_POW_HEADER, INTRO_TAG_HEADER, JoinResponse,
    Lane, ListResponse, MAX_INTRO_TTL_SECS, MAX_INTRO_USES, NameplateResponse, RendezvousMessage, RendezvousPoll,
    ResolveHandleResponse, RevokeResponse, SlotId, StoredEnvelope,
};
use wire_core::proto::card::Card;
use wire_core::proto::envelope::{BUCKETS, ENVELOPE_VERSION, OVERHEAD};
use wire_core::proto::secret::Token;
use wire_core::proto::signed::Signed;
use wire_core::proto::time::UnixMillis;

use crate::error::ApiError;
use crate::http::{Body, json};
use crate::metrics::{Gauge, Metrics};
use crate::state::{Caller, Relay, lock, random_id, sha256};
use crate::store::{GrantRow, Op, Outcome, Quota};

mod rendezvous;

/// Longest an intro grant may live.
/// Most uses of one intro grant.
/// Default and largest page of `GET /events`.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// Answers one request; never panics on input, never answers 5xx for bad input.
pub(crate) async fn handle(relay: &Arc<Relay>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    Metrics::inc(&relay.metrics.requests_total);
    let started = std::time::Instant::now();
    // The path is split once, for the route and its latency label.
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let label = crate::metrics::Route::of(req.method(), &segs);
    let response = match route(relay, req, peer, &path, &segs).await {
        Ok(response) => response,
        Err(e) => {
            Metrics::inc(&relay.metrics.errors_total);
            e.into_response()
        }
    };
    // Streams count their frames as they go (crate::sse).
    if let Some(n) = hyper::body::Body::size_hint(response.body()).exact() {
        relay.metrics.response_bytes_total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    relay.metrics.observe(label, started.elapsed());
    response
}

async fn route(
    relay: &Arc<Relay>,
    req: Request<Incoming>,
    peer: IpAddr,
    path: &str,
    segs: &[&str],
) -> Result<Response<Body>, ApiError> {
    if relay.config.local_only && !peer.is_loopback() {
        return Err(ApiError::forbidden("this relay is local-only and accepts loopback clients only"));
    }
    let method = req.method().clone();
    match (&method, segs) {
        // `now`: the relay's clock, so clients can tell their own clock's skew (`wire doctor`).
        (&Method::GET, ["healthz"]) => {
            return Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok", "now": relay.now_ms()})));
        }
        (&Method::GET, ["metrics"]) => return Ok(text(relay.metrics.render())),
        _ => {}
    }
    relay.rate_limit_ip(peer)?;
    if let ["v1", "slots", id, rest @ ..] = segs {
        // Several nodes on one store: what another node made, minted or moved (reads and
        // acks check cursors against the slot's bounds).
        let bounds = method == Method::GET || rest == ["ack"];
        relay.sync_index(id, bearer(&req), bounds).await?;
    }
    match (&method, segs) {
        (&Method::POST, ["v1", "slots"]) => allocate(relay, peer, req).await,
        (&Method::POST, ["v1", "slots", id, "grants"]) => grant(relay, &slot_id(id)?, req).await,
        (&Method::DELETE, ["v1", "slots", id, "grants", grant_id]) => {
            revoke(relay, &slot_id(id)?, grant_id, &req).await
        }
        (&Method::POST, ["v1", "slots", id, "events"]) => append(relay, &slot_id(id)?, req).await,
        (&Method::GET, ["v1", "slots", id, "events"]) => list(relay, &slot_id(id)?, &req).await,
        (&Method::POST, ["v1", "slots", id, "intro"]) => intro(relay, &slot_id(id)?, req).await,
        (&Method::GET, ["v1", "slots", id, "stream"]) => crate::sse::stream(relay, &slot_id(id)?, &req).await,
        (&Method::POST, ["v1", "slots", id, "ack"]) => ack(relay, &slot_id(id)?, req).await,
        (&Method::POST, ["v1", "handles"]) => claim_handle(relay, req).await,
        (&Method::GET, [".well-known", "wire", "agent"]) => resolve_handle(relay, &req).await,
        (&Method::POST, ["v1", "rendezvous"]) => match &relay.nameplates {
            Some(shared) => rendezvous::shared_open(relay, shared, peer).await,
            None => rendezvous::open_nameplate(relay, peer),
        },
        (&Method::POST, ["v1", "rendezvous", n, "join"]) => match &relay.nameplates {
            Some(shared) => rendezvous::shared_join(relay, shared, nameplate(n)?, peer).await,
            None => rendezvous::join_nameplate(relay, nameplate(n)?, peer),
        },
        (&Method::POST, ["v1", "rendezvous", n, "messages"]) => match &relay.nameplates {
            Some(shared) => rendezvous::shared_post(relay, shared, nameplate(n)?, req).await,
            None => rendezvous::post_message(relay, nameplate(n)?, req).await,
        },
        (&Method::GET, ["v1", "rendezvous", n, "messages"]) => match &relay.nameplates {
            Some(shared) => rendezvous::shared_poll(relay, shared, nameplate(n)?, &req).await,
            None => rendezvous::poll_messages(relay, nameplate(n)?, &req).await,
        },
        (&Method::DELETE, ["v1", "rendezvous", n]) => match &relay.nameplates {
            Some(shared) => rendezvous::shared_close(shared, nameplate(n)?, &req).await,
            None => rendezvous::close_nameplate(relay, nameplate(n)?, &req),
        },
        (_, segs) if known_path(segs) => {
            Err(ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {path}")))
        }
        _ => Err(ApiError::not_found("no such route; the API is described in docs/PROTOCOL.md")),
    }
}

fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["healthz"]
            | ["metrics"]
            | ["v1", "slots"]
            | ["v1", "slots", _, "grants" | "events" | "intro" | "stream" | "ack"]
            | ["v1", "slots", _, "grants", _]
            | ["v1", "handles"]
            | [".well-known", "wire", "agent"]
            | ["v1", "rendezvous"]
            | ["v1", "rendezvous", _]
            | ["v1", "rendezvous", _, "join" | "messages"]
    )
}

fn text(body: String) -> Response<Body> {
    let mut r = Response::new(Body::Full(http_body_util::Full::new(Bytes::from(body))));
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

fn slot_id(text: &str) -> Result<String, ApiError> {
    SlotId::new(text).map(|s| s.as_str().to_owned()).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn nameplate(text: &str) -> Result<u32, ApiError> {
    text.parse::<u32>()
        .ok()
        .filter(|n| *n > 0 && text.len() <= 8)
        .ok_or_else(|| ApiError::bad_request("a nameplate is a positive number of at most 8 digits"))
}

pub(crate) fn bearer<B>(req: &Request<B>) -> Option<&str> {
    req.headers().get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

pub(crate) fn query<'a, B>(req: &'a Request<B>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

pub(crate) fn query_u64<B>(req: &Request<B>, key: &str) -> Result<Option<u64>, ApiError> {
    query(req, key)
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("`{key}` must be a non-negative integer"))))
        .transpose()
}

/// Reads a body of at most `limit` bytes, refusing a larger declared length before reading.
async fn read_body(relay: &Relay, req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = |n: &dyn std::fmt::Display| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is {n} bytes; this relay accepts at most {limit}"),
        )
    };
    if let Some(declared) = req.headers().get(CONTENT_LENGTH) {
        let declared = declared
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("malformed Content-Length"))?;
        if declared > limit as u64 {
            return Err(too_large(&declared));
        }
    }
    let collect = http_body_util::Limited::new(req.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(relay.config.request_timeout, collect).await else {
        Metrics::inc(&relay.metrics.request_timeouts_total);
        return Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the request body did not arrive within {:?}; send it at once", relay.config.request_timeout),
        ));
    };
    match collected {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            relay.metrics.request_bytes_total.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(bytes)
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(&"more than that")),
        Err(_) => Err(ApiError::bad_request("the request body ended early or was malformed")),
    }
}

async fn read_json<T: DeserializeOwned>(relay: &Relay, req: Request<Incoming>, limit: usize) -> Result<T, ApiError> {
    let body = read_body(relay, req, limit).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON request: {e}")))
}

fn check_envelope(body: &[u8]) -> Result<(), ApiError> {
    let ok = body.len() >= OVERHEAD && body[0] == ENVELOPE_VERSION && BUCKETS.contains(&(body.len() - OVERHEAD));
    if ok { Ok(()) } else { Err(ApiError::bad_request("not a wire envelope (version 1, padded to a size bucket)")) }
}

impl Relay {
    /// Applies a write and mirrors it into the index.
    pub(crate) async fn write(&self, op: Op) -> Result<Outcome, ApiError> {
        let outcome = self.engine.write(op.clone()).await?;
        self.observe(&op, &outcome);
        Ok(outcome)
    }
}

// ------------------------------------------------------------------ slots and grants

async fn allocate(relay: &Relay, peer: IpAddr, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    relay.slot_limit.check(peer, std::time::Instant::now()).map_err(|secs| {
        Metrics::inc(&relay.metrics.rate_limited_total);
        ApiError::rate_limited(secs)
    })?;
    // No body (older clients, mailboxes) or `{"room": true}`.
    let body = read_body(relay, req, relay.config.max_json_body).await?;
    let request: AllocateSlotRequest = if body.is_empty() {
        AllocateSlotRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON request: {e}")))?
    };
    let id = random_id(16);
    let token = Token::random("own", &mut OsRng);
    let owner_hash = sha256(token.expose().as_bytes());
    relay.write(Op::CreateSlot { id: id.clone(), owner_hash, now: relay.now_ms(), room: request.room }).await?;
    let slot = SlotId::new(id).map_err(|_| ApiError::internal())?;
    Ok(json(StatusCode::CREATED, &AllocateSlotResponse { slot, owner_token: token }))
}

async fn grant(relay: &Relay, slot: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let token = bearer(&req).map(str::to_owned);
    relay.caller(slot, token.as_deref())?;
    let body: GrantRequest = read_json(relay, req, relay.config.max_json_body).await?;
    relay.minter(slot, token.as_deref(), body.kind)?;
    let now = relay.now_ms();
    let (expires_at, uses) = match body.kind {
        GrantKind::Intro => {
            let ttl = body.ttl_secs.ok_or_else(|| ApiError::bad_request("an intro grant needs `ttl_secs`"))?;
            if ttl == 0 || ttl > MAX_INTRO_TTL_SECS {
                return Err(ApiError::bad_request(format!("`ttl_secs` must be 1 to {MAX_INTRO_TTL_SECS}")));
            }
            let uses = body.uses.unwrap_or(1);
            if uses == 0 || uses > MAX_INTRO_USES {
                return Err(ApiError::bad_request(format!("`uses` must be 1 to {MAX_INTRO_USES}")));
            }
            (Some(now + ttl * 1000), Some(uses))
        }
        GrantKind::Send | GrantKind::Member | GrantKind::Admin => {
            if body.uses.is_some() {
                return Err(ApiError::bad_request("only intro grants have `uses`; revoke the others instead"));
            }
            (body.ttl_secs.map(|t| now.saturating_add(t.saturating_mul(1000))), None)
        }
    };
    let token = Token::random(body.kind.token_prefix(), &mut OsRng);
    let row = GrantRow {
        id: random_id(12),
        slot: slot.to_owned(),
        token_hash: sha256(token.expose().as_bytes()),
        kind: body.kind,
        expires_at,
        uses_left: uses,
        revoked: false,
    };
    let grant_id = row.id.clone();
    relay.write(Op::PutGrant(row)).await?;
    Ok(json(StatusCode::CREATED, &GrantResponse { grant_id, token, expires_at: expires_at.map(UnixMillis) }))
}

async fn revoke(
    relay: &Relay,
    slot: &str,
    grant_id: &str,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    relay.revoker(slot, bearer(req), grant_id)?;
    match relay.write(Op::RevokeGrant { slot: slot.to_owned(), id: grant_id.to_owned() }).await? {
        Outcome::Done => Ok(json(StatusCode::OK, &RevokeResponse { revoked: grant_id.to_owned() })),
        _ => Err(ApiError::not_found("no such grant on this slot")),
    }
}

// ------------------------------------------------------------------ envelopes

async fn append(relay: &Relay, slot: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let token = bearer(&req).map(str::to_owned);
    let (grant, rate_key) = match relay.caller(slot, token.as_deref())? {
        Caller::Owner => (None, sha256(token.unwrap_or_default().as_bytes())),
        Caller::Grant(g) => {
            relay.live(&g)?;
            (Some(g.clone()), g.token_hash)
        }
    };
    relay.rate_limit_token(rate_key)?;
    let body = read_body(relay, req, relay.config.max_envelope).await?;
    check_envelope(&body)?;
    let consume = grant.as_ref().filter(|g| g.kind == GrantKind::Intro).map(|g| g.id.clone());
    let by = grant.as_ref().filter(|g| g.kind != GrantKind::Intro);
    match store_envelope(relay, slot, Lane::Inbox, None, body, consume, by.map(|g| g.id.clone())).await {
        // Revoked on another node since this one learnt the grant: remembered here too.
        Err(e) if by.is_some() && e.code == ErrorCode::Gone => {
            if let Some(g) = by
                && let Some(held) = lock(&relay.index).grants.get_mut(&g.token_hash)
            {
                held.revoked = true;
            }
            Err(ApiError::forbidden("this token was revoked by the slot's owner; you are no longer paired"))
        }
        other => other,
    }
}

async fn store_envelope(
    relay: &Relay,
    slot: &str,
    lane: Lane,
    tag: Option<Vec<u8>>,
    envelope: Bytes,
    consume_grant: Option<String>,
    authorised_by: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let c = &relay.config;
    let quota = match relay.is_room(slot) {
        Some(true) => Quota { max_events: c.room_max_events, max_bytes: c.room_max_bytes, max_intro: 0 },
        _ => Quota { max_events: c.slot_max_events, max_bytes: c.slot_max_bytes, max_intro: c.intro_max_pending },
    };
    let op = Op::Append {
        slot: slot.to_owned(),
        lane,
        hash: sha256(&envelope),
        tag,
        envelope,
        now: relay.now_ms(),
        consume_grant,
        authorised_by,
        quota,
    };
    match relay.write(op).await? {
        Outcome::AppendedEvicting { seq, .. } => {
            Ok(json(StatusCode::CREATED, &AppendResponse { seq, duplicate: false }))
        }
        Outcome::Appended { seq, duplicate } => {
            if duplicate {
                Metrics::inc(&relay.metrics.duplicate_appends_total);
            }
            let status = if duplicate { StatusCode::OK } else { StatusCode::CREATED };
            Ok(json(status, &AppendResponse { seq, duplicate }))
        }
        Outcome::QuotaExceeded if lane == Lane::Intro => Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            "this agent has too many pending pair requests; try again later",
        )),
        Outcome::QuotaExceeded => Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            "the recipient's mailbox is full; it must pull and ack before it can receive more",
        )),
        Outcome::TagTaken => {
            Err(ApiError::new(ErrorCode::Conflict, "a pair request from you is already pending with this agent"))
        }
        Outcome::GrantExhausted => {
            Err(ApiError::new(ErrorCode::Gone, "this invite was already used; ask for a new one"))
        }
        _ => Err(ApiError::internal()),
    }
}

async fn intro(relay: &Relay, slot: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    match relay.is_room(slot) {
        None => return Err(ApiError::not_found("no such slot on this relay")),
        Some(true) => return Err(ApiError::bad_request("a room slot has no intro lane; ask a member for an invite")),
        Some(false) => {}
    }
    let tag = req
        .headers()
        .get(INTRO_TAG_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| wire_core::proto::b64::decode(v).ok())
        .filter(|t| (16..=64).contains(&t.len()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the intro lane needs a `{INTRO_TAG_HEADER}` header: 16 to 64 bytes of base64url"
            ))
        })?;
    let nonce = req.headers().get(INTRO_POW_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_body(relay, req, relay.config.max_envelope).await?;
    check_envelope(&body)?;
    let bits = relay.config.intro_pow_bits;
    if bits > 0 && !pow_ok(slot, &tag, &body, nonce.as_deref(), bits) {
        let mut e = ApiError::forbidden(format!(
            "the intro lane of this relay needs a proof of work of {bits} bits (docs/PROTOCOL.md)"
        ))
        .into_response();
        e.headers_mut().insert(INTRO_POW_BITS_HEADER, hyper::header::HeaderValue::from(u16::from(bits)));
        return Ok(e);
    }
    store_envelope(relay, slot, Lane::Intro, Some(tag), body, None, None).await
}

/// SHA-256("wire/v1/intro-pow" || slot || 0x00 || tag || SHA-256(envelope) || nonce) must
/// start with `bits` zero bits.
pub(crate) fn pow_ok(slot: &str, tag: &[u8], envelope: &[u8], nonce: Option<&str>, bits: u8) -> bool {
    let Some(nonce) = nonce.and_then(|n| wire_core::proto::b64::decode(n).ok()).filter(|n| n.len() <= 32) else {
        return false;
    };
    let digest = Sha256::new()
        .chain_update(b"wire/v1/intro-pow")
        .chain_update(slot.as_bytes())
        .chain_update([0])
        .chain_update(tag)
        .chain_update(Sha256::digest(envelope))
        .chain_update(&nonce)
        .finalize();
    let zeros = digest.iter().try_fold(0u32, |acc, b| if *b == 0 { Ok(acc + 8) } else { Err(acc + b.leading_zeros()) });
    zeros.unwrap_or_else(|n| n) >= u32::from(bits)
}

/// Checks a cursor against the slot's bounds: never a silent replay from zero. A room
/// reader behind the floor resumes there, told how many events it missed (`.1`).
pub(crate) fn check_cursor(relay: &Relay, slot: &str, after: u64, room: bool) -> Result<(u64, u64), ApiError> {
    let (floor, last) = relay.bounds(slot).ok_or_else(|| ApiError::not_found("no such slot on this relay"))?;
    if after < floor && room {
        return Ok((floor, floor - after));
    }
    if after < floor {
        return Err(ApiError::new(
            ErrorCode::CursorExpired,
            format!("events through {floor} were acked or expired; resume with after={floor}"),
        ));
    }
    if after > last {
        return Err(ApiError::new(
            ErrorCode::CursorExpired,
            format!("cursor {after} is ahead of this slot (its last event is {last}); this relay may have lost data"),
        ));
    }
    Ok((after, 0))
}

async fn list(relay: &Relay, slot: &str, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let reader = relay.reader(slot, bearer(req))?;
    let floor = relay.bounds(slot).map(|b| b.0).unwrap_or(0);
    let after = query_u64(req, "after")?.unwrap_or(floor);
    let limit = query_u64(req, "limit")?.map_or(PAGE, |l| (l as usize).clamp(1, MAX_PAGE));
    // A byte budget for the page's envelopes (clients cap what they read); at least one.
    let max_bytes = query_u64(req, "max_bytes")?.map_or(usize::MAX, |b| b as usize);
    let (after, missed) = check_cursor(relay, slot, after, reader.room)?;
    let mut events = relay.engine.list(slot, after, limit + 1).await?;
    let mut more = events.len() > limit;
    events.truncate(limit);
    let mut total = 0usize;
    let fit = events.iter().position(|e| {
        total += e.envelope.len();
        total > max_bytes
    });
    if let Some(keep) = fit.map(|f| f.max(1)).filter(|k| *k < events.len()) {
        more = true;
        events.truncate(keep);
    }
    let events = events.into_iter().map(to_api).collect();
    let missed = (missed > 0).then_some(missed);
    Ok(json(StatusCode::OK, &ListResponse { events, more, incarnation: Some(relay.incarnation.clone()), missed }))
}

pub(crate) fn to_api(s: crate::store::Stored) -> StoredEnvelope {
    StoredEnvelope { seq: s.seq, lane: s.lane, envelope: s.envelope.to_vec(), received_at: UnixMillis(s.received_at) }
}

async fn ack(relay: &Relay, slot: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    relay.owner(slot, bearer(&req))?;
    if relay.is_room(slot) == Some(true) {
        return Err(ApiError::forbidden(
            "a room is never acked (that would delete for every member); it keeps by retention",
        ));
    }
    let body: AckRequest = read_json(relay, req, relay.config.max_json_body).await?;
    let last = relay.bounds(slot).map(|b| b.1).unwrap_or(0);
    if body.through > last {
        return Err(ApiError::bad_request(format!("cannot ack through {}: the last event is {last}", body.through)));
    }
    match relay.write(Op::Ack { slot: slot.to_owned(), through: body.through }).await? {
        Outcome::Acked { floor, removed } => {
            relay.metrics.acked_total.fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
            Ok(json(StatusCode::OK, &AckResponse { acked_through: floor, removed }))
        }
        _ => Err(ApiError::internal()),
    }
}

// ------------------------------------------------------------------ handle directory

fn directory_enabled(relay: &Relay) -> Result<(), ApiError> {
    if relay.config.local_only {
        Err(ApiError::not_found("the handle directory is off on a local-only relay"))
    } else {
        Ok(())
    }
}

async fn claim_handle(relay: &Relay, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    directory_enabled(relay)?;
    let token = bearer(&req).map(str::to_owned);
    let host = host_of(&req);
    let body: ClaimHandleRequest = read_json(relay, req, relay.config.max_json_body).await?;
    let card =
        Card::verify(body.card.clone()).map_err(|e| ApiError::bad_request(format!("the card does not verify: {e}")))?;
    let expected = card.character().nickname();
    if body.nick != expected {
        return Err(ApiError::bad_request(format!("the handle must be the card's own nickname, `{expected}`")));
    }
    let owned = card.body().endpoints.iter().find(|e| relay.owner(e.slot.as_str(), token.as_deref()).is_ok());
    let Some(owned) = owned else {
        return Err(ApiError::forbidden(
            "claiming a handle needs the owner token of a slot on this relay that the card lists",
        ));
    };
    let op = Op::ClaimHandle {
        nick: body.nick.clone(),
        slot: owned.slot.as_str().to_owned(),
        did: card.did().to_string(),
        card: card.to_json(),
        now: relay.now_ms(),
    };
    match relay.write(op).await? {
        Outcome::Claimed => Ok(json(
            StatusCode::OK,
            &ResolveHandleResponse { handle: format!("{}@{host}", body.nick), card: body.card },
        )),
        Outcome::HandleTaken => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the handle `{}` belongs to another agent on this relay (first come, first served)", body.nick),
        )),
        _ => Err(ApiError::internal()),
    }
}

fn host_of<B>(req: &Request<B>) -> String {
    req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("relay").to_owned()
}

async fn resolve_handle(relay: &Relay, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    directory_enabled(relay)?;
    let handle = query(req, "handle").ok_or_else(|| ApiError::bad_request("missing `handle=` (nick or nick@relay)"))?;
    let nick = handle.split('@').next().unwrap_or_default();
    if nick.is_empty() || nick.len() > 64 {
        return Err(ApiError::bad_request("malformed handle"));
    }
    let (_, card) = relay
        .engine
        .handle(nick)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent `{nick}` on this relay")))?;
    let card: Signed = serde_json::from_slice(&card).map_err(|_| ApiError::internal())?;
    Ok(json(StatusCode::OK, &ResolveHandleResponse { handle: format!("{nick}@{}", host_of(req)), card }))
}
