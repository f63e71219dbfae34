//! Encrypted key files in the Web3 Secret Storage format, version 3 (the "keystore" JSON files
//! written by geth, Foundry, ethers and most Ethereum wallets).
//!
//! A secp256k1 private key is only ever stored at rest encrypted in this format; nothing in this
//! crate writes a raw key to disk. The format is:
//!
//! - a key derivation function turns the password into a 32-byte derived key `DK`: either
//!   `scrypt` (parameters `n`, `r`, `p`, `salt`, `dklen`) or `pbkdf2` with `hmac-sha256`
//!   (parameters `c`, `salt`, `dklen`);
//! - the private key is encrypted with `aes-128-ctr` under `DK[0..16]` with a random 16-byte
//!   `iv` (128-bit big-endian counter, as Go's `cipher.NewCTR`);
//! - the MAC is `keccak256(DK[16..32] ‖ ciphertext)`; a mismatch means a wrong password or a
//!   corrupted file, and nothing is decrypted.
//!
//! Files written here decrypt with geth's `keystore.DecryptKey` / `ethkey`, and files written by
//! geth (including older ones with a capitalised `"Crypto"` key and no `"address"`) decrypt
//! here. Parsing validates the whole document and bounds the KDF cost, so a hostile file is
//! refused before any memory is spent on key derivation.
//!
//! Derived keys and decrypted key bytes live in [`Zeroizing`] buffers. Errors, `Debug` and
//! `Display` output never contain the password or key material.

use std::fmt;
use std::str::FromStr;

use aes::cipher::{KeyIvInit, StreamCipher};
use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};
use k256::ecdsa::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{address, keccak256, random_bytes};

/// AES-128 in CTR mode with a 128-bit big-endian counter over the whole IV, as geth uses.
type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The only format version this module reads or writes.
const VERSION: u64 = 3;
/// The only cipher this module reads or writes.
const CIPHER: &str = "aes-128-ctr";
/// Length of the derived key; the first half keys AES-128, the second half keys the MAC.
const DKLEN: u64 = 32;
/// Largest accepted log2 of scrypt's `n`.
const MAX_SCRYPT_LOG_N: u32 = 20;
/// Largest accepted scrypt `r`.
const MAX_SCRYPT_R: u64 = 32;
/// Largest accepted scrypt `p`.
const MAX_SCRYPT_P: u64 = 16;
/// Largest accepted scrypt working memory, `n * r * 128` bytes.
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Largest accepted PBKDF2 iteration count.
const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;
/// Longest string from a file that is echoed into an error message.
const MAX_ECHO: usize = 64;

/// Why a keystore could not be parsed, created or decrypted.
///
/// No variant ever carries the password or any key material.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The text is not JSON, or lacks a field of the keystore format.
    #[error("corrupt keystore: {0}")]
    Json(String),
    /// The `version` field is not 3.
    #[error("unsupported keystore version {0} (only version 3 is supported)")]
    UnsupportedVersion(u64),
    /// The `cipher` field names a cipher other than `aes-128-ctr`.
    #[error("unsupported keystore cipher `{0}` (only aes-128-ctr is supported)")]
    UnsupportedCipher(String),
    /// The `kdf` field (or PBKDF2's `prf`) names an unsupported function.
    #[error(
        "unsupported keystore kdf `{0}` (only scrypt and pbkdf2 with hmac-sha256 are supported)"
    )]
    UnsupportedKdf(String),
    /// A parameter is malformed or outside the accepted bounds.
    #[error("bad keystore parameters: {0}")]
    BadParams(String),
    /// A field that must be hexadecimal is not.
    #[error("keystore field `{field}` is not valid hex")]
    Hex {
        /// The JSON field holding the bad value.
        field: &'static str,
    },
    /// The MAC computed from the password does not match the file's: either the password is
    /// wrong or the file is corrupted. Nothing was decrypted.
    #[error("wrong password (keystore MAC mismatch)")]
    WrongPassword,
    /// The key decrypted correctly but its address is not the `address` the file records.
    #[error("keystore address does not match the decrypted key")]
    AddressMismatch,
    /// The decrypted bytes are not a valid secp256k1 private key.
    #[error("decrypted keystore key is not a valid secp256k1 private key")]
    InvalidKey,
}

/// How expensive the scrypt key derivation of a newly encrypted keystore is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KdfStrength {
    /// scrypt n = 262144, r = 8, p = 1 (geth's `StandardScryptN`/`StandardScryptP`): about a
    /// second and 256 MiB to unlock. For real keys.
    #[default]
    Standard,
    /// scrypt n = 4096, r = 8, p = 6 (geth's `LightScryptN`/`LightScryptP`): milliseconds to
    /// unlock. Only for tests and throwaway development keys.
    Light,
}

