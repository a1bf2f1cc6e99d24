//! `asset-worker`: the image enrichment worker and its administrative commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::admin::AdminCommand;
use shared::config::TelemetryArgs;
use shared::shutdown::Shutdown;

/// Consumes new and changed image_assets rows from the CDC topic, reads each image under the
/// assets root and merges what the file really is into its metadata, in batched upserts.
/// Without a subcommand it runs the worker (`asset-worker run`; see `asset-worker run --help`
/// for its flags).
#[derive(Parser, Debug)]
#[command(version, subcommand_required = true)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the worker (the default when no subcommand is given).
    Run(Box<asset_worker::Config>),
    /// Print what the worker would record for image files (one JSON object a line, the
    /// `metadata` facts; an error object for a file it refuses), without a database or broker.
    Probe(ProbeArgs),
    #[command(flatten)]
    Admin(AdminCommand),
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// Image files to probe.
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
    /// Larger images (width × height) are refused before decoding, as by the worker.
    #[arg(long = "max-pixels", env = "ASSET_MAX_PIXELS", default_value_t = 16384 * 8192)]
    max_pixels: u64,
}

/// `asset-worker probe`: each file's facts, or why it is refused, as JSON lines; exits 1 when
/// a file could not be read.
fn probe_files(args: &ProbeArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let limits = asset_worker::probe::ProbeLimits {
        max_pixels: args.max_pixels,
        deadline: None,
    };
    let mut out = std::io::stdout().lock();
    let mut unreadable = 0;
    for file in &args.files {
        let line = match std::fs::read(file) {
            Ok(bytes) => match asset_worker::probe::probe(&bytes, &limits) {
                Ok(facts) => serde_json::json!({"file": file, "facts": facts}),
                Err(e) => {
                    serde_json::json!({"file": file, "error": e.to_string(), "kind": e.kind()})
                }
            },
            Err(e) => {
                unreadable += 1;
                serde_json::json!({"file": file, "error": format!("cannot read: {e}"), "kind": "unreadable"})
            }
        };
        writeln!(out, "{line}")?;
    }
    anyhow::ensure!(unreadable == 0, "{unreadable} file(s) could not be read");
    Ok(())
}

/// Past `--shutdown-timeout`, the time left to flush the producer, close the pool and leave
/// the group before the process exits regardless.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

fn main() -> ExitCode {
    let cli: Cli = shared::process::parse_with_default_subcommand("run");
    shared::process::run_main("asset-worker", &cli.telemetry, async move {
        match cli.command {
            Command::Run(config) => {
                let shutdown = Shutdown::install()?;
                shutdown.exit_after(config.consumer.shutdown_timeout + EXIT_GRACE);
                asset_worker::run(*config, shutdown).await
            }
            Command::Probe(args) => probe_files(&args),
            Command::Admin(admin) => admin.run("asset-worker").await,
        }
    })
}
