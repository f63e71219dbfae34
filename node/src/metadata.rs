//! `/vac/waku/metadata/1.0.0` (66/WAKU2-METADATA): on every new connection both sides tell each
//! other their cluster and shards; a peer of another cluster is disconnected (64/WAKU2-NETWORK).
//!
//! Wire quirks: js-waku reads and writes `shards` (field 2) only as *unpacked* varints, while
//! nwaku writes field 2 unpacked and field 3 packed and reads either. We write both, like nwaku,
//! and read field 3 when present, else field 2. js-waku records the *request* it receives as our
//! shard info, so we must send one on every connection, with our real cluster and shards.

use libp2p::StreamProtocol;

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/metadata/1.0.0");
/// nwaku's limit for metadata messages.
pub const MAX_SIZE: usize = 1024;

/// The request and the response have the same shape.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WakuMetadata {
    /// The sender's cluster.
    #[prost(uint32, optional, tag = "1")]
    pub cluster_id: Option<u32>,
    /// The sender's shards, unpacked (js-waku reads only this form).
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    pub shards: Vec<u32>,
    /// The same shards packed, as nwaku also writes them.
    #[prost(uint32, repeated, packed = "true", tag = "3")]
    pub shards_packed: Vec<u32>,
}

impl WakuMetadata {
    /// Our announcement.
    pub fn new(cluster: u16, shards: &[u16]) -> Self {
        let shards: Vec<u32> = shards.iter().map(|&s| u32::from(s)).collect();
        Self { cluster_id: Some(u32::from(cluster)), shards_packed: shards.clone(), shards }
    }

    /// The shards, from whichever field the sender filled.
    pub fn shard_list(&self) -> Vec<u32> {
        if self.shards_packed.is_empty() { self.shards.clone() } else { self.shards_packed.clone() }
    }
}

/// The request-response codec of the protocol.
pub type Codec = crate::codec::ProtoCodec<WakuMetadata, WakuMetadata>;

/// A codec with the protocol's size limits.
pub fn codec() -> Codec {
    Codec::new(MAX_SIZE, MAX_SIZE)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn shards_are_written_unpacked_and_packed() {
        let bytes = WakuMetadata::new(16, &[1, 32]).encode_to_vec();
        // field 1 = 16; field 2 unpacked twice; field 3 packed [1, 32].
        assert_eq!(bytes, [0x08, 16, 0x10, 1, 0x10, 32, 0x1a, 2, 1, 32]);
    }

    #[test]
    fn reads_js_waku_unpacked_and_nwaku_packed_forms() {
        // js-waku: cluster 0, shards [0, 3] unpacked in field 2.
        let js = WakuMetadata::decode(&[0x08, 0, 0x10, 0, 0x10, 3][..]).unwrap();
        assert_eq!((js.cluster_id, js.shard_list()), (Some(0), vec![0, 3]));
        // packed field 2 (proto3 parsers accept both encodings).
        let packed2 = WakuMetadata::decode(&[0x08, 1, 0x12, 2, 4, 5][..]).unwrap();
        assert_eq!(packed2.shard_list(), vec![4, 5]);
        // nwaku: both fields.
        let nwaku =
            WakuMetadata::decode(&WakuMetadata::new(1, &[0, 7]).encode_to_vec()[..]).unwrap();
        assert_eq!(nwaku.shard_list(), vec![0, 7]);
        // no cluster at all.
        assert_eq!(WakuMetadata::decode(&[][..]).unwrap().cluster_id, None);
    }
}
