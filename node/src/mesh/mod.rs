//! The mesh: one libp2p swarm per node, driven by one task that owns it.
//!
//! ```text
//!   gossip message ──▶ validation (decode, verify, replay guard: a read)
//!        ▲                  │ accept / reject / ignore (reported back)
//!        │                  ▼
//!   publish (console)   agent: target? ── ack ──▶ outbox ──▶ next hop ──▶ … ──▶ console
//!                              └─ runtime ── result ─┘   (redb)  (request-response, batched)
//! ```
//!
//! Reports go to the console when connected to it; an agent otherwise
//! hands them to a relay the console named in its circuit addresses, or
//! back along the reverse path (each node remembers which peer first
//! delivered an action); every hop stores a batch in its outbox before
//! acknowledging it. When neither is there, or both keep failing, the node
//! dials the console directly (its addresses are in the signed
//! `reply_to`); relays never pass reports back into the mesh (`next_hop`). Everything that blocks (redb
//! writes, the outbox, modules) runs off the swarm task; validating an
//! action (one signature, one read) runs on it.

pub mod codec;
mod fresh_ports;
mod gossip_counts;
mod outcomes;
mod penalties;
pub mod reports;
mod screening;
pub mod sync;
pub mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, identify, kad, noise, ping, relay, tcp, yamux,
};
use mig_proto::signed::MAX_WIRE_BYTES;
use mig_proto::{
    ActionId, AgentContext, SignedAction, Timestamp, VerifyError, VerifyPolicy, verify,
};
use serde::Serialize;
use sha2::Digest;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::codec::MessageCodec;
use self::gossip_counts::GossipCounts;
use self::reports::{Delivery, DeliveryAck, Parcel, Report, ReportBody};
use self::screening::{Known, Screened};
use crate::config::NodeConfig;
use crate::runtime::{Runtime, RuntimeConfig, now_timestamp};
use crate::store::{Journal, Seen, Store};

/// The one gossipsub topic actions flood on.
pub const ACTIONS_TOPIC: &str = "mig/actions/1";
pub const REPORTS_PROTOCOL: StreamProtocol = StreamProtocol::new("/mig/reports/1");
const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/mig/sync/1");
const IDENTIFY_PROTOCOL: &str = "/mig/1.0.0";
/// Links each node tries to keep, so that it sits in a gossipsub mesh of
/// its own and the bootstrap relay is not a hub for everyone.
const TARGET_LINKS: usize = 6;
/// LAN peers remembered from mDNS. Anyone on the LAN can announce peers;
/// past this many, new ones are still dialled when found but not kept.
const MAX_LAN_PEERS: usize = 1024;
/// Links an agent keeps at most (beyond its gossip mesh and bootstrap
/// peers, surplus ones are closed).
const MAX_LINKS: usize = 12;
/// Peers each node pushes every action to (gossipsub's `mesh_n`; libp2p's
/// default is 6). Relays send every action straight to their agents, so
/// most mesh pushes are duplicates: six cost each simulated agent six
/// copies of every action, four cost four and spread it faster on a busy
/// machine (docs/decisions/0008).
pub const GOSSIP_MESH: usize = 4;
/// How often gossipsub grafts, prunes and gossips.
pub const GOSSIP_HEARTBEAT: Duration = Duration::from_millis(700);
/// Heartbeats at which a node tells peers outside its mesh (IHAVE) of an
/// action it has; libp2p's default is 3. Each telling is a message to up
/// to six peers, nearly all of which have the action already; once is
/// enough for lazy gossip's repair, with relays' direct sends and the
/// anti-entropy rounds behind it (docs/decisions/0010).
const LAZY_GOSSIP_ROUNDS: usize = 1;
/// A surplus link is closed only once it is this old, so discovery's own
/// connections are not closed and reopened in a loop.
const LINK_GRACE: Duration = Duration::from_secs(30);
/// Discovery ticks (5 s) between two anti-entropy rounds.
const ANTI_ENTROPY_TICKS: u32 = 3;
/// Reports a node keeps waiting at most; beyond it, hops refuse more
/// until some are delivered.
const MAX_OUTBOX: usize = 100_000;
/// Parcels per request to the next hop.
const PARCELS_PER_DELIVERY: usize = 128;
/// Parcels accepted in one delivery; a bigger batch is refused whole.
const MAX_PARCELS_RECEIVED: usize = 4 * PARCELS_PER_DELIVERY;
/// Deliveries out to one hop at a time at most.
const MAX_DELIVERIES_IN_FLIGHT: usize = 4;
/// How long a report delivery (or a catch-up request) waits for its
/// answer before libp2p fails it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A delivery out this long without an answer or a failure is given up
/// and retried: libp2p keeps a request's timer on its connection, so a
/// request that never reached one would wait forever (it happened, with a
/// connection the limits had denied).
const DELIVERY_GIVE_UP: Duration = Duration::from_secs(70);
/// A run still going this long after it could report sends an ack: a
/// run that is over by then sends its result alone (a result says
/// everything an ack says), which halves what every hop carries for quick
/// modules. An ack exists for the runs that take longer. The hold starts
/// once the key agreement for the action's reports is done, at the run's
/// priority (`Runtime::at_run_priority`): right after acceptance on a
/// host with a moment to spare, later on one busy with its own work or
/// with spreading actions, whose runs are late for that reason alone.
/// Half a second sent a thousand simulated agents' acks ahead of results
/// that came a moment later, and slowed the results (`mig-sim`); the
/// console's moment of quiet must outlast it.
pub const ACK_HOLD: Duration = Duration::from_millis(1000);
/// How long a stopping node waits for the work it spawned.
const TASKS_GRACE: Duration = Duration::from_secs(5);
/// Parcels are kept this long after their action expired, for a console
/// that comes back late.
const PARCEL_GRACE_SECONDS: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs actions it is targeted by; forwards gossip and reports.
    Agent,
    /// A well-known bootstrap peer: forwards gossip and reports, runs the
    /// circuit relay service, runs no modules.
    Relay,
    /// An investigator's peer: publishes actions and receives reports.
    Console,
}

/// The derive offers a new connection to the behaviours in field order,
/// and the first that denies it stops the rest. `limits` comes first:
/// request-response takes a connection into its list when offered one and
/// never hears that a later behaviour denied it, so its requests (report
/// deliveries) sent there were lost, with no failure and no timeout.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    reports: request_response::Behaviour<MessageCodec<Delivery, DeliveryAck>>,
    sync: request_response::Behaviour<MessageCodec<sync::SyncRequest, sync::SyncResponse>>,
    identify: identify::Behaviour,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    ping: ping::Behaviour,
    relay: Toggle<relay::Behaviour>,
    relay_client: relay::client::Behaviour,
    mdns: Toggle<libp2p::mdns::tokio::Behaviour>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot build the transport: {0}")]
    Transport(String),
    #[error("cannot listen on {address}: {message}")]
    Listen { address: Multiaddr, message: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("runtime: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
}

/// What a node tells its owner.
#[derive(Debug, Clone)]
pub enum MeshEvent {
    /// A new address this node listens on (with `/p2p/<id>`).
    Listening(Multiaddr),
    /// A report addressed to this node (consoles), signature checked.
    Report(Box<Report>),
    /// This node accepted (verified, journalled) an action and passes it
    /// on, at `at`: the owner may read the event much later on a busy
    /// machine (the simulator), and measures reach from this instant.
    /// Dropped when the owner does not keep up.
    Accepted {
        action: ActionId,
        at: std::time::Instant,
    },
}

/// How a node is embedded: the defaults are a real host (TCP, attributes
/// detected from the host, a module pool of its own). The simulator runs
/// many nodes in one process and replaces them.
#[derive(Clone, Default)]
pub struct Environment {
    /// Builds the node's transport (the simulator's in-memory links). It is
    /// given the node key and the node's byte counters, and must
    /// authenticate (Noise) and multiplex (Yamux) itself. `None`: TCP.
    pub transport: Option<TransportFactory>,
    /// The agent's attributes; `None`: detected from this host.
    pub attributes: Option<mig_proto::AgentAttributes>,
    /// The pool modules do parallel work on; `None`: one per node.
    pub module_pool: Option<Arc<rayon::ThreadPool>>,
    /// Threads module runs take turns on, shared by many nodes; `None`: a
    /// thread per run.
    pub module_threads: Option<Arc<crate::runtime::ModuleThreads>>,
}

/// See [`Environment::transport`].
pub type TransportFactory = Arc<
    dyn Fn(
            &Keypair,
            Arc<traffic::Traffic>,
        ) -> Result<
            libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
            Box<dyn std::error::Error + Send + Sync>,
        > + Send
        + Sync,
>;

impl std::fmt::Debug for Environment {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Environment")
            .field("transport", &self.transport.as_ref().map(|_| "custom"))
            .field("attributes", &self.attributes)
            .field("module_pool", &self.module_pool.is_some())
            .field("module_threads", &self.module_threads.is_some())
            .finish()
    }
}

/// Counters for `mig-node status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub peer_id: String,
    pub role: Option<Role>,
    pub connected_peers: usize,
    /// Connections opened since the node started (churn shows here).
    pub connections_opened: u64,
    /// Connections closed because the peer stopped answering pings.
    pub connections_dead: u64,
    pub mesh_peers: usize,
    /// Peers this node exchanges every action with outside the gossip
    /// mesh: an agent's relays, a relay's agents (`direct`).
    pub direct_peers: usize,
    pub actions_accepted: u64,
    pub actions_ignored: u64,
    pub actions_rejected: BTreeMap<String, u64>,
    pub actions_run: u64,
    /// Actions fetched from a peer on connecting (missed while away).
    pub actions_caught_up: u64,
    /// Cancels received (and passed on).
    pub cancels_received: u64,
    pub reports_forwarded: u64,
    /// Reports passed on whose routing fields (console, its addresses,
    /// expiry) disagreed with the signed action and were set back to it:
    /// a hop before this one rewrote them, or the agent made them up.
    pub reports_rerouted: u64,
    /// Acks made: a run still going `ACK_HOLD` after it could report.
    pub acks_sent: u64,
    /// Acks not sent after all, because the run's result was stored
    /// before they left.
    pub acks_superseded: u64,
    /// Report deliveries to a next hop that failed (and were retried).
    pub deliveries_failed: u64,
    /// Gossip messages (actions, cancels) received, every copy counted.
    pub gossip_received: u64,
    /// Of those, copies of a message already seen (duplicates).
    pub gossip_duplicates: u64,
    /// Gossip messages sent (published or passed on), every copy counted.
    pub gossip_sent: u64,
    /// Reports refused or dropped, by reason.
    pub reports_dropped: BTreeMap<String, u64>,
    pub outbox_length: usize,
    /// Report deliveries sent to a next hop and not answered yet.
    pub deliveries_out: usize,
    /// The oldest of those: its next hop and how long it has been out.
    pub oldest_delivery_out: Option<DeliveryOut>,
    /// Report deliveries received from peers and not answered yet.
    pub deliveries_unanswered: usize,
    /// Report deliveries received whose answer could not be sent or was
    /// lost (the connection closed or the stream failed first), by reason.
    pub answers_failed: BTreeMap<String, u64>,
    /// Connected peers whose gossip score fell below the graylist
    /// threshold (their messages are ignored).
    pub graylisted_peers: Vec<String>,
    /// Bytes on the wire since the node started.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// A report delivery out to a next hop, not answered yet.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryOut {
    pub to: String,
    pub age_s: f64,
}

enum Command {
    Publish {
        wire: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    SubscribedPeers {
        reply: oneshot::Sender<usize>,
    },
    Links {
        reply: oneshot::Sender<Links>,
    },
}

/// A node's links, cheaper to ask for than its [`Status`] (which reads
/// the gossip counters): what the simulator polls while a fleet forms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links {
    pub connected_peers: usize,
    pub mesh_peers: usize,
    pub direct_peers: usize,
    pub connections_opened: u64,
}

/// A running node.
pub struct NodeHandle {
    pub peer_id: PeerId,
    /// The node's store (a console keeps its history there).
    pub store: Arc<Store>,
    commands: mpsc::Sender<Command>,
    pub events: mpsc::Receiver<MeshEvent>,
}