impl KdfStrength {
    /// The scrypt `(log2 n, r, p)` of this strength.
    fn scrypt_params(self) -> (u8, u32, u32) {
        match self {
            KdfStrength::Standard => (18, 8, 1),
            KdfStrength::Light => (12, 8, 6),
        }
    }
}

/// The key derivation function of a keystore, with validated parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kdf {
    /// scrypt with `n = 2^log_n`.
    Scrypt { log_n: u8, r: u32, p: u32, salt: Vec<u8> },
    /// PBKDF2 with HMAC-SHA-256 and `c` rounds.
    Pbkdf2 { c: u32, salt: Vec<u8> },
}

impl Kdf {
    /// Derives the 32-byte key from `password`.
    fn derive(&self, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
        let mut derived = Zeroizing::new([0u8; 32]);
        match self {
            Kdf::Scrypt { log_n, r, p, salt } => {
                let params = scrypt::Params::new(*log_n, *r, *p)
                    .map_err(|_| KeystoreError::BadParams("scrypt rejected n, r or p".into()))?;
                scrypt::scrypt(password, salt, &params, derived.as_mut())
                    .map_err(|_| KeystoreError::BadParams("scrypt output length".into()))?;
            }
            Kdf::Pbkdf2 { c, salt } => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, *c, derived.as_mut());
            }
        }
        Ok(derived)
    }
}

/// A parsed and validated Web3 Secret Storage v3 keystore document.
///
/// It holds only public data: the ciphertext, the KDF and cipher parameters, the MAC, the id and
/// the optional address. Parse one with [`str::parse`] (or serde), print it with `Display` (the
/// compact JSON geth writes; `{:#}` pretty-prints), and turn it into a key with
/// [`Keystore::decrypt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keystore {
    /// The address of the encrypted key, if the file records one.
    address: Option<[u8; 20]>,
    /// The `id` field, a UUID in the files this module writes; kept verbatim.
    id: String,
    /// The key derivation function and its parameters.
    kdf: Kdf,
    /// The AES-128-CTR initial counter block.
    iv: [u8; 16],
    /// The encrypted key, 1 to 32 bytes (older geth versions wrote keys with leading zero bytes
    /// stripped).
    ciphertext: Vec<u8>,
    /// `keccak256(DK[16..32] ‖ ciphertext)`.
    mac: [u8; 32],
}

/// Reads a keystore password from a file: its first line, without the line ending (so files
/// written by `echo` and by editors give the same password).
pub fn read_password_file(path: &std::path::Path) -> std::io::Result<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    Ok(Zeroizing::new(text.lines().next().unwrap_or_default().to_owned()))
}

impl Keystore {
    /// Encrypts `key` under `password` with a scrypt KDF of the given `strength`, a random salt,
    /// a random IV and a random version-4 UUID as id. The file records the key's address.
    ///
    /// # Errors
    /// Only if the KDF rejects the built-in parameters, which does not happen in practice.
    ///
    /// # Panics
    /// If the operating system's random source fails (see [`crate::crypto::random_bytes`]).
    pub fn encrypt(
        key: &SigningKey,
        password: &[u8],
        strength: KdfStrength,
    ) -> Result<Keystore, KeystoreError> {
        let (log_n, r, p) = strength.scrypt_params();
        let mut salt = vec![0u8; 32];
        random_bytes(&mut salt);
        let mut iv = [0u8; 16];
        random_bytes(&mut iv);
        let kdf = Kdf::Scrypt { log_n, r, p, salt };

        let derived = kdf.derive(password)?;
        let (enc_key, mac_key) = split_derived_key(&derived);
        let mut buf = Zeroizing::new([0u8; 32]);
        buf.copy_from_slice(&Zeroizing::new(key.to_bytes()));
        apply_keystream(&enc_key, &iv, buf.as_mut())?;
        let ciphertext = buf.to_vec();
        let mac = compute_mac(&mac_key, &ciphertext);

        Ok(Keystore {
            address: Some(address(key.verifying_key())),
            id: random_uuid_v4(),
            kdf,
            iv,
            ciphertext,
            mac,
        })
    }

