//! Zone-file text for a tree, for BIND, Knot, NSD or any provider that imports zone files.
//!
//! TXT values over 255 bytes become several quoted character-strings on one record
//! (`"…" "…"`); hickory's `TXT` Display prints them joined without quotes, which is not zone
//! syntax, so we quote ourselves and escape `"` and `\`.

use std::fmt::Write as _;

use super::{tree::Tree, wire::split_character_strings};

/// TTLs and the optional SOA/NS of a zone file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneOptions {
    /// TTL of the root record. Short, so clients see a new root soon. Default: 60 s.
    pub root_ttl: u32,
    /// TTL of every other record. They are content-addressed and never change. Default: 86400 s.
    pub ttl: u32,
    /// When set, the file is a whole zone: an SOA and an NS record for this name server.
    pub name_server: Option<String>,
}

impl Default for ZoneOptions {
    fn default() -> Self {
        Self { root_ttl: 60, ttl: 86_400, name_server: None }
    }
}

/// The zone file of `tree` published at `domain`.
pub fn zone_file(tree: &Tree, domain: &str, options: &ZoneOptions) -> String {
    let origin = domain.trim_end_matches('.');
    let mut out = String::new();
    let _ = writeln!(out, "; EIP-1459 tree {origin}, seq {}, written by wakufleet", tree.seq());
    let _ = writeln!(out, "$ORIGIN {origin}.");
    if let Some(ns) = &options.name_server {
        let ns = ns.trim_end_matches('.');
        let serial = tree.seq();
        let _ = writeln!(
            out,
            "@\t{ttl}\tIN\tSOA\t{ns}. hostmaster.{origin}. {serial} 3600 600 86400 {min}",
            ttl = options.ttl,
            min = options.root_ttl,
        );
        let _ = writeln!(out, "@\t{}\tIN\tNS\t{ns}.", options.ttl);
    }
    let _ =
        writeln!(out, "@\t{}\tIN\tTXT\t{}", options.root_ttl, quote_txt(&tree.root().to_string()));
    for (label, entry) in tree.entries() {
        let _ =
            writeln!(out, "{label}\t{}\tIN\tTXT\t{}", options.ttl, quote_txt(&entry.to_string()));
    }
    out
}

/// A TXT value in zone-file syntax: ≤255-byte character-strings, each quoted, space separated.
pub fn quote_txt(text: &str) -> String {
    split_character_strings(text)
        .into_iter()
        .map(|part| {
            let escaped = part.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_split_and_quoted() {
        let text = format!("enr:{}", "a".repeat(296));
        let quoted = quote_txt(&text);
        assert_eq!(quoted, format!("\"enr:{}\" \"{}\"", "a".repeat(251), "a".repeat(45)));
        assert_eq!(quote_txt(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
