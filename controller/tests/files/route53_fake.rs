//! An in-memory Route 53 hosted zone that applies `ChangeResourceRecordSets` change batches by
//! Route 53's documented rules, written against the JSON (not our types):
//!
//! - the body is `{"Comment"?, "Changes": [...]}`, nothing else; `Comment` ≤ 256 characters;
//! - each change is `{"Action": CREATE|UPSERT|DELETE, "ResourceRecordSet": {"Name", "Type",
//!   "TTL", "ResourceRecords": [{"Value"}]}}`; TTL 0 ..= 2^31 − 1;
//! - a batch is all or nothing; changes apply in order; CREATE of an existing record set fails,
//!   DELETE fails unless TTL and values match exactly; a record set appears once per batch
//!   (Route 53 forbids deleting one twice; we refuse any repeat, which is stricter);
//! - at most 1,000 `ResourceRecord`s and 32,000 characters of `Value`s, UPSERTs counting
//!   double; a `Value` at most 4,000 characters;
//! - a TXT `Value` is one or more quoted strings (`\"`, `\\` and `\DDD` escapes), each at most
//!   255 bytes; names are case-insensitive, the trailing dot optional, inside the zone.
//!
//! Only TXT record sets are modelled.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A record set: its TTL and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordSet {
    pub(crate) ttl: u64,
    pub(crate) values: Vec<String>,
}

/// The TXT record sets of one hosted zone, by lower-case name without trailing dot.
#[derive(Debug, Clone)]
pub(crate) struct HostedZone {
    origin: String,
    pub(crate) sets: BTreeMap<String, RecordSet>,
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("InvalidInput: unknown field {key:?} in {what}")),
        None => Ok(()),
    }
}

impl HostedZone {
    pub(crate) fn new(origin: &str) -> Self {
        Self { origin: origin.to_ascii_lowercase(), sets: BTreeMap::new() }
    }

