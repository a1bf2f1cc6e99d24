//! One file's enrichment, from the row to the document merged into its metadata.
//!
//! [`enrich`] runs on the probing pool: resolve the file under the root, read it within the
//! size limit, probe it within the pixel limit and the deadline. [`document`] turns the result
//! into the value stored under `metadata.asset_worker`:
//!
//! ```json
//! {
//!   "version": 1, "status": "done", "worker_version": "0.1.0",
//!   "source": {"file_path": "/assets/ui/", "file_name": "icon.png"},
//!   "input": {"commit_lsn": 24157817, "lsn": 24157600},
//!   "format": "PNG", "mime": "image/png", "width": 128, "height": 128,
//!   "color_type": "rgba", "bit_depth": 8, "has_alpha": true,
//!   "file_size": 5120, "sha256": "…", "phash": "c3d1e0f0a8b8c4e2",
//!   "avg_luminance": 0.412, "dominant_colors": [{"hex": "#d4af37", "share": 0.61}],
//!   "thumbhash": "…", "extension_matches": true, "stored_dimensions_differ": false
//! }
//! ```
//!
//! plus `display_width`/`display_height` (after the EXIF orientation), `transparent`,
//! `progressive` (JPEG), `interlaced` (PNG, GIF), `animation` (GIF, APNG, animated WebP),
//! `pages` (TIFF), `exr` (parts, channels, layers), `svg` (viewBox), `exif`,
//! `icc_profile_bytes` when present. A failure stores `status: "error"` and
//! `error: {kind, message}` in place of the facts (the facts of a previous file would describe
//! the wrong file).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::change::AssetInput;
use crate::probe::{self, ImageFacts, ProbeError, ProbeLimits};
use crate::resolve::{AssetRoot, FileError};

/// Version of the document's shape under the namespace.
pub const DOCUMENT_VERSION: u32 = 1;

/// What the probing pool needs for every file.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where files are looked up.
    pub root: AssetRoot,
    /// `--max-file-bytes`.
    pub max_file_bytes: u64,
    /// `--max-pixels`.
    pub max_pixels: u64,
}

/// Why a file was not enriched.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Resolving or reading the file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The bytes are not a usable image.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// Past `--file-timeout`.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A decoder panicked (a bug in a decoder, contained to this file).
    #[error("internal error: {0}")]
    Internal(String),
    /// The change event names no usable file (recorded on the row as `invalid_row`).
    #[error("{0}")]
    InvalidRow(String),
}

impl Failure {
    /// Stable reason, also the `outcome` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::File(e) => e.kind(),
            Failure::Probe(ProbeError::Timeout(_)) | Failure::Timeout(_) => "timeout",
            Failure::Probe(e) => e.kind(),
            Failure::Internal(_) => "internal",
            Failure::InvalidRow(_) => "invalid_row",
        }
    }
}

/// The result of one file.
#[derive(Debug)]
pub struct Outcome {
    /// The row it was for.
    pub input: AssetInput,
    /// Facts, or why there are none.
    pub result: Result<ImageFacts, Failure>,
    /// Bytes read from disk.
    pub bytes_read: u64,
}

/// Attempts at reading a file whose reads fail transiently (`EMFILE`, `EIO`…).
const READ_ATTEMPTS: u32 = 4;

/// Reads a file, retrying transient errors with backoff while the deadline allows.
/// `retried` counts the retries.
fn read_with_retries(
    input: &AssetInput,
    settings: &Settings,
    deadline: Instant,
    retried: &mut u32,
) -> Result<Vec<u8>, FileError> {
    retry_transient(
        || {
            settings
                .root
                .read(&input.file_path, &input.file_name, settings.max_file_bytes)
        },
        deadline,
        retried,
    )
}

/// Calls `read` until it succeeds, fails for good, [`READ_ATTEMPTS`] were made, or the next
/// backoff would pass `deadline`; transient failures ([`FileError::is_transient`]) are retried
/// after a backoff (50 ms doubling), counted in `retried`.
fn retry_transient<T>(
    mut read: impl FnMut() -> Result<T, FileError>,
    deadline: Instant,
    retried: &mut u32,
) -> Result<T, FileError> {
    let backoff = shared::backoff::Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    let mut attempt = 1;
    loop {
        match read() {
            Err(e) if e.is_transient() && attempt < READ_ATTEMPTS => {
                let delay = backoff.delay(attempt);
                if Instant::now() + delay >= deadline {
                    return Err(e);
                }
                tracing::warn!(error = %e, attempt, "transient read error; retrying");
                std::thread::sleep(delay);
                attempt += 1;
                *retried += 1;
            }
            other => return other,
        }
    }
}

/// Reads and probes one row's file. Never panics: a decoder panic becomes
/// [`Failure::Internal`]. Transient read errors are retried (counted in `retried`) before the
/// file is declared failed.
pub fn enrich(input: AssetInput, settings: &Settings, deadline: Instant) -> Outcome {
    enrich_counting(input, settings, deadline, &mut 0)
}

/// [`enrich`], counting the read retries.
pub fn enrich_counting(
    input: AssetInput,
    settings: &Settings,
    deadline: Instant,
    retried: &mut u32,
) -> Outcome {
    let mut bytes_read = 0;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let bytes = read_with_retries(&input, settings, deadline, retried)?;
        bytes_read = bytes.len() as u64;
        let limits = ProbeLimits {
            max_pixels: settings.max_pixels,
            deadline: Some(deadline),
        };
        Ok::<_, Failure>(probe::probe(&bytes, &limits)?)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "decoder panicked".to_owned());
        Err(Failure::Internal(what))
    });
    Outcome {
        input,
        result,
        bytes_read,
    }
}

