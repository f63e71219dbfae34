//! The keystore against the Web3 Secret Storage test vectors, bad files and wrong passwords.

#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::{Value, json};

/// The secret key of the Web3 Secret Storage Definition's test vectors.
const SPEC_SECRET: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const SPEC_PASSWORD: &[u8] = b"testpassword";

// The PBKDF2-SHA-256 test vector of the Web3 Secret Storage Definition, copied from
// https://ethereum.org/developers/docs/data-structures-and-encoding/web3-secret-storage/
// (source: ethereum/ethereum-org-website, public/content/developers/docs/
// data-structures-and-encoding/web3-secret-storage/index.md, "Test Vectors"). The same JSON is
// geth's accounts/keystore/testdata/v3_test_vector.json "wikipage_test_vector_pbkdf2".
const SPEC_PBKDF2: &str = r#"{
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": { "iv": "6087dab2f9fdbbfaddc31a909735c1e6" },
        "ciphertext": "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
        "kdf": "pbkdf2",
        "kdfparams": {
            "c": 262144,
            "dklen": 32,
            "prf": "hmac-sha256",
            "salt": "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"
        },
        "mac": "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3
}"#;

// The scrypt test vector as the ethereum.org page (same source as above) gives it today
// (n = 262144, r = 8, p = 1). It is internally inconsistent: its MAC and ciphertext match the
// page's listed derived key 7446f59e…, but scrypt over its stated password, salt and
// parameters gives b4130dc8… (OpenSSL's `hashlib.scrypt` agrees), so it fails the MAC check
// in every implementation. See `published_r8_scrypt_vector_is_inconsistent`.
const SPEC_SCRYPT_R8: &str = r#"{
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": { "iv": "740770fce12ce862af21264dab25f1da" },
        "ciphertext": "dd8a1132cf57db67c038c6763afe2cbe6ea1949a86abc5843f8ca656ebbb1ea2",
        "kdf": "scrypt",
        "kdfparams": {
            "dklen": 32,
            "n": 262144,
            "p": 1,
            "r": 8,
            "salt": "25710c2ccd7c610b24d068af83b959b7a0e5f40641f0c82daeb1345766191034"
        },
        "mac": "337aeb86505d2d0bb620effe57f18381377d67d76dac1090626aa5cd20886a7c"
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3
}"#;

// The scrypt test vector of the Web3 Secret Storage Definition as originally published on the
// Ethereum wiki (n = 262144, r = 1, p = 8), byte for byte as kept in geth's
// accounts/keystore/testdata/v3_test_vector.json ("wikipage_test_vector_scrypt"), in the
// Chinese translation of the ethereum.org page, and in many client test suites.
const SPEC_SCRYPT: &str = r#"{
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": { "iv": "83dbcc02d8ccb40e466191a123791e0e" },
        "ciphertext": "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
        "kdf": "scrypt",
        "kdfparams": {
            "dklen": 32,
            "n": 262144,
            "r": 1,
            "p": 8,
            "salt": "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"
        },
        "mac": "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097"
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3
}"#;

// geth's accounts/keystore/testdata/v3_test_vector.json "31_byte_key" (password "foo"):
// a key written by an old geth with its leading zero byte stripped.
const GETH_31_BYTE_KEY: &str = r#"{
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": { "iv": "e0c41130a323adc1446fc82f724bca2f" },
        "ciphertext": "9517cd5bdbe69076f9bf5057248c6c050141e970efa36ce53692d5d59a3984",
        "kdf": "scrypt",
        "kdfparams": {
            "dklen": 32,
            "n": 2,
            "r": 8,
            "p": 1,
            "salt": "711f816911c92d649fb4c84b047915679933555030b3552c1212609b38208c63"
        },
        "mac": "d5e116151c6aa71470e67a7d42c9620c75c4d23229847dcc127794f0732b0db5"
    },
    "id": "fecfc4ce-e956-48fd-953b-30f8b52ed66c",
    "version": 3
}"#;

