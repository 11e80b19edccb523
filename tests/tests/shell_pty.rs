//! The interactive shell driven through a pseudo-terminal, against a real
//! mesh (a relay and three agent processes): tab completion of commands
//! and action ids, a launch with its countdown, Ctrl-C cancelling a
//! countdown and detaching from a launch, the action builder, history
//! across sessions.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::process::Command;
use std::time::Duration;

use mig_tests::{Investigator, LOOPBACK, binary, start_hosts, start_relay};
use rexpect::session::{PtySession, spawn_command};

const PROMPT: &str = "mig> ";

fn shell(home: &std::path::Path, config: &std::path::Path) -> PtySession {
    let mut command = Command::new(binary("mig"));
    command
        .arg("--config")
        .arg(config)
        .env("HOME", home)
        .env("TERM", "xterm")
        .env_remove("XDG_CONFIG_HOME");
    let mut session = spawn_command(command, Some(60_000)).unwrap();
    session.exp_string(PROMPT).unwrap();
    session
}

#[test]
fn the_shell_completes_launches_detaches_and_builds_actions() {
    let dir = tempfile::tempdir().unwrap();
    let investigator = Investigator::new(dir.path(), "alice");
    let (relay_process, relay) = start_relay(
        &dir.path().join("relay"),
        LOOPBACK,
        &investigator.public,
        &[],
    );
    let agents = start_hosts(
        dir.path(),
        &relay,
        &investigator.public,
        &["a", "b", "c"],
        "b",
        &[],
    );
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.path().join("console.toml");
    std::fs::write(
        &config,
        format!(
            "bootstrap = [\"{relay}\"]\nkey = \"{}\"\ndata_dir = \"{}\"\nlisten = [\"{LOOPBACK}\"]\n[macros]\nlinux = \"os = 'linux'\"\n",
            investigator.key.display(),
            dir.path().join("console").display()
        ),
    )
    .unwrap();

    let mut p = shell(&home, &config);
    // A census; the roster then knows three agents.
    p.send_line("agents").unwrap();
    p.exp_string("3 agents").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Completion of a command, then a launch with its countdown.
    p.send("netst\t").unwrap();
    p.flush().unwrap();
    p.exp_string("netstat ").unwrap();
    p.send_control('u').unwrap();
    p.send_line("file -t linux -path /usr/bin -name kworkerd")
        .unwrap();
    p.exp_string("expected 3 agents").unwrap();
    p.exp_string("launching in").unwrap();
    p.exp_string("GO").unwrap();
    p.exp_string("host-b /usr/bin/kworkerd [").unwrap();
    p.exp_string("1 agent has found results").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Ctrl-C in the countdown: nothing is sent.
    p.send_line("agentinfo").unwrap();
    p.exp_string("launching in").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("cancelled; nothing was sent").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Ctrl-C while following: detached, the prompt comes back.
    p.send_line("agentinfo --yes --collect-for 60s").unwrap();
    p.exp_string("published").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    p.send_control('c').unwrap();
    p.exp_string("stopped following action").unwrap();
    p.exp_string("mig results").unwrap();
    p.exp_string(PROMPT).unwrap();

    // The history lists what was launched.
    p.send_line("history").unwrap();
    p.exp_string("file query").unwrap();
    p.exp_string(PROMPT).unwrap();

    // The action builder. (Each line waits for the prompt: the line
    // editor drops what is typed before it is ready.)
    const BUILDER: &str = "launcher> ";
    p.send_line("create action").unwrap();
    p.exp_string(BUILDER).unwrap();
    p.send_line("addoperation file -path /usr/bin -name ^ls$")
        .unwrap();
    p.exp_string("operation 1 added").unwrap();
    p.exp_string(BUILDER).unwrap();
    p.send_line("setname find ls").unwrap();
    p.exp_string(BUILDER).unwrap();
    p.send_line("settarget linux").unwrap();
    p.exp_string("3 agents will be targeted").unwrap();
    p.exp_string(BUILDER).unwrap();
    p.send_line("settimes now +10m").unwrap();
    p.exp_string(BUILDER).unwrap();
    p.send_line("sign").unwrap();
    p.exp_string("signed (1 signature(s))").unwrap();
    p.exp_string(BUILDER).unwrap();
    p.send_line("launch").unwrap();
    p.exp_string("GO").unwrap();
    p.exp_string("3 agents have found results").unwrap();
    p.exp_string(PROMPT).unwrap();

    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();

    // History across sessions: the lines typed are there next time, and
    // the launched actions' ids complete after `show`.
    let history = std::fs::read_to_string(dir.path().join("console/shell_history")).unwrap();
    assert!(history.contains("create action"), "{history}");
    let mut p = shell(&home, &config);
    p.send("show \t\t").unwrap();
    p.flush().unwrap();
    let (_, id) = p.exp_regex("[0-9a-f]{12}").unwrap();
    assert_eq!(id.len(), 12);
    p.send_control('u').unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
    drop(agents);
    drop(relay_process);
}
