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

/// The Ethereum address of a key: the last 20 bytes of keccak256 of the uncompressed point
/// without its 0x04 prefix. Keystores record it so that tools can tell keys apart unlocked.
pub fn address(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_sec1_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
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
