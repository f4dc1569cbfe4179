//! Counters served at `/metrics` in the Prometheus text format. No labels carry slot ids,
//! tokens or anything else that identifies a user.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($($name:ident: $kind:literal, $help:literal;)*) => {
        /// Relay counters and gauges.
        #[derive(Debug, Default)]
        pub(crate) struct Metrics { $(pub(crate) $name: AtomicU64,)* }

        impl Metrics {
            /// Prometheus text exposition.
            pub(crate) fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP wire_relay_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE wire_relay_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "wire_relay_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                out
            }
        }
    };
}

metrics! {
    requests_total: "counter", "HTTP requests handled.";
    errors_total: "counter", "Requests answered with an error status.";
    appends_total: "counter", "Envelopes stored.";
    duplicate_appends_total: "counter", "Appends of an envelope that was already stored.";
    append_bytes_total: "counter", "Bytes of envelopes stored.";
    acked_total: "counter", "Envelopes deleted by acks.";
    expired_total: "counter", "Envelope deletions by retention (slots affected).";
    rate_limited_total: "counter", "Requests refused by a rate limit.";
    connections_refused_total: "counter", "Connections closed at once: their client IP held its share.";
    request_timeouts_total: "counter", "Requests whose body did not arrive within the request timeout.";
    rendezvous_refused_total: "counter", "Nameplates refused: the client IP held its share of open ones.";
    grants_purged_total: "counter", "Grants forgotten a retention period after they expired.";
    request_bytes_total: "counter", "Bytes of request bodies read.";
    response_bytes_total: "counter", "Bytes of response bodies sent: whole answers and stream frames.";
    slots_total: "gauge", "Slots known to the relay.";
    grants_active: "gauge", "Grants not revoked (send and intro; expired ones count until revoked).";
    connections_open: "gauge", "Open client connections.";
    streams_open: "gauge", "Open SSE streams.";
    nameplates_open: "gauge", "Open rendezvous nameplates.";
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
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }
}
