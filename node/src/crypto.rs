//! keccak256 and secp256k1 key helpers shared by the tree engine, the keystore and the CLI.

use k256::ecdsa::{SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

/// Legacy Keccak-256 (the Ethereum hash, not SHA3-256).
pub fn keccak256(data: impl AsRef<[u8]>) -> [u8; 32] {
    Keccak256::digest(data.as_ref()).into()
}

/// The 33-byte SEC1 compressed form of a public key.
pub fn compressed_public_key(key: &VerifyingKey) -> [u8; 33] {
    let point = key.to_sec1_point(true);
    let mut out = [0u8; 33];
    out.copy_from_slice(point.as_bytes());
    out
}

/// A key's node id (ENR "v4" identity, discv5): keccak256 of the uncompressed point without
/// its 0x04 prefix.
pub fn node_id(key: &VerifyingKey) -> [u8; 32] {
    let point = key.to_sec1_point(false);
    keccak256(&point.as_bytes()[1..])
}

/// The Ethereum address of a key: the last 20 bytes of its [`node_id`]. Keystores record it
/// so that tools can tell keys apart unlocked.
pub fn address(key: &VerifyingKey) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(&node_id(key)[12..]);
    out
}

/// Generates a fresh secp256k1 key from the operating system's random source.
pub fn generate_key() -> SigningKey {
    loop {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        // The OS random source failing is unrecoverable for key generation.
        #[allow(clippy::expect_used)]
        getrandom::fill(bytes.as_mut()).expect("operating system random source failed");
        // A uniformly random 32-byte string is a valid scalar except with negligible probability.
        if let Ok(key) = SigningKey::from_slice(bytes.as_ref()) {
            return key;
        }
    }
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("operating system random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_the_records_and_the_address_its_tail() {
        let key = generate_key();
        let record =
            crate::enrtree::NodeRecord::sign(&key, 1, [127, 0, 0, 1].into(), 60_000, 9_000)
                .expect("a record");
        let id = node_id(key.verifying_key());
        assert_eq!(id, record.node_id());
        assert_eq!(address(key.verifying_key())[..], id[12..]);
        assert_ne!(node_id(generate_key().verifying_key()), id);
    }
}
