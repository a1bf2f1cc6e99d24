//! `analyzer`: the saju analysis worker and its administrative commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::admin::AdminCommand;
use shared::config::TelemetryArgs;
use shared::shutdown::Shutdown;

/// Consumes new and changed saju_profiles rows from the CDC topic, computes the four pillars
/// and the analysis, and writes them back in batched upserts. Without a subcommand it runs
/// the worker (`analyzer run`; see `analyzer run --help` for its flags).
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
    Run(Box<analyzer::Config>),
    /// Compute charts on the command line: one with --birth and --gender, or a stream of
    /// JSON lines with --jsonl (one result line per input line, in order).
    Chart(saju::cli::ChartArgs),
    /// Give existing rows the current engine's analysis: walks saju_profiles in primary-key
    /// chunks, re-analyzes rows whose analysis_version is older (or all, with --all), writes
    /// them back in batches and publishes their result events; resumes after a stop.
    Reanalyze(Box<analyzer::reanalyze::ReanalyzeArgs>),
    #[command(flatten)]
    Admin(AdminCommand),
}

/// Past `--shutdown-timeout`, the time left to flush the producer, close the pool and leave
/// the group before the process exits regardless.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

fn main() -> ExitCode {
    let cli: Cli = shared::process::parse_with_default_subcommand("run");
    if let Command::Chart(args) = &cli.command {
        return chart(args);
    }
    shared::process::bound_allocator_memory();
    shared::process::run_main("analyzer", &cli.telemetry, async move {
        match cli.command {
            Command::Run(config) => {
                let shutdown = Shutdown::install()?;
                shutdown.exit_after(config.consumer.shutdown_timeout + EXIT_GRACE);
                analyzer::run(*config, shutdown).await
            }
            Command::Reanalyze(args) => analyzer::reanalyze::run(*args).await.map(|_| ()),
            Command::Admin(admin) => admin.run("analyzer").await,
            Command::Chart(_) => unreachable!("handled before the runtime starts"),
        }
    })
}

/// `analyzer chart`: synchronous, stdin to stdout, no runtime and no logging to interleave.
fn chart(args: &saju::cli::ChartArgs) -> ExitCode {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match saju::cli::run_chart(args, stdin, stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("analyzer chart: error: {e}");
            ExitCode::FAILURE
        }
    }
}
