//! A LAN with no relay: with mDNS on, agents and a console in two network
//! namespaces joined by one link find each other, and the action reaches
//! both agents. Needs root and `ip netns`; where that is impossible the
//! test says why in one line and passes without running.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::process::Command;
use std::time::Duration;

use mig_tests::{Investigator, agents_by_tag, command_in, host_tree, seed_example_with};

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
    fn create() -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let lan = Self {
            namespaces: [format!("mig-l{id}"), format!("mig-m{id}")],
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

#[test]
fn with_mdns_a_lan_forms_a_mesh_without_a_relay() {
    let lan = match Lan::create() {
        Ok(lan) => lan,
        Err(reason) => {
            eprintln!("mDNS test not run: network namespaces unavailable ({reason})");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let mut agents = Vec::new();
    for (n, (namespace, listen)) in [
        (&lan.namespaces[0], "/ip4/10.88.0.1/tcp/0"),
        (&lan.namespaces[1], "/ip4/10.88.0.2/tcp/0"),
    ]
    .into_iter()
    .enumerate()
    {
        let root = dir.join(format!("root{n}"));
        host_tree(&root, None);
        let tag = format!("n={n}");
        let mut command = command_in(Some(namespace), "mig-node");
        command
            .args([
                "agent", "--mdns", "--listen", listen, "--tag", &tag, "--trust",
            ])
            .arg(&investigator.public)
            .arg("--data-dir")
            .arg(dir.join(format!("agent{n}")))
            .arg("--root")
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        agents.push(mig_tests::Running {
            child: command.spawn().unwrap(),
            name: format!("agent{n}"),
        });
    }
    std::thread::sleep(Duration::from_secs(3));
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
    assert!(
        agents_seen["0"]["result"].is_object() && agents_seen["1"]["result"].is_object(),
        "{outcome}"
    );
}
