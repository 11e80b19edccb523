//! A LAN with no relay: with mDNS on, agents and a console in two network
//! namespaces joined by one link find each other, and the action reaches
//! both agents; agents whose first dials failed link later. Needs root and
//! `ip netns`; where that is impossible the tests say why in one line and
//! pass without running.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mig_tests::{
    Investigator, agents_by_tag, command_in, host_tree, mesh_formed_within, node_status,
    seed_example_with,
};

fn ip(arguments: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(arguments)
        .output()
        .map_err(|error| format!("ip: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

struct Lan {
    namespaces: [String; 2],
}

impl Lan {
    /// Two namespaces joined by one link; `name` (a letter or two) keeps
    /// the LANs of tests running at once apart.
    fn create(name: &str) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let lan = Self {
            namespaces: [format!("mig-{name}a{id}"), format!("mig-{name}b{id}")],
        };
        let [one, two] = [lan.namespaces[0].as_str(), lan.namespaces[1].as_str()];
        ip(&["netns", "add", one])?;
        ip(&["netns", "add", two])?;
        ip(&[
            "link", "add", "lan0", "netns", one, "type", "veth", "peer", "name", "lan1", "netns",
            two,
        ])?;
        for (namespace, device, address) in
            [(one, "lan0", "10.88.0.1/24"), (two, "lan1", "10.88.0.2/24")]
        {
            ip(&["-n", namespace, "addr", "add", address, "dev", device])?;
            ip(&["-n", namespace, "link", "set", device, "up"])?;
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
            // As on any LAN, multicast leaves by the one interface.
            ip(&[
                "-n",
                namespace,
                "route",
                "add",
                "224.0.0.0/4",
                "dev",
                device,
            ])?;
        }
        Ok(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}

/// Creates a LAN named `name`, or says in one line why it cannot.
fn lan_or_skip(name: &str) -> Option<Lan> {
    match Lan::create(name) {
        Ok(lan) => Some(lan),
        Err(reason) => {
            eprintln!("mDNS test not run: network namespaces unavailable ({reason})");
            None
        }
    }
}

/// Starts an agent with mDNS in each namespace of `lan`, tagged `n=0` and
/// `n=1`, logging to `dir/agentN.log`.
fn start_agents(lan: &Lan, dir: &Path, investigator: &Investigator) -> Vec<mig_tests::Running> {
    let mut agents = Vec::new();
    for (n, namespace) in lan.namespaces.iter().enumerate() {
        let root = dir.join(format!("root{n}"));
        host_tree(&root, None);
        let tag = format!("n={n}");
        let listen = format!("/ip4/10.88.0.{}/tcp/0", n + 1);
        let mut command = command_in(Some(namespace), "mig-node");
        command
            .args([
                "agent", "--mdns", "--listen", &listen, "--tag", &tag, "--trust",
            ])
            .arg(&investigator.public)
            .arg("--data-dir")
            .arg(dir.join(format!("agent{n}")))
            .arg("--root")
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("agent{n}.log"))).unwrap());
        agents.push(mig_tests::Running {
            child: command.spawn().unwrap(),
            name: format!("agent{n}"),
        });
    }
    agents
}

fn agent_log(dir: &Path, n: usize) -> String {
    std::fs::read_to_string(dir.join(format!("agent{n}.log"))).unwrap_or_default()
}

/// Waits until both agents have a gossip peer (alone on the LAN, each
/// other), at most `within`; fails with their logs if they do not.
fn wait_until_linked(dir: &Path, within: Duration) {
    let data_dirs = [dir.join("agent0"), dir.join("agent1")];
    if let Err(alone) = mesh_formed_within(&data_dirs, within) {
        panic!(
            "{} found no peer on the LAN within {within:?}\nagent0: {}\nagent1: {}",
            alone.display(),
            agent_log(dir, 0),
            agent_log(dir, 1)
        );
    }
}

#[test]
fn with_mdns_a_lan_forms_a_mesh_without_a_relay() {
    let Some(lan) = lan_or_skip("l") else { return };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let agents = start_agents(&lan, dir, &investigator);
    // The two agents must find each other, as they did not when both
    // dialled at once from their listening ports (see
    // `mig_node::mesh::fresh_ports`). Then the console joins: it publishes
    // to the first agent it meets, and the other hears it from that one.
    wait_until_linked(dir, Duration::from_secs(30));
    let action = dir.join("action.json");
    std::fs::write(&action, seed_example_with(&[], None)).unwrap();
    let output = command_in(Some(&lan.namespaces[1]), "mig")
        .arg("run")
        .arg(&action)
        .arg("--key")
        .arg(&investigator.key)
        .args([
            "--mdns",
            "--listen",
            "/ip4/10.88.0.2/tcp/0",
            "--format",
            "json",
            "--timeout",
            "30s",
        ])
        .arg("--data-dir")
        .arg(dir.join("console"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let agents_seen = agents_by_tag(&outcome);
    let answered = |tag: &str| {
        agents_seen
            .get(tag)
            .is_some_and(|agent| agent["result"].is_object())
    };
    if !(answered("0") && answered("1")) {
        drop(agents);
        panic!(
            "not every agent answered: {outcome}\nconsole: {}\nagent0: {}\nagent1: {}",
            String::from_utf8_lossy(&output.stderr),
            agent_log(dir, 0),
            agent_log(dir, 1)
        );
    }
}

/// mDNS tells a node of a peer once (until the announcement expires,
/// minutes later): agents whose dials failed when they found each other
/// must try again by themselves.
#[test]
fn lan_agents_whose_first_dials_failed_link_later() {
    let Some(lan) = lan_or_skip("r") else { return };
    // No TCP leaves either namespace (mDNS, over UDP, still does).
    for namespace in &lan.namespaces {
        if let Err(reason) = ip(&["-n", namespace, "rule", "add", "ipproto", "tcp", "prohibit"]) {
            eprintln!("relink test not run: no TCP-only routing rule here ({reason})");
            return;
        }
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let _agents = start_agents(&lan, dir, &investigator);
    // Both have started, found each other and failed to dial.
    std::thread::sleep(Duration::from_secs(3));
    for n in 0..2 {
        let status = node_status(&dir.join(format!("agent{n}"))).expect("agent status");
        assert_eq!(
            mig_node::status::action_peers(&status),
            0,
            "agent{n}: {status}"
        );
    }
    for namespace in &lan.namespaces {
        ip(&["-n", namespace, "rule", "del", "ipproto", "tcp", "prohibit"]).unwrap();
    }
    wait_until_linked(dir, Duration::from_secs(20));
}
