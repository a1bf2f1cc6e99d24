//! The `chart` command without the analyzer binary, for trying the engine by hand:
//!
//! ```text
//! cargo run -p saju --example chart -- --birth 2024-02-04T17:28:00+09:00 --gender M
//! echo '{"lunar":{"year":2020,"month":4,"day":15,"leap":true},"time":"14:30","gender":"F"}' \
//!   | cargo run -p saju --example chart -- --jsonl
//! ```

use clap::Parser;

/// Four pillars and the full analysis, as `analysis_result` JSON lines.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    chart: saju::cli::ChartArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match saju::cli::run_chart(&cli.chart, stdin, stdout) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
