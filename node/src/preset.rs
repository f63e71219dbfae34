//! nwaku's `--preset`: a named network's cluster, shard count and message size, so an operator
//! joins it with one flag (logos-delivery v0.38's presets). Values given explicitly win over
//! the preset's, with a warning: a preset left on the wrong cluster is how clients ended up
//! with six dialled peers and an empty mesh (logos-delivery #4114).

use std::{fmt, str::FromStr};

/// A network nwaku knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The Waku Network: cluster 1, 8 autosharded shards, RLN.
    Twn,
    /// Logos' development network: cluster 3, 8 shards, no RLN.
    LogosDev,
    /// Logos' test network: cluster 2, 8 shards, no RLN.
    LogosTest,
    /// Status' production fleet: cluster 16, 1 shard, 1 MiB messages.
    StatusProd,
}

/// What a preset sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetValues {
    /// `--cluster-id`.
    pub cluster_id: u16,
    /// `--num-shards-in-network`; the node relays all of them unless `--shard` says otherwise.
    pub num_shards_in_network: u16,
    /// `--max-msg-size`, bytes.
    pub max_msg_size: usize,
    /// Whether the network requires RLN relay (rate-limiting proofs on every message).
    pub rln: bool,
}

impl Preset {
    /// Every preset, in the order `--help` lists them.
    pub const ALL: [Self; 4] = [Self::Twn, Self::LogosDev, Self::LogosTest, Self::StatusProd];

    /// The values it sets.
    pub fn values(self) -> PresetValues {
        const KIB: usize = 1024;
        match self {
            Self::Twn => PresetValues {
                cluster_id: 1,
                num_shards_in_network: 8,
                max_msg_size: 150 * KIB,
                rln: true,
            },
            Self::LogosDev => PresetValues {
                cluster_id: 3,
                num_shards_in_network: 8,
                max_msg_size: 150 * KIB,
                rln: false,
            },
            // The same network as logos.dev, on its own cluster.
            Self::LogosTest => PresetValues { cluster_id: 2, ..Self::LogosDev.values() },
            Self::StatusProd => PresetValues {
                cluster_id: 16,
                num_shards_in_network: 1,
                max_msg_size: 1024 * KIB,
                rln: false,
            },
        }
    }

    /// nwaku's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twn => "twn",
            Self::LogosDev => "logos.dev",
            Self::LogosTest => "logos.test",
            Self::StatusProd => "status.prod",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name no preset has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset; known: twn, logos.dev, logos.test, status.prod")]
pub struct UnknownPreset;

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s)).ok_or(UnknownPreset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for preset in Preset::ALL {
            assert_eq!(preset.to_string().parse(), Ok(preset));
        }
        assert_eq!("Logos.Dev".parse(), Ok(Preset::LogosDev));
        let error = "logos.prod".parse::<Preset>().unwrap_err().to_string();
        assert!(error.contains("twn, logos.dev, logos.test, status.prod"), "{error}");
    }

    #[test]
    fn values_are_the_networks_as_nwaku_defines_them() {
        assert_eq!(Preset::Twn.values().cluster_id, 1);
        assert!(Preset::Twn.values().rln);
        assert_eq!(Preset::LogosDev.values().cluster_id, 3);
        assert_eq!(Preset::LogosTest.values().cluster_id, 2);
        let status = Preset::StatusProd.values();
        assert_eq!((status.cluster_id, status.num_shards_in_network), (16, 1));
        assert_eq!(status.max_msg_size, 1 << 20);
    }
}