// Same file, "30_byte_key".
const GETH_30_BYTE_KEY: &str = r#"{
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": { "iv": "3ca92af36ad7c2cd92454c59cea5ef00" },
        "ciphertext": "108b7d34f3442fc26ab1ab90ca91476ba6bfa8c00975a49ef9051dc675aa",
        "kdf": "scrypt",
        "kdfparams": {
            "dklen": 32,
            "n": 2,
            "r": 8,
            "p": 1,
            "salt": "d0769e608fb86cda848065642a9c6fa046845c928175662b8e356c77f914cd3b"
        },
        "mac": "75d0e6759f7b3cefa319c3be41680ab6beea7d8328653474bd06706d4cc67420"
    },
    "id": "a37e1559-5955-450d-8075-7b8931b392b2",
    "version": 3
}"#;

fn key_hex(key: &SigningKey) -> String {
    HEXLOWER.encode(&key.to_bytes())
}

fn decrypts_to(json: &str, password: &[u8], expected_hex: &str) {
    let keystore: Keystore = json.parse().unwrap();
    let key = keystore.decrypt(password).unwrap();
    assert_eq!(key_hex(&key), expected_hex);
}

/// A light keystore for `password`, its key, and its JSON as a value to tamper with.
fn light(password: &[u8]) -> (SigningKey, Keystore, Value) {
    let key = crate::crypto::generate_key();
    let keystore = Keystore::encrypt(&key, password, KdfStrength::Light).unwrap();
    let value: Value = serde_json::from_str(&keystore.to_string()).unwrap();
    (key, keystore, value)
}

fn parse_value(value: &Value) -> Result<Keystore, KeystoreError> {
    value.to_string().parse::<Keystore>()
}

#[test]
fn spec_pbkdf2_vector() {
    decrypts_to(SPEC_PBKDF2, SPEC_PASSWORD, SPEC_SECRET);
}

#[test]
fn spec_scrypt_vector() {
    decrypts_to(SPEC_SCRYPT, SPEC_PASSWORD, SPEC_SECRET);
}

/// The r = 8 vector now on ethereum.org cannot decrypt: scrypt over its inputs does not give
/// the derived key the page lists. With the page's listed derived key, our MAC and AES-CTR
/// reproduce the vector exactly, so the fault is in the published KDF inputs, not here.
#[test]
fn published_r8_scrypt_vector_is_inconsistent() {
    let keystore: Keystore = SPEC_SCRYPT_R8.parse().unwrap();
    let derived = keystore.kdf.derive(SPEC_PASSWORD).unwrap();
    assert_eq!(
        HEXLOWER.encode(derived.as_ref()),
        "b4130dc81619f55f01a84b16c68f54fc0a166a2ca5903d9b24d2262dbd0420ec"
    );
    let (_, mac_key) = split_derived_key(&derived);
    assert_ne!(compute_mac(&mac_key, &keystore.ciphertext), keystore.mac);

    let published = HEXLOWER
        .decode(b"7446f59ecc301d2d79bc3302650d8a5cedc185ccbb4bf3ca1ebd2c163eaa6c2d")
        .unwrap();
    let (enc_key, mac_key) = split_derived_key(&published.try_into().unwrap());
    assert_eq!(compute_mac(&mac_key, &keystore.ciphertext), keystore.mac);
    let mut plain = keystore.ciphertext.clone();
    apply_keystream(&enc_key, &keystore.iv, &mut plain).unwrap();
    assert_eq!(HEXLOWER.encode(&plain), SPEC_SECRET);
}

#[test]
fn geth_short_key_vectors() {
    decrypts_to(
        GETH_31_BYTE_KEY,
        b"foo",
        "00fa7b3db73dc7dfdf8c5fbdb796d741e4488628c41fc4febd9160a866ba0f35",
    );
    decrypts_to(
        GETH_30_BYTE_KEY,
        b"foo",
        "000081c29e8142bb6a81bef5a92bda7a8328a5c85bb2f9542e76f9b0f94fc018",
    );
}

