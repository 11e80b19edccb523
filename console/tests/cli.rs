//! `mig` as a person types it: mistakes get a clear message and exit 2.
//! (The mesh scenarios that drive `mig run` end to end are in `tests/`;
//! these tests also make `cargo test --workspace` build the `mig` binary
//! they use.)

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::process::{Command, Output};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/linux-backdoor-2014.json"
);

fn mig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mig"))
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

#[test]
fn run_needs_a_way_to_find_the_mesh() {
    let output = mig(&["run", EXAMPLE]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--bootstrap"), "{}", text(&output));
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
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("not signed: give --key"),
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
