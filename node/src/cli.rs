//! `mig-node`'s command line: the agent and the relay.
//!
//! * `mig-node` with no arguments runs an agent with the configuration
//!   built into the binary (`MIG_NODE_CONFIG=agent.toml cargo build`);
//! * `mig-node agent|relay [--config FILE] [flags]` runs a node;
//! * `mig-node status --data-dir DIR` asks a running node how it is;
//! * `mig-node run ACTION.json` runs an action on this host only (MIG's
//!   `mig-agent -i`).
//!
//! Exit codes for `run`: 0 the action ran and every operation succeeded;
//! 1 the action was refused, or an operation failed or timed out; 2
//! anything else (bad arguments, unreadable files, bad configuration).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mig_keys::{load_acl, load_action, load_trust_store};
use std::time::Duration;

use crate::config::{ConfigFile, NodeConfig};
use crate::host::detect_attributes;
use crate::mesh::{self, MeshEvent, Role};
use crate::modules;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::Store;
use mig_proto::verify::{DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_VALIDITY_SECONDS};
use mig_proto::{
    AgentContext, AgentStatus, NoHistory, SignedAction, Target, Timestamp, VerifyPolicy, verify,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "mig-node", version, about = "The MIG mesh agent and relay")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// Every configuration key as a flag; flags override the file.
#[derive(clap::Args, Clone, Default)]
struct NodeFlags {
    /// A TOML configuration file (default: the one built into the binary).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A multiaddr to listen on (repeat for several).
    #[arg(long)]
    listen: Vec<String>,
    /// A bootstrap peer's multiaddr with /p2p/<id> (repeat for several).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// A trusted investigator key: a file, or the `mig-ed25519 ...` line.
    #[arg(long)]
    trust: Vec<String>,
    #[arg(long)]
    acl: Option<String>,
    /// A tag, as key=value (repeat for several).
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    #[arg(long)]
    root: Option<PathBuf>,
    /// A pre-shared key file: only nodes with the same key can connect.
    #[arg(long)]
    psk: Option<PathBuf>,
    #[arg(long)]
    max_validity: Option<String>,
    #[arg(long)]
    max_concurrent_actions: Option<usize>,
    /// An address others can dial this node at (relays).
    #[arg(long)]
    external_address: Vec<String>,
    /// Find peers on the local network by multicast DNS.
    #[arg(long)]
    mdns: bool,
    /// The name this agent reports (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Close a connection whose peer does not answer a ping in this long
    /// (and ping that often), e.g. 30s.
    #[arg(long)]
    peer_timeout: Option<String>,
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("'{text}' is not key=value"))
}

impl NodeFlags {
    fn config(&self) -> anyhow::Result<NodeConfig> {
        let base = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::parse(crate::config::EMBEDDED, std::path::Path::new("(built in)"))?,
        };
        let flags = ConfigFile {
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            bootstrap: self.bootstrap.clone(),
            trust: self.trust.clone(),
            acl: self.acl.clone(),
            tags: self.tags.iter().cloned().collect(),
            root: self.root.clone(),
            psk: self.psk.clone(),
            max_validity: self.max_validity.clone(),
            max_concurrent_actions: self.max_concurrent_actions,
            external_addresses: self.external_address.clone(),
            mdns: self.mdns.then_some(true),
            name: self.name.clone(),
            peer_timeout: self.peer_timeout.clone(),
        };
        Ok(NodeConfig::from_file(base.overlay(flags))?)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Text,
}

#[derive(Clone, Copy, ValueEnum)]
enum Show {
    Found,
    All,
}

