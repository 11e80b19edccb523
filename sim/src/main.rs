//! `mig-sim`: runs a simulated fleet of real nodes and reports how fast an
//! action spreads and comes home, what it costs each node and relay, and
//! who stayed silent and why.
//!
//! ```text
//! mig-sim --nodes 1000                      # one flat segment, one relay
//! mig-sim --nodes 300 --segments 3 --latency-ms 20 --svg reach.svg
//! mig-sim --scenario sim/scenarios/partition.toml --json
//! mig-sim --nodes 100,300,1000              # a sweep: how each figure grows
//! ```

/// The agent's allocator, as in `mig-node`'s `main.rs` (docs/decisions/0009).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use mig_sim::link::{Handshake, LinkProfile};
use mig_sim::report::RunReport;
use mig_sim::scenario::{Churn, Partition, Scenario, SegmentSpec};

#[derive(Parser)]
#[command(
    name = "mig-sim",
    version,
    about = "Simulate a MIG mesh fleet with the real node code"
)]
struct Cli {
    /// A scenario file (TOML); the flags below override it.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Agents; a comma-separated list runs a sweep.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<usize>,
    #[arg(long)]
    relays: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Split the agents into this many segments (equal shares), joined
    /// only through the relays.
    #[arg(long)]
    segments: Option<usize>,
    /// One-way latency into the agents of every segment.
    #[arg(long)]
    latency_ms: Option<f64>,
    /// Chance per chunk of a retransmission delay.
    #[arg(long)]
    loss: Option<f64>,
    #[arg(long)]
    bandwidth_kbps: Option<f64>,
    /// How nodes authenticate their links: libp2p's plaintext handshake
    /// (the default, lighter) or the real Noise.
    #[arg(long, value_enum)]
    handshake: Option<Handshake>,
    /// `file` (the seed example's sweep over small trees) or `agentinfo`.
    #[arg(long)]
    module: Option<String>,
    /// The action's target (default: the seed example's).
    #[arg(long)]
    target: Option<String>,
    /// Actions published one after another.
    #[arg(long)]
    actions: Option<usize>,
    /// Churn: agents joining and leaving per second for a while after the
    /// publish, as JOIN,LEAVE,SECONDS.
    #[arg(long, value_delimiter = ',', num_args = 3)]
    churn: Option<Vec<f64>>,
    /// Cut a segment off at AT seconds after the publish and heal it at
    /// HEAL: SEGMENT,AT,HEAL.
    #[arg(long)]
    partition: Option<String>,
    /// Idle seconds between the mesh forming and the first publish.
    #[arg(long)]
    settle_s: Option<f64>,
    /// Print the report as JSON (one object per run) instead of tables.
    #[arg(long)]
    json: bool,
    /// Write the reach curve to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn scenario_from(cli: &Cli) -> anyhow::Result<Scenario> {
    let mut scenario = match &cli.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Scenario::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => Scenario::default(),
    };
    if let Some(relays) = cli.relays {
        scenario.relays = relays;
    }
    if let Some(settle) = cli.settle_s {
        scenario.settle_s = settle;
    }
    if let Some(handshake) = cli.handshake {
        scenario.handshake = handshake;
    }
    if let Some(seed) = cli.seed {
        scenario.seed = seed;
    }
    let link = LinkProfile {
        latency_ms: cli.latency_ms.unwrap_or_default(),
        loss: cli.loss.unwrap_or_default(),
        bandwidth_kbps: cli.bandwidth_kbps.unwrap_or_default(),
    };
    if let Some(count) = cli.segments {
        scenario.segments = (1..=count.clamp(1, 64))
            .map(|number| SegmentSpec {
                name: format!("s{number}"),
                share: 1.0,
                link,
            })
            .collect();
    } else if cli.latency_ms.is_some() || cli.loss.is_some() || cli.bandwidth_kbps.is_some() {
        if scenario.segments.is_empty() {
            scenario.segments.push(SegmentSpec {
                name: "flat".into(),
                share: 1.0,
                link,
            });
        } else {
            for segment in &mut scenario.segments {
                segment.link = link;
            }
        }
    }
    if let Some(module) = &cli.module {
        scenario.action.module.clone_from(module);
    }
    if let Some(target) = &cli.target {
        scenario.action.target.clone_from(target);
    }
    if let Some(actions) = cli.actions {
        scenario.action.count = actions;
    }
    if let Some(churn) = &cli.churn {
        scenario.churn = Some(Churn {
            join_per_s: churn[0],
            leave_per_s: churn[1],
            for_s: churn[2],
        });
        scenario.collect_for_s = scenario.collect_for_s.max(churn[2] + 3.0);
    }
    if let Some(partition) = &cli.partition {
        let parts: Vec<&str> = partition.split(',').collect();
        let [segment, at, heal] = parts.as_slice() else {
            anyhow::bail!("--partition is SEGMENT,AT,HEAL (seconds after the publish)");
        };
        let heal_at_s: f64 = heal.parse().context("--partition HEAL")?;
        scenario.partition = Some(Partition {
            segment: (*segment).to_owned(),
            at_s: at.parse().context("--partition AT")?,
            heal_at_s,
        });
        scenario.collect_for_s = scenario.collect_for_s.max(heal_at_s + 5.0);
    }
    scenario.check()?;
    Ok(scenario)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&cli) {
        Ok(complete) => {
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("mig-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs every requested size; true when every targeted agent answered and
/// no other did.
fn run(cli: &Cli) -> anyhow::Result<bool> {
    let base = scenario_from(cli)?;
    let sizes = if cli.nodes.is_empty() {
        vec![base.nodes]
    } else {
        cli.nodes.clone()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut reports: Vec<RunReport> = Vec::new();
    for nodes in sizes {
        let scenario = Scenario {
            nodes,
            ..base.clone()
        };
        scenario.check()?;
        let report = runtime.block_on(mig_sim::fleet::run(&scenario, !cli.quiet))?;
        if cli.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{}", report.table());
        }
        reports.push(report);
    }
    if let (Some(path), Some(report)) = (&cli.svg, reports.last()) {
        let svg = report.svg().map_err(anyhow::Error::msg)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        if !cli.quiet {
            eprintln!("reach curve written to {}", path.display());
        }
    }
    if reports.len() > 1 && !cli.json {
        println!("{}", sweep_table(&reports));
    }
    Ok(reports.iter().all(|report| {
        report.actions.iter().all(|action| {
            action.answered_untargeted.is_empty()
                && action
                    .silent
                    .iter()
                    .all(|(_, why)| why.starts_with("left the fleet"))
        })
    }))
}

/// How each figure grows with the number of agents.
fn sweep_table(reports: &[RunReport]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "agents",
        "formation",
        "reach 99%",
        "results max",
        "MiB/node",
        "KiB/agent sent",
        "KiB/relay sent",
        "CPU idle / action",
        "wall",
    ]);
    for (number, report) in reports.iter().enumerate() {
        let action = report.actions.first();
        let ms =
            |value: Option<f64>| value.map_or_else(|| "never".into(), |ms| format!("{ms:.0} ms"));
        table.add_row([
            report.scenario.nodes.to_string(),
            format!("{:.1} s", report.formation_s),
            ms(action.and_then(|action| action.reach.p99_ms)),
            ms(action.and_then(|action| action.result_ms.max)),
            // Later runs reuse memory the allocator kept from earlier ones.
            format!(
                "{:.2}{}",
                report.memory_per_node_bytes / 1_048_576.0,
                if number == 0 { "" } else { " *" }
            ),
            format!("{:.1}", report.agent_traffic.sent_mean / 1024.0),
            format!("{:.1}", report.relay_traffic.sent_mean / 1024.0),
            format!("{:.2} / {:.2}", report.idle_cores, report.action_cores),
            format!("{:.0} s", report.wall_s),
        ]);
    }
    format!(
        "{table}\n* memory per node after the first run of a sweep is low: the process reuses what earlier runs freed; run one size alone to measure it"
    )
}
