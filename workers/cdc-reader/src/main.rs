//! The `cdc-reader` binary: parse the command line, set up logging and signals, run.
//!
//! Exit codes: 0 after a graceful stop, 1 when the reader stopped on an error a restart cannot
//! cure (nothing unacknowledged was confirmed; a restart resumes from the slot), 2 for bad
//! configuration, 3 when PostgreSQL invalidated the slot (restarting will not help: see
//! `--on-slot-invalidated`).

use std::process::ExitCode;

use anyhow::Context;
use cdc_reader::{Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = cli.config.validate() {
        eprintln!("cdc-reader: {message}");
        return ExitCode::from(2);
    }
    let telemetry = cli.telemetry.clone();
    let code = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let seen = std::sync::Arc::clone(&code);
    let status = shared::process::run_main("cdc-reader", &telemetry, async move {
        let result = run(cli).await;
        if let Err(e) = &result {
            if let Some(reader) = e.downcast_ref::<cdc_reader::Error>() {
                seen.store(reader.exit_code(), std::sync::atomic::Ordering::SeqCst);
            }
        }
        result
    });
    match code.load(std::sync::atomic::Ordering::SeqCst) {
        0 => status,
        specific => ExitCode::from(specific),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = shared::shutdown::Shutdown::install().context("installing signal handlers")?;
    match cli.command {
        Some(Command::Migrate) => {
            let pool = shared::db::connect(&cli.config.postgres, "cdc-reader").await?;
            shared::db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Snapshot { tables }) => {
            let unknown: Vec<String> = tables
                .iter()
                .filter(|t| !cli.config.tables.contains(t))
                .map(ToString::to_string)
                .collect();
            anyhow::ensure!(
                unknown.is_empty(),
                "not captured (add them to --tables / CDC_TABLES first): {}",
                unknown.join(", ")
            );
            let pool = shared::db::connect(&cli.config.postgres, "cdc-reader").await?;
            let ids = cdc_reader::incremental::request(&pool, &cli.config.slot, &tables).await?;
            tracing::info!(slot = %cli.config.slot, ?ids, "incremental snapshots requested (see cdc_signals)");
            println!(
                "requested: {}",
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok(())
        }
        None => cdc_reader::run(cli.config, shutdown)
            .await
            .context("cdc-reader"),
    }
}
