//! `process`: running processes by name, command line, executable hash or
//! user, each with the sockets it listens on or is connected through.
//!
//! Parameters (at least one filter; a process must satisfy every filter
//! given, and any one value within a filter):
//!
//! ```json
//! {"names": ["^nc$"],              // regex on the process name (comm)
//!  "cmdlines": ["4444"],           // regex on the command line
//!  "exesha256": ["<64 hex>"],      // SHA-256 of the running executable
//!  "users": ["mallory", "0"]}      // user name or uid
//! ```
//!
//! Result: `elements` is `{"processes": [{pid, ppid, name, exe?, uid,
//! user?, cmdline, exesha256?, sockets: [{protocol, localaddr, localport,
//! remoteaddr?, remoteport?, state}]}]}`; `statistics` is `{processcount,
//! totalhits, exectime}`. Read from `/proc` inside the root prefix.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use mig_proto::ModuleResult;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::Digest;

use super::procfs::{self, ProcessInfo};
use super::{Module, ModuleContext, ModuleError, go_duration, parse_parameters, under_root};

pub struct Process;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    cmdlines: Vec<String>,
    #[serde(default)]
    exesha256: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
}

/// Executables larger than this are not hashed.
const MAX_EXECUTABLE_BYTES: u64 = 1 << 30;
/// At most this many processes are reported.
const MAX_REPORTED: usize = 10_000;

fn regexes(values: &[String]) -> Result<Vec<regex::Regex>, ModuleError> {
    values
        .iter()
        .map(|value| {
            regex::RegexBuilder::new(value)
                .size_limit(1 << 20)
                .build()
                .map_err(|error| {
                    ModuleError::InvalidParameters(format!("invalid regex '{value}': {error}"))
                })
        })
        .collect()
}

fn executable_sha256(root: &Path, pid: u32, context: &ModuleContext) -> Option<String> {
    let file =
        std::fs::File::open(under_root(root, Path::new(&format!("/proc/{pid}/exe")))).ok()?;
    if file.metadata().ok()?.len() > MAX_EXECUTABLE_BYTES {
        return None;
    }
    let mut reader = file.take(MAX_EXECUTABLE_BYTES);
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        context.cancellation.check().ok()?;
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(_) => return None,
        }
    }
    Some(hex::encode(hasher.finalize()))
}

/// The parameters with their regexes compiled and hashes checked.
struct Query {
    parameters: Parameters,
    names: Vec<regex::Regex>,
    cmdlines: Vec<regex::Regex>,
    wanted_hashes: Vec<String>,
}

fn query(parameters: &Json) -> Result<Query, ModuleError> {
    let parameters: Parameters = parse_parameters(parameters)?;
    if parameters.names.is_empty()
        && parameters.cmdlines.is_empty()
        && parameters.exesha256.is_empty()
        && parameters.users.is_empty()
    {
        return Err(ModuleError::InvalidParameters(
            "give at least one of names, cmdlines, exesha256, users".into(),
        ));
    }
    let names = regexes(&parameters.names)?;
    let cmdlines = regexes(&parameters.cmdlines)?;
    let mut wanted_hashes = Vec::new();
    for value in &parameters.exesha256 {
        if value.len() != 64 || hex::decode(value).is_err() {
            return Err(ModuleError::InvalidParameters(format!(
                "exesha256 '{value}' is not 64 hexadecimal characters"
            )));
        }
        wanted_hashes.push(value.to_lowercase());
    }
    Ok(Query {
        parameters,
        names,
        cmdlines,
        wanted_hashes,
    })
}

