//! Root signatures and tree public keys.
//!
//! geth signs `keccak256("enrtree-root:v1 e=… l=… seq=…")` with libsecp256k1: RFC 6979
//! deterministic nonces, low S, 65 bytes `r‖s‖v` with `v ∈ {0, 1}`, written as unpadded
//! base64url. k256 with `sign_prehash_recoverable` produces the identical bytes. geth's parser
//! insists on 65 bytes, so we always emit 65; some signers (reth's) emit 64, and js-waku and
//! reth verify only `r‖s`, so we accept 64 too when verifying.

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey, signature::hazmat::PrehashVerifier};

use super::error::SignatureError;
use crate::crypto::compressed_public_key;

/// A root signature: 65 bytes as produced by geth, or 64 bytes without the recovery byte.
#[derive(Clone, PartialEq, Eq)]
pub struct RootSignature(Vec<u8>);

impl std::fmt::Debug for RootSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootSignature({})", self)
    }
}

impl RootSignature {
    /// Signs a 32-byte hash (geth's `crypto.Sign`): deterministic, low S, 65 bytes.
    pub fn sign_hash(key: &SigningKey, hash: &[u8; 32]) -> Self {
        let (signature, recovery_id) = key.sign_prehash_recoverable(hash);
        let mut bytes = signature.to_bytes().to_vec();
        bytes.push(recovery_id.to_byte());
        Self(bytes)
    }

    /// Takes raw signature bytes, checking only their shape (64 or 65 bytes, v ∈ {0, 1}).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        match bytes.len() {
            64 => Ok(Self(bytes.to_vec())),
            65 if bytes[64] <= 1 => Ok(Self(bytes.to_vec())),
            65 => Err(SignatureError::RecoveryByte(bytes[64])),
            n => Err(SignatureError::Length(n)),
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Verifies the signature over `hash` against `key`. High-S signatures are rejected, as
    /// libsecp256k1 (geth, nim) rejects them.
    pub fn verify_hash(&self, key: &VerifyingKey, hash: &[u8; 32]) -> Result<(), SignatureError> {
        let mismatch = || SignatureError::Mismatch { expected_key: encode_public_key(key) };
        let signature = Signature::from_slice(&self.0[..64]).map_err(|_| mismatch())?;
        if signature.normalize_s() != signature {
            return Err(SignatureError::HighS);
        }
        key.verify_prehash(hash, &signature).map_err(|_| mismatch())
    }
}

impl std::fmt::Display for RootSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&BASE64URL_NOPAD.encode(&self.0))
    }
}

impl std::str::FromStr for RootSignature {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(|_| SignatureError::Encoding)?;
        Self::from_bytes(&bytes)
    }
}

/// The `enrtree://` form of a public key: unpadded base32 of the 33-byte compressed key.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    BASE32_NOPAD.encode(&compressed_public_key(key))
}

/// Parses the `enrtree://` form of a public key. Only a canonical 33-byte compressed key is
/// accepted, so that `encode_public_key(decode_public_key(s)) == s`.
pub fn decode_public_key(s: &str) -> Option<VerifyingKey> {
    let bytes = BASE32_NOPAD.decode(s.as_bytes()).ok()?;
    if bytes.len() != 33 {
        return None;
    }
    VerifyingKey::from_sec1_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keccak256;

    fn key(hex: &str) -> SigningKey {
        let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        SigningKey::from_slice(&bytes).unwrap()
    }

    #[test]
    fn nim_dnsdisc_signing_vector() {
        let key = key("58d23b55bc9cdce1f18c2500f40ff4ab7245df9a89505e9b1fa4851f623d241d");
        let content =
            "enrtree-root:v1 e=JWXYDBPXYWG6FX3GMDIBFA6CJ4 l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=1";
        let sig = RootSignature::sign_hash(&key, &keccak256(content));
        assert_eq!(
            sig.to_string(),
            "8BGq3_ZasQUPvDyU7cqBpsHVjn4CP5GsFf7Xf9M1bJARCXII3SrD7e_I8Q6qw9oLItHapevgFlfPfwhqPXFRrAA"
        );
        assert_eq!(
            encode_public_key(key.verifying_key()),
            "APD3STDEKDQJ2AQZC6V7IU6SY6FBR66FV7Q22EPUISQRJMEPR7WPS"
        );
    }

    #[test]
    fn geth_test_key_encodes_to_known_public_key() {
        let key = key("dc599867fc513f8f5e2c2c9c489cde5e71362d1d9ec6e693e0de063236ed1240");
        let encoded = encode_public_key(key.verifying_key());
        assert_eq!(encoded, "AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2");
        assert_eq!(decode_public_key(&encoded).as_ref(), Some(key.verifying_key()));
    }

    #[test]
    fn high_s_twin_of_a_valid_signature_is_rejected() {
        let key = key("dc599867fc513f8f5e2c2c9c489cde5e71362d1d9ec6e693e0de063236ed1240");
        let hash = keccak256("content");
        let sig = RootSignature::sign_hash(&key, &hash);
        sig.verify_hash(key.verifying_key(), &hash).unwrap();
        // s' = n - s verifies in plain ECDSA but must be refused.
        let low = Signature::from_slice(&sig.as_bytes()[..64]).unwrap();
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let mut bytes = high.to_bytes().to_vec();
        bytes.push(sig.as_bytes()[64] ^ 1);
        let high = RootSignature::from_bytes(&bytes).unwrap();
        assert_eq!(high.verify_hash(key.verifying_key(), &hash), Err(SignatureError::HighS));
    }

    #[test]
    fn signature_shape_is_checked() {
        assert_eq!(RootSignature::from_bytes(&[0; 63]), Err(SignatureError::Length(63)));
        assert_eq!(RootSignature::from_bytes(&[27; 65]), Err(SignatureError::RecoveryByte(27)));
        assert!(RootSignature::from_bytes(&[1; 64]).is_ok());
        assert_eq!("a=".parse::<RootSignature>(), Err(SignatureError::Encoding));
    }

    #[test]
    fn public_key_decoding_rejects_bad_keys() {
        assert!(decode_public_key("AP62DT7WOTEQZGQZOU474PP3KMEGVTTE7A7NPRXKX3DUD57").is_none());
        assert!(
            decode_public_key("AP62DT7WONEQZGQZOU474PP3KMEGVTTE7A7NPRXKX3DUD57TQHGIA").is_none()
        );
    }
}
