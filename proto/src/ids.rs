//! Identifiers: action ids, investigator public keys and their fingerprints.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an action id is 64 hexadecimal characters, got '{0}'")]
    BadActionId(String),
    #[error("a key fingerprint is 40 hexadecimal characters, got '{0}'")]
    BadFingerprint(String),
    #[error(
        "a public key is written 'mig-ed25519 <64 hex characters> [comment]', got '{text}': {reason}"
    )]
    BadPublicKey { text: String, reason: &'static str },
}

/// The SHA-256 of an action's canonical encoding (see `docs/protocol.md`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionId(pub [u8; 32]);

impl ActionId {
    pub fn of_canonical_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The first 12 hex characters, as people quote an id in conversation.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ActionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ActionId({})", self.short())
    }
}

impl FromStr for ActionId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        let mut bytes = [0u8; 32];
        if text.len() != 64 {
            return Err(IdError::BadActionId(truncate_for_message(text)));
        }
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| IdError::BadActionId(truncate_for_message(text)))?;
        Ok(Self(bytes))
    }
}

impl Serialize for ActionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Names an investigator key: the first 20 bytes of the SHA-256 of the
/// 32-byte ed25519 public key, written as 40 uppercase hex characters (the
/// length of the PGP fingerprints MIG's ACLs used). Parsing ignores case.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 20]);

impl Fingerprint {
    pub fn of_key(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest[..20]);
        Self(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&hex::encode_upper(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut bytes = [0u8; 20];
        if compact.len() != 40 {
            return Err(IdError::BadFingerprint(truncate_for_message(text)));
        }
        hex::decode_to_slice(&compact, &mut bytes)
            .map_err(|_| IdError::BadFingerprint(truncate_for_message(text)))?;
        Ok(Self(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The word that opens a public key line.
pub const PUBLIC_KEY_PREFIX: &str = "mig-ed25519";

/// An investigator's public key with the comment (usually a name and email)
/// that travelled with it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub key: VerifyingKey,
    pub comment: String,
}

impl PublicKey {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_key(&self.key)
    }

    /// Parses the one-line form `mig-ed25519 <hex> [comment]`. Blank lines
    /// and `#` comment lines before it are skipped, so a key file may carry
    /// a note.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let bad = |reason| IdError::BadPublicKey {
            text: truncate_for_message(text),
            reason,
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .ok_or_else(|| bad("the text is empty"))?;
        let mut words = line.splitn(3, char::is_whitespace);
        if words.next() != Some(PUBLIC_KEY_PREFIX) {
            return Err(bad("it does not start with 'mig-ed25519'"));
        }
        let key_hex = words.next().ok_or_else(|| bad("the key is missing"))?;
        let mut bytes = [0u8; 32];
        if key_hex.len() != 64 || hex::decode_to_slice(key_hex, &mut bytes).is_err() {
            return Err(bad("the key is not 64 hexadecimal characters"));
        }
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| bad("the key is not a valid ed25519 point"))?;
        let comment = words.next().unwrap_or("").trim().to_owned();
        Ok(Self { key, comment })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{PUBLIC_KEY_PREFIX} {}",
            hex::encode(self.key.as_bytes())
        )?;
        if !self.comment.is_empty() {
            write!(formatter, " {}", self.comment)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "PublicKey({} {:?})",
            self.fingerprint(),
            self.comment
        )
    }
}

/// Error messages quote hostile input; keep the quote short.
pub(crate) fn truncate_for_message(text: &str) -> String {
    const LIMIT: usize = 80;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(LIMIT).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn public_key_line_round_trips() {
        let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let public = PublicKey {
            key,
            comment: "Alice <alice@example.org>".into(),
        };
        let text = public.to_string();
        assert!(text.starts_with("mig-ed25519 "));
        let parsed = PublicKey::parse(&format!("# a note\n\n{text}\n")).unwrap();
        assert_eq!(parsed, public);
        assert_eq!(parsed.fingerprint().to_string().len(), 40);
    }

    #[test]
    fn bad_public_keys_are_named() {
        for text in ["", "ssh-ed25519 AAAA", "mig-ed25519 abcd", "mig-ed25519"] {
            assert!(PublicKey::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn fingerprints_parse_in_any_case() {
        let upper = "E608A8B9C2D1F0E3A4B5C6D7E8F90A1B2C3D4E5F";
        let lower = upper.to_lowercase();
        assert_eq!(
            upper.parse::<Fingerprint>().unwrap(),
            lower.parse().unwrap()
        );
        assert!("E608".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn action_ids_parse() {
        let id = ActionId::of_canonical_bytes(b"x");
        assert_eq!(id.to_string().parse::<ActionId>().unwrap(), id);
        assert!("zz".parse::<ActionId>().is_err());
    }
}
