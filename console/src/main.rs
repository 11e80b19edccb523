//! `mig`: the investigator's console. Today: `mig run`, which launches one
//! action on the mesh and prints every agent's answer.
//!
//! Exit codes: 0 every agent that acked answered; 1 some stayed silent or
//! the action was refused by all; 2 errors (bad arguments, no peers).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use libp2p::Multiaddr;
use mig_console::launch::{LaunchOptions, launch};
use mig_keys::{GivenPassphrase, load_action, load_secret_key};
use mig_proto::time::parse_duration_seconds;
use zeroize_free::read_passphrase;

mod zeroize_free {
    //! Reading a passphrase file without keeping copies around.
    pub fn read_passphrase(path: &std::path::Path) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(path)?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned())
    }
}

#[derive(Parser)]
#[command(name = "mig", version, about = "The MIG mesh console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Show what an action this console launched brought back (from the
    /// console's history); with --follow, rejoin the mesh and collect the
    /// rest (reports wait in the agents' outboxes while the console is away).
    Results {
        action_id: mig_proto::ActionId,
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        #[arg(long)]
        mdns: bool,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: i64,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/0")]
        listen: Vec<Multiaddr>,
        #[arg(long)]
        psk: Option<PathBuf>,
    },
    /// Stop an action: agents still running it stop and report
    /// `cancelled`; agents that have not started never start.
    Cancel {
        /// The action id (64 hex characters).
        action_id: mig_proto::ActionId,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        #[arg(long, required_unless_present = "mdns")]
        bootstrap: Vec<Multiaddr>,
        #[arg(long)]
        mdns: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/0")]
        listen: Vec<Multiaddr>,
        #[arg(long)]
        psk: Option<PathBuf>,
    },
    /// Launch an action on the mesh and collect the agents' answers.
    Run {
        /// The action (JSON); signed here unless it already is.
        action: PathBuf,
        /// The investigator's secret key.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// A bootstrap peer (multiaddr with /p2p/<id>), repeatable.
        #[arg(long, required_unless_present = "mdns")]
        bootstrap: Vec<Multiaddr>,
        /// Find agents on the local network by multicast DNS (no relay).
        #[arg(long)]
        mdns: bool,
        /// Keep collecting at least this long after publishing (agents that
        /// come online while the action is valid catch up and answer).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        collect_for: i64,
        /// Stop waiting for answers after this long.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: i64,
        /// The validity window of an unsigned action.
        #[arg(short = 'e', long, default_value = "300s", value_parser = parse_duration)]
        expire: i64,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// The console's data directory (its identity); default ~/.mig.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Addresses to listen on (agents may dial back here).
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/0")]
        listen: Vec<Multiaddr>,
        /// The mesh's pre-shared key file, if it has one.
        #[arg(long)]
        psk: Option<PathBuf>,
    },
}

fn load_key(
    path: &std::path::Path,
    passphrase_file: Option<&std::path::Path>,
) -> anyhow::Result<mig_keys::SecretKey> {
    let passphrase = match passphrase_file {
        Some(file) => Some(read_passphrase(file)?),
        None => std::env::var("MIG_KEY_PASSPHRASE").ok(),
    };
    Ok(load_secret_key(
        path,
        &GivenPassphrase(passphrase.map(Into::into)),
    )?)
}

fn console_data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir),
        None => Ok(PathBuf::from(
            std::env::var("HOME").context("HOME is not set; give --data-dir")?,
        )
        .join(".mig")),
    }
}

/// How a console joins the mesh; `run` adds its own fields.
fn mesh_options(
    data_dir: Option<PathBuf>,
    bootstrap: Vec<Multiaddr>,
    listen: Vec<Multiaddr>,
    psk: Option<&std::path::Path>,
    mdns: bool,
    timeout: Duration,
) -> anyhow::Result<LaunchOptions> {
    Ok(LaunchOptions {
        data_dir: console_data_dir(data_dir)?,
        bootstrap,
        listen,
        psk: psk.map(mig_node::config::read_psk).transpose()?,
        timeout,
        expiry_seconds: 0,
        mdns,
        collect_for: Duration::ZERO,
        published: None,
        environment: Default::default(),
        expect_answers: None,
    })
}

