//! The rendezvous routes: nameplates in memory on one node, or shared by the nodes of a
//! PostgreSQL store (`crate::nameplates`).

use super::*;
use crate::nameplates::{Nameplates, Refused};
use crate::rendezvous::{MAX_MESSAGE_BYTES, MAX_MESSAGES, Rendezvous};

// ------------------------------------------------------------------ rendezvous

/// Refuses a side for `peer` when it holds its share of open nameplates already.
fn rendezvous_share(relay: &Relay, rv: &Rendezvous, peer: IpAddr) -> Result<(), ApiError> {
    if rv.held_by(peer) < relay.config.rendezvous_per_ip {
        return Ok(());
    }
    Metrics::inc(&relay.metrics.rendezvous_refused_total);
    Err(ApiError::new(
        ErrorCode::QuotaExceeded,
        format!(
            "this address holds {} pairings in progress, the most this relay allows; finish or cancel one",
            relay.config.rendezvous_per_ip
        ),
    ))
}

pub(super) fn open_nameplate(relay: &Relay, peer: IpAddr) -> Result<Response<Body>, ApiError> {
    let token = Token::random("side", &mut OsRng);
    let expires_at = relay.now_ms() + relay.config.rendezvous_ttl.as_millis() as u64;
    let mut rv = lock(&relay.rendezvous);
    rendezvous_share(relay, &rv, peer)?;
    let number = rv.open(sha256(token.expose().as_bytes()), peer, expires_at).ok_or_else(|| {
        ApiError::new(ErrorCode::QuotaExceeded, "too many pairings are in progress on this relay; retry in a minute")
    })?;
    relay.metrics.nameplates_open.store(rv.plates.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(json(
        StatusCode::CREATED,
        &NameplateResponse { nameplate: number.to_string(), side_token: token, expires_at: UnixMillis(expires_at) },
    ))
}

fn no_plate(n: u32) -> ApiError {
    ApiError::not_found(format!(
        "no open nameplate {n}; check the number at the start of the code, or start a new pairing"
    ))
}

pub(super) fn join_nameplate(relay: &Relay, n: u32, peer: IpAddr) -> Result<Response<Body>, ApiError> {
    let token = Token::random("side", &mut OsRng);
    let mut rv = lock(&relay.rendezvous);
    rendezvous_share(relay, &rv, peer)?;
    let plate = rv.plates.get_mut(&n).ok_or_else(|| no_plate(n))?;
    if plate.closed {
        return Err(ApiError::new(ErrorCode::Gone, format!("nameplate {n} is closed; start a new pairing")));
    }
    if plate.sides.len() >= 2 {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "nameplate {n} already has two sides; if that was not you, someone may be guessing: start a new pairing"
            ),
        ));
    }
    plate.sides.push((sha256(token.expose().as_bytes()), peer));
    Ok(json(StatusCode::CREATED, &JoinResponse { side_token: token, expires_at: UnixMillis(plate.expires_at) }))
}

fn side_of(relay: &Relay, n: u32, req: &Request<Incoming>) -> Result<usize, ApiError> {
    let token = bearer(req).ok_or_else(ApiError::unauthorized)?;
    let rv = lock(&relay.rendezvous);
    if !rv.plates.contains_key(&n) {
        return Err(no_plate(n));
    }
    rv.side(n, &sha256(token.as_bytes())).ok_or_else(ApiError::unauthorized)
}

pub(super) async fn post_message(relay: &Relay, n: u32, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let side = side_of(relay, n, &req)?;
    let body = read_body(relay, req, MAX_MESSAGE_BYTES).await?;
    let mut rv = lock(&relay.rendezvous);
    let plate = rv.plates.get_mut(&n).ok_or_else(|| no_plate(n))?;
    if plate.closed {
        return Err(ApiError::new(ErrorCode::Gone, format!("nameplate {n} is closed")));
    }
    // A side re-posting the same bytes (a retry after a crash or a lost answer) gets the
    // same sequence number: the rendezvous is idempotent per side.
    if let Some((_, seq, _)) = plate.messages.iter().find(|(s, _, b)| *s == side && *b == body) {
        return Ok(json(StatusCode::OK, &serde_json::json!({ "seq": seq })));
    }
    if plate.messages.len() >= MAX_MESSAGES {
        return Err(ApiError::new(ErrorCode::QuotaExceeded, "too many messages on this nameplate"));
    }
    let held = rv.bytes();
    if held + body.len() > relay.config.rendezvous_max_bytes {
        return Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            "this relay holds as many pairing messages as it may; retry in a minute",
        ));
    }
    let plate = rv.plates.get_mut(&n).ok_or_else(|| no_plate(n))?;
    let seq = plate.messages.len() as u64 + 1;
    let len = body.len();
    plate.messages.push((side, seq, body));
    plate.notify.notify_waiters();
    relay.metrics.rendezvous_bytes.store((held + len) as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "seq": seq })))
}

