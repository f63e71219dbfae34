//! File work for the file publishers: crash-safe writes through [`node::atomic_file`] (whoever
//! reads the directory — `named` on `rndc reload`, an operator's apply script, the publisher
//! itself after a restart — sees a file whole or not at all), bounded reads, and the blocking
//! pool. Temporary names start with a dot, which the publishers' directory scans skip.

use std::{
    fs::{self, File},
    io::{self, Read},
    path::{Path, PathBuf},
};

use futures::future::BoxFuture;
use node::atomic_file::{self, Access};

use super::PublishError;

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

/// Replaces (or creates) `path` with `bytes` atomically (see [`node::atomic_file::replace`]).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    atomic_file::replace(path, bytes).map_err(io_error(path))
}

/// Creates `path` with `bytes` atomically; fails with `AlreadyExists` (and changes nothing) if
/// the name is taken.
pub(crate) fn create_new(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    atomic_file::create_new(path, bytes, Access::Default).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
