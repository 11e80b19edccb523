//! Running a scenario: relays, agents (each a real node with its own
//! store and generated file tree, on the simulated network), a console
//! launching the actions as `mig run` does, and the scheduled faults
//! (churn, a partition, a relay failure). Then the measurements.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use mig_console::launch::{LaunchOptions, LaunchOutcome};
use mig_node::config::NodeConfig;
use mig_node::mesh::{self, Environment, MeshEvent, NodeHandle, Role, Status};
use mig_proto::{Action, ActionId, AgentAttributes, AgentContext, NoHistory, Target, TrustStore};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::link::World;
use crate::report::{self, ActionReport, RunReport};
use crate::scenario::{AgentPlan, Layout, Scenario};

const SEED_EXAMPLE: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");
/// What planted agents hold at /usr/bin/kworkerd (the sweep looks for its
/// SHA-256).
const PLANTED: &[u8] = b"mig-sim: a planted indicator of compromise\n";
/// Threads the fleet's modules hash files on.
const MODULE_THREADS: usize = 2;
/// Module runs at once in the whole fleet, on threads of their own: few,
/// so that they do not outweigh the workers. With two, results came home
/// later at 1,000 agents; four and eight could not be told apart.
const MODULE_RUNS: usize = 4;
/// Agents started at once while the fleet forms.
const START_BATCH: usize = 50;
/// Gossip peers (mesh and direct) nearly every agent has before the first
/// publish: its relay, and one less than gossipsub's own lower bound of
/// its mesh. At the bound itself, formation at 1,000 agents now and then
/// took a minute longer (gossipsub's prune back-off is a minute).
const MESH_READY: usize = mig_node::mesh::GOSSIP_MESH - 1;
/// Share of agents with `MESH_READY` gossip peers before the first publish.
const READY_SHARE: f64 = 0.95;

/// One running node.
struct Running {
    handle: NodeHandle,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    events: JoinHandle<()>,
}

impl Running {
    async fn stop(self) -> Option<Status> {
        let status = self.handle.status().await;
        self.shutdown.cancel();
        let _ = self.task.await;
        self.events.abort();
        status
    }
}

/// A machine of its own for a relay or the console: a runtime with one
/// worker thread. Relays and the console run on their own hosts in a real
/// deployment; on the fleet's shared workers the funnel of the reverse path
/// (a relay passes on nearly every report) would get one poll in a
/// thousand. Dropped without blocking.
struct Host(Option<tokio::runtime::Runtime>);

impl Host {
    fn new(name: &str) -> anyhow::Result<Self> {
        Ok(Self(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .enable_all()
                .build()?,
        )))
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|runtime| runtime.handle().clone())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A node to start.
struct NodeSpec {
    /// Its place in the world (and its key).
    index: usize,
    role: Role,
    segment: usize,
    bootstrap: Vec<Multiaddr>,
    attributes: Option<AgentAttributes>,
    root: PathBuf,
    /// Its agent number, for agents.
    agent: Option<usize>,
}

/// When each agent first accepted each action.
type Accepted = Arc<Mutex<HashMap<(ActionId, usize), Instant>>>;

/// Everything the run keeps.
struct Fleet {
    scenario: Scenario,
    layout: Layout,
    world: Arc<World>,
    dir: PathBuf,
    investigator: Arc<mig_keys::SecretKey>,
    trusted: TrustStore,
    pool: Arc<rayon::ThreadPool>,
    /// The threads every agent's module runs take turns on.
    module_threads: Arc<mig_node::runtime::ModuleThreads>,
    relays: Vec<Option<Running>>,
    relay_addresses: Vec<Multiaddr>,
    agents: Vec<Option<Running>>,
    /// Agents that left, with the time after the first publish.
    left: BTreeMap<usize, f64>,
    /// The last status of agents that left.
    left_status: BTreeMap<usize, Status>,
    accepted: Accepted,
    /// The relays' and consoles' own hosts, kept until the run ends.
    hosts: Vec<Host>,
}

/// Node `index`'s ed25519 seed, drawn from the scenario's seed.
fn node_seed(seed: u64, index: usize) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"mig-sim node key\n");
    hasher.update(seed.to_le_bytes());
    hasher.update((index as u64).to_le_bytes());
    hasher.finalize().into()
}

