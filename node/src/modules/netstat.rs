//! `netstat`: the host's network state, and which process owns each
//! socket (MIG users asked for that and never got it).
//!
//! Parameters (MIG's; each a list, at least one given):
//!
//! ```json
//! {"localmac": ["^8c:70:5a"],        // regex on interface MAC addresses
//!  "neighbormac": ["^00:1b:21"],     // regex on MACs in the ARP table
//!  "localip": ["10.0.0.5", "fd00::/8"],   // IP or CIDR of this host's addresses
//!  "neighborip": ["192.168.1.0/24"],      // IP or CIDR in the ARP table
//!  "connectedip": ["203.0.113.0/24"],     // IP or CIDR of a connection's peer
//!  "listeningport": ["4444", 22]}          // TCP or UDP port listened on
//! ```
//!
//! Sources, inside the root prefix: `/proc/net/{tcp,tcp6,udp,udp6}`,
//! `/proc/net/arp` (IPv4 neighbours only), `/sys/class/net/*/address`,
//! `/proc/<pid>/fd` for socket owners; local IPs are the agent's interface
//! addresses.
//!
//! Result: `elements` holds one map per parameter, keyed by the queried
//! value, of lists of `{localmacaddr?, remotemacaddr?, localaddr?,
//! localport?, remoteaddr?, remoteport?, protocol?, state?, interface?,
//! process?: {pid, name, exe?, user?}}`; `statistics` is `{examined,
//! totalhits, exectime}`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;
use mig_proto::ModuleResult;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::procfs::{self, Socket};
use super::{Module, ModuleContext, ModuleError, go_duration, parse_parameters};

pub struct Netstat;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    #[serde(default)]
    localmac: Vec<String>,
    #[serde(default)]
    neighbormac: Vec<String>,
    #[serde(default)]
    localip: Vec<String>,
    #[serde(default)]
    neighborip: Vec<String>,
    #[serde(default)]
    connectedip: Vec<String>,
    #[serde(default)]
    listeningport: Vec<PortValue>,
    /// MIG's network-namespace resolution; not supported here.
    #[serde(default)]
    namespaces: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u64),
    Text(String),
}

/// At most this many values per parameter.
const MAX_VALUES: usize = 1024;

#[derive(Debug, Default, Serialize)]
struct Hit {
    #[serde(skip_serializing_if = "Option::is_none")]
    localmacaddr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remotemacaddr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    localaddr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    localport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remoteaddr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remoteport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<Json>,
}

/// An IP or CIDR; a bare IP is a host network.
/// Parses and checks the parameters: every list bounded, every regex and
/// network valid.
fn checked_parameters(parameters: &Json) -> Result<Parameters, ModuleError> {
    let parameters: Parameters = parse_parameters(parameters)?;
    if parameters.namespaces {
        return Err(ModuleError::InvalidParameters(
            "namespaces is not supported by this agent".into(),
        ));
    }
    let lists = [
        parameters.localmac.len(),
        parameters.neighbormac.len(),
        parameters.localip.len(),
        parameters.neighborip.len(),
        parameters.connectedip.len(),
        parameters.listeningport.len(),
    ];
    if lists.iter().all(|length| *length == 0) {
        return Err(ModuleError::InvalidParameters(
            "give at least one of localmac, neighbormac, localip, neighborip, connectedip, listeningport".into(),
        ));
    }
    if lists.iter().any(|length| *length > MAX_VALUES) {
        return Err(ModuleError::InvalidParameters(format!(
            "at most {MAX_VALUES} values per parameter"
        )));
    }
    for value in parameters.localmac.iter().chain(&parameters.neighbormac) {
        regex(value)?;
    }
    for value in parameters
        .localip
        .iter()
        .chain(&parameters.neighborip)
        .chain(&parameters.connectedip)
    {
        parse_network(value)?;
    }
    for value in &parameters.listeningport {
        port(value)?;
    }
    Ok(parameters)
}

/// A port parameter: its key in the results, and the port.
fn port(value: &PortValue) -> Result<(String, u16), ModuleError> {
    let (key, port) = match value {
        PortValue::Number(number) => (number.to_string(), u16::try_from(*number).ok()),
        PortValue::Text(text) => (text.clone(), text.trim().parse::<u16>().ok()),
    };
    let port =
        port.ok_or_else(|| ModuleError::InvalidParameters(format!("'{key}' is not a port")))?;
    Ok((key, port))
}

