//! Launching one action and following it to the end.
//!
//! ```text
//! start console node ── listen addresses ──▶ reply_to ──▶ sign ──▶ wait for a peer ──▶ publish
//!                                                                                    │
//!   reports (acks, refusals, results; signatures checked) ◀──────────────────────────┘
//!   until every agent that acked has answered and the mesh has been quiet a moment,
//!   or the timeout, or the action's expiry
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use mig_keys::SecretKey;
use mig_node::config::NodeConfig;
use mig_node::mesh::reports::{Report, ReportBody};
use mig_node::mesh::{self, MeshEvent, Role};
use mig_proto::seal::SealSecret;
use mig_proto::{Action, ActionId, AgentAttributes, AgentResult, ReplyTo, SignedAction, Timestamp};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the mesh must stay quiet after an agent was last heard from
/// for the first time before the console concludes that every targeted
/// agent has spoken.
const QUIET_AFTER_LAST_NEWCOMER: Duration = Duration::from_millis(1500);
// An agent whose module runs long speaks first with its ack, which it
// makes only once the run has lasted `ACK_HOLD`; the console
// must still be listening when that ack comes, after its journey home.
const _: () = assert!(mesh::ACK_HOLD.as_millis() * 3 / 2 <= QUIET_AFTER_LAST_NEWCOMER.as_millis());
/// How long to wait for a relay to grant a circuit reservation.
const CIRCUIT_WAIT: Duration = Duration::from_secs(3);
/// How long to wait for a first peer to publish to.
const PEER_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// The console's own data directory (its identity lives there).
    pub data_dir: PathBuf,
    pub bootstrap: Vec<Multiaddr>,
    pub listen: Vec<Multiaddr>,
    pub psk: Option<[u8; 32]>,
    /// Give up waiting for results after this long.
    pub timeout: Duration,
    /// The validity window given to an unsigned action.
    pub expiry_seconds: i64,
    /// Find peers on the local network by multicast DNS.
    pub mdns: bool,
    /// Keep collecting at least this long after publishing, for agents
    /// that come online while the action is still valid.
    pub collect_for: Duration,
    /// Told the action's id as soon as it is published.
    pub published: Option<std::sync::mpsc::Sender<ActionId>>,
    /// How the console's node is embedded (the simulator's transport).
    pub environment: mesh::Environment,
    /// Keep collecting (within the timeout) until this many agents have
    /// answered, however quiet the mesh: for a caller that knows the
    /// fleet (the simulator; the console's roster later).
    pub expect_answers: Option<usize>,
    /// Told the counters every time a report changes them (a progress
    /// bar's source).
    pub progress: Option<std::sync::Arc<tokio::sync::watch::Sender<Summary>>>,
    /// Cancelled to stop collecting early (Ctrl-C): the outcome holds what
    /// came so far and says it was detached; the agents go on.
    pub detach: Option<CancellationToken>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "the action is signed for console {signed_for}, not for this console ({this}); sign it again here"
    )]
    SignedForAnotherConsole { signed_for: String, this: String },
    #[error("the action is not signed: give --key")]
    NoKey,
    #[error(
        "the action's results are sealed to a key this console does not hold (was it signed with `mig -s` in another data directory?); sign it again here"
    )]
    SealKeyNotHere,
    #[error(
        "no peer to publish to after {0:?}: is the bootstrap address right and the relay running?"
    )]
    NoPeers(Duration),
    #[error("{0}")]
    Other(String),
}

fn other(error: impl std::fmt::Display) -> LaunchError {
    LaunchError::Other(error.to_string())
}