impl NodeHandle {
    /// Publishes a signed action (wire bytes) on the action topic.
    pub async fn publish(&self, wire: Vec<u8>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Publish { wire, reply })
            .await
            .map_err(|_| "the node stopped".to_owned())?;
        answer.await.map_err(|_| "the node stopped".to_owned())?
    }

    pub async fn status(&self) -> Option<Status> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Status { reply }).await.ok()?;
        answer.await.ok()
    }

    /// How many peers this node knows subscribed to the action topic.
    pub async fn subscribed_peers(&self) -> usize {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::SubscribedPeers { reply })
            .await
            .is_err()
        {
            return 0;
        }
        answer.await.unwrap_or(0)
    }

    pub async fn links(&self) -> Option<Links> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Links { reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Work finished off the swarm task, reported back to it.
enum Internal {
    Enqueue {
        parcels: Vec<(u64, Parcel)>,
        /// A run's ack (counted as sent).
        ack: bool,
        /// A result: the outbox sequence of the ack it supersedes.
        supersedes: Option<u64>,
    },
    Stored {
        token: u64,
        /// The peer that delivered the batch.
        peer: PeerId,
        stored: u32,
        /// Verified reports for this console.
        local: Vec<Report>,
        forwarded: u64,
        /// Of those, parcels whose routing fields were set back to the
        /// action's (`screening::Route`).
        rerouted: u64,
        dropped: Vec<(&'static str, u64)>,
        penalty: f64,
    },
    Delivered {
        sequences: Vec<u64>,
    },
    SyncAnswer {
        token: u64,
        response: sync::SyncResponse,
    },
    SyncMissing {
        peer: PeerId,
        ids: Vec<serde_bytes::ByteBuf>,
    },
    Synced {
        source: PeerId,
        outcome: Validation,
    },
}

enum Validation {
    /// Forward it; run it if `run` (agents), else report `rejected` if
    /// targeted and a reason is given.
    Accept {
        action: Box<mig_proto::VerifiedAction>,
        refusal: Option<String>,
        wire: Vec<u8>,
        /// Unix seconds (0: no expiry given).
        expire_after: i64,
    },
    Reject(&'static str),
    Ignore(&'static str),
    /// A valid cancel: forward it, stop the action if it runs here.
    Cancel(mig_proto::Cancel),
}

struct Pending {
    parcel: Parcel,
    /// The relays the console said it is reachable through (its circuit
    /// addresses), worked out once.
    console_relays: Vec<PeerId>,
    in_flight: bool,
    failures: u32,
    next_attempt: Instant,
}

impl Pending {
    fn new(parcel: Parcel, next_attempt: Instant) -> Pending {
        let console_relays = parcel
            .console_addresses
            .iter()
            .filter_map(|address| address.parse::<Multiaddr>().ok())
            .filter_map(|address| circuit_relay(&address))
            .collect();
        Pending {
            parcel,
            console_relays,
            in_flight: false,
            failures: 0,
            next_attempt,
        }
    }
}

struct Mesh {
    swarm: Swarm<Behaviour>,
    role: Role,
    config: Arc<NodeConfig>,
    keypair: Keypair,
    store: Arc<Store>,
    runtime: Option<Arc<Runtime>>,
    topic: IdentTopic,
    /// Actions this node accepted: where each came from (its reports go
    /// back that way) and where its reports go. Kept as long as the
    /// action's parcels are.
    paths: HashMap<ActionId, ReversePath>,
    outbox: BTreeMap<u64, Pending>,
    /// Deliveries awaiting their ack: the hop, the parcels, when sent.
    in_flight: HashMap<request_response::OutboundRequestId, (PeerId, Vec<u64>, Instant)>,
    /// Deliveries awaiting their ack, per hop.
    in_flight_per_hop: HashMap<PeerId, usize>,
    responses: HashMap<u64, request_response::ResponseChannel<DeliveryAck>>,
    sync_responses: HashMap<u64, request_response::ResponseChannel<sync::SyncResponse>>,
    next_token: u64,
    events: mpsc::Sender<MeshEvent>,
    internal_sender: mpsc::Sender<Internal>,
    status: Status,
    traffic: Arc<traffic::Traffic>,
    /// gossipsub's counters.
    gossip_metrics: prometheus_client::registry::Registry,
    /// Actions running here, to stop them on a cancel.
    running: HashMap<ActionId, CancellationToken>,
    /// What earlier actions found here (`found('<id>')` targets).
    outcomes: outcomes::SharedOutcomes,
    /// Relays this console holds a circuit reservation on.
    reserved: std::collections::HashSet<PeerId>,
    /// Points against peers misbehaving on the direct streams.
    penalties: penalties::Penalties,
    /// When each connected peer was first connected.
    linked_since: HashMap<PeerId, Instant>,
    /// The configured listeners, closed on shutdown.
    listeners: Vec<libp2p::core::transport::ListenerId>,
    /// Connected peers other than consoles, with where they listen: what
    /// this node offers when asked for peers.
    linkable: HashMap<PeerId, Vec<Multiaddr>>,
    /// Peers gossipsub sends every action to, mesh or not: a relay's
    /// agents and an agent's relays (see `direct_role`); an agent's
    /// bootstrap peers from the start, connected or not.
    direct: std::collections::HashSet<PeerId>,
    /// Peers this node is dialling to make links.
    dialing: std::collections::HashSet<PeerId>,
    /// Peers mDNS found on the LAN, until their announcement expires: mDNS
    /// tells of a peer once, so a dial that failed is tried again from
    /// here (see `relink_lan`). At most `MAX_LAN_PEERS`.
    lan_peers: HashMap<PeerId, Multiaddr>,
    /// A peer request is out (at most one at a time).
    asking_for_peers: bool,
    /// Discovery ticks so far (anti-entropy runs every few).
    discovery_ticks: u32,
    shutdown: CancellationToken,
    /// Work spawned off the swarm task (commits, screening, runs): it
    /// holds the store, so the node waits for it before it is over.
    tasks: TaskTracker,
}

/// Builds the node's swarm: TCP, optionally wrapped in a pre-shared key,
/// then Noise and Yamux.
fn build_swarm(
    keypair: &Keypair,
    config: &NodeConfig,
    role: Role,
    counters: Arc<traffic::Traffic>,
    custom_transport: Option<TransportFactory>,
) -> Result<(Swarm<Behaviour>, prometheus_client::registry::Registry), MeshError> {
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::transport::{Boxed, Transport, upgrade::Version};
    let psk = config.psk;
    let peer_timeout = config.peer_timeout;
    let transport_error = |error: &dyn std::fmt::Display| MeshError::Transport(error.to_string());
    type BoxedError = Box<dyn std::error::Error + Send + Sync>;
    let transport = |key: &Keypair| -> Result<Boxed<(PeerId, StreamMuxerBox)>, BoxedError> {
        if let Some(factory) = &custom_transport {
            return factory(key, counters.clone());
        }
        let noise = noise::Config::new(key)?;
        let tcp = fresh_ports::FreshPorts(tcp::tokio::Transport::new(
            tcp::Config::default().nodelay(true),
        ))
        .map(move |stream, _| traffic::Counted::new(stream, counters.clone()));
        Ok(match psk {
            Some(bytes) => {
                let key = libp2p::pnet::PreSharedKey::new(bytes);
                tcp.and_then(move |socket, _| libp2p::pnet::PnetConfig::new(key).handshake(socket))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(Duration::from_secs(20))
                    .boxed()
            }
            None => tcp
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .timeout(Duration::from_secs(20))
                .boxed(),
        })
    };
    // gossipsub's own counters (every copy of a message received, and the
    // first copies), read when someone asks for the status.
    let mut gossip_metrics = prometheus_client::registry::Registry::default();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_other_transport(transport)
        .map_err(|error| transport_error(&error))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|error| transport_error(&error))?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let gossip_config = gossip_config()?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?
            .with_metrics(&mut gossip_metrics, gossipsub::MetricsConfig::default());
            let topic_hash = IdentTopic::new(ACTIONS_TOPIC).hash();
            // Agents behind one NAT share an address; colocation is normal.
            let mut score = gossipsub::PeerScoreParams {
                ip_colocation_factor_weight: 0.0,
                // The application score is minus a peer's penalty points
                // (`penalties.rs`), one for one.
                app_specific_weight: 1.0,
                ..Default::default()
            };
            let topic_score = gossipsub::TopicScoreParams {
                topic_weight: 1.0,
                time_in_mesh_weight: 0.01,
                first_message_deliveries_weight: 1.0,
                // Actions are rare: a quiet mesh peer is not a bad one.
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                // Each rejected (forged, malformed) action squares in: three
                // put the sender below the graylist threshold.
                invalid_message_deliveries_weight: -10.0,
                invalid_message_deliveries_decay: 0.99,
                ..gossipsub::TopicScoreParams::default()
            };
            score.topics.insert(topic_hash, topic_score);
            gossipsub.with_peer_score(score, gossipsub::PeerScoreThresholds::default())?;
            let reports = request_response::Behaviour::with_codec(
                MessageCodec::default(),
                [(REPORTS_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
            );
            let sync = request_response::Behaviour::with_codec(
                MessageCodec::default(),
                [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
            );
            // The role rides in the agent version, so peers never hand a
            // console's address out as a link to make.
            let identify = identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public()).with_agent_version(
                    format!("mig-mesh/{} {}", env!("CARGO_PKG_VERSION"), role_name(role)),
                ),
            );
            // Only relays run Kademlia (to find each other). Agents find a
            // few links by asking peers for peers (`SyncRequest::Peers`):
            // Kademlia's queries connect to many peers, gossipsub keeps
            // every connection alive, and a fleet ended fully connected.
            // A console talks to its bootstrap peers only.
            let kad = (role == Role::Relay).then(|| {
                let mut kad = kad::Behaviour::new(peer_id, kad::store::MemoryStore::new(peer_id));
                kad.set_mode(Some(kad::Mode::Server));
                kad
            });
            let mdns = if config.mdns {
                Some(libp2p::mdns::tokio::Behaviour::new(
                    libp2p::mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let limits = libp2p::connection_limits::ConnectionLimits::default()
                .with_max_established(Some(if role == Role::Relay { 8192 } else { 256 }))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(128))
                .with_max_pending_outgoing(Some(64));
            let relay = (role == Role::Relay).then(|| {
                relay::Behaviour::new(
                    peer_id,
                    relay::Config {
                        max_circuit_bytes: 64 * 1024 * 1024,
                        max_circuit_duration: Duration::from_secs(30 * 60),
                        max_reservations: 1024,
                        max_circuits: 1024,
                        max_circuits_per_peer: 16,
                        ..relay::Config::default()
                    },
                )
            });
            Ok(Behaviour {
                gossipsub,
                reports,
                sync,
                identify,
                kad: Toggle::from(kad),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(peer_timeout)
                        .with_timeout(peer_timeout),
                ),
                relay: Toggle::from(relay),
                limits: libp2p::connection_limits::Behaviour::new(limits),
                mdns: Toggle::from(mdns),
                relay_client,
            })
        })
        .map_err(|error| transport_error(&error))?
        .with_swarm_config(|swarm_config| {
            swarm_config.with_idle_connection_timeout(Duration::from_secs(120))
        })
        .build();
    Ok((swarm, gossip_metrics))
}

/// Dials the bootstrap peers again when connected to none of them. A peer
/// already being dialled is left to that dial: on a busy relay the first
/// handshake can take longer than the redial period, and each extra dial
/// was one more handshake for the relay and a second connection to it.
fn redial_bootstrap(swarm: &mut Swarm<Behaviour>, bootstrap: &[Multiaddr]) {
    let peers: Vec<(PeerId, Multiaddr)> = bootstrap
        .iter()
        .filter_map(|address| Some((peer_of(address)?, address.clone())))
        .collect();
    if peers.iter().any(|(peer, _)| swarm.is_connected(peer)) {
        return;
    }
    for (peer, address) in peers {
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(vec![address])
            .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
            .build();
        let _ = swarm.dial(options);
    }
}

/// The deliveries out longer than `DELIVERY_GIVE_UP` at `now`.
fn overdue<Id: Copy>(
    in_flight: &HashMap<Id, (PeerId, Vec<u64>, Instant)>,
    now: Instant,
) -> Vec<Id> {
    in_flight
        .iter()
        .filter(|(_, (_, _, sent))| now.saturating_duration_since(*sent) > DELIVERY_GIVE_UP)
        .map(|(id, _)| *id)
        .collect()
}

/// Gossipsub's settings, the same for every role.
fn gossip_config() -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        // Actions carry the investigator's signature, checked by
        // every node; a gossip-level signature of the publishing
        // peer would add nothing but one more verification per copy.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message: &gossipsub::Message| {
            MessageId::from(sha2::Sha256::digest(&message.data).to_vec())
        })
        .max_transmit_size(MAX_WIRE_BYTES + 64 * 1024)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(GOSSIP_HEARTBEAT)
        .history_gossip(LAZY_GOSSIP_ROUNDS)
        .mesh_n(GOSSIP_MESH)
        .mesh_n_low(GOSSIP_MESH - 1)
        .mesh_n_high(2 * GOSSIP_MESH)
        .mesh_outbound_min(GOSSIP_MESH / 2)
        .duplicate_cache_time(Duration::from_secs(300))
        // IDONTWANT (gossipsub 1.2) tells every mesh peer, for each
        // message received, not to send it: worth it for large
        // messages; an action of a kilobyte or two costs more in
        // control messages than its duplicates do.
        .idontwant_message_size_threshold(16 * 1024)
        .build()
        .map_err(|error| error.to_string())
}

/// The peer an address names (its last part, `/p2p/<id>`), if it does.
fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// Where a report goes next, in order:
/// 1. the console, when this node is connected to it;
/// 2. for an agent, a relay the console is reachable through (named in its
///    circuit addresses) that the agent is connected to (agents keep a
///    link to their bootstrap relays), so the report comes home in two
///    hops; moved past after two failures;
/// 3. back along the reverse path, to the peer that first delivered the
///    action, after three failures no longer;
/// 4. the console, dialled through its addresses.
///
/// A relay never passes a report back into the mesh: it follows the
/// reverse path only to another relay, else it goes to the console.
/// Reverse paths form a tree, and agents climb it or jump to a relay, so
/// no report can go round in a circle (a relay whose path led to an agent
/// would be handed the report straight back).
fn next_hop(
    role: Role,
    console: PeerId,
    console_relays: &[PeerId],
    reverse_path: Option<&PeerId>,
    failures: u32,
    is_connected: impl Fn(&PeerId) -> bool,
    is_relay: impl Fn(&PeerId) -> bool,
) -> PeerId {
    if is_connected(&console) {
        return console;
    }
    if role == Role::Agent
        && failures < 2
        && let Some(relay) = console_relays.iter().find(|relay| is_connected(relay))
    {
        return *relay;
    }
    match reverse_path {
        Some(previous)
            if failures < 3
                && *previous != console
                && is_connected(previous)
                && (role == Role::Agent || is_relay(previous)) =>
        {
            *previous
        }
        _ => console,
    }
}

/// The relay of a circuit address (`.../p2p/<relay>/p2p-circuit/...`).
fn circuit_relay(address: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for part in address.iter() {
        match part {
            libp2p::multiaddr::Protocol::P2p(peer) => relay = Some(peer),
            libp2p::multiaddr::Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// A role's name, as peers see it in identify's agent version.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Relay => "relay",
        Role::Console => "console",
    }
}

/// A peer's role, from the agent version its identify announces
/// (`mig-mesh/<version> <role>`); `None` for anything else.
fn peer_role(agent_version: &str) -> Option<Role> {
    let (software, role) = agent_version.split_once(' ')?;
    if !software.starts_with("mig-mesh/") {
        return None;
    }
    [Role::Agent, Role::Relay, Role::Console]
        .into_iter()
        .find(|candidate| role_name(*candidate) == role)
}

/// The role of the peers a node of `role` sends every action to directly,
/// outside the gossip mesh (gossipsub's explicit peers): a relay to all
/// its agents, an agent to its relays. An action then reaches every agent
/// linked to a relay one hop after the relay, where the mesh alone took
/// five or six; the mesh still carries it to agents the relay does not
/// reach. Both ends mark each other, so neither grafts the other (gossipsub
/// ignores a graft from an explicit peer). Decision 6.
fn direct_role(role: Role) -> Option<Role> {
    match role {
        Role::Relay => Some(Role::Agent),
        Role::Agent => Some(Role::Relay),
        Role::Console => None,
    }
}

/// Starts a node. It runs until `shutdown` is cancelled.
pub async fn start(
    config: NodeConfig,
    role: Role,
    keypair: Keypair,
    shutdown: CancellationToken,
) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), MeshError> {
    start_in(config, role, keypair, shutdown, Environment::default()).await
}