/// Node `index`'s key.
fn node_key(seed: u64, index: usize) -> anyhow::Result<Keypair> {
    Ok(Keypair::ed25519_from_bytes(node_seed(seed, index))?)
}

/// Gives a data directory node `index`'s identity, as `mig-node` keeps it
/// (a 0600 seed file in a 0700 directory).
fn write_identity(data_dir: &Path, seed: u64, index: usize) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::create_dir_all(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(data_dir.join("identity.key"))?;
    file.write_all(&node_seed(seed, index))?;
    Ok(())
}

/// Node indices: relays first, then the console, then agents.
fn agent_index(relays: usize, agent: usize) -> usize {
    relays + 1 + agent
}

/// The action the console launches: the seed example, with the planted
/// file's hash in its list, and the scenario's target and module.
pub fn action(scenario: &Scenario, number: usize) -> anyhow::Result<Action> {
    let mut value: serde_json::Value = serde_json::from_str(SEED_EXAMPLE)?;
    let planted = hex::encode(Sha256::digest(PLANTED));
    if let Some(hashes) =
        value["operations"][0]["parameters"]["searches"]["backdoors"]["sha256"].as_array_mut()
    {
        hashes.push(serde_json::json!(planted));
    }
    if scenario.action.module == "agentinfo" {
        value["operations"] = serde_json::json!([{"module": "agentinfo"}]);
    }
    if !scenario.action.target.is_empty() {
        value["target"] = serde_json::json!(scenario.action.target);
    }
    value["name"] = serde_json::json!(format!("mig-sim action {}", number + 1));
    Ok(Action::from_json(&value.to_string())?)
}

/// Agent `plan`'s attributes as its node reports them.
fn attributes(plan: &AgentPlan, peer: &PeerId, index: usize) -> AgentAttributes {
    let mut attributes = AgentAttributes {
        name: plan.name.clone(),
        os: plan.os.clone(),
        arch: "amd64".into(),
        version: mig_node::host::AGENT_VERSION.into(),
        id: peer.to_string(),
        mode: "daemon".into(),
        tags: plan.tags.clone(),
        ..AgentAttributes::default()
    };
    attributes.env.addresses = vec![format!(
        "10.{}.{}.{}/16",
        plan.segment,
        (index / 250) % 250,
        index % 250 + 1
    )];
    attributes.env.ident = match plan.os.as_str() {
        "linux" => "Debian GNU/Linux 12 (bookworm)".into(),
        "darwin" => "macOS 14".into(),
        other => other.to_owned(),
    };
    attributes
}

/// A small tree for one agent: a few ordinary files, and the planted one
/// where the layout says so.
fn write_tree(root: &Path, plan: &AgentPlan, files: usize, index: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join("usr/bin"))?;
    std::fs::create_dir_all(root.join("etc"))?;
    for number in 0..files {
        let directory = if number % 2 == 0 { "usr/bin" } else { "etc" };
        std::fs::write(
            root.join(directory).join(format!("file{number}")),
            format!("agent {index} file {number}\n"),
        )?;
    }
    if plan.planted {
        std::fs::write(root.join("usr/bin/kworkerd"), PLANTED)?;
    }
    Ok(())
}

fn node_config(
    data_dir: PathBuf,
    listen: Multiaddr,
    bootstrap: Vec<Multiaddr>,
    trusted: &TrustStore,
    root: PathBuf,
) -> NodeConfig {
    NodeConfig {
        data_dir,
        listen: vec![listen.clone()],
        bootstrap,
        acl: trusted.default_acl(),
        trusted: trusted.clone(),
        tags: BTreeMap::new(),
        root,
        psk: None,
        max_validity_seconds: mig_proto::verify::DEFAULT_MAX_VALIDITY_SECONDS,
        max_concurrent_actions: 2,
        peer_timeout: mig_node::config::DEFAULT_PEER_TIMEOUT,
        external_addresses: vec![listen],
        mdns: false,
        name: None,
    }
}

