//! Waku's ENR fields (specs standards/core/enr.md, nwaku `waku_enr/`):
//!
//! - `waku2`: one byte of capability bits (relay, store, filter, lightpush, sync, mix);
//! - `multiaddrs`: `[u16 BE length][binary multiaddr]…`, peer id stripped — for addresses that
//!   `ip`/`tcp` cannot express (dns4, ws, wss);
//! - `rs`: `u16 BE cluster | u8 count | count × u16 BE shard`; `rsv`: `u16 BE cluster | 128-byte
//!   bit vector` (bit order as nwaku/go-waku: shard s is bit `s % 8`, LSB first, of byte `s / 8`).
//!
//! The whole record must stay within EIP-778's 300 bytes.

use std::{fmt, net::Ipv4Addr};

use alloy_rlp::Header;
use k256::ecdsa::{SigningKey, VerifyingKey};
use libp2p::{Multiaddr, PeerId, identity, multiaddr::Protocol};

use crate::{crypto::compressed_public_key, enrtree::record::Enr, topics::ShardTopic};

/// ENR key of the capability bits.
pub const WAKU2_KEY: &str = "waku2";
/// ENR key of the extra multiaddrs.
pub const MULTIADDRS_KEY: &str = "multiaddrs";
/// ENR key of the shard index list.
pub const RS_KEY: &str = "rs";
/// ENR key of the shard bit vector.
pub const RSV_KEY: &str = "rsv";

/// A Waku ENR that cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakuEnrError {
    /// `waku2` is not a one-byte value.
    #[error("waku2 must be one byte")]
    Waku2,
    /// `multiaddrs` is not a list of length-prefixed multiaddrs.
    #[error("invalid multiaddrs entry: {0}")]
    Multiaddrs(String),
    /// `rs` or `rsv` is malformed.
    #[error("invalid shard entry: {0}")]
    Shards(String),
    /// The public key does not convert to a libp2p key.
    #[error("public key is not a libp2p secp256k1 key")]
    PublicKey,
    /// The record could not be built (usually: over 300 bytes).
    #[error("cannot build ENR: {0}")]
    Build(String),
}

/// The `waku2` capability bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u8);

impl Capabilities {
    /// Relay (bit 0).
    pub const RELAY: Self = Self(1);
    /// Store (bit 1).
    pub const STORE: Self = Self(1 << 1);
    /// Filter (bit 2).
    pub const FILTER: Self = Self(1 << 2);
    /// Lightpush (bit 3).
    pub const LIGHTPUSH: Self = Self(1 << 3);
    /// Store sync (bit 4).
    pub const SYNC: Self = Self(1 << 4);
    /// Mix (bit 5, nwaku).
    pub const MIX: Self = Self(1 << 5);

    const NAMES: [(Self, &'static str); 6] = [
        (Self::RELAY, "relay"),
        (Self::STORE, "store"),
        (Self::FILTER, "filter"),
        (Self::LIGHTPUSH, "lightpush"),
        (Self::SYNC, "sync"),
        (Self::MIX, "mix"),
    ];

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set (discv5 peers must have at least one).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            Self::NAMES.iter().filter(|(c, _)| self.contains(*c)).map(|(_, n)| *n).collect();
        f.write_str(&names.join(","))
    }
}

/// The shards a node relays, as in `rs`/`rsv`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RelayShards {
    /// The cluster.
    pub cluster: u16,
    /// The shards, ascending.
    pub shards: Vec<u16>,
}

impl RelayShards {
    /// The shards of one cluster.
    pub fn new(cluster: u16, mut shards: Vec<u16>) -> Self {
        shards.sort_unstable();
        shards.dedup();
        Self { cluster, shards }
    }

    /// The pubsub topics.
    pub fn topics(&self) -> Vec<ShardTopic> {
        self.shards.iter().map(|&s| ShardTopic::new(self.cluster, s)).collect()
    }

