//! EIP-1459 node lists: "enrtree" DNS trees, built and signed byte-for-byte like go-ethereum's
//! `devp2p dns`, so that every client (geth, go-waku, nwaku, js-waku, reth, ethereumjs) accepts
//! them. Pure code: nothing here touches the network or the disk.
//!
//! A tree is a set of TXT records under one domain:
//!
//! ```text
//! <domain>          enrtree-root:v1 e=<enr-root> l=<link-root> seq=<n> sig=<sig>
//! <HASH>.<domain>   enrtree-branch:<HASH>,<HASH>,...
//! <HASH>.<domain>   enr:<base64url record>            (only below e=)
//! <HASH>.<domain>   enrtree://<key>@<other domain>   (only below l=)
//! ```
//!
//! where `<HASH>` is the unpadded base32 of the first 16 bytes of keccak256 of the record text.
//!
//! - [`entry`] — the four entry types, each `FromStr` + `Display`.
//! - [`label`] — subdomain hashing and hash validation.
//! - [`signature`] — root signing (65-byte r‖s‖v) and verification (64 or 65 bytes, low S).
//! - [`record`] — strict ENR validation before a record may enter a tree.
//! - [`tree`] — geth-compatible building, signing and TXT output.
//! - [`wire`] — DNS character-string splitting and UDP answer sizes.
//! - [`definition`] — go-ethereum's tree directory (`enrtree-info.json` + `nodes.json`).
//! - [`zone`] — zone-file text with correctly quoted multi-string TXT.
//! - [`request`] — the two-party signing files (signing request, detached signature).

pub mod definition;
pub mod entry;
mod error;
pub mod label;
pub mod record;
pub mod request;
pub mod signature;
pub mod tree;
pub mod wire;
pub mod zone;

pub use entry::{BranchEntry, Entry, LinkEntry, RootEntry};
pub use error::{DefinitionError, ParseEntryError, RecordError, SignatureError, TreeError};
pub use record::NodeRecord;
pub use tree::Tree;
