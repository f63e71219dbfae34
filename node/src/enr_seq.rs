//! A node's ENR sequence number across restarts. A record whose content changed (shards,
//! addresses, capabilities) must carry a higher `seq`, or peers that hold the old one — discv5
//! tables, peer-exchange caches, the controller's registry — keep it: they only take a record
//! whose `seq` is greater than the one they know. The newest record is kept in a file; the
//! next start reuses its `seq` when nothing changed and takes the next one when anything did.

use std::path::Path;

/// The `seq` for a freshly built record (built with any `seq`), given the newest one kept.
pub fn next_seq(kept: Option<&discv5::Enr>, fresh: &discv5::Enr) -> u64 {
    match kept {
        None => 1,
        Some(kept) if same_content(kept, fresh) => kept.seq().max(1),
        Some(kept) => kept.seq().saturating_add(1),
    }
}

/// Whether two records say the same: every key and value, the key included; `seq` and the
/// signature aside.
pub fn same_content(a: &discv5::Enr, b: &discv5::Enr) -> bool {
    a.iter().eq(b.iter())
}

/// The record kept in `path`. Missing: `None`. Unreadable or not a record: `None` too, with a
/// warning — the node still starts (it may then reuse a `seq` peers saw before).
pub fn read_kept(path: &Path) -> Option<discv5::Enr> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(target: "node::enr", path = %path.display(), %error, "cannot read the kept ENR; its seq starts again at 1");
            return None;
        }
    };
    match text.trim().parse::<discv5::Enr>() {
        Ok(enr) => Some(enr),
        Err(error) => {
            tracing::warn!(target: "node::enr", path = %path.display(), %error, "the kept ENR is not a record; its seq starts again at 1");
            None
        }
    }
}

/// Keeps `enr` in `path`, replacing the file atomically (a crash leaves the old one or the new
/// one, never half of either).
pub fn keep(path: &Path, enr: &discv5::Enr) -> std::io::Result<()> {
    crate::atomic_file::replace(path, format!("{}\n", enr.to_base64()).as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::waku_enr::{RelayShards, WakuEnrConfig, build_enr};

    fn record(key: &enr::CombinedKey, seq: u64, shards: Vec<u16>) -> discv5::Enr {
        let config = WakuEnrConfig {
            seq,
            ip: Some([127, 0, 0, 1].into()),
            tcp: Some(60_000),
            shards: Some(RelayShards::new(1, shards)),
            ..WakuEnrConfig::default()
        };
        build_enr(key, &config).unwrap()
    }

    #[test]
    fn seq_rises_only_when_the_record_changes() {
        let key = enr::CombinedKey::from(crate::crypto::generate_key());
        assert_eq!(next_seq(None, &record(&key, 1, vec![0])), 1);
        let kept = record(&key, 4, vec![0]);
        assert_eq!(next_seq(Some(&kept), &record(&key, 1, vec![0])), 4, "same content");
        assert_eq!(next_seq(Some(&kept), &record(&key, 1, vec![0, 3])), 5, "new shards");
        let other = enr::CombinedKey::from(crate::crypto::generate_key());
        assert_eq!(next_seq(Some(&kept), &record(&other, 1, vec![0])), 5, "another key");
    }

    #[test]
    fn the_kept_record_survives_a_round_trip_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.enr");
        assert!(read_kept(&path).is_none());
        let key = enr::CombinedKey::from(crate::crypto::generate_key());
        let enr = record(&key, 7, vec![2]);
        keep(&path, &enr).unwrap();
        assert_eq!(read_kept(&path), Some(enr));
        std::fs::write(&path, "enr:not-a-record").unwrap();
        assert!(read_kept(&path).is_none());
    }
}