/// The value stored under `metadata.asset_worker` for `outcome`.
pub fn document(outcome: &Outcome) -> Value {
    let input = &outcome.input;
    let mut doc = Map::new();
    doc.insert("version".into(), json!(DOCUMENT_VERSION));
    doc.insert(
        "status".into(),
        json!(if outcome.result.is_ok() {
            "done"
        } else {
            "error"
        }),
    );
    doc.insert("worker_version".into(), json!(env!("CARGO_PKG_VERSION")));
    doc.insert(
        "source".into(),
        json!({"file_path": input.file_path, "file_name": input.file_name}),
    );
    doc.insert(
        "input".into(),
        json!({"commit_lsn": input.position.0, "lsn": input.position.1}),
    );
    match &outcome.result {
        Ok(facts) => {
            if let Ok(Value::Object(fields)) = serde_json::to_value(facts) {
                doc.extend(fields);
            }
            if let Some(matches) = facts.format.matches_extension(&input.file_name) {
                doc.insert("extension_matches".into(), json!(matches));
            }
            if let Some(differ) = dimensions_differ(input, facts) {
                doc.insert("stored_dimensions_differ".into(), json!(differ));
            }
        }
        Err(failure) => {
            doc.insert(
                "error".into(),
                json!({"kind": failure.kind(), "message": failure.to_string()}),
            );
        }
    }
    Value::Object(doc)
}

/// Whether the row's stored width/height disagree with the file; `None` when the row stores
/// neither (the write-back fills them in) or the file has no size (an SVG without viewBox).
fn dimensions_differ(input: &AssetInput, facts: &ImageFacts) -> Option<bool> {
    if input.stored_width.is_none() && input.stored_height.is_none() {
        return None;
    }
    let (w, h) = (facts.width?, facts.height?);
    let differs = |stored: Option<i64>, real: u32| stored.is_some_and(|s| s != i64::from(real));
    Some(differs(input.stored_width, w) || differs(input.stored_height, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus;

    fn settings(dir: &std::path::Path) -> Settings {
        Settings {
            root: AssetRoot::new(dir).unwrap(),
            max_file_bytes: 1 << 20,
            max_pixels: 1 << 24,
        }
    }

    fn input(name: &str, width: Option<i64>) -> AssetInput {
        AssetInput {
            id: uuid::Uuid::nil(),
            file_path: "/ui/".into(),
            file_name: name.into(),
            stored_width: width,
            stored_height: None,
            position: (30, 20),
        }
    }

    #[test]
    fn documents_for_good_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("asset-enrich-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ui")).unwrap();
        std::fs::write(dir.join("ui/a.jpg"), corpus::png_rgb8(20, 10, 1)).unwrap();
        let settings = settings(&dir);
        let deadline = Instant::now() + Duration::from_secs(30);

        let done = enrich(input("a.jpg", Some(640)), &settings, deadline);
        let doc = document(&done);
        assert_eq!(doc["status"], "done");
        assert_eq!(doc["format"], "PNG");
        assert_eq!(doc["width"], 20);
        assert_eq!(doc["source"]["file_name"], "a.jpg");
        assert_eq!(doc["input"]["commit_lsn"], 30);
        assert_eq!(doc["extension_matches"], false);
        assert_eq!(doc["stored_dimensions_differ"], true);
        assert_eq!(
            done.bytes_read,
            std::fs::metadata(dir.join("ui/a.jpg")).unwrap().len()
        );

        let missing = enrich(input("b.png", None), &settings, deadline);
        let doc = document(&missing);
        assert_eq!(doc["status"], "error");
        assert_eq!(doc["error"]["kind"], "missing");
        assert!(doc.get("format").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    fn failing(errno: i32) -> FileError {
        FileError::Unreadable(std::io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn transient_read_errors_are_retried_until_the_read_succeeds() {
        let mut calls = 0;
        let mut retried = 0;
        let started = Instant::now();
        let read = retry_transient(
            || {
                calls += 1;
                if calls < 3 {
                    Err(failing(libc::EMFILE))
                } else {
                    Ok(calls)
                }
            },
            Instant::now() + Duration::from_secs(10),
            &mut retried,
        );
        assert_eq!(read.unwrap(), 3);
        assert_eq!(retried, 2);
        assert!(
            started.elapsed() >= Duration::from_millis(120),
            "with a backoff in between (50 ms, then 100 ms, ±20 % jitter)"
        );
    }

    #[test]
    fn permanent_errors_and_exhausted_attempts_fail() {
        let mut calls = 0;
        let mut retried = 0;
        let read: Result<(), _> = retry_transient(
            || {
                calls += 1;
                Err(failing(libc::EACCES))
            },
            Instant::now() + Duration::from_secs(10),
            &mut retried,
        );
        assert!(matches!(read, Err(FileError::Unreadable(_))));
        assert_eq!(
            (calls, retried),
            (1, 0),
            "a permission error is not retried"
        );

        let mut calls = 0;
        let read: Result<(), _> = retry_transient(
            || {
                calls += 1;
                Err(failing(libc::EIO))
            },
            Instant::now() + Duration::from_secs(10),
            &mut retried,
        );
        assert!(read.is_err());
        assert_eq!(calls, READ_ATTEMPTS, "EIO is tried {READ_ATTEMPTS} times");

        // No retry may outlive the file's deadline.
        let mut calls = 0;
        let read: Result<(), _> = retry_transient(
            || {
                calls += 1;
                Err(failing(libc::EIO))
            },
            Instant::now() + Duration::from_millis(10),
            &mut 0,
        );
        assert!(read.is_err());
        assert_eq!(calls, 1);
    }
}
