//! What to simulate, read from a TOML scenario file or built from flags,
//! and the layout a seed draws from it: each node's segment, attributes,
//! whether it holds the file the action looks for, and the churn and
//! partition schedule. The same scenario and seed give the same layout.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::link::{Handshake, LinkProfile};

/// Largest fleet a scenario may ask for.
pub const MAX_NODES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Makes a run repeatable.
    pub seed: u64,
    /// Agents at the start.
    pub nodes: usize,
    /// Relays (the only nodes every segment reaches).
    pub relays: usize,
    /// The agents' segments; one flat segment when empty.
    pub segments: Vec<SegmentSpec>,
    /// The relays' links.
    pub relay_link: LinkProfile,
    /// How nodes authenticate their links.
    pub handshake: Handshake,
    /// The segment the console sits in (by name); the relays' when empty.
    pub console_segment: String,
    /// Attribute distributions.
    pub attributes: AttributeSpec,
    pub action: ActionSpec,
    pub churn: Option<Churn>,
    pub partition: Option<Partition>,
    pub relay_failure: Option<RelayFailure>,
    /// Longest wait for the mesh to form, in seconds.
    pub formation_timeout_s: f64,
    /// Idle time between the mesh forming and the first publish, in
    /// seconds (discovery settles; links are trimmed to their target).
    pub settle_s: f64,
    /// The console gives up collecting after this long, in seconds.
    pub collect_timeout_s: f64,
    /// The console keeps collecting at least this long, in seconds (for
    /// late joiners and healed partitions).
    pub collect_for_s: f64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 50,
            relays: 1,
            segments: Vec::new(),
            relay_link: LinkProfile::default(),
            handshake: Handshake::default(),
            console_segment: String::new(),
            attributes: AttributeSpec::default(),
            action: ActionSpec::default(),
            churn: None,
            partition: None,
            relay_failure: None,
            formation_timeout_s: 120.0,
            settle_s: 5.0,
            collect_timeout_s: 60.0,
            collect_for_s: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    pub name: String,
    /// This segment's share of the agents (shares are normalised).
    #[serde(default = "one")]
    pub share: f64,
    #[serde(flatten)]
    pub link: LinkProfile,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeSpec {
    /// Operating systems and their weights.
    pub os: BTreeMap<String, f64>,
    /// Tags: for each tag name, values and their weights.
    pub tags: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Default for AttributeSpec {
    fn default() -> Self {
        Self {
            os: BTreeMap::from([
                ("linux".into(), 0.8),
                ("darwin".into(), 0.15),
                ("windows".into(), 0.05),
            ]),
            tags: BTreeMap::from([(
                "operator".into(),
                BTreeMap::from([("IT".into(), 0.7), ("ops".into(), 0.3)]),
            )]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionSpec {
    /// The target expression (the seed example's own when empty:
    /// `agents.os = 'linux'`... see `fleet.rs`).
    pub target: String,
    /// `file`: the seed example's IOC sweep over each node's small
    /// generated tree; `agentinfo`: a cheap real module, for very large
    /// runs.
    pub module: String,
    /// Share of agents whose tree holds the planted file.
    pub planted_share: f64,
    /// Actions published, one after another.
    pub count: usize,
    /// Files in each agent's generated tree.
    pub tree_files: usize,
}

impl Default for ActionSpec {
    fn default() -> Self {
        Self {
            target: String::new(),
            module: "file".into(),
            planted_share: 0.05,
            count: 1,
            tree_files: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Agents leaving per second, from the publish on.
    #[serde(default)]
    pub leave_per_s: f64,
    /// New agents joining per second, from the publish on.
    #[serde(default)]
    pub join_per_s: f64,
    /// For how long, in seconds.
    pub for_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub segment: String,
    /// Seconds after the publish (negative: before it).
    pub at_s: f64,
    pub heal_at_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayFailure {
    /// Which relay (index), stopped at `at_s` after the publish.
    #[serde(default)]
    pub relay: usize,
    pub at_s: f64,
    /// Started again (same identity, same address), if given.
    pub restart_at_s: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read the scenario: {0}")]
    Read(String),
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self =
            toml::from_str(text).map_err(|error| ScenarioError::Read(error.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    pub fn check(&self) -> Result<(), ScenarioError> {
        let invalid = |message: String| Err(ScenarioError::Invalid(message));
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return invalid(format!("nodes must be 1 to {MAX_NODES}"));
        }
        if self.relays == 0 || self.relays > 64 {
            return invalid("relays must be 1 to 64 (segments meet only through relays)".into());
        }
        let relays = String::from("relays");
        let profiles = self
            .segments
            .iter()
            .map(|segment| (&segment.name, segment.link, segment.share))
            .chain([(&relays, self.relay_link, 1.0)]);
        for (name, link, share) in profiles {
            if !(0.0..=1.0).contains(&link.loss)
                || !(0.0..=60_000.0).contains(&link.latency_ms)
                || link.bandwidth_kbps < 0.0
                || !share.is_finite()
                || share < 0.0
            {
                return invalid(format!(
                    "segment '{name}': latency 0 to 60000 ms, loss 0 to 1, bandwidth and share not negative"
                ));
            }
        }
        let names: Vec<&str> = self.segment_names();
        for (what, name) in [
            (
                "partition",
                self.partition.as_ref().map(|partition| &partition.segment),
            ),
            (
                "console_segment",
                Some(&self.console_segment).filter(|name| !name.is_empty()),
            ),
        ] {
            if let Some(name) = name
                && !names.contains(&name.as_str())
            {
                return invalid(format!(
                    "{what}: no segment '{name}' (have: {})",
                    names.join(", ")
                ));
            }
        }
        if let Some(failure) = &self.relay_failure
            && failure.relay >= self.relays
        {
            return invalid(format!("relay_failure: no relay {}", failure.relay));
        }
        if !["file", "agentinfo"].contains(&self.action.module.as_str()) {
            return invalid("action.module is 'file' or 'agentinfo'".into());
        }
        if self.action.count == 0 || self.action.count > 100 {
            return invalid("action.count must be 1 to 100".into());
        }
        if let Some(churn) = &self.churn
            && (churn.leave_per_s < 0.0
                || churn.join_per_s < 0.0
                || churn.for_s < 0.0
                || churn.join_per_s * churn.for_s > MAX_NODES as f64)
        {
            return invalid("churn: rates and duration not negative, joins bounded".into());
        }
        Ok(())
    }

    /// The agents' segment names (`flat` when none are given).
    pub fn segment_names(&self) -> Vec<&str> {
        if self.segments.is_empty() {
            vec!["flat"]
        } else {
            self.segments
                .iter()
                .map(|segment| segment.name.as_str())
                .collect()
        }
    }

    /// The agents' segments with their link profiles.
    pub fn segment_profiles(&self) -> Vec<(String, LinkProfile)> {
        if self.segments.is_empty() {
            vec![("flat".into(), LinkProfile::default())]
        } else {
            self.segments
                .iter()
                .map(|segment| (segment.name.clone(), segment.link))
                .collect()
        }
    }

    /// Draws the layout from the seed.
    pub fn layout(&self) -> Layout {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let shares: Vec<f64> = if self.segments.is_empty() {
            vec![1.0]
        } else {
            self.segments.iter().map(|segment| segment.share).collect()
        };
        let joiners = self
            .churn
            .as_ref()
            .map_or(0, |churn| (churn.join_per_s * churn.for_s).round() as usize);
        let agents = (0..self.nodes + joiners)
            .map(|index| {
                let segment = pick_weighted(&mut rng, &shares);
                let os = pick_key(&mut rng, &self.attributes.os).unwrap_or_else(|| "linux".into());
                let tags = self
                    .attributes
                    .tags
                    .iter()
                    .filter_map(|(name, values)| Some((name.clone(), pick_key(&mut rng, values)?)))
                    .collect();
                let planted = rng.random::<f64>() < self.action.planted_share;
                AgentPlan {
                    name: format!("agent{index:05}.sim"),
                    segment,
                    os,
                    tags,
                    planted,
                    joins_at_s: None,
                }
            })
            .collect::<Vec<_>>();
        let mut layout = Layout {
            agents,
            leaving: Vec::new(),
        };
        if let Some(churn) = &self.churn {
            for (number, agent) in layout.agents[self.nodes..].iter_mut().enumerate() {
                agent.joins_at_s =
                    Some((number as f64 + 0.5) / churn.join_per_s.max(f64::MIN_POSITIVE));
            }
            let leaving = ((churn.leave_per_s * churn.for_s).round() as usize).min(self.nodes);
            let mut candidates: Vec<usize> = (0..self.nodes).collect();
            for number in 0..leaving {
                let pick = rng.random_range(0..candidates.len());
                let index = candidates.swap_remove(pick);
                layout.leaving.push((
                    index,
                    (number as f64 + 0.5) / churn.leave_per_s.max(f64::MIN_POSITIVE),
                ));
            }
        }
        layout
    }
}

fn pick_weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return 0;
    }
    let mut point = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        if point < *weight {
            return index;
        }
        point -= weight;
    }
    weights.len() - 1
}

fn pick_key(rng: &mut StdRng, weights: &BTreeMap<String, f64>) -> Option<String> {
    let values: Vec<f64> = weights.values().copied().collect();
    if values.is_empty() {
        return None;
    }
    weights.keys().nth(pick_weighted(rng, &values)).cloned()
}

/// One agent as the seed placed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentPlan {
    pub name: String,
    /// Index into the scenario's segments.
    pub segment: usize,
    pub os: String,
    pub tags: BTreeMap<String, String>,
    /// Its tree holds the file the action looks for.
    pub planted: bool,
    /// A churn joiner: starts this long after the publish.
    pub joins_at_s: Option<f64>,
}

/// Everything a seed decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// The agents present at the start, then the churn joiners.
    pub agents: Vec<AgentPlan>,
    /// Agents that leave (index, seconds after the publish).
    pub leaving: Vec<(usize, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_segments() -> Scenario {
        Scenario::from_toml(
            r#"
            seed = 42
            nodes = 400
            [[segments]]
            name = "office"
            share = 3
            latency_ms = 5
            [[segments]]
            name = "dc"
            share = 1
            [churn]
            leave_per_s = 2
            join_per_s = 4
            for_s = 5
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_seed_gives_one_layout_and_shares_are_respected() {
        let scenario = two_segments();
        let layout = scenario.layout();
        assert_eq!(layout, scenario.layout());
        let other = Scenario {
            seed: 43,
            ..scenario.clone()
        };
        assert_ne!(layout, other.layout());
        assert_eq!(layout.agents.len(), 420);
        assert_eq!(layout.leaving.len(), 10);
        let office = layout
            .agents
            .iter()
            .filter(|agent| agent.segment == 0)
            .count();
        assert!(
            (250..350).contains(&office),
            "{office} of 420 in the 3:1 segment"
        );
        let linux = layout
            .agents
            .iter()
            .filter(|agent| agent.os == "linux")
            .count();
        assert!((280..390).contains(&linux), "{linux} of 420 linux at 0.8");
        assert!(layout.agents[400].joins_at_s.is_some() && layout.agents[399].joins_at_s.is_none());
    }

    #[test]
    fn bad_scenarios_are_refused_with_the_reason() {
        for (text, expected) in [
            ("nodes = 0", "nodes must be"),
            ("relays = 0", "relays must be"),
            (
                "[partition]\nsegment = \"nowhere\"\nat_s = 1\nheal_at_s = 2",
                "no segment 'nowhere'",
            ),
            ("[[segments]]\nname = \"a\"\nloss = 2", "loss 0 to 1"),
            ("nodez = 3", "unknown field"),
        ] {
            let error = Scenario::from_toml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every scenario shipped in `sim/scenarios/` reads and checks.
    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let scenario = Scenario::from_toml(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert!(!scenario.layout().agents.is_empty());
            count += 1;
        }
        assert!(count >= 5);
    }
}
