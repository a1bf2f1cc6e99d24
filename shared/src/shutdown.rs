//! Graceful shutdown: SIGINT/SIGTERM become a cancellation every worker loop selects on.
//!
//! Handlers are installed before anything else starts, so a signal arriving during start-up is
//! not lost. A second signal while shutting down exits the process at once, for operators who
//! do not want to wait for the drain deadline.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A cloneable handle that says whether the process is shutting down.
///
/// Loops `select!` on [`Shutdown::cancelled`] (biased first), then finish their current batch,
/// flush, commit and return. Tests create one with [`Shutdown::new`] and call
/// [`Shutdown::trigger`].
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle not tied to any signal (for tests and embedding).
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs SIGINT and SIGTERM handlers that trigger the returned handle. Must be called
    /// from inside a Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let shutdown = Self::new();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let handle = shutdown.clone();
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = which, "shutdown requested; draining");
            handle.trigger();
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::warn!("second signal; exiting without draining");
            std::process::exit(130);
        });
        Ok(shutdown)
    }

    /// Exits the process `limit` after shutdown starts if it has not ended by then, whatever
    /// is stuck (a broker that never answers a close, a statement that never returns). Must be
    /// called from inside a Tokio runtime.
    pub fn exit_after(&self, limit: Duration) {
        let handle = self.clone();
        tokio::spawn(async move {
            handle.cancelled().await;
            std::thread::spawn(move || {
                std::thread::sleep(limit);
                tracing::error!(?limit, "shutdown did not finish in time; exiting");
                eprintln!("shutdown did not finish within {limit:?}; exiting");
                std::process::exit(1);
            });
        });
    }

    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once shutdown has started.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Sleeps for `period` unless shutdown starts first; returns `false` if it did.
    pub async fn sleep(&self, period: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.cancelled() => false,
            _ = tokio::time::sleep(period) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleep_is_cut_short_by_trigger() {
        let shutdown = Shutdown::new();
        let other = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            other.trigger();
        });
        assert!(!shutdown.sleep(Duration::from_secs(3600)).await);
        assert!(shutdown.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_completes_without_trigger() {
        assert!(Shutdown::new().sleep(Duration::from_millis(10)).await);
    }
}
