//! Relay configuration: every limit has a documented default (docs/PROTOCOL.md, "Relay
//! limits"); `wire relay-server` maps flags and environment variables onto this.

use std::path::PathBuf;
use std::time::Duration;

use wire_core::clock::SharedClock;

/// How the relay stores envelopes.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// SQLite (WAL) in `dir/relay.sqlite3`: the default.
    Sqlite {
        /// Data directory.
        dir: PathBuf,
    },
    /// PostgreSQL: many relay nodes share one database (`postgres://...` or `key=value`
    /// pairs), each serving every slot.
    Postgres {
        /// Connection string.
        url: String,
    },
    /// Process memory: lost on exit. Tests and throwaway demos only.
    Memory,
}

/// Token-bucket rate: `per_sec` sustained, `burst` at once. `per_sec == 0` disables it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_sec: f64,
    /// Bucket size.
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const OFF: Rate = Rate { per_sec: 0.0, burst: 0.0 };

    /// Whether the limit is on.
    pub fn enabled(self) -> bool {
        self.per_sec > 0.0
    }
}

/// Everything the relay needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Storage.
    pub store: StoreConfig,
    /// Refuse non-loopback peers and turn off the handle directory.
    pub local_only: bool,
    /// Largest envelope accepted (bytes). Checked before the body is read.
    pub max_envelope: usize,
    /// Largest JSON request body (grants, acks, handles).
    pub max_json_body: usize,
    /// Un-acked envelopes older than this are deleted.
    pub retention: Duration,
    /// Per-slot quota: stored envelopes.
    pub slot_max_events: u64,
    /// Per-slot quota: stored bytes.
    pub slot_max_bytes: u64,
    /// Room slots: envelopes kept (past it the oldest are evicted, never refused).
    pub room_max_events: u64,
    /// Room slots: bytes kept (past it the oldest are evicted).
    pub room_max_bytes: u64,
    /// Pending intro-lane requests per slot.
    pub intro_max_pending: u64,
    /// Leading zero bits of proof of work required on the intro lane (0 = none).
    pub intro_pow_bits: u8,
    /// Per-client-IP rate for all requests.
    pub ip_rate: Rate,
    /// Per-token rate for appends.
    pub token_rate: Rate,
    /// Simultaneous connections.
    pub max_connections: usize,
    /// Simultaneous connections from one client IP (Unix-socket clients count as
    /// loopback); past it new connections are closed at once.
    pub max_connections_per_ip: usize,
    /// Longest a client may take to send a request's head, and again its body; a connection
    /// past it is closed (slow senders cannot hold connections).
    pub request_timeout: Duration,
    /// Slots one client IP may allocate: a rate, so the store cannot be filled from one
    /// address.
    pub slot_rate: Rate,
    /// Simultaneous SSE streams per mailbox slot.
    pub max_streams_per_slot: usize,
    /// Simultaneous SSE streams per token on a room slot (a member's; the room has no cap
    /// of its own, so one member cannot take the others' streams).
    pub max_streams_per_grant: usize,
    /// SSE keep-alive comment interval.
    pub keepalive: Duration,
    /// Lifetime of a rendezvous nameplate.
    pub rendezvous_ttl: Duration,
    /// Longest a rendezvous long-poll waits.
    pub rendezvous_wait: Duration,
    /// Bytes of rendezvous messages held in memory across all nameplates (a full relay
    /// answers 507 to new messages until pairings end).
    pub rendezvous_max_bytes: usize,
    /// Open nameplates one client IP may hold a side of (opened or joined).
    pub rendezvous_per_ip: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// No lifecycle lines (loaded, shutting down, stopped) on stderr; errors still print.
    /// For a relay embedded in a command with output of its own (`wire demo`).
    pub quiet: bool,
    /// How often retention, nameplate expiry and rate-limit sweeps run.
    pub maintenance_interval: Duration,
    /// Several nodes on one store: how often each wakes all its streams to read past their
    /// cursors (what a lost append hint missed) and learns the other nodes' revocations.
    pub sweep_interval: Duration,
    /// Wall-clock time for retention, grant and nameplate expiry (tests pass a
    /// [`wire_core::clock::ManualClock`]).
    pub clock: SharedClock,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig::Memory,
            local_only: false,
            max_envelope: wire_core::proto::envelope::MAX_ENVELOPE,
            max_json_body: 64 * 1024,
            retention: Duration::from_secs(14 * 86_400),
            slot_max_events: 10_000,
            slot_max_bytes: 256 * 1024 * 1024,
            room_max_events: 10_000,
            room_max_bytes: 64 * 1024 * 1024,
            intro_max_pending: 32,
            intro_pow_bits: 0,
            ip_rate: Rate { per_sec: 100.0, burst: 400.0 },
            token_rate: Rate { per_sec: 50.0, burst: 200.0 },
            max_connections: 16_384,
            max_connections_per_ip: 512,
            request_timeout: Duration::from_secs(30),
            slot_rate: Rate { per_sec: 120.0 / 3600.0, burst: 100.0 },
            max_streams_per_slot: 8,
            max_streams_per_grant: 2,
            keepalive: Duration::from_secs(15),
            rendezvous_ttl: Duration::from_secs(10 * 60),
            rendezvous_wait: Duration::from_secs(30),
            rendezvous_max_bytes: 64 << 20,
            rendezvous_per_ip: 32,
            drain_timeout: Duration::from_secs(10),
            quiet: false,
            maintenance_interval: Duration::from_secs(15),
            sweep_interval: Duration::from_secs(5),
            clock: wire_core::clock::system(),
        }
    }
}