    /// Decrypts the key with `password`.
    ///
    /// The MAC is checked (in constant time) before anything is decrypted; a mismatch gives
    /// [`KeystoreError::WrongPassword`]. If the file records an address, the decrypted key must
    /// have that address, or [`KeystoreError::AddressMismatch`] is returned.
    ///
    /// # Errors
    /// [`KeystoreError::WrongPassword`], [`KeystoreError::AddressMismatch`], or
    /// [`KeystoreError::InvalidKey`] if the decrypted bytes are not a usable private key.
    pub fn decrypt(&self, password: &[u8]) -> Result<SigningKey, KeystoreError> {
        let derived = self.kdf.derive(password)?;
        let (enc_key, mac_key) = split_derived_key(&derived);
        if !constant_time_eq(&compute_mac(&mac_key, &self.ciphertext), &self.mac) {
            return Err(KeystoreError::WrongPassword);
        }

        // Short ciphertexts (keys with leading zero bytes stripped) are left-padded with zeros,
        // as geth's big-integer conversion does.
        let mut plain = Zeroizing::new([0u8; 32]);
        let start = plain.len().checked_sub(self.ciphertext.len()).ok_or_else(|| {
            KeystoreError::BadParams("ciphertext longer than a private key".into())
        })?;
        let tail = &mut plain[start..];
        tail.copy_from_slice(&self.ciphertext);
        apply_keystream(&enc_key, &self.iv, tail)?;

        let key = SigningKey::from_slice(plain.as_ref()).map_err(|_| KeystoreError::InvalidKey)?;
        if let Some(expected) = self.address
            && address(key.verifying_key()) != expected
        {
            return Err(KeystoreError::AddressMismatch);
        }
        Ok(key)
    }

    /// The address the file records for its key, if any. It is not authenticated by the MAC;
    /// [`Keystore::decrypt`] checks it against the decrypted key.
    pub fn address(&self) -> Option<[u8; 20]> {
        self.address
    }

    /// The file's `id` field (a UUID; geth names key files after it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Validates a JSON value as a version-3 keystore.
    fn from_json_value(value: serde_json::Value) -> Result<Keystore, KeystoreError> {
        // Check the version first, so that a version-1 or -2 file (whose layout differs) is
        // reported as such rather than as a missing field.
        let version = match value.get("version") {
            None => return Err(KeystoreError::Json("missing field `version`".into())),
            Some(v) => match (v.as_u64(), v.as_str().and_then(|s| s.trim().parse::<u64>().ok())) {
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => {
                    return Err(KeystoreError::Json("`version` is not a number".into()));
                }
            },
        };
        if version != VERSION {
            return Err(KeystoreError::UnsupportedVersion(version));
        }

        let raw: RawKeystore =
            serde_json::from_value(value).map_err(|e| KeystoreError::Json(e.to_string()))?;
        let crypto = raw.crypto;

        if crypto.cipher != CIPHER {
            return Err(KeystoreError::UnsupportedCipher(clip(&crypto.cipher)));
        }
        let kdf = match crypto.kdf.as_str() {
            "scrypt" => parse_scrypt(crypto.kdfparams)?,
            "pbkdf2" => parse_pbkdf2(crypto.kdfparams)?,
            other => return Err(KeystoreError::UnsupportedKdf(clip(other))),
        };

        let iv = decode_hex("iv", &crypto.cipherparams.iv)?;
        let iv: [u8; 16] = iv.try_into().map_err(|v: Vec<u8>| {
            KeystoreError::BadParams(format!("iv must be 16 bytes, got {}", v.len()))
        })?;
        let mac = decode_hex("mac", &crypto.mac)?;
        let mac: [u8; 32] = mac.try_into().map_err(|v: Vec<u8>| {
            KeystoreError::BadParams(format!("mac must be 32 bytes, got {}", v.len()))
        })?;
        let ciphertext = decode_hex("ciphertext", &crypto.ciphertext)?;
        if ciphertext.is_empty() || ciphertext.len() > 32 {
            return Err(KeystoreError::BadParams(format!(
                "ciphertext must be 1 to 32 bytes, got {}",
                ciphertext.len()
            )));
        }
        let address = match raw.address {
            None => None,
            Some(text) => {
                let text = text.strip_prefix("0x").unwrap_or(&text);
                let bytes = decode_hex("address", text)?;
                let bytes: [u8; 20] = bytes.try_into().map_err(|v: Vec<u8>| {
                    KeystoreError::BadParams(format!("address must be 20 bytes, got {}", v.len()))
                })?;
                Some(bytes)
            }
        };

        Ok(Keystore { address, id: raw.id, kdf, iv, ciphertext, mac })
    }

