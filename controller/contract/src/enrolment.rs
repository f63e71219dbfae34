//! The enrolment: an agent redeems a one-time token and binds its node's key. The body is signed
//! as [`crate::signing`] describes, with the key of the ENR it carries.

use serde::{Deserialize, Serialize};

/// Enrolment: an agent redeems a one-time token and binds its node's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Enrolment {
    /// The one-time token.
    pub token: String,
    /// The node's ENR; the request must be signed with its key.
    pub enr: String,
    /// A label for operators (defaults to the token's).
    #[serde(default)]
    pub label: Option<String>,
    /// When this was signed, Unix ms.
    pub sent_at: i64,
}

/// The controller's answer to an accepted enrolment (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrolled {
    /// The node id (hex) the controller enrolled: the one reports must name.
    pub node_id: String,
}
