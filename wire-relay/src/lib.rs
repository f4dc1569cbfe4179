//! # wire-relay
//!
//! The mailbox relay: slots, capabilities, the intro lane, the handle directory and the
//! SPAKE2 rendezvous. It stores sealed envelopes and never sees plaintext, a sender or a
//! key; tokens are kept only as SHA-256 hashes. This crate is a library; `wire
//! relay-server` runs it, and tests run it in-process on a port-0 listener.
//!
//! # Layout
//!
//! - [`serve`]: takes a bound [`Listener`], a [`Config`] and a shutdown future.
//! - `routes`: the v1 HTTP API, one handler per route; `error`: the one status table.
//! - `sse`: the event stream, one task per subscriber with bounded queues; `lean`:
//!   the same stream on plain TCP without hyper's per-connection buffers.
//! - `engine`: the store thread; writes are group-committed, answered after the commit.
//! - [`store`]: the narrow storage trait, SQLite (default) and in-memory backends.
//! - `state`: the in-memory index (slots, grants), subscribers, limits, metrics.
//! - `rendezvous`: nameplates for code pairing (in memory).
//!
//! The HTTP API is specified in `docs/PROTOCOL.md`; its types are
//! [`wire_core::proto::api`].

pub mod config;
mod engine;
pub mod error;
mod http;
mod lean;
mod limit;
mod metrics;
mod nameplates;
mod nodes;
mod rendezvous;
mod routes;
mod sealed;
mod sse;
mod state;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use config::{Config, Rate, StoreConfig};
pub use http::{Body, Listener};
pub use wire_core::proto::api;

/// The lean stream path's request parsing, without a relay: for the fuzz targets in
/// `fuzz/`. Never panics, whatever the bytes.
#[doc(hidden)]
pub fn fuzz_stream_head(bytes: &[u8]) {
    if let Ok(Some(head)) = lean::parse_head(bytes) {
        let _ = lean::target(&head);
    }
}

use state::{Relay, lock};
use store::{Op, Outcome, Store};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be opened or loaded.
    #[error("cannot open the relay store")]
    Store(#[from] store::StoreError),
    /// `local_only` with a non-loopback listener.
    #[error("--local-only refuses to listen on {0}: bind a loopback address (127.0.0.1 or ::1)")]
    NotLoopback(std::net::SocketAddr),
    /// Certificate or key files.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Listener trouble.
    #[error("listener error: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) fn log(message: &str) {
    eprintln!("wire-relay: {message}");
}

/// Sessions (store threads) per node on a PostgreSQL store. Two (one committing while the
/// next batch forms) measured slower than one on a 2-core machine running the database, two
/// nodes and the load (docs/BENCHMARKS.md): the batches got smaller and the CPU was the
/// limit. A database on its own machine may want more.
const POSTGRES_SESSIONS: usize = 1;

/// Runs the relay on `listener` until `shutdown` resolves, then drains in-flight requests
/// (up to `config.drain_timeout`), ends SSE streams and closes the store.
pub async fn serve(listener: Listener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    serve_many(vec![(listener, None)], config, shutdown).await
}

