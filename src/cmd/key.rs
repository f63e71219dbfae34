//! `wakufleet key …`: create, inspect and import signing keys. Keys exist on disk only as
//! Web3 Secret Storage v3 keystores; raw key material is read from files, never from argv.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use k256::ecdsa::SigningKey;
use node::{
    crypto::{address, generate_key},
    enrtree::{LinkEntry, signature::encode_public_key},
    keystore::{KdfStrength, Keystore},
};
use zeroize::Zeroizing;

use crate::{files, password::PasswordArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a new key and write it as an encrypted keystore.
    New {
        /// The keystore file to create (must not exist).
        keyfile: PathBuf,
        /// Use light scrypt parameters (fast, weaker): for throwaway development keys only.
        #[arg(long)]
        light_kdf: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Print the key's enrtree public key and address (and the tree URL with --domain).
    Show {
        /// The keystore file.
        keyfile: PathBuf,
        /// Also print `enrtree://<key>@<domain>`.
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Encrypt a raw private key (64 hex characters in a file) into a new keystore.
    Import {
        /// File holding the private key as hex (optionally 0x-prefixed).
        hexfile: PathBuf,
        /// The keystore file to create (must not exist).
        keyfile: PathBuf,
        /// Use light scrypt parameters (fast, weaker): for throwaway development keys only.
        #[arg(long)]
        light_kdf: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

pub(crate) fn run(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::New { keyfile, light_kdf, password } => {
            let key = generate_key();
            write_keystore(&key, &keyfile, light_kdf, &password)?;
            print_key(&key, None);
        }
        KeyCommand::Show { keyfile, domain, password } => {
            let key = unlock(&keyfile, &password)?;
            print_key(&key, domain.as_deref());
        }
        KeyCommand::Import { hexfile, keyfile, light_kdf, password } => {
            let key = read_hex_key(&hexfile)?;
            write_keystore(&key, &keyfile, light_kdf, &password)?;
            print_key(&key, None);
        }
    }
    Ok(())
}

/// Decrypts a keystore file with a password from `password`.
pub(crate) fn unlock(keyfile: &Path, password: &PasswordArgs) -> anyhow::Result<SigningKey> {
    let keystore: Keystore = files::read(keyfile)?
        .parse()
        .with_context(|| format!("{}: not a valid keystore", keyfile.display()))?;
    let password = password.read(&keyfile.display().to_string())?;
    keystore.decrypt(password.as_bytes()).with_context(|| format!("{}", keyfile.display()))
}

/// Encrypts `key` into a new keystore file (mode 0600; refuses to overwrite).
pub(crate) fn write_keystore(
    key: &SigningKey,
    keyfile: &Path,
    light_kdf: bool,
    password: &PasswordArgs,
) -> anyhow::Result<()> {
    if keyfile.exists() {
        anyhow::bail!("{}: already exists; refusing to overwrite a key file", keyfile.display());
    }
    let password = password.read_new(&keyfile.display().to_string())?;
    let strength = if light_kdf { KdfStrength::Light } else { KdfStrength::Standard };
    let keystore = Keystore::encrypt(key, password.as_bytes(), strength)?;
    files::write_secret_new(keyfile, &keystore.to_string())
}

fn read_hex_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = Zeroizing::new(files::read(path)?);
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    let bytes = Zeroizing::new(
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| anyhow::anyhow!("{}: not a hex private key", path.display()))?,
    );
    if bytes.len() != 32 {
        anyhow::bail!("{}: a private key is 32 bytes, found {}", path.display(), bytes.len());
    }
    SigningKey::from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{}: not a valid secp256k1 private key", path.display()))
}

fn print_key(key: &SigningKey, domain: Option<&str>) {
    let public = key.verifying_key();
    println!("public key: {}", encode_public_key(public));
    println!("address:    0x{}", data_encoding::HEXLOWER.encode(&address(public)));
    if let Some(domain) = domain {
        println!("tree url:   {}", LinkEntry::new(*public, domain));
    }
}
