//! The mesh with real processes on loopback: one relay and 20 agents, each
//! with its own data directory and file root; the seed example's form of
//! action reaches all of them and exactly the planted agents report hits.
//! Then: an agent that is not targeted sends nothing, and an agent whose
//! ACL refuses the module says `rejected` instead of staying silent.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::time::Duration;

use mig_tests::{
    Investigator, LOOPBACK, agents_by_tag, host_tree, run_console, seed_example_with, start_agent,
    start_relay,
};

#[test]
fn twenty_agents_answer_and_exactly_the_planted_ones_find() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, relay) = start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let planted = [3usize, 7, 12];
    let contents: Vec<Vec<u8>> = planted
        .iter()
        .map(|n| format!("backdoor build {n}").into_bytes())
        .collect();
    let mut agents = Vec::new();
    for n in 0..20 {
        let root = dir.join(format!("root{n}"));
        let planted_here = planted
            .iter()
            .position(|p| *p == n)
            .map(|index| contents[index].as_slice());
        host_tree(&root, planted_here);
        let tag = format!("n={n}");
        agents.push(start_agent(
            &dir.join(format!("agent{n}")),
            LOOPBACK,
            &relay,
            &investigator.public,
            &root,
            &["--tag", &tag],
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    let planted_contents: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    std::fs::write(&action, seed_example_with(&planted_contents, None)).unwrap();

    let output = run_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let summary = &outcome["summary"];
    assert_eq!(summary["acked"], 20, "{summary}");
    assert_eq!(summary["answered"], 20, "{summary}");
    assert_eq!(summary["found"], 3, "{summary}");
    let agents = agents_by_tag(&outcome);
    for n in 0..20 {
        let agent = &agents[&n.to_string()];
        let found = agent["result"]["operations"][0]["foundanything"]
            .as_bool()
            .unwrap();
        assert_eq!(found, planted.contains(&n), "agent {n}: {agent}");
        if found {
            let hits: Vec<&str> = agent["result"]["operations"][0]["elements"]["backdoors"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|entry| entry["file"].as_str().filter(|file| !file.is_empty()))
                .collect();
            assert_eq!(hits, ["/usr/bin/kworkerd"]);
        }
    }
    // The relay peers directly with every agent and sent each the action
    // itself; each agent peers directly with the relay.
    let relay_status = mig_tests::node_status(&dir.join("relay")).unwrap();
    assert_eq!(relay_status["direct_peers"], 20, "{relay_status}");
    assert!(
        relay_status["gossip_sent"].as_u64().unwrap_or(0) >= 20,
        "{relay_status}"
    );
    let agent_status = mig_tests::node_status(&dir.join("agent0")).unwrap();
    assert_eq!(agent_status["direct_peers"], 1, "{agent_status}");
}

#[test]
fn untargeted_agents_stay_quiet_and_refusing_agents_say_so() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_relay, relay) = start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    // Agent "strict" requires two signatures for the file module.
    let fingerprint = mig_keys::load_public_key(&investigator.public)
        .unwrap()
        .fingerprint();
    let acl = dir.join("acl.json");
    std::fs::write(
        &acl,
        format!(r#"{{"default": {{"minimumweight": 1, "investigators": {{"i": {{"fingerprint": "{fingerprint}", "weight": 1}}}}}},
                     "file": {{"minimumweight": 2, "investigators": {{"i": {{"fingerprint": "{fingerprint}", "weight": 1}}}}}}}}"#),
    )
    .unwrap();
    let mut agents = Vec::new();
    for (name, extra) in [
        ("targeted", vec![]),
        ("other", vec![]),
        ("strict", vec!["--acl", acl.to_str().unwrap()]),
    ] {
        let root = dir.join(format!("root-{name}"));
        host_tree(&root, None);
        let tag = format!("n={name}");
        let mut arguments = vec!["--tag", tag.as_str()];
        arguments.extend(extra.iter().copied());
        agents.push(start_agent(
            &dir.join(format!("agent-{name}")),
            LOOPBACK,
            &relay,
            &investigator.public,
            &root,
            &arguments,
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(
        &action,
        seed_example_with(&[], Some("tags.n IN ('targeted', 'strict')")),
    )
    .unwrap();
    let output = run_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(1), // an agent refused the action: a script notices
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let agents_seen = agents_by_tag(&outcome);
    assert!(agents_seen["targeted"]["result"].is_object(), "{outcome}");
    assert!(
        !agents_seen.contains_key("other"),
        "an untargeted agent sent something: {outcome}"
    );
    let refusal = agents_seen["strict"]["rejected"].as_str().unwrap();
    assert!(refusal.contains("have 1, need 2"), "{refusal}");
    assert_eq!(outcome["summary"]["rejected"], 1);

    let status = mig_tests::node_status(&dir.join("agent-other")).unwrap();
    assert_eq!(status["actions_accepted"], 1, "{status}");
    assert_eq!(status["actions_run"], 0, "{status}");
}

#[test]
fn with_a_pre_shared_key_only_members_connect() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let member_key = dir.join("swarm.key");
    std::fs::write(&member_key, format!("{}\n", "ab".repeat(32))).unwrap();
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, format!("{}\n", "cd".repeat(32))).unwrap();
    let psk = |path: &std::path::Path| vec!["--psk".to_owned(), path.display().to_string()];
    let member_psk = psk(&member_key);
    let member_args: Vec<&str> = member_psk.iter().map(String::as_str).collect();
    let (_relay, relay) = start_relay(
        &dir.join("relay"),
        LOOPBACK,
        &investigator.public,
        &member_args,
    );
    let mut agents = Vec::new();
    for (name, key) in [("member", &member_key), ("outsider", &other_key)] {
        let root = dir.join(format!("root-{name}"));
        host_tree(&root, None);
        let tag = format!("n={name}");
        let key_args = psk(key);
        let mut arguments = vec!["--tag", tag.as_str()];
        arguments.extend(key_args.iter().map(String::as_str));
        agents.push(start_agent(
            &dir.join(format!("agent-{name}")),
            LOOPBACK,
            &relay,
            &investigator.public,
            &root,
            &arguments,
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let action = dir.join("action.json");
    std::fs::write(&action, seed_example_with(&[], None)).unwrap();
    let output = run_console(
        &action,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &member_args,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let agents_seen = agents_by_tag(&outcome);
    assert!(agents_seen["member"]["result"].is_object(), "{outcome}");
    assert!(!agents_seen.contains_key("outsider"), "{outcome}");
    let status = mig_tests::node_status(&dir.join("agent-outsider")).unwrap();
    assert_eq!(status["connected_peers"], 0, "{status}");
}
