//! Publication as Cloudflare batch requests: each [`Publisher::apply`] writes the next
//! numbered JSON file(s) into a directory, each the body of one
//! `POST /zones/{zone_id}/dns_records/batch`, for the operator to send in file order.
//!
//! Cloudflare runs the four arrays of a batch in a fixed order — `deletes`, `patches`, `puts`,
//! `posts` — whatever order the body lists them in, and although one batch is one database
//! transaction, each record reaches the edge on its own. Both orders are wrong for a tree (a
//! new root could be served before its leaves, an old leaf deleted before the new root), so a
//! file never holds more than one kind of change:
//!
//! 1. `posts` files create the new names (leaves first, as in the change set);
//! 2. `patches` files change records in place (the root): a patch never leaves the name
//!    without a value, where a delete and a post could;
//! 3. `deletes` files remove stale records; the controller sends these separately, after the
//!    old root's TTL.
//!
//! A batch holds at most [`MAX_BATCH`] changes (Cloudflare's limit on the Free plan; paid plans
//! allow more), and a name appears at most once per file.
//!
//! # Record ids
//!
//! Cloudflare addresses patches and deletes by record id, which only Cloudflare knows. The
//! files therefore name each such record by what identifies it in a tree zone, and a resolve
//! step fills in the ids just before sending:
//!
//! - a `deletes` entry is `{"name", "type", "content"}`: the record with exactly that name, type
//!   and content (Cloudflare refuses identical records, so at most one matches);
//! - a `patches` entry is `{"name", "type", "content", "ttl"}`, the new values: the one TXT
//!   record at that name (a tree zone has one per name; none or several is an error);
//! - `posts` entries need no id; a file of posts is ready to send as it is.
//!
//! [`resolve_ids`] does this from the zone's records as
//! `GET /zones/{zone_id}/dns_records?type=TXT` lists them (`result`, all pages), turning each
//! delete into `{"id"}` and adding `"id"` to each patch. An unresolved file sent by mistake is
//! refused by Cloudflare as a whole (an entry without `id`), so nothing is half-applied.
//!
//! Content is the value's ≤255-byte character-strings, each quoted (`"…" "…"`), at most
//! [`MAX_CONTENT`] characters; TTLs must be 60–86,400 s (1 would mean "automatic"). Names are
//! lower case without the trailing dot, as Cloudflare lists them. As with Route 53, the
//! directory's state makes a repeated change set write nothing.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use node::enrtree::zone::quote_txt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    ChangeSet, PublishError, Publisher,
    change_files::Series,
    files,
    record_set::{Op, check_change_set},
    zone::{TxtRecord, unquote_txt},
};

/// Most changes in one batch: Cloudflare's limit on the Free plan (Pro and above: 3,500).
pub const MAX_BATCH: usize = 200;
/// Most characters of one TXT record's content.
pub const MAX_CONTENT: usize = 2_048;
/// Shortest TTL Cloudflare takes below Enterprise (1 means "automatic" and is not used).
pub const MIN_TTL: u32 = 60;
/// Longest TTL Cloudflare takes.
pub const MAX_TTL: u32 = 86_400;

/// A bad Cloudflare publisher configuration.
#[derive(Debug, thiserror::Error)]
pub enum CloudflareConfigError {
    /// Not a zone id (32 hexadecimal digits).
    #[error("{0:?} is not a Cloudflare zone id (32 hexadecimal digits)")]
    ZoneId(String),
}

/// Writes Cloudflare batch files.
#[derive(Debug, Clone)]
pub struct CloudflareChangeSetPublisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    zone_id: String,
    /// One apply at a time: each continues the numbering and state the last one left.
    lock: Mutex<()>,
}

impl CloudflareChangeSetPublisher {
    /// A publisher writing into `dir` (created on first use) the batches for the zone
    /// `zone_id`, which the files are posted to.
    pub fn new(dir: PathBuf, zone_id: &str) -> Result<Self, CloudflareConfigError> {
        let zone_id = zone_id.trim();
        if zone_id.len() != 32 || !zone_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CloudflareConfigError::ZoneId(zone_id.to_owned()));
        }
        let zone_id = zone_id.to_ascii_lowercase();
        Ok(Self { inner: Arc::new(Inner { dir, zone_id, lock: Mutex::new(()) }) })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The zone the files are for.
    pub fn zone_id(&self) -> &str {
        &self.inner.zone_id
    }
}

impl Publisher for CloudflareChangeSetPublisher {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn apply<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<(), PublishError>> {
        let (inner, changes) = (self.inner.clone(), changes.clone());
        files::in_background(self.inner.dir.clone(), move || inner.apply(&changes))
    }
}

/// One batch body; exactly one array is non-empty.
#[derive(Debug, Default, Serialize)]
struct Batch {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deletes: Vec<Entry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    patches: Vec<Entry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    posts: Vec<Entry>,
}

/// A record as a batch entry names it (before ids are filled in).
#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
}

/// The three kinds of file, in the order a change set's files come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Posts,
    Patches,
    Deletes,
}

