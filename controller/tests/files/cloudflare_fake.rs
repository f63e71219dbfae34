//! An in-memory Cloudflare zone that applies `POST /zones/{zone_id}/dns_records/batch` bodies
//! by Cloudflare's documented rules, written against the JSON (not our types):
//!
//! - the body has only `deletes`, `patches`, `puts`, `posts` arrays, run in that order whatever
//!   order they are written in, all or nothing, at most 200 changes (the Free plan);
//! - `deletes` entries are `{"id"}`; `patches` need an `id` and change the given fields; `puts`
//!   need an `id` and a whole record; `posts` are whole records without an id;
//! - a record is `name` (inside the zone, ≤ 255), `type` (only TXT modelled), `content`
//!   (≤ 2,048 characters; quoted strings must each be ≤ 255 bytes, unquoted text is split by
//!   Cloudflare), `ttl` (1 = automatic, or 60 ..= 86,400);
//! - an unknown id fails the batch; a record identical to an existing one (name, type,
//!   content) fails the batch.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::files::route53_fake::decode_txt;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) content: String,
    pub(crate) ttl: u64,
}

/// The TXT records of one zone, by id.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    name: String,
    pub(crate) records: BTreeMap<String, Record>,
    next_id: u64,
}

const RECORD_FIELDS: [&str; 4] = ["name", "type", "content", "ttl"];

impl Zone {
    pub(crate) fn new(name: &str) -> Self {
        Self { name: name.to_ascii_lowercase(), records: BTreeMap::new(), next_id: 1 }
    }

    /// Applies one batch body, all or nothing.
    pub(crate) fn apply(&mut self, body: &str) -> Result<(), String> {
        let body: Value = serde_json::from_str(body).map_err(|e| format!("9207 bad JSON: {e}"))?;
        let body = body.as_object().ok_or("9207 body is not an object")?;
        if let Some(key) =
            body.keys().find(|k| !["deletes", "patches", "puts", "posts"].contains(&k.as_str()))
        {
            return Err(format!("9207 unknown field {key:?}"));
        }
        let list = |key: &str| -> Result<Vec<Map<String, Value>>, String> {
            match body.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_object().cloned().ok_or(format!("9207 {key}: not an object")))
                    .collect(),
                Some(_) => Err(format!("9207 {key} is not an array")),
            }
        };
        let (deletes, patches, puts, posts) =
            (list("deletes")?, list("patches")?, list("puts")?, list("posts")?);
        let total = deletes.len() + patches.len() + puts.len() + posts.len();
        if total > 200 {
            return Err(format!("81000 {total} changes in one batch; the plan allows 200"));
        }
        let mut next = self.records.clone();
        let mut next_id = self.next_id;
        for delete in &deletes {
            check_keys(delete, &["id"], "delete")?;
            let id = id_of(delete)?;
            next.remove(&id).ok_or(format!("81044 delete: record {id} not found"))?;
        }
        for patch in &patches {
            check_keys(patch, &["id", "name", "type", "content", "ttl"], "patch")?;
            let id = id_of(patch)?;
            let held =
                next.get(&id).cloned().ok_or(format!("81044 patch: record {id} not found"))?;
            let merged = self.record(patch, Some(&held))?;
            next.insert(id.clone(), merged.clone());
            self.unique(&next, &id, &merged)?;
        }
        for put in &puts {
            check_keys(put, &["id", "name", "type", "content", "ttl"], "put")?;
            let id = id_of(put)?;
            if !next.contains_key(&id) {
                return Err(format!("81044 put: record {id} not found"));
            }
            let record = self.record(put, None)?;
            next.insert(id.clone(), record.clone());
            self.unique(&next, &id, &record)?;
        }
        for post in &posts {
            check_keys(post, &RECORD_FIELDS, "post")?;
            let record = self.record(post, None)?;
            let id = format!("{next_id:032x}");
            next_id += 1;
            next.insert(id.clone(), record.clone());
            self.unique(&next, &id, &record)?;
        }
        self.records = next;
        self.next_id = next_id;
        Ok(())
    }

    /// A record from an entry's fields over `base` (a patch) or alone (a whole record).
    fn record(&self, entry: &Map<String, Value>, base: Option<&Record>) -> Result<Record, String> {
        let text = |key: &str| {
            entry
                .get(key)
                .map(|v| v.as_str().map(str::to_owned).ok_or(format!("9207 {key} is not a string")))
        };
        if let Some(kind) = text("type").transpose()? {
            if kind != "TXT" {
                return Err(format!("9207 only TXT is modelled, not {kind}"));
            }
        } else if base.is_none() {
            return Err("9207 type is required".into());
        }
        let name = match (text("name").transpose()?, base) {
            (Some(name), _) => name.trim_end_matches('.').to_ascii_lowercase(),
            (None, Some(base)) => base.name.clone(),
            (None, None) => return Err("9207 name is required".into()),
        };
        if name.len() > 255 || (name != self.name && !name.ends_with(&format!(".{}", self.name))) {
            return Err(format!("9207 {name} is not in the zone {}", self.name));
        }
        let content = match (text("content").transpose()?, base) {
            (Some(content), _) => content,
            (None, Some(base)) => base.content.clone(),
            (None, None) => return Err("9207 content is required".into()),
        };
        if content.chars().count() > 2_048 {
            return Err(format!(
                "9100 content of {} characters (at most 2048)",
                content.chars().count()
            ));
        }
        if content.starts_with('"') {
            decode_txt(&content).map_err(|e| format!("9100 TXT content: {e}"))?;
        }
        let ttl = match (entry.get("ttl"), base) {
            (Some(ttl), _) => ttl.as_u64().ok_or("9207 ttl is not a number")?,
            (None, Some(base)) => base.ttl,
            (None, None) => 1,
        };
        if ttl != 1 && !(60..=86_400).contains(&ttl) {
            return Err(format!("9021 TTL {ttl}: must be 1 (automatic) or 60–86400"));
        }
        Ok(Record { name, content, ttl })
    }

    fn unique(
        &self,
        records: &BTreeMap<String, Record>,
        id: &str,
        record: &Record,
    ) -> Result<(), String> {
        let twin = records
            .iter()
            .any(|(other, r)| other != id && r.name == record.name && r.content == record.content);
        if twin {
            Err(format!("81058 an identical record already exists at {}", record.name))
        } else {
            Ok(())
        }
    }

    /// The records as `GET /zones/{zone_id}/dns_records` lists them.
    pub(crate) fn list(&self) -> Value {
        Value::Array(
            self.records
                .iter()
                .map(|(id, r)| json!({"id": id, "name": r.name, "type": "TXT", "content": r.content, "ttl": r.ttl, "proxied": false}))
                .collect(),
        )
    }

    /// `(name, joined text)` of every record, as a resolver would answer.
    pub(crate) fn txt(&self) -> Vec<(String, String)> {
        self.records
            .values()
            .map(|r| {
                let text = if r.content.starts_with('"') {
                    decode_txt(&r.content).expect("checked")
                } else {
                    r.content.clone()
                };
                (r.name.clone(), text)
            })
            .collect()
    }
}

fn check_keys(entry: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match entry.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("9207 {what}: unknown field {key:?}")),
        None => Ok(()),
    }
}

fn id_of(entry: &Map<String, Value>) -> Result<String, String> {
    entry
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 32)
        .map(str::to_owned)
        .ok_or_else(|| "9207 an id is required".to_owned())
}
