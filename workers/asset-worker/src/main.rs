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
    #[command(flatten)]
    Admin(AdminCommand),
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
            Command::Admin(admin) => admin.run("asset-worker").await,
        }
    })
}
