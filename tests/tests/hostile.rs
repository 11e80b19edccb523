//! A rogue peer joins the mesh and floods it with actions that must not
//! run: garbage, a bad signature, an untrusted signer, a target changed
//! after signing, a target nested far too deep, a catastrophic regex, an
//! expired action, one valid far in the future, one with too long a window,
//! one over the size limit, one naming a module no agent has, one with
//! parameters of the wrong type. Nothing runs, nothing passes the first
//! honest hop (checked on agents two hops away), the rogue ends
//! graylisted, and a valid action sent right after still reaches every
//! agent; a valid action replayed runs nowhere a second time. Then forged reports and floods of reports nobody asked for, sent
//! straight to the console and to a relay: refused, counted, the sender
//! graylisted, the real results untouched.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::time::{Duration, SystemTime};

use mig_keys::SecretKey;
use mig_proto::{Action, SignedAction, Timestamp};
use mig_tests::{
    Investigator, LOOPBACK, Running, binary, node_status, run_console, seed_example_with,
    start_hosts, start_relay,
};

fn action(target: &str, valid_from: i64, expire_after: i64, nonce: &str) -> Action {
    let mut action = Action::from_json(&seed_example_with(&[], None)).unwrap();
    action.target = target.into();
    action.validfrom = Some(Timestamp::from_unix_seconds(valid_from).unwrap());
    action.expireafter = Some(Timestamp::from_unix_seconds(expire_after).unwrap());
    action.nonce = Some(nonce.into());
    action.reply_to = Some(mig_proto::ReplyTo {
        peer_id: "12D3KooWGq1ZZQwu2bC1p2qKoLEzy4WTTXYeTV1sdA6HYWmsUtEN".into(),
        ..Default::default()
    });
    action
}

fn signed_wire(action: &Action, key: &SecretKey) -> Vec<u8> {
    let mut signed = SignedAction::from_action(action).unwrap();
    signed.sign(key.signing_key()).unwrap();
    signed.to_wire()
}

#[test]
fn hostile_actions_go_nowhere_and_the_sender_is_graylisted() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let trusted_key =
        mig_keys::load_secret_key(&investigator.key, &mig_keys::GivenPassphrase(None)).unwrap();
    let stranger = SecretKey::generate("stranger").unwrap();
    let (_mesh, relay) = small_mesh(dir, &investigator);

    let now = Timestamp::from_system_time(SystemTime::now()).unix_seconds();
    let good = action("true", now - 60, now + 300, "good");
    let mut bad_signature = SignedAction::from_action(&good).unwrap();
    bad_signature.sign(trusted_key.signing_key()).unwrap();
    let mut bad_signature_wire = bad_signature.to_wire();
    let last = bad_signature_wire.len() - 1;
    bad_signature_wire[last] ^= 0x01;
    let mut retargeted = good.clone();
    retargeted.target = "name = 'victim'".into();
    let retargeted_wire = SignedAction::from_parts(
        retargeted.canonical_bytes().unwrap(),
        SignedAction::from_wire(&signed_wire(&good, &trusted_key))
            .unwrap()
            .signatures()
            .to_vec(),
    )
    .to_wire();
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    let mut unknown_module = action("true", now - 60, now + 300, "unknown-module");
    unknown_module.operations[0].module = "memory".into();
    let mut wrong_types = action("true", now - 60, now + 300, "wrong-types");
    wrong_types.operations[0].parameters = serde_json::json!({"searches": {"s1": {"paths": 42}}});
    let messages: Vec<Vec<u8>> = vec![
        b"\xde\xad\xbe\xef not an action".to_vec(),
        bad_signature_wire,
        signed_wire(&action("true", now - 60, now + 300, "stranger"), &stranger),
        retargeted_wire,
        signed_wire(&action(&deep, now - 60, now + 300, "deep"), &trusted_key),
        signed_wire(
            &action("name ~ '(a{1000}){1000}'", now - 60, now + 300, "regex"),
            &trusted_key,
        ),
        signed_wire(
            &action("true", now - 7200, now - 3600, "expired"),
            &trusted_key,
        ),
        signed_wire(
            &action("true", now + 86_400, now + 86_700, "future"),
            &trusted_key,
        ),
        signed_wire(
            &action("true", now - 60, now + 30 * 86_400, "too-long"),
            &trusted_key,
        ),
        vec![0xa2; mig_proto::signed::MAX_WIRE_BYTES + 1],
        signed_wire(&unknown_module, &trusted_key),
        signed_wire(&wrong_types, &trusted_key),
    ];
    // Each message from a peer of its own, so each is judged on its own
    // (a peer that keeps sending rejected messages is soon not heard at all).
    for (index, message) in messages.iter().enumerate() {
        rogue(
            dir,
            &relay,
            &format!("rogue{index}"),
            std::slice::from_ref(message),
            1,
        )
        .wait()
        .unwrap();
    }
    let relay_status = node_status(&dir.join("relay")).unwrap();
    assert_eq!(
        relay_status["actions_rejected"],
        serde_json::json!({
            "malformed": 1,
            "bad_signature": 2,
            "unknown_signer": 1,
            "invalid_target": 2,
            "too_large": 1,
            "unknown_module": 1,
            "invalid_parameters": 1,
        }),
        "forged and malformed ones are rejected at the first hop: {relay_status}"
    );
    assert_eq!(
        relay_status["actions_ignored"], 3,
        "out-of-window ones are ignored: {relay_status}"
    );
    assert_eq!(relay_status["actions_accepted"], 0, "{relay_status}");
    for name in ["a", "b"] {
        let status = node_status(&dir.join(format!("agent-{name}"))).unwrap();
        assert_eq!(status["actions_accepted"], 0, "{status}");
        assert_eq!(status["actions_run"], 0, "{status}");
        assert_eq!(
            status["actions_rejected"],
            serde_json::json!({}),
            "nothing reached agent {name}: {status}"
        );
    }

    // A valid action runs once; the same bytes again, from another peer,
    // run nowhere and go no further.
    let valid = signed_wire(
        &action("true", now - 60, now + 300, "replayed"),
        &trusted_key,
    );
    rogue(dir, &relay, "publisher", std::slice::from_ref(&valid), 2)
        .wait()
        .unwrap();
    rogue(dir, &relay, "replayer", std::slice::from_ref(&valid), 2)
        .wait()
        .unwrap();
    for name in ["a", "b"] {
        let status = node_status(&dir.join(format!("agent-{name}"))).unwrap();
        assert_eq!(status["actions_accepted"], 1, "{status}");
        assert_eq!(status["actions_run"], 1, "run once, not twice: {status}");
    }
    let relay_status = node_status(&dir.join("relay")).unwrap();
    assert_eq!(relay_status["actions_accepted"], 1, "{relay_status}");

    // A peer that keeps sending forgeries ends graylisted.
    let spammer_id = mig_node_identity(&dir.join("spammer"));
    let forgeries: Vec<Vec<u8>> = (0..4)
        .map(|index| format!("forgery {index}").into_bytes())
        .collect();
    let spammer = Running {
        child: rogue(dir, &relay, "spammer", &forgeries, 10),
        name: "spammer".into(),
    };
    std::thread::sleep(Duration::from_secs(4));
    let relay_status = node_status(&dir.join("relay")).unwrap();
    assert!(
        relay_status["graylisted_peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|peer| peer == &spammer_id),
        "the spammer is graylisted: {relay_status}"
    );
    drop(spammer);

    // A valid action right after still reaches every agent.
    let action_file = dir.join("valid.json");
    std::fs::write(&action_file, seed_example_with(&[], None)).unwrap();
    let output = run_console(
        &action_file,
        &investigator.key,
        &relay,
        &dir.join("console"),
        &[],
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["summary"]["answered"], 2, "{outcome}");
}

