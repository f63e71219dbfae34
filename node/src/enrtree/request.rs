//! Two-party signing: the operator writes a signing request, a key holder checks and signs it on
//! their own machine, and the operator attaches the detached signature.
//!
//! The request carries the full record and link lists, not only the root: the key holder's tool
//! rebuilds the tree from them and refuses to sign unless the rebuilt root, its hash and the
//! digest of every record match what the request claims. So the summary a key holder reads
//! (domain, seq, nodes added and removed) is a summary of exactly what gets signed.

use std::collections::BTreeSet;

use data_encoding::HEXLOWER;
use k256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{
    entry::LinkEntry,
    error::{ParseEntryError, RecordError, SignatureError, TreeError},
    record::NodeRecord,
    signature::{RootSignature, decode_public_key, encode_public_key},
    tree::Tree,
};
use crate::crypto::keccak256;

/// Format tag of a signing request file.
pub const REQUEST_FORMAT: &str = "wakufleet-sign-request/1";
/// Format tag of a detached signature file.
pub const SIGNATURE_FORMAT: &str = "wakufleet-tree-signature/1";

/// What a key holder is asked to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    /// [`REQUEST_FORMAT`].
    pub format: String,
    /// The domain the tree is published at.
    pub domain: String,
    /// The new sequence number.
    pub seq: u64,
    /// The text to be signed: `enrtree-root:v1 e=… l=… seq=…`.
    pub root_content: String,
    /// `0x` + hex keccak256 of `root_content`.
    pub root_hash: String,
    /// `0x` + hex keccak256 over every subtree record (see [`records_digest`]).
    pub records_digest: String,
    /// The key that signed earlier versions, when the tree has a URL already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The records, `enr:…`.
    pub enrs: Vec<String>,
    /// The links, `enrtree://…`.
    pub links: Vec<String>,
    /// The previously signed tree, for the added/removed summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousTree>,
}

/// The previously signed version of a tree, as the operator's side knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviousTree {
    /// Its sequence number.
    pub seq: u64,
    /// Its records.
    pub enrs: Vec<String>,
    /// Its links.
    pub links: Vec<String>,
}

/// Why a request or a detached signature is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not a file of this kind or version.
    #[error("unsupported format {found:?}, expected {expected:?}")]
    Format {
        /// The format found.
        found: String,
        /// The format expected.
        expected: &'static str,
    },
    /// Not valid JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A listed record is invalid.
    #[error("record {index}: {source}")]
    Record {
        /// Position in the list.
        index: usize,
        /// Why.
        source: RecordError,
    },
    /// A listed link (or the public key) is invalid.
    #[error("{0}")]
    Entry(#[from] ParseEntryError),
    /// The public key field is not a valid key.
    #[error("invalid public key {0:?}")]
    PublicKey(String),
    /// The rebuilt tree differs from what the request claims.
    #[error("request does not match its own records: {field} claimed {claimed}, rebuilt {rebuilt}")]
    Mismatch {
        /// Which claim.
        field: &'static str,
        /// What the request says.
        claimed: String,
        /// What the records give.
        rebuilt: String,
    },
    /// The records do not make a valid tree.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The signature is malformed or does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl SignRequest {
    /// The request to sign `tree` for `domain`.
    pub fn new(
        tree: &Tree,
        domain: &str,
        public_key: Option<&VerifyingKey>,
        previous: Option<PreviousTree>,
    ) -> Self {
        Self {
            format: REQUEST_FORMAT.to_owned(),
            domain: domain.to_owned(),
            seq: tree.seq(),
            root_content: tree.root().content(),
            root_hash: hex0x(&tree.root().signing_hash()),
            records_digest: hex0x(&records_digest(tree, domain)),
            public_key: public_key.map(encode_public_key),
            enrs: tree.records().iter().map(ToString::to_string).collect(),
            links: tree.links().iter().map(ToString::to_string).collect(),
            previous,
        }
    }

    /// Rebuilds the tree from the request's records and checks every claim against it. The
    /// returned tree is what a signature over this request signs.
    pub fn verify(&self) -> Result<Tree, RequestError> {
        if self.format != REQUEST_FORMAT {
            return Err(RequestError::Format {
                found: self.format.clone(),
                expected: REQUEST_FORMAT,
            });
        }
        let tree = Tree::build(self.seq, parse_records(&self.enrs)?, parse_links(&self.links)?)?;
        tree.check_sizes(&self.domain)?;
        let checks = [
            ("root content", &self.root_content, tree.root().content()),
            ("root hash", &self.root_hash, hex0x(&tree.root().signing_hash())),
            ("records digest", &self.records_digest, hex0x(&records_digest(&tree, &self.domain))),
        ];
        for (field, claimed, rebuilt) in checks {
            if *claimed != rebuilt {
                return Err(RequestError::Mismatch { field, claimed: claimed.clone(), rebuilt });
            }
        }
        if let Some(key) = &self.public_key {
            decode_public_key(key).ok_or_else(|| RequestError::PublicKey(key.clone()))?;
        }
        Ok(tree)
    }

    /// The key that must sign, if the request names one.
    pub fn expected_key(&self) -> Result<Option<VerifyingKey>, RequestError> {
        self.public_key
            .as_deref()
            .map(|k| decode_public_key(k).ok_or_else(|| RequestError::PublicKey(k.to_owned())))
            .transpose()
    }

    /// Nodes and links added and removed against the previous tree.
    pub fn changes(&self) -> Changes {
        let (old_enrs, old_links) = match &self.previous {
            Some(p) => (p.enrs.iter().collect(), p.links.iter().collect()),
            None => (BTreeSet::new(), BTreeSet::new()),
        };
        let new_enrs: BTreeSet<_> = self.enrs.iter().collect();
        let new_links: BTreeSet<_> = self.links.iter().collect();
        let diff = |a: &BTreeSet<&String>, b: &BTreeSet<&String>| {
            a.difference(b).map(|s| (*s).clone()).collect::<Vec<_>>()
        };
        Changes {
            added_enrs: diff(&new_enrs, &old_enrs),
            removed_enrs: diff(&old_enrs, &new_enrs),
            added_links: diff(&new_links, &old_links),
            removed_links: diff(&old_links, &new_links),
        }
    }

    /// Parses a request file.
    pub fn from_json(text: &str) -> Result<Self, RequestError> {
        serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))
    }

    /// The request file's text.
    pub fn to_json(&self) -> String {
        super::definition::to_json_indent4(self)
    }
}