    /// The `rs` encoding (index list).
    pub fn to_rs(&self) -> Result<Vec<u8>, WakuEnrError> {
        let count = u8::try_from(self.shards.len())
            .map_err(|_| WakuEnrError::Shards("more than 255 shards need rsv".into()))?;
        let mut out = Vec::with_capacity(3 + 2 * self.shards.len());
        out.extend_from_slice(&self.cluster.to_be_bytes());
        out.push(count);
        for shard in &self.shards {
            out.extend_from_slice(&shard.to_be_bytes());
        }
        Ok(out)
    }

    /// Decodes `rs`.
    pub fn from_rs(bytes: &[u8]) -> Result<Self, WakuEnrError> {
        let bad = |m: &str| WakuEnrError::Shards(format!("rs: {m}"));
        if bytes.len() < 3 {
            return Err(bad("shorter than 3 bytes"));
        }
        let cluster = u16::from_be_bytes([bytes[0], bytes[1]]);
        let count = usize::from(bytes[2]);
        let body = &bytes[3..];
        if body.len() != 2 * count {
            return Err(bad("length does not match the count"));
        }
        let shards = body.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        Ok(Self::new(cluster, shards))
    }

    /// Decodes `rsv` (bit order of nwaku and go-waku).
    pub fn from_rsv(bytes: &[u8]) -> Result<Self, WakuEnrError> {
        if bytes.len() != 130 {
            return Err(WakuEnrError::Shards(format!("rsv: {} bytes, want 130", bytes.len())));
        }
        let cluster = u16::from_be_bytes([bytes[0], bytes[1]]);
        let mut shards = Vec::new();
        for (index, byte) in bytes[2..].iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    // index < 128, so the shard is below 1024.
                    shards.push(u16::try_from(index * 8 + bit).unwrap_or(u16::MAX));
                }
            }
        }
        Ok(Self::new(cluster, shards))
    }
}

/// What a Waku node announces in its ENR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WakuEnrConfig {
    /// Sequence number.
    pub seq: u64,
    /// IPv4 address.
    pub ip: Option<Ipv4Addr>,
    /// libp2p TCP port.
    pub tcp: Option<u16>,
    /// discv5 UDP port.
    pub udp: Option<u16>,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// Extra addresses (ws, wss, dns4…), without `/p2p`.
    pub multiaddrs: Vec<Multiaddr>,
    /// Relay shards.
    pub shards: Option<RelayShards>,
}

/// Builds and signs a Waku ENR (with a plain k256 key, or discv5's `CombinedKey`).
pub fn build_enr<K: enr::EnrKey>(
    key: &K,
    config: &WakuEnrConfig,
) -> Result<enr::Enr<K>, WakuEnrError> {
    let mut builder = enr::Enr::<K>::builder();
    builder.seq(config.seq.max(1));
    if let Some(ip) = config.ip {
        builder.ip4(ip);
    }
    if let Some(tcp) = config.tcp {
        builder.tcp4(tcp);
    }
    if let Some(udp) = config.udp {
        builder.udp4(udp);
    }
    builder.add_value(WAKU2_KEY, &[config.capabilities.0].as_slice());
    let multiaddrs;
    if !config.multiaddrs.is_empty() {
        multiaddrs = encode_multiaddrs(&config.multiaddrs)?;
        builder.add_value(MULTIADDRS_KEY, &multiaddrs.as_slice());
    }
    let rs;
    if let Some(shards) = &config.shards {
        rs = shards.to_rs()?;
        builder.add_value(RS_KEY, &rs.as_slice());
    }
    builder.build(key).map_err(|e| WakuEnrError::Build(e.to_string()))
}