/// Starts a node embedded in `environment` (the simulator's).
pub async fn start_in(
    config: NodeConfig,
    role: Role,
    keypair: Keypair,
    shutdown: CancellationToken,
    environment: Environment,
) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), MeshError> {
    let config = Arc::new(config);
    let store = Arc::new(Store::open(&config.data_dir)?);
    let remembered = Arc::new(std::sync::Mutex::new(outcomes::Outcomes::load(&store)));
    let counters = Arc::new(traffic::Traffic::default());
    let (mut swarm, gossip_metrics) = build_swarm(
        &keypair,
        &config,
        role,
        counters.clone(),
        environment.transport.clone(),
    )?;
    let peer_id = *swarm.local_peer_id();
    let mut listeners = Vec::new();
    for address in &config.listen {
        listeners.push(
            swarm
                .listen_on(address.clone())
                .map_err(|error| MeshError::Listen {
                    address: address.clone(),
                    message: error.to_string(),
                })?,
        );
    }
    for address in &config.external_addresses {
        swarm.add_external_address(address.clone());
    }
    let topic = IdentTopic::new(ACTIONS_TOPIC);
    if let Err(error) = swarm.behaviour_mut().gossipsub.subscribe(&topic) {
        return Err(MeshError::Transport(error.to_string()));
    }
    for address in &config.bootstrap {
        if let Some(bootstrap_peer) = peer_of(address)
            && let Some(kad) = swarm.behaviour_mut().kad.as_mut()
        {
            kad.add_address(&bootstrap_peer, address.clone());
        }
        if let Err(error) = swarm.dial(address.clone()) {
            tracing::warn!(%address, %error, "cannot dial bootstrap peer");
        }
    }
    let runtime = if role == Role::Agent {
        let mut attributes = match environment.attributes {
            Some(attributes) => attributes,
            None => crate::host::detect_attributes(&peer_id.to_string(), config.tags.clone()),
        };
        if let Some(name) = &config.name {
            attributes.name.clone_from(name);
        }
        let runtime_config = RuntimeConfig {
            root: config.root.clone(),
            max_concurrent_actions: config.max_concurrent_actions,
            pool: environment.module_pool,
            module_threads: environment.module_threads,
            ..RuntimeConfig::default()
        };
        Some(Arc::new(Runtime::new(
            runtime_config,
            attributes,
            Some(store.clone()),
        )?))
    } else {
        None
    };
    let (command_sender, command_receiver) = mpsc::channel(64);
    let (event_sender, event_receiver) = mpsc::channel(1024);
    let (internal_sender, internal_receiver) = mpsc::channel(1024);
    let handle_store = store.clone();
    let mut mesh = Mesh {
        swarm,
        role,
        config,
        keypair,
        store,
        runtime,
        topic,
        paths: HashMap::new(),
        outbox: BTreeMap::new(),
        in_flight: HashMap::new(),
        in_flight_per_hop: HashMap::new(),
        responses: HashMap::new(),
        sync_responses: HashMap::new(),
        next_token: 0,
        events: event_sender,
        internal_sender,
        status: Status {
            peer_id: peer_id.to_string(),
            role: Some(role),
            ..Status::default()
        },
        traffic: counters,
        gossip_metrics,
        reserved: std::collections::HashSet::new(),
        penalties: penalties::Penalties::default(),
        linked_since: HashMap::new(),
        listeners,
        linkable: HashMap::new(),
        direct: std::collections::HashSet::new(),
        dialing: std::collections::HashSet::new(),
        lan_peers: HashMap::new(),
        asking_for_peers: false,
        discovery_ticks: 0,
        running: HashMap::new(),
        outcomes: remembered,
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    };
    mesh.load_outbox();
    if role == Role::Agent {
        mesh.peer_with_bootstrap_relays();
        mesh.resume_interrupted();
    }
    let task = tokio::spawn(async move { mesh.run(command_receiver, internal_receiver).await });
    Ok((
        NodeHandle {
            peer_id,
            store: handle_store,
            commands: command_sender,
            events: event_receiver,
        },
        task,
    ))
}