fn parse_network(text: &str) -> Result<IpNet, ModuleError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ModuleError::InvalidParameters(format!("'{text}' is not an IP address or CIDR network"))
        })
}

/// IPv4 peers of dual-stack sockets show as `::ffff:a.b.c.d`.
fn unmapped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

fn regex(text: &str) -> Result<regex::Regex, ModuleError> {
    regex::RegexBuilder::new(text)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|error| ModuleError::InvalidParameters(format!("invalid regex '{text}': {error}")))
}

impl Module for Netstat {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn check(&self, parameters: &Json) -> Result<(), ModuleError> {
        checked_parameters(parameters).map(drop)
    }

    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError> {
        let started = Instant::now();
        let parameters = checked_parameters(parameters)?;
        let mut errors = Vec::new();
        let mut examined = 0u64;
        let mut elements: BTreeMap<&str, BTreeMap<String, Vec<Hit>>> = BTreeMap::new();
        let root = &context.root;

        if !parameters.localmac.is_empty() {
            let macs = procfs::local_macs(root);
            examined += macs.len() as u64;
            for value in &parameters.localmac {
                let pattern = regex(value)?;
                let hits = macs
                    .iter()
                    .filter(|(_, mac)| pattern.is_match(mac))
                    .map(|(interface, mac)| Hit {
                        localmacaddr: Some(mac.clone()),
                        interface: Some(interface.clone()),
                        ..Hit::default()
                    })
                    .collect();
                elements
                    .entry("localmac")
                    .or_default()
                    .insert(value.clone(), hits);
            }
        }
        if !parameters.neighbormac.is_empty() || !parameters.neighborip.is_empty() {
            let neighbours = procfs::arp_table(root);
            examined += neighbours.len() as u64;
            let neighbour_hit = |(address, mac, device): &(IpAddr, String, String)| Hit {
                remoteaddr: Some(address.to_string()),
                remotemacaddr: Some(mac.clone()),
                interface: Some(device.clone()),
                ..Hit::default()
            };
            for value in &parameters.neighbormac {
                let pattern = regex(value)?;
                let hits = neighbours
                    .iter()
                    .filter(|(_, mac, _)| pattern.is_match(mac))
                    .map(neighbour_hit)
                    .collect();
                elements
                    .entry("neighbormac")
                    .or_default()
                    .insert(value.clone(), hits);
            }
            for value in &parameters.neighborip {
                let network = parse_network(value)?;
                let hits = neighbours
                    .iter()
                    .filter(|(address, _, _)| network.contains(address))
                    .map(neighbour_hit)
                    .collect();
                elements
                    .entry("neighborip")
                    .or_default()
                    .insert(value.clone(), hits);
            }
        }
        for value in &parameters.localip {
            let network = parse_network(value)?;
            let hits = context
                .attributes
                .env
                .addresses
                .iter()
                .filter_map(|cidr| {
                    cidr.parse::<IpNet>()
                        .ok()
                        .map(|net| net.addr())
                        .or_else(|| cidr.parse().ok())
                })
                .filter(|address| network.contains(address))
                .map(|address| Hit {
                    localaddr: Some(address.to_string()),
                    ..Hit::default()
                })
                .collect();
            examined += context.attributes.env.addresses.len() as u64;
            elements
                .entry("localip")
                .or_default()
                .insert(value.clone(), hits);
        }
        if !parameters.connectedip.is_empty() || !parameters.listeningport.is_empty() {
            context.cancellation.check()?;
            let sockets = procfs::sockets(root, &mut errors);
            examined += sockets.len() as u64;
            let owners = procfs::socket_owners(root);
            let users = procfs::users(root);
            let owner_of = |socket: &Socket| {
                owners.get(&socket.inode).and_then(|pid| procfs::process(root, *pid, &users)).map(|process| {
                    json!({"pid": process.pid, "name": process.name, "exe": process.exe, "user": process.user})
                })
            };
            let socket_hit = |socket: &Socket| Hit {
                localaddr: Some(unmapped(socket.local.ip()).to_string()),
                localport: Some(socket.local.port()),
                remoteaddr: socket
                    .is_connected()
                    .then(|| unmapped(socket.remote.ip()).to_string()),
                remoteport: socket.is_connected().then(|| socket.remote.port()),
                protocol: Some(socket.protocol.as_str()),
                state: Some(socket.state_name()),
                process: owner_of(socket),
                ..Hit::default()
            };
            for value in &parameters.connectedip {
                let network = parse_network(value)?;
                let hits = sockets
                    .iter()
                    .filter(|socket| {
                        socket.is_connected() && network.contains(&unmapped(socket.remote.ip()))
                    })
                    .map(socket_hit)
                    .collect();
                elements
                    .entry("connectedip")
                    .or_default()
                    .insert(value.clone(), hits);
            }
            for value in &parameters.listeningport {
                let (key, port) = port(value)?;
                let hits = sockets
                    .iter()
                    .filter(|socket| socket.is_listening() && socket.local.port() == port)
                    .map(socket_hit)
                    .collect();
                elements
                    .entry("listeningport")
                    .or_default()
                    .insert(key, hits);
            }
        }
        let total_hits: usize = elements
            .values()
            .flat_map(BTreeMap::values)
            .map(Vec::len)
            .sum();
        Ok(ModuleResult {
            foundanything: total_hits > 0,
            success: true,
            elements: serde_json::to_value(elements).unwrap_or_default(),
            statistics: json!({"examined": examined, "totalhits": total_hits, "exectime": go_duration(started.elapsed())}),
            errors,
        })
    }

