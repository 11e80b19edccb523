//! A signed action as it travels: the canonical body bytes exactly as
//! signed, and the signatures over them.
//!
//! The body is never rebuilt from a struct to check a signature: a receiver
//! verifies the bytes it got (see [`crate::verify`]) and only then decodes
//! them. The wire form is canonical CBOR `{"body": bytes, "signatures":
//! [[fingerprint(20 bytes), signature(64 bytes)], ...]}` (`docs/protocol.md`).

use ciborium::Value as Cbor;
use ed25519_dalek::{Signer, SigningKey};

use crate::action::{Action, ActionError, MAX_ACTION_BYTES, MAX_SIGNATURES, SignatureEntry};
use crate::canonical;
use crate::ids::{ActionId, Fingerprint};

/// Largest wire message: the largest body plus the largest signature list
/// and a little framing.
pub const MAX_WIRE_BYTES: usize = MAX_ACTION_BYTES + MAX_SIGNATURES * 96 + 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAction {
    body: Vec<u8>,
    signatures: Vec<SignatureEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a signed action: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("key {0} has already signed this action")]
    AlreadySigned(Fingerprint),
    #[error("the action already carries {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

impl SignedAction {
    /// Wraps received body bytes and signatures, unchecked.
    pub fn from_parts(body: Vec<u8>, signatures: Vec<SignatureEntry>) -> Self {
        Self { body, signatures }
    }

    /// The canonical body of `action` with the signatures it already carries.
    pub fn from_action(action: &Action) -> Result<Self, ActionError> {
        Ok(Self {
            body: action.canonical_bytes()?,
            signatures: action.signatures.clone(),
        })
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn signatures(&self) -> &[SignatureEntry] {
        &self.signatures
    }

    pub fn id(&self) -> ActionId {
        ActionId::of_canonical_bytes(&self.body)
    }

    /// Appends a signature by `key` over the body bytes.
    pub fn sign(&mut self, key: &SigningKey) -> Result<&SignatureEntry, SignError> {
        let fingerprint = Fingerprint::of_key(&key.verifying_key());
        if self
            .signatures
            .iter()
            .any(|entry| entry.fingerprint == fingerprint)
        {
            return Err(SignError::AlreadySigned(fingerprint));
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(SignError::TooManySignatures);
        }
        let signature = key.sign(&self.body).to_bytes();
        self.signatures.push(SignatureEntry {
            fingerprint,
            signature,
        });
        Ok(&self.signatures[self.signatures.len() - 1])
    }

    /// The canonical CBOR wire message.
    pub fn to_wire(&self) -> Vec<u8> {
        encode_envelope("body", &self.body, &self.signatures)
    }

    /// Reads a wire message. Checks its shape and sizes, not its signatures.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_WIRE_BYTES {
            return Err(WireError::TooLarge {
                size: bytes.len(),
                limit: MAX_WIRE_BYTES,
            });
        }
        let (body, signatures) = decode_envelope(bytes, "body").map_err(WireError::Malformed)?;
        Ok(Self { body, signatures })
    }
}

/// The wire envelope shared by actions and cancels: canonical CBOR
/// `{label: body bytes, "signatures": [[fingerprint, signature], ...]}`.
pub(crate) fn encode_envelope(label: &str, body: &[u8], signatures: &[SignatureEntry]) -> Vec<u8> {
    let signatures = signatures
        .iter()
        .map(|entry| {
            Cbor::Array(vec![
                Cbor::Bytes(entry.fingerprint.0.to_vec()),
                Cbor::Bytes(entry.signature.to_vec()),
            ])
        })
        .collect();
    // Both labels ("body", "cancel") sort before "signatures": shorter
    // keys first.
    let message = Cbor::Map(vec![
        (Cbor::Text(label.into()), Cbor::Bytes(body.to_vec())),
        (Cbor::Text("signatures".into()), Cbor::Array(signatures)),
    ]);
    // Encoding an in-memory tree into a Vec cannot fail.
    canonical::encode_cbor(&message).unwrap_or_default()
}

/// Reads an envelope written by [`encode_envelope`] with this `label`,
/// refusing any other shape and any non-canonical encoding. The caller
/// bounds the size of `bytes`.
pub(crate) fn decode_envelope(
    bytes: &[u8],
    label: &str,
) -> Result<(Vec<u8>, Vec<SignatureEntry>), String> {
    let shape = || format!("expected exactly the fields {label} and signatures");
    let value = canonical::decode_cbor(bytes).map_err(|error| error.to_string())?;
    let Cbor::Map(fields) = value else {
        return Err("not a map".to_owned());
    };
    let [
        (Cbor::Text(label_key), Cbor::Bytes(body)),
        (Cbor::Text(signatures_key), Cbor::Array(list)),
    ] = fields.as_slice()
    else {
        return Err(shape());
    };
    if label_key != label || signatures_key != "signatures" {
        return Err(shape());
    }
    if list.len() > MAX_SIGNATURES {
        return Err("too many signatures".to_owned());
    }
    let mut signatures = Vec::with_capacity(list.len());
    for item in list {
        let Cbor::Array(pair) = item else {
            return Err("a signature is not a pair".to_owned());
        };
        let [Cbor::Bytes(fingerprint), Cbor::Bytes(signature)] = pair.as_slice() else {
            return Err("a signature is not a pair of byte strings".to_owned());
        };
        signatures.push(SignatureEntry {
            fingerprint: Fingerprint(
                fingerprint
                    .as_slice()
                    .try_into()
                    .map_err(|_| "fingerprint size".to_owned())?,
            ),
            signature: signature
                .as_slice()
                .try_into()
                .map_err(|_| "signature size".to_owned())?,
        });
    }
    if encode_envelope(label, body, &signatures) != bytes {
        return Err("not the canonical encoding".to_owned());
    }
    Ok((body.clone(), signatures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedAction {
        let action = Action::from_json(
            r#"{"name":"n","target":"true","syntaxversion":2,"operations":[{"module":"agentinfo"}]}"#,
        )
        .unwrap();
        let mut signed = SignedAction::from_action(&action).unwrap();
        signed.sign(&SigningKey::from_bytes(&[1; 32])).unwrap();
        signed.sign(&SigningKey::from_bytes(&[2; 32])).unwrap();
        signed
    }

    #[test]
    fn wire_round_trips() {
        let signed = sample();
        assert_eq!(SignedAction::from_wire(&signed.to_wire()).unwrap(), signed);
    }

    #[test]
    fn the_same_key_cannot_sign_twice() {
        let mut signed = sample();
        assert!(matches!(
            signed.sign(&SigningKey::from_bytes(&[1; 32])),
            Err(SignError::AlreadySigned(_))
        ));
    }

    #[test]
    fn bad_wire_messages_are_refused() {
        let wire = sample().to_wire();
        for cut in [0, 1, 10, wire.len() - 1] {
            assert!(SignedAction::from_wire(&wire[..cut]).is_err());
        }
        assert!(SignedAction::from_wire(&[0xa0]).is_err());
        let huge = vec![0u8; MAX_WIRE_BYTES + 1];
        assert!(matches!(
            SignedAction::from_wire(&huge),
            Err(WireError::TooLarge { .. })
        ));
    }
}
