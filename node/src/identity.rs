//! The node's libp2p identity: an ed25519 key persisted (mode 0600) in the
//! data directory, so a node keeps its peer id across restarts.

use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity {path}: {message}")]
    File { path: String, message: String },
}

/// Loads `data_dir/identity.key`, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<Keypair, IdentityError> {
    let path = data_dir.join("identity.key");
    let error = |message: String| IdentityError::File {
        path: path.display().to_string(),
        message,
    };
    // The data directory holds the journal and reports waiting to go home:
    // only the node's user may look inside one the node creates. A
    // directory someone else made keeps its mode.
    if !data_dir.exists() {
        std::fs::create_dir_all(data_dir).map_err(|e| error(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| error(e.to_string()))?;
        }
    }
    match std::fs::read(&path) {
        Ok(bytes) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path)
                    .map_err(|e| error(e.to_string()))?
                    .permissions()
                    .mode()
                    & 0o777;
                if mode & 0o077 != 0 {
                    return Err(error(format!(
                        "others can read it (mode {mode:o}); run: chmod 600 {}",
                        path.display()
                    )));
                }
            }
            let mut seed = Zeroizing::new(bytes);
            if seed.len() != 32 {
                return Err(error("expected a 32-byte ed25519 seed".into()));
            }
            Keypair::ed25519_from_bytes(&mut seed[..]).map_err(|e| error(e.to_string()))
        }
        Err(missing) if missing.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut()).map_err(|e| error(e.to_string()))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(|e| error(e.to_string()))?;
            file.write_all(seed.as_ref())
                .and_then(|()| file.sync_all())
                .map_err(|e| error(e.to_string()))?;
            Keypair::ed25519_from_bytes(&mut seed[..]).map_err(|e| error(e.to_string()))
        }
        Err(other) => Err(error(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_persists() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("node");
        let first = load_or_create(&dir).unwrap();
        let second = load_or_create(&dir).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("identity.key")), 0o600);
        assert_eq!(
            mode(&dir),
            0o700,
            "a data directory the node creates is private"
        );
        let existing = parent.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
        load_or_create(&existing).unwrap();
        assert_eq!(
            mode(&existing),
            0o755,
            "a directory the node did not create keeps its mode"
        );
    }
}