    fn print(&self, result: &ModuleResult, found_only: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let text = |value: &Json| {
            value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string())
        };
        for (category, values) in result.elements.as_object().into_iter().flatten() {
            for (value, hits) in values.as_object().into_iter().flatten() {
                let hits = hits.as_array().cloned().unwrap_or_default();
                if hits.is_empty() && !found_only {
                    lines.push(format!("nothing found for netstat {category}:'{value}'"));
                }
                for hit in hits {
                    let owner = match hit.get("process") {
                        Some(process) if !process.is_null() => {
                            format!(" by pid {} ({})", process["pid"], text(&process["name"]))
                        }
                        _ => String::new(),
                    };
                    let finding = match category.as_str() {
                        "localmac" => format!(
                            "found local mac {} on {}",
                            text(&hit["localmacaddr"]),
                            text(&hit["interface"])
                        ),
                        "neighbormac" | "neighborip" => format!(
                            "found neighbor {} with mac {} on {}",
                            text(&hit["remoteaddr"]),
                            text(&hit["remotemacaddr"]),
                            text(&hit["interface"])
                        ),
                        "localip" => format!("found local ip {}", text(&hit["localaddr"])),
                        "connectedip" => format!(
                            "found connected tuple {} {}:{} -> {}:{} ({}){owner}",
                            text(&hit["protocol"]),
                            text(&hit["localaddr"]),
                            hit["localport"],
                            text(&hit["remoteaddr"]),
                            hit["remoteport"],
                            text(&hit["state"])
                        ),
                        _ => format!(
                            "found listening port {} on {} ({}){owner}",
                            hit["localport"],
                            text(&hit["localaddr"]),
                            text(&hit["protocol"])
                        ),
                    };
                    lines.push(format!("{finding} for netstat {category}:'{value}'"));
                }
            }
        }
        if !found_only {
            lines.extend(result.errors.iter().map(|error| format!("error: {error}")));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use mig_proto::{AgentAttributes, AgentEnvironment};
    use serde_json::json;

    use super::*;
    use crate::modules::testing::{context, context_with, plant};

    /// A synthetic host: sshd listening on 22, a connection to
    /// 203.0.113.9:4444 owned by pid 4242 ("nc"), an IPv6 listener on
    /// 8080, a UDP socket on 53, two neighbours and one interface.
    fn host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        plant(
            root,
            "/proc/net/tcp",
            format!(
                "{header}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n   1: 0500000A:C350 097100CB:115C 01 00000000:00000000 00:00000000 00000000  1000        0 2002 1 0 20 4 30 10 -1\n"
            ),
        );
        plant(
            root,
            "/proc/net/tcp6",
            format!(
                "{header}   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3003 1 0 100 0 0 10 0\n"
            ),
        );
        plant(
            root,
            "/proc/net/udp",
            format!(
                "{header}   0: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4004 2 0 0\n"
            ),
        );
        plant(
            root,
            "/proc/net/arp",
            "IP address       HW type     Flags       HW address            Mask     Device\n192.168.1.1      0x1         0x2         AA:BB:CC:DD:EE:01     *        eth0\n10.0.0.7         0x1         0x2         00:1b:21:00:00:07     *        eth1\n",
        );
        plant(root, "/sys/class/net/eth0/address", "8c:70:5a:01:02:03\n");
        plant(root, "/sys/class/net/lo/address", "00:00:00:00:00:00\n");
        plant(
            root,
            "/proc/4242/status",
            "Name:\tnc\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\n",
        );
        plant(
            root,
            "/proc/4242/cmdline",
            "nc\u{0}203.0.113.9\u{0}4444\u{0}",
        );
        fs::create_dir_all(root.join("proc/4242/fd")).unwrap();
        symlink("socket:[2002]", root.join("proc/4242/fd/3")).unwrap();
        symlink("/dev/null", root.join("proc/4242/fd/0")).unwrap();
        plant(
            root,
            "/etc/passwd",
            "root:x:0:0::/root:/bin/sh\nmallory:x:1000:1000::/home/m:/bin/sh\n",
        );
        dir
    }