#[test]
fn vectors_round_trip_through_display() {
    for json in [SPEC_PBKDF2, SPEC_SCRYPT, SPEC_SCRYPT_R8, GETH_31_BYTE_KEY] {
        let keystore: Keystore = json.parse().unwrap();
        assert_eq!(keystore.to_string().parse::<Keystore>().unwrap(), keystore);
        assert_eq!(format!("{keystore:#}").parse::<Keystore>().unwrap(), keystore);
        assert_eq!(keystore.address(), None);
    }
}

#[test]
fn light_round_trip() {
    let password = b"round trip password";
    let (key, keystore, _) = light(password);
    let text = keystore.to_string();
    let parsed: Keystore = text.parse().unwrap();
    assert_eq!(parsed, keystore);
    let via_serde: Keystore = serde_json::from_str(&text).unwrap();
    assert_eq!(via_serde, keystore);
    let decrypted = parsed.decrypt(password).unwrap();
    assert_eq!(decrypted.to_bytes(), key.to_bytes());
    assert_eq!(parsed.address(), Some(address(key.verifying_key())));
}

#[test]
fn written_json_has_geth_shape() {
    let (key, keystore, value) = light(b"shape");
    let text = keystore.to_string();
    assert!(text.starts_with(r#"{"address":""#), "{text}");
    let addr = value["address"].as_str().unwrap();
    assert_eq!(addr, HEXLOWER.encode(&address(key.verifying_key())));
    let crypto = &value["crypto"];
    assert_eq!(crypto["cipher"], "aes-128-ctr");
    assert_eq!(crypto["ciphertext"].as_str().unwrap().len(), 64);
    assert_eq!(crypto["cipherparams"]["iv"].as_str().unwrap().len(), 32);
    assert_eq!(crypto["kdf"], "scrypt");
    assert_eq!(
        crypto["kdfparams"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["dklen", "n", "p", "r", "salt"]
    );
    assert_eq!(crypto["kdfparams"]["n"], 4096);
    assert_eq!(crypto["kdfparams"]["r"], 8);
    assert_eq!(crypto["kdfparams"]["p"], 6);
    assert_eq!(crypto["kdfparams"]["dklen"], 32);
    assert_eq!(crypto["kdfparams"]["salt"].as_str().unwrap().len(), 64);
    assert_eq!(crypto["mac"].as_str().unwrap().len(), 64);
    assert_eq!(value["version"], 3);

    let id = value["id"].as_str().unwrap();
    assert_eq!(id, keystore.id());
    let groups: Vec<&str> = id.split('-').collect();
    assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    assert!(groups[2].starts_with('4'), "{id}");
    assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "{id}");
    assert_ne!(id, light(b"shape").1.id());
}

#[test]
fn standard_strength_parameters() {
    assert_eq!(KdfStrength::default(), KdfStrength::Standard);
    // 2^18 = 262144 (geth's StandardScryptN), 2^12 = 4096 (LightScryptN).
    assert_eq!(KdfStrength::Standard.scrypt_params(), (18, 8, 1));
    assert_eq!(KdfStrength::Light.scrypt_params(), (12, 8, 6));
}

#[test]
fn reads_capitalised_crypto_without_address() {
    let password = b"legacy";
    let (key, _, mut value) = light(password);
    let object = value.as_object_mut().unwrap();
    object.remove("address");
    let crypto = object.remove("crypto").unwrap();
    object.insert("Crypto".into(), crypto);
    let keystore = parse_value(&value).unwrap();
    assert_eq!(keystore.address(), None);
    assert_eq!(keystore.decrypt(password).unwrap().to_bytes(), key.to_bytes());
    // Written back with the lowercase key geth writes today.
    assert!(keystore.to_string().contains(r#""crypto":"#));
}

#[test]
fn wrong_password() {
    let (_, keystore, _) = light(b"right");
    assert!(matches!(keystore.decrypt(b"wrong"), Err(KeystoreError::WrongPassword)));
    assert!(matches!(keystore.decrypt(b""), Err(KeystoreError::WrongPassword)));
}

#[test]
fn corrupt_inputs_are_refused() {
    let password = b"corrupt";
    let (_, _, base) = light(password);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        parse_value(&v)
    };

    for text in ["", "not json", "{", "[]", "null", r#"{"version":3}"#] {
        let err = text.parse::<Keystore>().unwrap_err();
        assert!(matches!(err, KeystoreError::Json(_)), "{text}: {err:?}");
    }
    assert!(matches!(
        with(&|v| v["version"] = json!(2)),
        Err(KeystoreError::UnsupportedVersion(2))
    ));
    // A real version-1 file has a different layout and a string version.
    assert!(matches!(
        r#"{"version":"1","Crypto":{"MAC":"00"}}"#.parse::<Keystore>(),
        Err(KeystoreError::UnsupportedVersion(1))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["cipher"] = json!("aes-256-gcm")),
        Err(KeystoreError::UnsupportedCipher(c)) if c == "aes-256-gcm"
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdf"] = json!("argon2")),
        Err(KeystoreError::UnsupportedKdf(k)) if k == "argon2"
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["n"] = json!(3000)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["n"] = json!(1)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["n"] = json!(1u64 << 30)),
        Err(KeystoreError::BadParams(m)) if m.contains("2^20")
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["n"] = json!(u64::MAX)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["n"] = json!(-4096)),
        Err(KeystoreError::Json(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["r"] = json!(33)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["r"] = json!(0)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["p"] = json!(17)),
        Err(KeystoreError::BadParams(_))
    ));
    // n and r each within bounds, but 2^20 * 16 * 128 bytes = 2 GiB.
    assert!(matches!(
        with(&|v| {
            v["crypto"]["kdfparams"]["n"] = json!(1 << 20);
            v["crypto"]["kdfparams"]["r"] = json!(16);
        }),
        Err(KeystoreError::BadParams(m)) if m.contains("1 GiB")
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["dklen"] = json!(64)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| {
            v["crypto"]["kdfparams"].as_object_mut().unwrap().remove("salt");
        }),
        Err(KeystoreError::Json(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["ciphertext"] = json!("zz")),
        Err(KeystoreError::Hex { field: "ciphertext" })
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["ciphertext"] = json!("abc")),
        Err(KeystoreError::Hex { field: "ciphertext" })
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["ciphertext"] = json!("")),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["ciphertext"] = json!("00".repeat(33))),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["cipherparams"]["iv"] = json!("00".repeat(12))),
        Err(KeystoreError::BadParams(m)) if m.contains("iv")
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["mac"] = json!("00".repeat(31))),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["salt"] = json!("0x00")),
        Err(KeystoreError::Hex { field: "salt" })
    ));
    assert!(matches!(
        with(&|v| v["address"] = json!("xyz")),
        Err(KeystoreError::Hex { field: "address" })
    ));
    assert!(matches!(
        with(&|v| v["address"] = json!("00".repeat(19))),
        Err(KeystoreError::BadParams(_))
    ));
    let long_kdf = "k".repeat(1000);
    match with(&|v| v["crypto"]["kdf"] = json!(long_kdf)) {
        Err(KeystoreError::UnsupportedKdf(k)) => assert!(k.chars().count() <= MAX_ECHO + 1),
        other => panic!("{other:?}"),
    }
    // An accepted address with a 0x prefix and upper-case digits.
    let upper = base["address"].as_str().unwrap().to_uppercase();
    assert!(with(&|v| v["address"] = json!(format!("0x{upper}"))).is_ok());
}

