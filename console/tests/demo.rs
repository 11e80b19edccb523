//! `mig demo` end to end, as CI runs it (not on a terminal, so it exits
//! after its script): real relay and agent processes on loopback, the
//! seed example's IOC sweep, and the planted agents and only they report
//! hits.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::process::Command;

#[test]
fn the_demo_finds_the_planted_files_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mig"))
        .args(["demo", "--agents", "8"])
        // No console configuration of the user's leaks in.
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // Planted: every fifth agent from the third (demo-03 and demo-08 of 8).
    let hits: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("in search 'backdoors'"))
        .collect();
    assert_eq!(hits.len(), 2, "{stdout}");
    assert!(
        hits[0].starts_with("demo-03 /usr/bin/kworkerd ["),
        "{stdout}"
    );
    assert!(
        hits[1].starts_with("demo-08 /usr/sbin/sshd-helper ["),
        "{stdout}"
    );
    assert!(stdout.contains("2 agents have found results"), "{stdout}");
    // The census saw all eight, and the netstat query found the relay's
    // port on the web agents (demo-03 and demo-06: every third from the third).
    assert!(stdout.contains("8 agents\n"), "{stdout}");
    let listening: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("listening"))
        .collect();
    assert_eq!(listening.len(), 2, "{stdout}");
    assert!(
        stderr.contains("demo check: the 2 agents with planted files"),
        "{stderr}"
    );
}