/// The Waku view of any ENR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakuEnr {
    /// Capabilities (empty when `waku2` is absent).
    pub capabilities: Capabilities,
    /// Addresses from `multiaddrs`.
    pub multiaddrs: Vec<Multiaddr>,
    /// Shards from `rs` (preferred) or `rsv`.
    pub shards: Option<RelayShards>,
    /// The libp2p peer id of the record's key.
    pub peer_id: PeerId,
    /// IPv4 address and TCP port, when present.
    pub tcp: Option<(Ipv4Addr, u16)>,
    /// IPv4 address and UDP port, when present.
    pub udp: Option<(Ipv4Addr, u16)>,
    /// IPv6 address and TCP port (`ip6`, `tcp6`), when present.
    pub tcp6: Option<(std::net::Ipv6Addr, u16)>,
}

impl WakuEnr {
    /// Only the capabilities and shards of any ENR (discv5's records among them), as a
    /// discovery filter reads them: no signature check (whoever handed over the record checked
    /// it), no key or address decoding.
    pub fn relay_fields<K: enr::EnrKey>(
        enr: &enr::Enr<K>,
    ) -> Result<(Capabilities, Option<RelayShards>), WakuEnrError> {
        let capabilities = match raw_bytes(enr, WAKU2_KEY)? {
            None => Capabilities::default(),
            Some(bytes) if bytes.len() == 1 => Capabilities(bytes[0]),
            Some(_) => return Err(WakuEnrError::Waku2),
        };
        let shards = match (raw_bytes(enr, RS_KEY)?, raw_bytes(enr, RSV_KEY)?) {
            (Some(rs), _) => Some(RelayShards::from_rs(&rs)?),
            (None, Some(rsv)) => Some(RelayShards::from_rsv(&rsv)?),
            (None, None) => None,
        };
        Ok((capabilities, shards))
    }

    /// Reads the Waku fields of `enr`.
    pub fn decode(enr: &Enr) -> Result<Self, WakuEnrError> {
        let (capabilities, shards) = Self::relay_fields(enr)?;
        let multiaddrs = raw_bytes(enr, MULTIADDRS_KEY)?
            .map(|b| decode_multiaddrs(&b))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            capabilities,
            multiaddrs,
            shards,
            peer_id: peer_id(&enr.public_key())?,
            tcp: enr.ip4().zip(enr.tcp4()),
            udp: enr.ip4().zip(enr.udp4()),
            tcp6: enr.ip6().zip(enr.tcp6()),
        })
    }

    /// Every address to dial, each ending in `/p2p/<peer id>`: `ip4/tcp` first, `ip6/tcp6`,
    /// then `multiaddrs`.
    pub fn dial_addresses(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        if let Some((ip, port)) = self.tcp {
            out.push(Multiaddr::empty().with(Protocol::Ip4(ip)).with(Protocol::Tcp(port)));
        }
        if let Some((ip, port)) = self.tcp6 {
            out.push(Multiaddr::empty().with(Protocol::Ip6(ip)).with(Protocol::Tcp(port)));
        }
        out.extend(self.multiaddrs.iter().cloned());
        out.into_iter().map(|a| a.with_p2p(self.peer_id).unwrap_or_else(|a| a)).collect()
    }
}

/// The libp2p peer id of a secp256k1 key.
pub fn peer_id(key: &VerifyingKey) -> Result<PeerId, WakuEnrError> {
    let public = identity::secp256k1::PublicKey::try_from_bytes(&compressed_public_key(key))
        .map_err(|_| WakuEnrError::PublicKey)?;
    Ok(identity::PublicKey::from(public).to_peer_id())
}

/// The libp2p keypair of a node key.
pub fn keypair(key: &SigningKey) -> Result<identity::Keypair, WakuEnrError> {
    let mut bytes = key.to_bytes();
    let secret = identity::secp256k1::SecretKey::try_from_bytes(&mut bytes[..])
        .map_err(|_| WakuEnrError::PublicKey)?;
    Ok(identity::secp256k1::Keypair::from(secret).into())
}

