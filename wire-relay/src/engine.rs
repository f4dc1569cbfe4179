//! The store thread: owns the [`Store`], applies writes in batches (group commit) and
//! tells subscribers about new envelopes in commit order.
//!
//! While one batch commits (an fsync), new requests queue on the channel; the next loop
//! takes all of them into one transaction. A request is answered only after its batch
//! committed, so an acknowledged append is durable. A store shared by relay nodes
//! (PostgreSQL) runs several threads, each with its own session: while one commits, the
//! next takes what queued meanwhile. Their commits of one slot are serialised by its row
//! lock, so its sequence numbers still commit in order; fan-out may then reach a stream
//! out of order, which the stream treats as a gap and fills from the store.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Op, Outcome, Store, StoreError, Stored};

/// Most writes in one transaction.
const MAX_BATCH: usize = 1024;
/// Most envelope bytes in one transaction: a batch of large envelopes is cut early, so one
/// commit's WAL writes (and the wait of everyone in it) stay bounded.
const MAX_BATCH_BYTES: usize = 4 << 20;

type Reply<T> = oneshot::Sender<Result<T, Arc<StoreError>>>;

enum Job {
    Write(Op, Reply<Outcome>),
    List { slot: String, after: u64, limit: usize, reply: Reply<Vec<Stored>> },
    Handle { nick: String, reply: Reply<Option<(String, Vec<u8>)>> },
    Slot { id: String, reply: Reply<Option<crate::store::SlotRow>> },
    Grant { hash: crate::store::Hash, reply: Reply<Option<crate::store::GrantRow>> },
    Revoked { after: u64, reply: Reply<(Vec<crate::store::Hash>, u64)> },
    Heartbeat { now: u64, window: u64, reply: Reply<u32> },
}

/// Called on the store thread after each committed write, in commit order.
pub(crate) type OnCommit = Arc<dyn Fn(&Op, &Outcome) + Send + Sync>;

/// A handle to the store thread. Dropping every handle stops the thread.
#[derive(Clone)]
pub(crate) struct Engine {
    tx: mpsc::Sender<Job>,
    /// Reads, when a session of their own serves them (a shared store): a stream woken by
    /// another node does not wait behind this node's commits.
    reads: Option<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine(..)")
    }
}

fn store_failed(e: &StoreError) -> ApiError {
    crate::log(&format!("error: {e}"));
    ApiError::internal()
}

