//! `wire relay-server`: runs `wire_relay::serve` with flags and environment mapped onto
//! its config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use wire_relay::{Config, Listener, Rate, StoreConfig};

/// Flags of `wire relay-server`; each also reads a `WIRE_RELAY_*` environment variable.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on. Use 0.0.0.0:8771 to serve other machines (with --tls-cert, or
    /// behind a TLS proxy). Port 0 picks a free port (printed at start).
    #[arg(long, env = "WIRE_RELAY_BIND", default_value = "127.0.0.1:8771")]
    bind: SocketAddr,
    /// Data directory for the SQLite store [default: the platform data dir, wire/relay].
    #[arg(long, env = "WIRE_RELAY_DATA")]
    data: Option<PathBuf>,
    /// Store in PostgreSQL instead (`postgres://user@host/db`, or `host=/run/pg dbname=wire`
    /// pairs): every relay node given the same database serves the same slots.
    #[arg(long = "store", env = "WIRE_RELAY_DATABASE_URL", conflicts_with_all = ["data", "ephemeral"])]
    database: Option<String>,
    /// How often a node on a shared database wakes all its streams to read past their
    /// cursors (what a lost append hint missed) and learns other nodes' revocations.
    #[arg(long, env = "WIRE_RELAY_SWEEP", default_value = "5s", value_parser = wire_core::duration::parse)]
    sweep: std::time::Duration,
    /// Keep everything in memory: nothing survives a restart. For demos and tests.
    #[arg(long, env = "WIRE_RELAY_EPHEMERAL", conflicts_with = "data")]
    ephemeral: bool,
    /// Serve loopback clients only (refuses a non-loopback --bind) and turn off the handle
    /// directory. For a same-machine relay.
    #[arg(long, env = "WIRE_RELAY_LOCAL_ONLY")]
    local_only: bool,
    /// Also listen on this Unix socket (created with mode 0600).
    #[arg(long, env = "WIRE_RELAY_UDS")]
    uds: Option<PathBuf>,
    /// TLS certificate chain (PEM). Needs --tls-key.
    #[arg(long, env = "WIRE_RELAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM). Needs --tls-cert.
    #[arg(long, env = "WIRE_RELAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest envelope accepted, in bytes.
    #[arg(long, env = "WIRE_RELAY_MAX_ENVELOPE", default_value_t = Config::default().max_envelope)]
    max_envelope: usize,
    /// Delete un-acked envelopes after this long (e.g. 14d, 12h).
    #[arg(long, env = "WIRE_RELAY_RETENTION", default_value = RETENTION, value_parser = wire_core::duration::parse)]
    retention: Duration,
    /// Stored envelopes per slot.
    #[arg(long, env = "WIRE_RELAY_SLOT_MAX_EVENTS", default_value_t = Config::default().slot_max_events)]
    slot_max_events: u64,
    /// Stored bytes per slot.
    #[arg(long, env = "WIRE_RELAY_SLOT_MAX_BYTES", default_value_t = Config::default().slot_max_bytes)]
    slot_max_bytes: u64,
    /// Envelopes a room slot keeps; past it the oldest are evicted (members behind are told
    /// how many they missed).
    #[arg(long, env = "WIRE_RELAY_ROOM_MAX_EVENTS", default_value_t = Config::default().room_max_events)]
    room_max_events: u64,
    /// Bytes a room slot keeps; past it the oldest are evicted.
    #[arg(long, env = "WIRE_RELAY_ROOM_MAX_BYTES", default_value_t = Config::default().room_max_bytes)]
    room_max_bytes: u64,
    /// Requests per second per client IP (burst 4x); 0 turns the limit off.
    #[arg(long, env = "WIRE_RELAY_IP_RATE", default_value_t = Config::default().ip_rate.per_sec)]
    ip_rate: f64,
    /// Appends per second per token (burst 4x); 0 turns the limit off.
    #[arg(long, env = "WIRE_RELAY_TOKEN_RATE", default_value_t = Config::default().token_rate.per_sec)]
    token_rate: f64,
    /// Proof-of-work bits the intro lane asks of strangers (0 = none).
    #[arg(long, env = "WIRE_RELAY_POW_BITS", default_value_t = Config::default().intro_pow_bits)]
    pow_bits: u8,
    /// Most simultaneous connections.
    #[arg(long, env = "WIRE_RELAY_MAX_CONNECTIONS", default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Most simultaneous connections from one client IP; past it connections are closed.
    #[arg(long, env = "WIRE_RELAY_MAX_CONNECTIONS_PER_IP", default_value_t = Config::default().max_connections_per_ip)]
    max_connections_per_ip: usize,
    /// Longest a client may take to send a request's head, and again its body (e.g. 30s).
    #[arg(long, env = "WIRE_RELAY_REQUEST_TIMEOUT", default_value = REQUEST_TIMEOUT, value_parser = wire_core::duration::parse)]
    request_timeout: Duration,
    /// Slots one client IP may allocate per hour (burst 100); 0 turns the limit off.
    #[arg(long, env = "WIRE_RELAY_SLOTS_PER_HOUR", default_value_t = SLOTS_PER_HOUR)]
    slots_per_hour: f64,
    /// Code pairings in progress one client IP may hold a side of.
    #[arg(long, env = "WIRE_RELAY_RENDEZVOUS_PER_IP", default_value_t = Config::default().rendezvous_per_ip)]
    rendezvous_per_ip: usize,
    /// Most simultaneous event streams per mailbox slot.
    #[arg(long, env = "WIRE_RELAY_MAX_STREAMS_PER_SLOT", default_value_t = Config::default().max_streams_per_slot)]
    max_streams_per_slot: usize,
    /// Most simultaneous event streams per token on a room slot.
    #[arg(long, env = "WIRE_RELAY_MAX_STREAMS_PER_GRANT", default_value_t = Config::default().max_streams_per_grant)]
    max_streams_per_grant: usize,
    /// Most bytes of code-pairing messages held in memory, all nameplates together.
    #[arg(long, env = "WIRE_RELAY_RENDEZVOUS_MAX_BYTES", default_value_t = Config::default().rendezvous_max_bytes)]
    rendezvous_max_bytes: usize,
}

