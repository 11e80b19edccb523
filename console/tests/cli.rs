//! `mig` as a person types it, without a mesh: mistakes get a clear
//! message and exit 2, a first run says what to configure, `-p` and `-t
//! local` work with no mesh at all. (The mesh scenarios that drive `mig`
//! end to end are in `tests/` and `demo.rs`; these tests also make `cargo
//! test --workspace` build the `mig` binary they use.)

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::path::Path;
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/linux-backdoor-2014.json"
);

/// Runs `mig` with a home of its own, so no configuration of the user's
/// leaks in.
fn mig_in(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mig"))
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("MIG_KEY_PASSPHRASE")
        .output()
        .unwrap()
}

fn mig(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    mig_in(home.path(), args)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_first_run_without_configuration_says_exactly_what_to_set() {
    let output = mig(&["run", EXAMPLE]);
    assert_eq!(output.status.code(), Some(2));
    let said = text(&output);
    for needed in [
        "console.toml",
        "bootstrap = [",
        "key = ",
        "--bootstrap",
        "mig demo",
    ] {
        assert!(said.contains(needed), "{needed}: {said}");
    }
}

#[test]
fn an_unsigned_action_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = mig(&[
        "run",
        EXAMPLE,
        "--bootstrap",
        "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGq1ZZQwu2bC1p2qKoLEzy4WTTXYeTV1sdA6HYWmsUtEN",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("No investigator key to sign with"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_missing_action_file_is_named() {
    let output = mig(&["run", "/no/such/action.json", "--mdns"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("/no/such/action.json"),
        "{}",
        text(&output)
    );
}

#[test]
fn module_help_lists_migs_flags_with_examples() {
    let output = mig(&["file", "help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output);
    for flag in [
        "--path",
        "--sha2",
        "--mismatch",
        "--matchany",
        "--target",
        "--show",
        "Examples:",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    let output = mig(&["netstat", "help"]);
    assert!(text(&output).contains("--lp"), "{}", text(&output));
}

#[test]
fn bad_flags_and_targets_exit_2_with_the_problem_named() {
    let output = mig(&["file", "-path", "/tmp", "-sizee", "1k"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--sizee"), "{}", text(&output));
    let output = mig(&["file", "-path", "/tmp", "-t", "os = ", "-p"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("target"), "{}", text(&output));
}

#[test]
fn print_only_shows_the_action_migs_flags_build() {
    let output = mig(&[
        "file",
        "-t",
        "os = 'linux'",
        "-path",
        "/usr/bin",
        "-name",
        "^wget$",
        "-n",
        "find wget",
        "-p",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let action: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(action["name"], "find wget");
    assert_eq!(action["target"], "os = 'linux'");
    assert_eq!(
        action["operations"][0]["parameters"]["searches"]["s1"]["names"],
        serde_json::json!(["^wget$"])
    );
}

#[test]
fn target_local_runs_the_module_here_with_no_mesh() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("needle"), b"the needle").unwrap();
    std::fs::write(tree.path().join("hay"), b"only hay").unwrap();
    let path = tree.path().to_str().unwrap();
    let output = mig(&["file", "-t", "local", "-path", path, "-content", "needle"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{path}/needle [")), "{stdout}");
    assert!(!stdout.contains("/hay"), "{stdout}");
    assert!(stdout.contains("1 agent has found results"), "{stdout}");

    let output = mig(&[
        "file", "-t", "local", "-path", path, "-name", "^hay$", "--format", "csv",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("agent,peer,status,found,module,line"));
    let row = lines.next().unwrap();
    assert!(
        row.contains(",local,success,true,file,") && row.contains("/hay ["),
        "{stdout}"
    );
}

#[test]
fn history_and_results_read_the_consoles_own_store() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("console");
    let data = data.to_str().unwrap();
    let output = mig_in(home.path(), &["history", "--data-dir", data]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = mig_in(home.path(), &["results", "abcd", "--data-dir", data]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("no record of an action starting with abcd"),
        "{}",
        text(&output)
    );
    let output = mig_in(
        home.path(),
        &["agents", "--cached", "--data-dir", data, "--format", "json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "[]");
}
