//! File helpers for the CLI: reads with the path in the error, and atomic writes, so a failed
//! command never leaves a half-written file where a good one was.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;

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

/// Replaces `path` with `contents` atomically: a temporary file in the same directory, synced,
/// then renamed over the target.
pub(crate) fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_new_file(&temp_path(path), contents, false)?;
    fs::rename(temp_path(path), path).with_context(|| format!("{}", path.display()))
}

/// Writes a secret file (mode 0600) that must not exist yet.
pub(crate) fn write_secret_new(path: &Path, contents: &str) -> anyhow::Result<()> {
    if path.exists() {
        anyhow::bail!("{}: already exists; refusing to overwrite a key file", path.display());
    }
    let temp = temp_path(path);
    write_new_file(&temp, contents, true)?;
    // hard_link fails if the target appeared meanwhile, where rename would replace it.
    let linked = fs::hard_link(&temp, path).with_context(|| format!("{}", path.display()));
    let _ = fs::remove_file(&temp);
    linked
}

fn write_new_file(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("{}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("{}", path.display()))?;
    file.sync_all().with_context(|| format!("{}", path.display()))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