    /// Applies one change batch, all or nothing.
    pub(crate) fn apply(&mut self, body: &str) -> Result<(), String> {
        let body: Value = serde_json::from_str(body).map_err(|e| format!("InvalidInput: {e}"))?;
        let body = body.as_object().ok_or("InvalidInput: body is not an object")?;
        only_keys(body, &["Comment", "Changes"], "ChangeBatch")?;
        if let Some(comment) = body.get("Comment") {
            let comment = comment.as_str().ok_or("InvalidInput: Comment is not a string")?;
            if comment.chars().count() > 256 {
                return Err("InvalidInput: Comment longer than 256".into());
            }
        }
        let changes = body
            .get("Changes")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or("InvalidInput: Changes must be a non-empty array")?;

        let mut next = self.sets.clone();
        let (mut records, mut chars) = (0usize, 0usize);
        let mut touched = BTreeSet::new();
        for (index, change) in changes.iter().enumerate() {
            let at = |m: String| format!("InvalidChangeBatch: change {index}: {m}");
            let change = change.as_object().ok_or_else(|| at("not an object".into()))?;
            only_keys(change, &["Action", "ResourceRecordSet"], "Change")?;
            let action = change.get("Action").and_then(Value::as_str).unwrap_or_default();
            let factor = match action {
                "CREATE" | "DELETE" => 1,
                "UPSERT" => 2,
                other => return Err(at(format!("unknown Action {other:?}"))),
            };
            let set = change
                .get("ResourceRecordSet")
                .and_then(Value::as_object)
                .ok_or_else(|| at("no ResourceRecordSet".into()))?;
            only_keys(set, &["Name", "Type", "TTL", "ResourceRecords"], "ResourceRecordSet")?;
            let name =
                set.get("Name").and_then(Value::as_str).ok_or_else(|| at("no Name".into()))?;
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            if name.len() > 253
                || (name != self.origin && !name.ends_with(&format!(".{}", self.origin)))
            {
                return Err(at(format!("{name} is not in the zone {}", self.origin)));
            }
            if set.get("Type").and_then(Value::as_str) != Some("TXT") {
                return Err(at("only TXT is modelled".into()));
            }
            let ttl = set.get("TTL").and_then(Value::as_u64).ok_or_else(|| at("no TTL".into()))?;
            if ttl > i32::MAX as u64 {
                return Err(at(format!("TTL {ttl} out of range")));
            }
            let values: Vec<String> = set
                .get("ResourceRecords")
                .and_then(Value::as_array)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| at("ResourceRecords must be a non-empty array".into()))?
                .iter()
                .map(|rr| {
                    let rr =
                        rr.as_object().ok_or_else(|| at("ResourceRecord not an object".into()))?;
                    only_keys(rr, &["Value"], "ResourceRecord")?;
                    let value = rr
                        .get("Value")
                        .and_then(Value::as_str)
                        .ok_or_else(|| at("no Value".into()))?;
                    if value.len() > 4_000 {
                        return Err(at(format!("Value of {} characters", value.len())));
                    }
                    decode_txt(value).map_err(|e| at(format!("InvalidTXTRDATA: {e}")))?;
                    Ok(value.to_owned())
                })
                .collect::<Result<_, String>>()?;
            records += values.len() * factor;
            chars += values.iter().map(String::len).sum::<usize>() * factor;
            if !touched.insert(name.clone()) {
                return Err(at(format!("{name} changed twice in one batch")));
            }
            match action {
                "CREATE" => {
                    if next.contains_key(&name) {
                        return Err(at(format!(
                            "Tried to create resource record set [name='{name}.', type='TXT'] but it already exists"
                        )));
                    }
                    next.insert(name, RecordSet { ttl, values });
                }
                "UPSERT" => {
                    next.insert(name, RecordSet { ttl, values });
                }
                _ => match next.get(&name) {
                    Some(held) if held.ttl == ttl && held.values == values => {
                        next.remove(&name);
                    }
                    Some(_) => {
                        return Err(at(format!(
                            "Tried to delete resource record set [name='{name}.', type='TXT'] but the values provided do not match the current values"
                        )));
                    }
                    None => {
                        return Err(at(format!(
                            "Tried to delete resource record set [name='{name}.', type='TXT'] but it was not found"
                        )));
                    }
                },
            }
        }
        if records > 1_000 {
            return Err(format!(
                "InvalidChangeBatch: {records} ResourceRecord elements (at most 1000)"
            ));
        }
        if chars > 32_000 {
            return Err(format!(
                "InvalidChangeBatch: {chars} characters of values (at most 32000)"
            ));
        }
        self.sets = next;
        Ok(())
    }

    /// `(name, joined text)` of every value, as a resolver would answer.
    pub(crate) fn txt(&self) -> Vec<(String, String)> {
        self.sets
            .iter()
            .flat_map(|(name, set)| {
                set.values
                    .iter()
                    .map(move |v| (name.clone(), decode_txt(v).expect("stored values are valid")))
            })
            .collect()
    }
}

/// Decodes a TXT `Value`: quoted strings, blanks between them optional, joined.
pub(crate) fn decode_txt(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut strings = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        if bytes[i] != b'"' {
            return Err(format!("unquoted text at {i}"));
        }
        i += 1;
        let start = out.len();
        loop {
            match bytes.get(i) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => match bytes.get(i + 1) {
                    Some(d) if d.is_ascii_digit() => {
                        let code = value
                            .get(i + 1..i + 4)
                            .and_then(|s| s.parse::<u16>().ok())
                            .filter(|c| *c <= 255)
                            .ok_or("bad \\DDD escape")?;
                        out.push(code as u8);
                        i += 4;
                    }
                    Some(&c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => return Err("dangling backslash".into()),
                },
                Some(&c) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        if out.len() - start > 255 {
            return Err(format!("a string of {} bytes", out.len() - start));
        }
        strings += 1;
    }
    if strings == 0 {
        return Err("no string".into());
    }
    String::from_utf8(out).map_err(|_| "not UTF-8".into())
}
