//! The lean SSE path for plain TCP: a connection whose first request is
//! `GET /v1/slots/{id}/stream` is served without hyper, whose two 8 KiB connection
//! buffers would otherwise stay allocated for the life of every idle stream. The request
//! head is read into a temporary buffer, parsed with `httparse` and dropped; then frames
//! from the subscriber task are written straight to the socket. Any other first request,
//! or one we cannot classify from the first segment, goes to hyper untouched (we only
//! peek). Over TLS and the Unix socket the start of the first request is read instead
//! ([`first_request`]) and, when it is not a stream, handed to hyper in front of the rest
//! ([`Prefixed`]). Measured in docs/BENCHMARKS.md ("idle streams").

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ApiError;
use crate::state::Relay;

/// Longest request head accepted on this path.
const MAX_HEAD: usize = 16 * 1024;

/// Whether the connection starts with a stream request (looks at the first segment only).
pub(crate) async fn is_stream_request(tcp: &TcpStream, timeout: Duration) -> bool {
    let mut first = [0u8; 128];
    let Ok(Ok(n)) = tokio::time::timeout(timeout, tcp.peek(&mut first)).await else { return false };
    let Some(line_end) = first[..n].iter().position(|b| *b == b'\r') else { return false };
    is_stream_line(&first[..line_end])
}

/// Serves one stream request on a plain TCP connection that [`is_stream_request`] picked.
pub(crate) async fn serve(mut tcp: TcpStream, relay: Arc<Relay>, peer: IpAddr) {
    crate::metrics::Metrics::inc(&relay.metrics.requests_total);
    let head = match tokio::time::timeout(relay.config.request_timeout, read_head(&mut tcp)).await {
        Ok(Ok(head)) => head,
        Ok(Err(_)) => return,
        Err(_) => {
            crate::metrics::Metrics::inc(&relay.metrics.request_timeouts_total);
            return;
        }
    };
    serve_head(tcp, head, relay, peer).await;
}

/// What the first request on a TLS or Unix-socket connection is: a stream request (with
/// its parsed head), or anything else (with the bytes read so far, for hyper).
pub(crate) enum First<S> {
    /// `GET /v1/slots/{id}/stream`: serve it here.
    Stream(S, Head),
    /// Anything else, or a head that does not parse: hyper answers it.
    Other(Prefixed<S>),
}

/// Reads the start of a connection's first request, through TLS or not: enough of the
/// request line to tell a stream request, and for one the whole head. `None` if the client
/// sends nothing within `timeout` or closes. Plain TCP uses [`is_stream_request`] instead,
/// which only peeks.
pub(crate) async fn first_request<S: AsyncRead + Unpin>(
    mut io: S,
    timeout: Duration,
    metrics: &crate::metrics::Metrics,
) -> Option<First<S>> {
    let mut buf = Vec::with_capacity(512);
    let read = async {
        loop {
            let mut chunk = [0u8; 512];
            let n = io.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(line_end) = buf.iter().position(|b| *b == b'\r' || *b == b'\n') else {
                if buf.len() >= 128 {
                    return Some(None); // too long a line to be ours: hyper judges it
                }
                continue;
            };
            if !is_stream_line(&buf[..line_end]) {
                return Some(None);
            }
            match parse_head(&buf) {
                Ok(Some(head)) => return Some(Some(head)),
                Ok(None) => continue,
                Err(_) => return Some(None),
            }
        }
    };
    let Ok(read) = tokio::time::timeout(timeout, read).await else {
        crate::metrics::Metrics::inc(&metrics.request_timeouts_total);
        return None;
    };
    match read? {
        Some(head) => Some(First::Stream(io, head)),
        None => Some(First::Other(Prefixed { prefix: buf, at: 0, inner: io })),
    }
}

/// A connection with bytes already read from it put back in front.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(out.remaining());
            out.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new(); // give the memory back for the connection's life
                this.at = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves a stream request whose head was read, on any connection: the answer's head, then
/// frames from the subscriber task until either side ends.
pub(crate) async fn serve_head<S: Watch>(mut io: S, head: Head, relay: Arc<Relay>, peer: IpAddr) {
    let started = std::time::Instant::now();
    if let Ok((slot, _, token)) = target(&head) {
        // Several nodes on one store: what another node made, minted or moved.
        let _ = relay.sync_index(slot.as_str(), token, true).await;
    }
    let opened = open(&relay, &head, peer);
    relay.metrics.observe(crate::metrics::Route::Stream, started.elapsed());
    drop(head);
    let (guard, mut rx) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            crate::metrics::Metrics::inc(&relay.metrics.errors_total);
            let _ = send(&mut io, &error_response(e)).await;
            return;
        }
    };
    drop(relay);
    let ok =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\nconnection: close\r\n\r\n";
    if send(&mut io, ok).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(frame) => {
                    if send(&mut io, &frame).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            // The client may not send anything more: any byte or EOF ends the stream. Waiting
            // on the socket's readiness, not a read, keeps TLS from holding a read buffer.
            _ = Watch::readable(&io) => break,
        }
    }
    drop(guard);
}

