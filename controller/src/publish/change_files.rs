//! Numbered change-set files for one zone in an output directory, and the state that makes
//! writing them idempotent across retries and crashes.
//!
//! Files are named `<number>-<kind>-<origin>.json` (`000007-route53-nodes.example.org.json`):
//! the number is six digits, zero-padded so that `ls` and shell globs list them in the order
//! they must be applied, and counts up per kind and zone. A number is never used twice and an
//! existing file is never overwritten.
//!
//! Beside them, `.<kind>-<origin>.state.json` (hidden from `*.json` globs) records what the zone
//! holds once every file so far is applied: the publisher plans each change set against that,
//! so a change set applied again writes nothing, and a deletion names the record exactly as it
//! was created. The operator may move applied files away; the state keeps the numbering.
//!
//! Writing file `n` takes three atomic steps: the state is rewritten with file `n` as *pending*
//! (its name and the records after it), the file is created, and the state is rewritten with
//! `n` done. After a crash, a pending file that exists counts as written and one that does not
//! as never written, so the next apply neither repeats nor loses changes. A numbered file newer
//! than the state (the state file was removed or replaced by an older copy) stops the publisher
//! with an error instead of writing changes that may conflict with it.
//!
//! One publisher process per directory and zone: applies within a process are serialised, but
//! two processes writing the same series would each plan against their own view of it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{PublishError, files, record_set::RecordSet, zone::TxtRecord};

/// Largest state file read back: a zone at its record limit is ~45 MB of JSON.
const MAX_STATE_FILE: u64 = 64 * 1024 * 1024;

/// Version of the state file format.
const STATE_VERSION: u32 = 1;

/// The change-set files of one kind (`route53`, `cloudflare`) for one zone.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    dir: PathBuf,
    kind: &'static str,
    /// The zone origin, lower case, without trailing dot.
    origin: String,
}

/// What the zone holds once every file written so far is applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    /// The records.
    pub(crate) records: RecordSet,
    /// The number of the last file written (0: none yet).
    pub(crate) last: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    kind: String,
    origin: String,
    last: u64,
    records: Vec<StoredRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    number: u64,
    file: String,
    records: Vec<StoredRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRecord {
    name: String,
    ttl: u32,
    text: String,
}

fn stored(records: &RecordSet) -> Vec<StoredRecord> {
    records
        .records()
        .map(|r| StoredRecord { name: r.name.clone(), ttl: r.ttl, text: r.text.clone() })
        .collect()
}

fn restored(records: Vec<StoredRecord>) -> RecordSet {
    RecordSet::from_records(records.into_iter().map(|r| TxtRecord {
        name: r.name,
        ttl: r.ttl,
        text: r.text,
    }))
}

impl Series {
    /// The series of `kind` files for the zone `origin` in `dir`.
    pub(crate) fn new(dir: &Path, kind: &'static str, origin: &str) -> Self {
        Self {
            dir: dir.to_owned(),
            kind,
            origin: origin.trim_end_matches('.').to_ascii_lowercase(),
        }
    }

    /// Creates `dir` if needed and loads the series of `kind` files for the zone `origin`.
    pub(crate) fn open(
        dir: &Path,
        kind: &'static str,
        origin: &str,
    ) -> Result<(Self, Ledger), PublishError> {
        files::ensure_dir(dir)?;
        let series = Self::new(dir, kind, origin);
        let ledger = series.load()?;
        Ok((series, ledger))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(format!(".{}-{}.state.json", self.kind, self.origin))
    }

    /// The file name of number `n`.
    pub(crate) fn file_name(&self, number: u64) -> String {
        format!("{number:06}-{}-{}.json", self.kind, self.origin)
    }