/// The console is one node; two worker threads are plenty.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn parse_duration(text: &str) -> Result<i64, String> {
    parse_duration_seconds(text).map_err(|error| error.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mig: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIG_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Command::Results {
        action_id,
        follow,
        bootstrap,
        mdns,
        timeout,
        format,
        data_dir,
        listen,
        psk,
    } = cli.command
    {
        if follow && bootstrap.is_empty() && !mdns {
            anyhow::bail!("--follow needs --bootstrap or --mdns to rejoin the mesh");
        }
        let options = mesh_options(
            data_dir,
            bootstrap,
            listen,
            psk.as_deref(),
            mdns,
            Duration::from_secs(u64::try_from(timeout).unwrap_or(30)),
        )?;
        let outcome =
            runtime()?.block_on(mig_console::launch::results(action_id, follow, options))?;
        return print_outcome(&outcome, format);
    }
    if let Command::Cancel {
        action_id,
        key,
        passphrase_file,
        bootstrap,
        mdns,
        data_dir,
        listen,
        psk,
    } = cli.command
    {
        let key = load_key(&key, passphrase_file.as_deref())?;
        let options = mesh_options(
            data_dir,
            bootstrap,
            listen,
            psk.as_deref(),
            mdns,
            Duration::from_secs(30),
        )?;
        runtime()?.block_on(mig_console::launch::cancel(action_id, &key, options))?;
        eprintln!("cancel for action {action_id} published");
        return Ok(ExitCode::SUCCESS);
    }
    let Command::Run {
        action,
        key,
        passphrase_file,
        mdns,
        collect_for,
        bootstrap,
        timeout,
        expire,
        format,
        data_dir,
        listen,
        psk,
    } = cli.command
    else {
        unreachable!("cancel returned above");
    };
    let loaded = load_action(&action)?;
    let key = match &key {
        Some(path) => Some(load_key(path, passphrase_file.as_deref())?),
        None => None,
    };
    let (tell_published, published) = std::sync::mpsc::channel();
    let announcer = std::thread::spawn(move || {
        if let Ok(id) = published.recv() {
            eprintln!(
                "action {id} published; stop it with: mig cancel {id} --key KEY --bootstrap ADDRESS"
            );
        }
    });
    let options = LaunchOptions {
        expiry_seconds: expire,
        collect_for: Duration::from_secs(u64::try_from(collect_for).unwrap_or(0)),
        published: Some(tell_published),
        ..mesh_options(
            data_dir,
            bootstrap,
            listen,
            psk.as_deref(),
            mdns,
            Duration::from_secs(u64::try_from(timeout).unwrap_or(30)),
        )?
    };
    let outcome = runtime()?.block_on(launch(loaded, key.as_ref(), options))?;
    let _ = announcer.join();
    print_outcome(&outcome, format)
}

/// Prints an outcome: MIG's printer lines per agent and a summary, or JSON.
/// The exit code: 0 if every agent that acked answered, 1 otherwise.
fn print_outcome(
    outcome: &mig_console::launch::LaunchOutcome,
    format: Format,
) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(outcome)?),
        Format::Text => {
            for agent in &outcome.agents {
                let name = &agent.attributes.name;
                if let Some(reason) = &agent.rejected {
                    println!("{name} rejected: {reason}");
                    continue;
                }
                let Some(result) = &agent.result else {
                    println!("{name} acked but sent no result");
                    continue;
                };
                for (operation, module_result) in
                    outcome.action.operations.iter().zip(&result.operations)
                {
                    let lines = match mig_node::modules::lookup(&operation.module) {
                        Some(module) => module.print(module_result, true),
                        None => Vec::new(),
                    };
                    for line in lines {
                        println!("{name} {line}");
                    }
                }
                if result.status != mig_proto::AgentStatus::Success {
                    println!(
                        "{name} {}: {}",
                        result.status.as_str(),
                        result.reason.as_deref().unwrap_or("")
                    );
                }
            }
            let summary = &outcome.summary;
            eprintln!(
                "action {}: {} acked, {} answered, {} found, {} failed, {} rejected, {} silent ({} ms from publish to last report)",
                outcome.action_id.short(),
                summary.acked,
                summary.answered,
                summary.found,
                summary.failed,
                summary.rejected,
                summary.silent,
                outcome.elapsed_ms
            );
            if !outcome.reports_dropped.is_empty() {
                let reasons: Vec<String> = outcome
                    .reports_dropped
                    .iter()
                    .map(|(reason, count)| format!("{count} {reason}"))
                    .collect();
                eprintln!("reports refused: {}", reasons.join(", "));
            }
            for peer in &outcome.graylisted_peers {
                eprintln!("graylisted for misbehaving: {peer}");
            }
        }
    }
    Ok(if outcome.summary.silent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