impl Mesh {
    fn load_outbox(&mut self) {
        match self.store.outbox_all() {
            Ok(entries) => {
                for (sequence, bytes) in entries {
                    match ciborium::de::from_reader::<Parcel, _>(bytes.as_slice()) {
                        Ok(parcel) => {
                            self.outbox
                                .insert(sequence, Pending::new(parcel, Instant::now()));
                        }
                        Err(error) => {
                            tracing::warn!(sequence, %error, "dropping an unreadable outbox entry")
                        }
                    }
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the outbox"),
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
    ) {
        let mut flush = tokio::time::interval(Duration::from_millis(100));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut discovery = tokio::time::interval(Duration::from_secs(5));
        let mut housekeeping = tokio::time::interval(Duration::from_secs(600));
        let mut redial = tokio::time::interval(Duration::from_secs(3));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                Some(command) = commands.recv() => self.on_command(command),
                Some(work) = internal.recv() => self.on_internal(work),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                // Only while something waits: an idle node's timer would
                // wake it ten times a second for nothing (a thousand idle
                // nodes in the simulator: ten thousand wake-ups a second).
                _ = flush.tick(), if !self.outbox.is_empty() => self.flush_outbox(),
                _ = discovery.tick() => {
                    self.give_up_overdue_deliveries();
                    self.discover();
                }
                _ = housekeeping.tick() => self.housekeeping(),
                _ = redial.tick() => self.redial_bootstrap(),
            }
        }
        // Closed explicitly: some transports (the in-memory one the
        // simulator uses) free an address only then, and a node restarted
        // in the same process must get its address back.
        for listener in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(listener);
        }
        // The work still out holds the store: the node is over when that
        // work is, so whoever opens the store next in this process (the
        // console's next command, a restarted node) finds it free. With
        // the channels closed, nothing of it waits on this task.
        drop(internal);
        drop(commands);
        let tasks = self.tasks.clone();
        tasks.close();
        drop(self);
        if tokio::time::timeout(TASKS_GRACE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = tasks.len(),
                "stopped without waiting for the last of the node's work"
            );
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { wire, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), wire)
                    .map(|_| ())
                    .map_err(|error| error.to_string());
                let _ = reply.send(result);
            }
            Command::Status { reply } => {
                let mut status = self.status.clone();
                let links = self.links();
                status.connected_peers = links.connected_peers;
                status.mesh_peers = links.mesh_peers;
                status.direct_peers = links.direct_peers;
                status.outbox_length = self.outbox.len();
                status.deliveries_out = self.in_flight.len();
                status.oldest_delivery_out = self
                    .in_flight
                    .values()
                    .min_by_key(|(_, _, sent)| *sent)
                    .map(|(hop, _, sent)| DeliveryOut {
                        to: hop.to_string(),
                        age_s: sent.elapsed().as_secs_f64(),
                    });
                status.deliveries_unanswered = self.responses.len();
                status.bytes_sent = self.traffic.sent();
                let counts = GossipCounts::read(&self.gossip_metrics);
                status.gossip_received = counts.received;
                status.gossip_duplicates = counts.received.saturating_sub(counts.unique);
                status.gossip_sent = counts.sent;
                let graylist = gossipsub::PeerScoreThresholds::default().graylist_threshold;
                let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                status.graylisted_peers = connected
                    .into_iter()
                    .filter(|peer| {
                        self.swarm
                            .behaviour()
                            .gossipsub
                            .peer_score(peer)
                            .is_some_and(|score| score < graylist)
                    })
                    .chain(self.penalties.graylisted().copied())
                    .collect::<std::collections::BTreeSet<PeerId>>()
                    .into_iter()
                    .map(|peer| peer.to_string())
                    .collect();
                status.bytes_received = self.traffic.received();
                let _ = reply.send(status);
            }
            Command::SubscribedPeers { reply } => {
                let topic = self.topic.hash();
                let count = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&topic))
                    .count();
                let _ = reply.send(count);
            }
            Command::Links { reply } => {
                let _ = reply.send(self.links());
            }
        }
    }

    fn links(&self) -> Links {
        Links {
            connected_peers: self.swarm.connected_peers().count(),
            mesh_peers: self
                .swarm
                .behaviour()
                .gossipsub
                .mesh_peers(&self.topic.hash())
                .count(),
            direct_peers: self
                .direct
                .iter()
                .filter(|peer| self.swarm.is_connected(peer))
                .count(),
            connections_opened: self.status.connections_opened,
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match &event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.status.connections_opened += 1;
                self.linked_since
                    .entry(*peer_id)
                    .or_insert_with(Instant::now);
                self.dialing.remove(peer_id);
                // Whoever dials a relay is taken for an agent until its
                // identify says otherwise (consoles and other relays are
                // few): in between, the relay's heartbeat could graft the
                // agent, which ignores a graft from a direct peer with a
                // warning.
                if self.role == Role::Relay
                    && endpoint.is_listener()
                    && num_established.get() == 1
                    && !self.is_bootstrap(peer_id)
                {
                    self.mark_direct(*peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.linked_since.remove(peer_id);
                self.linkable.remove(peer_id);
                if !self.is_bootstrap(peer_id) {
                    self.drop_direct(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                ..
            } => {
                self.dialing.remove(peer_id);
            }
            _ => {}
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address
                    .clone()
                    .with_p2p(*self.swarm.local_peer_id())
                    .unwrap_or(address.clone());
                if self.role == Role::Relay {
                    self.swarm.add_external_address(address);
                }
                let _ = self.events.try_send(MeshEvent::Listening(full));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.validate(propagation_source, message_id, message.data);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                // Only peers that serve Kademlia (relays) go into the
                // routing table.
                if info.protocols.contains(&kad::PROTOCOL_NAME)
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    for address in &info.listen_addrs {
                        kad.add_address(&peer_id, address.clone());
                    }
                }
                let role = peer_role(&info.agent_version);
                if role.is_some() && role == direct_role(self.role) {
                    if self.swarm.is_connected(&peer_id) {
                        self.mark_direct(peer_id);
                    }
                } else {
                    // An agent's bootstrap peer that is not a relay after
                    // all, or a console or relay that dialled a relay.
                    self.drop_direct(&peer_id);
                }
                // Consoles are never offered as links.
                if role != Some(Role::Console) && self.swarm.is_connected(&peer_id) {
                    let addresses: Vec<Multiaddr> = info
                        .listen_addrs
                        .into_iter()
                        .filter(|address| {
                            !address
                                .iter()
                                .any(|part| part == libp2p::multiaddr::Protocol::P2pCircuit)
                        })
                        .take(8)
                        .collect();
                    if !addresses.is_empty() {
                        self.linkable.insert(peer_id, addresses);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, ..
            })) if self.role != Role::Console
                && self.swarm.connected_peers().count() < TARGET_LINKS
                && !self.swarm.is_connected(&peer) =>
            {
                let _ = self.swarm.dial(peer);
            }
            // libp2p leaves the policy to us. A peer that lost power or
            // sits behind a cut link closes nothing; without this its
            // connection would hold gossip and report paths until TCP gave
            // up, many minutes later. A peer without ping is not one of
            // ours, and is left to the idle timeout.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(failure),
            })) if !matches!(failure, ping::Failure::Unsupported) => {
                tracing::info!(%peer, %failure, "closing a connection whose peer stopped answering");
                self.status.connections_dead += 1;
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Reports(event)) => self.on_reports_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                tracing::debug!(?event, "relay client");
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::debug!(?addresses, ?reason, "listener closed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found))) => {
                for (peer, address) in found {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.add_address(&peer, address.clone());
                    }
                    if self.lan_peers.len() < MAX_LAN_PEERS || self.lan_peers.contains_key(&peer) {
                        self.lan_peers.insert(peer, address.clone());
                    }
                    if !self.swarm.is_connected(&peer)
                        && !self.dialing.contains(&peer)
                        && (self.role == Role::Console
                            || self.swarm.connected_peers().count() < TARGET_LINKS)
                    {
                        self.dial_peer(peer, vec![address]);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Expired(gone))) => {
                for (peer, address) in gone {
                    if self.lan_peers.get(&peer) == Some(&address) {
                        self.lan_peers.remove(&peer);
                    }
                }
            }
            // A console reserves a slot on each bootstrap relay once it is
            // connected (a second dial would be refused): the circuit
            // address goes into `reply_to`, so an agent whose reverse path
            // broke can still reach the console through the relay.
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.role == Role::Console => {
                let circuits: Vec<Multiaddr> = self
                    .config
                    .bootstrap
                    .iter()
                    .filter(|address| peer_of(address) == Some(peer_id))
                    .map(|address| {
                        address
                            .clone()
                            .with(libp2p::multiaddr::Protocol::P2pCircuit)
                    })
                    .collect();
                for circuit in circuits {
                    if self.reserved.insert(peer_id)
                        && let Err(error) = self.swarm.listen_on(circuit.clone())
                    {
                        tracing::warn!(%circuit, %error, "cannot reserve a relay circuit");
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if self.role != Role::Console => {
                // Reports waiting for this peer (a console that came back)
                // go now, not at the end of their back-off.
                let peer_bytes = peer_id.to_bytes();
                let now = Instant::now();
                for pending in self.outbox.values_mut() {
                    if pending.parcel.console == peer_bytes {
                        pending.next_attempt = now;
                    }
                }
                // Catch up with each peer once, on the first connection.
                if num_established.get() == 1 {
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer_id, sync::SyncRequest::Ids);
                }
                if self.swarm.connected_peers().count() <= 2
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    let _ = kad.bootstrap();
                }
                if num_established.get() == 1 && self.role == Role::Agent {
                    self.ask_for_peers(Some(peer_id));
                }
            }
            _ => {}
        }
    }

    /// An agent peers directly with its bootstrap peers (relays, as a rule)
    /// before it even connects, not once their identify says so: in
    /// between, the agent's heartbeat could graft the relay, which ignores
    /// a graft from a direct peer with a warning.
    fn peer_with_bootstrap_relays(&mut self) {
        let bootstrap: Vec<PeerId> = self.bootstrap_peers().collect();
        for peer in bootstrap {
            self.mark_direct(peer);
        }
    }

    /// The peers of the configured bootstrap addresses.
    fn bootstrap_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.config.bootstrap.iter().filter_map(peer_of)
    }

    fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.bootstrap_peers().any(|bootstrap| bootstrap == *peer)
    }

    fn mark_direct(&mut self, peer: PeerId) {
        if self.direct.insert(peer) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .add_explicit_peer(&peer);
        }
    }

    fn drop_direct(&mut self, peer: &PeerId) {
        if self.direct.remove(peer) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .remove_explicit_peer(peer);
        }
    }

    /// A node cut off from all its bootstrap peers (a relay restarted, a
    /// link came back) dials them again, so the mesh reforms by itself.
    fn redial_bootstrap(&mut self) {
        redial_bootstrap(&mut self.swarm, &self.config.bootstrap);
    }

    /// Keeps the node linked to several peers, and to not too many:
    /// Kademlia's queries connect to many peers and gossipsub keeps every
    /// connection alive, so without trimming a small fleet ends fully
    /// connected (and every action's gossip control traffic grows with it).
    fn discover(&mut self) {
        let connected = self.swarm.connected_peers().count();
        if connected < TARGET_LINKS
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            let _ = kad.bootstrap();
        }
        self.relink_lan();
        if self.role == Role::Agent {
            self.ask_for_peers(None);
            self.anti_entropy();
        }
        if self.role == Role::Agent && connected > MAX_LINKS {
            self.trim_links(connected - MAX_LINKS);
        }
    }

    /// Dials LAN peers this node is not linked to, while it has fewer
    /// links than it wants. A dial mDNS prompted that failed (the peer was
    /// starting, a packet was lost) is not prompted again until the
    /// announcement expires, minutes later; two agents alone on a LAN
    /// would stay apart until then. (A console dials every peer mDNS
    /// finds, but does not redial past `TARGET_LINKS`: agents trim surplus
    /// links, and a console insisting on each would churn.)
    fn relink_lan(&mut self) {
        let unlinked: Vec<(PeerId, Multiaddr)> = self
            .lan_peers
            .iter()
            .filter(|(peer, _)| !self.swarm.is_connected(peer) && !self.dialing.contains(peer))
            .map(|(peer, address)| (*peer, address.clone()))
            .collect();
        for (peer, address) in unlinked {
            if self.swarm.connected_peers().count() + self.dialing.len() >= TARGET_LINKS {
                break;
            }
            self.dial_peer(peer, vec![address]);
        }
    }

    /// Dials `peer` at `addresses`, remembering the dial until it ends
    /// so that no other dial to it starts meanwhile.
    fn dial_peer(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addresses)
            .build();
        if self.swarm.dial(options).is_ok() {
            self.dialing.insert(peer);
        }
    }

    /// Every `ANTI_ENTROPY_TICKS` discovery ticks, asks one connected peer
    /// (in turn) which actions it holds. Catching up on connecting misses
    /// an action published while this agent's links were quiet but cut
    /// (a partition that broke no connection): gossip forgets within
    /// seconds, this does not.
    fn anti_entropy(&mut self) {
        self.discovery_ticks = self.discovery_ticks.wrapping_add(1);
        if !self.discovery_ticks.is_multiple_of(ANTI_ENTROPY_TICKS) {
            return;
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if connected.is_empty() {
            return;
        }
        let peer =
            connected[(self.discovery_ticks / ANTI_ENTROPY_TICKS) as usize % connected.len()];
        self.swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, sync::SyncRequest::Ids);
    }

    /// Asks a connected peer (`from`, or a bootstrap peer, or any) for
    /// peers to link to, when this agent has fewer links than it wants.
    fn ask_for_peers(&mut self, from: Option<PeerId>) {
        let connected = self.swarm.connected_peers().count();
        if self.asking_for_peers || connected + self.dialing.len() >= TARGET_LINKS {
            return;
        }
        let bootstrap = self
            .bootstrap_peers()
            .find(|peer| self.swarm.is_connected(peer));
        let Some(peer) = from
            .or(bootstrap)
            .or_else(|| self.swarm.connected_peers().next().copied())
        else {
            return;
        };
        self.asking_for_peers = true;
        self.swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, sync::SyncRequest::Peers);
    }

    /// A sample of the peers this node could offer as links, not `asker`.
    fn offer_peers(&self, asker: &PeerId) -> Vec<mig_proto::messages::PeerRecord> {
        let candidates: Vec<(&PeerId, &Vec<Multiaddr>)> = self
            .linkable
            .iter()
            .filter(|(peer, _)| *peer != asker)
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        // A random window over the candidates: different askers get
        // different peers, so links spread over the fleet.
        let mut start = [0u8; 8];
        let _ = getrandom::fill(&mut start);
        let start = (u64::from_le_bytes(start) % candidates.len() as u64) as usize;
        candidates
            .iter()
            .cycle()
            .skip(start)
            .take(candidates.len().min(mig_proto::messages::MAX_SYNC_PEERS))
            .map(|(peer, addresses)| mig_proto::messages::PeerRecord {
                peer: serde_bytes::ByteBuf::from(peer.to_bytes()),
                addresses: addresses.iter().map(ToString::to_string).collect(),
            })
            .collect()
    }

    /// Dials offered peers until this agent has the links it wants.
    fn link_to(&mut self, offered: Vec<mig_proto::messages::PeerRecord>) {
        let local = *self.swarm.local_peer_id();
        for record in offered
            .into_iter()
            .take(mig_proto::messages::MAX_SYNC_PEERS)
        {
            if self.swarm.connected_peers().count() + self.dialing.len() >= TARGET_LINKS {
                break;
            }
            let Ok(peer) = PeerId::from_bytes(&record.peer) else {
                continue;
            };
            if peer == local || self.swarm.is_connected(&peer) || self.dialing.contains(&peer) {
                continue;
            }
            let addresses: Vec<Multiaddr> = record
                .addresses
                .iter()
                .take(8)
                .filter_map(|address| address.parse().ok())
                .collect();
            if addresses.is_empty() {
                continue;
            }
            self.dial_peer(peer, addresses);
        }
    }

    /// Closes up to `surplus` connections to peers this agent does not
    /// need: not in its gossip mesh, not a bootstrap peer, not on a reverse
    /// path it serves, not waiting for a delivery.
    fn trim_links(&mut self, surplus: usize) {
        let topic = self.topic.hash();
        let keep: std::collections::HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .mesh_peers(&topic)
            .copied()
            .chain(self.bootstrap_peers())
            .chain(self.paths.values().map(|path| path.previous))
            .collect();
        let now = Instant::now();
        let spare: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|peer| !keep.contains(peer))
            .filter(|peer| {
                self.linked_since
                    .get(peer)
                    .is_some_and(|since| now.duration_since(*since) >= LINK_GRACE)
            })
            .copied()
            .take(surplus)
            .collect();
        for peer in spare {
            tracing::debug!(%peer, "closing a surplus link");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn housekeeping(&mut self) {
        for (peer, total) in self.penalties.decay() {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&peer, -total);
        }
        let store = self.store.clone();
        let now = now_timestamp().unix_seconds();
        self.tasks.spawn_blocking(move || {
            if let Err(error) = store.collect_expired_actions(now - 3600) {
                tracing::warn!(%error, "cannot collect expired actions");
            }
        });
        let limit = now - PARCEL_GRACE_SECONDS;
        forget_expired_paths(&mut self.paths, limit);
        let expired: Vec<u64> = self
            .outbox
            .iter()
            .filter(|(_, pending)| pending.parcel.expire_after < limit && !pending.in_flight)
            .map(|(sequence, _)| *sequence)
            .collect();
        if !expired.is_empty() {
            for sequence in &expired {
                self.outbox.remove(sequence);
            }
            let store = self.store.clone();
            self.tasks
                .spawn_blocking(move || store.outbox_remove(&expired));
        }
    }

    /// Validates a gossiped action here, on the swarm task, and reports
    /// the verdict at once. It costs one signature check and a read
    /// transaction (tens of microseconds, no write): handing it to the
    /// blocking pool cost a cross-thread wake-up per node, and in the
    /// simulator that wake-up waited behind every busy task, a sixth of a
    /// second per gossip hop. A flood of forgeries costs one check each and
    /// graylists its sender after three.
    fn validate(&mut self, source: PeerId, message_id: MessageId, data: Vec<u8>) {
        if self.role == Role::Console {
            // A console publishes; it does not pass on other consoles' actions.
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&message_id, &source, MessageAcceptance::Ignore);
            return;
        }
        let outcome = check_action(&data, &self.config, &self.store);
        self.on_validated(message_id, source, outcome);
    }

    fn on_internal(&mut self, work: Internal) {
        match work {
            Internal::Enqueue {
                parcels,
                ack,
                supersedes,
            } => {
                // The store dropped the ack with the result's commit; if it
                // has not left yet, it never does.
                if let Some(ack) = supersedes
                    && self.outbox.get(&ack).is_some_and(|ack| !ack.in_flight)
                {
                    self.outbox.remove(&ack);
                    self.status.acks_superseded += 1;
                }
                if ack {
                    self.status.acks_sent += 1;
                }
                let now = Instant::now();
                for (sequence, parcel) in parcels {
                    self.outbox.insert(sequence, Pending::new(parcel, now));
                }
                self.flush_outbox();
            }
            Internal::Stored {
                token,
                peer,
                stored,
                local,
                forwarded,
                rerouted,
                dropped,
                penalty,
            } => {
                if penalty > 0.0 {
                    self.penalize(peer, penalty);
                }
                for (reason, count) in dropped {
                    self.count_dropped_reports(reason, count, peer);
                }
                self.status.reports_forwarded += forwarded;
                self.count_rerouted_reports(rerouted, peer);
                tracing::debug!(from = %peer, mine = local.len(), forwarded, "reports received");
                let mut handed_over = true;
                for report in local {
                    handed_over &= self.hand_over(report);
                }
                // All or nothing: the sender keeps the batch until it is
                // acknowledged, and reports are deduplicated by agent.
                let stored = if handed_over { stored } else { 0 };
                // An answer that cannot go (its stream timed out, its
                // connection closed) comes back as an inbound failure, and
                // is counted there; the sender retries on its side.
                if let Some(channel) = self.responses.remove(&token) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .reports
                        .send_response(channel, DeliveryAck { stored });
                }
            }
            Internal::SyncAnswer { token, response } => {
                if let Some(channel) = self.sync_responses.remove(&token) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
            }
            Internal::SyncMissing { peer, ids } => {
                for chunk in ids.chunks(sync::MAX_FETCH) {
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, sync::SyncRequest::Fetch(chunk.to_vec()));
                }
            }
            Internal::Synced { source, outcome } => match outcome {
                Validation::Accept {
                    action,
                    refusal,
                    wire,
                    expire_after,
                } => {
                    if self.accept(*action, refusal, wire, expire_after, source) {
                        self.status.actions_caught_up += 1;
                    }
                }
                Validation::Reject(reason) => self.count_rejection(reason, source),
                Validation::Ignore(_) => self.status.actions_ignored += 1,
                Validation::Cancel(cancel) => self.on_cancel(cancel, source),
            },
            Internal::Delivered { sequences } => {
                for sequence in sequences {
                    self.outbox.remove(&sequence);
                }
            }
        }
    }

    fn on_validated(&mut self, message_id: MessageId, source: PeerId, outcome: Validation) {
        let acceptance = match &outcome {
            // Accepted already in this run (it came by anti-entropy too).
            Validation::Accept { action, .. } if self.paths.contains_key(&action.id) => {
                MessageAcceptance::Ignore
            }
            Validation::Accept { .. } | Validation::Cancel(_) => MessageAcceptance::Accept,
            Validation::Reject(_) => MessageAcceptance::Reject,
            Validation::Ignore(_) => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &source, acceptance);
        match outcome {
            Validation::Reject(reason) => self.count_rejection(reason, source),
            Validation::Ignore(reason) => {
                self.status.actions_ignored += 1;
                tracing::debug!(from = %source, reason, "ignored an action");
            }
            Validation::Cancel(cancel) => self.on_cancel(cancel, source),
            Validation::Accept {
                action,
                refusal,
                wire,
                expire_after,
            } => {
                self.accept(*action, refusal, wire, expire_after, source);
            }
        }
    }

    /// Takes a verified action, once: false (and counted as ignored) if it
    /// was accepted before in this run. The swarm task is the only place
    /// actions are accepted, so this check and the path it records cannot
    /// race.
    fn accept(
        &mut self,
        action: mig_proto::VerifiedAction,
        refusal: Option<String>,
        wire: Vec<u8>,
        expire_after: i64,
        source: PeerId,
    ) -> bool {
        if self.paths.contains_key(&action.id) {
            self.status.actions_ignored += 1;
            return false;
        }
        self.status.actions_accepted += 1;
        self.paths.insert(
            action.id,
            ReversePath::new(source, &action.action, expire_after),
        );
        let id = action.id;
        let seen = Seen { expire_after, wire };
        if let Some(seen) = self.on_accepted(action, refusal, seen, source, false) {
            // Not run here, so not journalled: remembered on its own.
            let store = self.store.clone();
            self.tasks.spawn_blocking(move || {
                if let Err(error) = store.remember_action(&id.0, seen.expire_after, &seen.wire) {
                    tracing::error!(%error, "cannot remember an action");
                }
            });
        }
        true
    }

    /// Runs that a crash interrupted: run again if the action is still
    /// valid (modules only read, so a second run is safe, and nothing else
    /// runs it now); otherwise report it expired, with the reason.
    fn resume_interrupted(&mut self) {
        let runs = match self.store.interrupted_runs() {
            Ok(runs) => runs,
            Err(error) => {
                tracing::error!(%error, "cannot read interrupted runs");
                return;
            }
        };
        for (id, record) in runs {
            // An entry that does not read back can never resume: forgotten,
            // not retried at every start.
            let readable = ciborium::de::from_reader::<RunRecord, _>(record.as_slice())
                .ok()
                .and_then(|record| Some((PeerId::from_bytes(&record.previous).ok()?, record)));
            let Some((previous, record)) = readable else {
                let _ = self.store.journal(Journal::Ended {
                    id,
                    outcome: None,
                    ack: None,
                });
                continue;
            };
            let cancelled = self.store.is_cancelled(&id).unwrap_or(false);
            match check_action_with(&record.wire, &self.config, None) {
                Validation::Accept {
                    action,
                    wire,
                    expire_after,
                    ..
                } if !cancelled => {
                    tracing::info!(action = %action.id, "resuming an action interrupted by a restart");
                    self.paths.insert(
                        action.id,
                        ReversePath::new(previous, &action.action, expire_after),
                    );
                    // Remembered when it first started.
                    let seen = Seen { expire_after, wire };
                    let _ = self.on_accepted(*action, None, seen, previous, true);
                }
                _ => {
                    let Ok(signed) = SignedAction::from_wire(&record.wire) else {
                        continue;
                    };
                    let Ok(action) = mig_proto::Action::from_canonical_bytes(signed.body()) else {
                        continue;
                    };
                    let (Some(runtime), Some(reply_to)) =
                        (self.runtime.clone(), action.reply_to.clone())
                    else {
                        continue;
                    };
                    let expire_after = action.expireafter.map_or(0, Timestamp::unix_seconds);
                    self.paths.insert(
                        signed.id(),
                        ReversePath::new(previous, &action, expire_after),
                    );
                    let now = now_timestamp();
                    let result = mig_proto::AgentResult {
                        action_id: signed.id(),
                        agent: runtime.attributes().clone(),
                        status: if cancelled {
                            mig_proto::AgentStatus::Cancelled
                        } else {
                            mig_proto::AgentStatus::Expired
                        },
                        reason: Some(if cancelled {
                            "the action was cancelled while the agent was down".into()
                        } else {
                            "the agent restarted while running this action, and it has expired since".into()
                        }),
                        operations: Vec::new(),
                        started_at: now,
                        finished_at: now,
                    };
                    let keypair = self.keypair.clone();
                    let agent = *self.swarm.local_peer_id();
                    let action_id = signed.id();
                    let store = self.store.clone();
                    let sender = self.internal_sender.clone();
                    let journal = Journal::Ended {
                        id: id.clone(),
                        outcome: None,
                        ack: None,
                    };
                    self.tasks.spawn(async move {
                        let attributes = runtime.attributes().clone();
                        let parcel = runtime
                            .at_run_priority(move || {
                                Reply::new(
                                    keypair,
                                    &agent,
                                    attributes,
                                    action_id,
                                    reply_to,
                                    expire_after,
                                )
                                .ok()
                                .and_then(|reply| {
                                    reply.parcel(ReportBody::Result(Box::new(result)))
                                })
                            })
                            .await
                            .flatten();
                        enqueue(
                            &store,
                            &sender,
                            parcel.into_iter().collect(),
                            journal,
                            false,
                        )
                        .await;
                    });
                }
            }
        }
    }

    /// Runs an accepted action if this agent is targeted. Gives `seen`
    /// back unless the journal entry of the run remembers it.
    fn on_accepted(
        &mut self,
        action: mig_proto::VerifiedAction,
        refusal: Option<String>,
        seen: Seen,
        source: PeerId,
        resumed: bool,
    ) -> Option<Seen> {
        let _ = self.events.try_send(MeshEvent::Accepted {
            action: action.id,
            at: std::time::Instant::now(),
        });
        let Some(runtime) = self.runtime.clone() else {
            tracing::info!(action = %action.id, name = %action.action.name, from = %source, bytes = seen.wire.len(), "forwarding an action");
            return Some(seen);
        };
        let attributes = runtime.attributes().clone();
        let targeted = action.target.matches(&AgentContext {
            attributes: &attributes,
            history: &*outcomes::lock(&self.outcomes),
        });
        let signers: Vec<String> = action.signers.iter().map(ToString::to_string).collect();
        tracing::info!(
            action = %action.id, name = %action.action.name, signers = ?signers,
            verdict = refusal.as_deref().unwrap_or("accepted"), targeted, "action received"
        );
        if !targeted {
            return Some(seen);
        }
        let Some(reply_to) = action.action.reply_to.clone() else {
            tracing::warn!(action = %action.id, "the action names no console to reply to");
            return Some(seen);
        };
        if reply_to.peer_id.parse::<PeerId>().is_err() {
            tracing::warn!(action = %action.id, console = %reply_to.peer_id, "the action's reply_to is not a peer id");
            return Some(seen);
        }
        let keypair = self.keypair.clone();
        let store = self.store.clone();
        let sender = self.internal_sender.clone();
        let agent = *self.swarm.local_peer_id();
        let expire_after = action.action.expireafter.map_or(0, Timestamp::unix_seconds);
        if refusal.is_none() {
            self.status.actions_run += 1;
        }
        let shutdown = self.shutdown.clone();
        let remembered = self.outcomes.clone();
        let stop = shutdown.child_token();
        self.running.retain(|_, token| !token.is_cancelled());
        self.running.insert(action.id, stop.clone());
        // A run that starts now is journalled, and the action remembered,
        // in one commit of its own.
        let (started, unjournalled) = if refusal.is_none() && !resumed {
            let mut record = Vec::new();
            let _ = ciborium::into_writer(
                &RunRecord {
                    wire: seen.wire.clone(),
                    previous: source.to_bytes(),
                },
                &mut record,
            );
            let started = Journal::Started {
                id: action.id.0.to_vec(),
                record,
                seen,
            };
            (Some(started), None)
        } else {
            (None, Some(seen))
        };
        self.tasks.spawn(async move {
            let id = action.id;
            // A key agreement per action, made off the swarm task and at
            // the run's priority: in a busy mesh it waits behind the
            // spreading of actions, as the run does.
            let made = runtime
                .at_run_priority(move || {
                    Reply::new(keypair, &agent, attributes, id, reply_to, expire_after)
                })
                .await;
            let reply = match made.unwrap_or_else(|| Err("making its reports panicked".into())) {
                Ok(reply) => Arc::new(reply),
                Err(error) => {
                    tracing::error!(action = %id, %error, "cannot report on this action; not running it");
                    stop.cancel();
                    return;
                }
            };
            let parcel = |body| reply.parcel(body);
            if let Some(reason) = &refusal {
                let refused = parcel(ReportBody::Rejected {
                    reason: reason.clone(),
                });
                enqueue(
                    &store,
                    &sender,
                    refused.into_iter().collect(),
                    Journal::Unchanged,
                    false,
                )
                .await;
                return;
            }
            // The run is journalled, so a crash is noticed at restart (a
            // resumed run has its entry from before). The module starts
            // while that commit is written: it only reads, and its result
            // is stored after the entry, so a crash before the entry lands
            // leaves no trace of the run, as before. In a busy simulated
            // fleet of a thousand, acceptance to the end of that commit
            // took half a second at the median, and every run used to
            // wait for it.
            let journal = async {
                let started = started?;
                let stored = enqueue(&store, &sender, Vec::new(), started, false).await;
                if stored.is_none() {
                    tracing::error!(action = %id, "cannot journal the run; running it anyway");
                }
                stored
            };
            // An ack only for a run that outlasts the hold: a result says
            // all an ack says. Made then, not at acceptance, so a quick
            // run never signs, seals and stores one, and agents spreading
            // an action do not (the hold used to be kept in the outbox).
            let ack = async {
                let ack = parcel(ReportBody::Ack).into_iter().collect();
                let sequences = enqueue(&store, &sender, ack, Journal::Unchanged, true).await;
                sequences?.first().copied()
            };
            let finished = stop.clone();
            let run = with_ack_after(
                runtime.run_action(action.id, &action.action, stop),
                ACK_HOLD,
                ack,
            );
            let (_, (ack_sequence, result)) = tokio::join!(journal, run);
            let ack_sequence = ack_sequence.flatten();
            // Done: the token only marks the entry for removal now.
            finished.cancel();
            if shutdown.is_cancelled() {
                // Stopped by a shutdown: the journal entry stays, and the
                // action resumes at the next start.
                return;
            }
            // Only a run that finished says what this agent found.
            let finished_found =
                (result.status == mig_proto::AgentStatus::Success).then(|| result.found_anything());
            let until = expire_after.saturating_add(outcomes::RETENTION_SECONDS);
            // The result and the end of the run in one commit.
            let ended = Journal::Ended {
                id: id.0.to_vec(),
                outcome: finished_found.map(|found| (found, until)),
                ack: ack_sequence,
            };
            // Encoded, deflated, sealed and signed at the run's priority too.
            let sealing = reply.clone();
            let result = runtime
                .at_run_priority(move || sealing.parcel(ReportBody::Result(Box::new(result))))
                .await
                .flatten();
            if result.is_none() {
                tracing::error!(action = %id, "cannot make this action's result into a report");
            }
            enqueue(&store, &sender, result.into_iter().collect(), ended, false).await;
            if let Some(found) = finished_found {
                outcomes::lock(&remembered).record(id, found);
            }
        });
        unjournalled
    }

    fn on_reports_event(&mut self, event: request_response::Event<Delivery, DeliveryAck>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let token = self.next_token;
                self.next_token += 1;
                self.responses.insert(token, channel);
                let parcels = request.parcels;
                let offered = parcels.len();
                // Cheap refusals here; signatures are checked off this task.
                let refused = if self.penalties.is_graylisted(&peer) {
                    Some(Screened::refused("graylisted_sender", offered, 0.0))
                } else if offered > MAX_PARCELS_RECEIVED {
                    Some(Screened::refused(
                        "oversize_batch",
                        offered,
                        penalties::FORGED,
                    ))
                } else if self.outbox.len() + offered > MAX_OUTBOX {
                    tracing::warn!(
                        outbox = self.outbox.len(),
                        "the outbox is full; refusing reports for now"
                    );
                    Some(Screened::refused("outbox_full", offered, 0.0))
                } else {
                    None
                };
                let local = self.swarm.local_peer_id().to_bytes();
                let known: Vec<Known> = parcels
                    .iter()
                    .map(|parcel| {
                        Known::of(parcel, &local, |id| {
                            self.paths.get(id).and_then(|path| path.route.clone())
                        })
                    })
                    .collect();
                let console = self.role == Role::Console;
                let store = self.store.clone();
                let sender = self.internal_sender.clone();
                self.tasks.spawn(async move {
                    // Screened and stored in one trip to the blocking pool.
                    let screened_and_stored = tokio::task::spawn_blocking(move || {
                        let mut screened = refused.unwrap_or_else(|| {
                            screening::screen(parcels, &known, |id| sent_by(&store, console, id))
                        });
                        let others = std::mem::take(&mut screened.others);
                        let forwarded = others.len() as u64;
                        let stored = if screened.refuse {
                            None
                        } else {
                            put_in_outbox(&store, others, Journal::Unchanged)
                        };
                        (screened, forwarded, stored)
                    })
                    .await;
                    let (screened, forwarded, stored) = screened_and_stored.unwrap_or_else(|_| {
                        (Screened::refused("malformed", offered, 0.0), 0, None)
                    });
                    // Stored (or, for our own, handed over) before it is acknowledged.
                    let stored = match stored {
                        // Nothing to pass on (all of it for this console).
                        Some(parcels) if parcels.is_empty() => true,
                        Some(parcels) => {
                            let enqueue = Internal::Enqueue {
                                parcels,
                                ack: false,
                                supersedes: None,
                            };
                            sender.send(enqueue).await.is_ok()
                        }
                        None => false,
                    };
                    let _ = sender
                        .send(Internal::Stored {
                            token,
                            peer,
                            stored: if stored {
                                u32::try_from(offered).unwrap_or(u32::MAX)
                            } else {
                                0
                            },
                            local: screened.mine,
                            forwarded: if stored { forwarded } else { 0 },
                            rerouted: if stored { screened.rerouted } else { 0 },
                            dropped: screened.dropped,
                            penalty: screened.penalty,
                        })
                        .await;
                });
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(sequences) = self.delivery_answered(request_id) {
                    if response.stored as usize == sequences.len() {
                        let store = self.store.clone();
                        let sender = self.internal_sender.clone();
                        self.tasks.spawn_blocking(move || {
                            if store.outbox_remove(&sequences).is_ok() {
                                let _ = sender.blocking_send(Internal::Delivered { sequences });
                            }
                        });
                    } else {
                        self.retry_later(&sequences);
                    }
                    self.flush_outbox();
                }
            }
            request_response::Event::OutboundFailure {
                request_id,
                peer,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "report delivery failed; will retry");
                self.status.deliveries_failed += 1;
                if let Some(sequences) = self.delivery_answered(request_id) {
                    self.retry_later(&sequences);
                    self.flush_outbox();
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "answering a report delivery failed");
                self.count_failed_answer(match error {
                    request_response::InboundFailure::Timeout => "timeout",
                    request_response::InboundFailure::ConnectionClosed => "connection_closed",
                    request_response::InboundFailure::UnsupportedProtocols => {
                        "unsupported_protocols"
                    }
                    request_response::InboundFailure::ResponseOmission => "response_omission",
                    request_response::InboundFailure::Io(_) => "io",
                });
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn count_failed_answer(&mut self, reason: &'static str) {
        *self
            .status
            .answers_failed
            .entry(reason.to_owned())
            .or_default() += 1;
    }

    /// Counts a rejection. A flood of forgeries must not flood the log:
    /// each reason is logged at its 1st, 2nd, 4th, 8th... occurrence, with
    /// the count (`mig-node status` has the exact figures).
    fn count_rejection(&mut self, reason: &'static str, source: PeerId) {
        let count = self
            .status
            .actions_rejected
            .entry(reason.to_owned())
            .or_default();
        *count += 1;
        if passes_a_power_of_two(*count - 1, *count) {
            tracing::warn!(reason, count = *count, last_from = %source, "rejected actions");
        }
    }

    fn on_cancel(&mut self, cancel: mig_proto::Cancel, source: PeerId) {
        self.status.cancels_received += 1;
        let running = self.running.get(&cancel.action_id).is_some_and(|token| {
            token.cancel();
            true
        });
        tracing::info!(action = %cancel.action_id, from = %source, stopped = running, "cancel received");
    }

    fn on_sync_event(
        &mut self,
        event: request_response::Event<sync::SyncRequest, sync::SyncResponse>,
    ) {
        let store = self.store.clone();
        let sender = self.internal_sender.clone();
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request: sync::SyncRequest::Peers,
                        channel,
                        ..
                    },
                ..
            } => {
                let offered = self.offer_peers(&peer);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, sync::SyncResponse::Peers(offered));
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let token = self.next_token;
                self.next_token += 1;
                self.sync_responses.insert(token, channel);
                self.tasks.spawn_blocking(move || {
                    let response = match request {
                        sync::SyncRequest::Ids => {
                            let now = now_timestamp().unix_seconds();
                            let ids = store
                                .valid_action_ids(now, sync::MAX_IDS)
                                .unwrap_or_default();
                            sync::SyncResponse::Ids(
                                ids.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                            )
                        }
                        // Answered on the swarm task (above).
                        sync::SyncRequest::Peers => sync::SyncResponse::Peers(Vec::new()),
                        sync::SyncRequest::Fetch(ids) => {
                            let ids: Vec<Vec<u8>> = ids
                                .into_iter()
                                .take(sync::MAX_FETCH)
                                .map(serde_bytes::ByteBuf::into_vec)
                                .collect();
                            let wires = store.action_wires(&ids).unwrap_or_default();
                            sync::SyncResponse::Actions(
                                wires.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                            )
                        }
                    };
                    let _ = sender.blocking_send(Internal::SyncAnswer { token, response });
                });
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => match response {
                sync::SyncResponse::Peers(offered) => {
                    self.asking_for_peers = false;
                    self.link_to(offered);
                }
                sync::SyncResponse::Ids(ids) => {
                    self.tasks.spawn_blocking(move || {
                        let missing: Vec<serde_bytes::ByteBuf> = ids
                            .into_iter()
                            .take(sync::MAX_IDS)
                            .filter(|id| id.len() == 32 && !store.knows_action(id).unwrap_or(true))
                            .collect();
                        if !missing.is_empty() {
                            let _ =
                                sender.blocking_send(Internal::SyncMissing { peer, ids: missing });
                        }
                    });
                }
                sync::SyncResponse::Actions(wires) => {
                    let config = self.config.clone();
                    for wire in wires.into_iter().take(sync::MAX_FETCH) {
                        let (store, sender, config) =
                            (store.clone(), sender.clone(), config.clone());
                        self.tasks.spawn_blocking(move || {
                            let outcome = check_action(&wire, &config, &store);
                            let _ = sender.blocking_send(Internal::Synced {
                                source: peer,
                                outcome,
                            });
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                // (Only one peer request is out at a time; a failed one of
                // any kind frees the next.)
                self.asking_for_peers = false;
                tracing::debug!(%peer, %error, "catching up with a peer failed");
            }
            _ => {}
        }
    }

    /// A delivery came back (acked, refused or failed): its hop may take
    /// the next batch, which holds whatever queued meanwhile.
    fn delivery_answered(
        &mut self,
        request_id: request_response::OutboundRequestId,
    ) -> Option<Vec<u64>> {
        let (hop, sequences, _) = self.in_flight.remove(&request_id)?;
        if let Some(count) = self.in_flight_per_hop.get_mut(&hop) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight_per_hop.remove(&hop);
            }
        }
        Some(sequences)
    }

    /// Deliveries out longer than `DELIVERY_GIVE_UP` are counted failed
    /// and retried; an answer that still comes is then ignored (the
    /// console keeps one report per agent and kind).
    fn give_up_overdue_deliveries(&mut self) {
        let overdue = overdue(&self.in_flight, Instant::now());
        for request_id in overdue {
            if let Some(sequences) = self.delivery_answered(request_id) {
                tracing::warn!(
                    parcels = sequences.len(),
                    "a report delivery was never answered nor failed; retrying"
                );
                self.status.deliveries_failed += 1;
                self.retry_later(&sequences);
            }
        }
    }

    fn retry_later(&mut self, sequences: &[u64]) {
        for sequence in sequences {
            if let Some(pending) = self.outbox.get_mut(sequence) {
                pending.in_flight = false;
                pending.failures += 1;
                let backoff =
                    Duration::from_millis(200u64.saturating_mul(1 << pending.failures.min(8)));
                pending.next_attempt = Instant::now() + backoff;
            }
        }
    }

    /// Adds penalty points to a peer and tells gossipsub, so a graylisted
    /// peer's gossip is ignored as well.
    fn penalize(&mut self, peer: PeerId, points: f64) {
        let total = self.penalties.add(peer, points);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, -total);
    }

    /// Counts dropped reports; logged like rejected actions, at the 1st,
    /// 2nd, 4th... occurrence of each reason.
    fn count_dropped_reports(&mut self, reason: &'static str, dropped: u64, source: PeerId) {
        let count = self
            .status
            .reports_dropped
            .entry(reason.to_owned())
            .or_default();
        let before = *count;
        *count += dropped;
        if passes_a_power_of_two(before, *count) {
            tracing::warn!(reason, count = *count, last_from = %source, "dropped reports");
        }
    }

    /// Counts reports passed on whose routing fields were set back to
    /// their action's; logged as dropped reports are.
    fn count_rerouted_reports(&mut self, rerouted: u64, source: PeerId) {
        let before = self.status.reports_rerouted;
        self.status.reports_rerouted += rerouted;
        if passes_a_power_of_two(before, self.status.reports_rerouted) {
            tracing::warn!(
                count = self.status.reports_rerouted,
                last_from = %source,
                "reports came with routing fields their action does not give; set back"
            );
        }
    }

    /// Hands a report addressed to this node to its owner, screened (and
    /// opened) as if a peer had delivered it. False when the owner is not
    /// keeping up (the report is kept for the next round); a report that
    /// does not verify or open is dropped (and counts as handled).
    fn deliver_locally(&mut self, parcel: &Parcel) -> bool {
        let here = screening::Known {
            for_me: true,
            route: None,
        };
        let console = self.role == Role::Console;
        let store = self.store.clone();
        let screened = screening::screen(vec![parcel.clone()], &[here], |id| {
            sent_by(&store, console, id)
        });
        let local = *self.swarm.local_peer_id();
        for &(reason, count) in &screened.dropped {
            self.count_dropped_reports(reason, count, local);
        }
        if screened.refuse {
            // Kept only when the history could not be read: the rest
            // would be refused again.
            return !screened
                .dropped
                .iter()
                .any(|(reason, _)| *reason == screening::HISTORY_UNREADABLE);
        }
        screened
            .mine
            .into_iter()
            .all(|report| self.hand_over(report))
    }

    /// Hands a verified report to this node's owner; false when the owner
    /// is not keeping up.
    fn hand_over(&mut self, report: Report) -> bool {
        !matches!(
            self.events.try_send(MeshEvent::Report(Box::new(report))),
            Err(mpsc::error::TrySendError::Full(_))
        )
    }

    /// Sends waiting parcels towards their consoles, batched per next hop.
    fn flush_outbox(&mut self) {
        let now = Instant::now();
        let local = *self.swarm.local_peer_id();
        let mut batches: HashMap<PeerId, Vec<u64>> = HashMap::new();
        let mut delivered_here = Vec::new();
        for (sequence, pending) in &self.outbox {
            if pending.in_flight || pending.next_attempt > now {
                continue;
            }
            let Ok(console) = PeerId::from_bytes(&pending.parcel.console) else {
                continue;
            };
            if console == local {
                delivered_here.push(*sequence);
                continue;
            }
            let action_id = ActionId(
                pending
                    .parcel
                    .action_id
                    .as_slice()
                    .try_into()
                    .unwrap_or([0; 32]),
            );
            let hop = next_hop(
                self.role,
                console,
                &pending.console_relays,
                self.paths.get(&action_id).map(|path| &path.previous),
                pending.failures,
                |peer| self.swarm.is_connected(peer),
                |peer| self.is_bootstrap(peer) || pending.console_relays.contains(peer),
            );
            let batch = batches.entry(hop).or_default();
            if batch.len() < PARCELS_PER_DELIVERY * 8 {
                batch.push(*sequence);
            }
        }
        for sequence in delivered_here {
            let Some(parcel) = self
                .outbox
                .get(&sequence)
                .map(|pending| pending.parcel.clone())
            else {
                continue;
            };
            // Kept for the next round if the owner is not keeping up.
            if self.deliver_locally(&parcel) {
                self.outbox.remove(&sequence);
                let store = self.store.clone();
                self.tasks
                    .spawn_blocking(move || store.outbox_remove(&[sequence]));
            }
        }
        for (hop, sequences) in batches {
            // A few deliveries per hop at a time: parcels that come while
            // they are out wait and go together in the next batch, instead
            // of one stream each (a hub passing on hundreds of reports ran
            // into the connection's stream limit, and the failures' backoff
            // held reports for seconds).
            let busy = self.in_flight_per_hop.get(&hop).copied().unwrap_or(0);
            let free = MAX_DELIVERIES_IN_FLIGHT.saturating_sub(busy);
            for chunk in sequences.chunks(PARCELS_PER_DELIVERY).take(free) {
                let parcels: Vec<Parcel> = chunk
                    .iter()
                    .filter_map(|sequence| self.outbox.get(sequence))
                    .map(|pending| pending.parcel.clone())
                    .collect();
                if !self.swarm.is_connected(&hop)
                    && let Some(first) = parcels.first()
                {
                    for address in &first.console_addresses {
                        if let Ok(address) = address.parse::<Multiaddr>() {
                            self.swarm.add_peer_address(hop, address);
                        }
                    }
                }
                let request_id = self
                    .swarm
                    .behaviour_mut()
                    .reports
                    .send_request(&hop, Delivery { parcels });
                for sequence in chunk {
                    if let Some(pending) = self.outbox.get_mut(sequence) {
                        pending.in_flight = true;
                    }
                }
                self.in_flight
                    .insert(request_id, (hop, chunk.to_vec(), Instant::now()));
                *self.in_flight_per_hop.entry(hop).or_default() += 1;
            }
        }
    }
}

