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
    /// Compute charts on the command line: one with --birth and --gender, or a stream of
    /// JSON lines with --jsonl (one result line per input line, in order).
    Chart(saju::cli::ChartArgs),
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Chart(args)) = &cli.command {
        return chart(args);
    }
    shared::process::run_main("analyzer", &cli.telemetry, async move {
        match (cli.command, cli.run) {
            (Some(Command::Admin(admin)), _) => admin.run("analyzer").await,
            (Some(Command::Chart(_)), _) => unreachable!("handled before the runtime starts"),
            (None, Some(config)) => analyzer::run(config, Shutdown::install()?).await,
            (None, None) => anyhow::bail!("nothing to do; see --help"),
        }
    })
}

/// `analyzer chart`: synchronous, stdin to stdout, no runtime and no logging to interleave.
fn chart(args: &saju::cli::ChartArgs) -> ExitCode {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match saju::cli::run_chart(args, stdin, stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("analyzer chart: error: {e}");
            ExitCode::FAILURE
        }
    }
}