/// One store thread: a batch of what is queued, applied, answered; until every handle is gone.
fn run(
    mut store: Box<dyn Store>,
    rx: &std::sync::Mutex<mpsc::Receiver<Job>>,
    on_commit: &(dyn Fn(&Op, &Outcome) + Send + Sync),
    metrics: &Metrics,
) {
    loop {
        let mut writes: Vec<(Op, Reply<Outcome>)> = Vec::new();
        let mut reads: Vec<Job> = Vec::new();
        {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(first) = rx.recv() else { return };
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Write(op, reply) => {
                        if let Op::Append { envelope, .. } = &op {
                            bytes += envelope.len();
                        }
                        writes.push((op, reply));
                    }
                    other => reads.push(other),
                }
                if writes.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
        }
        if !writes.is_empty() {
            // Moved apart, not cloned: an append's envelope is copied once, into the store.
            let (ops, replies): (Vec<Op>, Vec<Reply<Outcome>>) = writes.into_iter().unzip();
            let started = std::time::Instant::now();
            match store.apply(&ops) {
                Ok(outcomes) => {
                    metrics.committed(ops.len(), started.elapsed());
                    for ((op, reply), outcome) in ops.iter().zip(replies).zip(outcomes) {
                        on_commit(op, &outcome);
                        let _ = reply.send(Ok(outcome));
                    }
                    store.after_answers();
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        for job in reads {
            match job {
                Job::List { slot, after, limit, reply } => {
                    let _ = reply.send(store.list_after(&slot, after, limit).map_err(Arc::new));
                }
                Job::Handle { nick, reply } => {
                    let _ = reply.send(store.handle(&nick).map_err(Arc::new));
                }
                Job::Slot { id, reply } => {
                    let _ = reply.send(store.slot(&id).map_err(Arc::new));
                }
                Job::Grant { hash, reply } => {
                    let _ = reply.send(store.grant(&hash).map_err(Arc::new));
                }
                Job::Heartbeat { now, window, reply } => {
                    let _ = reply.send(store.heartbeat(now, window).map_err(Arc::new));
                }
                Job::Revoked { after, reply } => {
                    let _ = reply.send(store.revoked_since(after).map_err(Arc::new));
                }
                Job::Write(..) => unreachable!("writes are batched above"),
            }
        }
    }
}

impl Engine {
    /// Starts one store thread per store (sessions of one shared database; SQLite and
    /// memory have one). A thread takes everything queued while the others were busy as
    /// its batch, so up to that many batches commit at once.
    /// `reader`, if given, serves the reads on a thread of its own.
    pub(crate) fn spawn(
        stores: Vec<Box<dyn Store>>,
        reader: Option<Box<dyn Store>>,
        on_commit: OnCommit,
        metrics: &Arc<Metrics>,
    ) -> (Self, Vec<std::thread::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut reads = None;
        let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
        if let Some(store) = reader {
            let (rtx, rrx) = mpsc::channel::<Job>();
            let rrx = std::sync::Mutex::new(rrx);
            let (idle, metrics): (OnCommit, _) = (Arc::new(|_, _| {}), metrics.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("wire-relay-reads".into())
                    .spawn(move || run(store, &rrx, idle.as_ref(), &metrics))
                    .expect("spawning the read thread"),
            );
            reads = Some(rtx);
        }
        let writers: Vec<std::thread::JoinHandle<()>> = stores
            .into_iter()
            .enumerate()
            .map(|(n, store)| {
                let (rx, on_commit, metrics) = (rx.clone(), on_commit.clone(), metrics.clone());
                std::thread::Builder::new()
                    .name(format!("wire-relay-store-{n}"))
                    .spawn(move || run(store, &rx, on_commit.as_ref(), &metrics))
                    .expect("spawning a store thread")
            })
            .collect();
        threads.extend(writers);
        (Self { tx, reads }, threads)
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, ApiError> {
        let (reply, rx) = oneshot::channel();
        let job = job(reply);
        let queue = match (&job, &self.reads) {
            (Job::Write(..), _) | (_, None) => &self.tx,
            (_, Some(reads)) => reads,
        };
        queue.send(job).map_err(|_| ApiError::internal())?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_failed(&e)),
            Err(_) => Err(ApiError::internal()),
        }
    }

    /// Applies one write (batched with concurrent ones) and waits for the commit.
    pub(crate) async fn write(&self, op: Op) -> Result<Outcome, ApiError> {
        self.ask(|reply| Job::Write(op, reply)).await
    }

    /// Lists envelopes after a cursor.
    pub(crate) async fn list(&self, slot: &str, after: u64, limit: usize) -> Result<Vec<Stored>, ApiError> {
        let slot = slot.to_owned();
        self.ask(|reply| Job::List { slot, after, limit, reply }).await
    }

    /// One slot as stored now (a shared store).
    pub(crate) async fn slot(&self, id: &str) -> Result<Option<crate::store::SlotRow>, ApiError> {
        let id = id.to_owned();
        self.ask(|reply| Job::Slot { id, reply }).await
    }

    /// One grant by its token's hash, as stored now (a shared store).
    pub(crate) async fn grant(&self, hash: crate::store::Hash) -> Result<Option<crate::store::GrantRow>, ApiError> {
        self.ask(|reply| Job::Grant { hash, reply }).await
    }

    /// Grants revoked after revocation number `after` (a shared store).
    pub(crate) async fn revoked_since(&self, after: u64) -> Result<(Vec<crate::store::Hash>, u64), ApiError> {
        self.ask(|reply| Job::Revoked { after, reply }).await
    }

    /// Says this node is alive; how many are (a shared store).
    pub(crate) async fn heartbeat(&self, now: u64, window: u64) -> Result<u32, ApiError> {
        self.ask(|reply| Job::Heartbeat { now, window, reply }).await
    }

    /// Resolves a handle.
    pub(crate) async fn handle(&self, nick: &str) -> Result<Option<(String, Vec<u8>)>, ApiError> {
        let nick = nick.to_owned();
        self.ask(|reply| Job::Handle { nick, reply }).await
    }
}
