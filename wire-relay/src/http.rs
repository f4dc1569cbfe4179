//! Connections: accept, TLS, per-connection hyper service, graceful shutdown.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::Metrics;
use crate::state::Relay;

/// A response body: a whole buffer, or an SSE stream fed by a bounded queue.
#[derive(Debug)]
pub enum Body {
    /// A complete body.
    Full(Full<Bytes>),
    /// Server-sent events.
    Stream(StreamBody),
}

/// SSE frames from the subscriber's task; the guard releases the stream's slot on drop.
#[derive(Debug)]
pub struct StreamBody {
    pub(crate) rx: mpsc::Receiver<Bytes>,
    pub(crate) _guard: crate::sse::StreamGuard,
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(full) => Pin::new(full).poll_frame(cx),
            Body::Stream(s) => s.rx.poll_recv(cx).map(|frame| frame.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(full) => full.is_end_stream(),
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(full) => full.size_hint(),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

/// Where the relay listens.
#[derive(Debug)]
pub enum Listener {
    /// TCP (optionally with TLS from the config).
    Tcp(TcpListener),
    /// A Unix socket (see [`crate::bind_unix`]); peers count as loopback.
    Unix(UnixListener),
}

pub(crate) async fn accept_loop(
    listener: Listener,
    relay: Arc<Relay>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(relay.config.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let Some((stream, peer)) = accepted else { continue };
        // One address cannot take every place: past its share the connection is closed
        // unread (the client sees a reset and may retry later).
        let Some(share) = crate::state::IpShare::take(&relay, peer) else {
            Metrics::inc(&relay.metrics.connections_refused_total);
            drop(stream);
            continue;
        };
        let permit = (permit, share);
        let relay = relay.clone();
        match (stream, &tls) {
            (Stream::Tcp(tcp), Some(acceptor)) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    // A failed handshake is the client's problem; it costs us nothing more.
                    // The handshake's state is boxed and freed when it ends, so an idle
                    // stream's task does not keep room for it.
                    let handshake = Box::pin(acceptor.accept(tcp));
                    if let Ok(Ok(tls)) = tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await {
                        // Boxed too: the connection state moves between the steps of a
                        // connection's life, and each step would keep its own copy.
                        serve_tls(Box::new(tls), peer, relay, watcher, permit).await;
                    }
                });
            }
            (Stream::Tcp(tcp), None) => {
                let _ = tcp.set_nodelay(true);
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    if crate::lean::is_stream_request(&tcp, relay.config.request_timeout).await {
                        let metrics = relay.metrics.clone();
                        counted(&metrics, permit, crate::lean::serve(tcp, relay, peer)).await;
                    } else {
                        Box::pin(serve_connection(tcp, peer, relay, watcher, permit)).await;
                    }
                });
            }
            (Stream::Unix(unix), _) => {
                tokio::spawn(serve_any(unix, peer, relay, graceful.watcher(), permit));
            }
        }
    }
    drop(listener);
    // Drain: in-flight requests finish; SSE streams end because `shutdown` flipped the
    // relay's watch channel, which their tasks select on.
    let drain = relay.config.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        crate::log("shutdown: drain timeout reached, closing remaining connections");
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> Option<(Stream, IpAddr)> {
    let result = match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, addr): (_, SocketAddr)| (Stream::Tcp(s), addr.ip())),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| (Stream::Unix(s), IpAddr::V4(Ipv4Addr::LOCALHOST))),
    };
    match result {
        Ok(pair) => Some(pair),
        Err(e) => {
            // Out of file descriptors and the like: back off instead of spinning.
            crate::log(&format!("accept failed: {e}"));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            None
        }
    }
}

/// A connection's places: one of all connections, one of its address's share.
type Place = (tokio::sync::OwnedSemaphorePermit, crate::state::IpShare);

/// Serves a connection outside hyper, counted as open while it lasts.
async fn counted(metrics: &Metrics, place: Place, serve: impl std::future::Future<Output = ()>) {
    Metrics::inc(&metrics.connections_open);
    serve.await;
    drop(place); // before the gauge drops: a reader of it may connect at once
    Metrics::dec(&metrics.connections_open);
}

/// A TLS or Unix-socket connection: a first request that is a stream takes the lean path
/// (no hyper buffers for the life of an idle stream), anything else goes to hyper.
async fn serve_any<S>(
    io: S,
    peer: IpAddr,
    relay: Arc<Relay>,
    watcher: hyper_util::server::graceful::Watcher,
    permit: Place,
) where
    S: crate::lean::Watch + Send + 'static,
{
    match crate::lean::first_request(io, relay.config.request_timeout, &relay.metrics).await {
        Some(crate::lean::First::Stream(io, head)) => {
            Metrics::inc(&relay.metrics.requests_total);
            let metrics = relay.metrics.clone();
            counted(&metrics, permit, crate::lean::serve_head(io, head, relay, peer)).await;
        }
        // Boxed: hyper's connection state would otherwise size every stream's task.
        Some(crate::lean::First::Other(io)) => Box::pin(serve_connection(io, peer, relay, watcher, permit)).await,
        None => {}
    }
}

/// A TLS connection: as [`serve_any`], and a stream is handed from rustls to
/// [`crate::sealed::Sealed`] when it can be (an idle stream then holds no TLS buffers).
async fn serve_tls(
    io: Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    peer: IpAddr,
    relay: Arc<Relay>,
    watcher: hyper_util::server::graceful::Watcher,
    permit: Place,
) {
    use crate::sealed::Taken;
    match crate::lean::first_request(io, relay.config.request_timeout, &relay.metrics).await {
        Some(crate::lean::First::Stream(mut io, head)) => {
            Metrics::inc(&relay.metrics.requests_total);
            let metrics = relay.metrics.clone();
            // What rustls still holds to send (session tickets) goes out first.
            if tokio::io::AsyncWriteExt::flush(&mut io).await.is_err() {
                return;
            }
            match crate::sealed::seal(io) {
                Taken::Sealed(io) => {
                    Metrics::inc(&metrics.tls_streams_sealed_total);
                    counted(&metrics, permit, crate::lean::serve_head(io, head, relay, peer)).await
                }
                Taken::Kept(io) => counted(&metrics, permit, crate::lean::serve_head(io, head, relay, peer)).await,
                Taken::Lost => {}
            }
        }
        Some(crate::lean::First::Other(io)) => Box::pin(serve_connection(io, peer, relay, watcher, permit)).await,
        None => {}
    }
}

async fn serve_connection<S>(
    io: S,
    peer: IpAddr,
    relay: Arc<Relay>,
    watcher: hyper_util::server::graceful::Watcher,
    permit: Place,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Metrics::inc(&relay.metrics.connections_open);
    let metrics = relay.metrics.clone();
    let request_timeout = relay.config.request_timeout;
    let service = service_fn(move |req: Request<Incoming>| {
        let relay = relay.clone();
        async move { Ok::<_, Infallible>(crate::routes::handle(&relay, req, peer).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Hyper's timer runs from the first wait for a head (an idle keep-alive connection
        // too) to the head's end; bodies are timed in `routes::read_body`.
        .header_read_timeout(request_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await
        && e.is_timeout()
    {
        // A head that did not arrive within the request timeout (hyper closed it).
        Metrics::inc(&metrics.request_timeouts_total);
    }
    drop(permit); // before the gauge drops: a reader of it may connect at once
    Metrics::dec(&metrics.connections_open);
}

/// A complete response with a JSON body.
pub(crate) fn json(status: hyper::StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("response types serialize");
    let mut response = Response::new(Body::Full(Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}
