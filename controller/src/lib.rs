//! The wakufleet controller: fleet registry, tree policy, signing and publication.
//!
//! # Layout
//!
//! - [`publish`] — getting signed trees into DNS. So far: [`publish::zone::TxtZone`], the
//!   record set of a tree zone, and [`publish::dns_server::DnsServer`], the built-in
//!   authoritative server (hickory; UDP and TCP; SOA/NS; multi-string TXT; atomic zone swaps).
//!
//! The HTTP API, registry, enrolment, tree policy and the other publishers arrive with the
//! controller issue.

pub mod publish;
