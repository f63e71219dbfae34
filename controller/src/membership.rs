//! Membership is the operator's: a node's roles (boot, store, relay, …), label and the ceiling
//! on what it may serve (shards, cluster) come from its enrolment token and, later, from the
//! operators' API — never from a report. A report says what the node *runs* (its services,
//! its shards, its cluster), which may be less than the ceiling but never more.

use serde::{Deserialize, Serialize};

/// The roles an operator can give a node. A tree lists nodes by role.
pub const ROLES: [&str; 6] = ["boot", "store", "relay", "filter", "lightpush", "peer-exchange"];

/// Refuses role names outside [`ROLES`] (and more than one of each).
pub fn check_roles(roles: &[String]) -> Result<(), String> {
    if let Some(unknown) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(format!("unknown role {unknown:?}; roles are {}", ROLES.join(", ")));
    }
    let mut sorted = roles.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != roles.len() {
        return Err("a role is listed twice".into());
    }
    Ok(())
}

/// What a node may serve at most: a report claiming more is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ceiling {
    /// Relay shards it may serve (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<u16>>,
    /// The cluster it must be on (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<u16>,
}

impl Ceiling {
    /// Checked when a token is made.
    pub fn check(&self) -> Result<(), String> {
        if let Some(shards) = &self.shards
            && (shards.is_empty()
                || shards.len() > 1024
                || shards.iter().any(|&s| s > node::topics::MAX_SHARD))
        {
            return Err(format!(
                "shards: 1..1024 shards, each at most {}",
                node::topics::MAX_SHARD
            ));
        }
        Ok(())
    }

    /// Why a report of `shards` on `cluster` exceeds this ceiling, if it does.
    pub fn exceeded_by(&self, shards: &[u16], cluster: Option<u16>) -> Option<String> {
        if let Some(allowed) = self.cluster_id
            && cluster.is_some_and(|c| c != allowed)
        {
            return Some(format!(
                "reported cluster {} but the node was enrolled for cluster {allowed}",
                cluster.unwrap_or_default()
            ));
        }
        if let Some(allowed) = &self.shards {
            let extra: Vec<u16> = shards.iter().copied().filter(|s| !allowed.contains(s)).collect();
            if !extra.is_empty() {
                return Some(format!(
                    "reported shards {extra:?} beyond the {allowed:?} it was enrolled for"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_repeated_roles_are_refused() {
        assert_eq!(check_roles(&["boot".into(), "store".into()]), Ok(()));
        assert!(check_roles(&["admin".into()]).unwrap_err().contains("unknown role \"admin\""));
        assert!(check_roles(&["boot".into(), "boot".into()]).is_err());
    }

    #[test]
    fn a_report_may_say_less_than_the_ceiling_but_never_more() {
        let ceiling = Ceiling { shards: Some(vec![0, 1]), cluster_id: Some(1) };
        assert_eq!(ceiling.exceeded_by(&[0], Some(1)), None);
        assert_eq!(ceiling.exceeded_by(&[], None), None);
        assert!(ceiling.exceeded_by(&[0, 5], Some(1)).unwrap().contains("[5]"));
        assert!(ceiling.exceeded_by(&[0], Some(2)).unwrap().contains("cluster 2"));
        assert_eq!(Ceiling::default().exceeded_by(&[7], Some(9)), None, "no ceiling");
        assert!(Ceiling { shards: Some(vec![]), cluster_id: None }.check().is_err());
    }
}
