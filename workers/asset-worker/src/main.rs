//! `asset-worker`: the image enrichment worker and its administrative commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::admin::AdminCommand;
use shared::config::TelemetryArgs;
use shared::shutdown::Shutdown;

/// Consumes new and changed image_assets rows from the CDC topic, reads each image under the
/// assets root and merges what the file really is into its metadata, in batched upserts.
/// Without a subcommand it runs the worker.
#[derive(Parser, Debug)]
#[command(version, subcommand_negates_reqs = true)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Option<asset_worker::Config>,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shared::process::run_main("asset-worker", &cli.telemetry, async move {
        match (cli.command, cli.run) {
            (Some(Command::Admin(admin)), _) => admin.run("asset-worker").await,
            (None, Some(config)) => asset_worker::run(config, Shutdown::install()?).await,
            (None, None) => anyhow::bail!("nothing to do; see --help"),
        }
    })
}
