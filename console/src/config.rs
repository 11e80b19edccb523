//! The console's configuration: `~/.config/mig/console.toml` (or
//! `$XDG_CONFIG_HOME/mig/console.toml`, or `--config FILE`).
//!
//! ```toml
//! bootstrap = ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW..."]  # relays (mig-node relay prints its address)
//! key = "/home/alice/.mig/alice.key"                       # mig-keys generate --out ...
//! passphrase_file = "/run/user/1000/mig-pass"              # optional; else MIG_KEY_PASSPHRASE or a prompt
//! data_dir = "/home/alice/.mig"                            # identity, history, roster (default ~/.mig)
//! psk = "/etc/mig/swarm.key"                               # if the mesh has a pre-shared key
//! mdns = false                                             # find agents on the LAN, no relay
//! listen = ["/ip4/0.0.0.0/tcp/0"]
//! format = "text"                                          # text, table, json, ndjson or csv
//! timeout = "30s"                                          # stop waiting for answers after this
//!
//! [macros]                                                 # -t NAME means the target
//! linux = "os = 'linux'"
//! webservers = "tags->>'team' = 'web'"
//! ```
//!
//! Flags override the file; a missing default file is an empty
//! configuration, a missing `--config FILE` is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdns: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub macros: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Where the configuration is read from when `--config` is not given.
pub fn default_path() -> Option<PathBuf> {
    if let Some(base) = std::env::var_os("XDG_CONFIG_HOME").filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(base).join("mig/console.toml"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/mig/console.toml"))
}

/// The configuration and the file it came from (none when there is no
/// default file).
pub fn load(given: Option<&Path>) -> Result<(ConsoleConfig, Option<PathBuf>), ConfigError> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => match default_path() {
            Some(path) if path.exists() => path,
            _ => return Ok((ConsoleConfig::default(), None)),
        },
    };
    let error = |message: String| ConfigError::File {
        path: path.clone(),
        message,
    };
    let text = mig_keys::files::read_bounded(&path, MAX_CONFIG_BYTES)
        .map_err(|problem| error(problem.to_string()))?;
    let config: ConsoleConfig =
        toml::from_str(&text).map_err(|problem| error(problem.to_string()))?;
    for (name, target) in &config.macros {
        mig_proto::Target::parse(target)
            .map_err(|problem| error(format!("macro '{name}': {problem}")))?;
    }
    Ok((config, Some(path)))
}

/// What a first run without configuration must be told.
pub fn first_run_help(what_is_missing: &str) -> String {
    let path = default_path().map_or_else(
        || "~/.config/mig/console.toml".to_owned(),
        |path| path.display().to_string(),
    );
    format!(
        "{what_is_missing}. Write {path} (or pass --config FILE) with, for example:\n\n\
         \x20   bootstrap = [\"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...\"]  # a relay: `mig-node relay` prints its address\n\
         \x20   key = \"/home/you/.mig/you.key\"                          # `mig-keys generate --out /home/you/.mig/you.key`\n\n\
         or give --bootstrap ADDRESS and --key FILE on the command line (--mdns finds agents on a LAN without relays).\n\
         To try everything on this machine first: mig demo"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_reads_and_bad_ones_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.toml");
        std::fs::write(
            &path,
            "bootstrap = ['/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWGq1ZZQwu2bC1p2qKoLEzy4WTTXYeTV1sdA6HYWmsUtEN']\n\
             key = '/k'\nformat = 'table'\n[macros]\nlinux = \"os = 'linux'\"\n",
        )
        .unwrap();
        let (config, from) = load(Some(&path)).unwrap();
        assert_eq!(from.as_deref(), Some(path.as_path()));
        assert_eq!(config.key.as_deref(), Some(Path::new("/k")));
        assert_eq!(config.macros["linux"], "os = 'linux'");

        std::fs::write(&path, "bootstrp = []\n").unwrap();
        let error = load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("bootstrp"), "{error}");

        std::fs::write(&path, "[macros]\nbad = \"os = \"\n").unwrap();
        let error = load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("macro 'bad'"), "{error}");

        let error = load(Some(&dir.path().join("none.toml"))).unwrap_err();
        assert!(error.to_string().contains("none.toml"));
    }
}