/// Awaits `run`; if it is still going after `hold`, awaits `ack` too,
/// while the run goes on. What `ack` gave, if it was needed, and the
/// run's outcome.
async fn with_ack_after<R, A>(
    run: impl Future<Output = R>,
    hold: Duration,
    ack: impl Future<Output = A>,
) -> (Option<A>, R) {
    let mut run = std::pin::pin!(run);
    tokio::select! {
        biased;
        outcome = &mut run => (None, outcome),
        () = tokio::time::sleep(hold) => {
            let (acked, outcome) = tokio::join!(ack, run);
            (Some(acked), outcome)
        }
    }
}

/// Stores parcels in the outbox (with the journal change that goes with
/// them, in one commit), then hands them to the swarm task. Their outbox
/// sequences once they are durable. `ack`: the parcel is a run's ack.
async fn enqueue(
    store: &Arc<Store>,
    sender: &mpsc::Sender<Internal>,
    parcels: Vec<Parcel>,
    journal: Journal,
    ack: bool,
) -> Option<Vec<u64>> {
    if parcels.is_empty() && journal == Journal::Unchanged {
        return Some(Vec::new());
    }
    let supersedes = match journal {
        Journal::Ended { ack, .. } => ack,
        _ => None,
    };
    let store = store.clone();
    let parcels = tokio::task::spawn_blocking(move || put_in_outbox(&store, parcels, journal))
        .await
        .ok()??;
    let sequences = parcels.iter().map(|(sequence, _)| *sequence).collect();
    let enqueue = Internal::Enqueue {
        parcels,
        ack,
        supersedes,
    };
    sender.send(enqueue).await.ok().map(|()| sequences)
}