impl Module for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    fn check(&self, parameters: &Json) -> Result<(), ModuleError> {
        query(parameters).map(drop)
    }

    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError> {
        let started = Instant::now();
        let Query {
            parameters,
            names,
            cmdlines,
            wanted_hashes,
        } = query(parameters)?;
        let root = &context.root;
        let users = procfs::users(root);
        let pids = procfs::pids(root);
        let mut matched: Vec<(ProcessInfo, Option<String>)> = Vec::new();
        for pid in &pids {
            context.cancellation.check()?;
            let Some(info) = procfs::process(root, *pid, &users) else {
                continue;
            };
            if !names.is_empty() && !names.iter().any(|regex| regex.is_match(&info.name)) {
                continue;
            }
            if !cmdlines.is_empty() && !cmdlines.iter().any(|regex| regex.is_match(&info.cmdline)) {
                continue;
            }
            if !parameters.users.is_empty()
                && !parameters.users.iter().any(|user| {
                    info.user.as_deref() == Some(user.as_str())
                        || user.parse::<u32>().ok() == Some(info.uid)
                })
            {
                continue;
            }
            let digest = executable_sha256(root, *pid, context);
            if !wanted_hashes.is_empty()
                && !digest
                    .as_ref()
                    .is_some_and(|digest| wanted_hashes.contains(digest))
            {
                continue;
            }
            matched.push((info, digest));
            if matched.len() >= MAX_REPORTED {
                break;
            }
        }
        let mut errors = Vec::new();
        let mut sockets_by_pid: HashMap<u32, Vec<Json>> = HashMap::new();
        if !matched.is_empty() {
            let owners = procfs::socket_owners(root);
            for socket in procfs::sockets(root, &mut errors) {
                let Some(pid) = owners.get(&socket.inode) else {
                    continue;
                };
                if !(socket.is_listening() || socket.is_connected()) {
                    continue;
                }
                let mut entry = json!({
                    "protocol": socket.protocol.as_str(),
                    "localaddr": socket.local.ip().to_string(),
                    "localport": socket.local.port(),
                    "state": socket.state_name(),
                });
                if socket.is_connected() {
                    entry["remoteaddr"] = json!(socket.remote.ip().to_string());
                    entry["remoteport"] = json!(socket.remote.port());
                }
                sockets_by_pid.entry(*pid).or_default().push(entry);
            }
        }
        let processes: Vec<Json> = matched
            .into_iter()
            .map(|(info, digest)| {
                let mut entry = serde_json::to_value(&info).unwrap_or_default();
                if let Some(digest) = digest {
                    entry["exesha256"] = json!(digest);
                }
                entry["sockets"] = json!(sockets_by_pid.remove(&info.pid).unwrap_or_default());
                entry
            })
            .collect();
        let total = processes.len();
        Ok(ModuleResult {
            foundanything: total > 0,
            success: true,
            elements: json!({"processes": processes}),
            statistics: json!({"processcount": pids.len(), "totalhits": total, "exectime": go_duration(started.elapsed())}),
            errors,
        })
    }

    fn print(&self, result: &ModuleResult, found_only: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let processes = result.elements["processes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for process in &processes {
            let mut line = format!(
                "found process pid={} name={} user={} exe={} cmdline='{}'",
                process["pid"],
                process["name"].as_str().unwrap_or(""),
                process["user"]
                    .as_str()
                    .map_or_else(|| process["uid"].to_string(), str::to_owned),
                process["exe"].as_str().unwrap_or("?"),
                process["cmdline"].as_str().unwrap_or("")
            );
            for socket in process["sockets"].as_array().into_iter().flatten() {
                line.push_str(&format!(
                    " [{} {}:{}",
                    socket["protocol"].as_str().unwrap_or(""),
                    socket["localaddr"].as_str().unwrap_or(""),
                    socket["localport"]
                ));
                if let Some(remote) = socket["remoteaddr"].as_str() {
                    line.push_str(&format!(" -> {remote}:{}", socket["remoteport"]));
                }
                line.push_str(&format!(" {}]", socket["state"].as_str().unwrap_or("")));
            }
            lines.push(line);
        }
        if !found_only {
            if processes.is_empty() {
                lines.push("no matching process".into());
            }
            lines.push(format!(
                "Statistics: {} processes examined, {} matched, ran in {}.",
                result.statistics["processcount"],
                result.statistics["totalhits"],
                result.statistics["exectime"].as_str().unwrap_or("")
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::modules::testing::{context, plant};

    /// pid 1 is init (root); pid 4242 is "nc" run by mallory, connected to
    /// 203.0.113.9:4444, its executable a file in the tree.
    fn host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        plant(
            root,
            "/etc/passwd",
            b"root:x:0:0::/root:/bin/sh\nmallory:x:1000:1000::/home/m:/bin/sh\n",
        );
        plant(
            root,
            "/proc/1/status",
            b"Name:\tinit\nPPid:\t0\nUid:\t0\t0\t0\t0\n",
        );
        plant(root, "/proc/1/cmdline", b"/sbin/init\0");
        plant(
            root,
            "/proc/4242/status",
            b"Name:\tnc\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\n",
        );
        plant(root, "/proc/4242/cmdline", b"nc\x00203.0.113.9\x004444\x00");
        plant(root, "/bin/nc", b"not really netcat");
        symlink(root.join("bin/nc"), root.join("proc/4242/exe")).unwrap();
        fs::create_dir_all(root.join("proc/4242/fd")).unwrap();
        symlink("socket:[2002]", root.join("proc/4242/fd/3")).unwrap();
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        plant(root, "/proc/net/tcp", format!("{header}   1: 0500000A:C350 097100CB:115C 01 00000000:00000000 00:00000000 00000000  1000        0 2002 1 0 20 4 30 10 -1\n").as_bytes());
        dir
    }

    #[test]
    fn finds_processes_by_each_filter_with_their_sockets() {
        let dir = host();
        let digest = hex::encode(sha2::Sha256::digest(b"not really netcat"));
        for parameters in [
            json!({"names": ["^nc$"]}),
            json!({"cmdlines": ["4444"]}),
            json!({"users": ["mallory"]}),
            json!({"users": ["1000"]}),
            json!({"exesha256": [digest.to_uppercase()]}),
            json!({"names": ["^nc$"], "users": ["mallory"]}),
        ] {
            let result = Process.run(&parameters, &context(dir.path())).unwrap();
            let processes = result.elements["processes"].as_array().unwrap();
            assert_eq!(processes.len(), 1, "{parameters}");
            let process = &processes[0];
            assert_eq!(process["pid"], 4242);
            assert_eq!(process["cmdline"], "nc 203.0.113.9 4444");
            assert_eq!(process["exesha256"], digest);
            assert_eq!(process["sockets"][0]["remoteport"], 4444);
        }
        let result = Process
            .run(
                &json!({"names": ["^nc$"], "users": ["root"]}),
                &context(dir.path()),
            )
            .unwrap();
        assert!(!result.foundanything, "every filter must hold");
        let result = Process
            .run(&json!({"names": ["^init$"]}), &context(dir.path()))
            .unwrap();
        let lines = Process.print(&result, true);
        assert_eq!(
            lines,
            ["found process pid=1 name=init user=root exe=? cmdline='/sbin/init'"]
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        let dir = host();
        for (parameters, fragment) in [
            (json!({}), "at least one"),
            (json!({"names": ["("]}), "invalid regex"),
            (json!({"exesha256": ["abc"]}), "64 hexadecimal"),
        ] {
            let error = Process
                .run(&parameters, &context(dir.path()))
                .unwrap_err()
                .to_string();
            assert!(error.contains(fragment), "{error}");
        }
    }
}
