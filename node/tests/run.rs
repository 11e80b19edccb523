//! `mig-node run` as an investigator uses it on one host: the example
//! action against a planted tree, signed and unsigned, JSON and text.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use sha2::Digest;

const EXAMPLE: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");
/// The last hash in the example's list.
const LISTED: &str = "5cba4433237e2ff202a5b20aad00a12d25bfc5564c3620a9463767eec2150cc1";

fn mig_node(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mig-node"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A host tree with a planted "backdoor" and innocent files, and the
/// example action with the planted file's hash in place of the last one
/// (real backdoor binaries are not available to plant).
fn planted() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, contents) in [
        ("usr/bin/ls", &b"innocent ls"[..]),
        ("usr/sbin/sshd", b"innocent sshd"),
        ("tmp/.hidden/payload", b"the planted backdoor"),
        ("opt/app/run.sh", b"#!/bin/sh\n"),
    ] {
        let full = root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, contents).unwrap();
    }
    let digest = hex::encode(sha2::Sha256::digest(b"the planted backdoor"));
    let action = EXAMPLE.replace(LISTED, &digest);
    let action_path = root.join("action.json");
    fs::write(&action_path, action).unwrap();
    (dir, action_path.display().to_string())
}

fn found_files(output: &Output) -> Vec<String> {
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["status"], "success", "{result}");
    let mut files: Vec<String> = result["operations"][0]["elements"]["backdoors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| {
            entry["file"]
                .as_str()
                .filter(|file| !file.is_empty())
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn finds_the_planted_file_and_nothing_else() {
    let (dir, action) = planted();
    let root = dir.path().display().to_string();
    let output = mig_node(&[
        "run",
        "--unsigned",
        &action,
        "--root",
        &root,
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(found_files(&output), ["/tmp/.hidden/payload"]);

    let output = mig_node(&["run", "--unsigned", &action, "--root", &root]);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("/tmp/.hidden/payload [lastmodified:"),
        "{printed}"
    );
    assert!(
        printed.contains("in search 'backdoors' on checks sha2="),
        "{printed}"
    );
}

#[test]
fn the_unmodified_example_runs_and_reports_nothing_on_a_clean_tree() {
    let (dir, _) = planted();
    let example = dir.path().join("example.json");
    fs::write(&example, EXAMPLE).unwrap();
    let output = mig_node(&[
        "run",
        "--unsigned",
        example.to_str().unwrap(),
        "--root",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(found_files(&output).is_empty());
}

#[test]
fn signed_actions_are_verified_first() {
    let (dir, action) = planted();
    let key = mig_keys::SecretKey::generate("Investigator").unwrap();
    let key_path = dir.path().join("investigator.key");
    mig_keys::write_key_files(&key, &key_path, None, mig_keys::KdfCost::default(), false).unwrap();
    let mut loaded = mig_keys::load_action(Path::new(&action)).unwrap();
    mig_keys::fill_launch_defaults(
        &mut loaded,
        mig_proto::Timestamp::from_system_time(std::time::SystemTime::now()),
        300,
    )
    .unwrap();
    mig_keys::sign_action(&mut loaded, &key).unwrap();
    let signed = dir.path().join("signed.json");
    fs::write(&signed, loaded.to_json_pretty()).unwrap();
    let public = format!("{}.pub", key_path.display());
    let root = dir.path().display().to_string();

    let output = mig_node(&[
        "run",
        signed.to_str().unwrap(),
        "--trust",
        &public,
        "--root",
        &root,
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(found_files(&output), ["/tmp/.hidden/payload"]);

    let other = mig_keys::SecretKey::generate("Stranger").unwrap();
    let other_path = dir.path().join("stranger.key");
    mig_keys::write_key_files(
        &other,
        &other_path,
        None,
        mig_keys::KdfCost::default(),
        false,
    )
    .unwrap();
    let output = mig_node(&[
        "run",
        signed.to_str().unwrap(),
        "--trust",
        &format!("{}.pub", other_path.display()),
        "--root",
        &root,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("refused action") && text(&output).contains("unknown key"),
        "{}",
        text(&output)
    );

    let output = mig_node(&["run", &action, "--trust", &public, "--root", &root]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "an unsigned action needs --unsigned"
    );
    assert!(
        text(&output).contains("carries no signature"),
        "{}",
        text(&output)
    );
}

#[test]
fn the_hash_cache_persists_in_the_data_directory() {
    let (dir, action) = planted();
    let data = dir.path().join("data");
    let root = dir.path().display().to_string();
    for _ in 0..2 {
        let output = mig_node(&[
            "run",
            "--unsigned",
            &action,
            "--root",
            &root,
            "--format",
            "json",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert_eq!(found_files(&output), ["/tmp/.hidden/payload"]);
    }
    assert!(data.join("agent.redb").exists());
}

#[test]
fn lists_its_modules() {
    let output = mig_node(&["modules"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "agentinfo\nfile\nnetstat\npkg\nprocess\nsshkey\n"
    );
}
