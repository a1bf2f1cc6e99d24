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
//! - the file is opened relative to a descriptor of the root taken at start-up, without ever
//!   following a symlink on any component: `openat2` with `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS` (Linux 5.6+), or, where that system call is missing or filtered,
//!   one `openat` per component with `O_NOFOLLOW` (directories with `O_DIRECTORY`). There is
//!   no check-then-open window: a directory swapped for a symlink at any moment is refused,
//!   never followed. Symlinks are refused even when they point inside the root;
//! - the open uses `O_NONBLOCK` (a FIFO cannot hang the worker), and the descriptor itself must
//!   be a regular file (`fstat`); nothing is read from a refused file;
//! - the size is checked on the open handle before reading, and the read stops one byte past
//!   the limit, so a file growing meanwhile cannot exceed it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{self, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

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
    /// Canonical (absolute, symlink-free) root, for messages.
    root: PathBuf,
    /// The root directory, opened once: every file is opened relative to it.
    dir: Arc<OwnedFd>,
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
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&root)?;
        Ok(Self {
            root,
            dir: Arc::new(OwnedFd::from(dir)),
        })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The path of a row's file under the root, without touching the file system.
    pub fn join(&self, file_path: &str, file_name: &str) -> Result<PathBuf, FileError> {
        Ok(self.root.join(Self::relative(file_path, file_name)?))
    }

    /// The path of a row's file relative to the root: plain components only.
    fn relative(file_path: &str, file_name: &str) -> Result<PathBuf, FileError> {
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
        let mut path = PathBuf::new();
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
        self.read_with(file_path, file_name, max_bytes, Opener::Best)
    }

    fn read_with(
        &self,
        file_path: &str,
        file_name: &str,
        max_bytes: u64,
        opener: Opener,
    ) -> Result<Vec<u8>, FileError> {
        let relative = Self::relative(file_path, file_name)?;
        let shown = || {
            format!(
                "{}{}{}",
                file_path,
                if file_path.ends_with('/') { "" } else { "/" },
                file_name
            )
        };
        let file = open_beneath(&self.dir, &relative, opener).map_err(|e| {
            match e.raw_os_error() {
                // A symlink on the way (openat2 says ELOOP; openat with O_DIRECTORY on a
                // symlinked directory says ENOTDIR), or a way out of the root (EXDEV).
                Some(libc::ELOOP | libc::EXDEV) => FileError::Refused(format!(
                    "{} passes through a symlink (symlinks are not followed under the assets root)",
                    shown()
                )),
                Some(libc::ENOTDIR) => FileError::Refused(format!(
                    "{}: a directory on its path is a symlink or a file",
                    shown()
                )),
                _ if e.kind() == io::ErrorKind::NotFound => FileError::Missing(shown()),
                _ => FileError::Unreadable(e),
            }
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
        read_at_most(file, meta.len(), max_bytes)
    }
}

/// Reads `source` to its end, refusing it as soon as it gives more than `max_bytes`: a file
/// may grow after its size was checked, and is never read further than one byte past the
/// limit. `expected` (the size on disk) only sizes the buffer.
fn read_at_most(source: impl Read, expected: u64, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::with_capacity(expected.min(max_bytes) as usize);
    source
        .take(max_bytes.saturating_add(1))
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

/// How files are opened beneath the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opener {
    /// `openat2`, or the component walk where the kernel lacks it.
    Best,
    /// One `openat` per component (the fallback, also tested on its own).
    #[cfg_attr(not(test), allow(dead_code))]
    Components,
}

/// Set once `openat2` turned out to be missing (ENOSYS) or filtered (EPERM by a seccomp
/// profile): the component walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `relative` (plain components only) beneath the directory `dir` for reading, never
/// following a symlink on any component.
fn open_beneath(dir: &OwnedFd, relative: &Path, opener: Opener) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if opener == Opener::Best && !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match fs::openat2(dir, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
                tracing::info!(error = %e, "openat2 is not available; opening asset files one path component at a time");
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let parts: Vec<&std::ffi::OsStr> = relative.iter().collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    let mut current: Option<OwnedFd> = None;
    for part in dirs {
        let at = current.as_ref().unwrap_or(dir);
        current = Some(fs::openat(
            at,
            *part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    let at = current.as_ref().unwrap_or(dir);
    Ok(File::from(fs::openat(at, *last, flags, Mode::empty())?))
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

    /// A file that grew after its size was checked: refused once it passes the limit, and
    /// read no further than one byte past it.
    #[test]
    fn a_file_grown_past_the_limit_after_its_check_is_refused() {
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += buf.len() as u64;
                buf.fill(7);
                Ok(buf.len())
            }
        }
        let mut source = Endless(0);
        assert!(matches!(
            read_at_most(&mut source, 10, 1000),
            Err(FileError::TooLarge {
                size: 1001,
                limit: 1000
            })
        ));
        assert_eq!(source.0, 1001, "read past the limit");
        assert_eq!(
            read_at_most(&[1u8; 1000][..], 10, 1000).unwrap().len(),
            1000
        );
        assert_eq!(read_at_most(&[1u8; 5][..], 10, 1000).unwrap(), vec![1u8; 5]);
    }

    #[test]
    fn escapes_are_refused() {
        let dir = scratch("escape");
        let root_dir = dir.join("root");
        std::fs::create_dir_all(&root_dir).unwrap();
        std::fs::write(dir.join("secret.png"), b"TOP-SECRET-BYTES").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.png"), root_dir.join("link.png")).unwrap();
        std::os::unix::fs::symlink(&dir, root_dir.join("up")).unwrap();
        std::fs::create_dir_all(root_dir.join("in")).unwrap();
        std::fs::write(root_dir.join("in/ok.png"), b"inside").unwrap();
        // Symlinks are refused even when they stay inside the root.
        std::os::unix::fs::symlink(root_dir.join("in"), root_dir.join("alias")).unwrap();
        std::os::unix::fs::symlink(root_dir.join("in/ok.png"), root_dir.join("in/same.png"))
            .unwrap();
        let root = AssetRoot::new(&root_dir).unwrap();
        for opener in [Opener::Best, Opener::Components] {
            assert_eq!(
                root.read_with("/in/", "ok.png", 100, opener).unwrap(),
                b"inside"
            );
        }
        for (path, name) in [
            ("/alias/", "ok.png"),
            ("/in/", "same.png"),
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
            for opener in [Opener::Best, Opener::Components] {
                match root.read_with(path, name, 100, opener) {
                    Err(FileError::Refused(text)) => {
                        assert!(!text.contains("TOP-SECRET"), "{text}")
                    }
                    other => panic!("{path:?} + {name:?} ({opener:?}): {other:?}"),
                }
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A directory inside the root is swapped for a symlink to a directory outside it, over
    /// and over, while files are read through it: the file outside is never read, and no
    /// error text carries its bytes.
    #[test]
    fn a_directory_swapped_for_a_symlink_mid_read_never_leads_outside() {
        let dir = scratch("swap");
        let root_dir = dir.join("root");
        let outside = dir.join("outside");
        std::fs::create_dir_all(root_dir.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root_dir.join("d/a.png"), b"inside").unwrap();
        std::fs::write(outside.join("a.png"), b"SECRET").unwrap();
        let root = AssetRoot::new(&root_dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, root_dir, outside) = (stop.clone(), root_dir.clone(), outside.clone());
            std::thread::spawn(move || {
                let (d, parked) = (root_dir.join("d"), root_dir.join("d.real"));
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    std::fs::rename(&d, &parked).unwrap();
                    std::os::unix::fs::symlink(&outside, &d).unwrap();
                    std::thread::yield_now();
                    std::fs::remove_file(&d).unwrap();
                    std::fs::rename(&parked, &d).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let mut seen = [0u64; 3]; // read inside, refused, missing
        let started = std::time::Instant::now();
        let mut i = 0u64;
        while started.elapsed() < std::time::Duration::from_secs(3) {
            i += 1;
            let opener = if i % 2 == 0 {
                Opener::Best
            } else {
                Opener::Components
            };
            match root.read_with("/d/", "a.png", 100, opener) {
                Ok(bytes) => {
                    assert_eq!(bytes, b"inside", "read outside the root ({opener:?})");
                    seen[0] += 1;
                }
                Err(FileError::Refused(text)) => {
                    assert!(!text.contains("SECRET"), "{text}");
                    seen[1] += 1;
                }
                Err(FileError::Missing(text)) => {
                    assert!(!text.contains("SECRET"), "{text}");
                    seen[2] += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        eprintln!("{swaps} swaps; read inside / refused / missing: {seen:?}");
        assert!(
            swaps > 10 && seen[0] > 0 && seen[1] > 0,
            "the race was not exercised: {swaps} swaps, {seen:?}"
        );
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