/// [`serve`] on several listeners at once (say TCP with TLS and a Unix socket), all
/// sharing one store and one index. `tls` applies to TCP listeners (see [`load_tls`]).
pub async fn serve_many(
    listeners: Vec<(Listener, Option<Arc<rustls::ServerConfig>>)>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if config.local_only {
        for (listener, _) in &listeners {
            if let Listener::Tcp(l) = listener {
                let addr = l.local_addr()?;
                if !addr.ip().is_loopback() {
                    return Err(ServeError::NotLoopback(addr));
                }
            }
        }
    }
    let started = Instant::now();
    // Opened and loaded on a thread of its own: the PostgreSQL client blocks on a runtime
    // of its own, which cannot run inside this one.
    let which = config.store.clone();
    let node = state::random_id(6);
    let node_name = node.clone();
    let opened = std::thread::spawn(move || -> Result<_, store::StoreError> {
        let mut stores: Vec<Box<dyn Store>> = match &which {
            StoreConfig::Sqlite { dir } => vec![Box::new(store::sqlite::SqliteStore::open(dir)?)],
            StoreConfig::Postgres { url } => (0..POSTGRES_SESSIONS)
                .map(|_| Ok(Box::new(store::postgres::PostgresStore::open(url, &node_name)?) as Box<dyn Store>))
                .collect::<Result<_, store::StoreError>>()?,
            StoreConfig::Memory => vec![Box::new(store::memory::MemoryStore::new())],
        };
        let snapshot = stores[0].load()?;
        let incarnation = stores[0].incarnation()?;
        // Reads on a session of their own beside the writers' (a shared store).
        let reader: Option<Box<dyn Store>> = match &which {
            StoreConfig::Postgres { url } => Some(Box::new(store::postgres::PostgresStore::open(url, &node_name)?)),
            _ => None,
        };
        Ok((stores, reader, snapshot, incarnation))
    })
    .join()
    .map_err(|_| store::StoreError("the store thread panicked while opening".into()))?;
    let (stores, reader, snapshot, incarnation) = opened?;
    let shared = stores[0].shared();
    let quiet = config.quiet;
    let lifecycle = move |line: &str| {
        if !quiet {
            log(line);
        }
    };
    lifecycle(&format!(
        "loaded {} slots and {} grants in {:?}",
        snapshot.slots.len(),
        snapshot.grants.len(),
        started.elapsed()
    ));

    let subscribers: Arc<state::Subscribers> = Arc::new(Mutex::new(HashMap::new()));
    let metrics = Arc::new(metrics::Metrics::default());
    let (subs, m) = (subscribers.clone(), metrics.clone());
    let on_commit: engine::OnCommit = Arc::new(move |op, outcome| {
        if let (Op::Append { slot, envelope, .. }, Some(seq)) = (op, outcome.fresh_seq()) {
            metrics::Metrics::inc(&m.appends_total);
            m.append_bytes_total.fetch_add(envelope.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Some(stored) = state::stored_from(op, seq) {
                state::fan_out(&subs, slot, stored);
            }
        }
    });
    let (engine, store_threads) = engine::Engine::spawn(stores, reader, on_commit, &metrics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut relay = Relay::new(config, engine.clone(), snapshot, subscribers, metrics, stop_rx.clone());
    if let Some(incarnation) = incarnation {
        relay.incarnation = incarnation;
    }
    relay.shared = shared;
    relay.node = node;
    if let (true, StoreConfig::Postgres { url }) = (shared, &relay.config.store) {
        relay.nameplates = Some(nameplates::Nameplates::new(url.clone()));
    }
    let relay = Arc::new(relay);
    tokio::spawn(maintenance(relay.clone(), stop_rx.clone()));
    if let (true, StoreConfig::Postgres { url }) = (shared, &relay.config.store) {
        nodes::listen(relay.clone(), url.clone(), stop_rx.clone());
        tokio::spawn(nodes::sweep(relay.clone(), stop_rx.clone()));
    }

    let mut loops = tokio::task::JoinSet::new();
    for (listener, tls) in listeners {
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        loops.spawn(http::accept_loop(listener, relay.clone(), tls, stopped));
    }
    shutdown.await;
    lifecycle("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    drop(relay);
    drop(engine);
    // The store thread exits once every engine handle is gone; wait for it so the last
    // batch is committed before we return.
    let _ = tokio::task::spawn_blocking(move || store_threads.into_iter().for_each(|t| drop(t.join()))).await;
    lifecycle("stopped");
    Ok(())
}

/// Retention, rate-limit sweeps and nameplate expiry, every `maintenance_interval`
/// (never faster than every 10 ms), reading the configured clock.
async fn maintenance(relay: Arc<Relay>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = relay.config.maintenance_interval.max(std::time::Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = relay.now_ms();
        let before = now.saturating_sub(relay.config.retention.as_millis() as u64);
        if let Ok(outcome @ Outcome::Expired { .. }) = relay.write(Op::Expire { before }).await
            && let Outcome::Expired { floors } = &outcome
            && !floors.is_empty()
        {
            relay.metrics.expired_total.fetch_add(floors.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let dead = relay.dead_grants(before);
        if !dead.is_empty() {
            let _ = relay.write(Op::PurgeGrants { ids: dead }).await;
        }
        let instant = Instant::now();
        relay.ip_limit.sweep(instant);
        relay.token_limit.sweep(instant);
        relay.slot_limit.sweep(instant);
        let (open, held) = match &relay.nameplates {
            Some(shared) => shared.sweep(now).await.unwrap_or_default(),
            None => {
                let mut rv = lock(&relay.rendezvous);
                (rv.sweep(now), rv.bytes())
            }
        };
        relay.metrics.nameplates_open.store(open as u64, std::sync::atomic::Ordering::Relaxed);
        relay.metrics.rendezvous_bytes.store(held as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Binds a Unix socket at `path` with mode 0600, replacing a stale socket file. Put it in
/// a directory only the user can enter (0700): the mode is set just after the bind.
pub fn bind_unix(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Loads a certificate chain and private key (PEM) into a rustls server config using the
/// ring provider (the one provider every crate in this workspace links).
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServeError::Tls(format!("cannot read certificates from {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!("no certificate in {}", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServeError::Tls(format!("cannot read the private key from {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(format!("certificate and key do not fit together: {e}")))?;
    // Streams leave rustls after their request (`sealed`): they need the traffic secrets.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}
