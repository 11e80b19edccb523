//! The console's commands against a real mesh (a relay and three agent
//! processes), as scripts use them: the census and the roster, MIG's
//! module commands, `-target-found` from the agents' own memory (with the
//! console's history lost), history, show and results read back, a
//! co-signed action (`-s`, `mig-keys sign`, `mig -i`), and the agents the
//! roster expected that stayed away.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mig_tests::{Investigator, LOOPBACK, binary, start_hosts, start_relay};

struct Console {
    home: PathBuf,
    config: PathBuf,
}

impl Console {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(binary("mig"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .arg("--yes")
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(output)))
}

fn names_in_ndjson(output: &Output) -> Vec<String> {
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["agent"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    names
}

fn console(dir: &Path, name: &str, relay: &str, key: &Path, macros: &str) -> Console {
    let home = dir.join(format!("home-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "bootstrap = [\"{relay}\"]\nkey = \"{}\"\ndata_dir = \"{}\"\nlisten = [\"{LOOPBACK}\"]\n{macros}",
            key.display(),
            dir.join(name).display()
        ),
    )
    .unwrap();
    Console { home, config }
}

#[test]
fn the_console_commands_against_a_real_mesh() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let alice = Investigator::new(dir, "alice");
    let bob = Investigator::new(dir, "bob");
    // netstat needs both investigators' signatures; everything else one.
    let fingerprint = |investigator: &Investigator| {
        mig_keys::load_public_key(&investigator.public)
            .unwrap()
            .fingerprint()
            .to_string()
    };
    let (alice_print, bob_print) = (fingerprint(&alice), fingerprint(&bob));
    let acl = dir.join("acl.json");
    std::fs::write(
        &acl,
        format!(
            r#"{{"default": {{"minimumweight": 1, "investigators": {{"alice": {{"fingerprint": "{alice_print}", "weight": 1}}}}}},
                "netstat": {{"minimumweight": 2, "investigators": {{"alice": {{"fingerprint": "{alice_print}", "weight": 1}},
                                                                     "bob": {{"fingerprint": "{bob_print}", "weight": 1}}}}}}}}"#
        ),
    )
    .unwrap();
    let trust = |investigator: &Investigator| investigator.public.display().to_string();
    let (relay_process, relay) = start_relay(
        &dir.join("relay"),
        LOOPBACK,
        &alice.public,
        &["--trust", &trust(&bob), "--acl", acl.to_str().unwrap()],
    );
    let mut agents = start_hosts(
        dir,
        &relay,
        &alice.public,
        &["a", "b", "c"],
        "b",
        &["--trust", &trust(&bob), "--acl", acl.to_str().unwrap()],
    );
    let alice_console = console(
        dir,
        "alice",
        &relay,
        &alice.key,
        "[macros]\nlinux = \"os = 'linux'\"\n",
    );

    // The census fills the roster.
    let census = alice_console.run(&["agents", "--format", "json"]);
    assert_eq!(census.status.code(), Some(0), "{}", text(&census));
    let roster = json(&census);
    let names: Vec<&str> = roster
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["host-a", "host-b", "host-c"]);

    // MIG's command line, with a macro; the roster expects three.
    let sweep = alice_console.run(&[
        "file",
        "-t",
        "linux",
        "-path",
        "/usr/bin",
        "-name",
        "^kworkerd$",
        "--format",
        "json",
    ]);
    assert_eq!(sweep.status.code(), Some(0), "{}", text(&sweep));
    let outcome = json(&sweep);
    assert_eq!(outcome["expected"], 3, "{outcome}");
    assert_eq!(outcome["summary"]["answered"], 3, "{outcome}");
    assert_eq!(outcome["summary"]["found"], 1, "{outcome}");
    let sweep_id = outcome["action_id"].as_str().unwrap().to_owned();
    let prefix = &sweep_id[..12];

    // -target-found / -target-notfound: the agents remember.
    let found = alice_console.run(&[
        "agentinfo",
        "-target-found",
        prefix,
        "--format",
        "ndjson",
        "-show",
        "all",
    ]);
    assert_eq!(found.status.code(), Some(0), "{}", text(&found));
    assert_eq!(names_in_ndjson(&found), ["host-b"]);
    let not_found = alice_console.run(&[
        "agentinfo",
        "-target-notfound",
        prefix,
        "--format",
        "ndjson",
        "-show",
        "all",
    ]);
    assert_eq!(names_in_ndjson(&not_found), ["host-a", "host-c"]);
    // A console with no history (another investigator's, a lost laptop)
    // uses the full id; the agents still know.
    let fresh = console(dir, "fresh", &relay, &alice.key, "");
    let found_elsewhere = fresh.run(&[
        "agentinfo",
        "-target-found",
        &sweep_id,
        "--format",
        "ndjson",
        "-show",
        "all",
    ]);
    assert_eq!(
        names_in_ndjson(&found_elsewhere),
        ["host-b"],
        "{}",
        text(&found_elsewhere)
    );
    let unknown_prefix = fresh.run(&["agentinfo", "-target-found", prefix]);
    assert_eq!(unknown_prefix.status.code(), Some(2));

    // History, show and results read the console's store back.
    let history = alice_console.run(&["history", "--format", "csv"]);
    let history_text = String::from_utf8_lossy(&history.stdout);
    assert!(
        history_text.starts_with("id,name,target,modules,launched,acked,answered,found"),
        "{history_text}"
    );
    assert!(
        history_text.contains(&format!("{sweep_id},file query,os = 'linux',file,")),
        "{history_text}"
    );
    let show = alice_console.run(&["show", prefix]);
    assert!(
        String::from_utf8_lossy(&show.stdout)
            .contains("answers  3 acked, 0 refused, 3 answered, 1 found"),
        "{}",
        text(&show)
    );
    let results = alice_console.run(&["results", prefix, "--format", "csv"]);
    let results_text = String::from_utf8_lossy(&results.stdout);
    assert!(
        results_text.contains("host-b,") && results_text.contains("/usr/bin/kworkerd ["),
        "{results_text}"
    );

    // Two signatures: alice signs (-s), bob co-signs, alice launches it.
    let port = relay.split('/').nth(4).unwrap().to_owned();
    let alone = alice_console.run(&["netstat", "-lp", &port, "--format", "json"]);
    assert_eq!(
        alone.status.code(),
        Some(1),
        "one signature is refused: {}",
        text(&alone)
    );
    assert_eq!(json(&alone)["summary"]["rejected"], 3);
    let signed = alice_console.run(&["netstat", "-lp", &port, "-s"]);
    assert_eq!(signed.status.code(), Some(0), "{}", text(&signed));
    // Its results will be sealed to a key only this console holds.
    let signed_json: serde_json::Value = serde_json::from_slice(&signed.stdout).unwrap();
    let seal_key = signed_json["reply_to"]["seal_key"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(seal_key.len(), 64, "{signed_json}");
    let action = dir.join("netstat.json");
    std::fs::write(&action, &signed.stdout).unwrap();
    let cosign = Command::new(binary("mig-keys"))
        .args(["sign", "--key"])
        .arg(&bob.key)
        .arg(&action)
        .arg("-o")
        .arg(&action)
        .output()
        .unwrap();
    assert!(cosign.status.success(), "{}", text(&cosign));
    let both = alice_console.run(&["-i", action.to_str().unwrap(), "--format", "json"]);
    assert_eq!(both.status.code(), Some(0), "{}", text(&both));
    let outcome = json(&both);
    assert_eq!(outcome["summary"]["answered"], 3, "{outcome}");
    assert_eq!(
        outcome["summary"]["found"], 3,
        "every agent sees the relay's port: {outcome}"
    );

    // An agent the roster expects stays away: named, and exit 1.
    drop(agents.pop());
    let missing = alice_console.run(&["agentinfo", "--timeout", "8s", "--format", "json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert_eq!(json(&missing)["unheard"], serde_json::json!(["host-c"]));
    drop(agents);
    drop(relay_process);
}
