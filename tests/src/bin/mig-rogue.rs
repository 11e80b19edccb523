//! A rogue peer for the hostile-input tests: it joins the mesh as a
//! console would and publishes whatever wire messages it is given (hex,
//! one per line in a file), valid or not, then stays connected a while so
//! the test can look at how the mesh treated it.
//!
//! `mig-rogue --bootstrap ADDR --data-dir DIR --messages FILE [--stay 10]`

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
            external_addresses: Vec::new(),
            mdns: false,
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
