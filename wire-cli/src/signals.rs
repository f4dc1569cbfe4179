//! Waiting for the signals that stop a long-running command (relay, daemon).

/// Resolves on SIGINT or SIGTERM (Ctrl-C where those cannot be installed).
pub async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
