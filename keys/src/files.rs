//! Reading the files investigators and operators hand to the tools: public
//! keys, ACLs (MIG's JSON, or the same shape in TOML) and action files.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use mig_proto::action::MAX_ACTION_BYTES;
use mig_proto::{Acl, Action, PublicKey, TrustStore};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than the {limit}-byte limit")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Reads a whole file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, FileError> {
    let io = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(text)
}

/// Reads one `mig-ed25519 ...` public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, FileError> {
    let text = read_bounded(path, 64 * 1024)?;
    PublicKey::parse(&text).map_err(|error| FileError::Invalid {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// Builds a trust store from public key files.
pub fn load_trust_store(paths: &[PathBuf]) -> Result<TrustStore, FileError> {
    let mut store = TrustStore::default();
    for path in paths {
        store.add(load_public_key(path)?);
    }
    Ok(store)
}

/// Reads and validates an ACL: TOML if the name ends in `.toml`, else
/// MIG's JSON.
pub fn load_acl(path: &Path) -> Result<Acl, FileError> {
    let text = read_bounded(path, 4 * 1024 * 1024)?;
    let invalid = |reason: String| FileError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let acl: Acl = if path
        .extension()
        .is_some_and(|extension| extension == "toml")
    {
        toml::from_str(&text).map_err(|error| invalid(error.to_string()))?
    } else {
        serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?
    };
    acl.validate().map_err(|error| invalid(error.to_string()))?;
    Ok(acl)
}

/// Reads an action file (JSON).
pub fn load_action(path: &Path) -> Result<Action, FileError> {
    let text = read_bounded(path, 2 * MAX_ACTION_BYTES as u64)?;
    Action::from_json(&text).map_err(|error| FileError::Invalid {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_files_in_json_and_toml() {
        let dir = tempfile::tempdir().unwrap();
        let fingerprint = "E608A8B9C2D1F0E3A4B5C6D7E8F90A1B2C3D4E5F";
        let json = dir.path().join("acl.json");
        fs::write(
            &json,
            format!(r#"{{"default":{{"minimumweight":1,"investigators":{{"Bob":{{"fingerprint":"{fingerprint}","weight":1}}}}}}}}"#),
        )
        .unwrap();
        let toml_path = dir.path().join("acl.toml");
        fs::write(
            &toml_path,
            format!("[default]\nminimumweight = 1\n[default.investigators.Bob]\nfingerprint = \"{fingerprint}\"\nweight = 1\n"),
        )
        .unwrap();
        assert_eq!(load_acl(&json).unwrap(), load_acl(&toml_path).unwrap());

        fs::write(&json, r#"{"default":{"minimumweight":0}}"#).unwrap();
        assert!(
            load_acl(&json)
                .unwrap_err()
                .to_string()
                .contains("minimumweight")
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pub");
        fs::write(&path, vec![b'x'; 70_000]).unwrap();
        assert!(matches!(
            load_public_key(&path),
            Err(FileError::TooLarge { .. })
        ));
    }
}
