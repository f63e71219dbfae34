//! The TXT records a file publisher keeps for one zone — the records of its zone file, or the
//! records its change-set files leave at a cloud provider once applied — and what a change set
//! really does to them.
//!
//! Tree zones have one TXT record per name, so a record set maps each name to one record.
//! Planning against it is what makes the file publishers idempotent: a creation or update that
//! is already in place, or a deletion of something already gone, plans nothing, so a change set
//! applied again after a crash writes nothing new.
//!
//! - Create or Update of a name with no record → [`Op::Create`] (Update: [`Op::Replace`] with
//!   no old record, since the controller believes one exists somewhere).
//! - Create or Update of a name holding exactly that record (text and TTL) → nothing.
//! - Create or Update of a name holding another record → [`Op::Replace`].
//! - Delete → [`Op::Delete`] of the record held, if its text is the one to delete (like an RFC
//!   2136 deletion of one RR); otherwise nothing. The op carries the record as held, TTL
//!   included, because Route53 deletes only on an exact match.

use std::collections::BTreeMap;

use super::{
    RecordChange,
    changes::ChangeSet,
    zone::{TxtRecord, is_plain_name, relative_to},
};

/// Most records one zone may hold in a file publisher. A tree that a client can walk within
/// its lookup limit (50,000 lookups) stays well below.
pub(crate) const MAX_RECORDS: usize = 100_000;

/// One effective change, in the terms every file format can express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A new name.
    Create(TxtRecord),
    /// A name's record is replaced; `old` is the record held, if known.
    Replace {
        /// The record held before, if the publisher knows it.
        old: Option<TxtRecord>,
        /// The record after.
        new: TxtRecord,
    },
    /// The record is removed.
    Delete(TxtRecord),
}

impl Op {
    /// The name the op is about.
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Create(r) | Self::Replace { new: r, .. } | Self::Delete(r) => &r.name,
        }
    }
}

/// The records of one zone, one per name (names compared case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordSet {
    records: BTreeMap<String, TxtRecord>,
}

impl RecordSet {
    /// A set of `records`; a later record of the same name replaces an earlier one.
    pub(crate) fn from_records(records: impl IntoIterator<Item = TxtRecord>) -> Self {
        let mut set = Self::default();
        for record in records {
            set.records.insert(record.name.to_ascii_lowercase(), record);
        }
        set
    }

    /// The record at `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&TxtRecord> {
        self.records.get(&name.to_ascii_lowercase())
    }

    /// The records, sorted by lower-cased name.
    pub(crate) fn records(&self) -> impl Iterator<Item = &TxtRecord> {
        self.records.values()
    }

    /// How many records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// What `changes` really does to this set, in the change set's order, and the set after;
    /// an error if the set would grow past [`MAX_RECORDS`].
    pub(crate) fn plan(&self, changes: &ChangeSet) -> Result<(Vec<Op>, Self), String> {
        let mut after = self.clone();
        let mut ops = Vec::new();
        for change in &changes.changes {
            let wanted = change.record();
            let held = after.get(&wanted.name);
            let op = match change {
                RecordChange::Create(_) | RecordChange::Update(_) => match held {
                    Some(held) if held.text == wanted.text && held.ttl == wanted.ttl => None,
                    Some(held) => {
                        Some(Op::Replace { old: Some(held.clone()), new: wanted.clone() })
                    }
                    None if matches!(change, RecordChange::Update(_)) => {
                        Some(Op::Replace { old: None, new: wanted.clone() })
                    }
                    None => Some(Op::Create(wanted.clone())),
                },
                RecordChange::Delete(_) => match held {
                    Some(held) if held.text == wanted.text => Some(Op::Delete(held.clone())),
                    _ => None,
                },
            };
            if let Some(op) = op {
                after.apply(&op);
                ops.push(op);
            }
        }
        if after.len() > MAX_RECORDS {
            return Err(format!("{} records in one zone; at most {MAX_RECORDS}", after.len()));
        }
        Ok((ops, after))
    }

    /// Applies one op.
    pub(crate) fn apply(&mut self, op: &Op) {
        match op {
            Op::Create(r) | Op::Replace { new: r, .. } => {
                self.records.insert(r.name.to_ascii_lowercase(), r.clone());
            }
            Op::Delete(r) => {
                self.records.remove(&r.name.to_ascii_lowercase());
            }
        }
    }
}

