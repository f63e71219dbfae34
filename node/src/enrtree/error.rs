//! Errors of the tree engine. Every message names the culprit so that a CLI can print it on one
//! line and an operator knows which record, key or file to fix.

use std::path::PathBuf;

/// A TXT string that is not a well-formed tree entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseEntryError {
    /// The text starts with none of the four entry prefixes.
    #[error("unknown entry type: {0:?}")]
    UnknownEntry(String),
    /// A root entry that does not match `enrtree-root:v1 e=… l=… seq=… sig=…`.
    #[error("invalid root entry: {0}")]
    RootSyntax(&'static str),
    /// A subtree hash that is not 12 to 32 bytes of upper-case unpadded base32.
    #[error("invalid subtree hash {0:?}")]
    InvalidHash(String),
    /// A root sequence number that is not a decimal u64.
    #[error("invalid sequence number {0:?}")]
    InvalidSeq(String),
    /// A link without `<key>@`.
    #[error("link has no public key: {0:?}")]
    NoPublicKey(String),
    /// A link whose key is not a base32 33-byte compressed secp256k1 key.
    #[error("link has an invalid public key: {0:?}")]
    BadPublicKey(String),
    /// A link with nothing after `@`.
    #[error("link has an empty domain: {0:?}")]
    EmptyDomain(String),
    /// A root signature that is not base64url, or of the wrong length.
    #[error("invalid root signature: {0}")]
    Signature(#[from] SignatureError),
    /// An `enr:` entry that is not a valid record.
    #[error("invalid enr entry: {0}")]
    Record(#[from] RecordError),
}

/// An ENR that may not enter a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The text does not start with `enr:`.
    #[error("record does not start with \"enr:\"")]
    MissingPrefix,
    /// The text is not canonical unpadded base64url (padding, other alphabet, stray bits).
    #[error("record is not canonical unpadded base64url: {0}")]
    Base64(String),
    /// The RLP does not decode to a record with a valid signature.
    #[error("record does not decode: {0}")]
    Decode(String),
    /// The RLP decodes but is not in canonical form (re-encoding gives other bytes).
    #[error("record is not canonical RLP (trailing or non-minimal bytes)")]
    NonCanonicalRlp,
    /// A port entry that does not decode as a 16-bit integer.
    #[error("record entry {key:?} is not a 16-bit port")]
    BadPort {
        /// The ENR key (`tcp`, `udp6`, `quic`…).
        key: &'static str,
    },
}

/// A root signature that is malformed or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not unpadded base64url.
    #[error("signature is not unpadded base64url")]
    Encoding,
    /// Neither 64 (r‖s) nor 65 (r‖s‖v) bytes.
    #[error("signature has {0} bytes, want 65 (or 64)")]
    Length(usize),
    /// `s` in the upper half of the curve order: valid in plain ECDSA, rejected by libsecp256k1
    /// and therefore by geth.
    #[error("signature has a high S value")]
    HighS,
    /// The recovery byte is neither 0 nor 1.
    #[error("signature recovery byte {0} is not 0 or 1")]
    RecoveryByte(u8),
    /// The signature is well-formed but was not made by the expected key over this root.
    #[error("signature does not verify against {expected_key}")]
    Mismatch {
        /// The key the signature was checked against, base32 as in `enrtree://` URLs.
        expected_key: String,
    },
}

/// A tree that cannot be built, signed or published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// Two records with the same node id.
    #[error("duplicate node id {0}")]
    DuplicateNode(String),
    /// The sequence number is outside what every client accepts.
    #[error(
        "sequence number {0} is out of range: clients accept 1 to 4294967295 (ethereumjs rejects 0, nim stores a u32)"
    )]
    SeqOutOfRange(u64),
    /// A record whose DNS answer would not fit one 512-byte UDP message.
    #[error(
        "record {name} needs a {size}-byte DNS answer, over the 512-byte UDP limit (clients without TCP fallback, like nwaku, cannot read it)"
    )]
    RecordTooLarge {
        /// The full DNS name of the record.
        name: String,
        /// The answer's size in bytes without name compression or EDNS.
        size: usize,
    },
    /// The tree has no signature yet.
    #[error("tree is not signed")]
    Unsigned,
    /// The signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A go-ethereum tree directory that cannot be read or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not the JSON it should be.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
    /// A record in nodes.json is invalid.
    #[error("nodes.json entry {id}: {source}")]
    Record {
        /// The key of the entry.
        id: String,
        /// Why the record is invalid.
        source: RecordError,
    },
    /// The key of a nodes.json entry is not the node id of its record.
    #[error("nodes.json entry {key}: key does not match the record's node id {actual}")]
    IdMismatch {
        /// The key in nodes.json.
        key: String,
        /// The node id of the record.
        actual: String,
    },
    /// The `seq` of a nodes.json entry is not the record's sequence number.
    #[error("nodes.json entry {id}: seq {listed} does not match the record's seq {actual}")]
    SeqMismatch {
        /// The node id.
        id: String,
        /// The `seq` field in nodes.json.
        listed: u64,
        /// The record's own sequence number.
        actual: u64,
    },
    /// A link in enrtree-info.json is invalid.
    #[error("enrtree-info.json link {link:?}: {source}")]
    Link {
        /// The link text.
        link: String,
        /// Why it is invalid.
        source: ParseEntryError,
    },
    /// The url in enrtree-info.json is invalid.
    #[error("enrtree-info.json url {url:?}: {source}")]
    Url {
        /// The url text.
        url: String,
        /// Why it is invalid.
        source: ParseEntryError,
    },
    /// The stored signature does not decode.
    #[error("enrtree-info.json signature: {0}")]
    Signature(SignatureError),
}
