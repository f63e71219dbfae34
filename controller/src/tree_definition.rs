//! Tree definitions: a tree's name, domain, signer and policy, checked and stored — the same
//! rules whether the definition comes from the configuration file at startup or from
//! `PUT /api/v1/trees/{name}`. Also the two small languages definitions are written in: a
//! [`Signer`] (`key:<name>` or `offline`) and a [`TreeLink`] (`enrtree://…` or `tree:<name>`).

use std::{fmt, str::FromStr};

use node::enrtree::LinkEntry;
use serde::{Deserialize, Serialize};

use crate::{
    config::{ControllerConfig, TreeConfig},
    db::{Db, DbError, trees::TreeRow},
    keyring::Keyring,
};

/// Who signs a tree's versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Signer {
    /// `key:<name>`: a keystore unlocked on this controller signs online.
    Key(String),
    /// `offline`: a key holder signs each version with `wakufleet tree sign-offline`.
    Offline,
}

impl FromStr for Signer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("key:") {
            _ if s == "offline" => Ok(Self::Offline),
            Some(name) if !name.is_empty() => Ok(Self::Key(name.to_owned())),
            _ => Err(format!("signer {s:?}: use key:<name> or offline")),
        }
    }
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(name) => write!(f, "key:{name}"),
            Self::Offline => f.write_str("offline"),
        }
    }
}

impl TryFrom<String> for Signer {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Signer> for String {
    fn from(signer: Signer) -> Self {
        signer.to_string()
    }
}

/// A link from one tree to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TreeLink {
    /// `tree:<name>`: a tree of this controller, under whatever key it has.
    Tree(String),
    /// `enrtree://<key>@<domain>`: any tree.
    Url(LinkEntry),
}

impl FromStr for TreeLink {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("tree:") {
            Some(name) if !name.is_empty() => Ok(Self::Tree(name.to_owned())),
            Some(_) => Err(format!("link {s:?}: tree:<name> needs a name")),
            None => s.parse().map(Self::Url).map_err(|e| format!("link {s:?}: {e}")),
        }
    }
}

impl fmt::Display for TreeLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tree(name) => write!(f, "tree:{name}"),
            Self::Url(url) => write!(f, "{url}"),
        }
    }
}

impl TryFrom<String> for TreeLink {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TreeLink> for String {
    fn from(link: TreeLink) -> Self {
        link.to_string()
    }
}

/// Why a definition is refused.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A name, domain or signer that cannot work.
    #[error("{0}")]
    Invalid(String),
    /// A policy outside the client limits.
    #[error("{0}")]
    Policy(String),
    /// Conflicts with what is defined or published.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Checks `tree` against the configuration and the unlocked keys without touching the
/// database (what `controller --check` runs); returns its domain, normalised.
pub fn check(
    config: &ControllerConfig,
    keyring: &Keyring,
    tree: &TreeConfig,
) -> Result<String, DefinitionError> {
    let TreeConfig { name, domain, signer, policy } = tree;
    let invalid = |m: String| Err(DefinitionError::Invalid(m));
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return invalid("tree names are 1..64 of [A-Za-z0-9_-]".into());
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty()
        || domain.len() > 200
        || crate::publish::zone::absolute_name(&domain).is_none()
    {
        return invalid(format!("invalid domain {domain:?}"));
    }
    if let Some(dns) = &config.dns
        && !crate::publish::zone::in_zone(&domain, &dns.zone)
    {
        return invalid(format!("domain {domain} is not inside the served zone {}", dns.zone));
    }
    if let Signer::Key(key) = signer
        && keyring.get(key).is_none()
    {
        return invalid(format!("signer {signer}: no key {key:?} is unlocked on this controller"));
    }
    policy.validate().map_err(DefinitionError::Policy)?;
    Ok(domain)
}

/// Checks and stores `tree`; `actor` is written to the audit log. Returns whether the tree
/// existed.
pub async fn define(
    db: &Db,
    config: &ControllerConfig,
    keyring: &Keyring,
    tree: &TreeConfig,
    actor: &str,
) -> Result<bool, DefinitionError> {
    let domain = check(config, keyring, tree)?;
    let TreeConfig { name, signer, policy, .. } = tree;
    let existing = db.tree(name).await?;
    let row = TreeRow {
        name: name.to_owned(),
        domain: domain.clone(),
        policy: policy.clone(),
        signer: signer.clone(),
        // An online key is known now, so the tree's URL can be shown before its first build;
        // an offline one is learnt from the first signature. Another signer means another
        // key, so another URL: keep a learnt key only if the signer is unchanged.
        public_key: match signer {
            Signer::Key(key) => keyring
                .get(key)
                .map(|k| node::enrtree::signature::encode_public_key(k.verifying_key())),
            Signer::Offline => {
                existing.as_ref().filter(|t| t.signer == *signer).and_then(|t| t.public_key.clone())
            }
        },
        last_error: None,
        retire_at: None,
    };
    if existing.as_ref().is_some_and(|t| {
        t.domain == row.domain
            && t.policy == row.policy
            && t.signer == row.signer
            && t.retire_at.is_none()
    }) {
        return Ok(true);
    }
    if let Some(old) = &existing {
        if old.retire_at.is_some_and(|at| at > db.now_ms()) {
            return Err(DefinitionError::Conflict(format!(
                "tree {name} is being retired; cancel that first (DELETE /api/v1/trees/{name}/retire)"
            )));
        }
        // A removed tree may be defined again; one still served keeps its key, because its
        // URL (which carries the key) is what clients hold.
        if old.retire_at.is_none() && old.public_key.is_some() && old.signer != *signer {
            return Err(DefinitionError::Conflict(format!(
                "tree {name} is published under its key: another signer would change the URL \
                 clients hold. Define a new tree with the new key, link it from the entry tree \
                 and retire this one (README: key rotation)"
            )));
        }
    }
    let existed = existing.is_some();
    db.put_tree(&row).await.map_err(|e| match e {
        DbError::Query(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            DefinitionError::Conflict(format!("domain {domain} is used by another tree"))
        }
        other => DefinitionError::Database(other),
    })?;
    db.audit(
        actor,
        if existed { "tree.update" } else { "tree.create" },
        name,
        serde_json::json!({ "domain": domain, "signer": signer, "policy": policy }),
    )
    .await?;
    Ok(existed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn signers_and_links_round_trip_and_bad_ones_say_why() {
        for text in ["key:dev", "offline"] {
            assert_eq!(text.parse::<Signer>().unwrap().to_string(), text);
        }
        for bad in ["key:", "online", "", "Offline"] {
            assert!(bad.parse::<Signer>().unwrap_err().contains("key:<name> or offline"), "{bad}");
        }
        let url =
            "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@nodes.example.org";
        for text in ["tree:fleet-b", url] {
            assert_eq!(text.parse::<TreeLink>().unwrap().to_string(), text);
        }
        assert!(matches!("tree:x".parse(), Ok(TreeLink::Tree(n)) if n == "x"));
        for bad in ["tree:", "enrtree://nope@x", "https://example.org"] {
            assert!(bad.parse::<TreeLink>().is_err(), "{bad}");
        }
        // As JSON they are the strings operators write.
        let json = serde_json::to_string(&vec![Signer::Offline]).unwrap();
        assert_eq!(json, r#"["offline"]"#);
        assert!(serde_json::from_str::<Signer>(r#""key:""#).is_err());
    }
}
