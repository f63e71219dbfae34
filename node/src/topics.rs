//! Pubsub topics, content topics and autosharding (relay-sharding spec).
//!
//! - static shards: `/waku/2/rs/<cluster>/<shard>`;
//! - content topics: `/{application}/{version}/{name}/{encoding}`, optionally prefixed with a
//!   generation (`/0/…`);
//! - autosharding: `shard = u64_be(sha256(application ‖ version)[24..32]) mod num_shards`.

use std::{fmt, str::FromStr};

use sha2::{Digest, Sha256};

/// Highest shard index a cluster may use.
pub const MAX_SHARD: u16 = 1023;

/// A topic string that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not `/waku/2/rs/<cluster>/<shard>`.
    #[error("invalid pubsub topic {0:?}: expected /waku/2/rs/<cluster>/<shard>")]
    Pubsub(String),
    /// Not `/{application}/{version}/{name}/{encoding}`.
    #[error("invalid content topic {0:?}: expected /<application>/<version>/<name>/<encoding>")]
    Content(String),
    /// A generation other than 0 (no implementation supports others).
    #[error("content topic {0:?}: only generation 0 is supported")]
    Generation(String),
    /// Autosharding over zero shards.
    #[error("autosharding needs at least one shard")]
    NoShards,
}

/// A static-shard pubsub topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardTopic {
    /// The cluster (0 global, 1 The Waku Network, 16 Status…).
    pub cluster: u16,
    /// The shard within the cluster, 0..=1023.
    pub shard: u16,
}

impl ShardTopic {
    /// `/waku/2/rs/<cluster>/<shard>`.
    pub fn new(cluster: u16, shard: u16) -> Self {
        Self { cluster, shard }
    }
}

impl fmt::Display for ShardTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/waku/2/rs/{}/{}", self.cluster, self.shard)
    }
}

impl FromStr for ShardTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TopicError::Pubsub(s.to_owned());
        let rest = s.strip_prefix("/waku/2/rs/").ok_or_else(err)?;
        let (cluster, shard) = rest.split_once('/').ok_or_else(err)?;
        let number = |t: &str| -> Result<u16, TopicError> {
            if t.is_empty()
                || !t.bytes().all(|b| b.is_ascii_digit())
                || (t.len() > 1 && t.starts_with('0'))
            {
                return Err(err());
            }
            t.parse().map_err(|_| err())
        };
        let topic = Self { cluster: number(cluster)?, shard: number(shard)? };
        if topic.shard > MAX_SHARD {
            return Err(err());
        }
        Ok(topic)
    }
}

/// A content topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentTopic {
    /// Whether the text carried the `/0` generation prefix (kept for round trips).
    pub explicit_generation: bool,
    /// Application name.
    pub application: String,
    /// Application version.
    pub version: String,
    /// Topic name.
    pub name: String,
    /// Payload encoding.
    pub encoding: String,
}

impl ContentTopic {
    /// The shard this topic maps to among `num_shards` (autosharding, generation 0).
    pub fn shard(&self, num_shards: u16) -> Result<u16, TopicError> {
        if num_shards == 0 {
            return Err(TopicError::NoShards);
        }
        let hash = Sha256::new()
            .chain_update(self.application.as_bytes())
            .chain_update(self.version.as_bytes())
            .finalize();
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&hash[24..32]);
        let shard = u64::from_be_bytes(tail) % u64::from(num_shards);
        // Below num_shards, which is a u16.
        Ok(u16::try_from(shard).unwrap_or(0))
    }
}

impl fmt::Display for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.explicit_generation {
            f.write_str("/0")?;
        }
        write!(f, "/{}/{}/{}/{}", self.application, self.version, self.name, self.encoding)
    }
}

impl FromStr for ContentTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TopicError::Content(s.to_owned());
        let parts: Vec<&str> = s.strip_prefix('/').ok_or_else(err)?.split('/').collect();
        let (explicit_generation, parts) = match parts.len() {
            4 => (false, &parts[..]),
            5 if parts[0] == "0" => (true, &parts[1..]),
            5 => return Err(TopicError::Generation(s.to_owned())),
            _ => return Err(err()),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err());
        }
        Ok(Self {
            explicit_generation,
            application: parts[0].to_owned(),
            version: parts[1].to_owned(),
            name: parts[2].to_owned(),
            encoding: parts[3].to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autosharding_vectors_from_js_waku() {
        let cases = [
            ("/toychat/2/huilong/proto", 8, 3),
            ("/myapp/1/latest/proto", 8, 0),
            ("/waku/2/content/test.js", 8, 1),
            ("/0/toychat/2/huilong/proto", 8, 3),
            ("/statusim/1/community/cbor", 8, 4),
            ("/app/22/sometopic/someencoding", 8, 2),
            ("/app/27/sometopic/someencoding", 8, 5),
            ("/app/20/sometopic/someencoding", 8, 7),
            ("/app/29/sometopic/someencoding", 8, 6),
            ("/app/20/sometopic/someencoding", 16, 15),
            ("/app/20/sometopic/someencoding", 2, 1),
            ("/app/20/sometopic/someencoding", 1, 0),
        ];
        for (topic, shards, want) in cases {
            let topic: ContentTopic = topic.parse().unwrap();
            assert_eq!(topic.shard(shards).unwrap(), want, "{topic} over {shards}");
        }
    }

    #[test]
    fn topics_round_trip_and_reject_junk() {
        for s in ["/waku/2/rs/0/0", "/waku/2/rs/16/1023", "/waku/2/rs/1/7"] {
            assert_eq!(s.parse::<ShardTopic>().unwrap().to_string(), s);
        }
        for s in [
            "/waku/2/rs/0",
            "/waku/2/rs/0/1024",
            "/waku/2/rs/01/0",
            "/waku/2/rs/a/0",
            "/waku/2/default-waku/proto",
            "/waku/2/rs/70000/0",
        ] {
            assert!(s.parse::<ShardTopic>().is_err(), "{s}");
        }
        for s in ["/toychat/2/huilong/proto", "/0/toychat/2/huilong/proto"] {
            assert_eq!(s.parse::<ContentTopic>().unwrap().to_string(), s);
        }
        for s in
            ["toychat/2/huilong/proto", "/toychat/2/proto", "/1/toychat/2/huilong/proto", "/a//b/c"]
        {
            assert!(s.parse::<ContentTopic>().is_err(), "{s}");
        }
        assert_eq!("/a/1/b/c".parse::<ContentTopic>().unwrap().shard(0), Err(TopicError::NoShards));
    }
}
