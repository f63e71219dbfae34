//! The record set of one tree zone, independent of how it is served or exported.

use hickory_proto::rr::{Name, rdata::TXT};
use node::enrtree::{Tree, wire::split_character_strings};

/// One TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// Full owner name, without the trailing dot.
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The text; split into character-strings when served.
    pub text: String,
}

impl TxtRecord {
    /// The record's TXT RDATA: one RR whose text is split into ≤255-byte character-strings
    /// (hickory refuses longer ones, and clients join them without a separator).
    pub fn rdata(&self) -> TXT {
        TXT::new(split_character_strings(&self.text).into_iter().map(str::to_owned).collect())
    }
}

/// `name` as an absolute DNS name, case kept (tree hashes are upper case); `None` if it is
/// not a valid name.
pub fn absolute_name(name: &str) -> Option<Name> {
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    Name::from_ascii(format!("{name}.")).ok()
}

/// Whether `name` is a plain host-style DNS name: dot-separated labels of ASCII letters, digits,
/// `-` and `_`, each 1–63 bytes, at most 253 bytes in all, no trailing dot. Tree names always
/// are; the file publishers accept nothing else, so a name can go into a file name, a zone file
/// or a JSON body without escaping.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `name` relative to `origin` (both without trailing dots, compared case-insensitively):
/// `Some("")` for the apex, `Some("LABEL")` for `LABEL.<origin>`, `None` outside the zone.
pub fn relative_to<'a>(name: &'a str, origin: &str) -> Option<&'a str> {
    if name.eq_ignore_ascii_case(origin) {
        return Some("");
    }
    let cut = name.len().checked_sub(origin.len() + 1).filter(|&cut| cut > 0)?;
    let (head, tail) = (name.get(..cut)?, name.get(cut..)?);
    let parent = tail.strip_prefix('.')?;
    parent.eq_ignore_ascii_case(origin).then_some(head)
}

/// Why quoted TXT text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotedTxtError {
    /// Nothing, or something other than `"…"` strings.
    #[error("expected one or more quoted strings")]
    Unquoted,
    /// A string has no closing quote.
    #[error("unterminated quoted string")]
    Unterminated,
    /// A backslash not followed by `"` or `\`.
    #[error("unsupported escape (only \\\" and \\\\ are written)")]
    Escape,
    /// A character-string over 255 bytes.
    #[error("a character-string of {0} bytes (at most 255)")]
    TooLong(usize),
}

/// Reads TXT text written by [`node::enrtree::zone::quote_txt`]: `"…"` character-strings,
/// separated by blanks, with `\"` and `\\` escapes; returns them joined without a separator,
/// as clients join them. Nothing else is accepted (no unquoted text, no `\DDD`).
pub fn unquote_txt(quoted: &str) -> Result<String, QuotedTxtError> {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.trim_matches([' ', '\t']).chars();
    let mut strings = 0;
    loop {
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return Err(QuotedTxtError::Unquoted),
        }
        let start = out.len();
        loop {
            match chars.next() {
                None => return Err(QuotedTxtError::Unterminated),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    _ => return Err(QuotedTxtError::Escape),
                },
                Some(c) => out.push(c),
            }
        }
        if out.len() - start > 255 {
            return Err(QuotedTxtError::TooLong(out.len() - start));
        }
        strings += 1;
        // Strings are separated by blanks; a quote right after a quote is not what we write.
        let rest = chars.as_str();
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if !trimmed.is_empty() && trimmed.len() == rest.len() {
            return Err(QuotedTxtError::Unquoted);
        }
        chars = trimmed.chars();
    }
    if strings == 0 {
        return Err(QuotedTxtError::Unquoted);
    }
    Ok(out)
}

/// A zone of TXT records under `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtZone {
    /// The apex, without the trailing dot.
    pub origin: String,
    /// SOA serial; the tree's sequence number for tree zones.
    pub serial: u32,
    /// SOA minimum, which is also how long resolvers cache "no such name". Kept short so a
    /// client that asks for a leaf a moment before it is published soon asks again.
    pub negative_ttl: u32,
    /// The records.
    pub records: Vec<TxtRecord>,
}