#[test]
fn pbkdf2_params_are_checked() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(SPEC_PBKDF2).unwrap();
        f(&mut v);
        parse_value(&v)
    };
    assert!(with(&|_| {}).is_ok());
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["prf"] = json!("hmac-sha512")),
        Err(KeystoreError::UnsupportedKdf(k)) if k.contains("hmac-sha512")
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["c"] = json!(0)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["c"] = json!(10_000_001)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["c"] = json!(u64::MAX)),
        Err(KeystoreError::BadParams(_))
    ));
    assert!(matches!(
        with(&|v| v["crypto"]["kdfparams"]["dklen"] = json!(16)),
        Err(KeystoreError::BadParams(_))
    ));
}

#[test]
fn flipped_ciphertext_byte_is_a_mac_mismatch() {
    let password = b"flip";
    let (_, keystore, _) = light(password);
    let mut tampered = keystore.clone();
    tampered.ciphertext[7] ^= 0x01;
    let tampered: Keystore = tampered.to_string().parse().unwrap();
    assert!(matches!(tampered.decrypt(password), Err(KeystoreError::WrongPassword)));
    let mut tampered = keystore;
    tampered.mac[31] ^= 0x80;
    assert!(matches!(tampered.decrypt(password), Err(KeystoreError::WrongPassword)));
}