#[test]
fn forged_and_unsolicited_reports_are_refused_and_the_sender_graylisted() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let investigator = Investigator::new(dir, "investigator");
    let (_mesh, relay) = small_mesh(dir, &investigator);
    let victim = mig_node_identity(&dir.join("agent-a"));
    let forger = mig_node_identity(&dir.join("forger"));
    let flooder = mig_node_identity(&dir.join("flooder"));
    let console_dir = dir.join("console");
    let console_id = mig_node_identity(&console_dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let console_address = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{console_id}");

    // The console stays a while after the real results are home.
    let action_file = dir.join("action.json");
    std::fs::write(&action_file, seed_example_with(&[], None)).unwrap();
    let mut console = mig_tests::spawn_console(
        &action_file,
        &investigator.key,
        &relay,
        &console_dir,
        &[
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
            "--collect-for",
            "15s",
        ],
    );
    let action_id = mig_tests::published_id(&mut console);
    std::thread::sleep(Duration::from_secs(3));

    // Straight to the console, two batches of 16 reports about the action
    // claiming to come from agent a (signed by the forger): the first
    // batch is refused as forged and graylists the forger, the second is
    // refused unread.
    let forged = Rogue {
        name: "forger",
        console: &console_id,
        action: &action_id,
        victim: &victim,
        forged: 32,
        unsolicited: 0,
        misrouted: 0,
    };
    let answer = forged.deliver(dir, &console_address);
    assert_eq!(answer["refused_batches"], 2, "{answer}");
    assert_eq!(answer["stored_parcels"], 0, "{answer}");
    // Ten batches of 16 genuine reports for actions nobody sent: dropped
    // (and acknowledged) until the flooder has sent a hundred, then
    // refused unread.
    let flood = Rogue {
        name: "flooder",
        forged: 0,
        unsolicited: 160,
        ..forged
    };
    let answer = flood.deliver(dir, &console_address);
    assert_eq!(answer["stored_parcels"], 7 * 16, "{answer}");
    assert_eq!(answer["refused_batches"], 3, "{answer}");

    // Forgeries through the relay, addressed to the console: refused at
    // the first hop, which graylists the forger too.
    let answer = forged.deliver(dir, &relay);
    assert_eq!(answer["refused_batches"], 2, "{answer}");
    let relay_status = node_status(&dir.join("relay")).unwrap();
    assert_eq!(
        relay_status["reports_dropped"]["forged"], 16,
        "{relay_status}"
    );
    assert_eq!(
        relay_status["reports_dropped"]["graylisted_sender"], 16,
        "{relay_status}"
    );
    assert!(
        relay_status["graylisted_peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|peer| peer == &forger),
        "the relay graylisted the forger: {relay_status}"
    );
    // Genuine reports of the misrouter's own about the action, whose
    // routing fields name another console and addresses of the
    // misrouter's choosing: the relay sets them back to the action's
    // reply_to, and they reach this console, which drops them for coming
    // in the clear (the action is sealed), blaming no hop.
    let misrouter = Rogue {
        name: "misrouter",
        forged: 0,
        misrouted: 16,
        ..forged
    };
    let answer = misrouter.deliver(dir, &relay);
    assert_eq!(answer["stored_parcels"], 16, "{answer}");
    let relay_status = node_status(&dir.join("relay")).unwrap();
    assert_eq!(relay_status["reports_rerouted"], 16, "{relay_status}");
    // Refused or not, every delivery got its answer.
    assert_eq!(relay_status["deliveries_unanswered"], 0, "{relay_status}");
    assert_eq!(
        relay_status["answers_failed"],
        serde_json::json!({}),
        "{relay_status}"
    );

    let output = console.wait_with_output().unwrap();
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["summary"]["answered"], 2, "{outcome}");
    assert_eq!(
        outcome["agents"].as_array().unwrap().len(),
        2,
        "no agent was made up: {outcome}"
    );
    assert_eq!(
        outcome["reports_dropped"],
        serde_json::json!({"forged": 16, "unsolicited": 112, "graylisted_sender": 16 + 48,
                           "not_sealed": 16}),
        "{outcome}"
    );
    for rogue in [&forger, &flooder] {
        assert!(
            outcome["graylisted_peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|peer| peer == rogue),
            "{rogue} is graylisted: {outcome}"
        );
    }
    // The flood left nothing in the console's history.
    let mut flooded_id = [0u8; 32];
    flooded_id[7] = 1;
    let history = std::process::Command::new(binary("mig"))
        .args(["results", &hex::encode(flooded_id), "--data-dir"])
        .arg(&console_dir)
        .output()
        .unwrap();
    assert!(!history.status.success());
    assert!(
        String::from_utf8_lossy(&history.stderr).contains("no record"),
        "{}",
        String::from_utf8_lossy(&history.stderr)
    );

    // The agents answer the next action as ever.
    let output = run_console(
        &action_file,
        &investigator.key,
        &relay,
        &dir.join("console2"),
        &[],
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["summary"]["answered"], 2, "{outcome}");
}

/// A rogue handing out report deliveries (`mig-rogue --deliver-to`).
#[derive(Clone, Copy)]
struct Rogue<'a> {
    /// Its data directory (and so its identity) under the test's.
    name: &'a str,
    console: &'a str,
    action: &'a str,
    victim: &'a str,
    forged: usize,
    unsolicited: usize,
    misrouted: usize,
}

