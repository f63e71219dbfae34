//! What the agent must remember across restarts: whether (and as which node) it enrolled,
//! and the last report counter it used, so a restarted agent never replays a counter.
//!
//! `state.json` in the data directory, replaced atomically (write, sync, rename). Counters are
//! reserved in blocks of [`COUNTER_BLOCK`] *before* they are used: the file says "every counter
//! up to here may have been used", so a restarted agent starts above it. A crash skips at most
//! a block of numbers, which the controller accepts; a number is never used twice. One write
//! per block instead of one per report keeps a backlog's delivery off the disk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AgentError;

/// Counters reserved per write of the state file.
pub const COUNTER_BLOCK: u64 = 64;

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// The node id the controller enrolled, hex; `None` until enrolment succeeds.
    pub enrolled_node_id: Option<String>,
    /// The controller that enrolled it.
    pub controller: Option<String>,
    /// When, Unix ms.
    pub enrolled_at: Option<i64>,
    /// Every counter up to this one may have been used.
    pub counter: u64,
}

/// The state file.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: AgentState,
    /// The last counter used (≤ `state.counter`, the reserved mark).
    used: u64,
}

impl StateFile {
    /// Opens `dir/state.json`, or starts empty when there is none.
    pub fn open(dir: &Path) -> Result<Self, AgentError> {
        let path = dir.join("state.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AgentError::Corrupt { path: path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AgentState::default(),
            Err(e) => return Err(AgentError::disk(&path)(e)),
        };
        Ok(Self { path, used: state.counter, state })
    }

    /// The state.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// Records the enrolment.
    pub fn set_enrolled(
        &mut self,
        node_id: &str,
        controller: &str,
        at: i64,
    ) -> Result<(), AgentError> {
        self.state.enrolled_node_id = Some(node_id.to_owned());
        self.state.controller = Some(controller.to_owned());
        self.state.enrolled_at = Some(at);
        self.save()
    }

    /// Forgets the enrolment (the controller no longer knows the node).
    pub fn clear_enrolment(&mut self) -> Result<(), AgentError> {
        self.state.enrolled_node_id = None;
        self.state.enrolled_at = None;
        self.save()
    }

    /// The next counter, reserved on disk before it is returned.
    pub fn next_counter(&mut self) -> Result<u64, AgentError> {
        let next = self.used + 1;
        if next > self.state.counter {
            self.state.counter = next + COUNTER_BLOCK - 1;
            self.save()?;
        }
        self.used = next;
        Ok(next)
    }

    /// Moves the counter up to at least `counter` (the controller has seen higher ones).
    pub fn raise_counter(&mut self, counter: u64) -> Result<(), AgentError> {
        self.used = self.used.max(counter);
        if counter > self.state.counter {
            self.state.counter = counter;
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| AgentError::Corrupt { path: self.path.clone(), message: e.to_string() })?;
        write_atomically(&self.path, &bytes)
    }
}

/// Replaces `path` with `bytes` whole (see [`node::atomic_file`]).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    node::atomic_file::replace(path, bytes).map_err(AgentError::disk(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_enrolment_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = StateFile::open(dir.path()).unwrap();
        assert_eq!(file.state(), &AgentState::default());
        assert_eq!(file.next_counter().unwrap(), 1);
        assert_eq!(file.next_counter().unwrap(), 2);
        file.set_enrolled("ab", "http://c", 5).unwrap();
        file.raise_counter(1).unwrap();
        let mut again = StateFile::open(dir.path()).unwrap();
        assert_eq!(again.state().enrolled_node_id.as_deref(), Some("ab"));
        assert_eq!(
            again.next_counter().unwrap(),
            COUNTER_BLOCK + 1,
            "a restart starts above every reserved counter"
        );
        again.raise_counter(1000).unwrap();
        assert_eq!(again.next_counter().unwrap(), 1001);
        assert_eq!(
            StateFile::open(dir.path()).unwrap().next_counter().unwrap(),
            1001 + COUNTER_BLOCK
        );
        std::fs::write(dir.path().join("state.json"), b"{garbage").unwrap();
        let error = StateFile::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("state.json: unreadable"), "{error}");
    }
}
