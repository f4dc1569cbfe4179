//! HTTP for the UI: one hyper connection per browser socket, the gate before anything else,
//! the routes, and the event stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::gate::Refusal;
use super::{Ui, acts, views};

/// The most a form post may carry.
const MAX_FORM: usize = 64 * 1024;

/// Every answer's security headers: no inline script or style, no framing, no referrer to
/// other sites (the login URL holds the token; `no-referrer` would also make the browser
/// send `Origin: null` on our own form posts), nothing cached.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A response body: a whole buffer, or the event stream.
#[derive(Debug)]
pub enum Body {
    Full(Full<Bytes>),
    Events(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(b) => Pin::new(b).poll_frame(cx),
            Self::Events(rx) => rx.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
        }
    }
}

/// What a route answers.
pub enum Reply {
    /// A page (or its live part).
    Html(StatusCode, String),
    /// After a post: see this page (under the prefix).
    SeeOther(String),
    /// A static file.
    Asset(&'static str, &'static str),
    /// Refused by the gate.
    Refused(StatusCode, Refusal),
    /// Not a page of ours.
    NotFound,
}

pub async fn serve(ui: Arc<Ui>, stream: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(move |req| {
        let ui = ui.clone();
        async move { Ok::<_, Infallible>(handle(&ui, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

fn header(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(ui: &Arc<Ui>, req: Request<Incoming>) -> Response<Body> {
    let prefix = ui.gate.prefix.clone();
    if !ui.gate.host_ok(header(&req, header::HOST)) {
        return respond(&prefix, Reply::Refused(StatusCode::MISDIRECTED_REQUEST, Refusal::Host));
    }
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(prefix.as_str()) else { return respond(&prefix, Reply::NotFound) };
    let query = req.uri().query().unwrap_or_default().to_owned();
    if rest == "/login" && req.method() == Method::GET {
        let params = form(&query);
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        // Where to land: a view's path under the prefix, nothing else (no open redirect).
        let next = param("next");
        let next = if views::VIEW_PATHS.contains(&next.as_str()) { next } else { String::new() };
        return match ui.gate.login(&param("token")) {
            Ok(id) => {
                let mut r = respond(&prefix, Reply::SeeOther(next));
                if let Ok(v) = HeaderValue::from_str(&ui.gate.cookie(&id)) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            Err(refusal) => respond(&prefix, Reply::Refused(StatusCode::FORBIDDEN, refusal)),
        };
    }
    let cookie = header(&req, header::COOKIE).map(str::to_owned);
    if let Err(refusal) = ui.gate.session(cookie.as_deref()) {
        return respond(&prefix, Reply::Refused(StatusCode::UNAUTHORIZED, refusal));
    }
    let segments: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let reply = match *req.method() {
        Method::GET if segments == ["events"] => return events(ui, cookie),
        Method::GET => {
            let live = req.headers().contains_key("x-wire-live");
            views::get(ui, &segments, &form(&query), live).await
        }
        Method::POST => {
            if !ui.gate.origin_ok(header(&req, header::ORIGIN)) {
                return respond(&prefix, Reply::Refused(StatusCode::FORBIDDEN, Refusal::Origin));
            }
            let body = match Limited::new(req.into_body(), MAX_FORM).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return respond(&prefix, Reply::Html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into())),
            };
            acts::post(ui, &segments, &form(&String::from_utf8_lossy(&body))).await
        }
        _ => Reply::NotFound,
    };
    respond(&prefix, reply)
}

fn respond(prefix: &str, reply: Reply) -> Response<Body> {
    let (status, kind, body) = match reply {
        Reply::Html(status, html) => (status, "text/html; charset=utf-8", html),
        Reply::SeeOther(to) => {
            let mut r = base(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", String::new());
            if let Ok(v) = HeaderValue::from_str(&format!("{prefix}/{to}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Reply::Asset(kind, text) => (StatusCode::OK, kind, text.to_owned()),
        Reply::Refused(status, refusal) => {
            let html = format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>wire ui: refused</title></head><body><main><h1>Refused</h1><p><code>{}</code>: {}</p></main></body></html>\n",
                refusal.code(),
                super::html::esc(refusal.message())
            );
            (status, "text/html; charset=utf-8", html)
        }
        Reply::NotFound => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    base(status, kind, body)
}

fn base(status: StatusCode, kind: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::Full(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page's event stream: `link` (the relay link's state, first and on every change) and
/// `change` (something the page may show changed). A comment every 25 s keeps proxies and
/// the session alive.
fn events(ui: &Arc<Ui>, cookie: Option<String>) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut changes = ui.changes.subscribe();
    let mut link = ui.link.subscribe();
    let ui = ui.clone();
    tokio::spawn(async move {
        let say_link = |l: &super::Link| {
            Bytes::from(format!("event: link\ndata: {}\n\n", serde_json::to_string(l).unwrap_or_default()))
        };
        let first = say_link(&link.borrow_and_update());
        if tx.send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() || tx.send(first).await.is_err() {
            return;
        }
        let mut keepalive = tokio::time::interval(std::time::Duration::from_secs(25));
        keepalive.tick().await;
        loop {
            let chunk = tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(what) => Bytes::from(format!("event: change\ndata: {what}\n\n")),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Bytes::from_static(b"event: change\ndata: many\n\n"),
                    Err(_) => return,
                },
                moved = link.changed() => match moved {
                    Ok(()) => say_link(&link.borrow_and_update()),
                    Err(_) => return,
                },
                _ = keepalive.tick() => {
                    if ui.gate.session(cookie.as_deref()).is_err() {
                        return;
                    }
                    Bytes::from_static(b": keepalive\n\n")
                }
                () = tx.closed() => return,
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut r = base(StatusCode::OK, "text/event-stream", String::new());
    *r.body_mut() = Body::Events(rx);
    r
}

/// `application/x-www-form-urlencoded` (a query string or a form body) as pairs.
pub fn form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

/// Percent-decoding (invalid escapes kept as they are; invalid UTF-8 replaced).
pub fn decode(text: &str) -> String {
    String::from_utf8_lossy(&wire_core::files::percent_decode(text)).into_owned()
}

/// Percent-encoding for a path segment.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_segments_round_trip() {
        let pairs = form("body=hello+there%21&to=did%3Akey%3Az6&empty=&bad=%zz");
        assert_eq!(pairs[0], ("body".into(), "hello there!".into()));
        assert_eq!(pairs[1], ("to".into(), "did:key:z6".into()));
        assert_eq!(pairs[2], ("empty".into(), String::new()));
        assert_eq!(pairs[3], ("bad".into(), "%zz".into()));
        assert_eq!(decode(&encode("did:key:z6Mk/é ?")), "did:key:z6Mk/é ?");
    }
}