pub(super) async fn poll_messages(relay: &Relay, n: u32, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let side = side_of(relay, n, req)?;
    let after = query_u64(req, "after")?.unwrap_or(0);
    let wait = Duration::from_secs(query_u64(req, "wait")?.unwrap_or(0)).min(relay.config.rendezvous_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = relay.shutdown.clone();
    loop {
        let notify = {
            let rv = lock(&relay.rendezvous);
            let Some(plate) = rv.plates.get(&n) else {
                return Ok(json(StatusCode::OK, &RendezvousPoll { messages: Vec::new(), closed: true }));
            };
            let messages: Vec<RendezvousMessage> = plate
                .messages
                .iter()
                .filter(|(s, seq, _)| *s != side && *seq > after)
                .map(|(_, seq, body)| RendezvousMessage { seq: *seq, body: body.to_vec() })
                .collect();
            if !messages.is_empty() || plate.closed || tokio::time::Instant::now() >= deadline {
                return Ok(json(StatusCode::OK, &RendezvousPoll { messages, closed: plate.closed }));
            }
            plate.notify.clone()
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Re-check after enabling, in case a message landed between the unlock and here.
        let landed = lock(&relay.rendezvous)
            .plates
            .get(&n)
            .is_none_or(|p| p.closed || p.messages.iter().any(|(s, q, _)| *s != side && *q > after));
        if landed {
            continue;
        }
        let _waiting = Gauge::up(&relay.metrics.rendezvous_waiting);
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => return Err(ApiError::new(ErrorCode::Gone, "the relay is shutting down")),
        }
    }
}

// ------------------------------------------------------------------ rendezvous shared by nodes

/// The answer to a refused shared-rendezvous request, worded as on one node.
fn refused(relay: &Relay, n: u32, why: Refused) -> ApiError {
    match why {
        Refused::NoPlate => no_plate(n),
        Refused::Closed => ApiError::new(ErrorCode::Gone, format!("nameplate {n} is closed; start a new pairing")),
        Refused::Full => ApiError::new(
            ErrorCode::Conflict,
            format!(
                "nameplate {n} already has two sides; if that was not you, someone may be guessing: start a new pairing"
            ),
        ),
        Refused::IpShare => {
            Metrics::inc(&relay.metrics.rendezvous_refused_total);
            ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "this address holds {} pairings in progress, the most this relay allows; finish or cancel one",
                    relay.config.rendezvous_per_ip
                ),
            )
        }
        Refused::TooMany => ApiError::new(
            ErrorCode::QuotaExceeded,
            "too many pairings are in progress on this relay; retry in a minute",
        ),
        Refused::Api(e) => e,
    }
}

pub(super) async fn shared_open(relay: &Relay, shared: &Nameplates, peer: IpAddr) -> Result<Response<Body>, ApiError> {
    let token = Token::random("side", &mut OsRng);
    let now = relay.now_ms();
    let expires_at = now + relay.config.rendezvous_ttl.as_millis() as u64;
    let hash = sha256(token.expose().as_bytes());
    let number = shared
        .open(hash, peer, expires_at, relay.config.rendezvous_per_ip, now)
        .await
        .map_err(|e| refused(relay, 0, e))?;
    Ok(json(
        StatusCode::CREATED,
        &NameplateResponse { nameplate: number.to_string(), side_token: token, expires_at: UnixMillis(expires_at) },
    ))
}

pub(super) async fn shared_join(
    relay: &Relay,
    shared: &Nameplates,
    n: u32,
    peer: IpAddr,
) -> Result<Response<Body>, ApiError> {
    let token = Token::random("side", &mut OsRng);
    let hash = sha256(token.expose().as_bytes());
    let expires_at = shared
        .join(n, hash, peer, relay.config.rendezvous_per_ip, relay.now_ms())
        .await
        .map_err(|e| refused(relay, n, e))?;
    Ok(json(StatusCode::CREATED, &JoinResponse { side_token: token, expires_at: UnixMillis(expires_at) }))
}

async fn shared_side(shared: &Nameplates, n: u32, req: &Request<Incoming>) -> Result<usize, Refused> {
    let token = bearer(req).ok_or_else(|| Refused::Api(ApiError::unauthorized()))?;
    shared.side(n, &sha256(token.as_bytes())).await?.ok_or_else(|| Refused::Api(ApiError::unauthorized()))
}

pub(super) async fn shared_post(
    relay: &Relay,
    shared: &Nameplates,
    n: u32,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let side = shared_side(shared, n, &req).await.map_err(|e| refused(relay, n, e))?;
    let body = read_body(relay, req, MAX_MESSAGE_BYTES).await?;
    let (seq, fresh) =
        shared.post(n, side, &body, relay.config.rendezvous_max_bytes).await.map_err(|e| refused(relay, n, e))?;
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &serde_json::json!({ "seq": seq })))
}

pub(super) async fn shared_poll(
    relay: &Relay,
    shared: &Nameplates,
    n: u32,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let side = match shared_side(shared, n, req).await {
        Err(Refused::NoPlate) => {
            return Ok(json(StatusCode::OK, &RendezvousPoll { messages: Vec::new(), closed: true }));
        }
        other => other.map_err(|e| refused(relay, n, e))?,
    };
    let after = query_u64(req, "after")?.unwrap_or(0);
    let wait = Duration::from_secs(query_u64(req, "wait")?.unwrap_or(0)).min(relay.config.rendezvous_wait);
    let mut shutdown = relay.shutdown.clone();
    let _waiting = Gauge::up(&relay.metrics.rendezvous_waiting);
    let poll =
        shared.poll(n, side, after, wait, || relay.now_ms(), &mut shutdown).await.map_err(|e| refused(relay, n, e))?;
    Ok(json(StatusCode::OK, &poll))
}

pub(super) async fn shared_close(
    shared: &Nameplates,
    n: u32,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    match shared_side(shared, n, req).await {
        Ok(_) => {}
        Err(Refused::NoPlate) => return Err(no_plate(n)),
        Err(Refused::Api(e)) => return Err(e),
        Err(_) => return Err(ApiError::internal()),
    }
    shared.close(n).await.map_err(|_| ApiError::internal())?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "closed": true })))
}

pub(super) fn close_nameplate(relay: &Relay, n: u32, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    side_of(relay, n, req)?;
    let mut rv = lock(&relay.rendezvous);
    if let Some(plate) = rv.plates.get_mut(&n) {
        plate.closed = true;
        plate.notify.notify_waiters();
    }
    Ok(json(StatusCode::OK, &serde_json::json!({ "closed": true })))
}
