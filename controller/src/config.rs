//! The controller's configuration: a TOML file, with secrets only from files or the
//! environment.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::{health::HealthThresholds, policy::TreePolicy};

/// Environment variable holding the operators' API token (or use `admin_token_file`).
pub const ADMIN_TOKEN_ENV: &str = "WAKUFLEET_ADMIN_TOKEN";

/// Everything the controller is told at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// HTTP API address.
    pub listen: SocketAddr,
    /// `sqlite://file` (the embedded default) or `postgres://…`.
    pub database_url: String,
    /// File holding the operators' bearer token (else `$WAKUFLEET_ADMIN_TOKEN`).
    pub admin_token_file: Option<PathBuf>,
    /// Health thresholds.
    pub health: HealthThresholds,
    /// How far a report's `sentAt` may be behind our clock (queued reports are re-signed, so
    /// this bounds replays, not queueing).
    pub max_skew_secs: i64,
    /// How far a report's or enrolment's `sentAt` may be ahead of our clock: seconds, not
    /// minutes, so no agent can keep its node "fresh" with reports from the future.
    pub max_future_skew_secs: i64,
    /// Reports kept per node.
    pub reports_kept: i64,
    /// How often health, trees and publication are brought up to date.
    pub reconcile_interval_ms: u64,
    /// A tree's membership change waits this long for more before a version is built, so a
    /// burst (five enrolments in a second, a flapping node) makes one version — one signature
    /// for an offline key holder. A removal waits no longer than this either. 0: build at once.
    pub settle_ms: u64,
    /// TTL of tree roots, wherever published. Superseded leaves stay published for at least
    /// this long after a new root, so clients holding the old root can still walk it.
    pub root_ttl: u32,
    /// TTL of the other tree records (content-addressed, so they can be cached long).
    pub ttl: u32,
    /// The built-in authoritative DNS server, if any.
    pub dns: Option<DnsConfig>,
    /// Dialling nodes at their advertised addresses.
    pub reachability: crate::reachability::ReachabilityConfig,
    /// Signing keys held online.
    pub keys: Vec<KeyConfig>,
    /// Trees defined at start (more can be defined over the API).
    pub trees: Vec<TreeConfig>,
    /// Where signed trees are published besides the built-in DNS server.
    pub publishers: Vec<PublisherConfig>,
    /// The HTML dashboard on the API's address.
    pub dashboard: DashboardConfig,
    /// `GET /metrics`.
    pub metrics: MetricsConfig,
    /// HTTPS on `listen` (else plain HTTP, e.g. behind a TLS-terminating proxy).
    pub tls: Option<TlsConfig>,
    /// Timeouts, connection caps and rate limits of the API's server.
    pub http: crate::http_server::HttpConfig,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://wakufleet-controller.db".into(),
            admin_token_file: None,
            health: HealthThresholds::default(),
            max_skew_secs: 300,
            max_future_skew_secs: 10,
            reports_kept: 100,
            reconcile_interval_ms: 2_000,
            settle_ms: 3_000,
            root_ttl: crate::publish::zone::DEFAULT_ROOT_TTL,
            ttl: crate::publish::zone::DEFAULT_TTL,
            dns: None,
            reachability: crate::reachability::ReachabilityConfig::default(),
            keys: Vec::new(),
            trees: Vec::new(),
            publishers: Vec::new(),
            dashboard: DashboardConfig::default(),
            metrics: MetricsConfig::default(),
            tls: None,
            http: crate::http_server::HttpConfig::default(),
        }
    }
}

/// The API's own TLS: a certificate chain and its key, PEM (the key file readable by the
/// controller only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

impl TlsConfig {
    /// Reads both files and builds the server configuration.
    pub fn load(&self) -> Result<rustls::ServerConfig, ConfigError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| ConfigError::Read { path: path.clone(), source })
        };
        node::tls::server_config(&read(&self.cert_file)?, &read(&self.key_file)?)
            .map_err(|e| ConfigError::Invalid(format!("tls: {e}")))
    }
}

/// `GET /metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Only for a bearer token whose role may read (a viewer's, for Prometheus). Off: open to
    /// anyone who reaches the port, which then learns node ids, labels and health.
    pub require_token: bool,
}

/// The read-only HTML dashboard at `/dashboard`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Off: `/dashboard` answers 404.
    pub enabled: bool,
    /// Without a login. Otherwise the browser asks for one: an account's name and access
    /// token, any role (HTTP Basic; serve the API over TLS, or on a trusted network).
    pub public: bool,
    /// Seconds between automatic reloads of the overview (0: never).
    pub refresh_secs: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self { enabled: true, public: false, refresh_secs: 15 }
    }
}

