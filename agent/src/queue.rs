//! The report queue on disk: measurements wait here until the controller has them, in the
//! order they were taken, across controller outages and agent restarts.
//!
//! One file per measurement (`<seq>.json`, written atomically) in `<data-dir>/queue/`. The
//! queue is bounded: when it is full, the two oldest entries are merged into one summary
//! ([`Measurement::merge`]) instead of one being dropped, so a long outage costs resolution
//! of the oldest period, never its errors or its existence. Files that cannot be read are
//! moved aside as `*.bad` and counted, not deleted.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
};

use contract::report::Figures;
use serde::{Deserialize, Serialize};

use crate::{error::AgentError, state::write_atomically};

/// Errors kept per report (the controller refuses more than 32).
pub const MAX_ERRORS: usize = 32;

/// One measurement: a report without its delivery fields (counter, `sentAt`), which are set
/// when it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When the figures were taken, Unix ms.
    pub measured_at: i64,
    /// The node's ENR then.
    pub enr: String,
    /// Roles then.
    pub roles: Vec<String>,
    /// Shards then.
    pub shards: Vec<u16>,
    /// Cluster.
    pub cluster_id: Option<u16>,
    /// The figures.
    pub figures: Figures,
}

impl Measurement {
    /// Folds `newer` into `self`: the newer state and figures, all errors (the newest
    /// [`MAX_ERRORS`]), the highest restart count, message rates averaged over both, and
    /// `merged`/`measuredFrom` saying what the summary covers.
    pub fn merge(self, newer: Self) -> Self {
        let count = |m: &Self| m.figures.merged.unwrap_or(1);
        let (old_n, new_n) = (count(&self), count(&newer));
        let from = self.figures.measured_from.unwrap_or(self.measured_at);
        let mean = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => {
                Some((a * f64::from(old_n) + b * f64::from(new_n)) / f64::from(old_n + new_n))
            }
            (a, b) => b.or(a),
        };
        let mut errors = self.figures.errors;
        errors.extend(newer.figures.errors.iter().cloned());
        if errors.len() > MAX_ERRORS {
            errors.drain(..errors.len() - MAX_ERRORS);
        }
        let figures = Figures {
            errors,
            restarts: newer.figures.restarts.max(self.figures.restarts),
            messages_in_per_sec: mean(
                self.figures.messages_in_per_sec,
                newer.figures.messages_in_per_sec,
            ),
            messages_out_per_sec: mean(
                self.figures.messages_out_per_sec,
                newer.figures.messages_out_per_sec,
            ),
            store_probe: newer.figures.store_probe.clone().or(self.figures.store_probe),
            config: newer.figures.config.clone().or(self.figures.config),
            merged: Some(old_n.saturating_add(new_n)),
            measured_from: Some(from),
            ..newer.figures
        };
        Self { figures, ..newer }
    }
}

/// The queue.
#[derive(Debug)]
pub struct ReportQueue {
    dir: PathBuf,
    limit: usize,
    entries: VecDeque<u64>,
    next_seq: u64,
    merges: u64,
    bad: u64,
}

impl ReportQueue {
    /// Opens (creating) `dir`, holding at most `limit` (≥ 2) entries.
    pub fn open(dir: &Path, limit: usize) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(AgentError::disk(dir))?;
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(AgentError::disk(dir))? {
            let path = entry.map_err(AgentError::disk(dir))?.path();
            let seq = path
                .extension()
                .is_some_and(|e| e == "json")
                .then(|| path.file_stem()?.to_str()?.parse::<u64>().ok())
                .flatten();
            if let Some(seq) = seq {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let next_seq = seqs.last().map_or(1, |s| s + 1);
        let mut queue = Self {
            dir: dir.to_owned(),
            limit: limit.max(2),
            entries: seqs.into(),
            next_seq,
            merges: 0,
            bad: 0,
        };
        while queue.entries.len() > queue.limit {
            queue.merge_oldest()?;
        }
        Ok(queue)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Merges done because the queue was full, since opening.
    pub fn merges(&self) -> u64 {
        self.merges
    }

    /// Unreadable entries set aside, since opening.
    pub fn bad(&self) -> u64 {
        self.bad
    }

    /// Appends `measurement`; merges the two oldest first when full.
    pub fn push(&mut self, measurement: &Measurement) -> Result<(), AgentError> {
        while self.entries.len() >= self.limit {
            self.merge_oldest()?;
        }
        let seq = self.next_seq;
        self.write(seq, measurement)?;
        self.next_seq += 1;
        self.entries.push_back(seq);
        Ok(())
    }

    /// The oldest entry, without removing it. Unreadable entries are set aside on the way.
    pub fn front(&mut self) -> Result<Option<(u64, Measurement)>, AgentError> {
        while let Some(&seq) = self.entries.front() {
            if let Some(measurement) = self.read(seq)? {
                return Ok(Some((seq, measurement)));
            }
            self.entries.pop_front();
        }
        Ok(None)
    }

    /// Removes entry `seq` (delivered).
    pub fn remove(&mut self, seq: u64) -> Result<(), AgentError> {
        let path = self.path(seq);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::disk(&path)(e)),
        }
        self.entries.retain(|&s| s != seq);
        Ok(())
    }