#[derive(Subcommand)]
enum Command {
    /// Run an agent.
    Agent(NodeFlags),
    /// Run a relay: a well-known bootstrap peer that bridges segments. It
    /// prints its dialable address as the first line on standard output.
    Relay(NodeFlags),
    /// Print a running node's status (peers, counters, outbox).
    Status {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Run an action on this host and print the result.
    Run {
        /// The action (JSON).
        action: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// With --format text: only what was found, or everything.
        #[arg(long, value_enum, default_value = "found")]
        show: Show,
        /// Look at this directory as the filesystem root (a mounted image).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A trusted investigator public key (repeat for several).
        #[arg(long = "trust", required_unless_present = "unsigned")]
        trusted: Vec<PathBuf>,
        /// The ACL to check signatures against (default: any trusted key).
        #[arg(long)]
        acl: Option<PathBuf>,
        /// Run without checking signatures (for actions written locally).
        #[arg(long, conflicts_with_all = ["trusted", "acl"])]
        unsigned: bool,
        /// Keep the file-hash cache here, so unchanged files are not read
        /// twice.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List the modules this agent has.
    Modules,
}

/// Runs `mig-node` with these arguments (the first is the program name).
/// `mig demo` runs its relay and agents through this too, so that the
/// demo needs one binary.
pub fn main_with<I, T>(arguments: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mig-node: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Agent(NodeFlags::default())) {
        Command::Agent(flags) => run_node(&flags, Role::Agent),
        Command::Relay(flags) => run_node(&flags, Role::Relay),
        Command::Status { data_dir } => {
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let text = tokio
                .block_on(crate::status::query(&data_dir))
                .with_context(|| format!("no node answers in {}", data_dir.display()))?;
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Modules => {
            for name in modules::names() {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            action,
            format,
            show,
            root,
            trusted,
            acl,
            unsigned,
            data_dir,
        } => {
            let loaded = load_action(&action)?;
            let id = loaded.id()?;
            if !unsigned {
                let trust = load_trust_store(&trusted)?;
                let acl = match &acl {
                    Some(path) => load_acl(path)?,
                    None => trust.default_acl(),
                };
                let policy = VerifyPolicy {
                    trusted: &trust,
                    acl: &acl,
                    now: Timestamp::from_system_time(SystemTime::now()),
                    max_validity_seconds: DEFAULT_MAX_VALIDITY_SECONDS,
                    clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
                };
                let verdict = verify(&SignedAction::from_action(&loaded)?, &policy);
                if let Err(error) = verdict.outcome {
                    eprintln!("mig-node: refused action {id}: {error}");
                    return Ok(ExitCode::from(1));
                }
            }
            let store = match &data_dir {
                Some(dir) => Some(Arc::new(Store::open(dir)?)),
                None => None,
            };
            let attributes = detect_attributes("", Default::default());
            let target = Target::parse(&loaded.target).context("the action's target")?;
            if !target.matches(&AgentContext {
                attributes: &attributes,
                history: &NoHistory,
            }) {
                eprintln!(
                    "note: the target `{}` does not select this host; running it anyway",
                    loaded.target
                );
            }
            let config = RuntimeConfig {
                root: root.clone(),
                ..RuntimeConfig::default()
            };
            let runtime = Runtime::new(config, attributes, store)?;
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let result = tokio.block_on(async {
                let cancel = CancellationToken::new();
                let on_interrupt = cancel.clone();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("mig-node: interrupted, stopping the action");
                        on_interrupt.cancel();
                    }
                });
                runtime.run_action(id, &loaded, cancel).await
            });
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
                Format::Text => {
                    for (operation, module_result) in
                        loaded.operations.iter().zip(&result.operations)
                    {
                        let printer = modules::lookup(&operation.module);
                        let lines = match printer {
                            Some(module) => {
                                module.print(module_result, matches!(show, Show::Found))
                            }
                            None => module_result.errors.clone(),
                        };
                        for line in lines {
                            println!("{} {line}", result.agent.name);
                        }
                    }
                    let found = result.found_anything();
                    eprintln!(
                        "action {} {}: {}{}",
                        id.short(),
                        result.status.as_str(),
                        if found {
                            "found results"
                        } else {
                            "found nothing"
                        },
                        result
                            .reason
                            .as_deref()
                            .map(|reason| format!(" ({reason})"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(if result.status == AgentStatus::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn run_node(flags: &NodeFlags, role: Role) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIG_LOG")
                .unwrap_or_else(|_| "info,libp2p=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = flags.config()?;
    let keypair = crate::identity::load_or_create(&config.data_dir)?;
    let data_dir = config.data_dir.clone();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let shutdown = CancellationToken::new();
        let (mut node, task) = mesh::start(config, role, keypair, shutdown.clone()).await?;
        let mut events = std::mem::replace(&mut node.events, tokio::sync::mpsc::channel(1).1);
        let node = Arc::new(node);
        let status_shutdown = shutdown.clone();
        let status_node = node.clone();
        let status_dir = data_dir.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::status::serve(status_node, &status_dir, status_shutdown).await {
                tracing::warn!(%error, "no status socket");
            }
        });
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        // The first address goes to standard output, for scripts and people
        // to paste into bootstrap lists; a non-loopback one if there is one.
        let mut printed = false;
        let mut candidates = Vec::new();
        let mut deadline = None;
        loop {
            let wait = deadline.map_or(Duration::from_secs(3600), |until: tokio::time::Instant| until.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(MeshEvent::Listening(address)) => {
                        tracing::info!(%address, "listening");
                        candidates.push(address);
                        deadline.get_or_insert(tokio::time::Instant::now() + Duration::from_millis(300));
                    }
                    Some(MeshEvent::Report(_) | MeshEvent::Accepted { .. }) => {}
                    None => break,
                },
                () = tokio::time::sleep(wait), if deadline.is_some() && !printed => {
                    let best = candidates.iter().find(|address| !address.to_string().starts_with("/ip4/127.")).or(candidates.first());
                    if let Some(address) = best {
                        println!("{address}");
                        use std::io::Write;
                        let _ = std::io::stdout().flush();
                    }
                    printed = true;
                    deadline = None;
                }
            }
        }
        shutdown.cancel();
        let _ = task.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