/// The built-in DNS server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// UDP and TCP address.
    pub listen: SocketAddr,
    /// The zone it is authoritative for; every tree domain must be inside it.
    pub zone: String,
    /// The zone's name servers for its NS records, the first also the SOA's primary (as the
    /// parent zone's delegation names them). Default: `ns1.<zone>`.
    #[serde(default)]
    pub name_servers: Vec<String>,
    /// The SOA's responsible mailbox in domain form. Default: `hostmaster.<zone>`.
    #[serde(default)]
    pub hostmaster: Option<String>,
    /// UDP answers per second per client prefix (/24, /56), as Knot's RRL; 0: unlimited.
    #[serde(default = "default_dns_rate_limit")]
    pub rate_limit: u32,
    /// Every n-th limited query is answered truncated (TC=1, so real clients retry over TCP);
    /// 0 drops them all.
    #[serde(default = "default_dns_rate_limit_slip")]
    pub rate_limit_slip: u32,
    /// Limit loopback clients too (off: on one host, every local tool is 127.0.0.1).
    #[serde(default)]
    pub rate_limit_loopback: bool,
}

fn default_dns_rate_limit() -> u32 {
    crate::publish::response_rate::RateLimit::default().responses_per_second
}

fn default_dns_rate_limit_slip() -> u32 {
    crate::publish::response_rate::RateLimit::default().slip
}

impl DnsConfig {
    /// The response-rate limit of the server's UDP answers.
    pub fn rate_limit(&self) -> crate::publish::response_rate::RateLimit {
        crate::publish::response_rate::RateLimit {
            responses_per_second: self.rate_limit,
            slip: self.rate_limit_slip,
            limit_loopback: self.rate_limit_loopback,
        }
    }

    /// The SOA and NS names to serve.
    pub fn apex(&self) -> crate::publish::dns_server::ApexNames {
        crate::publish::dns_server::ApexNames {
            name_servers: self.name_servers.clone(),
            hostmaster: self.hostmaster.clone(),
        }
    }
}

/// A signing key the controller unlocks at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Its name; trees refer to it as `key:<name>`.
    pub name: String,
    /// The Web3 v3 keystore file.
    pub keystore: PathBuf,
    /// File holding the keystore password (else `$WAKUFLEET_KEY_<NAME>_PASSWORD`).
    pub password_file: Option<PathBuf>,
}

/// A tree defined in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeConfig {
    /// Its name.
    pub name: String,
    /// Where it is published.
    pub domain: String,
    /// `key:<name>` or `offline`.
    pub signer: crate::tree_definition::Signer,
    /// Who is listed.
    #[serde(default)]
    pub policy: TreePolicy,
}

/// An external publisher, `kind = "…"` in a `[[publishers]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PublisherConfig {
    /// RFC 2136 dynamic updates to a primary DNS server (Knot, BIND, PowerDNS…).
    Rfc2136 {
        /// The primary's address (TCP).
        server: SocketAddr,
        /// The zone it is authoritative for.
        zone: String,
        /// File holding the TSIG key as `[algorithm:]name:base64secret` (Knot's `-y` form).
        tsig_key_file: Option<PathBuf>,
        /// Else the name of an environment variable holding it. Neither: unsigned updates.
        tsig_key_env: Option<String>,
        /// How long one UPDATE exchange may take.
        #[serde(default = "default_publish_timeout_ms")]
        timeout_ms: u64,
    },
    /// Zone files kept up to date in a directory (for BIND, Knot, NSD, or a provider's import).
    ZoneFile {
        /// The directory.
        dir: PathBuf,
        /// One file for this whole zone; without it, one file per tree domain.
        zone: Option<String>,
        /// With name servers (the first is the primary) and a hostmaster, every file is a whole
        /// zone with SOA and NS; without, TXT records only, for `$INCLUDE`.
        #[serde(default)]
        name_servers: Vec<String>,
        /// The SOA's responsible mailbox in domain form (`hostmaster.example.org`).
        hostmaster: Option<String>,
    },
    /// Route 53 `ChangeResourceRecordSets` bodies, numbered, for
    /// `aws route53 change-resource-record-sets --change-batch file://…`.
    Route53 {
        /// The directory.
        dir: PathBuf,
        /// The hosted zone's apex; without it, files are named per tree domain.
        zone: Option<String>,
        /// The hosted zone id, recorded in each batch's comment.
        hosted_zone_id: Option<String>,
    },
    /// Cloudflare `dns_records/batch` bodies, numbered, one kind of change per file.
    Cloudflare {
        /// The directory.
        dir: PathBuf,
        /// The Cloudflare zone's apex; without it, files are named per tree domain.
        zone: Option<String>,
        /// The 32-hex-digit zone id.
        zone_id: String,
    },
}

