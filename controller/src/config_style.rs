//! One spelling for every configuration key: kebab-case, as nwaku's flags, the agent's file and
//! `wakufleet node --config-file` already write them (`database-url`, `max-entries`). The
//! controller's file used three styles (snake_case for itself, camelCase inside a tree's
//! `policy`, kebab-case elsewhere); the old spellings are still read, with a warning naming
//! each, so existing files keep working.
//!
//! The structs keep their Rust field names; this pass maps the file's keys onto them before
//! they are deserialised: kebab-case to snake_case, and inside `policy` (which is also the API's
//! JSON, camelCase) to camelCase.

/// `table` with its keys spelt as the structs expect, and every key written the old way (its
/// path and the spelling to use instead).
pub fn normalize(table: toml::Table) -> (toml::Table, Vec<String>) {
    let mut old = Vec::new();
    let table = walk(table, "", false, &mut old);
    (table, old)
}

fn walk(table: toml::Table, path: &str, in_policy: bool, old: &mut Vec<String>) -> toml::Table {
    table
        .into_iter()
        .map(|(key, value)| {
            let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            let internal = if in_policy { camel(&key) } else { key.replace('-', "_") };
            let written_old = if in_policy {
                key.chars().any(|c| c.is_ascii_uppercase())
            } else {
                key.contains('_')
            };
            if written_old {
                old.push(format!("{here} (write {})", kebab(&key)));
            }
            let policy = key == "policy";
            let value = match value {
                toml::Value::Table(inner) => toml::Value::Table(walk(inner, &here, policy, old)),
                toml::Value::Array(items) => toml::Value::Array(
                    items
                        .into_iter()
                        .map(|item| match item {
                            toml::Value::Table(inner) => {
                                toml::Value::Table(walk(inner, &here, policy, old))
                            }
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            };
            (internal, value)
        })
        .collect()
}

/// `max-entries` or `max_entries` → `maxEntries`; `maxEntries` stays.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `database_url` → `database-url`, `maxEntries` → `max-entries`.
fn kebab(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c == '_' {
            out.push('-');
        } else if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_maps_onto_the_structs_and_old_spellings_are_named() {
        let text = r#"
            database-url = "sqlite://x"
            reports_kept = 5
            [health]
            min-relay-peers = 2
            [[trees]]
            name = "boot"
            policy = { roles = ["boot"], max-entries = 8, clusterId = 1 }
            [[publishers]]
            kind = "zone-file"
            tsig-key-file = "k"
        "#;
        let (table, old) = normalize(text.parse::<toml::Table>().unwrap());
        assert!(table.contains_key("database_url") && table.contains_key("reports_kept"));
        assert!(table["health"].as_table().unwrap().contains_key("min_relay_peers"));
        let tree = &table["trees"].as_array().unwrap()[0];
        let policy = tree["policy"].as_table().unwrap();
        assert!(policy.contains_key("maxEntries") && policy.contains_key("clusterId"));
        let publisher = &table["publishers"].as_array().unwrap()[0];
        assert_eq!(publisher["kind"].as_str(), Some("zone-file"), "values are left alone");
        assert!(publisher.as_table().unwrap().contains_key("tsig_key_file"));
        assert_eq!(
            old,
            ["reports_kept (write reports-kept)", "trees.policy.clusterId (write cluster-id)"]
        );
    }
}
