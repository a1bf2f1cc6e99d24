//! Confinement of file reads to the assets root.
//!
//! A row names its file by `file_path` (a directory, e.g. `/assets/textures/hero/`) and
//! `file_name`. The directory is read as a path inside the asset store: a leading `/` means the
//! store's root, which is the configured `--assets-root` (so `/assets/textures/hero/` and
//! `assets/textures/hero` name the same directory under it). Nothing outside the root is ever
//! opened:
//!
//! - `..` components, NUL bytes, and file names that are not a single plain component (`a/b`,
//!   `/etc/passwd`, `..`) are refused before touching the file system;
//! - the joined path is canonicalised and must still lie under the canonical root, so symlinks
//!   that lead out of it are refused;
//! - the final open uses `O_NOFOLLOW` (a symlink swapped in after the check is not followed)
//!   and `O_NONBLOCK` (a FIFO cannot hang the worker), and must yield a regular file;
//! - the size is checked on the open handle before reading, and the read stops one byte past
//!   the limit, so a file growing meanwhile cannot exceed it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a file could not be read. All are properties of the row or the file system: they are
/// recorded on the row, not retried.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The row's path is not acceptable (escapes the root, not a plain name, not a file).
    #[error("refused path: {0}")]
    Refused(String),
    /// No file at the resolved path.
    #[error("file not found: {0}")]
    Missing(String),
    /// Larger than `--max-file-bytes`.
    #[error("file too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Size found.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The file exists but cannot be read (permissions, I/O error).
    #[error("cannot read file: {0}")]
    Unreadable(#[source] io::Error),
}

impl FileError {
    /// Whether the error may go away by itself (too many open files, an I/O hiccup, a busy or
    /// stale network mount): such reads are retried before the file is declared failed.
    pub fn is_transient(&self) -> bool {
        let FileError::Unreadable(e) = self else {
            return false;
        };
        matches!(
            e.raw_os_error(),
            Some(
                libc::EMFILE
                    | libc::ENFILE
                    | libc::EIO
                    | libc::EAGAIN
                    | libc::EINTR
                    | libc::ENOMEM
                    | libc::EBUSY
                    | libc::ETIMEDOUT
                    | libc::ESTALE
            )
        ) || matches!(
            e.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        )
    }

    /// Stable machine-readable reason: `refused`, `missing`, `too_large`, `unreadable`.
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::Refused(_) => "refused",
            FileError::Missing(_) => "missing",
            FileError::TooLarge { .. } => "too_large",
            FileError::Unreadable(_) => "unreadable",
        }
    }
}

/// The directory every asset file must lie under.
#[derive(Clone, Debug)]
pub struct AssetRoot {
    /// Canonical (absolute, symlink-free) root, so `starts_with` on canonical paths is exact.
    root: PathBuf,
}

impl AssetRoot {
    /// Canonicalises `root`; fails if it does not exist or is not a directory.
    pub fn new(root: &Path) -> io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self { root })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The path of a row's file under the root, without touching the file system.
    pub fn join(&self, file_path: &str, file_name: &str) -> Result<PathBuf, FileError> {
        if file_path.contains('\0') || file_name.contains('\0') {
            return Err(FileError::Refused("NUL byte in the path".into()));
        }
        let name = Path::new(file_name);
        let mut name_parts = name.components();
        match (name_parts.next(), name_parts.next()) {
            (Some(Component::Normal(_)), None) if !file_name.contains('/') => {}
            _ => {
                return Err(FileError::Refused(format!(
                    "file_name {file_name:?} is not a plain file name"
                )))
            }
        }
        let mut path = self.root.clone();
        for part in file_path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(FileError::Refused(format!(
                        "file_path {file_path:?} climbs out with `..`"
                    )))
                }
                part => path.push(part),
            }
        }
        path.push(name);
        Ok(path)
    }

    /// Resolves and reads a row's file, at most `max_bytes` of it.
    pub fn read(
        &self,
        file_path: &str,
        file_name: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, FileError> {
        let joined = self.join(file_path, file_name)?;
        let shown = || {
            format!(
                "{}{}{}",
                file_path,
                if file_path.ends_with('/') { "" } else { "/" },
                file_name
            )
        };
        let real = joined.canonicalize().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => FileError::Missing(shown()),
            _ => FileError::Unreadable(e),
        })?;
        if !real.starts_with(&self.root) {
            return Err(FileError::Refused(format!(
                "{} resolves outside the assets root",
                shown()
            )));
        }
        let file = open_no_follow(&real).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FileError::Refused(format!("{} is a symlink", shown())),
            _ if e.kind() == io::ErrorKind::NotFound => FileError::Missing(shown()),
            _ => FileError::Unreadable(e),
        })?;
        let meta = file.metadata().map_err(FileError::Unreadable)?;
        if !meta.is_file() {
            return Err(FileError::Refused(format!(
                "{} is not a regular file",
                shown()
            )));
        }
        if meta.len() > max_bytes {
            return Err(FileError::TooLarge {
                size: meta.len(),
                limit: max_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(FileError::Unreadable)?;
        if bytes.len() as u64 > max_bytes {
            return Err(FileError::TooLarge {
                size: bytes.len() as u64,
                limit: max_bytes,
            });
        }
        Ok(bytes)
    }
}

fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "asset-resolve-{label}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn paths_inside_the_root() {
        let dir = scratch("inside");
        let root_dir = dir.join("root");
        std::fs::create_dir_all(root_dir.join("assets/ui")).unwrap();
        std::fs::write(root_dir.join("assets/ui/a.png"), b"12345").unwrap();
        let root = AssetRoot::new(&root_dir).unwrap();
        assert_eq!(root.read("/assets/ui/", "a.png", 10).unwrap(), b"12345");
        assert_eq!(root.read("assets/./ui", "a.png", 10).unwrap(), b"12345");
        assert!(matches!(
            root.read("/assets/ui/", "a.png", 4),
            Err(FileError::TooLarge { size: 5, limit: 4 })
        ));
        assert!(matches!(
            root.read("/assets/ui/", "b.png", 10),
            Err(FileError::Missing(_))
        ));
        assert!(matches!(
            root.read("/assets/", "ui", 10),
            Err(FileError::Refused(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn escapes_are_refused() {
        let dir = scratch("escape");
        let root_dir = dir.join("root");
        std::fs::create_dir_all(&root_dir).unwrap();
        std::fs::write(dir.join("secret.png"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.png"), root_dir.join("link.png")).unwrap();
        std::os::unix::fs::symlink(&dir, root_dir.join("up")).unwrap();
        let root = AssetRoot::new(&root_dir).unwrap();
        for (path, name) in [
            ("../", "secret.png"),
            ("/a/../../", "secret.png"),
            ("/", "../secret.png"),
            ("/", "/etc/passwd"),
            ("/", ".."),
            ("/", ""),
            ("/", "a\0b"),
            ("/", "link.png"),
            ("/up/", "secret.png"),
        ] {
            match root.read(path, name, 100) {
                Err(FileError::Refused(_)) => {}
                other => panic!("{path:?} + {name:?}: {other:?}"),
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn transient_read_errors_are_told_from_permanent_ones() {
        let os = |code| FileError::Unreadable(io::Error::from_raw_os_error(code));
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::EIO,
            libc::EAGAIN,
            libc::ESTALE,
        ] {
            assert!(os(code).is_transient(), "{code}");
        }
        for code in [libc::EACCES, libc::EISDIR] {
            assert!(!os(code).is_transient(), "{code}");
        }
        assert!(!FileError::Missing("x".into()).is_transient());
        assert!(!FileError::Refused("x".into()).is_transient());
    }
}
