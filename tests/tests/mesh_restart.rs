//! An agent killed (`kill -9`) in the middle of an action finishes it
//! after it restarts, and the result reaches the console, which was
//! waiting all along.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::time::{Duration, Instant};

use mig_tests::{Investigator, LOOPBACK, node_status, spawn_console, start_agent, start_relay};

#[test]
fn an_agent_killed_mid_action_finishes_it_after_restarting() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, relay) = start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    // A 20 GiB sparse file: hashing it takes long enough to be interrupted.
    let big = root.join("data/big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    let agent_dir = dir.join("agent");
    let mut agent = start_agent(
        &agent_dir,
        LOOPBACK,
        &relay,
        &investigator.public,
        &root,
        &[],
    );
    std::thread::sleep(Duration::from_secs(3));

    let small = b"what the file holds after the restart";
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(small));
    let action = dir.join("action.json");
    std::fs::write(
        &action,
        serde_json::json!({"name": "restart", "target": "true", "syntaxversion": 2,
            "operations": [{"module": "file", "parameters": {"searches": {"s1": {"paths": ["/data"], "sha256": [digest]}}}}]})
        .to_string(),
    )
    .unwrap();
    let console = spawn_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &["--timeout", "120s"],
    );

    // Wait until the agent runs it, then kill it hard.
    let deadline = Instant::now() + Duration::from_secs(60);
    while node_status(&agent_dir).is_none_or(|status| status["actions_run"] != 1) {
        assert!(
            Instant::now() < deadline,
            "the agent never started the action"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    std::fs::write(&big, small).unwrap();

    let _restarted = start_agent(
        &agent_dir,
        LOOPBACK,
        &relay,
        &investigator.public,
        &root,
        &[],
    );
    let output = console.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["summary"]["answered"], 1, "{outcome}");
    let result = &outcome["agents"][0]["result"];
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(
        result["operations"][0]["elements"]["s1"][0]["file"], "/data/big",
        "{result}"
    );
}

