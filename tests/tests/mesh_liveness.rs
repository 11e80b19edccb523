//! A peer that stops answering without closing anything (a host that lost
//! power, a cut link; here a real agent process frozen with SIGSTOP, whose
//! kernel keeps the TCP connection up) has its connections closed by the
//! others within the configured peer timeout, and comes back into the
//! mesh by itself once it answers again.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mig_tests::{Investigator, LOOPBACK, node_status, start_hosts, start_relay, wait_for_mesh};

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Polls a node's status until `check` holds; the last status otherwise.
fn wait_for_status(
    data_dir: &Path,
    within: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> Result<(), Option<serde_json::Value>> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < within {
        last = node_status(data_dir);
        if last.as_ref().is_some_and(&check) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

#[test]
fn a_silent_peer_is_cut_off_and_rejoins_when_it_answers_again() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let timeout = ["--peer-timeout", "2s"];
    let relay_dir = dir.join("relay");
    let (_relay, relay) = start_relay(&relay_dir, LOOPBACK, &investigator.public, &timeout);
    let agents = start_hosts(dir, &relay, &investigator.public, &["a", "b"], "", &timeout);
    let frozen = &agents[1];
    let peers_before = node_status(&relay_dir).unwrap()["connected_peers"]
        .as_u64()
        .unwrap();

    signal(frozen.child.id(), "STOP");
    // Pinged every 2 s, 2 s to answer: closed within about 4 s.
    let cut_off = wait_for_status(&relay_dir, Duration::from_secs(30), |status| {
        status["connections_dead"].as_u64().unwrap_or(0) >= 1
            && status["connected_peers"].as_u64().unwrap_or(u64::MAX) < peers_before
    });
    signal(frozen.child.id(), "CONT");
    assert!(
        cut_off.is_ok(),
        "the relay still holds the frozen agent's connection: {cut_off:?}"
    );

    // Thawed, it dials its bootstrap again and is back in the mesh.
    wait_for_mesh(&[dir.join("agent-b")]);
    let rejoined = wait_for_status(&relay_dir, Duration::from_secs(30), |status| {
        status["connected_peers"].as_u64().unwrap_or(0) >= peers_before
    });
    assert!(
        rejoined.is_ok(),
        "the agent did not come back: {rejoined:?}"
    );
}
