//! The node's configuration: one TOML format for the agent and the relay,
//! every key also settable by a command-line flag, and a default built into
//! the binary (`MIG_NODE_CONFIG=agent.toml cargo build --release -p mig-node`).
//!
//! ```toml
//! data_dir = "/var/lib/mig-node"
//! listen = ["/ip4/0.0.0.0/tcp/4001"]
//! bootstrap = ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW..."]
//! trust = ["/etc/mig/alice.pub", "mig-ed25519 8f2c... Bob <bob@example.org>"]
//! acl = "/etc/mig/acl.json"          # optional; default: any trusted key
//! tags = { team = "web", site = "ams" }
//! root = "/"                         # filesystem modules look here
//! psk = "/etc/mig/swarm.key"         # optional pre-shared key (64 hex)
//! max_validity = "7d"
//! max_concurrent_actions = 4
//! external_addresses = []            # relays: addresses others dial
//! mdns = false                       # find peers on the LAN, no relay needed
//! name = "web-7"                     # optional; default: the host name
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use mig_proto::time::parse_duration_seconds;
use mig_proto::{Acl, PublicKey, TrustStore};
use serde::Deserialize;

/// The configuration built into this binary (empty unless built with
/// `MIG_NODE_CONFIG`).
pub const EMBEDDED: &str = include_str!(concat!(env!("OUT_DIR"), "/embedded-config.toml"));

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config key '{key}': {message}")]
    Key { key: &'static str, message: String },
}

fn key_error(key: &'static str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Key {
        key,
        message: message.to_string(),
    }
}

/// The file (or embedded) form; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub bootstrap: Vec<String>,
    #[serde(default)]
    pub trust: Vec<String>,
    pub acl: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub root: Option<PathBuf>,
    pub psk: Option<PathBuf>,
    pub max_validity: Option<String>,
    pub max_concurrent_actions: Option<usize>,
    #[serde(default)]
    pub external_addresses: Vec<String>,
    /// Find peers on the local network by multicast DNS.
    pub mdns: Option<bool>,
    /// The name this agent reports (default: the host name); for hosts
    /// whose host name says nothing, such as containers.
    pub name: Option<String>,
    /// How long a connected peer may stay silent to a ping before its
    /// connection is closed (and pinged that often), e.g. `30s`.
    pub peer_timeout: Option<String>,
}

impl ConfigFile {
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::File {
            path: origin.to_owned(),
            message: error.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Later values override earlier ones; lists given later replace.
    pub fn overlay(mut self, other: ConfigFile) -> Self {
        macro_rules! take {
            ($($field:ident),*) => { $( if other.$field.is_some() { self.$field = other.$field; } )* };
        }
        take!(
            data_dir,
            acl,
            root,
            psk,
            max_validity,
            max_concurrent_actions,
            mdns,
            name,
            peer_timeout
        );
        macro_rules! replace {
            ($($field:ident),*) => { $( if !other.$field.is_empty() { self.$field = other.$field; } )* };
        }
        replace!(listen, bootstrap, trust, external_addresses);
        self.tags.extend(other.tags);
        self
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub trusted: TrustStore,
    pub acl: Acl,
    pub tags: BTreeMap<String, String>,
    pub root: PathBuf,
    pub psk: Option<[u8; 32]>,
    pub max_validity_seconds: i64,
    pub max_concurrent_actions: usize,
    pub external_addresses: Vec<Multiaddr>,
    pub mdns: bool,
    /// Overrides the host name in the agent's attributes.
    pub name: Option<String>,
    /// Ping interval and timeout: a peer that does not answer in time is
    /// taken for gone (a host that lost power or a cut link closes no
    /// connection) and its connection closed, so gossip and reports route
    /// around it.
    pub peer_timeout: Duration,
}

/// Dead connections are closed within two of these.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(30);

fn multiaddrs(key: &'static str, values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    values
        .iter()
        .map(|value| {
            value
                .parse::<Multiaddr>()
                .map_err(|error| key_error(key, format!("'{value}': {error}")))
        })
        .collect()
}

/// Reads a pre-shared key file: 64 hex characters (libp2p's
/// `/key/swarm/psk/1.0.0/` format is accepted too).
pub fn read_psk(path: &Path) -> Result<[u8; 32], ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| key_error("psk", format!("{}: {error}", path.display())))?;
    let hex_line = text
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("");
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_line, &mut key).map_err(|_| {
        key_error(
            "psk",
            format!("{}: expected 64 hexadecimal characters", path.display()),
        )
    })?;
    Ok(key)
}