#[test]
fn mismatched_address_is_refused() {
    let password = b"address";
    let (_, _, mut value) = light(password);
    let other = crate::crypto::generate_key();
    value["address"] = json!(HEXLOWER.encode(&address(other.verifying_key())));
    let keystore = parse_value(&value).unwrap();
    assert!(matches!(keystore.decrypt(password), Err(KeystoreError::AddressMismatch)));
}

#[test]
fn zero_key_is_invalid() {
    // A correctly MACed keystore whose plaintext is the zero scalar.
    let password = b"zero";
    let (_, mut keystore, _) = light(password);
    keystore.address = None;
    let derived = keystore.kdf.derive(password).unwrap();
    let (enc_key, mac_key) = split_derived_key(&derived);
    let mut ciphertext = [0u8; 32];
    apply_keystream(&enc_key, &keystore.iv, &mut ciphertext).unwrap();
    keystore.ciphertext = ciphertext.to_vec();
    keystore.mac = compute_mac(&mac_key, &ciphertext);
    assert!(matches!(keystore.decrypt(password), Err(KeystoreError::InvalidKey)));
}

#[test]
fn no_secret_in_any_string() {
    let password = "hunter2-Sup3r-Secret-Passphrase";
    let (key, keystore, mut value) = light(password.as_bytes());
    let secret_hex = key_hex(&key);
    let secret_upper = secret_hex.to_uppercase();

    let mut strings = vec![
        format!("{keystore:?}"),
        format!("{keystore:#?}"),
        keystore.to_string(),
        format!("{keystore:#}"),
        serde_json::to_string(&keystore).unwrap(),
    ];
    let mut errors = vec![
        keystore.decrypt(b"not the password").unwrap_err(),
        KeystoreError::AddressMismatch,
        KeystoreError::InvalidKey,
        "{".parse::<Keystore>().unwrap_err(),
    ];
    for edit in [
        json!({"version": 2}),
        json!({"crypto": {"cipher": "aes-256-gcm"}}),
        json!({"crypto": {"kdf": "argon2"}}),
        json!({"crypto": {"kdfparams": {"n": 1u64 << 30}}}),
        json!({"crypto": {"ciphertext": "zz"}}),
        json!({"crypto": {"cipherparams": {"iv": "00"}}}),
    ] {
        let mut v = value.clone();
        merge(&mut v, &edit);
        errors.push(parse_value(&v).unwrap_err());
    }
    value["address"] = json!("00".repeat(20));
    errors.push(parse_value(&value).unwrap().decrypt(password.as_bytes()).unwrap_err());
    assert!(matches!(errors.last(), Some(KeystoreError::AddressMismatch)));

    for e in &errors {
        strings.push(e.to_string());
        strings.push(format!("{e:?}"));
    }
    for s in &strings {
        assert!(!s.contains(password), "password leaked: {s}");
        assert!(!s.contains(&secret_hex) && !s.contains(&secret_upper), "key leaked: {s}");
    }
}

/// Overwrites the leaves of `patch` into `target`.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(map) => {
            for (k, v) in map {
                merge(&mut target[k], v);
            }
        }
        leaf => *target = leaf.clone(),
    }
}
