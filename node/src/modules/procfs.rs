//! Reading the kernel's views under `/proc` and `/sys` (inside the root
//! prefix, so tests and disk images work): sockets, who owns them,
//! processes, the ARP table, interface MAC addresses, user names. Shared by
//! `netstat` and `process`; not a module itself.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::under_root;

/// Largest kernel table read (a busy server's socket table is a few MiB).
const MAX_TABLE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest per-process file read (`cmdline`, `status`).
const MAX_PROCESS_FILE_BYTES: u64 = 64 * 1024;

pub(crate) fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut text = String::new();
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(text)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl Protocol {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Tcp6 => "tcp6",
            Protocol::Udp => "udp",
            Protocol::Udp6 => "udp6",
        }
    }

    fn is_tcp(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Tcp6)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Socket {
    pub(crate) protocol: Protocol,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    state: u8,
    pub(crate) inode: u64,
}

impl Socket {
    /// A TCP socket in LISTEN, or an unconnected UDP socket.
    pub(crate) fn is_listening(&self) -> bool {
        if self.protocol.is_tcp() {
            self.state == 0x0A
        } else {
            self.remote.port() == 0 && self.remote.ip().is_unspecified()
        }
    }

    /// A socket with a peer (an established or closing TCP connection, a
    /// connected UDP socket).
    pub(crate) fn is_connected(&self) -> bool {
        !self.remote.ip().is_unspecified() && self.remote.port() != 0
    }

    pub(crate) fn state_name(&self) -> &'static str {
        if !self.protocol.is_tcp() {
            return if self.is_connected() {
                "CONNECTED"
            } else {
                "UNCONN"
            };
        }
        match self.state {
            0x01 => "ESTABLISHED",
            0x02 => "SYN_SENT",
            0x03 => "SYN_RECV",
            0x04 => "FIN_WAIT1",
            0x05 => "FIN_WAIT2",
            0x06 => "TIME_WAIT",
            0x07 => "CLOSE",
            0x08 => "CLOSE_WAIT",
            0x09 => "LAST_ACK",
            0x0A => "LISTEN",
            0x0B => "CLOSING",
            _ => "UNKNOWN",
        }
    }
}

/// Every socket in `/proc/net/{tcp,tcp6,udp,udp6}`; unreadable tables and
/// malformed lines are reported, not fatal.
pub(crate) fn sockets(root: &Path, errors: &mut Vec<String>) -> Vec<Socket> {
    let mut sockets = Vec::new();
    for (name, protocol) in [
        ("tcp", Protocol::Tcp),
        ("tcp6", Protocol::Tcp6),
        ("udp", Protocol::Udp),
        ("udp6", Protocol::Udp6),
    ] {
        let path = under_root(root, &Path::new("/proc/net").join(name));
        let text = match read_bounded(&path, MAX_TABLE_BYTES) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                errors.push(format!("/proc/net/{name}: {error}"));
                continue;
            }
        };
        for (number, line) in text.lines().enumerate().skip(1) {
            match parse_socket_line(line, protocol) {
                Some(socket) => sockets.push(socket),
                None if line.trim().is_empty() => {}
                None => errors.push(format!(
                    "/proc/net/{name} line {}: not understood",
                    number + 1
                )),
            }
        }
    }
    sockets
}

fn parse_socket_line(line: &str, protocol: Protocol) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local = parse_hex_socket_address(fields.get(1)?)?;
    let remote = parse_hex_socket_address(fields.get(2)?)?;
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some(Socket {
        protocol,
        local,
        remote,
        state,
        inode,
    })
}

/// `0100007F:1F90` is 127.0.0.1:8080: the address is in the kernel's byte
/// order, 32 bits at a time; the port is plain hex.
fn parse_hex_socket_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(address, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut octets = [0u8; 16];
            for word in 0..4 {
                let value = u32::from_str_radix(&address[word * 8..word * 8 + 8], 16)
                    .ok()?
                    .swap_bytes();
                octets[word * 4..word * 4 + 4].copy_from_slice(&value.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The process ids under `/proc`.
pub(crate) fn pids(root: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(under_root(root, Path::new("/proc")))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Which process holds each socket inode (from `/proc/<pid>/fd` links
/// named `socket:[inode]`).
pub(crate) fn socket_owners(root: &Path) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    for pid in pids(root) {
        let fd_directory = under_root(root, Path::new(&format!("/proc/{pid}/fd")));
        let Ok(entries) = std::fs::read_dir(fd_directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                && let Ok(inode) = inode.parse()
            {
                owners.entry(inode).or_insert(pid);
            }
        }
    }
    owners
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ProcessInfo {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exe: Option<String>,
    pub(crate) uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    pub(crate) cmdline: String,
}

/// What `/proc/<pid>` says about a process, if it still exists.
pub(crate) fn process(root: &Path, pid: u32, users: &HashMap<u32, String>) -> Option<ProcessInfo> {
    let base = under_root(root, Path::new(&format!("/proc/{pid}")));
    let status = read_bounded(&base.join("status"), MAX_PROCESS_FILE_BYTES).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name).map(str::trim))
    };
    let name = field("Name:").unwrap_or("").to_owned();
    let ppid = field("PPid:")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let uid = field("Uid:")
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(u32::MAX);
    let cmdline = read_bounded(&base.join("cmdline"), MAX_PROCESS_FILE_BYTES)
        .map(|text| text.trim_end_matches('\0').replace('\0', " "))
        .unwrap_or_default();
    let exe = std::fs::read_link(base.join("exe"))
        .ok()
        .map(|path| path.display().to_string());
    Some(ProcessInfo {
        pid,
        ppid,
        name,
        exe,
        uid,
        user: users.get(&uid).cloned(),
        cmdline,
    })
}

/// User names by uid, from `/etc/passwd`.
pub(crate) fn users(root: &Path) -> HashMap<u32, String> {
    read_bounded(&under_root(root, Path::new("/etc/passwd")), MAX_TABLE_BYTES)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

/// The IPv4 neighbour table: (address, MAC, device).
pub(crate) fn arp_table(root: &Path) -> Vec<(IpAddr, String, String)> {
    read_bounded(
        &under_root(root, Path::new("/proc/net/arp")),
        MAX_TABLE_BYTES,
    )
    .unwrap_or_default()
    .lines()
    .skip(1)
    .filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let address = fields.first()?.parse().ok()?;
        Some((
            address,
            fields.get(3)?.to_lowercase(),
            fields.get(5)?.to_string(),
        ))
    })
    .collect()
}

/// Interface MAC addresses from `/sys/class/net/<interface>/address`.
pub(crate) fn local_macs(root: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(under_root(root, Path::new("/sys/class/net"))) else {
        return Vec::new();
    };
    let mut macs: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let mac = read_bounded(&entry.path().join("address"), 256)
                .ok()?
                .trim()
                .to_lowercase();
            (!mac.is_empty()).then(|| (entry.file_name().to_string_lossy().into_owned(), mac))
        })
        .collect();
    macs.sort();
    macs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_socket_addresses() {
        assert_eq!(
            parse_hex_socket_address("0100007F:1F90").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_hex_socket_address("00000000000000000000000001000000:0016").unwrap(),
            "[::1]:22".parse().unwrap()
        );
        assert_eq!(
            parse_hex_socket_address("0000000000000000FFFF00000100000A:0050").unwrap(),
            "[::ffff:10.0.0.1]:80".parse().unwrap()
        );
        assert!(parse_hex_socket_address("zz:1").is_none());
    }
}
