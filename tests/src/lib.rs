//! Helpers for the workspace's integration tests: finding the built
//! binaries, running relays, agents and consoles as real processes (killed
//! when dropped), and building actions and file trees for them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Listen on loopback, on a port the system picks.
pub const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// A built binary of this workspace (`cargo test --workspace` builds them
/// all before any test runs).
pub fn binary(name: &str) -> PathBuf {
    let mut directory = std::env::current_exe().expect("the test knows where it is");
    directory.pop();
    if directory.ends_with("deps") {
        directory.pop();
    }
    let path = directory.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A child process that is killed when dropped.
pub struct Running {
    pub child: Child,
    pub name: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` and waits for its first line on standard output.
pub fn spawn_and_read_first_line(
    mut command: Command,
    name: &str,
    timeout: Duration,
) -> (Running, String) {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let running = Running {
        child,
        name: name.to_owned(),
    };
    let line = receiver
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("{name} printed nothing within {timeout:?}"));
    (running, line.trim().to_owned())
}

/// An investigator: a key pair on disk.
pub struct Investigator {
    pub key: PathBuf,
    pub public: PathBuf,
}

impl Investigator {
    pub fn new(directory: &Path, name: &str) -> Self {
        let key = mig_keys::SecretKey::generate(name).expect("random numbers");
        let path = directory.join(format!("{name}.key"));
        let public =
            mig_keys::write_key_files(&key, &path, None, mig_keys::KdfCost::default(), false)
                .expect("key files");
        Self { key: path, public }
    }
}

/// A command for one of our binaries, inside a network namespace if one
/// is given.
pub fn command_in(netns: Option<&str>, name: &str) -> Command {
    match netns {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace]).arg(binary(name));
            command
        }
        None => Command::new(binary(name)),
    }
}

/// Starts a relay; returns it and its dialable address.
pub fn start_relay(
    data_dir: &Path,
    listen: &str,
    trust: &Path,
    extra: &[&str],
) -> (Running, String) {
    start_relay_in(None, data_dir, &[listen], trust, extra)
}

/// Starts a relay (in a namespace) listening on each address.
pub fn start_relay_in(
    netns: Option<&str>,
    data_dir: &Path,
    listen: &[&str],
    trust: &Path,
    extra: &[&str],
) -> (Running, String) {
    let mut command = command_in(netns, "mig-node");
    command.arg("relay");
    for address in listen {
        command.args(["--listen", address]);
    }
    command
        .arg("--trust")
        .arg(trust)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    spawn_and_read_first_line(command, "relay", Duration::from_secs(30))
}

/// Starts an agent.
pub fn start_agent(
    data_dir: &Path,
    listen: &str,
    bootstrap: &str,
    trust: &Path,
    root: &Path,
    extra: &[&str],
) -> Running {
    start_agent_in(None, data_dir, listen, bootstrap, trust, root, extra)
}

/// Starts an agent in a namespace.
pub fn start_agent_in(
    netns: Option<&str>,
    data_dir: &Path,
    listen: &str,
    bootstrap: &str,
    trust: &Path,
    root: &Path,
    extra: &[&str],
) -> Running {
    let mut command = command_in(netns, "mig-node");
    command
        .args([
            "agent",
            "--listen",
            listen,
            "--bootstrap",
            bootstrap,
            "--trust",
        ])
        .arg(trust)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--root")
        .arg(root)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let child = command.spawn().expect("the agent starts");
    Running {
        child,
        name: data_dir.display().to_string(),
    }
}

/// Runs `mig run` with JSON output and returns the process output.
pub fn run_console(
    action: &Path,
    key: &Path,
    bootstrap: &str,
    data_dir: &Path,
    extra: &[&str],
) -> Output {
    run_console_in(None, action, key, bootstrap, data_dir, extra)
}

/// Runs `mig run` (in a namespace) with JSON output.
pub fn run_console_in(
    netns: Option<&str>,
    action: &Path,
    key: &Path,
    bootstrap: &str,
    data_dir: &Path,
    extra: &[&str],
) -> Output {
    command_in(netns, "mig")
        .arg("run")
        .arg(action)
        .arg("--key")
        .arg(key)
        .args([
            "--bootstrap",
            bootstrap,
            "--format",
            "json",
            "--timeout",
            "60s",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .output()
        .expect("mig runs")
}

/// Starts `mig run` (JSON output) without waiting for it.
pub fn spawn_console(
    action: &Path,
    key: &Path,
    bootstrap: &str,
    data_dir: &Path,
    extra: &[&str],
) -> Child {
    Command::new(binary("mig"))
        .arg("run")
        .arg(action)
        .arg("--key")
        .arg(key)
        .args(["--bootstrap", bootstrap, "--format", "json"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mig runs")
}

/// The id `mig run` says it published (read from its standard error).
pub fn published_id(console: &mut Child) -> String {
    let stderr = console.stderr.take().expect("stderr is piped");
    let (tell, published) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("action ")
                && rest.contains("published")
                && let Some(id) = rest.split_whitespace().next()
            {
                let _ = tell.send(id.to_owned());
            }
        }
    });
    published
        .recv_timeout(Duration::from_secs(30))
        .expect("mig run says what it published")
}

/// A running node's status (`mig-node status`), if it answers.
pub fn node_status(data_dir: &Path) -> Option<serde_json::Value> {
    let output = Command::new(binary("mig-node"))
        .args(["status", "--data-dir"])
        .arg(data_dir)
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// Agents `host-NAME` for each of `names`, each looking at a small tree
/// in `dir/root-NAME` (with the real /proc linked in, for netstat) and
/// keeping its data in `dir/agent-NAME`; the one named `planted` holds a
/// planted `/usr/bin/kworkerd`. Returns once all are in the gossip mesh.
pub fn start_hosts(
    dir: &Path,
    relay: &str,
    trust: &Path,
    names: &[&str],
    planted: &str,
    extra: &[&str],
) -> Vec<Running> {
    let mut agents = Vec::new();
    let mut data_dirs = Vec::new();
    for name in names {
        let root = dir.join(format!("root-{name}"));
        host_tree(&root, (*name == planted).then_some(&b"planted"[..]));
        std::os::unix::fs::symlink("/proc", root.join("proc")).expect("tree");
        let data_dir = dir.join(format!("agent-{name}"));
        let agent_name = format!("host-{name}");
        let mut arguments = vec!["--name", agent_name.as_str()];
        arguments.extend_from_slice(extra);
        agents.push(start_agent(
            &data_dir, LOOPBACK, relay, trust, &root, &arguments,
        ));
        data_dirs.push(data_dir);
    }
    wait_for_mesh(&data_dirs);
    agents
}

/// Waits until every agent (by data directory) is in the gossip mesh.
pub fn wait_for_mesh(data_dirs: &[PathBuf]) {
    if let Err(alone) = mesh_formed_within(data_dirs, Duration::from_secs(60)) {
        panic!(
            "the mesh did not form: {} has no gossip peer",
            alone.display()
        );
    }
}

/// Waits until every agent (by data directory) has a gossip peer, at most
/// `within`; else returns the first data directory whose agent has none.
pub fn mesh_formed_within(data_dirs: &[PathBuf], within: Duration) -> Result<(), &Path> {
    let started = std::time::Instant::now();
    for data_dir in data_dirs {
        while node_status(data_dir)
            .is_none_or(|status| mig_node::status::action_peers(&status) == 0)
        {
            if started.elapsed() >= within {
                return Err(data_dir);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The seed example with its last hashes replaced by the SHA-256 of each
/// planted content (real 2014 backdoors are not available to plant).
pub fn seed_example_with(planted: &[&[u8]], target: Option<&str>) -> String {
    let example = include_str!("../../docs/examples/linux-backdoor-2014.json");
    let mut action: serde_json::Value = serde_json::from_str(example).expect("the example is JSON");
    let hashes = action["operations"][0]["parameters"]["searches"]["backdoors"]["sha256"]
        .as_array_mut()
        .expect("hash list");
    for (index, contents) in planted.iter().enumerate() {
        let position = hashes.len() - 1 - index;
        hashes[position] = serde_json::json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            contents
        )));
    }
    if let Some(target) = target {
        action["target"] = serde_json::json!(target);
    }
    action.to_string()
}

/// Writes a small host tree under `root`; `planted`, if any, goes to
/// /usr/bin/.
pub fn host_tree(root: &Path, planted: Option<&[u8]>) {
    std::fs::create_dir_all(root.join("usr/bin")).expect("tree");
    std::fs::create_dir_all(root.join("tmp")).expect("tree");
    std::fs::write(root.join("usr/bin/ls"), b"an innocent ls").expect("tree");
    std::fs::write(root.join("tmp/notes"), b"nothing to see").expect("tree");
    if let Some(contents) = planted {
        std::fs::write(root.join("usr/bin/kworkerd"), contents).expect("tree");
    }
}

/// The agents in a `mig run --format json` outcome, by their `n` tag.
pub fn agents_by_tag(
    outcome: &serde_json::Value,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    outcome["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|agent| {
            (
                agent["attributes"]["tags"]["n"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                agent.clone(),
            )
        })
        .collect()
}