/// Differences between a request and the previous tree. Records count as changed when their
/// text changed (a node that re-signed its ENR shows as removed and added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Records new in this version.
    pub added_enrs: Vec<String>,
    /// Records no longer listed.
    pub removed_enrs: Vec<String>,
    /// Links new in this version.
    pub added_links: Vec<String>,
    /// Links no longer listed.
    pub removed_links: Vec<String>,
}

/// A signature made by a key holder, detached from the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetachedSignature {
    /// [`SIGNATURE_FORMAT`].
    pub format: String,
    /// The domain of the tree.
    pub domain: String,
    /// The signed sequence number.
    pub seq: u64,
    /// The signed text.
    pub root_content: String,
    /// The signer's key, base32 as in `enrtree://` URLs.
    pub public_key: String,
    /// The 65-byte signature, unpadded base64url.
    pub signature: String,
}

impl DetachedSignature {
    /// Signs a verified request's tree.
    pub fn sign(tree: &Tree, domain: &str, key: &SigningKey) -> Self {
        let signature = RootSignature::sign_hash(key, &tree.root().signing_hash());
        Self {
            format: SIGNATURE_FORMAT.to_owned(),
            domain: domain.to_owned(),
            seq: tree.seq(),
            root_content: tree.root().content(),
            public_key: encode_public_key(key.verifying_key()),
            signature: signature.to_string(),
        }
    }

    /// Checks the file's own consistency: format, key, and that the signature verifies over
    /// `root_content` with `public_key`. Returns the key and the signature.
    pub fn verify(&self) -> Result<(VerifyingKey, RootSignature), RequestError> {
        if self.format != SIGNATURE_FORMAT {
            return Err(RequestError::Format {
                found: self.format.clone(),
                expected: SIGNATURE_FORMAT,
            });
        }
        let key = decode_public_key(&self.public_key)
            .ok_or_else(|| RequestError::PublicKey(self.public_key.clone()))?;
        let signature: RootSignature = self.signature.parse()?;
        signature.verify_hash(&key, &keccak256(&self.root_content))?;
        Ok((key, signature))
    }

    /// Parses a signature file.
    pub fn from_json(text: &str) -> Result<Self, RequestError> {
        serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))
    }

    /// The signature file's text.
    pub fn to_json(&self) -> String {
        super::definition::to_json_indent4(self)
    }
}

/// keccak256 over every record below the root as published at `domain`, one
/// `<name> <text>\n` line per record in name order: what the publisher must serve.
pub fn records_digest(tree: &Tree, domain: &str) -> [u8; 32] {
    let mut text = String::new();
    for (label, entry) in tree.entries() {
        text.push_str(&format!("{label}.{domain} {entry}\n"));
    }
    keccak256(text)
}

fn parse_records(enrs: &[String]) -> Result<Vec<NodeRecord>, RequestError> {
    enrs.iter()
        .enumerate()
        .map(|(index, s)| s.parse().map_err(|source| RequestError::Record { index, source }))
        .collect()
}

fn parse_links(links: &[String]) -> Result<Vec<LinkEntry>, RequestError> {
    Ok(links.iter().map(|s| s.parse()).collect::<Result<_, _>>()?)
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", HEXLOWER.encode(bytes))
}
