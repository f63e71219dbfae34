//! Signed agent requests. An agent signs each request body with its node's secp256k1 key; the
//! controller recovers the public key from the signature, so the same code checks enrolments
//! (key taken from the ENR) and reports (key bound at enrolment).
//!
//! The signature is 65 bytes (r, s, recovery id), hex, in [`SIGNATURE_HEADER`], over
//! keccak256 of a domain tag and the body, so it can never pass for a tree-root signature or
//! an Ethereum transaction.

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

/// The HTTP header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-wakufleet-signature";

const DOMAIN: &[u8] = b"wakufleet-agent-request/1\n";

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// No signature header.
    #[error("unsigned request: the {SIGNATURE_HEADER} header is missing")]
    Missing,
    /// Not 65 bytes of hex, or no key recovers from it.
    #[error("malformed signature: {0}")]
    Malformed(String),
}

fn digest(body: &[u8]) -> [u8; 32] {
    let mut data = Vec::with_capacity(DOMAIN.len() + body.len());
    data.extend_from_slice(DOMAIN);
    data.extend_from_slice(body);
    Keccak256::digest(data).into()
}

/// Signs `body` with `key`: the header value.
pub fn sign(key: &SigningKey, body: &[u8]) -> String {
    let (signature, recovery) = key.sign_prehash_recoverable(&digest(body));
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(recovery.to_byte());
    data_encoding::HEXLOWER.encode(&bytes)
}

/// The key that signed `body`, from the header value.
pub fn recover(body: &[u8], header: Option<&str>) -> Result<VerifyingKey, SignedError> {
    let header = header.ok_or(SignedError::Missing)?;
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(header.trim().trim_start_matches("0x").as_bytes())
        .map_err(|e| SignedError::Malformed(e.to_string()))?;
    if bytes.len() != 65 {
        return Err(SignedError::Malformed(format!("{} bytes, expected 65", bytes.len())));
    }
    let signature =
        Signature::from_slice(&bytes[..64]).map_err(|e| SignedError::Malformed(e.to_string()))?;
    if signature.normalize_s() != signature {
        return Err(SignedError::Malformed("high S value".into()));
    }
    let recovery = RecoveryId::from_byte(bytes[64])
        .ok_or_else(|| SignedError::Malformed("bad recovery id".into()))?;
    VerifyingKey::recover_from_prehash(&digest(body), &signature, recovery)
        .map_err(|e| SignedError::Malformed(e.to_string()))
}

/// The hex compressed form of a key, as the registry stores it.
pub fn key_hex(key: &VerifyingKey) -> String {
    data_encoding::HEXLOWER.encode(key.to_sec1_point(true).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let header = sign(&key, b"{\"a\":1}");
        assert_eq!(recover(b"{\"a\":1}", Some(&header)).unwrap(), *key.verifying_key());
        // Another body recovers another key (or none): never the signer's.
        assert_ne!(recover(b"{\"a\":2}", Some(&header)).ok(), Some(*key.verifying_key()));
        assert_eq!(recover(b"x", None), Err(SignedError::Missing));
        assert!(matches!(recover(b"x", Some("zz")), Err(SignedError::Malformed(_))));
        assert!(matches!(recover(b"x", Some(&header[..100])), Err(SignedError::Malformed(_))));
        // The registry's form: 33-byte SEC1 compressed.
        assert_eq!(key_hex(key.verifying_key()).len(), 66);
    }
}
