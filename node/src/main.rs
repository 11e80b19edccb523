//! `mig-node`: the agent. Today it has one command, `run`, which runs an
//! action on this host through the module runtime and prints the result
//! (MIG's `mig-agent -i`); the mesh roles follow.
//!
//! Exit codes: 0 the action ran and every operation succeeded; 1 the
//! action was refused, or an operation failed or timed out; 2 anything
//! else (bad arguments, unreadable files).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mig_keys::{load_acl, load_action, load_trust_store};
use mig_node::host::detect_attributes;
use mig_node::modules;
use mig_node::runtime::{Runtime, RuntimeConfig};
use mig_node::store::Store;
use mig_proto::verify::{DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_VALIDITY_SECONDS};
use mig_proto::{
    AgentContext, AgentStatus, NoHistory, SignedAction, Target, Timestamp, VerifyPolicy, verify,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "mig-node", version, about = "The MIG mesh agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mig-node: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
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