/// A connection whose socket can be watched for bytes (or EOF) without holding a read
/// buffer while it waits.
pub(crate) trait Watch: AsyncRead + AsyncWrite + Unpin {
    /// Resolves once the peer sent something or closed (what it sent is dropped: the stream
    /// ends either way).
    fn readable(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// Waits until `sock` has a byte or EOF for us, past readiness that turns out false.
macro_rules! watch_socket {
    ($sock:expr) => {
        async move {
            let mut byte = [0u8; 1];
            loop {
                if $sock.readable().await.is_err() {
                    return;
                }
                match $sock.try_read(&mut byte) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    _ => return,
                }
            }
        }
    };
}

impl<T: Watch + Send + Sync> Watch for Box<T> {
    fn readable(&self) -> impl std::future::Future<Output = ()> + Send {
        T::readable(self)
    }
}

impl Watch for TcpStream {
    async fn readable(&self) {
        watch_socket!(self).await
    }
}

/// [`Watch::readable`] for a TCP socket under something else (TLS).
pub(crate) async fn watch_tcp(tcp: &TcpStream) {
    watch_socket!(tcp).await
}

impl Watch for tokio::net::UnixStream {
    async fn readable(&self) {
        watch_socket!(self).await
    }
}

impl Watch for tokio_rustls::server::TlsStream<TcpStream> {
    async fn readable(&self) {
        // Under TLS the bytes are records the stream will never decrypt: it ends here.
        let tcp = self.get_ref().0;
        watch_socket!(tcp).await
    }
}

/// Writes and flushes (TLS holds written bytes until flushed).
async fn send<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

fn is_stream_line(line: &[u8]) -> bool {
    line.starts_with(b"GET /v1/slots/")
        && line.split(|b| *b == b' ').nth(1).is_some_and(|path| {
            let path = path.split(|b| *b == b'?').next().unwrap_or_default();
            path.ends_with(b"/stream") && path.iter().filter(|b| **b == b'/').count() == 4
        })
}

pub(crate) struct Head {
    path: String,
    authorization: Option<String>,
    last_event_id: Option<String>,
}

async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(512);
    loop {
        let mut chunk = [0u8; 512];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(&buf)? {
            return Ok(head);
        }
    }
}

/// Parses what has arrived of a request head: `None` while it is incomplete (and within
/// [`MAX_HEAD`]), an error for anything that is not a request head.
pub(crate) fn parse_head(buf: &[u8]) -> std::io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let value = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            Ok(Some(Head {
                path: req.path.unwrap_or_default().to_owned(),
                authorization: value("authorization"),
                last_event_id: value("last-event-id"),
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(None),
        _ => Err(std::io::ErrorKind::InvalidData.into()),
    }
}

/// The slot, cursor and bearer token a stream request names.
pub(crate) fn target(head: &Head) -> Result<(wire_core::proto::api::SlotId, Option<u64>, Option<&str>), ApiError> {
    let (path, query) = head.path.split_once('?').unwrap_or((&head.path, ""));
    let slot = path.trim_matches('/').split('/').nth(2).unwrap_or_default();
    let slot = wire_core::proto::api::SlotId::new(slot).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let after = query
        .split('&')
        .find_map(|p| p.strip_prefix("after="))
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request("`after` must be a non-negative integer")))
        .transpose()?;
    let token = head.authorization.as_deref().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    Ok((slot, after, token))
}

fn open(
    relay: &Arc<Relay>,
    head: &Head,
    peer: IpAddr,
) -> Result<(crate::sse::StreamGuard, tokio::sync::mpsc::Receiver<bytes::Bytes>), ApiError> {
    if relay.config.local_only && !peer.is_loopback() {
        return Err(ApiError::forbidden("this relay is local-only and accepts loopback clients only"));
    }
    relay.rate_limit_ip(peer)?;
    let (slot, after, token) = target(head)?;
    crate::sse::open(relay, slot.as_str(), token, head.last_event_id.as_deref(), after)
}

fn error_response(e: ApiError) -> Vec<u8> {
    let status = e.status();
    let retry = e.retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
    let body = serde_json::to_vec(&wire_core::proto::api::ErrorBody {
        error: wire_core::proto::api::ErrorDetail { code: e.code, message: e.message },
    })
    .expect("error body serializes");
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}