impl Rogue<'_> {
    /// Delivers to `address` and returns what the rogue printed.
    fn deliver(&self, dir: &std::path::Path, address: &str) -> serde_json::Value {
        let output = std::process::Command::new(binary("mig-rogue"))
            .args(["--deliver-to", address, "--console", self.console])
            .args(["--action", self.action, "--victim", self.victim])
            .args(["--forged", &self.forged.to_string()])
            .args(["--unsolicited", &self.unsolicited.to_string()])
            .args(["--misrouted", &self.misrouted.to_string(), "--data-dir"])
            .arg(dir.join(self.name))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

/// A relay and two agents, `agent-a` and `agent-b` (each with its own
/// small tree), linked up; returns them (stopped on drop) and the relay's
/// address.
fn small_mesh(dir: &std::path::Path, investigator: &Investigator) -> (Vec<Running>, String) {
    let (relay_process, relay) =
        start_relay(&dir.join("relay"), LOOPBACK, &investigator.public, &[]);
    let mut nodes = vec![relay_process];
    nodes.extend(start_hosts(
        dir,
        &relay,
        &investigator.public,
        &["a", "b"],
        "",
        &[],
    ));
    (nodes, relay)
}

/// The peer id the rogue will have (its key is made now, in its data dir).
fn mig_node_identity(data_dir: &std::path::Path) -> String {
    let keypair = mig_node::identity::load_or_create(data_dir).unwrap();
    keypair.public().to_peer_id().to_string()
}

/// Runs the rogue peer: it publishes `messages` through the relay, then
/// stays `stay` seconds.
fn rogue(
    dir: &std::path::Path,
    relay: &str,
    name: &str,
    messages: &[Vec<u8>],
    stay: u64,
) -> std::process::Child {
    let file = dir.join(format!("{name}.hex"));
    std::fs::write(
        &file,
        messages
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    std::process::Command::new(binary("mig-rogue"))
        .args(["--bootstrap", relay, "--messages"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(["--stay", &stay.to_string()])
        .spawn()
        .unwrap()
}
