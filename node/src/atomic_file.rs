//! Files replaced whole: whoever reads one (`named` on `rndc reload`, an operator's script, the
//! same program after a crash or a power cut) sees the old contents or the new, never half.
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, and only then
//! takes the final name: by `rename` when a file is replaced, by a hard link when it must not
//! exist yet (a link fails if the name is taken, so a numbered file or a key is never
//! overwritten). The directory is flushed afterwards so the new name survives a power cut.
//! Temporary names start with a dot, so directory scans can skip them.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

/// Distinguishes temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Who may read a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// As the process's umask allows; a replaced file keeps the permissions it had.
    Default,
    /// The owner alone (mode 0600): keys, tokens.
    Secret,
}

/// Replaces (or creates) `path` with `bytes`. An existing file's permissions are kept, so a zone
/// file the operator made group-readable for `named` stays so.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, bytes, Access::Default)
}

/// [`replace`], with a new file's `access`.
pub fn replace_with(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let (dir, temp) = write_temp(path, bytes, access)?;
    let result = (|| {
        match fs::metadata(path) {
            Ok(meta) if access == Access::Default => {
                fs::set_permissions(&temp, meta.permissions())?
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Creates `path` with `bytes`; fails with `AlreadyExists` (and changes nothing) if the name is
/// taken.
pub fn create_new(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let (dir, temp) = write_temp(path, bytes, access)?;
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    linked?;
    sync_dir(dir)
}

/// Writes `bytes` to a new temporary file next to `path` and flushes it to disk.
fn write_temp<'a>(path: &'a Path, bytes: &[u8], access: Access) -> io::Result<(&'a Path, PathBuf)> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "not a file path in a directory");
    let dir = path.parent().ok_or_else(invalid)?;
    let name = path.file_name().ok_or_else(invalid)?.to_string_lossy();
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if access == Access::Secret {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok((dir, temp))
}

/// Flushes a directory's entries (new and renamed names) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    // An empty parent is the current directory.
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_and_creates_without_leaving_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zone");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");

        let numbered = dir.path().join("000001-x.json");
        create_new(&numbered, b"first", Access::Default).unwrap();
        let error = create_new(&numbered, b"second", Access::Default).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert_eq!(fs::read(&numbered).unwrap(), b"first", "never overwritten");
        assert_eq!(names(dir.path()), ["000001-x.json", "a.zone"]);
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        assert_eq!(replace(Path::new("/"), b"x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace(&path, b"old").unwrap();
        // A directory where the file should be: rename fails, nothing else changes.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        assert!(replace(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["blocked", "state.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn permissions_kept_on_replace_and_secret_files_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zone");
        replace(&path, b"one").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);

        let key = dir.path().join("key.json");
        create_new(&key, b"{}", Access::Secret).unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        // A secret replacing a readable file does not inherit its permissions.
        replace_with(&path, b"three", Access::Secret).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