fn default_publish_timeout_ms() -> u64 {
    10_000
}

impl PublisherConfig {
    /// Builds the publisher. Secrets are read here, from files or the environment.
    pub fn build(&self) -> Result<Box<dyn crate::publish::Publisher>, ConfigError> {
        use crate::publish::rfc2136::{Rfc2136Config, Rfc2136Publisher, TsigKey};
        match self {
            Self::Rfc2136 { server, zone, tsig_key_file, tsig_key_env, timeout_ms } => {
                let key_text = match (tsig_key_file, tsig_key_env) {
                    (Some(path), _) => Some(
                        node::keystore::read_password_file(path)
                            .map_err(|source| ConfigError::Read { path: path.clone(), source })?,
                    ),
                    (None, Some(var)) => {
                        Some(zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
                            ConfigError::Invalid(format!("rfc2136 publisher: ${var} is not set"))
                        })?))
                    }
                    (None, None) => None,
                };
                let tsig = key_text
                    .map(|text| text.parse::<TsigKey>())
                    .transpose()
                    .map_err(|e| ConfigError::Invalid(format!("rfc2136 publisher: {e}")))?;
                let mut config = Rfc2136Config::new(*server, zone, tsig);
                config.timeout = std::time::Duration::from_millis((*timeout_ms).max(1));
                let publisher = Rfc2136Publisher::new(config)
                    .map_err(|e| ConfigError::Invalid(format!("rfc2136 publisher: {e}")))?;
                Ok(Box::new(publisher))
            }
            Self::ZoneFile { dir, zone, name_servers, hostmaster } => {
                use crate::publish::zone_file::{Soa, ZoneFileOptions, ZoneFilePublisher};
                let soa = match (name_servers.is_empty(), hostmaster) {
                    (true, None) => None,
                    (false, Some(hostmaster)) => Some(Soa::new(name_servers.clone(), hostmaster)),
                    _ => {
                        return Err(ConfigError::Invalid(
                            "zone-file publisher: name_servers and hostmaster go together".into(),
                        ));
                    }
                };
                let publisher = ZoneFilePublisher::new(dir.clone(), ZoneFileOptions { soa })
                    .map_err(|e| ConfigError::Invalid(format!("zone-file publisher: {e}")))?;
                in_zone(zone.as_deref(), Box::new(publisher), "zone-file")
            }
            Self::Route53 { dir, zone, hosted_zone_id } => {
                let publisher = crate::publish::route53::Route53ChangeSetPublisher::new(
                    dir.clone(),
                    hosted_zone_id.clone(),
                )
                .map_err(|e| ConfigError::Invalid(format!("route53 publisher: {e}")))?;
                in_zone(zone.as_deref(), Box::new(publisher), "route53")
            }
            Self::Cloudflare { dir, zone, zone_id } => {
                let publisher = crate::publish::cloudflare::CloudflareChangeSetPublisher::new(
                    dir.clone(),
                    zone_id,
                )
                .map_err(|e| ConfigError::Invalid(format!("cloudflare publisher: {e}")))?;
                in_zone(zone.as_deref(), Box::new(publisher), "cloudflare")
            }
        }
    }
}