    /// The JSON document in geth's field layout.
    fn to_json(&self) -> OutKeystore<'_> {
        let (kdf, kdfparams) = match &self.kdf {
            Kdf::Scrypt { log_n, r, p, salt } => (
                "scrypt",
                OutKdfParams::Scrypt {
                    dklen: DKLEN,
                    n: 1u64 << log_n,
                    p: *p,
                    r: *r,
                    salt: HEXLOWER.encode(salt),
                },
            ),
            Kdf::Pbkdf2 { c, salt } => (
                "pbkdf2",
                OutKdfParams::Pbkdf2 {
                    c: *c,
                    dklen: DKLEN,
                    prf: "hmac-sha256",
                    salt: HEXLOWER.encode(salt),
                },
            ),
        };
        OutKeystore {
            address: self.address.map(|a| HEXLOWER.encode(&a)),
            crypto: OutCrypto {
                cipher: CIPHER,
                ciphertext: HEXLOWER.encode(&self.ciphertext),
                cipherparams: OutCipherParams { iv: HEXLOWER.encode(&self.iv) },
                kdf,
                kdfparams,
                mac: HEXLOWER.encode(&self.mac),
            },
            id: &self.id,
            version: VERSION,
        }
    }
}

impl FromStr for Keystore {
    type Err = KeystoreError;

    /// Parses and validates a keystore JSON document.
    fn from_str(s: &str) -> Result<Keystore, KeystoreError> {
        let value: serde_json::Value =
            serde_json::from_str(s).map_err(|e| KeystoreError::Json(e.to_string()))?;
        Keystore::from_json_value(value)
    }
}

