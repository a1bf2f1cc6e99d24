//! `analyzer`: the saju analysis worker and its administrative commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::admin::AdminCommand;
use shared::config::TelemetryArgs;
use shared::shutdown::Shutdown;

/// Consumes new and changed saju_profiles rows from the CDC topic, computes the four pillars
/// and the analysis, and writes them back in batched upserts. Without a subcommand it runs
/// the worker.
#[derive(Parser, Debug)]
#[command(version, subcommand_negates_reqs = true)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Option<analyzer::Config>,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shared::process::run_main("analyzer", &cli.telemetry, async move {
        match (cli.command, cli.run) {
            (Some(Command::Admin(admin)), _) => admin.run("analyzer").await,
            (None, Some(config)) => analyzer::run(config, Shutdown::install()?).await,
            (None, None) => anyhow::bail!("nothing to do; see --help"),
        }
    })
}
