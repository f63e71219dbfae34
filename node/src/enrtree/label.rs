//! Subdomain labels: `base32(keccak256(entry text)[..16])`, and the hash validation geth applies
//! to labels inside branches and roots.

use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};

use crate::crypto::keccak256;

/// Length of a label we emit: 16 bytes of hash, 26 base32 characters.
pub const LABEL_LEN: usize = 26;
/// geth accepts abbreviated hashes down to 12 bytes (20 base32 characters).
pub const MIN_HASH_BYTES: usize = 12;
/// ... and up to a full 32-byte hash.
pub const MAX_HASH_BYTES: usize = 32;

/// RFC 4648 base32, upper case only, no padding. Unlike `data_encoding::BASE32_NOPAD` it does
/// not insist that unused trailing bits are zero, because Go's decoder (and so geth) does not:
/// `enrtree-branch:AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB` is a valid branch in geth's tests.
pub(crate) static BASE32_LENIENT: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.check_trailing_bits = false;
    // The specification is a constant that is known to be valid.
    #[allow(clippy::expect_used)]
    spec.encoding().expect("valid base32 specification")
});

/// The subdomain label of an entry's text.
pub fn subdomain(entry_text: &str) -> String {
    let hash = keccak256(entry_text.as_bytes());
    data_encoding::BASE32_NOPAD.encode(&hash[..16])
}

/// Decodes a subtree hash as geth's `isValidHash` does: upper-case base32 of 12 to 32 bytes.
pub fn decode_hash(label: &str) -> Option<Vec<u8>> {
    if label.contains(['\n', '\r']) {
        return None;
    }
    let bytes = BASE32_LENIENT.decode(label.as_bytes()).ok()?;
    (MIN_HASH_BYTES..=MAX_HASH_BYTES).contains(&bytes.len()).then_some(bytes)
}

/// Whether `label` is a valid subtree hash.
pub fn is_valid_hash(label: &str) -> bool {
    decode_hash(label).is_some()
}

/// Whether the text fetched from `<label>.<domain>` is the entry the label promises: keccak256 of
/// the text must start with the label's bytes (geth's check; abbreviated labels are legal).
pub fn matches_label(label: &str, entry_text: &str) -> bool {
    let Some(prefix) = decode_hash(label) else {
        return false;
    };
    keccak256(entry_text.as_bytes()).starts_with(&prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_branch_label_is_the_well_known_one() {
        assert_eq!(subdomain("enrtree-branch:"), "FDXN3SN67NA5DKA4J2GOK7BVQI");
    }

    #[test]
    fn bad_enr_label_matches_geth_vector() {
        assert_eq!(subdomain("enr:-----"), "INDMVBZEEQ4ESVYAKGIYU74EAA");
    }

    #[test]
    fn hash_lengths_follow_geth() {
        assert!(is_valid_hash("AAAAAAAAAAAAAAAAAAAA"));
        assert!(is_valid_hash("BBBBBBBBBBBBBBBBBBBB"));
        assert!(!is_valid_hash("1"));
        assert!(!is_valid_hash(&"A".repeat(53)));
        assert!(!is_valid_hash("aaaaaaaaaaaaaaaaaaaa"));
        assert!(!is_valid_hash("AAAAAAAAAAAAAAAAAAA\n"));
        assert!(!is_valid_hash("AAAAAAAAAAAAAAAA"));
    }

    #[test]
    fn label_check_accepts_only_the_right_text() {
        let text = "enrtree-branch:";
        assert!(matches_label("FDXN3SN67NA5DKA4J2GOK7BVQI", text));
        assert!(matches_label("FDXN3SN67NA5DKA4J2GO", text));
        assert!(!matches_label("FDXN3SN67NA5DKA4J2GOK7BVQI", "enrtree-branch:X"));
    }
}
