//! `GET /v1/slots/{id}/stream`: server-sent events with `id:` = sequence number, resume
//! from `Last-Event-ID`, keep-alive comments.
//!
//! One task per subscriber. It registers for live envelopes first, then catches up from
//! the store past its cursor, then forwards live envelopes it has not sent yet. Both its
//! queues are bounded: a subscriber that cannot keep up is dropped and resumes from its
//! cursor; the store thread never waits for it.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::mpsc;
use wire_core::proto::api::{ErrorCode, StreamHello, StreamMissed};

use crate::error::ApiError;
use crate::http::{Body, StreamBody};
use crate::metrics::Metrics;
use crate::routes::{bearer, check_cursor, query_u64, to_api};
use crate::state::{Live, Relay, lock};
use crate::store::{Hash, Stored};

/// Live envelopes buffered per subscriber before it counts as slow.
const LIVE_QUEUE: usize = 64;
/// Frames buffered between the task and the connection.
const BODY_QUEUE: usize = 8;
/// Catch-up page size.
const PAGE: usize = 256;

/// Releases the subscriber's stream count when the response body is dropped.
#[derive(Debug)]
pub struct StreamGuard {
    relay: Arc<Relay>,
    slot: String,
    /// Counted against its token (a room member), not the slot.
    token: Option<Hash>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut index = lock(&self.relay.index);
        match self.token {
            Some(token) => {
                if let Some(n) = index.token_streams.get_mut(&token) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        index.token_streams.remove(&token);
                    }
                }
            }
            None => {
                if let Some(meta) = index.slots.get_mut(&self.slot) {
                    meta.streams = meta.streams.saturating_sub(1);
                }
            }
        }
        drop(index);
        Metrics::dec(&self.relay.metrics.streams_open);
    }
}

fn too_many(what: &str) -> ApiError {
    ApiError { retry_after: Some(5), ..ApiError::new(ErrorCode::RateLimited, format!("too many open streams {what}")) }
}

pub(crate) async fn stream(
    relay: &Arc<Relay>,
    slot: &str,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let last_event_id = req.headers().get("last-event-id").map(|v| v.to_str().unwrap_or("?"));
    let after = query_u64(req, "after")?;
    let (guard, rx) = open(relay, slot, bearer(req), last_event_id, after)?;
    let mut response = Response::new(Body::Stream(StreamBody { rx, _guard: guard }));
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Authorizes and opens a stream: checks the cursor and the per-slot cap, registers for
/// live envelopes and starts the subscriber task. Shared by the hyper path and the lean
/// path (`crate::lean`).
pub(crate) fn open(
    relay: &Arc<Relay>,
    slot: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
    after: Option<u64>,
) -> Result<(StreamGuard, mpsc::Receiver<Bytes>), ApiError> {
    let reader = relay.reader(slot, token)?;
    let from_header = last_event_id
        .map(|v| v.trim().parse::<u64>().map_err(|_| ApiError::bad_request("Last-Event-ID must be a sequence number")))
        .transpose()?;
    let floor = relay.bounds(slot).map(|b| b.0).unwrap_or(0);
    let cursor = from_header.or(after).unwrap_or(floor);
    let (cursor, missed) = check_cursor(relay, slot, cursor, reader.room)?;
    {
        let mut index = lock(&relay.index);
        if reader.room {
            // A room caps streams per member, so one member cannot take the others'.
            let n = index.token_streams.entry(reader.token_hash).or_insert(0);
            if *n >= relay.config.max_streams_per_grant {
                return Err(too_many("for this token; close one first"));
            }
            *n += 1;
        } else {
            let meta = index.slots.get_mut(slot).ok_or_else(|| ApiError::not_found("no such slot on this relay"))?;
            if meta.streams >= relay.config.max_streams_per_slot {
                return Err(too_many("for this slot; close one first"));
            }
            meta.streams += 1;
        }
    }
    Metrics::inc(&relay.metrics.streams_open);
    let token = reader.room.then_some(reader.token_hash);
    let guard = StreamGuard { relay: relay.clone(), slot: slot.to_owned(), token };
    let (live_tx, live_rx) = mpsc::channel(LIVE_QUEUE);
    lock(&relay.subscribers).entry(slot.to_owned()).or_default().push((reader.token_hash, live_tx));
    let (body_tx, body_rx) = mpsc::channel(BODY_QUEUE);
    let missed = (missed > 0).then_some(StreamMissed { missed, floor: cursor });
    let room = reader.room;
    tokio::spawn(run(relay.clone(), slot.to_owned(), Cursor { at: cursor, room }, missed, live_rx, body_tx));
    Ok((guard, body_rx))
}

/// Where a subscriber is. In a room, a gap before the next envelope (evicted while the
/// reader caught up) is announced as a `missed` frame.
struct Cursor {
    at: u64,
    room: bool,
}

impl Cursor {
    /// The frames for `stored`: a `missed` frame first if envelopes were evicted in between.
    fn frames(&mut self, metrics: &Metrics, stored: &Stored) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(1);
        if self.room && stored.seq > self.at + 1 {
            let missed = StreamMissed { missed: stored.seq - self.at - 1, floor: stored.seq - 1 };
            out.push(missed_frame(&missed));
        }
        self.at = stored.seq;
        out.push(frame(metrics, stored));
        out
    }
}

