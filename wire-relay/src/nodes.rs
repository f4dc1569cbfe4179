//! Many relay nodes on one shared store (PostgreSQL, `store::postgres`). Each node's own
//! appends reach its streams from the store thread, as on one node; another node's reach
//! them through the append hints that node sends after its commits (`LISTEN`), and a sweep
//! every `sweep_interval` wakes every stream of this node to read past its cursor (a lost
//! hint costs at most that long) and learns the grants other nodes revoked (their streams
//! end). The rows are the delivery; hints and sweeps only say when to read. The sweep also
//! beats this node's heart in the `nodes` table: rate limits allow each node its share of
//! the configured rate among the nodes alive (approximate: a balancer spreads a client's
//! requests only roughly evenly; storage quotas are exact, in the database).

use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::{mpsc, watch};

use crate::nameplates::CHANNEL as PLATES;
use crate::state::{Relay, Subscribers, fan_out, lock, wake};
use crate::store::postgres::{CHANNEL, connect, parse_hint};

/// What the listening thread hands over (it wakes streams itself).
enum Heard {
    /// A nameplate another node posted to or closed.
    Plate(u32),
    /// (Re)connected: hints may have been missed meanwhile; wake every stream.
    Everything,
}

/// Starts the listening thread and the task that wakes streams from it.
pub(crate) fn listen(relay: Arc<Relay>, url: String, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Heard>();
    let (node, subscribers) = (relay.node.clone(), relay.subscribers.clone());
    let spawned = std::thread::Builder::new()
        .name("wire-relay-listen".into())
        .spawn(move || listen_loop(&url, &node, &subscribers, &tx));
    if let Err(e) = spawned {
        crate::log(&format!("error: cannot start the listening thread: {e}; streams rely on the sweep"));
    }
    tokio::spawn(async move {
        loop {
            let heard = tokio::select! {
                heard = rx.recv() => heard,
                _ = stop.changed() => None,
            };
            match heard {
                Some(Heard::Plate(n)) => {
                    if let Some(shared) = &relay.nameplates {
                        shared.ring(n);
                    }
                }
                Some(Heard::Everything) => {
                    wake(&relay.subscribers, None);
                    if let Some(shared) = &relay.nameplates {
                        shared.ring_all();
                    }
                }
                None => return,
            }
        }
    });
}

/// Holds a `LISTEN` session, reconnecting after a second when it breaks (the database
/// restarted); returns once nobody reads what it hears. Another node's hint goes to this
/// node's streams from here: the envelopes it carries as if committed here, a wake-up to
/// read for the slots it only names.
fn listen_loop(url: &str, node: &str, subscribers: &Subscribers, tx: &mpsc::UnboundedSender<Heard>) {
    while !tx.is_closed() {
        if let Ok(mut client) = connect(url)
            && client.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {PLATES}")).is_ok()
        {
            let _ = tx.send(Heard::Everything);
            loop {
                // A fresh iterator per wait: one whose timeout has passed answers at once
                // from then on (it never rearms).
                let next = client.notifications().timeout_iter(Duration::from_secs(1)).next();
                match next {
                    Ok(Some(note)) if note.channel() == PLATES => {
                        if let Ok(n) = note.payload().parse()
                            && tx.send(Heard::Plate(n)).is_err()
                        {
                            return;
                        }
                    }
                    Ok(Some(note)) => {
                        let hint = parse_hint(note.payload());
                        if hint.node.as_deref() != Some(node) {
                            for (slot, stored) in hint.envelopes {
                                fan_out(subscribers, &slot, stored);
                            }
                            for slot in hint.slots {
                                wake(subscribers, Some(&slot));
                            }
                        }
                    }
                    Ok(None) if tx.is_closed() => return,
                    // A closed session also answers `None` at once: reconnect.
                    Ok(None) if client.is_closed() => break,
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Every `sweep_interval`: wakes every stream and ends those of grants revoked elsewhere.
pub(crate) async fn sweep(relay: Arc<Relay>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(relay.config.sweep_interval.max(Duration::from_millis(10)));
    let mut seen = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // Three sweeps without a heartbeat and a node no longer counts.
        let window = 3 * relay.config.sweep_interval.as_millis() as u64;
        if let Ok(live) = relay.engine.heartbeat(relay.now_ms(), window).await {
            relay.metrics.nodes_live.store(u64::from(live), std::sync::atomic::Ordering::Relaxed);
            relay.ip_limit.share_among(live);
            relay.token_limit.share_among(live);
            relay.slot_limit.share_among(live);
        }
        if let Ok((revoked, last)) = relay.engine.revoked_since(seen).await {
            seen = last;
            let mut index = lock(&relay.index);
            for hash in revoked {
                if let Some(g) = index.grants.get_mut(&hash) {
                    g.revoked = true;
                }
                for list in lock(&relay.subscribers).values_mut() {
                    list.retain(|(h, _)| *h != hash);
                }
            }
        }
        wake(&relay.subscribers, None);
    }
}
