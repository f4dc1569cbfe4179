//! The relay client: typed calls to the v1 HTTP API (docs/PROTOCOL.md, section 11) over
//! HTTP/1.1, with TLS (Mozilla roots) for `https` relays. A connection that finished a call
//! is kept for the next call to the same address from this process for a few seconds (a
//! pull lists, acks and revokes on one connection); streams have their own.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::proto::api::{
    AckRequest, AckResponse, AllocateSlotRequest, AllocateSlotResponse, AppendResponse, ClaimHandleRequest, ErrorBody,
    ErrorCode, GrantRequest, GrantResponse, INTRO_TAG_HEADER, ListResponse, ResolveHandleResponse, RevokeResponse,
    SlotId, StoredEnvelope, StreamHello, StreamMissed,
};
use crate::proto::api::{JoinResponse, NameplateResponse, RendezvousPoll};
use crate::proto::secret::Token;
use crate::proto::signed::Signed;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle connection is reused: well inside the relay's own idle limits, so a
/// reused connection is almost never one the relay is closing.
const IDLE_REUSE: Duration = Duration::from_secs(5);
/// The largest answer read from a relay. A list page is asked for at most
/// [`LIST_PAGE_BYTES`] of envelopes; nothing else comes near this.
pub const MAX_RESPONSE: usize = 24 << 20;
/// The envelope bytes a list page may hold (the relay stops adding envelopes past it,
/// always returning at least one).
pub const LIST_PAGE_BYTES: usize = 8 << 20;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One idle connection per relay address, shared by every client of this process.
fn lock_pool() -> std::sync::MutexGuard<'static, HashMap<String, (Sender, Instant)>> {
    static POOL: OnceLock<Mutex<HashMap<String, (Sender, Instant)>>> = OnceLock::new();
    POOL.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// A relay address: `https://host[:port]`, `http://host[:port]`, bare `host[:port]`
/// (http for loopback hosts, https otherwise), or `unix:/path/to/relay.sock` (a relay's
/// Unix socket on this machine).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayUrl {
    tls: bool,
    host: String,
    port: u16,
    unix: Option<std::path::PathBuf>,
}

/// How close a relay address is; sends try the closest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// A Unix socket on this machine.
    Unix,
    /// A loopback address.
    Loopback,
    /// A private or link-local address, or a `.local`/`.lan` name.
    Lan,
    /// Anything else.
    Remote,
}

impl RelayUrl {
    /// Parses a relay address.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(text.chars().take(200).collect());
        let text = text.trim().trim_end_matches('/');
        if let Some(path) = text.strip_prefix("unix:") {
            let path = std::path::Path::new(path.trim_start_matches("//"));
            if !path.is_absolute() || path.as_os_str().len() > 100 {
                return Err(bad());
            }
            return Ok(Self { tls: false, host: "localhost".into(), port: 0, unix: Some(path.to_owned()) });
        }
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Some(true), rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (Some(false), rest)
        } else if text.contains("://") {
            return Err(bad());
        } else {
            (None, text)
        };
        if rest.is_empty() || rest.contains('/') || rest.contains('@') || rest.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, None), // bare IPv6
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')) {
            return Err(bad());
        }
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let tls = tls.unwrap_or(!loopback);
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { tls, host, port, unix: None })
    }

    /// `host:port`, as a dial target (`localhost` for a Unix socket).
    pub fn authority(&self) -> String {
        if self.unix.is_some() {
            "localhost".into()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host, as handles name it (`nick@host[:port]`, port only when not the default).
    pub fn handle_host(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default || self.unix.is_some() { self.host.clone() } else { self.authority() }
    }

    /// How close the address is.
    pub fn reach(&self) -> Reach {
        use std::net::IpAddr;
        if self.unix.is_some() {
            return Reach::Unix;
        }
        match self.host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => Reach::Loopback,
            Ok(IpAddr::V4(v4)) if v4.is_private() || v4.is_link_local() => Reach::Lan,
            Ok(IpAddr::V6(v6)) if (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80 => {
                Reach::Lan
            }
            Ok(_) => Reach::Remote,
            Err(_) if self.host == "localhost" => Reach::Loopback,
            Err(_) if self.host.ends_with(".local") || self.host.ends_with(".lan") => Reach::Lan,
            Err(_) => Reach::Remote,
        }
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.unix {
            return write!(f, "unix:{}", path.display());
        }
        let default = if self.tls { 443 } else { 80 };
        let scheme = if self.tls { "https" } else { "http" };
        if self.port == default {
            write!(f, "{scheme}://{}", self.host)
        } else {
            write!(f, "{scheme}://{}", self.authority())
        }
    }
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayUrl({self})")
    }
}

