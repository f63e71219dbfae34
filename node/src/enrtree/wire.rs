//! How tree records look on the DNS wire: TXT character-strings of at most 255 bytes, and the
//! size of the answer a resolver receives.
//!
//! EIP-1459 budgets one 512-byte UDP message per record. nwaku's resolver has no TCP fallback and
//! no EDNS, so a record whose answer is truncated is simply lost to it. We size answers the way
//! hickory serves them: no compression of the answer's owner name, no OPT record.

/// The longest RFC 1035 character-string.
pub const MAX_CHARACTER_STRING: usize = 255;
/// The classic DNS-over-UDP message limit (no EDNS).
pub const MAX_UDP_MESSAGE: usize = 512;

/// Splits a TXT value into character-strings of at most 255 bytes. Clients concatenate them
/// without a separator. Tree records are ASCII, so splitting on bytes never cuts a character;
/// for other text the cut falls on the nearest earlier character boundary.
pub fn split_character_strings(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len().div_ceil(MAX_CHARACTER_STRING).max(1));
    let mut rest = text;
    while rest.len() > MAX_CHARACTER_STRING {
        let mut cut = MAX_CHARACTER_STRING;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Bytes of `name` in wire format: each label with its length byte, then the root byte.
pub fn name_wire_len(name: &str) -> usize {
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return 1;
    }
    name.split('.').map(|label| label.len() + 1).sum::<usize>() + 1
}

/// Size of the DNS response carrying one TXT record with `text` at `name`, answered to a plain
/// (non-EDNS) query: header, question, and an answer whose owner name is not compressed.
pub fn udp_answer_size(name: &str, text: &str) -> usize {
    let name_len = name_wire_len(name);
    let rdata: usize = split_character_strings(text).iter().map(|s| s.len() + 1).sum();
    let header = 12;
    let question = name_len + 4;
    let answer = name_len + 10 + rdata;
    header + question + answer
}

/// Characters of a leaf's label: the base32 of an entry's truncated hash.
pub const LABEL_LEN: usize = 26;

/// Size of the answer for a leaf of the tree at `domain` carrying `text` (its label's length
/// is fixed, so this is known before the tree is built).
pub fn leaf_answer_size(domain: &str, text: &str) -> usize {
    udp_answer_size(&format!("{}.{domain}", "A".repeat(LABEL_LEN)), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_255_bytes_and_rejoins() {
        let text = "x".repeat(600);
        let parts = split_character_strings(&text);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [255, 255, 90]);
        assert_eq!(parts.concat(), text);
        assert_eq!(split_character_strings(""), [""]);
        assert_eq!(split_character_strings(&"y".repeat(255)).len(), 1);
    }

    #[test]
    fn answer_size_matches_hickory_measurement() {
        // Measured against hickory-server 0.26 (eip1459.md §7): a 296-character ENR answered
        // without EDNS in 416 bytes, for an owner name of 46 wire bytes.
        let owner = "ABCDEFGHIJKLMNOPQRSTUVWXYZ.nodes.example.org";
        assert_eq!(name_wire_len(owner), 46);
        assert_eq!(udp_answer_size(owner, &"e".repeat(296)), 416);
        // A 365-character geth branch under sandbox.waku.nodes.status.im fits (507 bytes).
        let owner = "ABCDEFGHIJKLMNOPQRSTUVWXYZ.sandbox.waku.nodes.status.im";
        assert_eq!(name_wire_len(owner), 57);
        assert_eq!(udp_answer_size(owner, &"b".repeat(365)), 507);
    }
}
