//! Publication as Amazon Route 53 change batches: each [`Publisher::apply`] writes the next
//! numbered JSON file(s) into a directory, each the `ChangeBatch` of one
//! `ChangeResourceRecordSets` request, for the operator to apply in file order:
//!
//! ```text
//! aws route53 change-resource-record-sets --hosted-zone-id Z0123456789ABCDEFGHIJ \
//!     --change-batch file://000007-route53-nodes.example.org.json
//! ```
//!
//! ```json
//! { "Comment": "wakufleet nodes.example.org serial 7, part 1 of 1 (hosted zone Z0123…)",
//!   "Changes": [ { "Action": "CREATE",
//!                  "ResourceRecordSet": { "Name": "fvy6….nodes.example.org.", "Type": "TXT",
//!                                         "TTL": 86400,
//!                                         "ResourceRecords": [ { "Value": "\"enr:…\" \"…\"" } ] } } ] }
//! ```
//!
//! Route 53 applies a batch atomically, checks each action against the zone (CREATE fails on
//! an existing record set, DELETE unless name, type, TTL and values all match), and limits a
//! batch to 1,000 `ResourceRecord` elements and 32,000 characters of `Value`s, an UPSERT
//! counting twice. So, as geth's Route 53 deployer does:
//!
//! - new names are CREATEd, changed names UPSERTed, stale names DELETEd with the value and TTL
//!   they were created with, in the change set's order: leaves, then the root, then deletions
//!   (which the controller sends separately, after the old root's TTL);
//! - a change set over the limits is cut into several files in that order, and a name never
//!   appears twice in one batch;
//! - each TXT value is its ≤255-byte character-strings, each quoted (`"…" "…"`), at most 4,000
//!   characters.
//!
//! The directory's state (see the private `change_files` module) is what the zone holds once
//! every file so far is applied, so a change set applied again writes nothing, and a crash
//! between files repeats none. Names are written in lower case with the trailing dot, as Route
//! 53 lists them. The publisher assumes the zone holds none of the tree's names when its first
//! file is applied; a CREATE of a name that exists fails loudly rather than overwriting it.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use node::enrtree::zone::quote_txt;
use serde::Serialize;

use super::{
    ChangeSet, PublishError, Publisher,
    change_files::Series,
    files,
    record_set::{Op, check_change_set},
    zone::TxtRecord,
};

/// Route 53's limit on `ResourceRecord` elements in one request (an UPSERT's count double).
pub const MAX_BATCH_RECORDS: usize = 1_000;
/// Route 53's limit on the characters of all `Value` elements in one request (an UPSERT's
/// count double).
pub const MAX_BATCH_VALUE_CHARS: usize = 32_000;
/// Route 53's limit on one `Value` element.
pub const MAX_VALUE_CHARS: usize = 4_000;
/// Route 53's largest TTL (2^31 − 1 s).
pub const MAX_TTL: u32 = i32::MAX as u32;
/// Route 53's limit on the `Comment`.
const MAX_COMMENT: usize = 256;

/// A bad Route 53 publisher configuration.
#[derive(Debug, thiserror::Error)]
pub enum Route53ConfigError {
    /// Not a hosted zone id (`Z` and up to 31 more capital letters and digits).
    #[error("{0:?} is not a Route 53 hosted zone id")]
    HostedZoneId(String),
}

/// Writes Route 53 change-batch files.
#[derive(Debug, Clone)]
pub struct Route53ChangeSetPublisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    hosted_zone_id: Option<String>,
    /// One apply at a time: each continues the numbering and state the last one left.
    lock: Mutex<()>,
}

