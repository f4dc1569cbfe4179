//! Where the runtime reads the time. The relay and the endpoint hold a [`SharedClock`]
//! (rustls's `TimeProvider` is the model): production passes [`SystemClock`], tests pass a
//! [`ManualClock`] and advance it, so expiry, retention and timeouts are tested without
//! sleeping. `proto` never reads a clock at all; callers pass [`UnixMillis`] in.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::proto::time::UnixMillis;

/// A source of wall-clock time.
pub trait Clock: Debug + Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> UnixMillis;
}

/// The clock every runtime part holds.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system clock moved by the offset written in a file (milliseconds, may be negative):
/// how process tests move the time of a real `wire` binary without waiting. Set by
/// `WIRE_CLOCK_OFFSET_FILE`; a missing or unreadable file reads as no offset.
#[derive(Debug, Clone)]
pub struct OffsetFileClock(std::path::PathBuf);

impl Clock for OffsetFileClock {
    fn now(&self) -> UnixMillis {
        let offset: i64 = std::fs::read_to_string(&self.0).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        UnixMillis(SystemClock.now().0.saturating_add_signed(offset))
    }
}

/// The clock a home reads: the system's, or [`OffsetFileClock`] under
/// `WIRE_CLOCK_OFFSET_FILE`.
pub fn from_env() -> SharedClock {
    match std::env::var_os("WIRE_CLOCK_OFFSET_FILE").filter(|f| !f.is_empty()) {
        Some(file) => Arc::new(OffsetFileClock(file.into())),
        None => system(),
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: UnixMillis) -> Self {
        Self(Arc::new(AtomicU64::new(start.0)))
    }

    /// A clock starting at the system's current time (so timestamps stay plausible).
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new(UnixMillis(1_000));
        let shared = clock.shared();
        assert_eq!(shared.now(), UnixMillis(1_000));
        clock.advance(Duration::from_secs(2));
        assert_eq!(shared.now(), UnixMillis(3_000));
    }
}