    /// The number of a file of this series, from its name.
    fn number_of(&self, name: &str) -> Option<u64> {
        let digits = name.strip_suffix(&format!("-{}-{}.json", self.kind, self.origin))?;
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The highest file number in the directory.
    fn newest_file(&self) -> Result<u64, PublishError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(files::io_error(&self.dir)(e)),
        };
        let mut newest = 0;
        for entry in entries {
            let entry = entry.map_err(files::io_error(&self.dir))?;
            if let Some(number) = entry.file_name().to_str().and_then(|n| self.number_of(n)) {
                newest = newest.max(number);
            }
        }
        Ok(newest)
    }

    fn bad_state(&self, message: String) -> PublishError {
        files::io_error(&self.state_path())(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ))
    }

    /// What the zone holds after the files written so far; settles a file left pending by a
    /// crash.
    pub(crate) fn load(&self) -> Result<Ledger, PublishError> {
        let path = self.state_path();
        let mut ledger = Ledger::default();
        if let Some(bytes) = files::read_bounded(&path, MAX_STATE_FILE)? {
            let state: StateFile = serde_json::from_slice(&bytes)
                .map_err(|e| self.bad_state(format!("unreadable state: {e}")))?;
            if state.version != STATE_VERSION
                || state.kind != self.kind
                || state.origin != self.origin
            {
                return Err(self.bad_state(format!(
                    "state of {} {} version {}, expected {} {} version {STATE_VERSION}",
                    state.kind, state.origin, state.version, self.kind, self.origin
                )));
            }
            ledger = Ledger { records: restored(state.records), last: state.last };
            if let Some(pending) = state.pending {
                if self.dir.join(&pending.file).exists() {
                    ledger = Ledger { records: restored(pending.records), last: pending.number };
                } else {
                    tracing::info!(target: "ctl::change_files", file = %pending.file,
                        "a file left pending by an interrupted apply was never written; writing its changes again");
                }
            }
        }
        let newest = self.newest_file()?;
        if newest > ledger.last {
            return Err(self.bad_state(format!(
                "{} is newer than the state, which records files up to {:06}; the state file was \
                 removed or replaced. Restore it, or move the zone's change files away once the \
                 zone matches them and remove the state to start over",
                self.file_name(newest),
                ledger.last
            )));
        }
        Ok(ledger)
    }

    /// Writes the next file with `bytes`, after which the zone holds `after`; updates `ledger`.
    /// Returns the file's path.
    pub(crate) fn write(
        &self,
        ledger: &mut Ledger,
        after: &RecordSet,
        bytes: &[u8],
    ) -> Result<PathBuf, PublishError> {
        let number = ledger.last + 1;
        let name = self.file_name(number);
        let path = self.dir.join(&name);
        let pending = Pending { number, file: name, records: stored(after) };
        self.save(&self.state(ledger.last, &ledger.records, Some(pending)))?;
        if let Err(error) = files::create_new(&path, bytes) {
            // Undo the pending mark: a name taken by another writer must not pass for ours
            // (if this fails too, a file that does not exist is dropped on the next load).
            let _ = self.save(&self.state(ledger.last, &ledger.records, None));
            return Err(error);
        }
        self.save(&self.state(number, after, None))?;
        ledger.records = after.clone();
        ledger.last = number;
        Ok(path)
    }

    fn state(&self, last: u64, records: &RecordSet, pending: Option<Pending>) -> StateFile {
        StateFile {
            version: STATE_VERSION,
            kind: self.kind.to_owned(),
            origin: self.origin.clone(),
            last,
            records: stored(records),
            pending,
        }
    }

    fn save(&self, state: &StateFile) -> Result<(), PublishError> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| self.bad_state(format!("cannot encode the state: {e}")))?;
        files::replace(&self.state_path(), &bytes)
    }

    /// Writes a state with file `number` pending, as a crash right after it would leave it.
    #[cfg(test)]
    fn crash_after_pending(
        &self,
        ledger: &Ledger,
        after: &RecordSet,
        number: u64,
    ) -> Result<(), PublishError> {
        let pending = Pending { number, file: self.file_name(number), records: stored(after) };
        self.save(&self.state(ledger.last, &ledger.records, Some(pending)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(texts: &[&str]) -> RecordSet {
        RecordSet::from_records(texts.iter().enumerate().map(|(i, t)| TxtRecord {
            name: format!("n{i}.fleet.test"),
            ttl: 60,
            text: (*t).to_owned(),
        }))
    }

    #[test]
    fn files_are_numbered_in_order_and_the_state_survives_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let series = Series::new(dir.path(), "route53", "Fleet.Test.");
        let mut ledger = series.load().unwrap();
        assert_eq!(ledger.last, 0);
        let first = series.write(&mut ledger, &set(&["a"]), b"1").unwrap();
        let second = series.write(&mut ledger, &set(&["a", "b"]), b"2").unwrap();
        assert!(first.ends_with("000001-route53-fleet.test.json"), "{first:?}");
        assert!(second.ends_with("000002-route53-fleet.test.json"), "{second:?}");

        // The operator moves applied files away: numbering and records go on from the state.
        std::fs::remove_file(&first).unwrap();
        std::fs::remove_file(&second).unwrap();
        let mut ledger = series.load().unwrap();
        assert_eq!((ledger.last, ledger.records.clone()), (2, set(&["a", "b"])));
        let third = series.write(&mut ledger, &set(&["c"]), b"3").unwrap();
        assert!(third.ends_with("000003-route53-fleet.test.json"));

        // Another kind or zone in the same directory has its own numbers.
        let other = Series::new(dir.path(), "cloudflare", "fleet.test");
        assert_eq!(other.load().unwrap().last, 0);
    }

    #[test]
    fn a_crash_between_the_steps_neither_repeats_nor_loses_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let series = Series::new(dir.path(), "route53", "fleet.test");
        let mut ledger = series.load().unwrap();
        series.write(&mut ledger, &set(&["a"]), b"1").unwrap();

        // Crash after marking file 2 pending, before creating it: it counts as never written.
        series.crash_after_pending(&ledger, &set(&["a", "b"]), 2).unwrap();
        let reloaded = series.load().unwrap();
        assert_eq!((reloaded.last, reloaded.records), (1, set(&["a"])));

        // Crash after creating file 2, before the state says so: it counts as written.
        series.crash_after_pending(&ledger, &set(&["a", "b"]), 2).unwrap();
        std::fs::write(dir.path().join(series.file_name(2)), b"2").unwrap();
        let mut reloaded = series.load().unwrap();
        assert_eq!((reloaded.last, reloaded.records.clone()), (2, set(&["a", "b"])));
        let next = series.write(&mut reloaded, &set(&["c"]), b"3").unwrap();
        assert!(next.ends_with("000003-route53-fleet.test.json"));
    }

    #[test]
    fn a_number_taken_by_another_writer_is_an_error_and_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let series = Series::new(dir.path(), "route53", "fleet.test");
        let mut ledger = series.load().unwrap();
        std::fs::create_dir(dir.path().join(series.file_name(1))).unwrap();
        // The directory entry counts as file 1, so the state is behind it: refused on load.
        assert!(series.load().is_err());
        // Writing straight away (a stale ledger) fails on the taken name and marks nothing.
        let error = series.write(&mut ledger, &set(&["a"]), b"1").unwrap_err();
        assert!(
            matches!(&error, PublishError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{error}"
        );
        let state = std::fs::read_to_string(series.state_path()).unwrap();
        assert!(!state.contains("pending"), "{state}");
        assert_eq!(ledger.last, 0);
    }

    #[test]
    fn a_missing_or_broken_state_stops_the_series() {
        let dir = tempfile::tempdir().unwrap();
        let series = Series::new(dir.path(), "route53", "fleet.test");
        let mut ledger = series.load().unwrap();
        series.write(&mut ledger, &set(&["a"]), b"1").unwrap();

        std::fs::remove_file(series.state_path()).unwrap();
        let error = series.load().unwrap_err().to_string();
        assert!(
            error.contains("000001-route53-fleet.test.json is newer than the state"),
            "{error}"
        );

        std::fs::write(series.state_path(), b"{not json").unwrap();
        let error = series.load().unwrap_err().to_string();
        assert!(error.contains("unreadable state"), "{error}");
    }
}
