//! Peer exchange `/vac/waku/peer-exchange/2.0.0-alpha1` (34/WAKU2-PEER-EXCHANGE): a node short of
//! peers asks a connected peer for ENRs; the answer comes from the records its discovery found.
//!
//! nwaku quirks followed here: responses carry `status_code` (10) and `status_desc` (11), and
//! nwaku refuses an RPC without field 1 (`query`) — even a response — so ours always has one.

use libp2p::StreamProtocol;

use crate::enrtree::NodeRecord;

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/peer-exchange/2.0.0-alpha1");
/// nwaku's read limit for PX messages: 10 × 150 KiB + 64 KiB.
pub const MAX_SIZE: usize = 10 * 150 * 1024 + 64 * 1024;
/// Records offered at most (nwaku's `MaxPeersCacheSize`).
pub const MAX_PEERS: usize = 60;
/// Peers asked for (nwaku's `DefaultPXNumPeersReq` is 5; we ask for a few more).
pub const DEFAULT_ASK: u64 = 10;
/// Success.
pub const STATUS_SUCCESS: u32 = 200;
/// No records to offer.
pub const STATUS_SERVICE_UNAVAILABLE: u32 = 503;

/// One offered peer.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerInfo {
    /// The RLP-encoded ENR.
    #[prost(bytes = "vec", tag = "1")]
    pub enr: Vec<u8>,
}

/// The question.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerExchangeQuery {
    /// How many peers.
    #[prost(uint64, tag = "1")]
    pub num_peers: u64,
}

/// The answer.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerExchangeResponse {
    /// The peers.
    #[prost(message, repeated, tag = "1")]
    pub peer_infos: Vec<PeerInfo>,
    /// nwaku's status code.
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// nwaku's status text.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
}

/// The envelope both directions use.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerExchangeRpc {
    /// Set in requests, and (empty) in our responses for nwaku.
    #[prost(message, optional, tag = "1")]
    pub query: Option<PeerExchangeQuery>,
    /// Set in responses.
    #[prost(message, optional, tag = "2")]
    pub response: Option<PeerExchangeResponse>,
}

impl PeerExchangeRpc {
    /// A request for `num_peers` peers.
    pub fn request(num_peers: u64) -> Self {
        Self { query: Some(PeerExchangeQuery { num_peers }), response: None }
    }

    /// A response offering `records`.
    pub fn respond(records: &[NodeRecord]) -> Self {
        let peer_infos: Vec<PeerInfo> =
            records.iter().map(|r| PeerInfo { enr: r.to_rlp() }).collect();
        let (status_code, status_desc) = if peer_infos.is_empty() {
            (STATUS_SERVICE_UNAVAILABLE, Some("no peers to offer".to_owned()))
        } else {
            (STATUS_SUCCESS, None)
        };
        Self {
            query: Some(PeerExchangeQuery::default()),
            response: Some(PeerExchangeResponse {
                peer_infos,
                status_code: Some(status_code),
                status_desc,
            }),
        }
    }

    /// The valid records of a response; invalid ones are skipped.
    pub fn records(&self) -> Vec<NodeRecord> {
        self.response
            .iter()
            .flat_map(|r| &r.peer_infos)
            .filter_map(|info| NodeRecord::from_rlp(&info.enr).ok())
            .collect()
    }
}

/// The request-response codec.
pub type Codec = crate::codec::ProtoCodec<PeerExchangeRpc, PeerExchangeRpc>;

/// A codec with nwaku's limits.
pub fn codec() -> Codec {
    Codec::new(MAX_SIZE, MAX_SIZE)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use prost::Message;

    use super::*;

    #[test]
    fn responses_carry_a_query_field_for_nwaku_and_round_trip() {
        let empty = PeerExchangeRpc::respond(&[]).encode_to_vec();
        assert_eq!(&empty[..2], &[0x0a, 0x00], "field 1 present even in responses");
        let record =
            NodeRecord::sign(&crate::crypto::generate_key(), 1, Ipv4Addr::LOCALHOST, 1, 2).unwrap();
        let rpc = PeerExchangeRpc::respond(std::slice::from_ref(&record));
        let decoded = PeerExchangeRpc::decode(rpc.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.records(), vec![record]);
        assert_eq!(decoded.response.unwrap().status_code, Some(STATUS_SUCCESS));
        let mut junk = rpc.clone();
        junk.response.as_mut().unwrap().peer_infos.push(PeerInfo { enr: vec![1, 2, 3] });
        assert_eq!(junk.records().len(), 1, "bad records are skipped");
    }
}
