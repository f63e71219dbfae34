//! People and what they may do: named access tokens with one [`Role`] each.
//!
//! A role is a set of [`Permission`]s: `viewer` reads (dashboard and read API), `operator`
//! runs the fleet (everything but keys and accounts), `key-holder` signs and rotates keys,
//! `admin` manages accounts and may do everything. The token in `admin_token_file` is the
//! bootstrap admin, named [`BOOTSTRAP_ADMIN`]; every other token is made through the API, shown
//! once and kept only as its SHA-256 (a token is 160 random bits, so a fast digest is enough).

use std::{fmt, str::FromStr};

/// The name of the account behind `admin_token_file`; no access token may take it.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// Longest account name.
pub const MAX_NAME_LEN: usize = 64;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// The dashboard and every `GET` of fleet state.
    Read,
    /// Enrolment tokens, membership, maintenance, desired configurations, rollouts, trees.
    Operate,
    /// Sign requests, signature uploads, key rotation (tree retirement).
    Sign,
    /// Access tokens.
    Administer,
}

impl Permission {
    /// How a refusal names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Operate => "operate",
            Self::Sign => "sign",
            Self::Administer => "administer accounts",
        }
    }
}

/// A person's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Looks only.
    Viewer,
    /// Runs the fleet.
    Operator,
    /// Holds signing keys.
    KeyHolder,
    /// Manages accounts; may do everything.
    Admin,
}

impl Role {
    /// Every role, for listings and tests.
    pub const ALL: [Self; 4] = [Self::Viewer, Self::Operator, Self::KeyHolder, Self::Admin];

    /// Whether this role grants `permission`.
    pub fn may(self, permission: Permission) -> bool {
        use Permission::{Administer, Operate, Read, Sign};
        match self {
            Self::Viewer => permission == Read,
            Self::Operator => matches!(permission, Read | Operate),
            Self::KeyHolder => matches!(permission, Read | Sign),
            Self::Admin => matches!(permission, Read | Operate | Sign | Administer),
        }
    }

    /// The name operators write.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::KeyHolder => "key-holder",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected viewer, operator, key-holder or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Someone authenticated: the account's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account (the access token's name, or [`BOOTSTRAP_ADMIN`]).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// How the audit log names this person.
    pub fn actor(&self) -> String {
        format!("person:{}", self.name)
    }

    /// `Ok` if this person's role grants `permission`, else why not (a 403's message).
    pub fn check(&self, permission: Permission) -> Result<(), String> {
        if self.role.may(permission) {
            return Ok(());
        }
        Err(format!(
            "{} has the role {}, which may not {}",
            self.name,
            self.role,
            permission.as_str()
        ))
    }
}

/// Checks an account name: 1..=64 of `A-Z a-z 0-9 . _ @ -`, not the bootstrap admin's. Names
/// appear in the audit log and on the dashboard, so nothing that could pass for markup or
/// another field.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("name must be 1..={MAX_NAME_LEN} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b)) {
        return Err("name may hold only letters, digits and . _ @ -".into());
    }
    if name == BOOTSTRAP_ADMIN {
        return Err(format!("{BOOTSTRAP_ADMIN:?} is the bootstrap admin (admin-token-file)"));
    }
    Ok(())
}

/// A new access token: `wfa_` and 160 random bits in lowercase base32.
pub fn new_token() -> String {
    let mut secret = [0u8; 20];
    node::crypto::random_bytes(&mut secret);
    format!("wfa_{}", data_encoding::BASE32_NOPAD.encode(&secret).to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_print_and_grant_as_documented() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
            assert!(role.may(Permission::Read), "{role} reads");
        }
        assert!(matches!("root".parse::<Role>(), Err(UnknownRole(r)) if r == "root"));
        assert!(!Role::Viewer.may(Permission::Operate));
        assert!(!Role::Operator.may(Permission::Sign));
        assert!(!Role::Operator.may(Permission::Administer));
        assert!(!Role::KeyHolder.may(Permission::Operate));
        assert!(!Role::KeyHolder.may(Permission::Administer));
        assert!(Role::Admin.may(Permission::Administer));
    }

    #[test]
    fn names_are_short_plain_and_not_the_bootstrap_admin() {
        assert!(check_name("alice@ops").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("admin").is_err());
        assert!(check_name("<script>").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        let token = new_token();
        assert!(token.starts_with("wfa_") && token.len() == 36, "{token}");
    }
}