/// Checks what every file format needs of a change set: a plain origin, plain names inside it,
/// printable ASCII text (no format below needs escapes beyond `\"` and `\\` then) that fits one
/// TXT RDATA. Returns what is wrong.
pub(crate) fn check_change_set(changes: &ChangeSet) -> Result<(), String> {
    let origin = changes.origin.trim_end_matches('.');
    if !is_plain_name(origin) {
        return Err(format!("zone origin {:?} is not a plain DNS name", changes.origin));
    }
    for change in &changes.changes {
        let record = change.record();
        if !is_plain_name(&record.name) {
            return Err(format!("{:?} is not a plain DNS name", record.name));
        }
        if relative_to(&record.name, origin).is_none() {
            return Err(format!("{} is outside the zone {origin}", record.name));
        }
        if let Some(bad) = record.text.bytes().find(|b| !(0x20..=0x7e).contains(b)) {
            return Err(format!(
                "TXT value of {} has byte {bad:#04x}; only printable ASCII is published",
                record.name
            ));
        }
        // Each ≤255-byte string costs a length byte; RDATA is at most 65,535 bytes.
        let rdata = record.text.len() + record.text.len().div_ceil(255).max(1);
        if rdata > usize::from(u16::MAX) {
            return Err(format!("TXT value of {} is too long ({rdata} bytes)", record.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::publish::zone::TxtZone;

    fn zone(serial: u32, records: &[(&str, u32, &str)]) -> TxtZone {
        let mut zone = TxtZone::new("fleet.test", serial);
        for (name, ttl, text) in records {
            zone.push(name, *ttl, *text);
        }
        zone
    }

    #[test]
    fn a_change_set_applied_twice_plans_nothing_the_second_time() {
        let old = zone(1, &[("fleet.test", 60, "root1"), ("A.fleet.test", 600, "a")]);
        let new = zone(2, &[("fleet.test", 60, "root2"), ("B.fleet.test", 600, "b")]);
        let set = ChangeSet::between(Some(&old), &new);
        let held = RecordSet::from_records(old.records.clone());

        let (ops, after) = held.plan(&set.additions()).unwrap();
        assert_eq!(
            ops,
            [
                Op::Create(new.records[1].clone()),
                Op::Replace { old: Some(old.records[0].clone()), new: new.records[0].clone() },
            ]
        );
        assert!(after.plan(&set.additions()).unwrap().0.is_empty(), "additions again: nothing");

        let (ops, after) = after.plan(&set.deletions()).unwrap();
        assert_eq!(ops, [Op::Delete(old.records[1].clone())]);
        assert!(after.plan(&set.deletions()).unwrap().0.is_empty(), "deletions again: nothing");
        assert_eq!(after, RecordSet::from_records(new.records.clone()));
    }

    #[test]
    fn deletions_take_the_held_record_and_updates_of_unknown_names_replace() {
        // Held with another TTL: the deletion must name the record as held.
        let held = RecordSet::from_records([TxtRecord {
            name: "a.FLEET.test".into(),
            ttl: 3333,
            text: "a".into(),
        }]);
        let delete = ChangeSet {
            origin: "fleet.test".into(),
            serial: 1,
            changes: vec![RecordChange::Delete(TxtRecord {
                name: "A.fleet.test".into(),
                ttl: 60,
                text: "a".into(),
            })],
        };
        let (ops, _) = held.plan(&delete).unwrap();
        assert!(matches!(&ops[..], [Op::Delete(r)] if r.ttl == 3333), "{ops:?}");

        // Another value held: not ours to delete.
        let other = RecordSet::from_records([TxtRecord {
            name: "a.fleet.test".into(),
            ttl: 60,
            text: "other".into(),
        }]);
        assert!(other.plan(&delete).unwrap().0.is_empty());

        let update = ChangeSet {
            changes: vec![RecordChange::Update(TxtRecord {
                name: "fleet.test".into(),
                ttl: 60,
                text: "root".into(),
            })],
            ..delete
        };
        let (ops, _) = RecordSet::default().plan(&update).unwrap();
        assert!(matches!(&ops[..], [Op::Replace { old: None, .. }]), "{ops:?}");
    }

    #[test]
    fn change_sets_with_unpublishable_records_are_refused() {
        let ok = zone(1, &[("fleet.test", 60, "root"), ("A.fleet.test", 60, "x")]);
        assert!(check_change_set(&ChangeSet::between(None, &ok)).is_ok());
        for (records, expect) in [
            (vec![("other.test", 60, "x")], "outside the zone"),
            (vec![("a b.fleet.test", 60, "x")], "not a plain DNS name"),
            (vec![("A.fleet.test", 60, "caf\u{e9}")], "printable ASCII"),
            (vec![("A.fleet.test", 60, "tab\there")], "printable ASCII"),
        ] {
            let mut zone = TxtZone::new("fleet.test", 1);
            for (name, ttl, text) in records {
                zone.push(name, ttl, text);
            }
            let error = check_change_set(&ChangeSet::between(None, &zone)).unwrap_err();
            assert!(error.contains(expect), "{error}");
        }
        let long = zone(1, &[("A.fleet.test", 60, &"x".repeat(65_300))]);
        assert!(
            check_change_set(&ChangeSet::between(None, &long)).unwrap_err().contains("too long")
        );
    }
}