/// Stores parcels durably, with `journal` in the same commit (blocking);
/// each with its outbox sequence, or `None` if the store failed (logged).
/// Parcels that change no journal (passed on for others, acks) share a
/// commit with others stored at the same moment
/// (`Store::outbox_put_passing_on`).
fn put_in_outbox(
    store: &Store,
    parcels: Vec<Parcel>,
    journal: Journal,
) -> Option<Vec<(u64, Parcel)>> {
    if parcels.is_empty() && journal == Journal::Unchanged {
        return Some(Vec::new());
    }
    let encoded: Vec<Vec<u8>> = parcels
        .iter()
        .map(|parcel| {
            let mut bytes = Vec::new();
            let _ = ciborium::into_writer(parcel, &mut bytes);
            bytes
        })
        .collect();
    // Parcels that change no journal go in with whatever others are being
    // stored at the same moment.
    let stored = if journal == Journal::Unchanged {
        store.outbox_put_passing_on(encoded)
    } else {
        store.outbox_put(&encoded, journal)
    };
    match stored {
        Ok(sequences) => Some(sequences.into_iter().zip(parcels).collect()),
        Err(error) => {
            tracing::error!(%error, "cannot store reports in the outbox");
            None
        }
    }
}

/// Verifies and journals a cancel.
fn check_cancel(
    cancel: &mig_proto::SignedCancel,
    data: &[u8],
    config: &NodeConfig,
    store: Option<&Store>,
) -> Validation {
    let now = now_timestamp();
    let skew = mig_proto::verify::DEFAULT_CLOCK_SKEW_SECONDS;
    let verified = match cancel.verify(&config.trusted, now, config.max_validity_seconds, skew) {
        Ok(verified) => verified,
        Err(VerifyError::Expired { .. } | VerifyError::NotYetValid { .. }) => {
            return Validation::Ignore("outside_validity_window");
        }
        Err(error) => return Validation::Reject(error.kind()),
    };
    if let Some(store) = store {
        let until = verified.issued_at.unix_seconds() + config.max_validity_seconds;
        match store.remember_action(&verified.message_id.0, until, data) {
            Ok(true) => {}
            Ok(false) => return Validation::Ignore("duplicate"),
            Err(_) => return Validation::Ignore("journal_unavailable"),
        }
        if store.remember_cancel(&verified.action_id.0, until).is_err() {
            return Validation::Ignore("journal_unavailable");
        }
    }
    Validation::Cancel(verified)
}

