//! A rogue peer for the hostile-input tests. Two modes:
//!
//! * `mig-rogue --bootstrap ADDR --data-dir DIR --messages FILE [--stay 10]`
//!   joins the mesh as a console would and publishes whatever wire
//!   messages it is given (hex, one per line in a file), valid or not, then
//!   stays connected a while so the test can look at how the mesh treated
//!   it.
//! * `mig-rogue --deliver-to ADDR --data-dir DIR --console PEER --action ID
//!   --victim PEER [--forged N] [--unsolicited N] [--misrouted N]` dials
//!   ADDR and hands it report deliveries on `/mig/reports/1`: N reports for
//!   the action that claim to come from the victim agent (signed with the
//!   rogue's own key), then N validly signed reports for actions nobody
//!   sent, then N validly signed reports of its own about the action whose
//!   routing fields send them to another console, by addresses of the
//!   rogue's choosing; 16 per batch, each batch of one kind. Prints, as
//!   JSON, how many batches were stored and refused.

use std::time::Duration;

use anyhow::Context;
use mig_node::config::NodeConfig;
use mig_node::mesh::{self, Role};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        arguments
            .iter()
            .position(|argument| argument == name)
            .and_then(|index| arguments.get(index + 1))
            .cloned()
    };
    if let Some(address) = value("--deliver-to") {
        let count = |name: &str| value(name).map_or(Ok(0), |text| text.parse::<usize>());
        return deliver::run(deliver::Plan {
            address: address.parse()?,
            data_dir: value("--data-dir").context("--data-dir")?.into(),
            console: value("--console").context("--console")?.parse()?,
            action: value("--action").context("--action")?.parse()?,
            victim: value("--victim").context("--victim")?,
            forged: count("--forged")?,
            unsolicited: count("--unsolicited")?,
            misrouted: count("--misrouted")?,
        });
    }
    let bootstrap = value("--bootstrap").context("--bootstrap")?;
    let data_dir = std::path::PathBuf::from(value("--data-dir").context("--data-dir")?);
    let messages = std::fs::read_to_string(value("--messages").context("--messages")?)?;
    let stay: u64 = value("--stay").map_or(Ok(10), |text| text.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let keypair = mig_node::identity::load_or_create(&data_dir)?;
        let config = NodeConfig {
            data_dir,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            bootstrap: vec![bootstrap.parse()?],
            trusted: Default::default(),
            acl: Default::default(),
            tags: Default::default(),
            root: "/".into(),
            psk: None,
            max_validity_seconds: mig_proto::verify::DEFAULT_MAX_VALIDITY_SECONDS,
            max_concurrent_actions: 1,
            peer_timeout: mig_node::config::DEFAULT_PEER_TIMEOUT,
            external_addresses: Vec::new(),
            mdns: false,
            name: None,
        };
        let shutdown = CancellationToken::new();
        let (node, task) = mesh::start(config, Role::Console, keypair, shutdown.clone()).await?;
        while node.subscribed_peers().await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for line in messages.lines().filter(|line| !line.trim().is_empty()) {
            let wire = hex::decode(line.trim())?;
            if let Err(error) = node.publish(wire).await {
                eprintln!("publish: {error}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(stay)).await;
        shutdown.cancel();
        let _ = task.await;
        anyhow::Ok(())
    })
}

mod deliver {
    //! Hands a peer forged and unsolicited report deliveries.

    use std::path::PathBuf;
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Multiaddr, PeerId, noise, tcp, yamux};
    use mig_node::mesh::codec::MessageCodec;
    use mig_node::mesh::reports::{self, Delivery, DeliveryAck, Parcel, Report, ReportBody};
    use mig_proto::{ActionId, AgentAttributes, AgentResult, AgentStatus};

    pub struct Plan {
        pub address: Multiaddr,
        pub data_dir: PathBuf,
        pub console: PeerId,
        pub action: ActionId,
        pub victim: String,
        pub forged: usize,
        pub unsolicited: usize,
        pub misrouted: usize,
    }

    /// What a rogue parcel is (batches hold one kind each).
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Forged,
        Unsolicited,
        Misrouted,
    }

    const PER_BATCH: usize = 16;

    type Behaviour = request_response::Behaviour<MessageCodec<Delivery, DeliveryAck>>;

    pub fn run(plan: Plan) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(deliver(plan))
    }

    fn parcel(
        plan: &Plan,
        keypair: &libp2p::identity::Keypair,
        action: ActionId,
        agent: String,
    ) -> anyhow::Result<Parcel> {
        let report = Report {
            action_id: action,
            agent,
            attributes: AgentAttributes {
                name: "rogue".into(),
                ..Default::default()
            },
            body: ReportBody::Result(Box::new(AgentResult {
                action_id: action,
                agent: AgentAttributes::default(),
                status: AgentStatus::Success,
                reason: None,
                operations: Vec::new(),
                started_at: mig_proto::Timestamp::from_system_time(std::time::SystemTime::now()),
                finished_at: mig_proto::Timestamp::from_system_time(std::time::SystemTime::now()),
            })),
        };
        Ok(Parcel {
            console: plan.console.to_bytes(),
            console_addresses: Vec::new(),
            action_id: action.0.to_vec(),
            expire_after: i64::MAX / 2,
            // In the clear: the console refuses these before it would open them.
            report: reports::sign(&report.envelope(None)?, keypair)?,
        })
    }

    async fn deliver(plan: Plan) -> anyhow::Result<()> {
        let keypair = mig_node::identity::load_or_create(&plan.data_dir)?;
        let own_id = keypair.public().to_peer_id().to_string();
        let mut parcels = Vec::new();
        for _ in 0..plan.forged {
            parcels.push((
                Kind::Forged,
                parcel(&plan, &keypair, plan.action, plan.victim.clone())?,
            ));
        }
        for index in 0..plan.unsolicited {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(index as u64 + 1).to_be_bytes());
            parcels.push((
                Kind::Unsolicited,
                parcel(&plan, &keypair, ActionId(id), own_id.clone())?,
            ));
        }
        for _ in 0..plan.misrouted {
            let mut misrouted = parcel(&plan, &keypair, plan.action, own_id.clone())?;
            misrouted.console = PeerId::random().to_bytes();
            misrouted.console_addresses = vec!["/ip4/192.0.2.1/tcp/9".into(); 4];
            parcels.push((Kind::Misrouted, misrouted));
        }
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| {
                Behaviour::with_codec(
                    MessageCodec::default(),
                    [(mig_node::mesh::REPORTS_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(10)),
                )
            })?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(30))
            })
            .build();
        let peer = plan
            .address
            .iter()
            .find_map(|protocol| match protocol {
                libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
            .ok_or_else(|| anyhow::anyhow!("--deliver-to needs a /p2p/ part"))?;
        swarm.dial(plan.address.clone())?;
        let mut stored = 0u64;
        let mut refused = 0u64;
        let mut failed = 0u64;
        let mut batches: Vec<Vec<(Kind, Parcel)>> = Vec::new();
        for kind in [Kind::Forged, Kind::Unsolicited, Kind::Misrouted] {
            let of_kind: Vec<(Kind, Parcel)> = parcels
                .iter()
                .filter(|(of, _)| *of == kind)
                .cloned()
                .collect();
            batches.extend(of_kind.chunks(PER_BATCH).map(<[_]>::to_vec));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut next = 0;
        let mut waiting = false;
        while next < batches.len() || waiting {
            let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .map_err(|_| anyhow::anyhow!("gave up after 60 s"))?;
            match event {
                SwarmEvent::ConnectionEstablished { .. } if !waiting && next < batches.len() => {}
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    waiting = false;
                    if response.stored == 0 {
                        refused += 1;
                    } else {
                        stored += u64::from(response.stored);
                    }
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                    waiting = false;
                    failed += 1;
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    anyhow::bail!("cannot reach {}: {error}", plan.address)
                }
                _ => continue,
            }
            if !waiting && next < batches.len() && swarm.is_connected(&peer) {
                let parcels = batches[next]
                    .iter()
                    .map(|(_, parcel)| parcel.clone())
                    .collect();
                swarm
                    .behaviour_mut()
                    .send_request(&peer, Delivery { parcels });
                next += 1;
                waiting = true;
            }
        }
        println!(
            "{}",
            serde_json::json!({"batches": batches.len(), "stored_parcels": stored, "refused_batches": refused, "failed_batches": failed})
        );
        Ok(())
    }
}
