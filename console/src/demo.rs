//! `mig demo`: a whole mesh on this machine, for a first look.
//!
//! It starts a relay and N agents as separate processes on loopback (this
//! binary, run as `mig node relay|agent ...`, which is `mig-node`), each
//! agent looking at a generated file tree of its own as its filesystem,
//! some trees holding planted "backdoors"; writes an IOC action in the
//! seed example's form whose hash list includes the planted files; then
//! runs, as an investigator would type them, a census, the IOC sweep and a
//! netstat query, and checks that the planted agents and only they found
//! something. On a terminal it then opens the shell on the demo mesh.
//! Everything it starts it stops on exit, and its directory goes too.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::Digest;

use crate::args::{self, GlobalFlags};
use crate::session::Session;

/// `mig node ...` runs `mig-node ...` (the demo's relay and agents).
pub const NODE_COMMAND: &str = "node";

/// How long the mesh may take to form before the demo gives up.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Children killed when the demo ends, however it ends: returning,
/// failing, or (see `clean_up_on_termination`) a SIGTERM or SIGHUP.
#[derive(Clone, Default)]
struct Processes(Arc<Mutex<Vec<Child>>>);

impl Processes {
    /// A poisoned lock still holds every child to stop.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `command` holding the lock, so a signal's `stop_all` either
    /// runs before it (and the process exits) or sees the child: no child
    /// outlives the demo. Returns the child's standard output, if piped.
    fn spawn(&self, command: &mut Command) -> std::io::Result<Option<ChildStdout>> {
        let mut children = self.lock();
        let mut child = command.spawn()?;
        let stdout = child.stdout.take();
        children.push(child);
        Ok(stdout)
    }

    fn stop_all(&self) {
        let mut children = self.lock();
        for child in children.iter_mut() {
            let _ = child.kill();
        }
        for mut child in children.drain(..) {
            let _ = child.wait();
        }
    }
}

/// Stops the processes when the demo's `run` returns, however it returns.
struct StopOnReturn(Processes);

impl Drop for StopOnReturn {
    fn drop(&mut self) {
        self.0.stop_all();
    }
}

/// A demo told to stop by a signal (the terminal closed, `kill`) stops
/// its relay and agents and removes its directory before it goes, as it
/// does when it ends by itself. Ctrl-C is left to the launch (cancel or
/// detach) and the shell (a new line).
fn clean_up_on_termination(processes: Processes, directory: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut terminate, mut hangup) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("demo-signals".into())
        .spawn(move || {
            let number = runtime.block_on(async {
                tokio::select! {
                    _ = terminate.recv() => 15,
                    _ = hangup.recv() => 1,
                }
            });
            processes.stop_all();
            let _ = std::fs::remove_dir_all(&directory);
            std::process::exit(128 + number);
        })?;
    Ok(())
}

/// The planted files: (path in the agent's tree, contents). Real 2014
/// backdoors are not available to plant; these stand in for them.
fn planted_file(family: usize) -> (&'static str, Vec<u8>) {
    match family % 2 {
        0 => (
            "usr/bin/kworkerd",
            b"\x7fELF demo backdoor: listens on 4444 and runs what it is told\n".to_vec(),
        ),
        _ => (
            "usr/sbin/sshd-helper",
            b"\x7fELF demo backdoor: steals ssh passwords\n".to_vec(),
        ),
    }
}

/// Which agents (1-based) hold a planted file: every fifth, from the third.
pub fn is_planted(agent: usize, agents: usize) -> bool {
    if agents < 3 {
        agent == 1
    } else {
        agent % 5 == 3
    }
}

pub fn agent_name(agent: usize) -> String {
    format!("demo-{agent:02}")
}

/// A small host: a few binaries, configuration, home directories.
fn write_tree(root: &Path, agent: usize, agents: usize) -> anyhow::Result<()> {
    for directory in [
        "usr/bin",
        "usr/sbin",
        "bin",
        "sbin",
        "etc",
        "opt",
        "tmp",
        "home/alice/.ssh",
    ] {
        std::fs::create_dir_all(root.join(directory))?;
    }
    for (name, contents) in [
        ("usr/bin/ls", "an ordinary ls".to_owned()),
        ("usr/bin/cat", "an ordinary cat".to_owned()),
        ("usr/bin/wget", "an ordinary wget".to_owned()),
        ("usr/sbin/sshd", "an ordinary sshd".to_owned()),
        ("bin/sh", "an ordinary sh".to_owned()),
        ("etc/hostname", agent_name(agent)),
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n".to_owned(),
        ),
        ("tmp/build.log", format!("build {agent} ok")),
    ] {
        std::fs::write(root.join(name), contents)?;
    }
    // The agents share this machine's network: netstat looks at it
    // through the tree, as it would look at a mounted image's.
    for system in ["proc", "sys"] {
        std::os::unix::fs::symlink(Path::new("/").join(system), root.join(system))?;
    }
    if is_planted(agent, agents) {
        let (path, contents) = planted_file(agent / 5);
        std::fs::write(root.join(path), contents)?;
    }
    Ok(())
}