/// TTL of the root record (Status practice; geth's devp2p uses 30 min). Default for trees.
pub const DEFAULT_ROOT_TTL: u32 = 60;
/// TTL of the content-addressed subtree records.
pub const DEFAULT_TTL: u32 = 86_400;

impl TxtZone {
    /// An empty zone.
    pub fn new(origin: &str, serial: u32) -> Self {
        Self {
            origin: origin.trim_end_matches('.').to_owned(),
            serial,
            negative_ttl: DEFAULT_ROOT_TTL,
            records: Vec::new(),
        }
    }

    /// The zone of a signed tree published at `domain`.
    pub fn from_tree(tree: &Tree, domain: &str, root_ttl: u32, ttl: u32) -> Self {
        let serial = u32::try_from(tree.seq()).unwrap_or(u32::MAX);
        let mut zone = Self::new(domain, serial);
        let apex = zone.origin.clone();
        for (name, text) in tree.to_txt(&apex) {
            let ttl = if name == apex { root_ttl } else { ttl };
            zone.records.push(TxtRecord { name, ttl, text });
        }
        zone
    }

    /// Adds a record.
    pub fn push(&mut self, name: &str, ttl: u32, text: impl Into<String>) {
        self.records.push(TxtRecord {
            name: name.trim_end_matches('.').to_owned(),
            ttl,
            text: text.into(),
        });
    }
}

/// Whether `domain` is `origin` or below it.
pub fn in_zone(domain: &str, origin: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let origin = origin.trim_end_matches('.').to_ascii_lowercase();
    domain == origin || domain.ends_with(&format!(".{origin}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use node::enrtree::zone::quote_txt;

    use super::*;

    #[test]
    fn quoted_text_reads_back_what_quote_txt_writes_and_nothing_else() {
        for text in [String::new(), "a\"b\\c".into(), "x".repeat(255), "y".repeat(600)] {
            assert_eq!(unquote_txt(&quote_txt(&text)).unwrap(), text);
        }
        assert_eq!(unquote_txt(r#""ab"  "cd""#).unwrap(), "abcd");
        assert_eq!(unquote_txt("bare"), Err(QuotedTxtError::Unquoted));
        assert_eq!(unquote_txt(""), Err(QuotedTxtError::Unquoted));
        assert_eq!(unquote_txt(r#""a""b""#), Err(QuotedTxtError::Unquoted));
        assert_eq!(unquote_txt(r#""a" b"#), Err(QuotedTxtError::Unquoted));
        assert_eq!(unquote_txt(r#""open"#), Err(QuotedTxtError::Unterminated));
        assert_eq!(unquote_txt(r#""\065""#), Err(QuotedTxtError::Escape));
        assert_eq!(
            unquote_txt(&format!("\"{}\"", "z".repeat(256))),
            Err(QuotedTxtError::TooLong(256))
        );
    }

    #[test]
    fn names_are_plain_and_placed_relative_to_their_origin() {
        assert!(is_plain_name("ABC-1.nodes_x.fleet.test"));
        for bad in ["", "a..b", "a.", ".a", "a b", "ä.test", "a/b", &"l".repeat(64)] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert_eq!(relative_to("Fleet.Test", "fleet.test"), Some(""));
        assert_eq!(relative_to("ABC.fleet.test", "fleet.test"), Some("ABC"));
        assert_eq!(relative_to("a.b.FLEET.test", "fleet.test"), Some("a.b"));
        assert_eq!(relative_to("xfleet.test", "fleet.test"), None);
        assert_eq!(relative_to(".fleet.test", "fleet.test"), None);
        assert_eq!(relative_to("other.test", "fleet.test"), None);
        assert_eq!(relative_to("ä.fleet.test", "fleet.test"), Some("ä"));
    }
}