/// What the journal keeps about a run in progress.
#[derive(Serialize, serde::Deserialize)]
struct RunRecord {
    #[serde(with = "serde_bytes")]
    wire: Vec<u8>,
    #[serde(with = "serde_bytes")]
    previous: Vec<u8>,
}

/// What this node's history says of an action that a report addressed
/// here is about.
fn sent_by(store: &Store, console: bool, id: &ActionId) -> screening::Sent {
    if !console {
        return screening::Sent::NotByMe;
    }
    match store.sent_seal(&id.0) {
        Ok(None) => screening::Sent::NotByMe,
        Ok(Some(None)) => screening::Sent::InTheClear,
        Ok(Some(Some(secret))) => {
            screening::Sent::SealedTo(mig_proto::seal::SealSecret::from_bytes(*secret))
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read this console's history");
            screening::Sent::Unknown
        }
    }
}

/// Whether a count that went from `before` to `after` reached or passed a
/// power of two (1, 2, 4, 8...): counters of hostile input are logged then,
/// so a flood cannot flood the log, however many each step adds.
fn passes_a_power_of_two(before: u64, after: u64) -> bool {
    after > before && (before == 0 || before.ilog2() != after.ilog2())
}

/// Forgets the paths of actions that expired before `limit`: a path lives
/// as long as parcels for its action may still come (`PARCEL_GRACE_SECONDS`
/// after the expiry), and no longer, so a long-lived node does not keep one
/// per action it ever saw.
fn forget_expired_paths(paths: &mut HashMap<ActionId, ReversePath>, limit: i64) {
    paths.retain(|_, path| path.expire_after >= limit);
}

/// An accepted action, as a hop passing its reports on knows it.
struct ReversePath {
    /// The peer the action came from; reports go back that way.
    previous: PeerId,
    /// Where its reports go; `None` when it names no console to reply to
    /// (then no agent reports on it).
    route: Option<screening::Route>,
    /// The action's expiry (Unix seconds).
    expire_after: i64,
}

impl ReversePath {
    fn new(previous: PeerId, action: &mig_proto::Action, expire_after: i64) -> Self {
        let route = action
            .reply_to
            .as_ref()
            .and_then(|reply_to| screening::Route::new(reply_to, expire_after).ok());
        Self {
            previous,
            route,
            expire_after,
        }
    }
}

/// How one action's reports leave this agent: addressed to the console
/// its `reply_to` names, sealed to the key named there (in the clear when
/// it names none), signed by this node.
struct Reply {
    keypair: Keypair,
    agent: String,
    attributes: mig_proto::AgentAttributes,
    action_id: ActionId,
    /// The routing fields of every parcel.
    route: screening::Route,
    sealer: Option<mig_proto::seal::Sealer>,
}

impl Reply {
    /// Fails when `reply_to` names no peer, or a key reports cannot be
    /// sealed to.
    fn new(
        keypair: Keypair,
        agent: &PeerId,
        attributes: mig_proto::AgentAttributes,
        action_id: ActionId,
        reply_to: mig_proto::ReplyTo,
        expire_after: i64,
    ) -> Result<Self, String> {
        let route = screening::Route::new(&reply_to, expire_after)
            .map_err(|error| format!("reply_to: {error}"))?;
        let sealer = reply_to
            .seal_key
            .as_deref()
            .map(|key| mig_proto::seal::Sealer::new(&mig_proto::seal::SealPublic::parse(key)?))
            .transpose()
            .map_err(|error| error.to_string())?;
        Ok(Self {
            keypair,
            agent: agent.to_string(),
            attributes,
            action_id,
            route,
            sealer,
        })
    }

    /// A signed report saying `body`, ready to travel.
    fn parcel(&self, body: ReportBody) -> Option<Parcel> {
        let report = Report {
            action_id: self.action_id,
            agent: self.agent.clone(),
            attributes: self.attributes.clone(),
            body,
        };
        let envelope = report.envelope(self.sealer.as_ref()).ok()?;
        Some(Parcel {
            console: self.route.console.clone(),
            console_addresses: self.route.console_addresses.clone(),
            action_id: self.action_id.0.to_vec(),
            expire_after: self.route.expire_after,
            report: reports::sign(&envelope, &self.keypair).ok()?,
        })
    }
}

/// Decodes, verifies and journals an action from the wire.
fn check_action(data: &[u8], config: &NodeConfig, store: &Store) -> Validation {
    check_action_with(data, config, Some(store))
}

