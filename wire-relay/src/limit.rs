//! Token-bucket rate limits keyed by client IP or token hash.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::config::Rate;

/// Buckets for one kind of key.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    rate: Rate,
    /// The relay nodes sharing the limit (a shared store): each allows its share.
    nodes: AtomicU32,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> Limiter<K> {
    pub(crate) fn new(rate: Rate) -> Self {
        Self { rate, nodes: AtomicU32::new(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Several nodes serve the same clients: this one allows `1/nodes` of the rate (a client
    /// spread over the nodes by a balancer gets about the configured rate in all).
    pub(crate) fn share_among(&self, nodes: u32) {
        self.nodes.store(nodes.max(1), Ordering::Relaxed);
    }

    /// This node's rate.
    fn rate(&self) -> Rate {
        let n = f64::from(self.nodes.load(Ordering::Relaxed));
        Rate { per_sec: self.rate.per_sec / n, burst: (self.rate.burst / n).max(1.0) }
    }

    /// Takes one token for `key`, or says how many seconds until one is available.
    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), u64> {
        if !self.rate.enabled() {
            return Ok(());
        }
        let rate = self.rate();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(key).or_insert((rate.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate.per_sec).min(rate.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate.per_sec).ceil() as u64)
        }
    }

    /// Forgets buckets that have refilled, so idle clients cost nothing.
    pub(crate) fn sweep(&self, now: Instant) {
        if !self.rate.enabled() {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let rate = self.rate();
        buckets
            .retain(|_, (tokens, last)| *tokens + now.duration_since(*last).as_secs_f64() * rate.per_sec < rate.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let l = Limiter::new(Rate { per_sec: 2.0, burst: 3.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("k", t0).is_ok());
        }
        assert_eq!(l.check("k", t0), Err(1));
        assert!(l.check("other", t0).is_ok(), "keys are independent");
        assert!(l.check("k", t0 + Duration::from_millis(600)).is_ok());
        l.sweep(t0 + Duration::from_secs(10));
        assert!(l.buckets.lock().expect("lock").is_empty());
    }

    #[test]
    fn a_node_of_three_allows_a_third() {
        let l = Limiter::new(Rate { per_sec: 30.0, burst: 30.0 });
        l.share_among(3);
        let t0 = Instant::now();
        let allowed = (0..30).filter(|_| l.check("k", t0).is_ok()).count();
        assert_eq!(allowed, 10);
        assert!(l.check("k", t0 + Duration::from_millis(100)).is_ok(), "refills at 10/s");
    }
}
