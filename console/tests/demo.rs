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

/// The processes whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(text)
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn a_demo_told_to_stop_takes_its_agents_and_files_with_it() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let home = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mig"))
        .args(["demo", "--agents", "3"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stderr.take().unwrap()).lines();
    // "mig demo: a relay and 3 agents on this machine, in DIR"
    let first = lines.next().unwrap().unwrap();
    let directory = first.rsplit_once(", in ").unwrap().1.to_owned();
    // Stopped while its agents run, before the script ends.
    for line in lines.by_ref() {
        if line.unwrap().starts_with("agents ") {
            break;
        }
    }
    assert!(!processes_mentioning(&directory).is_empty());
    let status = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = demo.wait().unwrap();
    assert_eq!(exited.code(), Some(128 + 15), "{exited:?}");
    assert!(
        !std::path::Path::new(&directory).exists(),
        "{directory} is still there"
    );
    assert!(
        processes_mentioning(&directory).is_empty(),
        "still running: {:?}",
        processes_mentioning(&directory)
    );
}