/// The seed example, unchanged but for its last hashes, which become the
/// planted files' SHA-256.
fn ioc_action() -> anyhow::Result<String> {
    let example = include_str!("../../docs/examples/linux-backdoor-2014.json");
    let mut action: serde_json::Value = serde_json::from_str(example)?;
    let hashes = action["operations"][0]["parameters"]["searches"]["backdoors"]["sha256"]
        .as_array_mut()
        .context("the example's hash list")?;
    for family in 0..2 {
        let (_, contents) = planted_file(family);
        let position = hashes.len() - 1 - family;
        hashes[position] = serde_json::json!(hex::encode(sha2::Sha256::digest(&contents)));
    }
    Ok(serde_json::to_string_pretty(&action)?)
}

/// Runs `mig node ...` (this binary) and reads its first line.
fn start_relay(directory: &Path, trust: &Path, processes: &Processes) -> anyhow::Result<String> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args([
            NODE_COMMAND,
            "relay",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--trust",
        ])
        .arg(trust)
        .arg("--data-dir")
        .arg(directory.join("relay"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(directory, "relay")?);
    let stdout = processes
        .spawn(&mut command)
        .context("starting the relay")?
        .context("the relay's output")?;
    let (tell, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tell.send(line.trim().to_owned());
    });
    let address = address
        .recv_timeout(Duration::from_secs(30))
        .context("the relay printed no address within 30 s")?;
    if address.is_empty() {
        bail!(
            "the relay stopped; see {}",
            directory.join("logs/relay.log").display()
        );
    }
    Ok(address)
}

fn log_file(directory: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(directory.join("logs"))?;
    Ok(std::fs::File::create(
        directory.join(format!("logs/{name}.log")),
    )?)
}