    fn run(root: &Path, parameters: Json) -> ModuleResult {
        let attributes = AgentAttributes {
            env: AgentEnvironment {
                addresses: vec!["10.0.0.5/24".into(), "fd00::5/64".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        Netstat
            .run(&parameters, &context_with(root, None, attributes))
            .unwrap()
    }

    #[test]
    fn connected_ip_names_the_owning_process() {
        let dir = host();
        let result = run(dir.path(), json!({"connectedip": ["203.0.113.0/24"]}));
        assert!(result.foundanything);
        let hit = &result.elements["connectedip"]["203.0.113.0/24"][0];
        assert_eq!(hit["localaddr"], "10.0.0.5");
        assert_eq!(hit["localport"], 50000);
        assert_eq!(hit["remoteaddr"], "203.0.113.9");
        assert_eq!(hit["remoteport"], 4444);
        assert_eq!(hit["state"], "ESTABLISHED");
        assert_eq!(hit["process"]["pid"], 4242);
        assert_eq!(hit["process"]["name"], "nc");
        assert_eq!(hit["process"]["user"], "mallory");
        let lines = Netstat.print(&result, true);
        assert_eq!(
            lines,
            [
                "found connected tuple tcp 10.0.0.5:50000 -> 203.0.113.9:4444 (ESTABLISHED) by pid 4242 (nc) for netstat connectedip:'203.0.113.0/24'"
            ]
        );
    }

    #[test]
    fn listening_ports_over_tcp_tcp6_and_udp() {
        let dir = host();
        let result = run(
            dir.path(),
            json!({"listeningport": ["22", 8080, "53", "4444"]}),
        );
        assert_eq!(result.elements["listeningport"]["22"][0]["protocol"], "tcp");
        assert_eq!(
            result.elements["listeningport"]["8080"][0]["localaddr"],
            "::"
        );
        assert_eq!(result.elements["listeningport"]["53"][0]["protocol"], "udp");
        assert_eq!(
            result.elements["listeningport"]["4444"]
                .as_array()
                .unwrap()
                .len(),
            0,
            "4444 is connected to, not listened on"
        );
        assert_eq!(result.statistics["totalhits"], 3);
    }

    #[test]
    fn macs_neighbours_and_local_ips() {
        let dir = host();
        let result = run(
            dir.path(),
            json!({
            "localmac": ["^8c:70"], "neighbormac": ["^00:1b:21"], "neighborip": ["192.168.1.0/24"],
            "localip": ["10.0.0.0/8", "192.0.2.1"]}),
        );
        assert_eq!(
            result.elements["localmac"]["^8c:70"][0]["interface"],
            "eth0"
        );
        assert_eq!(
            result.elements["neighbormac"]["^00:1b:21"][0]["remoteaddr"],
            "10.0.0.7"
        );
        assert_eq!(
            result.elements["neighborip"]["192.168.1.0/24"][0]["remotemacaddr"],
            "aa:bb:cc:dd:ee:01"
        );
        assert_eq!(
            result.elements["localip"]["10.0.0.0/8"][0]["localaddr"],
            "10.0.0.5"
        );
        assert_eq!(
            result.elements["localip"]["192.0.2.1"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        let dir = host();
        let context_error = |parameters: Json| {
            Netstat
                .run(&parameters, &context(dir.path()))
                .unwrap_err()
                .to_string()
        };
        assert!(context_error(json!({})).contains("at least one"));
        assert!(context_error(json!({"connectedip": ["10.0.0.300"]})).contains("not an IP"));
        assert!(context_error(json!({"listeningport": ["70000"]})).contains("not a port"));
        assert!(context_error(json!({"localmac": ["("]})).contains("invalid regex"));
        assert!(context_error(json!({"remoteip": ["1.2.3.4"]})).contains("unknown field"));
    }
}
