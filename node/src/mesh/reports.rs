//! What agents send home: an ack when they accept a targeted action, a
//! refusal when their ACL denies it, and the result. Each report is signed
//! by the agent's node key, so no hop on the way can forge one; the console
//! checks that the key matches the agent's peer id.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use mig_proto::{ActionId, AgentAttributes, AgentResult};
use serde::{Deserialize, Serialize};

/// Prefix of every signed report, so a report signature is never valid as
/// anything else.
pub const REPORT_DOMAIN: &[u8] = b"mig-mesh/report/v1\n";
/// Largest signed report accepted.
pub const MAX_REPORT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReportBody {
    /// Targeted and accepted; running.
    Ack,
    /// Targeted, but this agent's ACL (or another local rule) refuses it.
    Rejected { reason: String },
    /// Done: the agent's result.
    Result(Box<AgentResult>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub action_id: ActionId,
    /// The agent's peer id, as text.
    pub agent: String,
    pub attributes: AgentAttributes,
    pub body: ReportBody,
}

/// A report as it travels: the signed bytes, the signer's public key and
/// the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedReport {
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("report too large")]
    TooLarge,
    #[error("malformed report: {0}")]
    Malformed(String),
    #[error("the report's signature does not verify")]
    BadSignature,
    #[error("the report claims agent {claimed} but is signed by {signer}")]
    WrongSigner { claimed: String, signer: String },
}

impl SignedReport {
    pub fn sign(report: &Report, key: &Keypair) -> Result<Self, ReportError> {
        let mut bytes = REPORT_DOMAIN.to_vec();
        ciborium::into_writer(report, &mut bytes)
            .map_err(|error| ReportError::Malformed(error.to_string()))?;
        let signature = key
            .sign(&bytes)
            .map_err(|error| ReportError::Malformed(error.to_string()))?;
        Ok(Self {
            bytes,
            public_key: key.public().encode_protobuf(),
            signature,
        })
    }

    /// Checks the signature and that the signer is the agent the report
    /// names, then decodes it.
    pub fn verify(&self) -> Result<Report, ReportError> {
        if self.bytes.len() > MAX_REPORT_BYTES
            || self.public_key.len() > 1024
            || self.signature.len() > 1024
        {
            return Err(ReportError::TooLarge);
        }
        let public = PublicKey::try_decode_protobuf(&self.public_key)
            .map_err(|error| ReportError::Malformed(error.to_string()))?;
        if !public.verify(&self.bytes, &self.signature) {
            return Err(ReportError::BadSignature);
        }
        let body = self
            .bytes
            .strip_prefix(REPORT_DOMAIN)
            .ok_or_else(|| ReportError::Malformed("wrong domain".into()))?;
        let report: Report = ciborium::de::from_reader_with_recursion_limit(body, 64)
            .map_err(|error| ReportError::Malformed(error.to_string()))?;
        let signer = PeerId::from_public_key(&public).to_string();
        if signer != report.agent {
            return Err(ReportError::WrongSigner {
                claimed: report.agent,
                signer,
            });
        }
        Ok(report)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let _ = ciborium::into_writer(self, &mut bytes);
        bytes
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() > MAX_REPORT_BYTES + 4096 {
            return Err(ReportError::TooLarge);
        }
        ciborium::de::from_reader_with_recursion_limit(bytes, 16)
            .map_err(|error| ReportError::Malformed(error.to_string()))
    }
}

/// One report on its way to a console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// The console's peer id (bytes).
    #[serde(with = "serde_bytes")]
    pub console: Vec<u8>,
    /// Where the console can be dialled, from the signed `reply_to`.
    pub console_addresses: Vec<String>,
    #[serde(with = "serde_bytes")]
    pub action_id: Vec<u8>,
    /// The action's expiry; a parcel is kept (for a console that comes back)
    /// until a day after it.
    pub expire_after: i64,
    pub report: SignedReport,
}

/// A batch of parcels for the next hop (request-response request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub parcels: Vec<Parcel>,
}

/// The next hop's answer: it stored this many parcels (all, or none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAck {
    pub stored: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(agent: &Keypair) -> Report {
        Report {
            action_id: ActionId([1; 32]),
            agent: PeerId::from_public_key(&agent.public()).to_string(),
            attributes: AgentAttributes {
                name: "web1".into(),
                ..Default::default()
            },
            body: ReportBody::Ack,
        }
    }

    #[test]
    fn signed_reports_verify_and_forgeries_do_not() {
        let agent = Keypair::generate_ed25519();
        let signed = SignedReport::sign(&report(&agent), &agent).unwrap();
        let round_trip = SignedReport::from_cbor(&signed.to_cbor()).unwrap();
        assert_eq!(round_trip.verify().unwrap(), report(&agent));

        // Another node signs a report claiming to be the agent.
        let forger = Keypair::generate_ed25519();
        let forged = SignedReport::sign(&report(&agent), &forger).unwrap();
        assert!(matches!(
            forged.verify(),
            Err(ReportError::WrongSigner { .. })
        ));

        let mut tampered = signed.clone();
        let last = tampered.bytes.len() - 1;
        tampered.bytes[last] ^= 1;
        assert_eq!(tampered.verify(), Err(ReportError::BadSignature));
    }
}