impl Kind {
    fn of(op: &Op) -> Self {
        match op {
            Op::Create(_) => Self::Posts,
            Op::Replace { .. } => Self::Patches,
            Op::Delete(_) => Self::Deletes,
        }
    }
}

impl Inner {
    fn name(&self) -> String {
        format!("cloudflare-files:{}:{}", self.zone_id, self.dir.display())
    }

    fn invalid(&self, message: String) -> PublishError {
        PublishError::Invalid { target: self.name(), message }
    }

    /// Checks what Cloudflare takes of a record we would send.
    fn check(&self, record: &TxtRecord) -> Result<String, PublishError> {
        if !(MIN_TTL..=MAX_TTL).contains(&record.ttl) {
            return Err(self.invalid(format!(
                "TTL {} of {} is outside Cloudflare's {MIN_TTL}–{MAX_TTL} s",
                record.ttl, record.name
            )));
        }
        let content = quote_txt(&record.text);
        if content.len() > MAX_CONTENT {
            return Err(self.invalid(format!(
                "TXT content of {} is {} characters quoted; Cloudflare takes {MAX_CONTENT}",
                record.name,
                content.len()
            )));
        }
        Ok(content)
    }

    fn apply(&self, changes: &ChangeSet) -> Result<(), PublishError> {
        check_change_set(changes).map_err(|m| self.invalid(m))?;
        for change in &changes.changes {
            self.check(change.record())?;
        }
        let origin = changes.origin.trim_end_matches('.');
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (series, mut ledger) = Series::open(&self.dir, "cloudflare", origin)?;
        let (ops, _) = ledger.records.plan(changes).map_err(|m| self.invalid(m))?;
        for group in groups(&ops) {
            let mut batch = Batch::default();
            let mut records = ledger.records.clone();
            for op in group {
                let entry = match op {
                    Op::Create(r) | Op::Replace { new: r, .. } => Entry {
                        name: r.name.to_ascii_lowercase(),
                        kind: "TXT",
                        content: self.check(r)?,
                        ttl: Some(r.ttl),
                    },
                    Op::Delete(held) => Entry {
                        name: held.name.to_ascii_lowercase(),
                        kind: "TXT",
                        content: quote_txt(&held.text),
                        ttl: None,
                    },
                };
                match Kind::of(op) {
                    Kind::Posts => batch.posts.push(entry),
                    Kind::Patches => batch.patches.push(entry),
                    Kind::Deletes => batch.deletes.push(entry),
                }
                records.apply(op);
            }
            let bytes = serde_json::to_vec_pretty(&batch)
                .map_err(|e| self.invalid(format!("cannot encode the batch: {e}")))?;
            let path = series.write(&mut ledger, &records, &bytes)?;
            tracing::info!(target: "ctl::cloudflare", file = %path.display(), changes = group.len(),
                "batch written");
        }
        Ok(())
    }
}

/// The ops cut into files: runs of one kind, in order, at most [`MAX_BATCH`] long, each name
/// at most once.
fn groups(ops: &[Op]) -> Vec<&[Op]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for (i, op) in ops.iter().enumerate() {
        let current = &ops[start..i];
        let cut = !current.is_empty()
            && (Kind::of(&current[0]) != Kind::of(op)
                || current.len() >= MAX_BATCH
                || current.iter().any(|o| o.name().eq_ignore_ascii_case(op.name())));
        if cut {
            groups.push(current);
            start = i;
        }
    }
    if start < ops.len() {
        groups.push(&ops[start..]);
    }
    groups
}

/// A DNS record as `GET /zones/{zone_id}/dns_records` lists it; other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExistingRecord {
    /// The record id.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Record type (`TXT`).
    #[serde(rename = "type")]
    pub record_type: String,
    /// Content as Cloudflare returns it.
    pub content: String,
}

/// Why a batch file could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Not a batch file as written here.
    #[error("not a batch file: {0}")]
    Format(String),
    /// No record matches an entry.
    #[error("no {kind} record {name} with the content to {action}")]
    NotFound {
        /// `patch` or `delete`.
        action: &'static str,
        /// The record type.
        kind: String,
        /// The name.
        name: String,
    },
    /// Several records match an entry.
    #[error("{count} {kind} records at {name}; cannot tell which to {action}")]
    Ambiguous {
        /// `patch` or `delete`.
        action: &'static str,
        /// The record type.
        kind: String,
        /// The name.
        name: String,
        /// How many match.
        count: usize,
    },
}

