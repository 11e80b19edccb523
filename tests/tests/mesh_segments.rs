//! Segments joined only through a relay, with real network namespaces:
//! segment A (the console and 5 agents) and segment B (5 agents) have no
//! route to each other; a relay has a leg in each. The action reaches all
//! 10 agents and all 10 results come home through the relay.
//!
//! Needs root and `ip netns` (CI runs as root). Where that is impossible
//! the test says why in one line and passes without running.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::process::Command;
use std::time::Duration;

use mig_tests::{
    Investigator, agents_by_tag, host_tree, run_console_in, seed_example_with, start_agent_in,
    start_relay_in,
};

fn ip(arguments: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(arguments)
        .output()
        .map_err(|error| format!("ip: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Three namespaces and two veth links, removed when dropped.
struct Segments {
    relay: String,
    a: String,
    b: String,
}

impl Segments {
    /// `tag` keeps the namespaces of tests running at once apart.
    fn create(tag: char) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let segments = Self {
            relay: format!("mig-r{tag}{id}"),
            a: format!("mig-a{tag}{id}"),
            b: format!("mig-b{tag}{id}"),
        };
        for namespace in [&segments.relay, &segments.a, &segments.b] {
            ip(&["netns", "add", namespace])?;
        }
        let (relay, a, b) = (
            segments.relay.as_str(),
            segments.a.as_str(),
            segments.b.as_str(),
        );
        ip(&[
            "link", "add", "va0", "netns", relay, "type", "veth", "peer", "name", "va1", "netns", a,
        ])?;
        ip(&[
            "link", "add", "vb0", "netns", relay, "type", "veth", "peer", "name", "vb1", "netns", b,
        ])?;
        for (namespace, device, address) in [
            (relay, "va0", "10.77.1.1/24"),
            (a, "va1", "10.77.1.2/24"),
            (relay, "vb0", "10.77.2.1/24"),
            (b, "vb1", "10.77.2.2/24"),
        ] {
            ip(&["-n", namespace, "addr", "add", address, "dev", device])?;
            ip(&["-n", namespace, "link", "set", device, "up"])?;
        }
        for namespace in [relay, a, b] {
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
        }
        // The relay is not a router: only the mesh crosses it.
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                relay,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
            ])
            .status();
        Ok(segments)
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for namespace in [&self.relay, &self.a, &self.b] {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}

#[test]
fn an_action_crosses_segments_through_the_relay_and_every_result_comes_home() {
    let segments = match Segments::create('s') {
        Ok(segments) => segments,
        Err(reason) => {
            eprintln!("segment test not run: network namespaces unavailable ({reason})");
            return;
        }
    };
    // Prove the segments cannot reach each other.
    let route = ip(&["-n", &segments.a, "route", "get", "10.77.2.2"]);
    assert!(
        route.is_err(),
        "segment A has a route to segment B: {route:?}"
    );
    let route = ip(&["-n", &segments.b, "route", "get", "10.77.1.2"]);
    assert!(
        route.is_err(),
        "segment B has a route to segment A: {route:?}"
    );

    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, printed) = start_relay_in(
        Some(&segments.relay),
        &dir.join("relay"),
        &["/ip4/10.77.1.1/tcp/4001", "/ip4/10.77.2.1/tcp/4001"],
        &investigator.public,
        &[],
    );
    let relay_id = printed.rsplit("/p2p/").next().unwrap().to_owned();
    let relay_a = format!("/ip4/10.77.1.1/tcp/4001/p2p/{relay_id}");
    let relay_b = format!("/ip4/10.77.2.1/tcp/4001/p2p/{relay_id}");

    let planted = b"a backdoor in segment B".as_slice();
    let mut agents = Vec::new();
    for n in 0..10 {
        let (namespace, listen, bootstrap) = if n < 5 {
            (&segments.a, "/ip4/10.77.1.2/tcp/0", &relay_a)
        } else {
            (&segments.b, "/ip4/10.77.2.2/tcp/0", &relay_b)
        };
        let root = dir.join(format!("root{n}"));
        host_tree(&root, (n == 7).then_some(planted));
        let tag = format!("n={n}");
        agents.push(start_agent_in(
            Some(namespace),
            &dir.join(format!("agent{n}")),
            listen,
            bootstrap,
            &investigator.public,
            &root,
            &["--tag", &tag],
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(&action, seed_example_with(&[planted], None)).unwrap();
    let output = run_console_in(
        Some(&segments.a),
        &action,
        &investigator.key,
        &relay_a,
        &dir.join("console"),
        &["--listen", "/ip4/10.77.1.2/tcp/0"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let addresses = outcome["action"]["reply_to"]["addresses"]
        .as_array()
        .unwrap();
    assert!(
        addresses.iter().any(|address| address
            .as_str()
            .unwrap()
            .contains(&format!("{relay_id}/p2p-circuit/p2p/"))),
        "the console's reply_to carries its relay circuit address: {addresses:?}"
    );
    assert_eq!(outcome["summary"]["acked"], 10, "{}", outcome["summary"]);
    assert_eq!(outcome["summary"]["answered"], 10, "{}", outcome["summary"]);
    let agents_seen = agents_by_tag(&outcome);
    for n in 0..10 {
        let found = agents_seen[&n.to_string()]["result"]["operations"][0]["foundanything"]
            .as_bool()
            .unwrap();
        assert_eq!(found, n == 7, "agent {n}");
    }
    drop(agents);
}

/// Segment B is cut off when the action goes out and reconnected before it
/// expires: B's agents run it too and their results come home.
#[test]
fn a_healed_partition_catches_up() {
    let segments = match Segments::create('p') {
        Ok(segments) => segments,
        Err(reason) => {
            eprintln!("partition test not run: network namespaces unavailable ({reason})");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, printed) = start_relay_in(
        Some(&segments.relay),
        &dir.join("relay"),
        &["/ip4/10.77.1.1/tcp/4001", "/ip4/10.77.2.1/tcp/4001"],
        &investigator.public,
        &[],
    );
    let relay_id = printed.rsplit("/p2p/").next().unwrap().to_owned();
    let relay_a = format!("/ip4/10.77.1.1/tcp/4001/p2p/{relay_id}");
    let relay_b = format!("/ip4/10.77.2.1/tcp/4001/p2p/{relay_id}");
    let mut agents = Vec::new();
    for n in 0..4 {
        let (namespace, listen, bootstrap) = if n < 2 {
            (&segments.a, "/ip4/10.77.1.2/tcp/0", &relay_a)
        } else {
            (&segments.b, "/ip4/10.77.2.2/tcp/0", &relay_b)
        };
        let root = dir.join(format!("root{n}"));
        host_tree(&root, None);
        let tag = format!("n={n}");
        agents.push(start_agent_in(
            Some(namespace),
            &dir.join(format!("agent{n}")),
            listen,
            bootstrap,
            &investigator.public,
            &root,
            &["--tag", &tag],
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    // Cut segment B off.
    ip(&["-n", &segments.relay, "link", "set", "vb0", "down"]).unwrap();
    let action = dir.join("action.json");
    std::fs::write(&action, seed_example_with(&[], None)).unwrap();
    let mut console = mig_tests::command_in(Some(&segments.a), "mig");
    console
        .arg("run")
        .arg(&action)
        .arg("--key")
        .arg(&investigator.key)
        .args([
            "--bootstrap",
            &relay_a,
            "--listen",
            "/ip4/10.77.1.2/tcp/0",
            "--format",
            "json",
            "--timeout",
            "90s",
            "--collect-for",
            "25s",
        ])
        .arg("--data-dir")
        .arg(dir.join("console"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let console = console.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    // Heal it well before the action expires.
    ip(&["-n", &segments.relay, "link", "set", "vb0", "up"]).unwrap();
    let output = console.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let seen = agents_by_tag(&outcome);
    for n in 0..4 {
        assert!(
            seen.get(&n.to_string())
                .is_some_and(|agent| agent["result"].is_object()),
            "agent {n}: {outcome}"
        );
    }
    drop(agents);
}
