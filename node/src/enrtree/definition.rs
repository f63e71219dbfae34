//! go-ethereum's tree directory format, so that lists kept for `devp2p dns` move over unchanged:
//!
//! - `enrtree-info.json`: `{"url", "seq", "signature", "links", "lastModified"}`, written by
//!   `devp2p dns sign` (url and signature omitted while empty);
//! - `nodes.json`: node id (hex) → `{"seq", "record", …}`; other fields (score, timestamps of a
//!   crawler) are kept as they are.
//!
//! The domain of a directory is, as in geth: the `-domain` flag, else the domain of `url`, else
//! the directory's name. Only parsing and printing live here; the CLI reads and writes files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    entry::LinkEntry,
    error::{DefinitionError, SignatureError},
    record::NodeRecord,
    signature::RootSignature,
    tree::Tree,
};

/// File name of the tree metadata.
pub const INFO_FILE: &str = "enrtree-info.json";
/// File name of the node set.
pub const NODES_FILE: &str = "nodes.json";

/// `enrtree-info.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeInfo {
    /// `enrtree://<key>@<domain>` once signed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Sequence number of the last signed tree (0 before the first signature).
    #[serde(default)]
    pub seq: u64,
    /// Base64url root signature of the last signed tree.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// Links to other trees.
    #[serde(default)]
    pub links: Vec<String>,
    /// RFC 3339 time of the last change.
    #[serde(rename = "lastModified", default)]
    pub last_modified: String,
}

/// One entry of `nodes.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The record's sequence number; must match the record.
    pub seq: u64,
    /// The record, `enr:…`.
    pub record: String,
    /// Whatever else a crawler stored (score, firstResponse…), kept untouched.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A tree directory's contents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeDefinition {
    /// `enrtree-info.json`.
    pub info: TreeInfo,
    /// `nodes.json`, by node id.
    pub nodes: BTreeMap<String, NodeEntry>,
}

