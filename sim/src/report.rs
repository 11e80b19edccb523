//! The figures a run produces, the analytic gossip model they are set
//! against, and the three ways to show them: a table, JSON, an SVG reach
//! curve.

use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use mig_node::mesh::Status;
use mig_proto::ActionId;
use serde::Serialize;

use crate::link::Handshake;
use crate::scenario::Scenario;

/// The node's gossip mesh degree (gossipsub's `mesh_n`) and heartbeat.
pub const FANOUT: f64 = mig_node::mesh::GOSSIP_MESH as f64;
pub const HEARTBEAT_S: f64 = mig_node::mesh::GOSSIP_HEARTBEAT.as_secs_f64();

/// The model's time for a fraction `share` of `nodes` to have the message,
/// in seconds: the logistic epidemic Serf's convergence simulator plots,
/// `x(t) = 1 / (1 + (N - 1) e^(-F t / T))`, with fan-out F and gossip
/// interval T. Gossipsub pushes on receipt rather than per interval, which
/// is where the real protocol beats it.
pub fn model_seconds(nodes: usize, share: f64) -> f64 {
    let nodes = nodes.max(2) as f64;
    // "Everyone" is within half a node of all of them.
    let share = share.min(1.0 - 0.5 / nodes);
    let rate = FANOUT / HEARTBEAT_S;
    ((nodes - 1.0) * share / (1.0 - share)).ln() / rate
}

/// The model's share at time `seconds`.
pub fn model_share(nodes: usize, seconds: f64) -> f64 {
    let nodes = nodes.max(2) as f64;
    1.0 / (1.0 + (nodes - 1.0) * (-FANOUT / HEARTBEAT_S * seconds).exp())
}

/// p-th percentile (0 to 100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

fn spread(values: &[f64]) -> Spread {
    Spread {
        p50: percentile(values, 50.0),
        p99: percentile(values, 99.0),
        max: percentile(values, 100.0),
    }
}

/// Milliseconds after the publish for the action to reach a share of the
/// targeted agents (`None`: never reached).
#[derive(Debug, Clone, Serialize)]
pub struct Reach {
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p100_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub action_id: ActionId,
    /// Targeted agents in the fleet (present at some point of the action).
    pub targeted: usize,
    pub answered: usize,
    /// Their names (not in the JSON: it would grow with the fleet).
    #[serde(skip)]
    pub answered_agents: Vec<String>,
    pub found: usize,
    /// Targeted agents holding the planted file (each should be `found`).
    pub planted_targeted: usize,
    pub reach: Reach,
    /// The same shares in the analytic model, for this many agents.
    pub model_reach_ms: Reach,
    pub ack_ms: Spread,
    pub result_ms: Spread,
    /// Targeted agents that never answered, with why.
    pub silent: Vec<(String, String)>,
    /// Agents that answered although not targeted (must stay empty).
    pub answered_untargeted: Vec<String>,
    pub console_connections: usize,
    /// The console's own publish-to-last-report.
    pub console_elapsed_ms: u128,
    /// Reach times, sorted, for the curve.
    #[serde(skip)]
    pub reach_curve_ms: Vec<f64>,
}

pub struct ActionInputs {
    pub action_id: ActionId,
    pub targeted: usize,
    /// The targeted agents that answered, by name.
    pub answered: Vec<String>,
    pub found: usize,
    pub planted_targeted: usize,
    pub reach_ms: Vec<f64>,
    pub ack_ms: Vec<f64>,
    pub result_ms: Vec<f64>,
    pub silent: Vec<(String, String)>,
    pub answered_untargeted: Vec<String>,
    pub console_connections: usize,
    pub console_elapsed_ms: u128,
}

