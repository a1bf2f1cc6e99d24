//! The life of a worker process: telemetry first, then the runtime, then the work, then an exit
//! code. Keeps every `main.rs` down to parsing its CLI and naming its work.

use std::future::Future;
use std::process::ExitCode;

use crate::config::TelemetryArgs;

/// Initialises logging, builds a multi-threaded Tokio runtime and runs `work` on it. Errors are
/// logged with their whole chain of causes and turned into a failing exit code (2 for a bad
/// log configuration, 1 otherwise).
pub fn run_main<F>(name: &str, telemetry: &TelemetryArgs, work: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    if let Err(e) = crate::telemetry::init(telemetry) {
        eprintln!("{name}: error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}
