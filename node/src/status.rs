//! The node's local status socket: a Unix socket in the data directory
//! (mode 0600, so only the node's user can read it; nothing listens on the
//! network) that answers one JSON status document per connection.
//! `mig-node status` reads it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::mesh::NodeHandle;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("status.sock")
}

/// Serves status until `shutdown`.
pub async fn serve(
    node: std::sync::Arc<NodeHandle>,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                let node = node.clone();
                tokio::spawn(async move {
                    if let Some(status) = node.status().await {
                        let text = serde_json::to_string_pretty(&status).unwrap_or_default();
                        let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(text.as_bytes())).await;
                    }
                });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Reads a running node's status.
pub async fn query(data_dir: &Path) -> std::io::Result<String> {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        UnixStream::connect(socket_path(data_dir)),
    )
    .await
    .map_err(|_| std::io::Error::other("the node does not answer"))??;
    let mut text = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        (&mut stream).take(1 << 20).read_to_string(&mut text),
    )
    .await
    .map_err(|_| std::io::Error::other("the node does not answer"))??;
    Ok(text)
}

/// Peers an action reaches a node from, in a status document: its gossip
/// mesh and its direct peers (a relay's agents, an agent's relays). Zero
/// means the node is not in the mesh yet.
pub fn action_peers(status: &serde_json::Value) -> u64 {
    ["mesh_peers", "direct_peers"]
        .iter()
        .map(|field| status[field].as_u64().unwrap_or(0))
        .sum()
}
