//! File helpers for the CLI: reads with the path in the error, and atomic writes, so a failed
//! command never leaves a half-written file where a good one was.

use std::{fs, path::Path};

use anyhow::Context;
use node::atomic_file::{self, Access};

/// Reads a whole text file.
pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("{}", path.display()))
}

/// Reads a text file that may be absent.
pub(crate) fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

/// Replaces `path` with `contents` atomically (see [`node::atomic_file`]).
pub(crate) fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    atomic_file::replace(path, contents.as_bytes()).with_context(|| format!("{}", path.display()))
}

/// Writes a secret file (mode 0600) that must not exist yet.
pub(crate) fn write_secret_new(path: &Path, contents: &str) -> anyhow::Result<()> {
    atomic_file::create_new(path, contents.as_bytes(), Access::Secret).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{}: already exists; refusing to overwrite a key file", path.display())
        } else {
            anyhow::Error::new(e).context(format!("{}", path.display()))
        }
    })
}