/// Waits until every agent is in the gossip mesh.
fn wait_for_mesh(runtime: &tokio::runtime::Runtime, data_dirs: &[PathBuf]) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut waiting: Vec<&PathBuf> = data_dirs.iter().collect();
    while !waiting.is_empty() {
        if started.elapsed() > FORMATION_TIMEOUT {
            bail!(
                "{} agents did not join the mesh within {FORMATION_TIMEOUT:?}",
                waiting.len()
            );
        }
        waiting.retain(|data_dir| {
            let ready = runtime
                .block_on(mig_node::status::query(data_dir))
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|status| mig_node::status::action_peers(&status) > 0);
            !ready
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Runs the demo; `agents` agent processes.
pub fn run(base: GlobalFlags, agents: u16, no_shell: bool) -> anyhow::Result<u8> {
    let agents = usize::from(agents);
    let directory = tempfile::Builder::new().prefix("mig-demo-").tempdir()?;
    let dir = directory.path();
    eprintln!(
        "mig demo: a relay and {agents} agents on this machine, in {}",
        dir.display()
    );

    let key = mig_keys::SecretKey::generate("Demo Investigator <demo@example.org>")?;
    let key_path = dir.join("investigator.key");
    let public =
        mig_keys::write_key_files(&key, &key_path, None, mig_keys::KdfCost::default(), false)?;

    let processes = Processes::default();
    let _stop = StopOnReturn(processes.clone());
    clean_up_on_termination(processes.clone(), dir.to_owned())?;
    let relay = start_relay(dir, &public, &processes)?;
    eprintln!("relay    {relay}");
    let mut data_dirs = Vec::new();
    for agent in 1..=agents {
        let name = agent_name(agent);
        let root = dir.join("hosts").join(&name);
        write_tree(&root, agent, agents)?;
        let data_dir = dir.join("agents").join(&name);
        let team = ["web", "db", "build"][agent % 3];
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args([
                NODE_COMMAND,
                "agent",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--bootstrap",
                &relay,
                "--trust",
            ])
            .arg(&public)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--root")
            .arg(&root)
            .args(["--name", &name, "--tag", &format!("team={team}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(dir, &name)?);
        processes
            .spawn(&mut command)
            .with_context(|| format!("starting agent {name}"))?;
        data_dirs.push(data_dir);
    }
    let planted: Vec<String> = (1..=agents)
        .filter(|agent| is_planted(*agent, agents))
        .map(agent_name)
        .collect();
    eprintln!(
        "agents   {} (files planted on {})",
        agents,
        planted.join(", ")
    );

    let config = dir.join("console.toml");
    std::fs::write(
        &config,
        format!(
            "bootstrap = [\"{relay}\"]\nkey = \"{}\"\ndata_dir = \"{}\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n\n\
             [macros]\nlinux = \"os = 'linux'\"\nweb = \"tags->>'team' = 'web'\"\n",
            key_path.display(),
            dir.join("console").display()
        ),
    )?;
    let ioc = dir.join("linux-backdoor-2014.json");
    std::fs::write(&ioc, ioc_action()?)?;

    let base = GlobalFlags {
        config: Some(config.clone()),
        ..base
    };
    let mut session = Session::new(base.clone())?;
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        wait_for_mesh(&runtime, &data_dirs)?;
    }
    eprintln!("the mesh is up\n");

    let step = |session: &mut Session, title: &str, line: &str| -> anyhow::Result<u8> {
        eprintln!("== {title}\n$ mig {line}");
        let mut words = shlex::split(line).context("a demo command")?;
        words.push("--yes".into());
        let code = session.execute(args::parse(words)?)?;
        eprintln!();
        Ok(code)
    };
    step(
        &mut session,
        "who is there: a census of the agents (agentinfo), kept as the roster",
        "agents",
    )?;
    step(
        &mut session,
        "the seed example: which hosts hold a file with one of these SHA-256 hashes?",
        &format!("run {}", ioc.display()),
    )?;
    let found: Vec<String> = session
        .last_outcome
        .as_ref()
        .map(|outcome| {
            let mut names: Vec<String> = outcome
                .agents
                .iter()
                .filter(|agent| {
                    agent
                        .result
                        .as_ref()
                        .is_some_and(mig_proto::AgentResult::found_anything)
                })
                .map(|agent| agent.attributes.name.clone())
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    let relay_port = relay
        .split('/')
        .skip_while(|part| *part != "tcp")
        .nth(1)
        .unwrap_or("0")
        .to_owned();
    step(
        &mut session,
        "who listens on the relay's port? (the agents share this machine's network, so every one sees it)",
        &format!("netstat -lp {relay_port} -t web"),
    )?;

    let verdict = if found == planted {
        eprintln!(
            "demo check: the {} agents with planted files, and only they, found the IOC: {}",
            planted.len(),
            found.join(", ")
        );
        0
    } else {
        eprintln!(
            "demo check FAILED: planted on {}, found on {}",
            planted.join(", "),
            found.join(", ")
        );
        1
    };
    if !no_shell && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        eprintln!(
            "\nthe shell, connected to the demo mesh (try: history, agents --cached, file -path /usr/bin -name kworkerd, create action)"
        );
        drop(session);
        crate::shell::run(base)?;
    }
    drop(processes);
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planting_covers_a_few_agents_and_the_ioc_names_their_hashes() {
        let planted: Vec<usize> = (1..=20).filter(|agent| is_planted(*agent, 20)).collect();
        assert_eq!(planted, [3, 8, 13, 18]);
        assert_eq!((1..=2).filter(|agent| is_planted(*agent, 2)).count(), 1);
        let action = mig_proto::Action::from_json(&ioc_action().unwrap()).unwrap();
        let hashes = action.operations[0].parameters["searches"]["backdoors"]["sha256"].to_string();
        for family in 0..2 {
            let digest = hex::encode(sha2::Sha256::digest(planted_file(family).1));
            assert!(hashes.contains(&digest));
        }
        // The seed example as it is otherwise.
        assert_eq!(action.target, "agents.os = 'linux'");
        assert_eq!(action.operations[0].module, "filechecker");
    }

    #[test]
    fn a_tree_has_its_planted_file() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 3, 20).unwrap();
        assert!(dir.path().join("usr/bin/ls").exists());
        let (path, contents) = planted_file(0);
        assert_eq!(std::fs::read(dir.path().join(path)).unwrap(), contents);
        let clean = tempfile::tempdir().unwrap();
        write_tree(clean.path(), 4, 20).unwrap();
        assert!(!clean.path().join(path).exists());
    }
}