impl Route53ChangeSetPublisher {
    /// A publisher writing into `dir` (created on first use). The hosted zone id, if given
    /// (`Z…` or `/hostedzone/Z…`), is only named in each batch's `Comment` for the operator.
    pub fn new(dir: PathBuf, hosted_zone_id: Option<String>) -> Result<Self, Route53ConfigError> {
        let hosted_zone_id = hosted_zone_id
            .map(|id| {
                let bare = id.trim().trim_start_matches("/hostedzone/");
                let valid = bare.len() <= 32
                    && bare.starts_with('Z')
                    && bare.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if valid { Ok(bare.to_owned()) } else { Err(Route53ConfigError::HostedZoneId(id)) }
            })
            .transpose()?;
        Ok(Self { inner: Arc::new(Inner { dir, hosted_zone_id, lock: Mutex::new(()) }) })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Publisher for Route53ChangeSetPublisher {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn apply<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<(), PublishError>> {
        let (inner, changes) = (self.inner.clone(), changes.clone());
        files::in_background(self.inner.dir.clone(), move || inner.apply(&changes))
    }
}

/// The request body of `ChangeResourceRecordSets`, as the AWS CLI's `--change-batch` takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeBatch {
    comment: String,
    changes: Vec<Change>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Change {
    action: Action,
    resource_record_set: ResourceRecordSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Action {
    Create,
    Upsert,
    Delete,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceRecordSet {
    name: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "TTL")]
    ttl: u32,
    resource_records: Vec<ResourceRecord>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceRecord {
    value: String,
}

impl Change {
    fn new(action: Action, record: &TxtRecord) -> Self {
        Self {
            action,
            resource_record_set: ResourceRecordSet {
                name: format!("{}.", record.name.to_ascii_lowercase()),
                kind: "TXT",
                ttl: record.ttl,
                resource_records: vec![ResourceRecord { value: quote_txt(&record.text) }],
            },
        }
    }

    /// What the change costs against the batch limits: records and value characters.
    fn cost(&self) -> (usize, usize) {
        let factor = if self.action == Action::Upsert { 2 } else { 1 };
        let records = &self.resource_record_set.resource_records;
        (records.len() * factor, records.iter().map(|r| r.value.len()).sum::<usize>() * factor)
    }
}

impl Inner {
    fn name(&self) -> String {
        match &self.hosted_zone_id {
            Some(id) => format!("route53-files:{id}:{}", self.dir.display()),
            None => format!("route53-files:{}", self.dir.display()),
        }
    }

    fn invalid(&self, message: String) -> PublishError {
        PublishError::Invalid { target: self.name(), message }
    }

    fn apply(&self, changes: &ChangeSet) -> Result<(), PublishError> {
        check_change_set(changes).map_err(|m| self.invalid(m))?;
        if let Some(r) = changes.changes.iter().map(|c| c.record()).find(|r| r.ttl > MAX_TTL) {
            return Err(self.invalid(format!("TTL {} of {} exceeds {MAX_TTL}", r.ttl, r.name)));
        }
        let origin = changes.origin.trim_end_matches('.');
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (series, mut ledger) = Series::open(&self.dir, "route53", origin)?;
        let (ops, _) = ledger.records.plan(changes).map_err(|m| self.invalid(m))?;
        let batches = self.batches(&ops)?;
        let total = batches.len();
        for (index, batch) in batches.into_iter().enumerate() {
            let mut comment = format!(
                "wakufleet {origin} serial {}, part {} of {total}",
                changes.serial,
                index + 1
            );
            if let Some(id) = &self.hosted_zone_id {
                comment.push_str(&format!(" (hosted zone {id})"));
            }
            // ASCII throughout (plain names), so any cut is on a character boundary.
            comment.truncate(MAX_COMMENT);
            let (batch_ops, batch_changes): (Vec<&Op>, Vec<Change>) = batch.into_iter().unzip();
            let bytes = serde_json::to_vec_pretty(&ChangeBatch { comment, changes: batch_changes })
                .map_err(|e| self.invalid(format!("cannot encode the batch: {e}")))?;
            let mut records = ledger.records.clone();
            for op in &batch_ops {
                records.apply(op);
            }
            let path = series.write(&mut ledger, &records, &bytes)?;
            tracing::info!(target: "ctl::route53", file = %path.display(), changes = batch_ops.len(),
                "change batch written");
        }
        Ok(())
    }

    /// The ops as Route 53 changes, cut into batches within the limits, in order, with each
    /// name at most once per batch.
    fn batches<'a>(&self, ops: &'a [Op]) -> Result<Vec<Vec<(&'a Op, Change)>>, PublishError> {
        let mut batches = Vec::new();
        let mut batch: Vec<(&Op, Change)> = Vec::new();
        let (mut records, mut chars) = (0, 0);
        for op in ops {
            let change = match op {
                Op::Create(r) => Change::new(Action::Create, r),
                Op::Replace { new, .. } => Change::new(Action::Upsert, new),
                Op::Delete(held) => Change::new(Action::Delete, held),
            };
            let value_chars = change.resource_record_set.resource_records[0].value.len();
            if value_chars > MAX_VALUE_CHARS {
                return Err(self.invalid(format!(
                    "TXT value of {} is {value_chars} characters quoted; Route 53 takes {MAX_VALUE_CHARS}",
                    op.name()
                )));
            }
            let (r, c) = change.cost();
            let repeated = batch.iter().any(|(o, _)| o.name().eq_ignore_ascii_case(op.name()));
            if !batch.is_empty()
                && (records + r > MAX_BATCH_RECORDS
                    || chars + c > MAX_BATCH_VALUE_CHARS
                    || repeated)
            {
                batches.push(std::mem::take(&mut batch));
                (records, chars) = (0, 0);
            }
            records += r;
            chars += c;
            batch.push((op, change));
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hosted_zone_ids_are_checked() {
        let dir = PathBuf::from("out");
        let ok = Route53ChangeSetPublisher::new(dir.clone(), Some("/hostedzone/Z0123ABC".into()))
            .unwrap();
        assert_eq!(ok.name(), "route53-files:Z0123ABC:out");
        assert!(Route53ChangeSetPublisher::new(dir.clone(), None).is_ok());
        for bad in ["z0123", "Z01-23", "", &format!("Z{}", "1".repeat(32))] {
            assert!(
                matches!(
                    Route53ChangeSetPublisher::new(dir.clone(), Some(bad.into())),
                    Err(Route53ConfigError::HostedZoneId(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn batches_stay_within_the_limits_and_keep_names_apart() {
        let publisher = Route53ChangeSetPublisher::new("out".into(), None).unwrap();
        let record = |i: usize, len: usize| TxtRecord {
            name: format!("L{i:04}.fleet.test"),
            ttl: 60,
            text: "x".repeat(len),
        };
        // 300 values of ~400 quoted characters: 120,000 characters, at least 4 batches.
        let mut ops: Vec<Op> = (0..300).map(|i| Op::Create(record(i, 395))).collect();
        ops.push(Op::Replace { old: None, new: record(1000, 100) });
        ops.push(Op::Delete(record(1000, 100)));
        let batches = publisher.inner.batches(&ops).unwrap();
        assert!(batches.len() >= 4, "{}", batches.len());
        let mut seen = 0;
        for batch in &batches {
            let (records, chars) = batch.iter().fold((0, 0), |(r, c), (_, change)| {
                let (dr, dc) = change.cost();
                (r + dr, c + dc)
            });
            assert!(records <= MAX_BATCH_RECORDS && chars <= MAX_BATCH_VALUE_CHARS);
            for (op, _) in batch {
                assert_eq!(*op, &ops[seen], "order kept");
                seen += 1;
            }
        }
        assert_eq!(seen, ops.len());
        // The UPSERT and the DELETE of one name are never in one batch.
        let last = batches.last().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].1.action, Action::Delete);

        let too_long = [Op::Create(record(1, 3_990))];
        assert!(matches!(publisher.inner.batches(&too_long), Err(PublishError::Invalid { .. })));
    }
}
