//! Change sets between two published record sets of one DNS zone.
//!
//! Order matters for clients resolving while we publish: new leaves are created first (a new
//! root must never point at a name that does not resolve yet), then roots are updated, and
//! stale leaves are deleted last — and the controller deletes them only once the old root's
//! TTL has passed. geth's Route53 deployer uses the same create → update → delete order.

use std::collections::BTreeMap;

use super::zone::{TxtRecord, TxtZone};

/// One record change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    /// A name that had no TXT record gets one.
    Create(TxtRecord),
    /// A name's TXT record set is replaced by this one record.
    Update(TxtRecord),
    /// A name's TXT record (the value it had) is removed.
    Delete(TxtRecord),
}

impl RecordChange {
    /// The record the change is about.
    pub fn record(&self) -> &TxtRecord {
        match self {
            Self::Create(r) | Self::Update(r) | Self::Delete(r) => r,
        }
    }
}

/// Ordered changes inside one zone: creations, then updates, then deletions, names sorted
/// within each group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// The zone apex the names live in, without the trailing dot.
    pub origin: String,
    /// The zone's serial after the change (SOA serial for servers that keep one).
    pub serial: u32,
    /// The changes, in application order.
    pub changes: Vec<RecordChange>,
}

impl ChangeSet {
    /// The changes that turn `old` into `new` (both in the zone `new.origin`). With no `old`,
    /// everything is created.
    pub fn between(old: Option<&TxtZone>, new: &TxtZone) -> Self {
        let before: BTreeMap<&str, &TxtRecord> = old
            .map(|z| z.records.iter().map(|r| (r.name.as_str(), r)).collect())
            .unwrap_or_default();
        let after: BTreeMap<&str, &TxtRecord> =
            new.records.iter().map(|r| (r.name.as_str(), r)).collect();
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut deletes = Vec::new();
        for (name, record) in &after {
            match before.get(name) {
                None => creates.push(RecordChange::Create((*record).clone())),
                Some(old) if old.text != record.text || old.ttl != record.ttl => {
                    updates.push(RecordChange::Update((*record).clone()))
                }
                Some(_) => {}
            }
        }
        for (name, record) in &before {
            if !after.contains_key(name) {
                deletes.push(RecordChange::Delete((*record).clone()));
            }
        }
        // The root (at the apex) goes last within creations and within updates, whatever its
        // name sorts like: it is what makes clients walk the new records.
        let is_root = |c: &RecordChange| c.record().name.eq_ignore_ascii_case(&new.origin);
        creates.sort_by_key(is_root);
        updates.sort_by_key(is_root);
        let mut changes = creates;
        changes.extend(updates);
        changes.extend(deletes);
        Self { origin: new.origin.clone(), serial: new.serial, changes }
    }

    /// The creations and updates only: what goes out at once.
    pub fn additions(&self) -> Self {
        Self {
            origin: self.origin.clone(),
            serial: self.serial,
            changes: self
                .changes
                .iter()
                .filter(|c| !matches!(c, RecordChange::Delete(_)))
                .cloned()
                .collect(),
        }
    }

    /// The deletions only: what goes out once the old root has expired from caches.
    pub fn deletions(&self) -> Self {
        Self {
            origin: self.origin.clone(),
            serial: self.serial,
            changes: self
                .changes
                .iter()
                .filter(|c| matches!(c, RecordChange::Delete(_)))
                .cloned()
                .collect(),
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(records: &[(&str, &str)]) -> TxtZone {
        let mut zone = TxtZone::new("fleet.test", 1);
        for (name, text) in records {
            zone.push(name, 60, *text);
        }
        zone
    }

    #[test]
    fn leaves_come_before_the_root_and_deletions_last() {
        let old = zone(&[("fleet.test", "root1"), ("a.fleet.test", "A"), ("b.fleet.test", "B")]);
        let new = zone(&[("fleet.test", "root2"), ("b.fleet.test", "B"), ("c.fleet.test", "C")]);
        let set = ChangeSet::between(Some(&old), &new);
        let kinds: Vec<(char, &str)> = set
            .changes
            .iter()
            .map(|c| match c {
                RecordChange::Create(r) => ('c', r.name.as_str()),
                RecordChange::Update(r) => ('u', r.name.as_str()),
                RecordChange::Delete(r) => ('d', r.name.as_str()),
            })
            .collect();
        assert_eq!(kinds, [('c', "c.fleet.test"), ('u', "fleet.test"), ('d', "a.fleet.test")]);
        assert_eq!(set.additions().changes.len(), 2);
        assert_eq!(set.deletions().changes.len(), 1);
        assert!(ChangeSet::between(Some(&new), &new).is_empty());
        assert_eq!(ChangeSet::between(None, &new).changes.len(), 3);
    }

    #[test]
    fn the_root_is_created_after_every_leaf_whatever_the_names_sort_like() {
        // "zz…" sorts after the apex "fleet.test", "A…" (upper case) before it.
        let mut new = TxtZone::new("fleet.test", 1);
        for name in ["zz.fleet.test", "fleet.test", "A.fleet.test", "FLEET.test"] {
            new.push(name, 60, name);
        }
        let set = ChangeSet::between(None, &new);
        let names: Vec<&str> = set.changes.iter().map(|c| c.record().name.as_str()).collect();
        assert_eq!(names, ["A.fleet.test", "zz.fleet.test", "FLEET.test", "fleet.test"]);
    }
}