/// What became of the action on one agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentOutcome {
    pub peer: String,
    pub attributes: AgentAttributes,
    pub acked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<AgentResult>,
    /// Milliseconds from publish to this agent's ack (or its result, when
    /// the ack was lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_ms: Option<u128>,
    /// Milliseconds from publish to this agent's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ms: Option<u128>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub acked: usize,
    pub rejected: usize,
    pub answered: usize,
    pub found: usize,
    pub failed: usize,
    /// Of the failed, those whose module ran out of time.
    pub timed_out: usize,
    /// Acked but never answered.
    pub silent: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LaunchOutcome {
    pub action_id: ActionId,
    pub action: Action,
    pub agents: Vec<AgentOutcome>,
    pub summary: Summary,
    /// Publish to last report, in milliseconds.
    pub elapsed_ms: u128,
    /// The console's connections when it finished (they do not grow with
    /// the number of agents: reports come home hop by hop).
    pub console_connections: usize,
    /// Reports this console's node refused, by reason (forged, unsolicited,
    /// from a graylisted sender...).
    pub reports_dropped: BTreeMap<String, u64>,
    /// Peers graylisted for misbehaving while the console ran.
    pub graylisted_peers: Vec<String>,
    /// Collecting stopped on request before the end; more may come
    /// (`mig results ID --follow`).
    pub detached: bool,
    /// How many agents the console's roster said the target selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<usize>,
    /// Agents the roster expected that were never heard from (names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unheard: Vec<String>,
}

impl Summary {
    /// The counters over a list of agents.
    pub fn of<'a>(agents: impl IntoIterator<Item = &'a AgentOutcome>) -> Self {
        let mut summary = Self::default();
        for agent in agents {
            summary.add(agent, 1);
        }
        summary
    }

    /// Adds (`sign` 1) or removes (`sign` -1) one agent's part.
    fn add(&mut self, agent: &AgentOutcome, sign: isize) {
        let apply = |counter: &mut usize, counts: bool| {
            if counts {
                *counter = counter.saturating_add_signed(sign);
            }
        };
        apply(&mut self.acked, agent.acked);
        apply(&mut self.rejected, agent.rejected.is_some());
        match &agent.result {
            Some(result) => {
                apply(&mut self.answered, true);
                apply(&mut self.found, result.found_anything());
                apply(
                    &mut self.failed,
                    result.status != mig_proto::AgentStatus::Success,
                );
                apply(
                    &mut self.timed_out,
                    result.status == mig_proto::AgentStatus::Timeout,
                );
            }
            None => apply(&mut self.silent, agent.acked),
        }
    }
}