/// `publisher`, limited to `zone` when one is given.
fn in_zone(
    zone: Option<&str>,
    publisher: Box<dyn crate::publish::Publisher>,
    kind: &str,
) -> Result<Box<dyn crate::publish::Publisher>, ConfigError> {
    match zone {
        None => Ok(publisher),
        Some(zone) => crate::publish::InZone::new(zone, publisher)
            .map(|p| Box::new(p) as Box<dyn crate::publish::Publisher>)
            .ok_or_else(|| {
                ConfigError::Invalid(format!("{kind} publisher: invalid zone {zone:?}"))
            }),
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML of this shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// serde's message names fields as the structs spell them: say them as the file does.
fn kebab_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_name = false;
    for c in message.chars() {
        if c == '`' {
            in_name = !in_name;
        }
        out.push(if in_name && c == '_' { '-' } else { c });
    }
    out
}

impl ControllerConfig {
    /// Reads a TOML file (kebab-case keys; see [`crate::config_style`]).
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let parse_error = |message: String| ConfigError::Parse { path: path.to_owned(), message };
        let text =
            node::config_env::expand_from_env(&text).map_err(|e| parse_error(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        let (table, old) = crate::config_style::normalize(table);
        for key in &old {
            tracing::warn!(target: "ctl::config", path = %path.display(), "old spelling {key}: keys are kebab-case now");
        }
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_error(kebab_message(&e.to_string())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.health.warning_after_secs >= self.health.critical_after_secs {
            return Err(ConfigError::Invalid(
                "health.warning-after-secs must be below health.critical-after-secs".into(),
            ));
        }
        self.http.validate().map_err(ConfigError::Invalid)?;
        if let Some(dns) = &self.dns {
            for name in dns.name_servers.iter().chain(&dns.hostmaster) {
                if crate::publish::zone::absolute_name(name).is_none() {
                    return Err(ConfigError::Invalid(format!("dns: {name:?} is not a DNS name")));
                }
            }
        }
        if let Some(path) = &self.reachability.tls_trust_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::Invalid(format!("reachability.tls-trust-file {}: {e}", path.display()))
            })?;
            node::tls::client_websocket_tls(&[pem]).map_err(|e| {
                ConfigError::Invalid(format!("reachability.tls-trust-file {}: {e}", path.display()))
            })?;
        }
        for tree in &self.trees {
            tree.policy
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("tree {}: {e}", tree.name)))?;
        }
        Ok(())
    }

    /// The admin token, from the file or the environment.
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            return Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()));
        }
        Ok(std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> Result<ControllerConfig, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let (table, old) = crate::config_style::normalize(table);
        if !old.is_empty() {
            return Err(format!("old spellings: {old:?}"));
        }
        let config: ControllerConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn the_example_in_deploy_parses_and_names_every_publisher_kind() {
        let config = parse(include_str!("../../deploy/controller.example.toml")).unwrap();
        assert_eq!(config.trees.len(), 2);
        let kinds: Vec<&str> = config
            .publishers
            .iter()
            .map(|p| match p {
                PublisherConfig::Rfc2136 { .. } => "rfc2136",
                PublisherConfig::ZoneFile { .. } => "zone-file",
                PublisherConfig::Route53 { .. } => "route53",
                PublisherConfig::Cloudflare { .. } => "cloudflare",
            })
            .collect();
        assert_eq!(kinds, ["rfc2136", "zone-file", "route53", "cloudflare"]);
    }

    #[test]
    fn publishers_build_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("tsig.key");
        std::fs::write(&key_file, "hmac-sha256:fleet.:c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n").unwrap();
        let good = format!(
            r#"
            [[publishers]]
            kind = "rfc2136"
            server = "127.0.0.1:53"
            zone = "fleet.test"
            tsig-key-file = "{key}"
            [[publishers]]
            kind = "zone-file"
            dir = "{dir}/zones"
            zone = "fleet.test"
            [[publishers]]
            kind = "cloudflare"
            dir = "{dir}/cf"
            zone-id = "0123456789abcdef0123456789abcdef"
            "#,
            key = key_file.display(),
            dir = dir.path().display()
        );
        let config = parse(&good).unwrap();
        let built: Vec<Box<dyn crate::publish::Publisher>> =
            config.publishers.iter().map(|p| p.build().unwrap()).collect();
        assert!(built[0].covers("boot.fleet.test") && !built[0].covers("boot.other.test"));
        assert!(built[1].covers("fleet.test") && !built[1].covers("xfleet.test"));
        assert!(built[2].covers("anything.example"), "no zone: every tree");

        let bad = |toml: &str, needle: &str| {
            let error = match parse(toml) {
                Err(e) => e,
                Ok(config) => config.publishers[0].build().err().unwrap().to_string(),
            };
            assert!(error.contains(needle), "{error:?} should mention {needle:?}");
        };
        bad("[[publishers]]\nkind = \"ftp\"\n", "unknown variant");
        bad(
            "[[publishers]]\nkind = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nzone = \"x\"\ntsig-key-env = \"WAKUFLEET_TEST_NO_SUCH_VAR\"\n",
            "WAKUFLEET_TEST_NO_SUCH_VAR is not set",
        );
        bad(
            "[[publishers]]\nkind = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nzone = \"x\"\ntsig-key-file = \"/nonexistent/key\"\n",
            "/nonexistent/key",
        );
        bad(
            "[[publishers]]\nkind = \"cloudflare\"\ndir = \"/tmp\"\nzone-id = \"nothex\"\n",
            "cloudflare publisher",
        );
        bad(
            "[[publishers]]\nkind = \"zone-file\"\ndir = \"/tmp\"\nname-servers = [\"ns1.test\"]\n",
            "go together",
        );
        bad(
            "[[publishers]]\nkind = \"route53\"\ndir = \"/tmp\"\nzone = \"bad..zone\"\n",
            "invalid zone",
        );
    }
}
