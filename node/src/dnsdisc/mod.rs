//! EIP-1459 discovery over DNS: fetch a tree, check it, follow its links.
//!
//! - [`resolver`] — the [`TxtResolver`] trait with a hickory implementation (UDP, falling back
//!   to TCP when an answer is truncated; any server and port) and an in-memory fake.
//! - [`client`] — [`TreeClient`]: resolves a tree URL, verifies the root signature and every
//!   entry's hash, follows links, and reports each bad entry while collecting all good ones.

pub mod client;
pub mod resolver;

pub use client::{ClientConfig, EntryError, EntryErrorKind, Resolution, ResolvedTree, TreeClient};
pub use resolver::{HickoryTxtResolver, LookupError, MapResolver, TxtResolver};