/// `Config::default().retention` as the flag spells it (a unit test keeps them equal).
const RETENTION: &str = "14d";
/// `Config::default().request_timeout` as the flag spells it.
const REQUEST_TIMEOUT: &str = "30s";
/// `Config::default().slot_rate` per hour.
const SLOTS_PER_HOUR: f64 = 120.0;

fn rate(per_sec: f64) -> Rate {
    if per_sec > 0.0 { Rate { per_sec, burst: per_sec * 4.0 } } else { Rate::OFF }
}

/// Runs until SIGINT or SIGTERM.
pub fn run(args: Args, json: bool) -> anyhow::Result<()> {
    if args.local_only && !args.bind.ip().is_loopback() {
        bail!("--local-only refuses to listen on {}: use a loopback address such as 127.0.0.1:8771", args.bind);
    }
    let store = if args.ephemeral {
        StoreConfig::Memory
    } else if let Some(url) = args.database.clone() {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains('=')) {
            bail!("--store takes a PostgreSQL connection string: postgres://user@host/db or `host=... dbname=...`");
        }
        StoreConfig::Postgres { url }
    } else {
        let dir = match args.data {
            Some(dir) => dir,
            None => wire_core::files::platform_dirs()
                .context("cannot find a data directory for this user; pass --data DIR")?
                .data_dir()
                .join("relay"),
        };
        // Before the port is announced: a second relay on the same data is refused.
        wire_relay::store::sqlite::check_free(&dir).context("cannot use this --data")?;
        StoreConfig::Sqlite { dir }
    };
    let config = Config {
        store,
        sweep_interval: args.sweep,
        local_only: args.local_only,
        max_envelope: args.max_envelope,
        retention: args.retention,
        slot_max_events: args.slot_max_events,
        slot_max_bytes: args.slot_max_bytes,
        room_max_events: args.room_max_events,
        room_max_bytes: args.room_max_bytes,
        intro_pow_bits: args.pow_bits,
        ip_rate: rate(args.ip_rate),
        token_rate: rate(args.token_rate),
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        request_timeout: args.request_timeout,
        slot_rate: if args.slots_per_hour > 0.0 {
            Rate { per_sec: args.slots_per_hour / 3600.0, burst: Config::default().slot_rate.burst }
        } else {
            Rate::OFF
        },
        rendezvous_per_ip: args.rendezvous_per_ip,
        max_streams_per_slot: args.max_streams_per_slot,
        max_streams_per_grant: args.max_streams_per_grant,
        rendezvous_max_bytes: args.rendezvous_max_bytes,
        ..Config::default()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(wire_relay::load_tls(cert, key)?),
        _ => None,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let tcp = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = tcp.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut listeners = vec![(Listener::Tcp(tcp), tls)];
        if let Some(path) = &args.uds {
            let unix = wire_relay::bind_unix(path).with_context(|| format!("cannot listen on {}", path.display()))?;
            listeners.push((Listener::Unix(unix), None));
        }
        let announce = serde_json::json!({
            "event": "listening",
            "url": format!("{scheme}://{addr}"),
            "addr": addr.to_string(),
            "uds": args.uds.as_ref().map(|p| p.display().to_string()),
        });
        if json {
            println!("{announce}");
        } else {
            println!("wire relay listening on {scheme}://{addr}");
        }
        wire_relay::serve_many(listeners, config, crate::signals::stop_requested()).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn flag_defaults_spelled_apart_from_the_config_are_the_config_defaults() {
        let config = super::Config::default();
        assert_eq!(wire_core::duration::parse(super::RETENTION), Ok(config.retention));
        assert_eq!(wire_core::duration::parse(super::REQUEST_TIMEOUT), Ok(config.request_timeout));
        assert!((super::SLOTS_PER_HOUR / 3600.0 - config.slot_rate.per_sec).abs() < 1e-12);
    }
}