/// Writes the keystore as the compact JSON geth writes; the alternate form (`{:#}`) is indented.
impl fmt::Display for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self.to_json();
        let text = if f.alternate() {
            serde_json::to_string_pretty(&json)
        } else {
            serde_json::to_string(&json)
        };
        f.write_str(&text.map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Keystore {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Keystore {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Keystore, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Keystore::from_json_value(value).map_err(serde::de::Error::custom)
    }
}

/// The keystore document as read; unknown fields are ignored.
#[derive(Deserialize)]
struct RawKeystore {
    #[serde(default)]
    address: Option<String>,
    #[serde(alias = "Crypto")]
    crypto: RawCrypto,
    id: String,
}

/// The `crypto` object as read.
#[derive(Deserialize)]
struct RawCrypto {
    cipher: String,
    ciphertext: String,
    cipherparams: RawCipherParams,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

/// The `cipherparams` object as read.
#[derive(Deserialize)]
struct RawCipherParams {
    iv: String,
}

/// scrypt's `kdfparams` as read.
#[derive(Deserialize)]
struct RawScrypt {
    dklen: u64,
    n: u64,
    r: u64,
    p: u64,
    salt: String,
}

/// PBKDF2's `kdfparams` as read.
#[derive(Deserialize)]
struct RawPbkdf2 {
    c: u64,
    dklen: u64,
    prf: String,
    salt: String,
}

/// The keystore document as written, fields in geth's order.
#[derive(Serialize)]
struct OutKeystore<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    crypto: OutCrypto,
    id: &'a str,
    version: u64,
}

/// The `crypto` object as written.
#[derive(Serialize)]
struct OutCrypto {
    cipher: &'static str,
    ciphertext: String,
    cipherparams: OutCipherParams,
    kdf: &'static str,
    kdfparams: OutKdfParams,
    mac: String,
}

/// The `cipherparams` object as written.
#[derive(Serialize)]
struct OutCipherParams {
    iv: String,
}

/// The `kdfparams` object as written, keys sorted as Go's map encoding sorts them.
#[derive(Serialize)]
#[serde(untagged)]
enum OutKdfParams {
    Scrypt { dklen: u64, n: u64, p: u32, r: u32, salt: String },
    Pbkdf2 { c: u32, dklen: u64, prf: &'static str, salt: String },
}

/// Validates scrypt parameters, refusing any whose cost exceeds the bounds.
fn parse_scrypt(params: serde_json::Value) -> Result<Kdf, KeystoreError> {
    let raw: RawScrypt = serde_json::from_value(params)
        .map_err(|e| KeystoreError::Json(format!("scrypt kdfparams: {e}")))?;
    check_dklen(raw.dklen)?;
    if raw.n < 2 || !raw.n.is_power_of_two() {
        return Err(KeystoreError::BadParams(format!(
            "scrypt n = {} is not a power of two greater than 1",
            raw.n
        )));
    }
    let log_n = raw.n.trailing_zeros();
    if log_n > MAX_SCRYPT_LOG_N {
        return Err(KeystoreError::BadParams(format!(
            "scrypt n = {} exceeds the limit 2^{MAX_SCRYPT_LOG_N}",
            raw.n
        )));
    }
    if raw.r == 0 || raw.r > MAX_SCRYPT_R {
        return Err(KeystoreError::BadParams(format!(
            "scrypt r = {} is outside 1..={MAX_SCRYPT_R}",
            raw.r
        )));
    }
    if raw.p == 0 || raw.p > MAX_SCRYPT_P {
        return Err(KeystoreError::BadParams(format!(
            "scrypt p = {} is outside 1..={MAX_SCRYPT_P}",
            raw.p
        )));
    }
    let memory = raw.n.saturating_mul(raw.r).saturating_mul(128);
    if memory > MAX_SCRYPT_MEMORY {
        return Err(KeystoreError::BadParams(format!(
            "scrypt n * r * 128 = {memory} bytes exceeds the 1 GiB limit"
        )));
    }
    let salt = decode_hex("salt", &raw.salt)?;
    // The bounds above make these conversions lossless.
    let (Ok(log_n), Ok(r), Ok(p)) =
        (u8::try_from(log_n), u32::try_from(raw.r), u32::try_from(raw.p))
    else {
        return Err(KeystoreError::BadParams("scrypt parameters out of range".into()));
    };
    Ok(Kdf::Scrypt { log_n, r, p, salt })
}

/// Validates PBKDF2 parameters, refusing unknown PRFs and absurd iteration counts.
fn parse_pbkdf2(params: serde_json::Value) -> Result<Kdf, KeystoreError> {
    let raw: RawPbkdf2 = serde_json::from_value(params)
        .map_err(|e| KeystoreError::Json(format!("pbkdf2 kdfparams: {e}")))?;
    if raw.prf != "hmac-sha256" {
        return Err(KeystoreError::UnsupportedKdf(format!("pbkdf2 with prf {}", clip(&raw.prf))));
    }
    check_dklen(raw.dklen)?;
    let c = match u32::try_from(raw.c) {
        Ok(c) if (1..=MAX_PBKDF2_ROUNDS).contains(&raw.c) => c,
        _ => {
            return Err(KeystoreError::BadParams(format!(
                "pbkdf2 c = {} is outside 1..={MAX_PBKDF2_ROUNDS}",
                raw.c
            )));
        }
    };
    let salt = decode_hex("salt", &raw.salt)?;
    Ok(Kdf::Pbkdf2 { c, salt })
}

/// Refuses derived-key lengths other than 32.
fn check_dklen(dklen: u64) -> Result<(), KeystoreError> {
    if dklen != DKLEN {
        return Err(KeystoreError::BadParams(format!("dklen = {dklen}, expected {DKLEN}")));
    }
    Ok(())
}

/// Decodes a hex field (either case, no `0x` prefix).
fn decode_hex(field: &'static str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    HEXLOWER_PERMISSIVE.decode(text.as_bytes()).map_err(|_| KeystoreError::Hex { field })
}

/// Splits the derived key into the AES key `DK[0..16]` and the MAC key `DK[16..32]`.
fn split_derived_key(derived: &[u8; 32]) -> (Zeroizing<[u8; 16]>, Zeroizing<[u8; 16]>) {
    let enc_key = Zeroizing::new(std::array::from_fn(|i| derived[i]));
    let mac_key = Zeroizing::new(std::array::from_fn(|i| derived[16 + i]));
    (enc_key, mac_key)
}

/// Encrypts or decrypts `buf` in place with AES-128-CTR.
fn apply_keystream(key: &[u8; 16], iv: &[u8; 16], buf: &mut [u8]) -> Result<(), KeystoreError> {
    let mut cipher = Aes128Ctr::new(key.into(), iv.into());
    cipher
        .try_apply_keystream(buf)
        .map_err(|_| KeystoreError::BadParams("ciphertext too long for aes-128-ctr".into()))
}

/// `keccak256(mac_key ‖ ciphertext)`.
fn compute_mac(mac_key: &[u8; 16], ciphertext: &[u8]) -> [u8; 32] {
    let mut body = Zeroizing::new(Vec::with_capacity(mac_key.len() + ciphertext.len()));
    body.extend_from_slice(mac_key);
    body.extend_from_slice(ciphertext);
    keccak256(body.as_slice())
}

/// Compares two MACs without an early exit, so timing does not reveal the first differing byte.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A random version-4 UUID in its canonical lowercase text form.
fn random_uuid_v4() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = HEXLOWER.encode(&b);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A string from a file, shortened for echoing in an error message.
fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_ECHO {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_ECHO).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests;
