//! `tracing` initialisation: pretty on a terminal, JSON lines otherwise.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryArgs};

/// Installs the global subscriber writing to stderr. Returns an error if the filter does not
/// parse or a subscriber is already installed.
pub fn init(args: &TelemetryArgs) -> anyhow::Result<()> {
    let format = match args.log_format {
        LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Pretty,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    };
    init_with_writer(&args.filter, format, std::io::stderr)
}

/// Installs the global subscriber writing to `writer` (tests pass a buffer to capture logs).
pub fn init_with_writer<W>(filter: &str, format: LogFormat, writer: W) -> anyhow::Result<()>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter `{filter}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty | LogFormat::Auto => builder.with_target(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