/// Why a relay call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Not a relay address.
    #[error("`{0}` is not a relay address (examples: https://relay.example, 127.0.0.1:8771)")]
    BadUrl(String),
    /// No connection (down, refused, timed out, TLS failure).
    #[error("relay {url} is unreachable ({reason}); check the address and that the relay is running")]
    Unreachable {
        /// The relay.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Plain `http://` to a relay that is not on this machine: tokens would cross the
    /// network in clear.
    #[error(
        "refusing plain http to {0}: owner and send tokens would cross the network in clear; use https://, or set \
         WIRE_ALLOW_PLAIN_HTTP=1 for a network you trust (a LAN)"
    )]
    PlainHttp(String),
    /// The relay answered with an error.
    #[error("the relay refused: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: ErrorCode,
        /// The relay's message.
        message: String,
    },
    /// The relay answered something that is not the protocol.
    #[error("relay {url} answered something that is not the wire protocol: {detail}")]
    Protocol {
        /// The relay.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

impl ClientError {
    /// The relay's error code, if it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A TLS handshake failure in words that say what to do.
fn tls_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        format!(
            "TLS: its certificate is signed by a CA this agent does not trust ({text}); for a private relay, set \
             WIRE_CA_FILE to its CA certificate (PEM)"
        )
    } else if text.contains("NotValidForName") {
        format!("TLS: its certificate is not valid for this name ({text}); use the name the certificate was issued for")
    } else if text.contains("Expired") {
        format!("TLS: its certificate has expired ({text})")
    } else {
        format!("TLS: {text}")
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // A private relay's CA (a company or test CA), in addition to the Mozilla roots.
        if let Some(file) = std::env::var_os("WIRE_CA_FILE").filter(|f| !f.is_empty()) {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            match CertificateDer::pem_file_iter(&file) {
                Ok(certs) => {
                    for cert in certs.flatten() {
                        let _ = roots.add(cert);
                    }
                }
                Err(e) => eprintln!("warning: WIRE_CA_FILE {}: {e}; using the Mozilla roots only", file.display()),
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// A byte stream to a relay.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A client for one relay.
#[derive(Debug, Clone)]
pub struct Client {
    url: RelayUrl,
}

impl Client {
    /// A client for `url`.
    pub fn new(url: RelayUrl) -> Self {
        Self { url }
    }

    /// The relay's address.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    fn unreachable(&self, reason: impl fmt::Display) -> ClientError {
        ClientError::Unreachable { url: self.url.to_string(), reason: reason.to_string() }
    }

    /// Opens a connection (TCP, TLS over TCP, or a Unix socket).
    async fn connect(&self) -> Result<TokioIo<Box<dyn Io>>, ClientError> {
        let here = matches!(self.url.reach(), Reach::Unix | Reach::Loopback);
        if !self.url.tls && !here && std::env::var("WIRE_ALLOW_PLAIN_HTTP").map_or(true, |v| v != "1") {
            return Err(ClientError::PlainHttp(self.url.to_string()));
        }
        let connected = async {
            if let Some(path) = &self.url.unix {
                let unix = tokio::net::UnixStream::connect(path).await.map_err(|e| self.unreachable(e))?;
                return Ok(Box::new(unix) as Box<dyn Io>);
            }
            let tcp = tokio::net::TcpStream::connect(self.url.authority()).await.map_err(|e| self.unreachable(e))?;
            let _ = tcp.set_nodelay(true);
            if !self.url.tls {
                return Ok(Box::new(tcp) as Box<dyn Io>);
            }
            let name =
                rustls::pki_types::ServerName::try_from(self.url.host.clone()).map_err(|e| self.unreachable(e))?;
            let tls = tls_connector().connect(name, tcp).await.map_err(|e| self.unreachable(tls_reason(&e)))?;
            Ok(Box::new(tls) as Box<dyn Io>)
        };
        let io = tokio::time::timeout(CONNECT_TIMEOUT, connected)
            .await
            .map_err(|_| self.unreachable("connection timed out"))??;
        Ok(TokioIo::new(io))
    }

    /// One call: on an idle connection to this address if there is a fresh one, else on a
    /// new one. A call the reused connection failed is made again on a new connection only
    /// when it never left (or is safe to repeat: reads, acks, appends, revokes).
    async fn send(&self, make: impl Fn() -> Request<Full<Bytes>>) -> Result<(u16, Bytes), ClientError> {
        let exchange = async {
            let req = make();
            let repeatable = req.method() != hyper::Method::POST
                || req.uri().path().ends_with("/events")
                || req.uri().path().ends_with("/ack");
            let key = self.url.to_string();
            let idle = lock_pool().remove(&key).filter(|(s, at)| at.elapsed() < IDLE_REUSE && !s.is_closed());
            let req = match idle {
                Some((mut sender, _)) => match sender.try_send_request(req).await {
                    Ok(resp) => return self.finish(resp, sender).await,
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => unsent,
                        None if repeatable => make(),
                        None => return Err(self.unreachable(e.into_error())),
                    },
                },
                None => req,
            };
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(self.connect().await?).await.map_err(|e| self.unreachable(e))?;
            tokio::spawn(conn);
            let resp = sender.send_request(req).await.map_err(|e| {
                // Plain HTTP to a TLS port gets an answer that is not HTTP (or none at all).
                if !self.url.tls && (e.is_parse() || e.is_incomplete_message()) {
                    self.unreachable(format!("{e}; if this relay speaks TLS, use https://{}", self.url.authority()))
                } else {
                    self.unreachable(e)
                }
            })?;
            self.finish(resp, sender).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| self.unreachable("no answer within 30 s"))?
    }

    /// A whole answer, refused past [`MAX_RESPONSE`] (a relay cannot make us buffer more).
    async fn read_capped(&self, body: hyper::body::Incoming) -> Result<Bytes, ClientError> {
        match http_body_util::Limited::new(body, MAX_RESPONSE).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(self.protocol(format!("an answer larger than {} MiB", MAX_RESPONSE >> 20)))
            }
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// Reads a whole answer, then leaves its connection for the next call.
    async fn finish(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
        sender: Sender,
    ) -> Result<(u16, Bytes), ClientError> {
        let status = resp.status().as_u16();
        let body = self.read_capped(resp.into_body()).await?;
        if !sender.is_closed() {
            lock_pool().insert(self.url.to_string(), (sender, Instant::now()));
        }
        Ok((status, body))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        token: Option<&Token>,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let body = Bytes::from(body);
        let make = || {
            let mut req = Request::builder().method(method).uri(path).header("host", self.url.authority());
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {}", t.expose()));
            }
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            req.body(Full::new(body.clone()))
        };
        make().map_err(|e| self.protocol(e))?;
        let (status, body) = self.send(|| make().expect("built once above")).await?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| self.protocol(e))
        } else {
            match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => Err(ClientError::Api { status, code: e.error.code, message: e.error.message }),
                Err(_) => Err(self.protocol(format!("HTTP {status} without an error body"))),
            }
        }
    }

    fn protocol(&self, detail: impl fmt::Display) -> ClientError {
        ClientError::Protocol { url: self.url.to_string(), detail: detail.to_string() }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        token: Option<&Token>,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).expect("request types serialize");
        self.call(method, path, token, &[("content-type", "application/json".into())], body).await
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.call::<serde_json::Value>("GET", "/healthz", None, &[], Vec::new()).await.map(|_| ())
    }

    /// The relay's clock (`now` of `/healthz`; `None` from a relay that does not say it).
    pub async fn relay_time(&self) -> Result<Option<crate::proto::time::UnixMillis>, ClientError> {
        let v = self.call::<serde_json::Value>("GET", "/healthz", None, &[], Vec::new()).await?;
        Ok(v["now"].as_u64().map(crate::proto::time::UnixMillis))
    }

    /// The relay's `/metrics` text (Prometheus exposition), for the operator's UI.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let make = || {
            Request::builder()
                .method("GET")
                .uri("/metrics")
                .header("host", self.url.authority())
                .body(Full::new(Bytes::new()))
        };
        make().map_err(|e| self.protocol(e))?;
        let (status, body) = self.send(|| make().expect("built once above")).await?;
        if (200..300).contains(&status) {
            Ok(String::from_utf8_lossy(&body).into_owned())
        } else {
            Err(self.protocol(format!("HTTP {status} from /metrics")))
        }
    }

    /// Allocates a slot.
    pub async fn allocate_slot(&self) -> Result<AllocateSlotResponse, ClientError> {
        self.call("POST", "/v1/slots", None, &[], Vec::new()).await
    }

    /// Allocates a room slot (read by member grants, kept by retention).
    pub async fn allocate_room(&self) -> Result<AllocateSlotResponse, ClientError> {
        self.json("POST", "/v1/slots", None, &AllocateSlotRequest { room: true }).await
    }

    /// Mints a grant on our slot.
    pub async fn grant(
        &self,
        slot: &SlotId,
        owner: &Token,
        request: &GrantRequest,
    ) -> Result<GrantResponse, ClientError> {
        self.json("POST", &format!("/v1/slots/{slot}/grants"), Some(owner), request).await
    }

    /// Revokes a grant on our slot.
    pub async fn revoke(&self, slot: &SlotId, owner: &Token, grant_id: &str) -> Result<RevokeResponse, ClientError> {
        self.call("DELETE", &format!("/v1/slots/{slot}/grants/{grant_id}"), Some(owner), &[], Vec::new()).await
    }

    /// Appends an envelope to a slot's inbox.
    pub async fn append(&self, slot: &SlotId, token: &Token, envelope: &[u8]) -> Result<AppendResponse, ClientError> {
        self.call("POST", &format!("/v1/slots/{slot}/events"), Some(token), &[], envelope.to_vec()).await
    }

    /// Appends an envelope to a slot's intro lane.
    pub async fn intro(&self, slot: &SlotId, tag: &[u8], envelope: &[u8]) -> Result<AppendResponse, ClientError> {
        let headers = [(INTRO_TAG_HEADER, crate::proto::b64::encode(tag))];
        self.call("POST", &format!("/v1/slots/{slot}/intro"), None, &headers, envelope.to_vec()).await
    }

    /// Lists envelopes after a cursor (`None`: from the slot's floor).
    pub async fn list(
        &self,
        slot: &SlotId,
        owner: &Token,
        after: Option<u64>,
        limit: u32,
    ) -> Result<ListResponse, ClientError> {
        let after = after.map(|a| format!("after={a}&")).unwrap_or_default();
        let path = format!("/v1/slots/{slot}/events?{after}limit={limit}&max_bytes={LIST_PAGE_BYTES}");
        self.call("GET", &path, Some(owner), &[], Vec::new()).await
    }

    /// Deletes everything through `through`.
    pub async fn ack(&self, slot: &SlotId, owner: &Token, through: u64) -> Result<AckResponse, ClientError> {
        self.json("POST", &format!("/v1/slots/{slot}/ack"), Some(owner), &AckRequest { through }).await
    }

    /// Claims `nick` for our card.
    pub async fn claim_handle(
        &self,
        owner: &Token,
        nick: &str,
        card: &Signed,
    ) -> Result<ResolveHandleResponse, ClientError> {
        self.json("POST", "/v1/handles", Some(owner), &ClaimHandleRequest { nick: nick.to_owned(), card: card.clone() })
            .await
    }

    /// Opens a rendezvous nameplate for a code pairing.
    pub async fn open_nameplate(&self) -> Result<NameplateResponse, ClientError> {
        self.call("POST", "/v1/rendezvous", None, &[], Vec::new()).await
    }

    /// Joins a nameplate as the second side.
    pub async fn join_nameplate(&self, nameplate: &str) -> Result<JoinResponse, ClientError> {
        self.call("POST", &format!("/v1/rendezvous/{nameplate}/join"), None, &[], Vec::new()).await
    }

    /// Posts a message to the other side.
    pub async fn post_rendezvous(&self, nameplate: &str, side: &Token, body: &[u8]) -> Result<(), ClientError> {
        self.call::<serde_json::Value>(
            "POST",
            &format!("/v1/rendezvous/{nameplate}/messages"),
            Some(side),
            &[],
            body.to_vec(),
        )
        .await
        .map(|_| ())
    }

    /// Messages from the other side after `after`, waiting up to `wait_secs` for one.
    pub async fn poll_rendezvous(
        &self,
        nameplate: &str,
        side: &Token,
        after: u64,
        wait_secs: u64,
    ) -> Result<RendezvousPoll, ClientError> {
        self.call(
            "GET",
            &format!("/v1/rendezvous/{nameplate}/messages?after={after}&wait={wait_secs}"),
            Some(side),
            &[],
            Vec::new(),
        )
        .await
    }

    /// Closes (burns) a nameplate.
    pub async fn close_nameplate(&self, nameplate: &str, side: &Token) -> Result<(), ClientError> {
        self.call::<serde_json::Value>("DELETE", &format!("/v1/rendezvous/{nameplate}"), Some(side), &[], Vec::new())
            .await
            .map(|_| ())
    }

    /// Opens the slot's event stream after `after`. [`EventStream::next`] yields the
    /// relay's hello, then each new envelope whole: the receive path takes them from here
    /// instead of fetching them again.
    pub async fn stream(&self, slot: &SlotId, owner: &Token, after: u64) -> Result<EventStream, ClientError> {
        let req = Request::get(format!("/v1/slots/{slot}/stream"))
            .header("host", self.url.authority())
            .header("authorization", format!("Bearer {}", owner.expose()))
            .header("last-event-id", after.to_string())
            .body(Full::new(Bytes::new()))
            .map_err(|e| self.protocol(e))?;
        let resp = self.open_stream(self.connect().await?, req).await?;
        Ok(EventStream { body: resp, pending: String::new() })
    }

    async fn open_stream<IO>(&self, io: IO, req: Request<Full<Bytes>>) -> Result<hyper::body::Incoming, ClientError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| self.unreachable(e))?;
        tokio::spawn(conn);
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| self.unreachable("no answer within 30 s"))?
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = self.read_capped(resp.into_body()).await?;
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => ClientError::Api { status, code: e.error.code, message: e.error.message },
                Err(_) => self.protocol(format!("HTTP {status} without an error body")),
            });
        }
        Ok(resp.into_body())
    }

    /// Resolves `nick` in the relay's directory.
    pub async fn resolve(&self, nick: &str) -> Result<ResolveHandleResponse, ClientError> {
        if !nick.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            return Err(ClientError::BadUrl(format!("{nick}: a handle is adjective-noun@relay")));
        }
        self.call("GET", &format!("/.well-known/wire/agent?handle={nick}"), None, &[], Vec::new()).await
    }
}