/// The reverse path breaks (the relay that delivered the action dies while
/// the agent works): the agent dials the console directly, at an address
/// from the signed `reply_to`, and the result still comes home.
#[test]
fn a_broken_path_falls_back_to_dialling_the_console() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (relay_process, relay) =
        start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    // Some seconds of reading: time to cut the path meanwhile.
    std::fs::File::create(root.join("data/big"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let agent_dir = dir.join("agent");
    let _agent = start_agent(
        &agent_dir,
        LOOPBACK,
        &relay,
        &investigator.public,
        &root,
        &[],
    );
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(
        &action,
        serde_json::json!({"name": "fallback", "target": "true", "syntaxversion": 2,
            // The size check hits at once; the hash check makes the agent
            // read all 1 GiB first.
            "operations": [{"module": "file", "parameters": {"searches": {"s1": {"paths": ["/data"], "sizes": [">100m"],
                "sha256": ["0000000000000000000000000000000000000000000000000000000000000000"]}}}}]})
        .to_string(),
    )
    .unwrap();
    let console = spawn_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &["--timeout", "60s", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while node_status(&agent_dir).is_none_or(|status| status["actions_run"] != 1) {
        assert!(
            Instant::now() < deadline,
            "the agent never started the action"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(relay_process);
    let cut = Instant::now();
    let output = console.wait_with_output().unwrap();
    assert!(
        cut.elapsed() > Duration::from_millis(500),
        "the result came home before the path was cut"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["summary"]["answered"], 1, "{outcome}");
    assert_eq!(
        outcome["agents"][0]["result"]["operations"][0]["elements"]["s1"][0]["file"],
        "/data/big"
    );
}

/// An agent that comes online after an action was published, while it is
/// still valid, fetches it from its peers, runs it, and its result reaches
/// the console.
#[test]
fn a_late_joiner_catches_up_and_answers() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, relay) = start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let mut agents = Vec::new();
    for name in ["early", "late"] {
        mig_tests::host_tree(&dir.join(format!("root-{name}")), None);
    }
    agents.push(start_agent(
        &dir.join("agent-early"),
        LOOPBACK,
        &relay,
        &investigator.public,
        &dir.join("root-early"),
        &["--tag", "n=early"],
    ));
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(&action, mig_tests::seed_example_with(&[], None)).unwrap();
    let console = spawn_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &["--collect-for", "10s", "--timeout", "60s"],
    );
    // Published and answered by the early agent; only now does the late one start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_status(&dir.join("agent-early")).is_none_or(|status| status["actions_run"] != 1) {
        assert!(
            Instant::now() < deadline,
            "the early agent never ran the action"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    agents.push(start_agent(
        &dir.join("agent-late"),
        LOOPBACK,
        &relay,
        &investigator.public,
        &dir.join("root-late"),
        &["--tag", "n=late"],
    ));
    let output = console.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let seen = mig_tests::agents_by_tag(&outcome);
    assert!(seen["early"]["result"].is_object(), "{outcome}");
    assert!(
        seen["late"]["result"].is_object(),
        "the late agent caught up: {outcome}"
    );
    let late = node_status(&dir.join("agent-late")).unwrap();
    assert_eq!(late["actions_caught_up"], 1, "{late}");
}

/// `mig cancel` stops an action where it still runs: the agent reports
/// `cancelled` to the console that launched it.
#[test]
fn a_cancel_stops_a_running_action() {
    use std::io::Read;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, relay) = start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::File::create(root.join("data/big"))
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let _agent = start_agent(
        &dir.join("agent"),
        LOOPBACK,
        &relay,
        &investigator.public,
        &root,
        &[],
    );
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(
        &action,
        serde_json::json!({"name": "long sweep", "target": "true", "syntaxversion": 2,
            "operations": [{"module": "file", "parameters": {"searches": {"s1": {"paths": ["/data"],
                "sha256": ["0000000000000000000000000000000000000000000000000000000000000000"]}}}}]})
        .to_string(),
    )
    .unwrap();
    let mut console = spawn_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &["--timeout", "60s"],
    );
    let action_id = mig_tests::published_id(&mut console);
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_status(&dir.join("agent")).is_none_or(|status| status["actions_run"] != 1) {
        assert!(
            Instant::now() < deadline,
            "the agent never started the action"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancel = std::process::Command::new(mig_tests::binary("mig"))
        .args(["cancel", &action_id, "--key"])
        .arg(&investigator.key)
        .args(["--bootstrap", &relay, "--data-dir"])
        .arg(dir.join("canceller"))
        .output()
        .unwrap();
    assert!(
        cancel.status.success(),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );

    let mut stdout = String::new();
    console
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    console.wait().unwrap();
    let outcome: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let result = &outcome["agents"][0]["result"];
    assert_eq!(result["status"], "cancelled", "{result}");
    let status = node_status(&dir.join("agent")).unwrap();
    assert_eq!(status["cancels_received"], 1, "{status}");
}

/// The console is killed after the acks arrived; after a restart,
/// `mig results ID --follow` receives every result (they waited in the
/// outboxes), each agent once.
#[test]
fn a_restarted_console_gets_every_result() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, relay) = start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let mut agents = Vec::new();
    for name in ["a", "b"] {
        let root = dir.join(format!("root-{name}"));
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::File::create(root.join("data/big"))
            .unwrap()
            .set_len(2 << 30)
            .unwrap();
        agents.push(start_agent(
            &dir.join(format!("agent-{name}")),
            LOOPBACK,
            &relay,
            &investigator.public,
            &root,
            &["--tag", &format!("n={name}")],
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(
        &action,
        serde_json::json!({"name": "sweep", "target": "true", "syntaxversion": 2,
            "operations": [{"module": "file", "parameters": {"searches": {"s1": {"paths": ["/data"], "sizes": [">1g"],
                "sha256": ["0000000000000000000000000000000000000000000000000000000000000000"]}}}}]})
        .to_string(),
    )
    .unwrap();
    let console_dir = dir.join("console");
    let mut console = spawn_console(
        &action,
        &investigator.key,
        &relay,
        &console_dir,
        &["--timeout", "60s"],
    );
    let action_id = mig_tests::published_id(&mut console);
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in ["a", "b"] {
        while node_status(&dir.join(format!("agent-{name}")))
            .is_none_or(|status| status["actions_run"] != 1)
        {
            assert!(Instant::now() < deadline, "agent {name} never started");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Each ack waits in its agent's outbox a moment (`ACK_HOLD`), in case
    // the result overtakes it, then travels home. (Polling the outboxes
    // for it missed the moment an agent's ack was out on a loaded machine.)
    std::thread::sleep(mig_node::mesh::ACK_HOLD + Duration::from_secs(1));
    console.kill().unwrap();
    console.wait().unwrap();

    let results = |follow: bool| {
        let mut command = std::process::Command::new(mig_tests::binary("mig"));
        command
            .args([
                "results",
                &action_id,
                "--format",
                "json",
                "--timeout",
                "60s",
                "--data-dir",
            ])
            .arg(&console_dir);
        if follow {
            command.args(["--follow", "--bootstrap", &relay]);
        }
        let output = command.output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)))
    };
    let before = results(false);
    assert_eq!(
        before["summary"]["acked"], 2,
        "the history kept the acks: {before}"
    );
    let after = results(true);
    assert_eq!(after["summary"]["answered"], 2, "{after}");
    assert_eq!(
        after["agents"].as_array().unwrap().len(),
        2,
        "each agent once: {after}"
    );
    for agent in after["agents"].as_array().unwrap() {
        assert_eq!(
            agent["result"]["operations"][0]["elements"]["s1"][0]["file"], "/data/big",
            "{agent}"
        );
    }
}

/// The relay restarts (same identity, same address) while agents hold no
/// other way in for the console: the mesh reforms by itself and the next
/// action reaches every agent.
#[test]
fn after_a_relay_restart_the_next_action_reaches_everyone() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (relay_process, relay) =
        start_relay(&dir.join("relay"), &listen, &investigator.public, &[]);
    let mut agents = Vec::new();
    for name in ["a", "b"] {
        let root = dir.join(format!("root-{name}"));
        mig_tests::host_tree(&root, None);
        agents.push(start_agent(
            &dir.join(format!("agent-{name}")),
            LOOPBACK,
            &relay,
            &investigator.public,
            &root,
            &["--tag", &format!("n={name}")],
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(&action, mig_tests::seed_example_with(&[], None)).unwrap();
    let launch = || {
        let output = mig_tests::run_console(
            &action,
            &investigator.key,
            &relay,
            &dir.join("console"),
            &[],
        );
        let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        outcome["summary"]["answered"].as_u64().unwrap_or(0)
    };
    assert_eq!(launch(), 2);
    drop(relay_process);
    std::thread::sleep(Duration::from_secs(1));
    let (_relay, restarted) = start_relay(&dir.join("relay"), &listen, &investigator.public, &[]);
    assert_eq!(restarted, relay, "same identity, same address");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(launch(), 2, "the mesh reformed around the restarted relay");
}