    fn merge_oldest(&mut self) -> Result<(), AgentError> {
        let Some((first, older)) = self.front()? else { return Ok(()) };
        self.entries.pop_front();
        let Some((second, newer)) = self.front()? else {
            self.entries.push_front(first);
            return Ok(());
        };
        // The summary takes the older entry's place in the order; the newer file goes.
        self.write(first, &older.merge(newer))?;
        self.entries.pop_front();
        self.entries.push_front(first);
        let path = self.path(second);
        std::fs::remove_file(&path).map_err(AgentError::disk(&path))?;
        self.merges += 1;
        Ok(())
    }

    fn write(&self, seq: u64, measurement: &Measurement) -> Result<(), AgentError> {
        let path = self.path(seq);
        let bytes = serde_json::to_vec(measurement)
            .map_err(|e| AgentError::Corrupt { path: path.clone(), message: e.to_string() })?;
        write_atomically(&path, &bytes)
    }

    /// Reads `seq`; an unreadable file is renamed to `*.bad` and `None` returned.
    fn read(&mut self, seq: u64) -> Result<Option<Measurement>, AgentError> {
        let path = self.path(seq);
        let bytes = std::fs::read(&path).map_err(AgentError::disk(&path))?;
        match serde_json::from_slice(&bytes) {
            Ok(measurement) => Ok(Some(measurement)),
            Err(error) => {
                tracing::error!(target: "agent::queue", path = %path.display(), %error, "unreadable queued report set aside");
                self.bad += 1;
                std::fs::rename(&path, path.with_extension("bad"))
                    .map_err(AgentError::disk(&path))?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(at: i64, error: &str) -> Measurement {
        Measurement {
            measured_at: at,
            enr: "enr:x".into(),
            roles: vec!["relay".into()],
            shards: vec![0],
            cluster_id: Some(1),
            figures: Figures {
                errors: vec![error.into()],
                restarts: Some(u64::try_from(at).unwrap()),
                messages_in_per_sec: Some(at as f64),
                ..Figures::default()
            },
        }
    }

    #[test]
    fn keeps_order_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = ReportQueue::open(dir.path(), 10).unwrap();
        for at in 1..=5 {
            queue.push(&measurement(at, "e")).unwrap();
        }
        let (seq, first) = queue.front().unwrap().unwrap();
        assert_eq!(first.measured_at, 1);
        queue.remove(seq).unwrap();
        drop(queue);
        let mut queue = ReportQueue::open(dir.path(), 10).unwrap();
        assert_eq!(queue.len(), 4);
        queue.push(&measurement(6, "e")).unwrap();
        let mut seen = Vec::new();
        while let Some((seq, m)) = queue.front().unwrap() {
            seen.push(m.measured_at);
            queue.remove(seq).unwrap();
        }
        assert_eq!(seen, [2, 3, 4, 5, 6]);
    }

    #[test]
    fn full_queue_merges_the_oldest_and_loses_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = ReportQueue::open(dir.path(), 3).unwrap();
        for at in 1..=6 {
            queue.push(&measurement(at, &format!("e{at}"))).unwrap();
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.merges(), 3);
        let (seq, oldest) = queue.front().unwrap().unwrap();
        assert_eq!(oldest.figures.merged, Some(4), "1..=4 folded into one");
        assert_eq!(oldest.figures.measured_from, Some(1));
        assert_eq!(oldest.measured_at, 4);
        assert_eq!(oldest.figures.errors, ["e1", "e2", "e3", "e4"]);
        assert_eq!(oldest.figures.restarts, Some(4));
        assert_eq!(oldest.figures.messages_in_per_sec, Some(2.5));
        queue.remove(seq).unwrap();
        let rest: Vec<i64> = std::iter::from_fn(|| {
            let (seq, m) = queue.front().unwrap()?;
            queue.remove(seq).unwrap();
            Some(m.measured_at)
        })
        .collect();
        assert_eq!(rest, [5, 6]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file left behind");
    }

    #[test]
    fn unreadable_entries_are_set_aside_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = ReportQueue::open(dir.path(), 10).unwrap();
        queue.push(&measurement(1, "e")).unwrap();
        queue.push(&measurement(2, "e")).unwrap();
        std::fs::write(dir.path().join(format!("{:020}.json", 1)), b"not json").unwrap();
        let (_, front) = queue.front().unwrap().unwrap();
        assert_eq!(front.measured_at, 2);
        assert_eq!(queue.bad(), 1);
        assert!(dir.path().join(format!("{:020}.bad", 1)).exists());
    }
}