/// An open event stream (server-sent events).
#[derive(Debug)]
pub struct EventStream {
    body: hyper::body::Incoming,
    pending: String,
}

/// What a stream delivers.
#[derive(Debug)]
pub enum StreamItem {
    /// The relay's greeting: its store incarnation.
    Hello(StreamHello),
    /// A stored envelope, whole.
    Envelope(StoredEnvelope),
    /// A frame with a sequence number whose data could not be read (a relay that sends
    /// ids only): the receiver lists from its cursor instead.
    Wake(u64),
    /// Room slots: envelopes the reader still wanted were evicted by retention.
    Missed(StreamMissed),
}

impl EventStream {
    /// The next item; `None` when the stream ended (reconnect).
    pub async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.buffered() {
                return Some(item);
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.pending.push_str(&String::from_utf8_lossy(&data));
            }
            if self.pending.len() > 4 << 20 {
                return None; // a runaway frame: drop the stream and resume from the cursor
            }
        }
    }

    /// Reads whatever the connection already holds, without waiting: after it, [`Self::buffered`]
    /// yields everything that arrived together.
    pub async fn drain_ready(&mut self) {
        use hyper::body::Body;
        // Polled by hand (a zero timeout would wait for the next timer tick, a millisecond);
        // after nothing was ready, once more after a yield, so the connection's task can
        // hand over what the socket already holds.
        let mut yielded = false;
        while self.pending.len() <= 4 << 20 {
            let next = std::future::poll_fn(|cx| match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                std::task::Poll::Ready(frame) => std::task::Poll::Ready(Some(frame)),
                std::task::Poll::Pending => std::task::Poll::Ready(None),
            })
            .await;
            match next {
                Some(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.push_str(&String::from_utf8_lossy(&data));
                    }
                    yielded = false;
                }
                None if !yielded => {
                    tokio::task::yield_now().await;
                    yielded = true;
                }
                _ => return,
            }
        }
    }

    /// An item already received in full, without waiting for the network: a receiver
    /// takes what arrived together as one batch.
    pub fn buffered(&mut self) -> Option<StreamItem> {
        while let Some(end) = self.pending.find("\n\n") {
            let frame: String = self.pending.drain(..end + 2).collect();
            if let Some(item) = parse_frame(&frame) {
                return Some(item);
            }
        }
        None
    }
}

