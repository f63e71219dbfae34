//! Publication of signed trees.
//!
//! - [`zone`] — [`zone::TxtZone`]: the TXT records of a zone, built from a tree or by hand.
//! - [`dns_server`] — [`dns_server::DnsServer`]: serves zones authoritatively over UDP and TCP.

pub mod dns_server;
pub mod zone;