impl TreeDefinition {
    /// Parses the two files; a missing `enrtree-info.json` means a tree never signed.
    pub fn from_json(info: Option<&str>, nodes: &str) -> Result<Self, DefinitionError> {
        let json_error = |file: &'static str| {
            move |e: serde_json::Error| DefinitionError::Json {
                path: file.into(),
                message: e.to_string(),
            }
        };
        let info = match info {
            Some(text) => serde_json::from_str(text).map_err(json_error(INFO_FILE))?,
            None => TreeInfo::default(),
        };
        let nodes = serde_json::from_str(nodes).map_err(json_error(NODES_FILE))?;
        Ok(Self { info, nodes })
    }

    /// A definition listing `records` (the node set geth would write for them).
    pub fn from_records(records: &[NodeRecord], links: &[LinkEntry]) -> Self {
        let nodes = records
            .iter()
            .map(|r| {
                let entry = NodeEntry {
                    seq: r.seq(),
                    record: r.to_string(),
                    extra: serde_json::Map::new(),
                };
                (r.node_id_hex(), entry)
            })
            .collect();
        let info = TreeInfo {
            links: links.iter().map(ToString::to_string).collect(),
            ..TreeInfo::default()
        };
        Self { info, nodes }
    }

    /// The validated records. Every key must be its record's node id and every `seq` the
    /// record's sequence number, as geth's `verify` demands.
    pub fn records(&self) -> Result<Vec<NodeRecord>, DefinitionError> {
        self.nodes
            .iter()
            .map(|(key, node)| {
                let record: NodeRecord = node
                    .record
                    .parse()
                    .map_err(|source| DefinitionError::Record { id: key.clone(), source })?;
                let actual = record.node_id_hex();
                if !key.eq_ignore_ascii_case(&actual) {
                    return Err(DefinitionError::IdMismatch { key: key.clone(), actual });
                }
                if node.seq != record.seq() {
                    return Err(DefinitionError::SeqMismatch {
                        id: key.clone(),
                        listed: node.seq,
                        actual: record.seq(),
                    });
                }
                Ok(record)
            })
            .collect()
    }

    /// The validated links.
    pub fn links(&self) -> Result<Vec<LinkEntry>, DefinitionError> {
        self.info
            .links
            .iter()
            .map(|link| {
                link.parse().map_err(|source| DefinitionError::Link { link: link.clone(), source })
            })
            .collect()
    }

    /// The tree's URL, if it has been signed before.
    pub fn url(&self) -> Result<Option<LinkEntry>, DefinitionError> {
        if self.info.url.is_empty() {
            return Ok(None);
        }
        let url = &self.info.url;
        url.parse().map(Some).map_err(|source| DefinitionError::Url { url: url.clone(), source })
    }

    /// The domain, as geth picks it: `explicit`, else the url's domain, else `dir_name`.
    pub fn domain(
        &self,
        explicit: Option<&str>,
        dir_name: &str,
    ) -> Result<String, DefinitionError> {
        if let Some(domain) = explicit {
            return Ok(domain.to_owned());
        }
        Ok(self.url()?.map_or_else(|| dir_name.to_owned(), |url| url.domain))
    }

    /// Builds the (unsigned) tree of this definition with sequence number `seq`.
    pub fn build(&self, seq: u64) -> Result<Tree, BuildError> {
        Ok(Tree::build(seq, self.records()?, self.links()?)?)
    }

    /// Rebuilds the tree that `enrtree-info.json` says was signed and checks its signature
    /// against the url's key: what geth's `to-txt` does before exporting.
    pub fn signed_tree(&self) -> Result<(Tree, LinkEntry), BuildError> {
        // Report broken records before a missing signature: they need fixing either way.
        self.records()?;
        self.links()?;
        let url = self.url()?.ok_or(BuildError::NotSigned)?;
        if self.info.signature.is_empty() {
            return Err(BuildError::NotSigned);
        }
        let signature: RootSignature =
            self.info.signature.parse().map_err(DefinitionError::Signature)?;
        let mut tree = self.build(self.info.seq)?;
        tree.set_signature(&url.public_key, signature).map_err(|e| match e {
            super::TreeError::Signature(SignatureError::Mismatch { .. }) => {
                BuildError::StaleSignature
            }
            other => BuildError::Tree(other),
        })?;
        Ok((tree, url))
    }

    /// Records a signed tree in `enrtree-info.json` (url, seq, signature, links, time).
    pub fn set_signed(&mut self, tree: &Tree, url: &LinkEntry, now_rfc3339: String) {
        self.info.url = url.to_string();
        self.info.seq = tree.seq();
        self.info.signature =
            tree.root().signature.as_ref().map(ToString::to_string).unwrap_or_default();
        self.info.links = tree.links().iter().map(ToString::to_string).collect();
        self.info.last_modified = now_rfc3339;
    }

    /// `enrtree-info.json` text, 4-space indented like Go's `json.MarshalIndent`.
    pub fn info_json(&self) -> String {
        to_json_indent4(&self.info)
    }

    /// `nodes.json` text, 4-space indented, keys sorted.
    pub fn nodes_json(&self) -> String {
        to_json_indent4(&self.nodes)
    }
}

/// Why a definition does not give a (signed) tree.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The files are inconsistent.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The records do not make a valid tree.
    #[error(transparent)]
    Tree(#[from] super::TreeError),
    /// No url or signature in `enrtree-info.json`.
    #[error("tree is not signed yet: run `wakufleet tree sign` (or sign-request / attach)")]
    NotSigned,
    /// The signature is valid for some other content: the definition changed after signing.
    #[error(
        "signature does not match the tree: nodes.json or links changed since it was signed; sign it again"
    )]
    StaleSignature,
}

/// Serialises `value` as Go's `json.MarshalIndent(v, "", "    ")` does, plus a final newline.
pub fn to_json_indent4<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serialising plain data structs and maps of strings to a Vec cannot fail.
    #[allow(clippy::expect_used)]
    value.serialize(&mut serializer).expect("JSON serialisation of plain data");
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_default()
}

/// The current time in RFC 3339 (UTC, nanoseconds), as geth writes `lastModified`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