pub fn action_report(inputs: ActionInputs) -> ActionReport {
    let mut curve = inputs.reach_ms.clone();
    curve.sort_by(f64::total_cmp);
    let reached = |share: f64| -> Option<f64> {
        let needed = (share * inputs.targeted as f64).ceil() as usize;
        if needed == 0 {
            return Some(0.0);
        }
        curve.get(needed - 1).copied()
    };
    let model = |share: f64| Some(model_seconds(inputs.targeted, share) * 1000.0);
    ActionReport {
        action_id: inputs.action_id,
        targeted: inputs.targeted,
        answered: inputs.answered.len(),
        answered_agents: inputs.answered,
        found: inputs.found,
        planted_targeted: inputs.planted_targeted,
        reach: Reach {
            p50_ms: reached(0.5),
            p90_ms: reached(0.9),
            p99_ms: reached(0.99),
            p100_ms: reached(1.0),
        },
        model_reach_ms: Reach {
            p50_ms: model(0.5),
            p90_ms: model(0.9),
            p99_ms: model(0.99),
            p100_ms: model(1.0),
        },
        ack_ms: spread(&inputs.ack_ms),
        result_ms: spread(&inputs.result_ms),
        silent: inputs.silent,
        answered_untargeted: inputs.answered_untargeted,
        console_connections: inputs.console_connections,
        console_elapsed_ms: inputs.console_elapsed_ms,
        reach_curve_ms: curve,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    pub sent_mean: f64,
    pub sent_max: u64,
    pub received_mean: f64,
    pub received_max: u64,
    /// Report parcels passed on towards a console.
    pub reports_forwarded_mean: f64,
    pub reports_forwarded_max: u64,
    /// Reports passed on whose routing fields a hop set back to the
    /// action's, all nodes together (none, in an honest fleet).
    pub reports_rerouted: u64,
    /// Acks made (runs still going `ACK_HOLD` after they could report),
    /// all nodes together.
    pub acks_sent: u64,
    /// Acks made but not sent because the result was stored first, all
    /// nodes together.
    pub acks_superseded: u64,
    /// Report deliveries to a next hop that failed, all nodes together.
    pub deliveries_failed: u64,
    /// Report deliveries received whose answer was never sent or lost, all
    /// nodes together (the sender waits for its request timeout, then
    /// retries).
    pub answers_failed: u64,
    /// Connections closed because the peer missed a ping (on a saturated
    /// machine, a peer too busy to answer in `peer_timeout` looks dead).
    pub connections_dead: u64,
    /// Gossip messages received (every copy) and sent.
    pub gossip_received_mean: f64,
    pub gossip_received_max: u64,
    pub gossip_sent_mean: f64,
    pub gossip_sent_max: u64,
    /// Copies of a gossip message already seen.
    pub gossip_duplicates_mean: f64,
    pub gossip_duplicates_max: u64,
}

fn traffic(statuses: &[&Status]) -> Traffic {
    let count = statuses.len().max(1) as f64;
    let total =
        |field: fn(&Status) -> u64| statuses.iter().map(|status| field(status)).sum::<u64>();
    let mean = |field: fn(&Status) -> u64| total(field) as f64 / count;
    let max = |field: fn(&Status) -> u64| {
        statuses
            .iter()
            .map(|status| field(status))
            .max()
            .unwrap_or(0)
    };
    Traffic {
        sent_mean: mean(|status| status.bytes_sent),
        sent_max: max(|status| status.bytes_sent),
        received_mean: mean(|status| status.bytes_received),
        received_max: max(|status| status.bytes_received),
        reports_forwarded_mean: mean(|status| status.reports_forwarded),
        reports_forwarded_max: max(|status| status.reports_forwarded),
        reports_rerouted: total(|status| status.reports_rerouted),
        acks_sent: total(|status| status.acks_sent),
        acks_superseded: total(|status| status.acks_superseded),
        deliveries_failed: total(|status| status.deliveries_failed),
        answers_failed: total(|status| status.answers_failed.values().sum()),
        connections_dead: total(|status| status.connections_dead),
        gossip_received_mean: mean(|status| status.gossip_received),
        gossip_received_max: max(|status| status.gossip_received),
        gossip_sent_mean: mean(|status| status.gossip_sent),
        gossip_sent_max: max(|status| status.gossip_sent),
        gossip_duplicates_mean: mean(|status| status.gossip_duplicates),
        gossip_duplicates_max: max(|status| status.gossip_duplicates),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: Scenario,
    pub network_model: String,
    pub modules: String,
    pub formation_s: f64,
    pub wall_s: f64,
    /// Growth of this process's resident memory while the fleet formed,
    /// per node (relays and the console included).
    pub memory_per_node_bytes: f64,
    pub resident_after_formation_bytes: u64,
    /// The machine's cores.
    pub cores: usize,
    /// Cores this process kept busy while the formed fleet sat idle (the
    /// settle period), and from the first publish until the last action
    /// was collected.
    pub idle_cores: f64,
    pub action_cores: f64,
    pub actions: Vec<ActionReport>,
    /// Per agent, over the whole run.
    pub agent_traffic: Traffic,
    /// Per relay, over the whole run.
    pub relay_traffic: Traffic,
}

pub struct Inputs {
    pub scenario: Scenario,
    pub formation: Duration,
    pub memory_per_node: f64,
    pub resident_after_formation: u64,
    pub idle_cores: f64,
    pub action_cores: f64,
    pub actions: Vec<ActionReport>,
    pub agent_status: Vec<(usize, Status)>,
    pub relay_status: Vec<Status>,
    pub wall: Duration,
}

/// The network as simulated, links authenticated by `handshake`.
pub fn network_model(handshake: Handshake) -> String {
    format!(
        "libp2p in-memory transport with {} and the real Yamux; segments reach each other only through the relays' segment; shaping on bytes into each node by its segment's profile: one-way latency, a FIFO at the bandwidth, loss as a retransmission delay of max(200 ms, 2 x latency) per lost chunk",
        handshake.describe()
    )
}

pub fn assemble(inputs: Inputs) -> RunReport {
    let agents: Vec<&Status> = inputs
        .agent_status
        .iter()
        .map(|(_, status)| status)
        .collect();
    let relays: Vec<&Status> = inputs.relay_status.iter().collect();
    let modules = match inputs.scenario.action.module.as_str() {
        "agentinfo" => "agentinfo (a cheap real module)".to_owned(),
        _ => format!(
            "file: the seed example's SHA-256 sweep, for real, over each agent's generated tree of {} files",
            inputs.scenario.action.tree_files
        ),
    };
    RunReport {
        network_model: network_model(inputs.scenario.handshake),
        modules,
        formation_s: inputs.formation.as_secs_f64(),
        wall_s: inputs.wall.as_secs_f64(),
        memory_per_node_bytes: inputs.memory_per_node,
        resident_after_formation_bytes: inputs.resident_after_formation,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        idle_cores: inputs.idle_cores,
        action_cores: inputs.action_cores,
        actions: inputs.actions,
        agent_traffic: traffic(&agents),
        relay_traffic: traffic(&relays),
        scenario: inputs.scenario,
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_owned(), |ms| format!("{ms:.0} ms"))
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

impl RunReport {
    /// The report as a terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["fleet", ""]);
        table.add_row([
            "agents / relays / seed".to_owned(),
            format!(
                "{} / {} / {}",
                self.scenario.nodes, self.scenario.relays, self.scenario.seed
            ),
        ]);
        table.add_row([
            "mesh formation".to_owned(),
            format!("{:.1} s", self.formation_s),
        ]);
        table.add_row(["wall time".to_owned(), format!("{:.1} s", self.wall_s)]);
        table.add_row([
            "memory per node".to_owned(),
            format!("{:.2} MiB", self.memory_per_node_bytes / 1_048_576.0),
        ]);
        table.add_row([
            "CPU idle (settle) / during the actions".to_owned(),
            format!(
                "{:.2} / {:.2} of {} cores",
                self.idle_cores, self.action_cores, self.cores
            ),
        ]);
        table.add_row([
            "agent bytes sent / received (mean, max)".to_owned(),
            format!(
                "{} / {} ({} / {})",
                kib(self.agent_traffic.sent_mean),
                kib(self.agent_traffic.received_mean),
                kib(self.agent_traffic.sent_max as f64),
                kib(self.agent_traffic.received_max as f64)
            ),
        ]);
        table.add_row([
            "relay bytes sent / received (mean)".to_owned(),
            format!(
                "{} / {}",
                kib(self.relay_traffic.sent_mean),
                kib(self.relay_traffic.received_mean)
            ),
        ]);
        table.add_row([
            "reports forwarded per agent (mean, max); acks sent, superseded by results".to_owned(),
            format!(
                "{:.1}, {}; {}, {}",
                self.agent_traffic.reports_forwarded_mean,
                self.agent_traffic.reports_forwarded_max,
                self.agent_traffic.acks_sent,
                self.agent_traffic.acks_superseded
            ),
        ]);
        table.add_row([
            "gossip messages per agent received / sent / duplicates (mean, max)".to_owned(),
            format!(
                "{:.1} / {:.1} / {:.1} ({} / {} / {})",
                self.agent_traffic.gossip_received_mean,
                self.agent_traffic.gossip_sent_mean,
                self.agent_traffic.gossip_duplicates_mean,
                self.agent_traffic.gossip_received_max,
                self.agent_traffic.gossip_sent_max,
                self.agent_traffic.gossip_duplicates_max
            ),
        ]);
        table.add_row([
            "relay gossip messages received / sent / duplicates (mean)".to_owned(),
            format!(
                "{:.1} / {:.1} / {:.1}",
                self.relay_traffic.gossip_received_mean,
                self.relay_traffic.gossip_sent_mean,
                self.relay_traffic.gossip_duplicates_mean
            ),
        ]);
        table.add_row([
            "report deliveries failed (agents, relays)".to_owned(),
            format!(
                "{}, {}",
                self.agent_traffic.deliveries_failed, self.relay_traffic.deliveries_failed
            ),
        ]);
        table.add_row([
            "report deliveries not answered (agents, relays)".to_owned(),
            format!(
                "{}, {}",
                self.agent_traffic.answers_failed, self.relay_traffic.answers_failed
            ),
        ]);
        table.add_row([
            "connections closed as dead (agents, relays)".to_owned(),
            format!(
                "{}, {}",
                self.agent_traffic.connections_dead, self.relay_traffic.connections_dead
            ),
        ]);
        out.push_str(&table.to_string());
        out.push('\n');
        for (number, action) in self.actions.iter().enumerate() {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header([
                format!("action {} ({})", number + 1, action.action_id.short()),
                "measured".into(),
                "model".into(),
            ]);
            table.add_row([
                "targeted / answered / found".to_owned(),
                format!(
                    "{} / {} / {} (planted {})",
                    action.targeted, action.answered, action.found, action.planted_targeted
                ),
                String::new(),
            ]);
            for (label, measured, model) in [
                (
                    "reach 50%",
                    action.reach.p50_ms,
                    action.model_reach_ms.p50_ms,
                ),
                (
                    "reach 90%",
                    action.reach.p90_ms,
                    action.model_reach_ms.p90_ms,
                ),
                (
                    "reach 99%",
                    action.reach.p99_ms,
                    action.model_reach_ms.p99_ms,
                ),
                (
                    "reach 100%",
                    action.reach.p100_ms,
                    action.model_reach_ms.p100_ms,
                ),
            ] {
                table.add_row([label.to_owned(), ms(measured), ms(model)]);
            }
            table.add_row([
                "acks home p50 / p99 / max".to_owned(),
                format!(
                    "{} / {} / {}",
                    ms(action.ack_ms.p50),
                    ms(action.ack_ms.p99),
                    ms(action.ack_ms.max)
                ),
                String::new(),
            ]);
            table.add_row([
                "results home p50 / p99 / max".to_owned(),
                format!(
                    "{} / {} / {}",
                    ms(action.result_ms.p50),
                    ms(action.result_ms.p99),
                    ms(action.result_ms.max)
                ),
                String::new(),
            ]);
            table.add_row([
                "console connections".to_owned(),
                action.console_connections.to_string(),
                String::new(),
            ]);
            out.push_str(&table.to_string());
            out.push('\n');
            for (name, why) in action.silent.iter().take(20) {
                out.push_str(&format!("  silent: {name}: {why}\n"));
            }
            if action.silent.len() > 20 {
                out.push_str(&format!(
                    "  ... and {} more silent agents\n",
                    action.silent.len() - 20
                ));
            }
            for name in &action.answered_untargeted {
                out.push_str(&format!("  ANSWERED WITHOUT BEING TARGETED: {name}\n"));
            }
        }
        out.push_str(&format!("network: {}\nmodules: {}\nmodel: logistic epidemic, fan-out {FANOUT}, interval {HEARTBEAT_S} s\n", self.network_model, self.modules));
        out
    }

    /// The reach curves (measured, and the model) as an SVG picture.
    pub fn svg(&self) -> Result<String, String> {
        use plotters::prelude::*;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
            root.fill(&WHITE).map_err(|error| error.to_string())?;
            let longest = self
                .actions
                .iter()
                .flat_map(|action| action.reach_curve_ms.last().copied())
                .fold(0.0f64, f64::max)
                .max(
                    self.actions
                        .first()
                        .and_then(|action| action.model_reach_ms.p100_ms)
                        .unwrap_or(0.0),
                )
                .max(1.0);
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!("mig-sim: reach over time, {} agents", self.scenario.nodes),
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..longest * 1.05, 0.0..100.0)
                .map_err(|error| error.to_string())?;
            chart
                .configure_mesh()
                .x_desc("ms after the publish")
                .y_desc("% of targeted agents")
                .draw()
                .map_err(|error| error.to_string())?;
            for (number, action) in self.actions.iter().enumerate() {
                let total = action.targeted.max(1) as f64;
                let points = action
                    .reach_curve_ms
                    .iter()
                    .enumerate()
                    .map(|(index, ms)| (*ms, (index + 1) as f64 * 100.0 / total));
                let color = Palette99::pick(number).to_rgba();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(|error| error.to_string())?
                    .label(format!("action {} (measured)", number + 1))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            }
            if let Some(action) = self.actions.first() {
                let targeted = action.targeted;
                let model = (0..=200).map(|step| {
                    let ms = longest * 1.05 * f64::from(step) / 200.0;
                    (ms, model_share(targeted, ms / 1000.0) * 100.0)
                });
                chart
                    .draw_series(LineSeries::new(model, BLACK.stroke_width(1)))
                    .map_err(|error| error.to_string())?
                    .label("logistic model")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|error| error.to_string())?;
            root.present().map_err(|error| error.to_string())?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 50.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_model_is_the_logistic_curve_and_its_inverse() {
        for nodes in [10, 1000, 20_000] {
            // Shares past 1 - 1/(2N) count as everyone.
            for share in [0.5, 0.9, 0.99]
                .into_iter()
                .filter(|share| *share < 1.0 - 0.5 / nodes as f64)
            {
                let seconds = model_seconds(nodes, share);
                assert!((model_share(nodes, seconds) - share).abs() < 1e-9);
            }
            assert!(model_seconds(nodes, 1.0) > model_seconds(nodes, 0.9));
        }
        // Half of 1,000 nodes: ln(999) / (fan-out / heartbeat) s.
        assert_eq!((FANOUT, HEARTBEAT_S), (4.0, 0.7));
        assert!((model_seconds(1000, 0.5) - 999f64.ln() / (4.0 / 0.7)).abs() < 1e-9);
    }
}
