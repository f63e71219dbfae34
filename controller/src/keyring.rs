//! Signing keys the controller holds online, unlocked at start from their Web3 keystores.
//! The keys stay in memory only (k256 zeroizes them on drop) and are never logged.

use std::collections::BTreeMap;

use k256::ecdsa::SigningKey;
use node::keystore::Keystore;

use crate::config::{ConfigError, KeyConfig};

/// The unlocked keys, by name.
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<String, SigningKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("names", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl Keyring {
    /// Unlocks every configured key: password from its file or `$WAKUFLEET_KEY_<NAME>_PASSWORD`.
    pub fn unlock(configs: &[KeyConfig]) -> Result<Self, ConfigError> {
        let mut ring = Self::default();
        for config in configs {
            let text = std::fs::read_to_string(&config.keystore)
                .map_err(|source| ConfigError::Read { path: config.keystore.clone(), source })?;
            let keystore: Keystore = text
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", config.keystore.display())))?;
            let password = match &config.password_file {
                Some(path) => node::keystore::read_password_file(path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?,
                None => {
                    let var = format!(
                        "WAKUFLEET_KEY_{}_PASSWORD",
                        config.name.to_uppercase().replace('-', "_")
                    );
                    std::env::var(&var).map(zeroize::Zeroizing::new).map_err(|_| {
                        ConfigError::Invalid(format!(
                            "key {}: no password-file and ${var} is not set",
                            config.name
                        ))
                    })?
                }
            };
            let key = keystore.decrypt(password.as_bytes()).map_err(|e| {
                ConfigError::Invalid(format!("key {}: cannot unlock: {e}", config.name))
            })?;
            ring.insert(&config.name, key);
        }
        Ok(ring)
    }

    /// Adds a key (tests, `wakufleet up`'s development key).
    pub fn insert(&mut self, name: &str, key: SigningKey) {
        self.keys.insert(name.to_owned(), key);
    }

    /// The key called `name`.
    pub fn get(&self, name: &str) -> Option<&SigningKey> {
        self.keys.get(name)
    }
}
