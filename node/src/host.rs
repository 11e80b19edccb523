//! What the agent knows about its own host: the attributes targets are
//! evaluated against and `agentinfo` reports.

use std::collections::BTreeMap;
use std::path::Path;

use mig_proto::{AgentAttributes, AgentEnvironment};

/// The agent's version, as targets (`version = '...'`) and results see it.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Reads the host's attributes. `id` is the agent's peer id (empty until
/// the mesh gives it one); `tags` come from configuration.
pub fn detect_attributes(id: &str, tags: BTreeMap<String, String>) -> AgentAttributes {
    AgentAttributes {
        name: hostname(),
        os: std::env::consts::OS.to_owned(),
        arch: go_arch_name(std::env::consts::ARCH).to_owned(),
        version: AGENT_VERSION.to_owned(),
        id: id.to_owned(),
        mode: "daemon".to_owned(),
        env: AgentEnvironment {
            ident: os_release_pretty_name(Path::new("/etc/os-release")).unwrap_or_default(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            init: init_system(),
            addresses: interface_addresses(),
            publicip: None,
            isproxied: false,
            proxy: None,
        },
        tags,
    }
}

/// MIG reported Go's architecture names; keep them so old targets work.
fn go_arch_name(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        other => other,
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `PRETTY_NAME` from an os-release file, unquoted.
pub fn os_release_pretty_name(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').trim_matches('\'').to_owned())
    })
}

fn init_system() -> String {
    let comm = read_trimmed("/proc/1/comm").unwrap_or_default();
    match comm.as_str() {
        "systemd" => "systemd".to_owned(),
        "init" if Path::new("/run/openrc").exists() => "openrc".to_owned(),
        "init" if Path::new("/etc/init").is_dir() => "upstart".to_owned(),
        "init" => "sysvinit".to_owned(),
        other => other.to_owned(),
    }
}

/// Non-loopback interface addresses as CIDR strings (`10.0.0.5/24`).
fn interface_addresses() -> Vec<String> {
    let mut addresses: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|interface| !interface.is_loopback())
        .map(|interface| {
            let prefix = match &interface.addr {
                if_addrs::IfAddr::V4(v4) => u32::from(v4.netmask).count_ones(),
                if_addrs::IfAddr::V6(v6) => u128::from(v6.netmask).count_ones(),
            };
            format!("{}/{prefix}", interface.ip())
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_something_sensible() {
        let attributes = detect_attributes(
            "12D3KooWtest",
            BTreeMap::from([("team".into(), "ir".into())]),
        );
        assert!(!attributes.name.is_empty());
        assert_eq!(attributes.os, std::env::consts::OS);
        assert_eq!(attributes.version, AGENT_VERSION);
        assert_eq!(attributes.tags["team"], "ir");
    }

    #[test]
    fn reads_pretty_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(
            &path,
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
        .unwrap();
        assert_eq!(
            os_release_pretty_name(&path).unwrap(),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }
}
