//! What agents send home: an ack when they accept a targeted action, a
//! refusal when their ACL denies it, and the result. Each report is sealed
//! to the console's key for the action (`mig_proto::seal`), so no hop on
//! the way can read one, and then signed by the agent's node key, so no hop
//! can forge one: hops and the console check that the key matches the
//! agent's peer id. The formats are in `mig_proto::messages`; signing needs
//! the libp2p key, so it lives here.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
pub use mig_proto::messages::{
    Delivery, DeliveryAck, Envelope, Parcel, Report, ReportBody, ReportHeader, SignedReport,
};

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

impl ReportError {
    /// Stable name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::WrongSigner { .. } => "wrong_signer",
        }
    }
}

pub fn sign(envelope: &Envelope, key: &Keypair) -> Result<SignedReport, ReportError> {
    let bytes = envelope.signing_bytes();
    let signature = key
        .sign(&bytes)
        .map_err(|error| ReportError::Malformed(error.to_string()))?;
    Ok(SignedReport {
        bytes,
        public_key: key.public().encode_protobuf(),
        signature,
    })
}

/// Checks the signature and that the signer is the agent the report
/// names, then decodes the envelope (the console opens it).
pub fn verify(signed: &SignedReport) -> Result<Envelope, ReportError> {
    let public = check_signature(signed)?;
    let envelope = Envelope::from_signing_bytes(&signed.bytes)
        .map_err(|error| ReportError::Malformed(error.to_string()))?;
    check_signer(&public, &envelope.agent)?;
    Ok(envelope)
}

/// What a hop checks before it passes a report on: the signature and the
/// signer, as `verify`, but only the header is decoded.
pub fn verify_header(signed: &SignedReport) -> Result<ReportHeader, ReportError> {
    let public = check_signature(signed)?;
    let header = ReportHeader::from_signing_bytes(&signed.bytes)
        .map_err(|error| ReportError::Malformed(error.to_string()))?;
    check_signer(&public, &header.agent)?;
    Ok(header)
}

fn check_signature(signed: &SignedReport) -> Result<PublicKey, ReportError> {
    if !signed.within_limits() {
        return Err(ReportError::TooLarge);
    }
    let public = PublicKey::try_decode_protobuf(&signed.public_key)
        .map_err(|error| ReportError::Malformed(error.to_string()))?;
    if !public.verify(&signed.bytes, &signed.signature) {
        return Err(ReportError::BadSignature);
    }
    Ok(public)
}

fn check_signer(public: &PublicKey, agent: &str) -> Result<(), ReportError> {
    let signer = PeerId::from_public_key(public).to_string();
    if signer != agent {
        return Err(ReportError::WrongSigner {
            claimed: agent.to_owned(),
            signer,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mig_proto::messages::Message;
    use mig_proto::{ActionId, AgentAttributes};

    fn report(agent: &Keypair) -> Envelope {
        Report {
            action_id: ActionId([1; 32]),
            agent: PeerId::from_public_key(&agent.public()).to_string(),
            attributes: AgentAttributes {
                name: "web1".into(),
                ..Default::default()
            },
            body: ReportBody::Ack,
        }
        .envelope(None)
        .unwrap()
    }

    #[test]
    fn signed_reports_verify_and_forgeries_do_not() {
        let agent = Keypair::generate_ed25519();
        let signed = sign(&report(&agent), &agent).unwrap();
        let round_trip = SignedReport::decode(&signed.encode()).unwrap();
        assert_eq!(verify(&round_trip).unwrap(), report(&agent));
        assert_eq!(
            verify_header(&round_trip).unwrap(),
            ReportHeader {
                action_id: ActionId([1; 32]),
                agent: report(&agent).agent,
            }
        );

        // Another node signs a report claiming to be the agent.
        let forger = Keypair::generate_ed25519();
        let forged = sign(&report(&agent), &forger).unwrap();
        assert!(matches!(
            verify(&forged),
            Err(ReportError::WrongSigner { .. })
        ));
        assert!(matches!(
            verify_header(&forged),
            Err(ReportError::WrongSigner { .. })
        ));

        let mut tampered = signed.clone();
        let last = tampered.bytes.len() - 1;
        tampered.bytes[last] ^= 1;
        assert_eq!(verify(&tampered), Err(ReportError::BadSignature));
        assert_eq!(verify_header(&tampered), Err(ReportError::BadSignature));
    }
}