/// `[u16 BE length][multiaddr bytes]…`, each without `/p2p`.
pub fn encode_multiaddrs(addrs: &[Multiaddr]) -> Result<Vec<u8>, WakuEnrError> {
    let mut out = Vec::new();
    for addr in addrs {
        let stripped: Multiaddr = addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
        let bytes = stripped.to_vec();
        let len = u16::try_from(bytes.len())
            .map_err(|_| WakuEnrError::Multiaddrs("address over 65535 bytes".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Decodes the `multiaddrs` value.
pub fn decode_multiaddrs(mut bytes: &[u8]) -> Result<Vec<Multiaddr>, WakuEnrError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 2 {
            return Err(WakuEnrError::Multiaddrs("truncated length".into()));
        }
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let rest = &bytes[2..];
        if rest.len() < len {
            return Err(WakuEnrError::Multiaddrs("truncated address".into()));
        }
        let addr = Multiaddr::try_from(rest[..len].to_vec())
            .map_err(|e| WakuEnrError::Multiaddrs(e.to_string()))?;
        out.push(addr);
        bytes = &rest[len..];
    }
    Ok(out)
}

fn raw_bytes<K: enr::EnrKey>(
    enr: &enr::Enr<K>,
    key: &str,
) -> Result<Option<Vec<u8>>, WakuEnrError> {
    let Some(mut raw) = enr.get_raw_rlp(key) else {
        return Ok(None);
    };
    Header::decode_bytes(&mut raw, false)
        .map(|b| Some(b.to_vec()))
        .map_err(|e| WakuEnrError::Multiaddrs(format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrtree::NodeRecord;

    const TWN_SANDBOX: &str = "enr:-QESuED0qW1BCmF-oH_ARGPr97Nv767bl_43uoy70vrbah3EaCAdK3Q0iRQ6wkSTTpdrg_dU_NC2ydO8leSlRpBX4pxiAYJpZIJ2NIJpcIRA4VDAim11bHRpYWRkcnO4XAArNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwAtNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQOTd-h5owwj-cx7xrmbvQKU8CV3Fomfdvcv1MBc-67T5oN0Y3CCdl-DdWRwgiMohXdha3UyDw";

    #[test]
    fn twn_sandbox_enr_decodes_to_the_listed_fields() {
        let record: NodeRecord = TWN_SANDBOX.parse().unwrap();
        let waku = WakuEnr::decode(record.enr()).unwrap();
        assert_eq!(waku.capabilities, Capabilities(0x0f));
        assert_eq!(waku.capabilities.to_string(), "relay,store,filter,lightpush");
        assert_eq!(waku.shards, Some(RelayShards::new(1, (0..8).collect())));
        assert_eq!(waku.tcp, Some((Ipv4Addr::new(64, 225, 80, 192), 30303)));
        assert_eq!(waku.udp, Some((Ipv4Addr::new(64, 225, 80, 192), 9000)));
        let addrs: Vec<String> = waku.multiaddrs.iter().map(ToString::to_string).collect();
        assert_eq!(
            addrs,
            [
                "/dns4/node-01.do-ams3.waku.sandbox.status.im/tcp/30303",
                "/dns4/node-01.do-ams3.waku.sandbox.status.im/tcp/8000/wss",
            ]
        );
        assert_eq!(
            waku.peer_id.to_string(),
            "16Uiu2HAmNaeL4p3WEYzC9mgXBmBWSgWjPHRvatZTXnp8Jgv3iKsb"
        );
        assert!(
            waku.dial_addresses()
                .iter()
                .all(|a| a.to_string().ends_with(&waku.peer_id.to_string()))
        );
    }

    #[test]
    fn js_waku_relay_enr_vector() {
        let s = "enr:-KO4QANhx2beNpDw8LfX8hdyoNocMD5WCBY28EjKA50DyJv9QDxE5IWafE_O_nhbA31gmasx3WjpH517do3GqmzQvmaAgmlkgnY0gmlwhMCosvuKbXVsdGlhZGRyc4wACgTAqLL7Bh9C3QOJc2VjcDI1NmsxoQOmp7OJvC-UX4KeIJDW1CQQvhSA33OWgRrKccOcTG7dYYN0Y3CCH0KFd2FrdTIB";
        let waku = WakuEnr::decode(s.parse::<NodeRecord>().unwrap().enr()).unwrap();
        assert_eq!(waku.capabilities, Capabilities::RELAY);
        assert_eq!(waku.tcp, Some((Ipv4Addr::new(192, 168, 178, 251), 8002)));
        assert_eq!(waku.multiaddrs[0].to_string(), "/ip4/192.168.178.251/tcp/8002/ws");
    }

    #[test]
    fn nodekey_to_peer_id_vectors() {
        let key = SigningKey::from_slice(
            &data_encoding::HEXLOWER
                .decode(b"e419c3cf4f09ac3babdf61856e6faa0e0c6a7d97674d5401a0114616549c7632")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            peer_id(key.verifying_key()).unwrap().to_string(),
            "16Uiu2HAmF6oAsd23RMAnZb3NJgxXrExxBTPMdEoih232iAZkviU2"
        );
        assert_eq!(
            keypair(&key).unwrap().public().to_peer_id(),
            peer_id(key.verifying_key()).unwrap()
        );
        let enr_key = data_encoding::HEXLOWER
            .decode(b"039377e879a30c23f9cc7bc6b99bbd0294f0257716899f76f72fd4c05cfbaed3e6")
            .unwrap();
        let vk = VerifyingKey::from_sec1_bytes(&enr_key).unwrap();
        assert_eq!(
            peer_id(&vk).unwrap().to_string(),
            "16Uiu2HAmNaeL4p3WEYzC9mgXBmBWSgWjPHRvatZTXnp8Jgv3iKsb"
        );
    }

    #[test]
    fn built_enrs_round_trip_and_stay_under_300_bytes() {
        let key = crate::crypto::generate_key();
        let config = WakuEnrConfig {
            seq: 3,
            ip: Some(Ipv4Addr::LOCALHOST),
            tcp: Some(60000),
            udp: Some(9000),
            capabilities: Capabilities::RELAY | Capabilities::STORE,
            multiaddrs: vec![
                "/ip4/127.0.0.1/tcp/8000/ws".parse().unwrap(),
                "/dns4/node-01.example.org/tcp/443/wss".parse().unwrap(),
            ],
            shards: Some(RelayShards::new(16, vec![32, 1, 64, 128, 256])),
        };
        let enr = build_enr(&key, &config).unwrap();
        let record = NodeRecord::from_enr(enr).unwrap();
        let waku = WakuEnr::decode(record.enr()).unwrap();
        assert_eq!(waku.capabilities, config.capabilities);
        assert_eq!(waku.multiaddrs, config.multiaddrs);
        assert_eq!(waku.shards, Some(RelayShards::new(16, vec![1, 32, 64, 128, 256])));
        assert_eq!(record.seq(), 3);

        let too_many = WakuEnrConfig {
            multiaddrs: (0..20)
                .map(|i| format!("/dns4/node-{i}.example.org/tcp/443/wss").parse().unwrap())
                .collect(),
            ..config
        };
        assert!(matches!(build_enr(&key, &too_many), Err(WakuEnrError::Build(_))));
    }

    #[test]
    fn rsv_uses_lsb_first_bits_and_malformed_fields_are_errors() {
        let mut rsv = vec![0, 1];
        rsv.extend([0u8; 128]);
        rsv[2] = 0b0000_0101; // shards 0 and 2
        rsv[3] = 0b1000_0000; // shard 15
        assert_eq!(RelayShards::from_rsv(&rsv).unwrap(), RelayShards::new(1, vec![0, 2, 15]));
        assert!(RelayShards::from_rsv(&rsv[..100]).is_err());
        assert!(RelayShards::from_rs(&[0, 1, 2, 0]).is_err());
        assert!(decode_multiaddrs(&[0, 5, 1]).is_err());
        assert!(decode_multiaddrs(&[0, 2, 0xff, 0xff]).is_err());
    }
}