/// The resident set of this process, in bytes.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU time this process has used (user and system), from /proc, whose
/// ticks are USER_HZ (100 a second on Linux).
pub fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The command name (field 2) may hold spaces; count after it.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(Duration::from_millis((user + system) * 10))
        })
        .unwrap_or_default()
}

/// CPU used between two readings as a number of cores kept busy.
fn cores(cpu_before: Duration, wall_before: Instant) -> f64 {
    let wall = wall_before.elapsed().as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    cpu_time().saturating_sub(cpu_before).as_secs_f64() / wall
}

/// Where the run keeps its nodes' stores and trees: memory-backed when
/// the machine has /dev/shm.
fn work_dir() -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = || {
        let mut builder = tempfile::Builder::new();
        builder.prefix("mig-sim-");
        builder
    };
    if shm.is_dir()
        && let Ok(dir) = builder().tempdir_in(shm)
    {
        return Ok(dir);
    }
    Ok(builder().tempdir()?)
}

impl Fleet {
    /// Starts a node on the fleet's shared workers, or on `host`.
    async fn start_node(
        &self,
        spec: NodeSpec,
        host: Option<tokio::runtime::Handle>,
    ) -> anyhow::Result<Running> {
        let NodeSpec {
            index,
            role,
            segment,
            bootstrap,
            attributes,
            root,
            agent,
        } = spec;
        let keypair = node_key(self.scenario.seed, index)?;
        let config = node_config(
            self.dir.join(format!("node{index}")),
            self.world.address(index),
            bootstrap,
            &self.trusted,
            root,
        );
        let environment = Environment {
            transport: Some(self.world.transport(segment, self.scenario.handshake)),
            attributes,
            module_pool: Some(self.pool.clone()),
            module_threads: Some(self.module_threads.clone()),
        };
        let shutdown = CancellationToken::new();
        let starting = mesh::start_in(config, role, keypair, shutdown.clone(), environment);
        let started = match host {
            Some(host) => host.spawn(starting).await?,
            None => starting.await,
        };
        let (mut handle, task) = started.with_context(|| format!("starting node {index}"))?;
        let mut events = std::mem::replace(&mut handle.events, tokio::sync::mpsc::channel(1).1);
        let accepted = self.accepted.clone();
        let events = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                // The node's own instant: this task may read the event
                // late when the machine is busy.
                if let (MeshEvent::Accepted { action, at }, Some(agent)) = (event, agent)
                    && let Ok(mut accepted) = accepted.lock()
                {
                    accepted
                        .entry((action, agent))
                        .or_insert(Instant::from_std(at));
                }
            }
        });
        Ok(Running {
            handle,
            shutdown,
            task,
            events,
        })
    }

    async fn start_relay(&mut self, relay: usize) -> anyhow::Result<()> {
        let bootstrap = self
            .relay_addresses
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != relay)
            .map(|(_, address)| address.clone())
            .collect();
        let host = Host::new(&format!("sim-relay-{relay}"))?;
        let running = self
            .start_node(
                NodeSpec {
                    index: relay,
                    role: Role::Relay,
                    segment: self.world.relay_segment(),
                    bootstrap,
                    attributes: None,
                    root: self.dir.clone(),
                    agent: None,
                },
                host.handle(),
            )
            .await?;
        self.hosts.push(host);
        self.relays[relay] = Some(running);
        Ok(())
    }

    /// Agent `agent`'s peer id and the attributes its node reports.
    fn agent_identity(&self, agent: usize) -> anyhow::Result<(PeerId, AgentAttributes)> {
        let index = agent_index(self.scenario.relays, agent);
        let peer = node_key(self.scenario.seed, index)?.public().to_peer_id();
        Ok((peer, attributes(&self.layout.agents[agent], &peer, index)))
    }

    /// Every node's name by its peer id: relays, the console, agents.
    fn peer_names(&self) -> HashMap<String, String> {
        let mut names = HashMap::new();
        for relay in 0..self.scenario.relays {
            if let Ok(key) = node_key(self.scenario.seed, relay) {
                names.insert(
                    key.public().to_peer_id().to_string(),
                    format!("relay {relay}"),
                );
            }
        }
        if let Ok(key) = node_key(self.scenario.seed, self.scenario.relays) {
            names.insert(
                key.public().to_peer_id().to_string(),
                "the console".to_owned(),
            );
        }
        for (agent, plan) in self.layout.agents.iter().enumerate() {
            if let Ok((peer, _)) = self.agent_identity(agent) {
                names.insert(peer.to_string(), plan.name.clone());
            }
        }
        names
    }

    async fn start_agent(&mut self, agent: usize) -> anyhow::Result<()> {
        let index = agent_index(self.scenario.relays, agent);
        let plan = self.layout.agents[agent].clone();
        let root = self.dir.join(format!("tree{index}"));
        write_tree(&root, &plan, self.scenario.action.tree_files, index)?;
        let (_, attributes) = self.agent_identity(agent)?;
        let running = self
            .start_node(
                NodeSpec {
                    index,
                    role: Role::Agent,
                    segment: plan.segment,
                    bootstrap: self.relay_addresses.clone(),
                    attributes: Some(attributes),
                    root,
                    agent: Some(agent),
                },
                None,
            )
            .await?;
        self.agents[agent] = Some(running);
        Ok(())
    }

    async fn stop_agent(&mut self, agent: usize, at: f64) {
        if let Some(running) = self.agents.get_mut(agent).and_then(Option::take) {
            if let Some(status) = running.stop().await {
                self.left_status.insert(agent, status);
            }
            self.left.insert(agent, at);
        }
    }

    /// Waits until every started agent is in the gossip mesh and nearly
    /// all have at least `MESH_READY` peers (or all there are): publishing earlier
    /// measures a mesh still forming, where most agents hang off the relay
    /// and hear the action only from gossip at the next heartbeat.
    /// Returns how long it took and the agents' links (mean, max).
    async fn wait_for_formation(
        &self,
        started: Instant,
        say: &impl Fn(String),
    ) -> anyhow::Result<(Duration, f64, usize)> {
        let deadline = started + Duration::from_secs_f64(self.scenario.formation_timeout_s);
        let wanted = MESH_READY.min(self.scenario.nodes.saturating_sub(1)).max(1);
        let mut last_said = Instant::now();
        loop {
            let mut ready = 0;
            let mut in_mesh = 0;
            let mut total = 0;
            let mut links = Vec::new();
            let mut opened = 0;
            // All at once: one at a time, each answer waits for its node's
            // turn on a busy machine, and a round over ten thousand nodes
            // took minutes.
            let answers = futures::future::join_all(
                self.agents
                    .iter()
                    .flatten()
                    .map(|running| running.handle.links()),
            )
            .await;
            for answer in answers {
                total += 1;
                if let Some(status) = answer {
                    links.push(status.connected_peers);
                    opened += status.connections_opened;
                    // The relays an agent peers with directly carry
                    // actions to it as a mesh peer does.
                    let peers = status.mesh_peers + status.direct_peers;
                    ready += usize::from(peers >= wanted);
                    in_mesh += usize::from(peers >= 1);
                }
            }
            let mean = links.iter().sum::<usize>() as f64 / links.len().max(1) as f64;
            let max = links.iter().copied().max().unwrap_or(0);
            // Every agent in the mesh, nearly all with a full one: a few
            // pruned by a busy neighbour wait out gossipsub's one-minute
            // prune back-off, hearing actions through their other peers
            // meanwhile.
            if in_mesh == total && ready as f64 >= READY_SHARE * total as f64 {
                return Ok((started.elapsed(), mean, max));
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the mesh did not form in {:.0} s: {ready} of {total} agents have {wanted} gossip peers",
                    self.scenario.formation_timeout_s
                );
            }
            if last_said.elapsed() > Duration::from_secs(5) {
                say(format!(
                    "forming: {ready} of {total} agents have {wanted} gossip peers; links mean {mean:.1}, max {max}; {opened} connections opened"
                ));
                last_said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Runs `scenario` to the end and measures it.
pub async fn run(scenario: &Scenario, progress: bool) -> anyhow::Result<RunReport> {
    scenario.check()?;
    let wall = Instant::now();
    let say = |message: String| {
        if progress {
            eprintln!("[{:>6.1}s] {message}", wall.elapsed().as_secs_f64());
        }
    };
    let layout = scenario.layout();
    let names = scenario.segment_names();
    let relay_segment = names.len();
    let console_segment = names
        .iter()
        .position(|name| *name == scenario.console_segment)
        .unwrap_or(relay_segment);
    let mut placement = vec![relay_segment; scenario.relays];
    placement.push(console_segment);
    placement.extend(layout.agents.iter().map(|agent| agent.segment));
    let world = Arc::new(World::new(
        scenario.segment_profiles(),
        scenario.relay_link,
        placement,
        scenario.seed,
    ));
    let dir = work_dir()?;
    let investigator = Arc::new(mig_keys::SecretKey::generate("mig-sim investigator")?);
    let trusted = TrustStore::new([investigator.public()]);
    // Module threads run at the lowest priority, as on a real agent, and
    // a few at a time for the whole fleet: the scheduler adds up the
    // weights of runnable threads, and hundreds of lowered threads together
    // outweighed the nodes' workers.
    let pool = Arc::new(mig_node::runtime::module_pool(
        MODULE_THREADS,
        "sim-module",
    )?);
    let module_threads = Arc::new(mig_node::runtime::ModuleThreads::new(
        MODULE_RUNS,
        "sim-run",
    )?);
    let relay_addresses = (0..scenario.relays)
        .map(|relay| -> anyhow::Result<Multiaddr> {
            let peer = node_key(scenario.seed, relay)?.public().to_peer_id();
            Ok(world.address(relay).with(Protocol::P2p(peer)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let baseline_rss = resident_bytes();
    let mut fleet = Fleet {
        scenario: scenario.clone(),
        relays: (0..scenario.relays).map(|_| None).collect(),
        agents: (0..layout.agents.len()).map(|_| None).collect(),
        layout,
        world: world.clone(),
        dir: dir.path().to_path_buf(),
        investigator,
        trusted,
        pool,
        module_threads,
        relay_addresses,
        left: BTreeMap::new(),
        left_status: BTreeMap::new(),
        accepted: Arc::default(),
        hosts: Vec::new(),
    };

    // The fleet forms: relays, then agents in batches.
    let formation_started = Instant::now();
    for relay in 0..scenario.relays {
        fleet.start_relay(relay).await?;
    }
    for agent in 0..scenario.nodes {
        fleet.start_agent(agent).await?;
        if agent % START_BATCH == START_BATCH - 1 {
            say(format!("{} agents started", agent + 1));
            tokio::task::yield_now().await;
        }
    }
    let (formation, links_mean, links_max) =
        fleet.wait_for_formation(formation_started, &say).await?;
    let formed_rss = resident_bytes();
    say(format!(
        "mesh formed in {:.1} s; links per agent mean {links_mean:.1}, max {links_max}",
        formation.as_secs_f64()
    ));
    // What the formed fleet costs doing nothing: heartbeats, pings,
    // timers. It is the floor every action's work competes with.
    let (idle_cpu, idle_from) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(scenario.settle_s.max(0.0))).await;
    let idle_cores = cores(idle_cpu, idle_from);
    if let Some(partition) = &scenario.partition
        && partition.at_s <= 0.0
        && let Some(segment) = names.iter().position(|name| *name == partition.segment)
    {
        world.set_cut(segment, true);
    }

    let mut actions = Vec::new();
    let mut first_publish: Option<Instant> = None;
    let (busy_cpu, busy_from) = (cpu_time(), Instant::now());
    for number in 0..scenario.action.count {
        let report = launch_one(
            &mut fleet,
            number,
            console_segment,
            &mut first_publish,
            &say,
        )
        .await?;
        say(format!(
            "action {}: {} of {} targeted agents answered",
            number + 1,
            report.answered,
            report.targeted
        ));
        actions.push(report);
    }

    let action_cores = cores(busy_cpu, busy_from);
    // Final figures from every node still up.
    let stopping = fleet
        .agents
        .iter_mut()
        .enumerate()
        .filter_map(|(agent, running)| running.take().map(|running| (agent, running)))
        .map(|(agent, running)| async move { running.stop().await.map(|status| (agent, status)) });
    let mut agent_status: Vec<(usize, Status)> = futures::future::join_all(stopping)
        .await
        .into_iter()
        .flatten()
        .collect();
    agent_status.extend(std::mem::take(&mut fleet.left_status));
    let mut relay_status = Vec::new();
    for running in fleet.relays.iter_mut() {
        if let Some(running) = running.take() {
            relay_status.extend(running.stop().await);
        }
    }
    let nodes_at_peak = scenario.nodes + scenario.relays + 1;
    Ok(report::assemble(report::Inputs {
        scenario: scenario.clone(),
        formation,
        memory_per_node: formed_rss.saturating_sub(baseline_rss) as f64 / nodes_at_peak as f64,
        resident_after_formation: formed_rss,
        idle_cores,
        action_cores,
        actions,
        agent_status,
        relay_status,
        wall: wall.elapsed(),
    }))
}

/// Launches action `number` from the console and follows it, running the
/// scheduled faults meanwhile.
async fn launch_one(
    fleet: &mut Fleet,
    number: usize,
    console_segment: usize,
    first_publish: &mut Option<Instant>,
    say: &impl Fn(String),
) -> anyhow::Result<ActionReport> {
    let scenario = fleet.scenario.clone();
    let action = action(&scenario, number)?;
    let target = Target::parse(&action.target)?;
    let console_index = scenario.relays;
    // The console waits for every targeted agent that will still be there
    // (the layout says who leaves), within its timeout.
    let leaving: std::collections::HashSet<usize> = fleet
        .layout
        .leaving
        .iter()
        .map(|(agent, _)| *agent)
        .collect();
    let mut expected = 0;
    for (agent, plan) in fleet.layout.agents.iter().enumerate() {
        let alive = !leaving.contains(&agent) && !fleet.left.contains_key(&agent);
        let present = fleet.agents[agent].is_some() || (number == 0 && plan.joins_at_s.is_some());
        if alive && present && targets(&target, &fleet.agent_identity(agent)?.1) {
            expected += 1;
        }
    }
    let (tell_published, published_rx) = std::sync::mpsc::channel();
    let options = LaunchOptions {
        data_dir: fleet.dir.join(format!("console{number}")),
        bootstrap: fleet.relay_addresses.clone(),
        listen: vec![fleet.world.address(console_index)],
        psk: None,
        timeout: Duration::from_secs_f64(scenario.collect_timeout_s),
        expiry_seconds: 600,
        mdns: false,
        collect_for: Duration::from_secs_f64(scenario.collect_for_s),
        published: Some(tell_published),
        environment: Environment {
            transport: Some(
                fleet
                    .world
                    .transport(console_segment, fleet.scenario.handshake),
            ),
            ..Environment::default()
        },
        expect_answers: Some(expected),
        progress: None,
        detach: None,
    };
    // The console's key is node `console_index`'s for every action, so its
    // place in the world is known; its store is per action.
    write_identity(&options.data_dir, scenario.seed, console_index)?;
    let key = fleet.investigator.clone();
    let console_host = Host::new(&format!("sim-console-{number}"))?;
    let launch = console_host
        .handle()
        .context("the console's host")?
        .spawn(async move { mig_console::launch::launch(action, Some(&key), options).await });
    fleet.hosts.push(console_host);
    let published =
        tokio::task::spawn_blocking(move || published_rx.recv_timeout(Duration::from_secs(120)))
            .await?
            .context("the console never published")?;
    let published_at = Instant::now();
    let first = *first_publish.get_or_insert(published_at);
    say(format!("action {} published: {published}", number + 1));

    // Faults on their schedule while the console collects.
    let mut schedule: Vec<(f64, Fault)> = Vec::new();
    if number == 0 {
        for (agent, at) in &fleet.layout.leaving {
            schedule.push((*at, Fault::Leave(*agent)));
        }
        for (agent, plan) in fleet.layout.agents.iter().enumerate() {
            if let Some(at) = plan.joins_at_s {
                schedule.push((at, Fault::Join(agent)));
            }
        }
        let names = scenario.segment_names();
        if let Some(partition) = &scenario.partition
            && let Some(segment) = names.iter().position(|name| *name == partition.segment)
        {
            if partition.at_s > 0.0 {
                schedule.push((partition.at_s, Fault::Cut(segment)));
            }
            schedule.push((partition.heal_at_s, Fault::Heal(segment)));
        }
        if let Some(failure) = &scenario.relay_failure {
            schedule.push((failure.at_s, Fault::StopRelay(failure.relay)));
            if let Some(at) = failure.restart_at_s {
                schedule.push((at, Fault::StartRelay(failure.relay)));
            }
        }
    }
    schedule.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut launch = launch;
    let mut outcome = None;
    for (at, fault) in schedule {
        let when = first + Duration::from_secs_f64(at.max(0.0));
        tokio::select! {
            result = &mut launch => { outcome = Some(result); break; }
            () = tokio::time::sleep_until(when) => {}
        }
        let elapsed = first.elapsed().as_secs_f64();
        match fault {
            Fault::Leave(agent) => fleet.stop_agent(agent, elapsed).await,
            Fault::Join(agent) => fleet.start_agent(agent).await?,
            Fault::Cut(segment) => fleet.world.set_cut(segment, true),
            Fault::Heal(segment) => fleet.world.set_cut(segment, false),
            Fault::StopRelay(relay) => {
                if let Some(running) = fleet.relays[relay].take() {
                    running.stop().await;
                }
            }
            Fault::StartRelay(relay) => fleet.start_relay(relay).await?,
        }
        say(format!("{elapsed:.1} s after the publish: {fault:?}"));
    }
    let outcome: LaunchOutcome = match outcome {
        Some(result) => result??,
        None => launch.await??,
    };
    let report = measure(fleet, &outcome, &target, published_at).await;
    Ok(report)
}

/// How long the silent agents' statuses are waited for, all of them
/// together (they are asked at once).
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// Why an agent that received the action has not answered: what came
/// home, and where its reports are (`status`, asked when collecting ended;
/// `name` names the next hop of a delivery that is out).
fn why_silent(acked: bool, status: Option<&Status>, name: impl Fn(&str) -> String) -> String {
    let heard = if acked {
        "acked, result never came home"
    } else {
        "received it, no report came home"
    };
    let whereabouts = match status {
        None => String::new(),
        Some(status) if status.outbox_length == 0 => "; nothing left in its outbox".to_owned(),
        Some(status) if status.deliveries_out > 0 => match &status.oldest_delivery_out {
            Some(out) => format!(
                "; reports in its outbox, out to {} for {:.1} s and not answered",
                name(&out.to),
                out.age_s
            ),
            None => "; reports in its outbox, out to the next hop and not answered".to_owned(),
        },
        Some(_) => "; reports waiting in its outbox".to_owned(),
    };
    format!("{heard}{whereabouts}")
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Leave(usize),
    Join(usize),
    Cut(usize),
    Heal(usize),
    StopRelay(usize),
    StartRelay(usize),
}

/// Whether `target` selects an agent with `attributes` (as the agent
/// itself decides; the simulated agents have no history).
fn targets(target: &Target, attributes: &AgentAttributes) -> bool {
    target.matches(&AgentContext {
        attributes,
        history: &NoHistory,
    })
}

/// Reach, acks, results, and the agents that never answered, with why
/// (asking those that received the action for their status, while the
/// nodes still run).
async fn measure(
    fleet: &Fleet,
    outcome: &LaunchOutcome,
    target: &Target,
    published: Instant,
) -> ActionReport {
    let by_peer: HashMap<String, &mig_console::launch::AgentOutcome> = outcome
        .agents
        .iter()
        .map(|agent| (agent.peer.clone(), agent))
        .collect();
    let accepted = fleet
        .accepted
        .lock()
        .map(|map| map.clone())
        .unwrap_or_default();
    let mut targeted = Vec::new();
    let mut answered_untargeted = Vec::new();
    let mut silent = Vec::new();
    let mut reach_ms = Vec::new();
    let mut ack_ms = Vec::new();
    let mut result_ms = Vec::new();
    let mut found = 0;
    let mut answered = Vec::new();
    // Silent agents that received the action: (place in `silent`, agent,
    // acked), told by where their reports are once asked.
    let mut to_ask = Vec::new();
    for (agent, plan) in fleet.layout.agents.iter().enumerate() {
        let started = fleet.agents[agent].is_some() || fleet.left.contains_key(&agent);
        if !started {
            continue;
        }
        let Ok((peer, attributes)) = fleet.agent_identity(agent) else {
            continue;
        };
        let is_targeted = targets(target, &attributes);
        let answer = by_peer.get(&peer.to_string());
        let reached = accepted.get(&(outcome.action_id, agent)).copied();
        if !is_targeted {
            if answer.is_some_and(|answer| answer.result.is_some()) {
                answered_untargeted.push(plan.name.clone());
            }
            continue;
        }
        targeted.push(agent);
        if let Some(reached) = reached {
            reach_ms.push(reached.saturating_duration_since(published).as_secs_f64() * 1000.0);
        }
        match answer {
            Some(answer) if answer.result.is_some() => {
                answered.push(plan.name.clone());
                ack_ms.extend(answer.ack_ms.map(|ms| ms as f64));
                result_ms.extend(answer.result_ms.map(|ms| ms as f64));
                found += usize::from(
                    answer
                        .result
                        .as_ref()
                        .is_some_and(mig_proto::AgentResult::found_anything),
                );
            }
            _ => {
                let why = if let Some(at) = fleet.left.get(&agent) {
                    format!("left the fleet {at:.1} s after the first publish")
                } else if reached.is_none() {
                    "never received the action".to_owned()
                } else {
                    let acked = answer.is_some_and(|answer| answer.acked);
                    to_ask.push((silent.len(), agent, acked));
                    why_silent(acked, None, str::to_owned)
                };
                silent.push((plan.name.clone(), why));
            }
        }
    }
    // All at once, under one deadline: a node too busy to answer in time
    // is told by what came home only, and many of them cost no more than one.
    let deadline = Instant::now() + STATUS_WAIT;
    let statuses = futures::future::join_all(to_ask.iter().map(|(_, agent, _)| async move {
        let running = fleet.agents[*agent].as_ref()?;
        tokio::time::timeout_at(deadline, running.handle.status())
            .await
            .ok()
            .flatten()
    }))
    .await;
    let names = if statuses
        .iter()
        .flatten()
        .any(|s| s.oldest_delivery_out.is_some())
    {
        fleet.peer_names()
    } else {
        HashMap::new()
    };
    let name = |peer: &str| {
        names
            .get(peer)
            .cloned()
            .unwrap_or_else(|| format!("peer {peer}"))
    };
    for ((place, _, acked), status) in to_ask.into_iter().zip(statuses) {
        silent[place].1 = why_silent(acked, status.as_ref(), name);
    }
    let planted_targeted = targeted
        .iter()
        .filter(|agent| fleet.layout.agents[**agent].planted)
        .count();
    report::action_report(report::ActionInputs {
        action_id: outcome.action_id,
        targeted: targeted.len(),
        answered,
        found,
        planted_targeted,
        reach_ms,
        ack_ms,
        result_ms,
        silent,
        answered_untargeted,
        console_connections: outcome.console_connections,
        console_elapsed_ms: outcome.elapsed_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_agent_is_told_by_where_its_reports_are() {
        let status = |outbox_length, deliveries_out| Status {
            outbox_length,
            deliveries_out,
            ..Status::default()
        };
        let name = |peer: &str| format!("<{peer}>");
        assert_eq!(
            why_silent(true, Some(&status(1, 1)), name),
            "acked, result never came home; reports in its outbox, out to the next hop and not answered"
        );
        let out_to_relay = Status {
            oldest_delivery_out: Some(mig_node::mesh::DeliveryOut {
                to: "12D3relay".to_owned(),
                age_s: 41.25,
            }),
            ..status(1, 2)
        };
        assert_eq!(
            why_silent(true, Some(&out_to_relay), name),
            "acked, result never came home; reports in its outbox, out to <12D3relay> for 41.2 s and not answered"
        );
        assert_eq!(
            why_silent(false, Some(&status(2, 0)), name),
            "received it, no report came home; reports waiting in its outbox"
        );
        assert_eq!(
            why_silent(true, Some(&status(0, 0)), name),
            "acked, result never came home; nothing left in its outbox"
        );
        // An agent that could not be asked is told by what came home only.
        assert_eq!(
            why_silent(true, None, name),
            "acked, result never came home"
        );
    }
}