/// One SSE frame as a [`StreamItem`]; comments and unknown events are `None`.
fn parse_frame(frame: &str) -> Option<StreamItem> {
    let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let data = field("data:").unwrap_or_default();
    match field("event:") {
        Some("hello") => serde_json::from_str(data).ok().map(StreamItem::Hello),
        Some("missed") => serde_json::from_str(data).ok().map(StreamItem::Missed),
        _ => {
            let id = field("id:")?.parse::<u64>().ok()?;
            match serde_json::from_str::<StoredEnvelope>(data) {
                Ok(e) if e.seq == id => Some(StreamItem::Envelope(e)),
                _ => Some(StreamItem::Wake(id)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_frames_are_read_whole() {
        let hello = parse_frame("retry: 1000\nevent: hello\ndata: {\"incarnation\":\"abc\"}\n\n");
        assert!(matches!(hello, Some(StreamItem::Hello(h)) if h.incarnation == "abc"));
        let frame =
            "id: 7\nevent: envelope\ndata: {\"seq\":7,\"lane\":\"intro\",\"envelope\":\"AQID\",\"received_at\":5}\n\n";
        match parse_frame(frame) {
            Some(StreamItem::Envelope(e)) => {
                assert_eq!((e.seq, e.lane, e.envelope), (7, crate::proto::api::Lane::Intro, vec![1, 2, 3]))
            }
            other => panic!("{other:?}"),
        }
        // An id whose data does not match (or an id-only relay) wakes a list instead.
        assert!(matches!(parse_frame("id: 8\ndata: {\"seq\":9}\n\n"), Some(StreamItem::Wake(8))));
        assert!(parse_frame(": keep-alive\n\n").is_none());
    }

    #[test]
    fn relay_addresses() {
        let u = |s: &str| RelayUrl::parse(s).map(|u| u.to_string());
        assert_eq!(u("127.0.0.1:8771").unwrap(), "http://127.0.0.1:8771");
        assert_eq!(u("localhost:9").unwrap(), "http://localhost:9");
        assert_eq!(u("relay.example").unwrap(), "https://relay.example");
        assert_eq!(u("relay.example:8443").unwrap(), "https://relay.example:8443");
        assert_eq!(u("http://relay.example/").unwrap(), "http://relay.example");
        assert_eq!(u("HTTPS://Relay.Example:443").ok(), None, "scheme is case-sensitive here");
        assert!(u("https://relay.example/path").is_err());
        assert!(u("ftp://x").is_err());
        assert!(u("").is_err());
        assert!(u("relay.example:99999").is_err());
        assert!(u("user@relay.example").is_err());
        assert_eq!(RelayUrl::parse("relay.example").unwrap().handle_host(), "relay.example");
        assert_eq!(RelayUrl::parse("127.0.0.1:8771").unwrap().handle_host(), "127.0.0.1:8771");
        assert_eq!(u("unix:/run/user/1/wire.sock").unwrap(), "unix:/run/user/1/wire.sock");
        assert_eq!(u("unix:///tmp/r.sock").unwrap(), "unix:/tmp/r.sock");
        assert!(u("unix:relative.sock").is_err());
    }

    #[test]
    fn reach_orders_addresses() {
        let r = |s: &str| RelayUrl::parse(s).unwrap().reach();
        assert_eq!(r("unix:/tmp/x.sock"), Reach::Unix);
        assert_eq!(r("127.0.0.1:8771"), Reach::Loopback);
        assert_eq!(r("localhost:1"), Reach::Loopback);
        assert_eq!(r("http://[::1]:9"), Reach::Loopback);
        assert_eq!(r("http://192.168.1.5:8771"), Reach::Lan);
        assert_eq!(r("http://10.0.0.1:1"), Reach::Lan);
        assert_eq!(r("http://[fd00::1]:1"), Reach::Lan);
        assert_eq!(r("https://box.local"), Reach::Lan);
        assert_eq!(r("https://relay.example"), Reach::Remote);
        assert_eq!(r("https://8.8.8.8"), Reach::Remote);
        assert!(Reach::Unix < Reach::Loopback && Reach::Loopback < Reach::Lan && Reach::Lan < Reach::Remote);
    }
}
