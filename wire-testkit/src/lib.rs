//! # wire-testkit
//!
//! Helpers every wire test binary shares, so each exists once: unique temporary
//! directories, [`eventually`] (the one way a test waits), an in-process relay on a free
//! loopback port ([`relay::TestRelay`]), and a blocking HTTP/1.1 and SSE client that can
//! also send malformed requests ([`http`]), and a headless Chromium over WebDriver
//! ([`browser::Browser`]). A dev-dependency only; nothing here ships.
//!
//! Tests synchronise on observable state (a cursor, a metric, a file) through
//! [`eventually`], never on a fixed sleep. Every wait is bounded; the bound is generous and
//! scales with `WIRE_TEST_PATIENCE` (a multiplier, default 1) for very slow machines.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod browser;
pub mod http;
pub mod relay;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A fresh, empty directory under the system temp dir, unique to this call. Its name starts
/// `wire-test-` (never `wire-demo-`, which tests of `wire demo` look for).
pub fn tempdir(name: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let dir = std::env::temp_dir().join(format!("wire-test-{name}-{}", hex::encode(bytes)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `base` scaled by `WIRE_TEST_PATIENCE` (default 1).
pub fn patience(base: Duration) -> Duration {
    let scale = std::env::var("WIRE_TEST_PATIENCE").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(1).max(1);
    base * scale
}

/// The default bound of a wait: long enough for a loaded 2-core machine, short enough that
/// a hang fails the test instead of the CI job.
pub const WAIT: Duration = Duration::from_secs(90);

/// Polls `cond` until it returns `Some`, then returns the value. Panics with `what` (and
/// the last state `cond` saw, if it reported one through `what`) after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience(timeout);
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = cond() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        // A bounded polling helper is the one place a test pauses.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// [`eventually`] for a condition without a value.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    eventually(timeout, what, || cond().then_some(()));
}

/// Receives from `rx`, failing the test with `what` after `timeout` (every reader thread a
/// test starts hands its result back this way, so a hang becomes a failure).
pub fn recv<T>(rx: &std::sync::mpsc::Receiver<T>, timeout: Duration, what: &str) -> T {
    rx.recv_timeout(patience(timeout)).unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_returns_the_first_value_and_fails_when_time_runs_out() {
        let mut n = 0;
        assert_eq!(
            eventually(WAIT, "n to reach 3", || {
                n += 1;
                (n >= 3).then_some(n)
            }),
            3
        );
        let failed = std::panic::catch_unwind(|| wait_until(Duration::from_millis(20), "never", || false));
        assert!(failed.is_err());
    }
}