/// Decodes and verifies an action; with a store, also refuses replays.
fn check_action_with(data: &[u8], config: &NodeConfig, store: Option<&Store>) -> Validation {
    if let Some(cancel) = mig_proto::SignedCancel::from_wire(data) {
        return check_cancel(&cancel, data, config, store);
    }
    let signed = match SignedAction::from_wire(data) {
        Ok(signed) => signed,
        Err(mig_proto::WireError::TooLarge { .. }) => return Validation::Reject("too_large"),
        Err(_) => return Validation::Reject("malformed"),
    };
    let policy = VerifyPolicy {
        trusted: &config.trusted,
        acl: &config.acl,
        now: now_timestamp(),
        max_validity_seconds: config.max_validity_seconds,
        clock_skew_seconds: mig_proto::verify::DEFAULT_CLOCK_SKEW_SECONDS,
    };
    let verdict = verify(&signed, &policy);
    let refusal = match &verdict.outcome {
        Ok(()) => None,
        // Validly signed, but this node's ACL refuses it: pass it on (other
        // agents may allow it), do not run it, say so if targeted.
        Err(error @ (VerifyError::InsufficientWeight { .. } | VerifyError::NoAclEntry { .. })) => {
            Some(error.to_string())
        }
        // Not the sender's fault: clocks and policies differ.
        Err(
            VerifyError::Expired { .. }
            | VerifyError::NotYetValid { .. }
            | VerifyError::ValidityTooLong { .. },
        ) => {
            return Validation::Ignore("outside_validity_window");
        }
        Err(error) => return Validation::Reject(error.kind()),
    };
    let action = match &verdict.action {
        Some(action) => action.clone(),
        None => return Validation::Reject("malformed"),
    };
    // An operation no agent here can run (a module this build does not
    // have, parameters it refuses) never runs and never spreads. Relays
    // check too, so upgrade relays before launching a new module's actions.
    if let Err(error) = crate::modules::check_operations(&action.operations) {
        tracing::debug!(%error, "refusing an action");
        return Validation::Reject(error.kind());
    }
    let expire_after = action.expireafter.map_or(0, Timestamp::unix_seconds);
    if let Some(store) = store
        && store.is_cancelled(&verdict.action_id.0).unwrap_or(false)
    {
        // Cancelled before it reached this node: it never starts here.
        return Validation::Ignore("cancelled");
    }
    // Seen before (a replay, or a copy from before a restart)? Only read
    // here: the action is written down after it is passed on, so no hop
    // waits for a commit before forwarding. Copies within a run are caught
    // by gossipsub's own cache and by `Mesh::accept`.
    if let Some(store) = store {
        match store.knows_action(&verdict.action_id.0) {
            Ok(false) => {}
            Ok(true) => return Validation::Ignore("duplicate"),
            Err(error) => {
                tracing::error!(%error, "journal unavailable");
                return Validation::Ignore("journal_unavailable");
            }
        }
    }
    let target = match mig_proto::Target::parse(&action.target) {
        Ok(target) => target,
        Err(_) => return Validation::Reject("invalid_target"),
    };
    let signers = verdict
        .signers
        .iter()
        .filter(|signer| signer.status == mig_proto::verify::SignerStatus::Verified)
        .map(|signer| signer.fingerprint)
        .collect();
    Validation::Accept {
        action: Box::new(mig_proto::VerifiedAction {
            id: verdict.action_id,
            action,
            target,
            signers,
        }),
        refusal,
        wire: data.to_vec(),
        expire_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../docs/examples/linux-backdoor-2014.json");

    #[test]
    fn gossip_settings_are_accepted_and_announce_an_action_once() {
        let config = gossip_config().expect("gossipsub accepts the settings");
        assert_eq!(config.history_gossip(), 1);
        // An IWANT for an action announced at the last heartbeat is still
        // answered from the message cache.
        assert!(config.history_length() > config.history_gossip());
        assert_eq!(config.mesh_n(), GOSSIP_MESH);
        assert!(config.mesh_n_low() < config.mesh_n() && config.mesh_n() < config.mesh_n_high());
        assert_eq!(config.heartbeat_interval(), GOSSIP_HEARTBEAT);
    }

    /// A node's configuration trusting `investigator`, and a fresh action
    /// it signed.
    fn signed_example(dir: &std::path::Path) -> (NodeConfig, Vec<u8>, i64) {
        signed_example_replying_to(dir, None)
    }

    fn signed_example_replying_to(
        dir: &std::path::Path,
        reply_to: Option<mig_proto::ReplyTo>,
    ) -> (NodeConfig, Vec<u8>, i64) {
        let investigator = mig_keys::SecretKey::generate("test investigator").unwrap();
        let trusted = mig_proto::TrustStore::new([investigator.public()]);
        let now = now_timestamp().unix_seconds();
        let mut action = mig_proto::Action::from_json(EXAMPLE).unwrap();
        action.reply_to = reply_to;
        action.validfrom = Some(Timestamp::from_unix_seconds(now - 60).unwrap());
        action.expireafter = Some(Timestamp::from_unix_seconds(now + 300).unwrap());
        let mut signed = SignedAction::from_action(&action).unwrap();
        signed.sign(investigator.signing_key()).unwrap();
        let config = NodeConfig {
            data_dir: dir.to_path_buf(),
            listen: Vec::new(),
            bootstrap: Vec::new(),
            acl: trusted.default_acl(),
            trusted,
            tags: Default::default(),
            root: dir.to_path_buf(),
            psk: None,
            max_validity_seconds: mig_proto::verify::DEFAULT_MAX_VALIDITY_SECONDS,
            max_concurrent_actions: 1,
            external_addresses: Vec::new(),
            mdns: false,
            name: None,
            peer_timeout: crate::config::DEFAULT_PEER_TIMEOUT,
        };
        (config, signed.to_wire(), now + 300)
    }

    /// Two real swarms of ours over the in-memory transport; the agent
    /// dials the relay three times at once, one more than the limit per
    /// peer. Every report delivery it then sends must be answered (or
    /// fail, and so be retried): before
    /// `limits` came first in `Behaviour`, request-response kept the denied
    /// connection in its list and one request in three went nowhere.
    #[tokio::test]
    async fn a_connection_over_the_limit_takes_no_report_delivery() {
        use futures::StreamExt;
        use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};

        let (mut agent, mut relay) = memory_pair();
        let relay_id = *relay.local_peer_id();
        let address = listen_on_memory(&mut relay).await;
        for _ in 0..3 {
            let dial = DialOpts::peer_id(relay_id)
                .addresses(vec![address.clone()])
                .condition(PeerCondition::Always)
                .build();
            agent.dial(dial).unwrap();
        }

        const DELIVERIES: usize = 6;
        let mut dials_settled = 0;
        let mut sent = 0;
        let mut answered = 0;
        let mut failed = 0;
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        while answered + failed < DELIVERIES {
            tokio::select! {
                event = agent.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. }
                    | SwarmEvent::OutgoingConnectionError { .. } => dials_settled += 1,
                    SwarmEvent::Behaviour(BehaviourEvent::Reports(
                        request_response::Event::Message {
                            message: request_response::Message::Response { .. },
                            ..
                        },
                    )) => answered += 1,
                    SwarmEvent::Behaviour(BehaviourEvent::Reports(
                        request_response::Event::OutboundFailure { .. },
                    )) => failed += 1,
                    _ => {}
                },
                event = relay.select_next_some() => {
                    if let SwarmEvent::Behaviour(BehaviourEvent::Reports(
                        request_response::Event::Message {
                            message: request_response::Message::Request { channel, .. },
                            ..
                        },
                    )) = event
                    {
                        let ack = DeliveryAck { stored: 0 };
                        let _ = relay.behaviour_mut().reports.send_response(channel, ack);
                    }
                }
                () = &mut deadline => break,
            }
            // Once all three dials are through (two connections, one
            // denied), the deliveries go out, one after another.
            if dials_settled >= 3 && sent < DELIVERIES && sent == answered + failed {
                let delivery = Delivery {
                    parcels: Vec::new(),
                };
                agent
                    .behaviour_mut()
                    .reports
                    .send_request(&relay_id, delivery);
                sent += 1;
            }
        }
        assert_eq!(dials_settled, 3, "the three dials went through or failed");
        // A connection the relay's own limits closed may fail a delivery;
        // none may be left without an answer or a failure.
        assert_eq!(
            (sent, answered + failed),
            (DELIVERIES, DELIVERIES),
            "every delivery answered or failed ({answered} answered)"
        );
        assert!(answered > 0, "deliveries go through");
    }

    /// The redial tick fires at once when a node starts, while its first
    /// dial of the relay is still out: it must not dial a second time.
    #[tokio::test]
    async fn a_redial_leaves_a_dial_in_progress_alone() {
        use futures::StreamExt;

        let (mut agent, mut relay) = memory_pair();
        let relay_id = *relay.local_peer_id();
        let address = listen_on_memory(&mut relay)
            .await
            .with_p2p(relay_id)
            .unwrap();
        agent.dial(address.clone()).unwrap();
        redial_bootstrap(&mut agent, std::slice::from_ref(&address));
        redial_bootstrap(&mut agent, std::slice::from_ref(&address));

        let mut established = 0;
        let mut failed = 0;
        let settle = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                event = agent.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => established += 1,
                    SwarmEvent::OutgoingConnectionError { .. } => failed += 1,
                    _ => {}
                },
                _ = relay.select_next_some() => {}
                () = &mut settle => break,
            }
        }
        assert_eq!((established, failed), (1, 0), "one dial, one connection");
        // Connected now: a redial does nothing.
        redial_bootstrap(&mut agent, std::slice::from_ref(&address));
        let settle = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                event = agent.select_next_some() => {
                    assert!(
                        !matches!(event, SwarmEvent::Dialing { .. }),
                        "dialled a connected relay: {event:?}"
                    );
                }
                _ = relay.select_next_some() => {}
                () = &mut settle => break,
            }
        }
    }

    /// An agent's and a relay's swarms, as the nodes build them, over the
    /// in-memory transport.
    fn memory_pair() -> (Swarm<Behaviour>, Swarm<Behaviour>) {
        use libp2p::core::transport::{MemoryTransport, Transport, upgrade::Version};
        let transport: TransportFactory = Arc::new(|key, _| {
            Ok(MemoryTransport::default()
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .boxed())
        });
        let dir = tempfile::tempdir().unwrap();
        let (config, _, _) = signed_example(dir.path());
        let swarm = |role| {
            let key = Keypair::generate_ed25519();
            build_swarm(&key, &config, role, Arc::default(), Some(transport.clone()))
                .unwrap()
                .0
        };
        (swarm(Role::Agent), swarm(Role::Relay))
    }

    async fn listen_on_memory(swarm: &mut Swarm<Behaviour>) -> Multiaddr {
        use futures::StreamExt;
        swarm.listen_on("/memory/0".parse().unwrap()).unwrap();
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    }

    #[test]
    fn a_delivery_is_given_up_only_after_the_request_timeout_and_a_margin() {
        // libp2p's own timeout must get its chance first.
        assert!(DELIVERY_GIVE_UP > REQUEST_TIMEOUT);
        let start = Instant::now();
        let hop = PeerId::random();
        let sent_at = |seconds| (hop, vec![seconds], start + Duration::from_secs(seconds));
        let in_flight: HashMap<u32, _> = [(1, sent_at(75)), (2, sent_at(11)), (3, sent_at(9))]
            .into_iter()
            .collect();
        // At 80 s, the delivery sent at 9 s has been out 71 s.
        assert_eq!(
            overdue(&in_flight, start + Duration::from_secs(80)),
            vec![3]
        );
        assert!(overdue(&in_flight, start + Duration::from_secs(70)).is_empty());
    }

    #[test]
    fn counters_are_logged_when_they_reach_or_pass_a_power_of_two() {
        let logged: Vec<u64> = (1..=9)
            .filter(|count| passes_a_power_of_two(count - 1, *count))
            .collect();
        assert_eq!(logged, [1, 2, 4, 8]);
        // Several at a time: logged when a power is passed, not only hit.
        assert!(passes_a_power_of_two(0, 16));
        assert!(passes_a_power_of_two(5, 9));
        assert!(!passes_a_power_of_two(9, 15));
        assert!(!passes_a_power_of_two(4, 4));
    }

    #[test]
    fn a_path_is_forgotten_only_once_its_parcels_would_be() {
        let action = |expireafter: i64, reply_to| {
            let mut action = mig_proto::Action::from_json(EXAMPLE).unwrap();
            action.reply_to = reply_to;
            (ActionId([expireafter as u8; 32]), expireafter, action)
        };
        let console = PeerId::random();
        let reply_to = mig_proto::ReplyTo {
            peer_id: console.to_string(),
            addresses: vec!["/ip4/192.0.2.7/tcp/4001".into()],
            seal_key: None,
        };
        let mut paths = HashMap::new();
        for (id, expire_after, action) in [
            action(10, Some(reply_to.clone())),
            action(20, None),
            action(30, Some(reply_to)),
        ] {
            paths.insert(
                id,
                ReversePath::new(PeerId::random(), &action, expire_after),
            );
        }
        let route = paths[&ActionId([10; 32])].route.clone().unwrap();
        assert_eq!(route.console, console.to_bytes());
        assert_eq!(route.expire_after, 10);
        assert!(paths[&ActionId([20; 32])].route.is_none());

        forget_expired_paths(&mut paths, 20);
        let mut kept: Vec<u8> = paths.keys().map(|id| id.0[0]).collect();
        kept.sort_unstable();
        assert_eq!(kept, [20, 30]);
    }

    #[test]
    fn an_action_the_store_remembers_is_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (config, wire, expiry) = signed_example(dir.path());

        // Validation only reads the store: the same bytes validate twice
        // until the action is written down (after it was passed on).
        let Validation::Accept {
            action,
            expire_after,
            ..
        } = check_action(&wire, &config, &store)
        else {
            panic!("a fresh, validly signed action is accepted");
        };
        assert_eq!(expire_after, expiry);
        assert!(matches!(
            check_action(&wire, &config, &store),
            Validation::Accept { .. }
        ));

        // Remembered by a run's journal entry, or on its own: a replay.
        let started = Journal::Started {
            id: action.id.0.to_vec(),
            record: Vec::new(),
            seen: Seen {
                expire_after,
                wire: wire.clone(),
            },
        };
        store.journal(started).unwrap();
        assert!(matches!(
            check_action(&wire, &config, &store),
            Validation::Ignore("duplicate")
        ));
        // What anti-entropy serves to peers catching up.
        assert_eq!(
            store.action_wires(&[action.id.0.to_vec()]).unwrap(),
            vec![wire]
        );
    }

    /// A run over within the hold sends no ack; one still going sends it
    /// when the hold ends, and the run is not held up by it.
    #[tokio::test(start_paused = true)]
    async fn only_a_run_that_outlasts_the_hold_acks() {
        let hold = Duration::from_secs(1);
        let started = tokio::time::Instant::now();
        let quick = tokio::time::sleep(hold / 2);
        let (acked, ()) = with_ack_after(quick, hold, async { started.elapsed() }).await;
        assert_eq!(acked, None);
        assert_eq!(started.elapsed(), hold / 2);

        let started = tokio::time::Instant::now();
        // Two steps: a run left unpolled while its ack is stored would
        // take its second step late.
        let long = async {
            tokio::time::sleep(hold * 3 / 2).await;
            tokio::time::sleep(hold).await;
            started.elapsed()
        };
        let ack = async {
            let at = started.elapsed();
            // Storing the ack takes a while; the run goes on meanwhile.
            tokio::time::sleep(hold).await;
            at
        };
        let (acked, done) = with_ack_after(long, hold, ack).await;
        assert_eq!(acked, Some(hold));
        assert_eq!(done, hold * 5 / 2);
    }

    /// The console runs one node after another on the same store (the
    /// shell, `mig demo`): a stopped node must have let go of it, though
    /// work it spawned (here, an interrupted run it resumed at start) was
    /// still out when it was told to stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_node_has_let_go_of_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let (_console, config, wire, expire_after) = sealed_example(dir.path());
        for _ in 0..3 {
            journal_interrupted_run(&Store::open(dir.path()).unwrap(), &wire, expire_after);
            let shutdown = CancellationToken::new();
            let (node, task) = start(
                config.clone(),
                Role::Agent,
                Keypair::generate_ed25519(),
                shutdown.clone(),
            )
            .await
            .unwrap();
            shutdown.cancel();
            drop(node);
            task.await.unwrap();
            let reopened = Store::open(dir.path());
            assert!(reopened.is_ok(), "{:?}", reopened.err());
        }
    }

    /// A configuration, and an action that replies to a console nobody
    /// can reach, sealed to the console's key, which is returned first.
    fn sealed_example(
        dir: &std::path::Path,
    ) -> (mig_proto::seal::SealSecret, NodeConfig, Vec<u8>, i64) {
        let console = mig_proto::seal::SealSecret::generate().unwrap();
        let (config, wire, expire_after) = signed_example_replying_to(
            dir,
            Some(mig_proto::ReplyTo {
                peer_id: PeerId::random().to_string(),
                addresses: Vec::new(),
                seal_key: Some(console.public().to_string()),
            }),
        );
        (console, config, wire, expire_after)
    }

    /// Journals a run of the action `wire` as started and never ended, as
    /// a crash leaves it.
    fn journal_interrupted_run(store: &Store, wire: &[u8], expire_after: i64) {
        let mut record = Vec::new();
        ciborium::into_writer(
            &RunRecord {
                wire: wire.to_vec(),
                previous: PeerId::random().to_bytes(),
            },
            &mut record,
        )
        .unwrap();
        let id = SignedAction::from_wire(wire).unwrap().id();
        store
            .journal(Journal::Started {
                id: id.0.to_vec(),
                record,
                seen: Seen {
                    expire_after,
                    wire: wire.to_vec(),
                },
            })
            .unwrap();
    }

    /// A run interrupted by a restart, whose action was cancelled while
    /// the agent was down, is not run again: the agent reports it
    /// cancelled, sealed to the console and signed, and ends the run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_cancelled_while_the_agent_was_down_is_reported_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let (console, config, wire, expire_after) = sealed_example(dir.path());
        let id = SignedAction::from_wire(&wire).unwrap().id();
        {
            let store = Store::open(dir.path()).unwrap();
            journal_interrupted_run(&store, &wire, expire_after);
            store.remember_cancel(&id.0, expire_after).unwrap();
        }
        let keypair = Keypair::generate_ed25519();
        let agent = keypair.public().to_peer_id().to_string();
        let shutdown = CancellationToken::new();
        let (node, task) = start(config, Role::Agent, keypair, shutdown.clone())
            .await
            .unwrap();
        // The report is stored (then offered to a console nobody can reach).
        let mut stored = None;
        for _ in 0..100 {
            stored = node.store.outbox_all().unwrap().into_iter().next();
            if stored.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, bytes) = stored.expect("a report for the interrupted run");
        assert!(node.store.interrupted_runs().unwrap().is_empty());
        shutdown.cancel();
        drop(node);
        task.await.unwrap();
        let parcel: Parcel = ciborium::de::from_reader(bytes.as_slice()).unwrap();
        let envelope = reports::verify(&parcel.report).unwrap();
        let report = envelope.open(Some(&console)).unwrap();
        assert_eq!(report.agent, agent);
        let ReportBody::Result(result) = report.body else {
            panic!("a result, not {:?}", report.body);
        };
        assert_eq!(result.status, mig_proto::AgentStatus::Cancelled);
        assert!(result.operations.is_empty(), "nothing ran");
    }

    #[test]
    fn relays_and_agents_peer_directly_and_only_with_each_other() {
        let version = |role| format!("mig-mesh/0.1.0 {}", role_name(role));
        assert_eq!(peer_role(&version(Role::Relay)), Some(Role::Relay));
        assert_eq!(peer_role(&version(Role::Agent)), Some(Role::Agent));
        assert_eq!(peer_role(&version(Role::Console)), Some(Role::Console));
        // Another program's peer, or a role we do not know, is nobody's
        // direct peer.
        assert_eq!(peer_role("rust-libp2p/0.57.1 relay"), None);
        assert_eq!(peer_role("mig-mesh/0.1.0 broker"), None);
        assert_eq!(peer_role("mig-mesh/0.1.0"), None);
        assert_eq!(direct_role(Role::Relay), Some(Role::Agent));
        assert_eq!(direct_role(Role::Agent), Some(Role::Relay));
        assert_eq!(direct_role(Role::Console), None);
    }

    #[test]
    fn a_circuit_address_names_its_relay_and_a_plain_one_none() {
        let relay = PeerId::random();
        let console = PeerId::random();
        let circuit: Multiaddr =
            format!("/ip4/10.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{console}")
                .parse()
                .unwrap();
        assert_eq!(circuit_relay(&circuit), Some(relay));
        let plain: Multiaddr = format!("/ip4/10.0.0.2/tcp/4001/p2p/{console}")
            .parse()
            .unwrap();
        assert_eq!(circuit_relay(&plain), None);
        let pending = Pending::new(
            Parcel {
                console: console.to_bytes(),
                console_addresses: vec![plain.to_string(), circuit.to_string(), "junk".into()],
                action_id: vec![0; 32],
                expire_after: 0,
                report: mig_proto::messages::SignedReport {
                    bytes: Vec::new(),
                    public_key: Vec::new(),
                    signature: Vec::new(),
                },
            },
            Instant::now(),
        );
        assert_eq!(pending.console_relays, vec![relay]);
    }

    #[test]
    fn a_report_goes_by_the_console_relay_then_the_reverse_path_then_the_console() {
        let console = PeerId::random();
        let relay = PeerId::random();
        let other_relay = PeerId::random();
        let previous = PeerId::random();
        let not_console = |peer: &PeerId| *peer != console;
        let relays = |peer: &PeerId| *peer == relay || *peer == other_relay;
        let hop = |role, path: Option<&PeerId>, failures, connected: &dyn Fn(&PeerId) -> bool| {
            next_hop(role, console, &[relay], path, failures, connected, relays)
        };
        // An agent connected to the console's relay: straight there.
        assert_eq!(hop(Role::Agent, Some(&previous), 0, &not_console), relay);
        // Not connected to it: the reverse path.
        let neither = |peer: &PeerId| *peer != relay && *peer != console;
        assert_eq!(hop(Role::Agent, Some(&previous), 0, &neither), previous);
        // The relay keeps failing: the reverse path, then the console.
        assert_eq!(hop(Role::Agent, Some(&previous), 2, &not_console), previous);
        assert_eq!(hop(Role::Agent, Some(&previous), 3, &not_console), console);
        // Connected to the console: always there.
        assert_eq!(hop(Role::Agent, Some(&previous), 0, &|_| true), console);
        // The reverse path leads to the console itself: no detour.
        assert_eq!(hop(Role::Agent, Some(&console), 0, &neither), console);
        // The path is gone: the console.
        let only_relay = |peer: &PeerId| *peer == relay;
        assert_eq!(hop(Role::Agent, Some(&previous), 2, &only_relay), console);
    }

    #[test]
    fn a_relay_never_hands_a_report_back_to_an_agent() {
        let console = PeerId::random();
        let relay = PeerId::random();
        let other_relay = PeerId::random();
        let agent = PeerId::random();
        let relays = |peer: &PeerId| *peer == relay || *peer == other_relay;
        let not_console = |peer: &PeerId| *peer != console;
        let hop = |path: &PeerId| {
            next_hop(
                Role::Relay,
                console,
                &[relay, other_relay],
                Some(path),
                0,
                not_console,
                relays,
            )
        };
        // Not to another relay of the console's (it would hand it back),
        // nor down its reverse path to an agent (which would too).
        assert_eq!(hop(&agent), console);
        // Along the reverse path to the relay it came from: that one is
        // nearer the console.
        assert_eq!(hop(&other_relay), other_relay);
    }
}