/// Fills in the record ids of a batch file written by [`CloudflareChangeSetPublisher`] from the
/// zone's records as Cloudflare lists them, and returns the request body to send: each delete
/// becomes `{"id"}`, each patch gains `"id"`, posts are unchanged. Entries that already have an
/// id are kept. Content is compared as the joined text, so `"a" "b"` matches `"a""b"`.
pub fn resolve_ids(file: &str, existing: &[ExistingRecord]) -> Result<String, ResolveError> {
    let format = |m: &str| ResolveError::Format(m.to_owned());
    let mut body: Map<String, Value> =
        serde_json::from_str(file).map_err(|e| ResolveError::Format(e.to_string()))?;
    if let Some(key) = body.keys().find(|k| !["deletes", "patches", "posts"].contains(&k.as_str()))
    {
        return Err(ResolveError::Format(format!("unexpected key {key:?}")));
    }
    for (key, action) in [("deletes", "delete"), ("patches", "patch")] {
        let Some(entries) = body.get_mut(key) else { continue };
        let entries = entries.as_array_mut().ok_or_else(|| format("an array expected"))?;
        for entry in entries {
            let object = entry.as_object_mut().ok_or_else(|| format("an object expected"))?;
            if object.contains_key("id") {
                continue;
            }
            let field = |name: &str| {
                object.get(name).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                    ResolveError::Format(format!("{action} entry without a string {name:?}"))
                })
            };
            let (name, kind) = (field("name")?, field("type")?);
            let content = if action == "delete" { Some(field("content")?) } else { None };
            let matches: Vec<&ExistingRecord> = existing
                .iter()
                .filter(|r| same_name(&r.name, &name) && r.record_type.eq_ignore_ascii_case(&kind))
                .filter(|r| content.as_deref().is_none_or(|c| same_content(&r.content, c)))
                .collect();
            let id = match matches.as_slice() {
                [one] => one.id.clone(),
                [] => return Err(ResolveError::NotFound { action, kind, name }),
                many => {
                    let count = many.len();
                    return Err(ResolveError::Ambiguous { action, kind, name, count });
                }
            };
            if action == "delete" {
                object.clear();
            }
            object.insert("id".into(), Value::String(id));
        }
    }
    serde_json::to_string_pretty(&body).map_err(|e| ResolveError::Format(e.to_string()))
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn same_content(a: &str, b: &str) -> bool {
    a == b || matches!((unquote_txt(a), unquote_txt(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(i: usize) -> TxtRecord {
        TxtRecord { name: format!("L{i:03}.fleet.test"), ttl: 60, text: format!("t{i}") }
    }

    #[test]
    fn zone_ids_are_checked() {
        let id = "023e105f4ecef8ad9ca31a8372d0c353";
        let ok = CloudflareChangeSetPublisher::new("out".into(), &id.to_ascii_uppercase()).unwrap();
        assert_eq!(ok.zone_id(), id);
        for bad in ["", "023e105f", &format!("{id}0"), "023e105f4ecef8ad9ca31a8372d0c35g"] {
            assert!(CloudflareChangeSetPublisher::new("out".into(), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_hold_one_kind_of_change_at_most_a_batch_and_each_name_once() {
        let mut ops: Vec<Op> = (0..450).map(|i| Op::Create(record(i))).collect();
        ops.push(Op::Replace { old: None, new: record(900) });
        ops.push(Op::Replace { old: None, new: record(900) });
        ops.push(Op::Delete(record(1)));
        let sizes: Vec<(Kind, usize)> =
            groups(&ops).iter().map(|g| (Kind::of(&g[0]), g.len())).collect();
        assert_eq!(
            sizes,
            [
                (Kind::Posts, 200),
                (Kind::Posts, 200),
                (Kind::Posts, 50),
                (Kind::Patches, 1),
                (Kind::Patches, 1),
                (Kind::Deletes, 1)
            ]
        );
    }

    #[test]
    fn ids_are_filled_in_from_the_listed_records() {
        let file = r#"{
            "deletes": [{"name": "a.fleet.test", "type": "TXT", "content": "\"old\" \"a\""}],
            "patches": [{"name": "fleet.test", "type": "TXT", "content": "\"root2\"", "ttl": 60}]
        }"#;
        let listed: Vec<ExistingRecord> = serde_json::from_value(serde_json::json!([
            {"id": "r1", "name": "fleet.test", "type": "TXT", "content": "\"root1\"", "ttl": 60},
            {"id": "a1", "name": "A.fleet.test", "type": "TXT", "content": "\"olda\""},
            {"id": "a2", "name": "a.fleet.test", "type": "TXT", "content": "\"other\""},
        ]))
        .unwrap();
        let resolved: Value = serde_json::from_str(&resolve_ids(file, &listed).unwrap()).unwrap();
        assert_eq!(resolved["deletes"], serde_json::json!([{"id": "a1"}]));
        assert_eq!(resolved["patches"][0]["id"], "r1");
        assert_eq!(resolved["patches"][0]["content"], "\"root2\"");

        // Nothing to patch, two candidates, or a file that is not ours: clear errors.
        let error = resolve_ids(file, &listed[1..]).unwrap_err();
        assert!(matches!(error, ResolveError::NotFound { action: "patch", .. }), "{error}");
        let two_roots =
            [listed[0].clone(), ExistingRecord { id: "r9".into(), ..listed[0].clone() }];
        let patch_only =
            r#"{"patches": [{"name": "fleet.test", "type": "TXT", "content": "\"x\""}]}"#;
        let error = resolve_ids(patch_only, &two_roots).unwrap_err();
        assert!(matches!(error, ResolveError::Ambiguous { count: 2, .. }), "{error}");
        assert!(matches!(resolve_ids(r#"{"puts": []}"#, &listed), Err(ResolveError::Format(_))));
        assert!(matches!(resolve_ids("[]", &listed), Err(ResolveError::Format(_))));
    }
}
