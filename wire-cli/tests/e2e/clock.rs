//! Expiry against a manual clock, in-process: the endpoint (two homes) and the relay read
//! one `ManualClock`, so invite expiry and pairing timeouts are tested by moving time, not
//! by sleeping. The CLI paths above these are the same functions.

use std::time::Duration;

use wire_core::clock::ManualClock;
use wire_core::endpoint::{self, Endpoint};
use wire_core::home::Home;
use wire_testkit::relay::{TestRelay, config};

pub(crate) struct World {
    pub(crate) clock: ManualClock,
    pub(crate) relay: TestRelay,
    pub(crate) root: std::path::PathBuf,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl World {
    pub(crate) fn new(name: &str) -> Self {
        let clock = ManualClock::starting_now();
        let root = crate::common::tempdir(name);
        let relay = TestRelay::with_config(
            wire_relay::Config { clock: clock.shared(), ..config(false, &root) },
            root.join("relay"),
        );
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Self { clock, relay, root, rt }
    }

    pub(crate) fn agent(&self, name: &str) -> Endpoint {
        let home = Home::at(self.root.join(name)).with_clock(self.clock.shared());
        self.rt.block_on(endpoint::init(&home, &self.relay.url())).unwrap();
        Endpoint::open(home).unwrap()
    }

    fn files(&self, name: &str) -> Vec<(String, Vec<u8>)> {
        ["peers.json", "pending.json", "account.json"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(self.root.join(name).join(f)).unwrap_or_default()))
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

#[test]
fn an_expired_invite_is_refused_and_changes_nothing() {
    let w = World::new("clock-invite");
    let (a, b) = (w.agent("a"), w.agent("b"));
    let url = w.rt.block_on(a.invite(1, Duration::from_secs(600))).unwrap().url;
    w.clock.advance(Duration::from_secs(601));
    let before = w.files("b");
    let err = w.rt.block_on(b.accept_invite(&url)).unwrap_err();
    assert!(err.to_string().contains("invite expired"), "{err}");
    assert_eq!(w.files("b"), before, "a refused invite changes no state");

    // The same length of validity, used in time, pairs.
    let url = w.rt.block_on(a.invite(1, Duration::from_secs(600))).unwrap().url;
    w.clock.advance(Duration::from_secs(599));
    w.rt.block_on(b.accept_invite(&url)).unwrap();
    w.rt.block_on(a.pull()).unwrap();
    w.rt.block_on(b.pull()).unwrap();
    assert_eq!(a.peers().unwrap().len(), 1);
    assert_eq!(b.peers().unwrap().len(), 1);
}

#[test]
fn a_code_pairing_times_out_by_the_clock() {
    let w = World::new("clock-pair");
    let a = w.agent("a");
    let view = w.rt.block_on(a.pair_host(None, Duration::from_secs(120))).unwrap();
    let key = view.code.clone();
    w.clock.advance(Duration::from_secs(119));
    let view = w.rt.block_on(a.pair_drive(&key, Duration::ZERO)).unwrap();
    assert_eq!(view.state, "waiting", "not before its timeout");
    w.clock.advance(Duration::from_secs(2));
    let view = w.rt.block_on(a.pair_drive(&key, Duration::ZERO)).unwrap();
    assert_eq!(view.state, "aborted");
    assert_eq!(serde_json::to_value(view.reason).unwrap(), "timeout");
}

#[test]
fn a_side_that_times_out_after_voting_closes_and_the_side_that_paired_unpins() {
    let w = World::new("clock-vote-timeout");
    let (a, b) = (w.agent("a"), w.agent("b"));
    let timeout = Duration::from_secs(600);
    let hosted = w.rt.block_on(a.pair_host(None, timeout)).unwrap();
    let joined = w.rt.block_on(b.pair_join(&hosted.code, None, timeout)).unwrap();
    let drive = |ep: &Endpoint, key: &str| w.rt.block_on(ep.pair_drive(key, Duration::ZERO)).unwrap();
    let (ka, kb) = (hosted.nameplate.clone(), joined.nameplate.clone());
    let (mut va, mut vb) = (drive(&a, &ka), drive(&b, &kb));
    while va.state != "sas_ready" || vb.state != "sas_ready" {
        va = drive(&a, &ka);
        vb = drive(&b, &kb);
    }
    // A votes first; B votes and, holding A's vote, pairs and pins A.
    w.rt.block_on(a.pair_confirm(&ka, vb.sas.as_deref().unwrap())).unwrap();
    let vb = w.rt.block_on(b.pair_confirm(&kb, va.sas.as_deref().unwrap())).unwrap();
    let vb = if vb.state == "paired" { vb } else { drive(&b, &kb) };
    assert_eq!(vb.state, "paired", "{vb:?}");
    assert_eq!(b.peers().unwrap().len(), 1);
    // A never hears B's vote before its deadline: it aborts, and as it had voted it tells B.
    w.clock.advance(timeout + Duration::from_secs(1));
    let va = drive(&a, &ka);
    assert_eq!(va.state, "aborted", "{va:?}");
    assert!(a.peers().unwrap().is_empty(), "A pinned nothing");
    // B learns it at its next pull and unpins: both sides agree again.
    let pulled = w.rt.block_on(b.pull()).unwrap();
    assert_eq!(pulled.closed.len(), 1, "{pulled:?}");
    assert!(b.peers().unwrap().is_empty(), "B unpinned A on its close");
}

/// A runtime whose timers run on tokio's paused clock: time moves only when every task
/// waits, so a 90 s wait passes at once and its length is read off that clock.
fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

#[test]
fn a_wait_ends_at_its_timeout_and_a_wake_with_nothing_new_does_not_end_it() {
    use wire_core::home::Consumer;
    let w = World::new("clock-wait");
    let (a, b) = (w.agent("a"), w.agent("b"));
    let url = w.rt.block_on(a.invite(1, Duration::from_secs(600))).unwrap().url;
    w.rt.block_on(b.accept_invite(&url)).unwrap();
    w.rt.block_on(a.pull()).unwrap();
    w.rt.block_on(b.pull()).unwrap();

    let rt = paused();
    let (tx, mut wake) = tokio::sync::watch::channel(0u64);
    let (lines, waited) = rt.block_on(async {
        // A pull that stored nothing for us ticks the wake at 10 s.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            tx.send_modify(|n| *n += 1);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let start = tokio::time::Instant::now();
        let lines = b.wait_unread(Consumer::Agent, None, 10, Duration::from_secs(90), &mut wake).await.unwrap();
        (lines, start.elapsed())
    });
    assert!(lines.is_empty());
    assert_eq!(waited, Duration::from_secs(90), "the wait ends at its timeout, not at the empty wake");

    // Past the longest wait, the bound holds.
    let (_tx, mut wake) = tokio::sync::watch::channel(0u64);
    let waited = rt.block_on(async {
        let start = tokio::time::Instant::now();
        b.wait_unread(Consumer::Agent, None, 10, Duration::from_secs(3600), &mut wake).await.unwrap();
        start.elapsed()
    });
    assert_eq!(waited, wire_core::endpoint::MAX_WAIT);

    // Something unread returns at once, and is then read: the next wait times out. (A
    // heartbeat: it earns no receipt, so nothing here touches the network on the paused clock.)
    w.rt.block_on(a.send(&b.whoami().unwrap().face.did, "heartbeat", "hi".into(), false)).unwrap();
    w.rt.block_on(b.pull()).unwrap();
    let (_tx, mut wake) = tokio::sync::watch::channel(0u64);
    let (first, second, waited) = rt.block_on(async {
        let start = tokio::time::Instant::now();
        let first = b.wait_unread(Consumer::Agent, None, 10, Duration::from_secs(30), &mut wake).await.unwrap();
        let at_once = start.elapsed();
        let second = b.wait_unread(Consumer::Agent, None, 10, Duration::from_secs(30), &mut wake).await.unwrap();
        (first, second, at_once)
    });
    assert_eq!(first.iter().map(|l| l.event.body.clone()).collect::<Vec<_>>(), ["hi"]);
    assert_eq!(waited, Duration::ZERO);
    assert!(second.is_empty());
}
