//! Publication of signed trees.
//!
//! - [`zone`] — [`zone::TxtZone`]: the TXT records of a zone, built from a tree or by hand.
//! - [`changes`] — [`changes::ChangeSet`]: what turns one published record set into the next,
//!   in the only safe order (create leaves → update roots → delete stale).
//! - [`dns_server`] — [`dns_server::DnsServer`]: serves zones authoritatively over UDP and TCP.
//! - [`rfc2136`] — [`rfc2136::Rfc2136Publisher`]: RFC 2136 dynamic updates, TSIG-signed, to a
//!   primary the operator runs (Knot, BIND, …).
//! - [`zone_file`] — [`zone_file::ZoneFilePublisher`]: one zone file per zone, replaced
//!   atomically on every publication, for a server that loads zone files.
//! - [`route53`] — [`route53::Route53ChangeSetPublisher`]: numbered `ChangeResourceRecordSets`
//!   change-batch files for `aws route53 change-resource-record-sets`.
//! - [`cloudflare`] — [`cloudflare::CloudflareChangeSetPublisher`]: numbered Cloudflare
//!   `dns_records/batch` request files, and the step that fills in record ids.
//! - `reply_socket` (private) — UDP answers sent from the address each query was sent to.
//! - `record_set`, `change_files`, `files` (private) — what the file publishers share: planning
//!   a change set against the records they keep (idempotent), the numbered file series with its
//!   state, and crash-safe writes.
//!
//! Every publisher implements [`Publisher`]. The controller applies a change set in two steps:
//! first the creations and updates (new leaves, then the new root), and only after the old
//! root's TTL has passed the deletions, so a client holding the old root can still walk it.

mod change_files;
pub mod changes;
pub mod cloudflare;
pub mod dns_server;
mod files;
mod prebuilt;
mod record_set;
mod reply_socket;
pub mod response_rate;
pub mod rfc2136;
pub mod route53;
pub mod zone;
pub mod zone_file;

use futures::future::BoxFuture;

pub use changes::{ChangeSet, RecordChange};

/// Why a publication step failed. The change set is then applied again later from the start:
/// every step is idempotent.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The target refused the change (e.g. a DNS server's RCODE, an API's error).
    #[error("{target} refused the change: {message}")]
    Refused {
        /// Which publisher.
        target: String,
        /// What it said.
        message: String,
    },
    /// The target could not be reached or the exchange broke off.
    #[error("{target} unreachable: {message}")]
    Unreachable {
        /// Which publisher.
        target: String,
        /// What happened.
        message: String,
    },
    /// A record or name cannot be expressed for this target.
    #[error("invalid record for {target}: {message}")]
    Invalid {
        /// Which publisher.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// Writing an export file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Somewhere signed tree records are published: the built-in DNS server, a DNS server taking
/// RFC 2136 updates, zone files, cloud DNS change-set files.
pub trait Publisher: Send + Sync {
    /// A short name for logs, metrics and the audit log (`builtin`, `rfc2136:ns1:53`, …).
    fn name(&self) -> String;

    /// Whether this publisher serves names under `domain` (a tree outside an RFC 2136
    /// publisher's zone is simply not its business).
    fn covers(&self, domain: &str) -> bool {
        let _ = domain;
        true
    }

    /// Applies `changes` in its order: creations, then updates, then deletions. Must be
    /// idempotent (creating a record that exists with the same value, or deleting one that is
    /// gone, is not an error), because a change set interrupted by a crash is applied again.
    fn apply<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<(), PublishError>>;
}

/// A publisher limited to one zone: it gets only the trees inside the zone, and every change
/// set names the zone as its origin (so a zone-file publisher keeps one file for the zone, a
/// change-set publisher names its files after it).
pub struct InZone {
    zone: String,
    inner: Box<dyn Publisher>,
}

impl InZone {
    /// `None` when `zone` is not a domain name.
    pub fn new(zone: &str, inner: Box<dyn Publisher>) -> Option<Self> {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        zone::absolute_name(&zone)?;
        Some(Self { zone, inner })
    }
}

impl Publisher for InZone {
    fn name(&self) -> String {
        format!("{}@{}", self.inner.name(), self.zone)
    }

    fn covers(&self, domain: &str) -> bool {
        zone::in_zone(domain, &self.zone) && self.inner.covers(domain)
    }

    fn apply<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let changes = ChangeSet { origin: self.zone.clone(), ..changes.clone() };
            self.inner.apply(&changes).await
        })
    }
}
