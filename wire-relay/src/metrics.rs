//! Counters served at `/metrics` in the Prometheus text format. No labels carry slot ids,
//! tokens or anything else that identifies a user.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($($name:ident: $kind:literal, $help:literal;)*) => {
        /// Relay counters and gauges, and the request latency histograms.
        #[derive(Debug, Default)]
        pub(crate) struct Metrics {
            $(pub(crate) $name: AtomicU64,)*
            /// Request latency per route, indexed by [`Route`].
            pub(crate) latency: [Histogram; Route::ALL.len()],
            /// How long the store took to apply and commit each batch of writes.
            pub(crate) commit: Histogram,
        }

        impl Metrics {
            /// Prometheus text exposition.
            pub(crate) fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP wire_relay_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE wire_relay_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "wire_relay_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                self.render_latency(&mut out);
                self.render_commit(&mut out);
                out
            }
        }
    };
}

/// What a request did, as a metric label: never a slot, token or anything of a user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Allocate,
    Grant,
    Revoke,
    Append,
    Intro,
    List,
    Ack,
    Stream,
    Handle,
    Rendezvous,
    Other,
}

impl Route {
    const ALL: [Route; 11] = [
        Route::Allocate,
        Route::Grant,
        Route::Revoke,
        Route::Append,
        Route::Intro,
        Route::List,
        Route::Ack,
        Route::Stream,
        Route::Handle,
        Route::Rendezvous,
        Route::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Allocate => "allocate",
            Route::Grant => "grant",
            Route::Revoke => "revoke",
            Route::Append => "append",
            Route::Intro => "intro",
            Route::List => "list",
            Route::Ack => "ack",
            Route::Stream => "stream",
            Route::Handle => "handle",
            Route::Rendezvous => "rendezvous",
            Route::Other => "other",
        }
    }

    /// The route of a request line's method and path segments.
    pub(crate) fn of(method: &hyper::Method, segs: &[&str]) -> Route {
        use hyper::Method;
        match (method, segs) {
            (&Method::POST, ["v1", "slots"]) => Route::Allocate,
            (&Method::POST, ["v1", "slots", _, "grants"]) => Route::Grant,
            (&Method::DELETE, ["v1", "slots", _, "grants", _]) => Route::Revoke,
            (&Method::POST, ["v1", "slots", _, "events"]) => Route::Append,
            (&Method::GET, ["v1", "slots", _, "events"]) => Route::List,
            (&Method::POST, ["v1", "slots", _, "intro"]) => Route::Intro,
            (&Method::GET, ["v1", "slots", _, "stream"]) => Route::Stream,
            (&Method::POST, ["v1", "slots", _, "ack"]) => Route::Ack,
            (_, ["v1", "handles"] | [".well-known", "wire", "agent"]) => Route::Handle,
            (_, ["v1", "rendezvous", ..]) => Route::Rendezvous,
            _ => Route::Other,
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds (Prometheus `le`, in seconds).
const BOUNDS_US: [u64; 14] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 10_000_000,
];

/// A latency histogram: counts per bucket (not cumulative), the count and the sum.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Its series in the text format: cumulative buckets, sum and count, each with
    /// `labels` (`key="value"`, or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let (sep, braced) = if labels.is_empty() { ("", String::new()) } else { (",", format!("{{{labels}}}")) };
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {count}");
    }

    fn observe(&self, elapsed: std::time::Duration) {
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = BOUNDS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

metrics! {
    requests_total: "counter", "HTTP requests handled.";
    errors_total: "counter", "Requests answered with an error status.";
    appends_total: "counter", "Envelopes stored.";
    commits_total: "counter", "Batches of writes the store committed (on SQLite, one fsync each).";
    committed_writes_total: "counter", "Writes in those batches: over commits_total, the mean batch.";
    duplicate_appends_total: "counter", "Appends of an envelope that was already stored.";
    append_bytes_total: "counter", "Bytes of envelopes stored.";
    acked_total: "counter", "Envelopes deleted by acks.";
    expired_total: "counter", "Envelope deletions by retention (slots affected).";
    room_evicted_total: "counter", "Envelopes a room slot evicted to keep within its retention size.";
    rate_limited_total: "counter", "Requests refused by a rate limit.";
    connections_refused_total: "counter", "Connections closed at once: their client IP held its share.";
    request_timeouts_total: "counter", "Requests whose head or body did not arrive within the request timeout.";
    rendezvous_refused_total: "counter", "Nameplates refused: the client IP held its share of open ones.";
    grants_purged_total: "counter", "Grants forgotten a retention period after they expired.";
    request_bytes_total: "counter", "Bytes of request bodies read.";
    response_bytes_total: "counter", "Bytes of response bodies sent: whole answers and stream frames.";
    slots_total: "gauge", "Slots known to the relay.";
    grants_active: "gauge", "Grants not revoked (send and intro; expired ones count until revoked).";
    connections_open: "gauge", "Open client connections.";
    streams_open: "gauge", "Open SSE streams.";
    tls_streams_sealed_total: "counter", "TLS 1.3 streams handed from rustls to the relay's own record sealing after their request.";
    nameplates_open: "gauge", "Open rendezvous nameplates.";
    nodes_live: "gauge", "Relay nodes alive on this node's shared store (1 on a store of its own).";
    rendezvous_waiting: "gauge", "Rendezvous long polls waiting for a message.";
    rendezvous_bytes: "gauge", "Bytes of rendezvous messages held in memory.";
}

/// A gauge held up while this value lives.
#[derive(Debug)]
pub(crate) struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    pub(crate) fn up(c: &'a AtomicU64) -> Self {
        Metrics::inc(c);
        Self(c)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        Metrics::dec(self.0);
    }
}

impl Metrics {
    /// Records how long a request on `route` took (to its answer; a stream's, to its start).
    pub(crate) fn observe(&self, route: Route, elapsed: std::time::Duration) {
        let i = Route::ALL.iter().position(|r| *r == route).unwrap_or(Route::ALL.len() - 1);
        self.latency[i].observe(elapsed);
    }

    fn render_latency(&self, out: &mut String) {
        let name = "wire_relay_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time from a request's head to its answer, per route.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (route, h) in Route::ALL.iter().zip(&self.latency) {
            h.render(out, name, &format!("route=\"{}\"", route.label()));
        }
    }

    /// Records one committed batch of `writes` that took `elapsed` to apply and commit.
    pub(crate) fn committed(&self, writes: usize, elapsed: std::time::Duration) {
        Metrics::inc(&self.commits_total);
        self.committed_writes_total.fetch_add(writes as u64, Ordering::Relaxed);
        self.commit.observe(elapsed);
    }

    fn render_commit(&self, out: &mut String) {
        let name = "wire_relay_commit_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time the store took to apply and commit a batch of writes (its fsync included)."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.commit.render(out, name, "");
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }
}