impl NodeConfig {
    /// Validates a configuration; errors name the key.
    pub fn from_file(file: ConfigFile) -> Result<Self, ConfigError> {
        let data_dir = file
            .data_dir
            .ok_or_else(|| key_error("data_dir", "is required"))?;
        let listen = if file.listen.is_empty() {
            vec![
                "/ip4/0.0.0.0/tcp/4001"
                    .parse()
                    .map_err(|error| key_error("listen", error))?,
            ]
        } else {
            multiaddrs("listen", &file.listen)?
        };
        let bootstrap = multiaddrs("bootstrap", &file.bootstrap)?;
        for address in &bootstrap {
            if !address
                .iter()
                .any(|protocol| matches!(protocol, libp2p::multiaddr::Protocol::P2p(_)))
            {
                return Err(key_error(
                    "bootstrap",
                    format!("'{address}' has no /p2p/<peer id>"),
                ));
            }
        }
        let mut trusted = TrustStore::default();
        for entry in &file.trust {
            let key = if entry
                .trim_start()
                .starts_with(mig_proto::ids::PUBLIC_KEY_PREFIX)
            {
                PublicKey::parse(entry).map_err(|error| key_error("trust", error))?
            } else {
                mig_keys::load_public_key(Path::new(entry))
                    .map_err(|error| key_error("trust", error))?
            };
            trusted.add(key);
        }
        let acl = match &file.acl {
            Some(path) => {
                mig_keys::load_acl(Path::new(path)).map_err(|error| key_error("acl", error))?
            }
            None => trusted.default_acl(),
        };
        let root = file.root.unwrap_or_else(|| PathBuf::from("/"));
        if !root.is_dir() {
            return Err(key_error(
                "root",
                format!("{} is not a directory", root.display()),
            ));
        }
        let psk = match &file.psk {
            Some(path) => Some(read_psk(path)?),
            None => None,
        };
        let max_validity_seconds = match &file.max_validity {
            Some(text) => {
                parse_duration_seconds(text).map_err(|error| key_error("max_validity", error))?
            }
            None => mig_proto::verify::DEFAULT_MAX_VALIDITY_SECONDS,
        };
        let peer_timeout = match &file.peer_timeout {
            Some(text) => {
                let seconds = parse_duration_seconds(text)
                    .map_err(|error| key_error("peer_timeout", error))?;
                if !(1..=600).contains(&seconds) {
                    return Err(key_error("peer_timeout", "must be 1s to 10m"));
                }
                Duration::from_secs(seconds.unsigned_abs())
            }
            None => DEFAULT_PEER_TIMEOUT,
        };
        let max_concurrent_actions = file.max_concurrent_actions.unwrap_or(4);
        if max_concurrent_actions == 0 || max_concurrent_actions > 64 {
            return Err(key_error("max_concurrent_actions", "must be 1 to 64"));
        }
        for key in file.tags.keys() {
            if key.is_empty() || key.len() > 64 {
                return Err(key_error(
                    "tags",
                    format!("tag name '{key}' must be 1 to 64 characters"),
                ));
            }
        }
        Ok(Self {
            data_dir,
            listen,
            bootstrap,
            trusted,
            acl,
            tags: file.tags,
            root,
            psk,
            max_validity_seconds,
            max_concurrent_actions,
            external_addresses: multiaddrs("external_addresses", &file.external_addresses)?,
            mdns: file.mdns.unwrap_or(false),
            name: match file.name {
                Some(name) if name.trim().is_empty() || name.len() > 255 => {
                    return Err(key_error("name", "must be 1 to 255 characters"));
                }
                name => name,
            },
            peer_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let base = || ConfigFile {
            data_dir: Some(dir.path().to_owned()),
            ..ConfigFile::default()
        };
        let cases: Vec<(ConfigFile, &str)> = vec![
            (ConfigFile::default(), "data_dir"),
            (
                ConfigFile {
                    listen: vec!["not an address".into()],
                    ..base()
                },
                "listen",
            ),
            (
                ConfigFile {
                    bootstrap: vec!["/ip4/10.0.0.1/tcp/4001".into()],
                    ..base()
                },
                "bootstrap",
            ),
            (
                ConfigFile {
                    trust: vec!["/no/such/key.pub".into()],
                    ..base()
                },
                "trust",
            ),
            (
                ConfigFile {
                    max_validity: Some("forever".into()),
                    ..base()
                },
                "max_validity",
            ),
            (
                ConfigFile {
                    root: Some("/no/such/root".into()),
                    ..base()
                },
                "root",
            ),
            (
                ConfigFile {
                    max_concurrent_actions: Some(0),
                    ..base()
                },
                "max_concurrent_actions",
            ),
            (
                ConfigFile {
                    peer_timeout: Some("0s".into()),
                    ..base()
                },
                "peer_timeout",
            ),
            (
                ConfigFile {
                    peer_timeout: Some("a while".into()),
                    ..base()
                },
                "peer_timeout",
            ),
        ];
        for (file, key) in cases {
            let error = NodeConfig::from_file(file).unwrap_err().to_string();
            assert!(error.starts_with(&format!("config key '{key}'")), "{error}");
        }
        let error = ConfigFile::parse("data_dir = '/x'\nlisten_on = []\n", Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen_on"), "{error}");
    }

    #[test]
    fn flags_override_the_file() {
        let file = ConfigFile::parse(
            "data_dir = '/a'\nlisten = ['/ip4/0.0.0.0/tcp/1']\ntags = { team = 'ir' }\n",
            Path::new("a.toml"),
        )
        .unwrap();
        let flags = ConfigFile {
            data_dir: Some("/b".into()),
            tags: BTreeMap::from([("site".into(), "ams".into())]),
            ..ConfigFile::default()
        };
        let flags = ConfigFile {
            mdns: Some(true),
            ..flags
        };
        let merged = file.overlay(flags);
        assert_eq!(merged.mdns, Some(true));
        assert_eq!(merged.data_dir.unwrap(), Path::new("/b"));
        assert_eq!(merged.listen, ["/ip4/0.0.0.0/tcp/1"]);
        assert_eq!(merged.tags.len(), 2);
    }

    #[test]
    fn inline_trusted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = mig_keys::SecretKey::from_seed(&[3; 32], "Alice");
        let file = ConfigFile {
            data_dir: Some(dir.path().to_owned()),
            trust: vec![key.public().to_string()],
            ..ConfigFile::default()
        };
        let config = NodeConfig::from_file(file).unwrap();
        assert!(config.trusted.get(&key.fingerprint()).is_some());
    }
}
