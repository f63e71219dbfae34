//! Strict ENR validation: what may enter a tree.
//!
//! Bad records poison clients: go-waku drops a whole tree when one record does not convert,
//! geth's `SyncTree` stops at the first error, Besu crashed on undecodable base64. So before a
//! record is listed it must be signed, canonical unpadded base64url of canonical RLP, and every
//! port entry must fit 16 bits (geth checks the same since PR #35312).

use std::{fmt, net::Ipv4Addr, str::FromStr, sync::Arc};

use alloy_rlp::Decodable;
use data_encoding::BASE64URL_NOPAD;
use k256::ecdsa::SigningKey;

use super::error::RecordError;

/// An ENR as the `enr` crate models it, with secp256k1 ("v4") identities.
pub type Enr = enr::Enr<SigningKey>;

/// The text prefix of an ENR.
pub const ENR_PREFIX: &str = "enr:";

/// ENR keys that hold ports; each must decode as a u16.
const PORT_KEYS: [&str; 6] = ["tcp", "tcp6", "udp", "udp6", "quic", "quic6"];

/// A validated node record, kept with its canonical text. Cloning is cheap (shared): a tree
/// holds each record twice, in its sorted list and as a leaf entry.
#[derive(Clone)]
pub struct NodeRecord(Arc<Inner>);

struct Inner {
    enr: Enr,
    text: String,
}

impl NodeRecord {
    /// Wraps a record built in this process (always canonical).
    pub fn from_enr(enr: Enr) -> Result<Self, RecordError> {
        // `to_base64` already starts with `enr:`.
        let text = enr.to_base64();
        text.parse()
    }

    /// Signs a new record for `key` with an IPv4 address and TCP/UDP ports: what a node on one
    /// address announces, and what generated test and benchmark fleets use.
    pub fn sign(
        key: &SigningKey,
        seq: u64,
        ip: Ipv4Addr,
        tcp: u16,
        udp: u16,
    ) -> Result<Self, RecordError> {
        let enr = Enr::builder()
            .seq(seq)
            .ip4(ip)
            .tcp4(tcp)
            .udp4(udp)
            .build(key)
            .map_err(|e| RecordError::Decode(e.to_string()))?;
        Self::from_enr(enr)
    }

    /// The record's RLP bytes (how peer exchange carries records).
    pub fn to_rlp(&self) -> Vec<u8> {
        // The text is canonical base64 of the RLP, checked when it was parsed.
        BASE64URL_NOPAD.decode(&self.0.text.as_bytes()[ENR_PREFIX.len()..]).unwrap_or_default()
    }

    /// Parses RLP bytes with the same checks as text.
    pub fn from_rlp(bytes: &[u8]) -> Result<Self, RecordError> {
        format!("{ENR_PREFIX}{}", BASE64URL_NOPAD.encode(bytes)).parse()
    }

    /// The decoded record.
    pub fn enr(&self) -> &Enr {
        &self.0.enr
    }

    /// Whether `other` says the same as this record: the same seq and key-value pairs, whatever
    /// the signature (ECDSA signatures of one content differ from signing to signing).
    pub fn same_content(&self, other: &NodeRecord) -> bool {
        self.enr().seq() == other.enr().seq() && self.enr().iter().eq(other.enr().iter())
    }

    /// The node id (keccak256 of the uncompressed public key).
    pub fn node_id(&self) -> [u8; 32] {
        self.0.enr.node_id().raw()
    }

    /// The node id as 64 lower-case hex characters, as in geth's nodes.json.
    pub fn node_id_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.node_id())
    }

    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        self.0.enr.seq()
    }

    /// The canonical text, `enr:` + base64url.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}

impl FromStr for NodeRecord {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix(ENR_PREFIX).ok_or(RecordError::MissingPrefix)?;
        // data-encoding refuses padding, foreign characters and non-zero trailing bits, so a
        // successful decode means `body` is the one canonical spelling of these bytes.
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|e| RecordError::Base64(e.to_string()))?;
        let enr =
            Enr::decode(&mut bytes.as_slice()).map_err(|e| RecordError::Decode(e.to_string()))?;
        if alloy_rlp::encode(&enr) != bytes {
            return Err(RecordError::NonCanonicalRlp);
        }
        for key in PORT_KEYS {
            if let Some(Err(_)) = enr.get_decodable::<u16>(key) {
                return Err(RecordError::BadPort { key });
            }
        }
        Ok(Self(Arc::new(Inner { enr, text: s.to_owned() })))
    }
}

impl fmt::Display for NodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for NodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRecord")
            .field("id", &self.node_id_hex())
            .field("seq", &self.seq())
            .finish_non_exhaustive()
    }
}

impl PartialEq for NodeRecord {
    fn eq(&self, other: &Self) -> bool {
        self.0.text == other.0.text
    }
}

impl Eq for NodeRecord {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_content_signed_again_is_the_same_record() {
        let key = crate::crypto::generate_key();
        let a = NodeRecord::sign(&key, 3, Ipv4Addr::LOCALHOST, 9000, 9000).unwrap();
        let b = NodeRecord::sign(&key, 3, Ipv4Addr::LOCALHOST, 9000, 9000).unwrap();
        assert!(a.same_content(&b));
        let other_port = NodeRecord::sign(&key, 3, Ipv4Addr::LOCALHOST, 9001, 9000).unwrap();
        assert!(!a.same_content(&other_port));
        let other_seq = NodeRecord::sign(&key, 4, Ipv4Addr::LOCALHOST, 9000, 9000).unwrap();
        assert!(!a.same_content(&other_seq));
    }
}