fn missed_frame(missed: &StreamMissed) -> Bytes {
    let data = serde_json::to_string(missed).expect("serializes");
    Bytes::from(format!("event: missed\ndata: {data}\n\n"))
}

fn frame(metrics: &Metrics, stored: &Stored) -> Bytes {
    let data = serde_json::to_string(&to_api(stored.clone())).expect("stored envelope serializes");
    let frame = Bytes::from(format!("id: {}\nevent: envelope\ndata: {data}\n\n", stored.seq));
    metrics.response_bytes_total.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
    frame
}

/// Sends what the store holds past the cursor, page by page. `Err`: the stream is over.
async fn catch_up(
    engine: &crate::engine::Engine,
    metrics: &Metrics,
    slot: &str,
    cursor: &mut Cursor,
    body: &mpsc::Sender<Bytes>,
) -> Result<(), ()> {
    loop {
        let page = engine.list(slot, cursor.at, PAGE).await.map_err(|_| ())?;
        let done = page.len() < PAGE;
        for stored in page {
            for frame in cursor.frames(metrics, &stored) {
                body.send(frame).await.map_err(|_| ())?;
            }
        }
        if done {
            return Ok(());
        }
    }
}

async fn run(
    relay: Arc<Relay>,
    slot: String,
    mut cursor: Cursor,
    missed: Option<StreamMissed>,
    mut live: mpsc::Receiver<Live>,
    body: mpsc::Sender<Bytes>,
) {
    let hello = serde_json::to_string(&StreamHello { incarnation: relay.incarnation.clone() }).expect("serializes");
    if body.send(Bytes::from(format!("retry: 1000\nevent: hello\ndata: {hello}\n\n"))).await.is_err() {
        return;
    }
    if let Some(missed) = missed
        && body.send(missed_frame(&missed)).await.is_err()
    {
        return;
    }
    let engine = relay.engine.clone();
    if catch_up(&engine, &relay.metrics, &slot, &mut cursor, &body).await.is_err() {
        return;
    }
    let mut shutdown = relay.shutdown.clone();
    let mut keepalive = tokio::time::interval(relay.config.keepalive);
    keepalive.tick().await;
    let metrics = relay.metrics.clone();
    drop(relay);
    loop {
        tokio::select! {
            next = live.recv() => match next {
                // A gap: out of order (another store thread's commit is still being fanned
                // out) or evicted (a room). The store knows which.
                Some(Live::Envelope(stored)) if stored.seq > cursor.at + 1 => {
                    if catch_up(&engine, &metrics, &slot, &mut cursor, &body).await.is_err() {
                        return;
                    }
                }
                Some(Live::Envelope(stored)) if stored.seq > cursor.at => {
                    for frame in cursor.frames(&metrics, &stored) {
                        if body.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Live::Envelope(_)) => {}
                Some(Live::Wake) => {
                    if catch_up(&engine, &metrics, &slot, &mut cursor, &body).await.is_err() {
                        return;
                    }
                }
                // Dropped as slow: end the stream; the client resumes from its cursor.
                None => return,
            },
            _ = keepalive.tick() => {
                if body.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
            }
            _ = body.closed() => return,
            _ = shutdown.changed() => return,
        }
    }
}