/// Signs (if needed), publishes and follows `action` to the end.
pub async fn launch(
    mut action: Action,
    key: Option<&SecretKey>,
    options: LaunchOptions,
) -> Result<LaunchOutcome, LaunchError> {
    // Agents refuse an action with an operation they cannot run, and count
    // it against whoever sent it: say so here instead.
    mig_node::modules::check_operations(&action.operations).map_err(other)?;
    let keypair = mig_node::identity::load_or_create(&options.data_dir).map_err(other)?;
    let config = console_config(&options);
    let shutdown = CancellationToken::new();
    let (mut node, task) = mesh::start_in(
        config,
        Role::Console,
        keypair,
        shutdown.clone(),
        options.environment.clone(),
    )
    .await
    .map_err(other)?;
    let this_console = node.peer_id.to_string();

    // Our addresses, for agents that must dial us directly: the listening
    // ones, and a relay circuit once the bootstrap relay grants one.
    let mut addresses: Vec<String> = Vec::new();
    let settle = Instant::now() + Duration::from_millis(300);
    let circuit_deadline = Instant::now() + CIRCUIT_WAIT;
    loop {
        let has_circuit = addresses
            .iter()
            .any(|address| address.contains("/p2p-circuit"));
        let until = if options.bootstrap.is_empty() || has_circuit {
            settle
        } else {
            circuit_deadline
        };
        match tokio::time::timeout_at(until, node.events.recv()).await {
            Ok(Some(MeshEvent::Listening(address))) => addresses.push(address.to_string()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }

    if action.signatures.is_empty() {
        let key = key.ok_or(LaunchError::NoKey)?;
        let seal = SealSecret::generate().map_err(other)?;
        action.reply_to = Some(ReplyTo {
            peer_id: this_console.clone(),
            addresses,
            seal_key: Some(seal.public().to_string()),
        });
        mig_keys::fill_launch_defaults(
            &mut action,
            Timestamp::from_system_time(std::time::SystemTime::now()),
            options.expiry_seconds,
        )
        .map_err(other)?;
        let store = node.store.clone();
        keep_seal(store, &action, seal).await?;
        mig_keys::sign_action(&mut action, key).map_err(other)?;
    } else {
        let signed_for = action
            .reply_to
            .as_ref()
            .map(|reply_to| reply_to.peer_id.clone())
            .unwrap_or_default();
        if signed_for != this_console {
            shutdown.cancel();
            return Err(LaunchError::SignedForAnotherConsole {
                signed_for,
                this: this_console,
            });
        }
        if let Err(error) = check_seal_is_kept(&node.store, &action) {
            shutdown.cancel();
            return Err(error);
        }
    }
    let signed = SignedAction::from_action(&action).map_err(other)?;
    let action_id = signed.id();

    let waiting_since = Instant::now();
    while node.subscribed_peers().await == 0 {
        if waiting_since.elapsed() > PEER_WAIT {
            shutdown.cancel();
            return Err(LaunchError::NoPeers(PEER_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // In the history before it is out: the node takes reports only for
    // actions this console sent.
    {
        let store = node.store.clone();
        let json = action.to_json_pretty();
        tokio::task::spawn_blocking(move || store.record_sent(&action_id.0, &json))
            .await
            .map_err(other)?
            .map_err(other)?;
    }
    node.publish(signed.to_wire()).await.map_err(other)?;
    let published = Instant::now();
    if let Some(tell) = &options.published {
        let _ = tell.send(action_id);
    }

    let expiry = action.expireafter.map_or(i64::MAX, Timestamp::unix_seconds);
    let mut agents = Roster::default();
    let last_report = collect(
        &mut node,
        action_id,
        expiry,
        &mut agents,
        published,
        &options,
    )
    .await;
    let status = node.status().await;
    shutdown.cancel();
    let _ = task.await;
    Ok(finish(
        action_id,
        action,
        agents,
        last_report.duration_since(published).as_millis(),
        status,
    ))
}

/// Keeps the secret that `action`'s reports are sealed to (its body is
/// final but for the signatures, so its id is known), before anything is
/// signed: an action is never out without its secret on disk.
pub async fn keep_seal(
    store: std::sync::Arc<mig_node::store::Store>,
    action: &Action,
    seal: SealSecret,
) -> Result<(), LaunchError> {
    let id = action.id().map_err(other)?;
    tokio::task::spawn_blocking(move || store.keep_seal(&id.0, &seal.to_bytes()))
        .await
        .map_err(other)?
        .map_err(other)
}

/// A pre-signed action whose reports are sealed must be sealed to a key
/// this console holds (it signed the action here, with `mig -s`), or its
/// results would come home unreadable.
fn check_seal_is_kept(store: &mig_node::store::Store, action: &Action) -> Result<(), LaunchError> {
    let Some(public) = action
        .reply_to
        .as_ref()
        .and_then(|reply_to| reply_to.seal_key.as_deref())
    else {
        return Ok(());
    };
    let id = action.id().map_err(other)?;
    let kept = store
        .seal(&id.0)
        .map_err(other)?
        .map(|secret| SealSecret::from_bytes(*secret).public().to_string());
    if kept.as_deref() == Some(public) {
        Ok(())
    } else {
        Err(LaunchError::SealKeyNotHere)
    }
}

/// How long the mesh must stay quiet after the last newcomer, heard
/// `last_newcomer_after` the publish. Without a count of agents to expect (a
/// first census, an empty roster), a fleet whose agents are still speaking
/// up seconds in is slow or large, and a fixed moment of quiet would end
/// the census before its slowest agents speak: half the time the newcomers
/// have taken so far, at least the usual moment.
fn quiet_period(last_newcomer_after: Duration, expected_known: bool) -> Duration {
    if expected_known {
        QUIET_AFTER_LAST_NEWCOMER
    } else {
        QUIET_AFTER_LAST_NEWCOMER.max(last_newcomer_after / 2)
    }
}

/// Collects reports for `action_id` until every agent that acked has
/// answered and the mesh has been quiet a moment (and `collect_for` has
/// passed), or the timeout or the action's expiry. Every report is kept in
/// the console's history. Returns when the last report came.
async fn collect(
    node: &mut mesh::NodeHandle,
    action_id: ActionId,
    expiry: i64,
    agents: &mut Roster,
    started: Instant,
    options: &LaunchOptions,
) -> Instant {
    let seconds_left = expiry
        .saturating_sub(Timestamp::from_system_time(std::time::SystemTime::now()).unix_seconds());
    let give_up = started
        + options.timeout.min(Duration::from_secs(
            u64::try_from(seconds_left.max(0)).unwrap_or(0) + 1,
        ));
    let mut last_newcomer = started;
    let mut last_report = started;
    let (to_history, history_writer) = history_writer(node.store.clone());
    let detach = options.detach.clone().unwrap_or_default();
    loop {
        if let Some(progress) = &options.progress {
            progress.send_replace(agents.summary.clone());
        }
        let all_answered = agents.all_answered();
        let quiet = quiet_period(
            last_newcomer.saturating_duration_since(started),
            options.expect_answers.is_some(),
        );
        let quiet_until = (last_newcomer + quiet).max(started + options.collect_for);
        let enough = options
            .expect_answers
            .is_none_or(|expected| agents.answered >= expected);
        if all_answered && enough && !agents.agents.is_empty() && Instant::now() >= quiet_until {
            break;
        }
        let wake = if all_answered && enough && !agents.agents.is_empty() {
            quiet_until.min(give_up)
        } else {
            give_up
        };
        let event = tokio::select! {
            () = detach.cancelled() => {
                agents.detached = true;
                break;
            }
            event = tokio::time::timeout_at(wake, node.events.recv()) => event,
        };
        match event {
            Ok(Some(MeshEvent::Report(report))) => {
                if report.action_id != action_id {
                    // Late news about an earlier action of this console
                    // (the node only hands over reports for actions in
                    // the history): kept for `mig results`.
                    keep_in_history(&to_history, &report).await;
                    continue;
                }
                last_report = Instant::now();
                keep_in_history(&to_history, &report).await;
                agents.record(*report, &mut last_newcomer, started);
            }
            Ok(Some(MeshEvent::Listening(_) | MeshEvent::Accepted { .. })) => {}
            Ok(None) => break,
            Err(_) if Instant::now() >= give_up => break,
            Err(_) => {}
        }
    }
    // The history is complete when collecting returns.
    drop(to_history);
    let _ = history_writer.await;
    last_report
}

/// Hands a report to the history writer in the form it is stored in.
/// Encoded here rather than copied for the writer to encode: the copy of
/// a decoded result (its attributes, its JSON) cost the console more than
/// the encoding does.
async fn keep_in_history(
    to_history: &tokio::sync::mpsc::Sender<mig_node::store::Received>,
    report: &Report,
) {
    if let Some(received) = to_received(report) {
        let _ = to_history.send(received).await;
    }
}

/// A thread writing reports into the console's history: whatever has
/// arrived since its last write goes in one transaction, so a burst of
/// reports costs a few syncs to disk rather than one each, and the
/// collecting loop rarely waits for the disk. The channel is bounded: when
/// the disk falls behind, collecting waits, the node's event queue fills,
/// and hops keep the reports in their outboxes until it catches up.
fn history_writer(
    store: std::sync::Arc<mig_node::store::Store>,
) -> (
    tokio::sync::mpsc::Sender<mig_node::store::Received>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<mig_node::store::Received>(MAX_HISTORY_BATCH);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(first) = receiver.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_HISTORY_BATCH {
                match receiver.try_recv() {
                    Ok(received) => batch.push(received),
                    Err(_) => break,
                }
            }
            if let Err(error) = store.record_received(&batch) {
                tracing::warn!(%error, "cannot keep reports in the history");
            }
        }
    });
    (sender, writer)
}

/// Reports written in one history transaction at most.
const MAX_HISTORY_BATCH: usize = 4096;

fn to_received(report: &Report) -> Option<mig_node::store::Received> {
    let kind = match report.body {
        ReportBody::Ack => 0,
        ReportBody::Rejected { .. } => 1,
        ReportBody::Result(_) => 2,
    };
    let mut bytes = Vec::new();
    ciborium::into_writer(report, &mut bytes).ok()?;
    Some(mig_node::store::Received {
        action: report.action_id.0,
        agent: report.agent.clone(),
        kind,
        bytes,
    })
}

/// An action this console launched, from its history; with `follow`,
/// rejoins the mesh (same identity, so reports still waiting in outboxes
/// come home) and collects the rest.
pub async fn results(
    action_id: ActionId,
    follow: bool,
    options: LaunchOptions,
) -> Result<LaunchOutcome, LaunchError> {
    let history = |store: &mig_node::store::Store| -> Result<(Action, Roster), LaunchError> {
        let json = store
            .sent(&action_id.0)
            .map_err(other)?
            .ok_or_else(|| other(format!("this console has no record of action {action_id}")))?;
        let action = Action::from_json(&json).map_err(other)?;
        let mut agents = Roster::default();
        let mut last_newcomer = Instant::now();
        for bytes in store.received(&action_id.0).map_err(other)? {
            if let Ok(report) = ciborium::de::from_reader::<Report, _>(bytes.as_slice()) {
                agents.record(report, &mut last_newcomer, Instant::now());
            }
        }
        Ok((action, agents))
    };
    let started = Instant::now();
    if !follow {
        let store = mig_node::store::Store::open(&options.data_dir).map_err(other)?;
        let (action, agents) = history(&store)?;
        return Ok(finish(action_id, action, agents, 0, None));
    }
    let keypair = mig_node::identity::load_or_create(&options.data_dir).map_err(other)?;
    let shutdown = CancellationToken::new();
    let (mut node, task) = mesh::start_in(
        console_config(&options),
        Role::Console,
        keypair,
        shutdown.clone(),
        options.environment.clone(),
    )
    .await
    .map_err(other)?;
    let (action, mut agents) = match history(&node.store) {
        Ok(found) => found,
        Err(error) => {
            shutdown.cancel();
            return Err(error);
        }
    };
    let expiry = action.expireafter.map_or(i64::MAX, Timestamp::unix_seconds) + 86_400;
    let last_report = collect(&mut node, action_id, expiry, &mut agents, started, &options).await;
    let status = node.status().await;
    shutdown.cancel();
    let _ = task.await;
    Ok(finish(
        action_id,
        action,
        agents,
        last_report.duration_since(started).as_millis(),
        status,
    ))
}

fn finish(
    action_id: ActionId,
    action: Action,
    agents: Roster,
    elapsed_ms: u128,
    status: Option<mesh::Status>,
) -> LaunchOutcome {
    let mut status = status.unwrap_or_default();
    if agents.over_limit > 0 {
        status
            .reports_dropped
            .insert("over_agent_limit".into(), agents.over_limit);
    }
    LaunchOutcome {
        action_id,
        action,
        summary: agents.summary,
        detached: agents.detached,
        agents: agents.agents.into_values().collect(),
        elapsed_ms,
        console_connections: status.connected_peers,
        reports_dropped: status.reports_dropped,
        graylisted_peers: status.graylisted_peers,
        expected: None,
        unheard: Vec::new(),
    }
}

fn console_config(options: &LaunchOptions) -> NodeConfig {
    NodeConfig {
        data_dir: options.data_dir.clone(),
        listen: options.listen.clone(),
        bootstrap: options.bootstrap.clone(),
        trusted: Default::default(),
        acl: Default::default(),
        tags: Default::default(),
        root: "/".into(),
        psk: options.psk,
        max_validity_seconds: mig_proto::verify::DEFAULT_MAX_VALIDITY_SECONDS,
        max_concurrent_actions: 1,
        peer_timeout: mig_node::config::DEFAULT_PEER_TIMEOUT,
        external_addresses: Vec::new(),
        mdns: options.mdns,
        name: None,
    }
}

/// Publishes a signed cancel for `action_id` through the mesh.
pub async fn cancel(
    action_id: ActionId,
    key: &SecretKey,
    options: LaunchOptions,
) -> Result<(), LaunchError> {
    let keypair = mig_node::identity::load_or_create(&options.data_dir).map_err(other)?;
    let config = console_config(&options);
    let shutdown = CancellationToken::new();
    let (node, task) = mesh::start_in(
        config,
        Role::Console,
        keypair,
        shutdown.clone(),
        options.environment.clone(),
    )
    .await
    .map_err(other)?;
    let mut signed = mig_proto::SignedCancel::new(
        action_id,
        Timestamp::from_system_time(std::time::SystemTime::now()),
    );
    signed.sign(key.signing_key());
    let waiting_since = Instant::now();
    while node.subscribed_peers().await == 0 {
        if waiting_since.elapsed() > PEER_WAIT {
            shutdown.cancel();
            return Err(LaunchError::NoPeers(PEER_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = node.publish(signed.to_wire()).await.map_err(other);
    // Give the flood a moment before the connection goes away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    let _ = task.await;
    published
}

/// Agents heard from about one action at most. Far above the fleets this
/// is built for (20,000 hosts); past it, a mesh full of made-up agents
/// cannot grow the console's memory further.
const MAX_AGENTS_PER_ACTION: usize = 200_000;

/// The agents heard from about one action, deduplicated by agent (a report
/// seen twice, from a retried hop, counts once), and how many acked
/// without answering yet.
struct Roster {
    agents: BTreeMap<String, AgentOutcome>,
    awaiting: usize,
    /// Agents with a result.
    answered: usize,
    limit: usize,
    /// Reports from agents past the limit, not kept.
    over_limit: u64,
    /// The counters over `agents`, kept as reports come.
    summary: Summary,
    /// Collecting was stopped on request.
    detached: bool,
}

impl Default for Roster {
    fn default() -> Self {
        Self {
            agents: BTreeMap::new(),
            awaiting: 0,
            answered: 0,
            limit: MAX_AGENTS_PER_ACTION,
            over_limit: 0,
            summary: Summary::default(),
            detached: false,
        }
    }
}

impl Roster {
    fn all_answered(&self) -> bool {
        self.awaiting == 0
    }

    fn record(&mut self, report: Report, last_newcomer: &mut Instant, published: Instant) {
        let newcomer = !self.agents.contains_key(&report.agent);
        if newcomer && self.agents.len() >= self.limit {
            self.over_limit += 1;
            return;
        }
        // Whatever it says first (an ack, a refusal, or a result that
        // overtook its ack), a newcomer restarts the moment of quiet.
        if newcomer {
            *last_newcomer = Instant::now();
        }
        let entry = self
            .agents
            .entry(report.agent.clone())
            .or_insert_with(|| AgentOutcome {
                peer: report.agent.clone(),
                attributes: report.attributes.clone(),
                acked: false,
                rejected: None,
                result: None,
                ack_ms: None,
                result_ms: None,
            });
        let was_awaited = entry.acked && entry.result.is_none();
        self.summary.add(entry, -1);
        match report.body {
            ReportBody::Ack => {
                entry.acked = true;
                entry.ack_ms.get_or_insert(published.elapsed().as_millis());
            }
            ReportBody::Rejected { reason } => {
                entry.rejected = Some(reason);
            }
            ReportBody::Result(result) => {
                // A result implies the ack, even if the ack was lost.
                self.answered += usize::from(entry.result.is_none());
                entry.acked = true;
                entry.result = Some(*result);
                let elapsed = published.elapsed().as_millis();
                entry.ack_ms.get_or_insert(elapsed);
                entry
                    .result_ms
                    .get_or_insert(published.elapsed().as_millis());
            }
        }
        self.summary.add(entry, 1);
        let awaited = entry.acked && entry.result.is_none();
        match (was_awaited, awaited) {
            (false, true) => self.awaiting += 1,
            (true, false) => self.awaiting -= 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_census_of_an_unknown_fleet_waits_longer_when_acks_come_late() {
        let second = Duration::from_secs(1);
        // Quick answers: the usual moment of quiet.
        assert_eq!(quiet_period(second / 2, false), QUIET_AFTER_LAST_NEWCOMER);
        // Acks still coming 10 s in: 5 s of quiet before concluding.
        assert_eq!(quiet_period(10 * second, false), 5 * second);
        // With a count to expect, the count decides, not the quiet.
        assert_eq!(quiet_period(10 * second, true), QUIET_AFTER_LAST_NEWCOMER);
    }

    #[tokio::test]
    async fn a_presigned_action_launches_only_with_its_seal_secret_kept_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(mig_node::store::Store::open(dir.path()).unwrap());
        let mut action = Action::from_json(
            r#"{"name":"x","target":"true","syntaxversion":2,"operations":[{"module":"agentinfo"}]}"#,
        )
        .unwrap();
        // No seal key: nothing to hold.
        assert!(check_seal_is_kept(&store, &action).is_ok());

        let seal = SealSecret::generate().unwrap();
        action.reply_to = Some(ReplyTo {
            peer_id: "12D3KooWexample".into(),
            addresses: Vec::new(),
            seal_key: Some(seal.public().to_string()),
        });
        assert!(matches!(
            check_seal_is_kept(&store, &action),
            Err(LaunchError::SealKeyNotHere)
        ));
        keep_seal(store.clone(), &action, seal).await.unwrap();
        assert!(check_seal_is_kept(&store, &action).is_ok());

        // Any other key (which makes another action) is not held.
        let other = SealSecret::generate().unwrap();
        if let Some(reply_to) = &mut action.reply_to {
            reply_to.seal_key = Some(other.public().to_string());
        }
        assert!(matches!(
            check_seal_is_kept(&store, &action),
            Err(LaunchError::SealKeyNotHere)
        ));
    }

    fn report(agent: &str, body: ReportBody) -> Report {
        Report {
            action_id: ActionId([1; 32]),
            agent: agent.into(),
            attributes: AgentAttributes::default(),
            body,
        }
    }

    fn result() -> ReportBody {
        let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        ReportBody::Result(Box::new(AgentResult {
            action_id: ActionId([1; 32]),
            agent: AgentAttributes::default(),
            status: mig_proto::AgentStatus::Success,
            reason: None,
            operations: Vec::new(),
            started_at: now,
            finished_at: now,
        }))
    }

    #[test]
    fn any_first_word_from_an_agent_restarts_the_quiet_but_repeats_do_not() {
        let mut roster = Roster::default();
        let published = Instant::now();
        let long_ago = published - Duration::from_secs(60);
        // A result without its ack (never made, or lost) is the first
        // word of a newcomer, as an ack or a refusal is.
        for (agent, body) in [
            ("a", result()),
            ("b", ReportBody::Ack),
            (
                "c",
                ReportBody::Rejected {
                    reason: "acl".into(),
                },
            ),
        ] {
            let mut last_newcomer = long_ago;
            roster.record(report(agent, body), &mut last_newcomer, published);
            assert!(last_newcomer > long_ago, "agent {agent}");
        }
        for (agent, body) in [("a", ReportBody::Ack), ("b", result())] {
            let mut last_newcomer = long_ago;
            roster.record(report(agent, body), &mut last_newcomer, published);
            assert_eq!(last_newcomer, long_ago, "agent {agent}");
        }
    }

    #[test]
    fn the_roster_counts_who_is_awaited_and_stops_growing_at_its_limit() {
        let mut roster = Roster {
            limit: 3,
            ..Roster::default()
        };
        let mut last_newcomer = Instant::now();
        let published = Instant::now();
        roster.record(report("a", ReportBody::Ack), &mut last_newcomer, published);
        roster.record(report("b", ReportBody::Ack), &mut last_newcomer, published);
        roster.record(report("a", ReportBody::Ack), &mut last_newcomer, published);
        assert_eq!(roster.awaiting, 2);
        roster.record(report("a", result()), &mut last_newcomer, published);
        roster.record(report("a", result()), &mut last_newcomer, published);
        // A result without its ack (the ack was lost) is an answer too.
        roster.record(report("c", result()), &mut last_newcomer, published);
        assert_eq!(roster.awaiting, 1);
        assert!(!roster.all_answered());
        roster.record(report("d", ReportBody::Ack), &mut last_newcomer, published);
        assert_eq!(roster.over_limit, 1);
        assert_eq!(roster.agents.len(), 3);
        roster.record(report("b", result()), &mut last_newcomer, published);
        assert!(roster.all_answered());
        assert_eq!(roster.answered, 3);
        // The running counters agree with counting afresh.
        let counted = Summary::of(roster.agents.values());
        assert_eq!(
            (
                roster.summary.acked,
                roster.summary.answered,
                roster.summary.silent
            ),
            (counted.acked, counted.answered, counted.silent)
        );
        assert_eq!((counted.acked, counted.answered, counted.silent), (3, 3, 0));
    }
}
