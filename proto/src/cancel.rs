//! A signed cancel: investigators stop an action they launched. It floods
//! like an action (same topic), with its own domain prefix so that neither
//! signature can stand for the other.
//!
//! Body: `"mig-mesh/cancel/v1\n"` then canonical CBOR of
//! `{"action": <64 hex>, "issued_at": <unix seconds>}`; wire: canonical
//! CBOR `{"cancel": bytes, "signatures": [[fingerprint, signature], ...]}`.
//! A cancel needs only trusted, valid signatures (stopping work cannot
//! harm a host) and must be recent.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use crate::action::{MAX_SIGNATURES, SignatureEntry};
use crate::canonical;
use crate::ids::{ActionId, Fingerprint};
use crate::signed::{decode_envelope, encode_envelope};
use crate::time::Timestamp;
use crate::verify::{TrustStore, VerifyError, check_signatures};

pub const CANCEL_DOMAIN: &[u8] = b"mig-mesh/cancel/v1\n";
/// A cancel message is small; anything bigger is not one.
const MAX_CANCEL_WIRE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCancel {
    body: Vec<u8>,
    signatures: Vec<SignatureEntry>,
}

/// A verified cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancel {
    pub action_id: ActionId,
    pub issued_at: Timestamp,
    /// The id of the cancel message itself (for dropping replays).
    pub message_id: ActionId,
}

impl SignedCancel {
    /// An unsigned cancel for `action_id`, issued at `now`.
    pub fn new(action_id: ActionId, now: Timestamp) -> Self {
        let mut body = CANCEL_DOMAIN.to_vec();
        let value = json!({"action": action_id.to_string(), "issued_at": now.unix_seconds()});
        // A two-field map of text and integer always encodes.
        body.extend(canonical::encode_json(&value).unwrap_or_default());
        Self {
            body,
            signatures: Vec::new(),
        }
    }

    pub fn sign(&mut self, key: &SigningKey) {
        let fingerprint = Fingerprint::of_key(&key.verifying_key());
        if self
            .signatures
            .iter()
            .all(|entry| entry.fingerprint != fingerprint)
            && self.signatures.len() < MAX_SIGNATURES
        {
            let signature = key.sign(&self.body).to_bytes();
            self.signatures.push(SignatureEntry {
                fingerprint,
                signature,
            });
        }
    }

    pub fn to_wire(&self) -> Vec<u8> {
        encode_envelope("cancel", &self.body, &self.signatures)
    }

    /// Reads a wire message; `None` if it is not a cancel at all.
    pub fn from_wire(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_CANCEL_WIRE_BYTES {
            return None;
        }
        let (body, signatures) = decode_envelope(bytes, "cancel").ok()?;
        Some(Self { body, signatures })
    }

    /// Checks the signatures (all valid, all trusted, at least one), then
    /// that the cancel was issued within `max_age_seconds` of `now`.
    pub fn verify(
        &self,
        trusted: &TrustStore,
        now: Timestamp,
        max_age_seconds: i64,
        skew_seconds: i64,
    ) -> Result<Cancel, VerifyError> {
        if self.signatures.is_empty() {
            return Err(VerifyError::Unsigned);
        }
        check_signatures(&self.body, &self.signatures, trusted, &mut Vec::new())?;
        let malformed = |reason: &str| VerifyError::Malformed(format!("cancel: {reason}"));
        let cbor = self
            .body
            .strip_prefix(CANCEL_DOMAIN)
            .ok_or_else(|| malformed("wrong domain"))?;
        let value = canonical::decode_json(cbor).map_err(|error| malformed(&error.to_string()))?;
        let action_id: ActionId = value["action"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| malformed("no action id"))?;
        let issued_at = value["issued_at"]
            .as_i64()
            .and_then(|seconds| Timestamp::from_unix_seconds(seconds).ok())
            .ok_or_else(|| malformed("no issue time"))?;
        if value.as_object().is_none_or(|fields| fields.len() != 2) {
            return Err(malformed("unexpected fields"));
        }
        if issued_at > now.plus_seconds(skew_seconds) {
            return Err(VerifyError::NotYetValid {
                valid_from: issued_at,
                now,
            });
        }
        if issued_at.plus_seconds(max_age_seconds) < now {
            return Err(VerifyError::Expired {
                expire_after: issued_at.plus_seconds(max_age_seconds),
                now,
            });
        }
        Ok(Cancel {
            action_id,
            issued_at,
            message_id: ActionId::of_canonical_bytes(&self.body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PublicKey;

    fn trusted(byte: u8) -> TrustStore {
        TrustStore::new([PublicKey {
            key: SigningKey::from_bytes(&[byte; 32]).verifying_key(),
            comment: String::new(),
        }])
    }

    #[test]
    fn a_signed_cancel_round_trips_and_verifies() {
        let now = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
        let mut cancel = SignedCancel::new(ActionId([5; 32]), now);
        cancel.sign(&SigningKey::from_bytes(&[1; 32]));
        let received = SignedCancel::from_wire(&cancel.to_wire()).unwrap();
        let verified = received.verify(&trusted(1), now, 3600, 60).unwrap();
        assert_eq!(verified.action_id, ActionId([5; 32]));
        assert!(matches!(
            received.verify(&trusted(2), now, 3600, 60),
            Err(VerifyError::UnknownSigner { .. })
        ));
        assert!(matches!(
            received.verify(&trusted(1), now.plus_seconds(7200), 3600, 60),
            Err(VerifyError::Expired { .. })
        ));
        assert!(matches!(
            SignedCancel::new(ActionId([5; 32]), now).verify(&trusted(1), now, 3600, 60),
            Err(VerifyError::Unsigned)
        ));
    }

    #[test]
    fn actions_are_not_cancels_and_garbage_is_neither() {
        assert!(SignedCancel::from_wire(b"\xa0").is_none());
        assert!(SignedCancel::from_wire(&[0xff; 10]).is_none());
        let action = crate::Action::from_json(r#"{"name":"n","target":"true","syntaxversion":2,"operations":[{"module":"agentinfo"}]}"#).unwrap();
        let wire = crate::SignedAction::from_action(&action).unwrap().to_wire();
        assert!(SignedCancel::from_wire(&wire).is_none());
    }
}
