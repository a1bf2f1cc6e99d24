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

/// Parses the command line of a binary whose subcommand `default` may be left out: `analyzer`
/// with flags runs the worker as `analyzer run` would. `--help` and `--version` at the top
/// level behave as usual.
pub fn parse_with_default_subcommand<P: clap::Parser>(default: &str) -> P {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    parse_from_with_default_subcommand(args, default).unwrap_or_else(|e| e.exit())
}

/// [`parse_with_default_subcommand`] over given arguments (the first is the program name).
pub fn parse_from_with_default_subcommand<P: clap::Parser>(
    args: Vec<std::ffi::OsString>,
    default: &str,
) -> Result<P, clap::Error> {
    use clap::error::ErrorKind;
    match P::try_parse_from(&args) {
        Ok(parsed) => Ok(parsed),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Err(e),
        Err(first) => {
            let mut with_default = args.clone();
            with_default.insert(1.min(with_default.len()), default.into());
            // If inserting the default does not help either: a flag the top level does not
            // know belongs to the default subcommand, so its error is the useful one; any
            // other first error (an unknown subcommand) describes what the user typed.
            P::try_parse_from(with_default).map_err(|second| {
                if matches!(
                    first.kind(),
                    ErrorKind::MissingSubcommand
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                        | ErrorKind::UnknownArgument
                ) {
                    second
                } else {
                    first
                }
            })
        }
    }
}

/// glibc's allocator gives every thread that allocates its own arena (up to 8 per core) and,
/// once a large block has been freed, raises its mmap threshold up to 32 MiB, so that the
/// buffers librdkafka decompresses fetched batches into are carved from those arenas and leave
/// them fragmented. On a long backlog the analyzer's resident size was twice its live heap
/// (README, "Memory on a backlog"). Two arenas and a fixed 128 KiB mmap threshold (large
/// buffers are mapped and returned whole) keep it near the live heap; throughput did not move.
/// `MALLOC_ARENA_MAX` and `MALLOC_MMAP_THRESHOLD_` in the environment still take precedence.
///
/// Call it first thing in `main`, before any thread exists. Not for processes that allocate
/// and free large buffers at a high rate (the asset worker's decoded images): each would then
/// be a fresh mapping, faulted in page by page.
///
/// One of the workspace's two places with `unsafe` (`unsafe_code` is denied everywhere else, and
/// the other reads librdkafka's error table, `kafka::error_code`): glibc's `mallopt` has no safe
/// wrapper, and setting the environment variables from inside the process
/// is too late (glibc reads them when it starts).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn bound_allocator_memory() {
    const ARENAS: libc::c_int = 2;
    const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread is started.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Elsewhere the platform's allocator is left as it is.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn bound_allocator_memory() {}
