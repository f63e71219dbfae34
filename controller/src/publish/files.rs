//! Crash-safe writes for the file publishers: whoever reads the directory (`named` on
//! `rndc reload`, an operator's apply script, the publisher itself after a restart) sees a file
//! whole or not at all.
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, and only then
//! takes the final name: by `rename` when a file is replaced, by a hard link when it must not
//! exist yet (a link fails if the name is taken, so a numbered file is never overwritten). The
//! directory is flushed afterwards so the new name survives a power cut. Temporary names start
//! with a dot, which the publishers' directory scans skip.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use futures::future::BoxFuture;

use super::PublishError;

/// Distinguishes temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A [`PublishError::Io`] about `path`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io { path: path.to_owned(), source }
}

/// Runs a publisher's file work on the blocking thread pool (file writes and `fsync` must not
/// stall the runtime); a task that dies is reported against `dir`.
pub(crate) fn in_background(
    dir: PathBuf,
    work: impl FnOnce() -> Result<(), PublishError> + Send + 'static,
) -> BoxFuture<'static, Result<(), PublishError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| io_error(&dir)(io::Error::other(e.to_string())))?
    })
}

/// Creates `dir` (and its parents) if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PublishError> {
    fs::create_dir_all(dir).map_err(io_error(dir))
}

/// Reads `path` whole, or `None` if it does not exist. A file over `limit` bytes is an error
/// (`InvalidData`) rather than a large allocation.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, PublishError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io_error(path))?;
    if bytes.len() as u64 > limit {
        return Err(io_error(path)(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes; not read"),
        )));
    }
    Ok(Some(bytes))
}

/// Replaces (or creates) `path` with `bytes` atomically. An existing file's permissions are
/// kept, so a zone file the operator made group-readable for `named` stays so.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let (dir, temp) = write_temp(path, bytes)?;
    let result = (|| {
        match fs::metadata(path) {
            Ok(meta) => fs::set_permissions(&temp, meta.permissions())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(io_error(path)(e));
    }
    sync_dir(dir)
}

/// Creates `path` with `bytes` atomically; fails with `AlreadyExists` (and changes nothing) if
/// the name is taken.
pub(crate) fn create_new(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let (dir, temp) = write_temp(path, bytes)?;
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    linked.map_err(io_error(path))?;
    sync_dir(dir)
}

/// Writes `bytes` to a new temporary file next to `path` and flushes it to disk.
fn write_temp<'a>(path: &'a Path, bytes: &[u8]) -> Result<(&'a Path, PathBuf), PublishError> {
    let invalid = || {
        io_error(path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path in a directory",
        ))
    };
    let dir = path.parent().ok_or_else(invalid)?;
    let name = path.file_name().ok_or_else(invalid)?.to_string_lossy();
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error(path)(e));
    }
    Ok((dir, temp))
}

/// Flushes a directory's entries (new and renamed names) to disk.
fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    // An empty parent is the current directory.
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn replaces_and_creates_without_leaving_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zone");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");

        let numbered = dir.path().join("000001-x.json");
        create_new(&numbered, b"first").unwrap();
        let error = create_new(&numbered, b"second").unwrap_err();
        assert!(
            matches!(&error, PublishError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
            "{error}"
        );
        assert_eq!(fs::read(&numbered).unwrap(), b"first", "never overwritten");

        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn replace_keeps_the_permissions_of_the_file_it_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zone");
        replace(&path, b"one").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        assert!(read_bounded(&path, 10).unwrap().is_none());
        fs::write(&path, [b'x'; 11]).unwrap();
        let error = read_bounded(&path, 10).unwrap_err();
        assert!(error.to_string().contains("larger than 10 bytes"), "{error}");
        assert_eq!(read_bounded(&path, 11).unwrap().unwrap().len(), 11);
    }
}
