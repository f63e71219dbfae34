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
