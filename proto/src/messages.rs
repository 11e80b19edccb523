//! The request-response messages nodes exchange on their direct streams:
//! report deliveries, hop to hop towards a console (`/mig/reports/1`), and
//! catching up on still-valid actions (`/mig/sync/1`). Also the report an
//! agent signs, as bytes (signing and checking the signature need the
//! node's libp2p key and live in `mig-node`).
//!
//! Every message is CBOR (ciborium through serde). Each decoder here takes
//! untrusted bytes: the caller bounds the bytes read from the stream to the
//! message's limit, and decoding bounds nesting; these are the functions
//! the fuzz targets drive.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::{ActionId, AgentAttributes, AgentResult};

/// Prefix of every signed report, so a report signature is never valid as
/// anything else.
pub const REPORT_DOMAIN: &[u8] = b"mig-mesh/report/v1\n";
/// Largest signed report accepted (a result with many findings).
pub const MAX_REPORT_BYTES: usize = 8 * 1024 * 1024;
/// Largest encoded public key or signature inside a signed report.
pub const MAX_REPORT_KEY_BYTES: usize = 1024;
/// Largest delivery (a batch of parcels) one hop hands the next.
pub const MAX_DELIVERY_BYTES: usize = 64 * 1024 * 1024;
/// Largest delivery acknowledgement.
pub const MAX_DELIVERY_ACK_BYTES: usize = 1024;
/// Largest sync request.
pub const MAX_SYNC_REQUEST_BYTES: usize = 64 * 1024;
/// Ids offered in one sync answer at most.
pub const MAX_SYNC_IDS: usize = 1024;
/// Actions fetched per sync request at most (each up to the wire limit).
pub const MAX_SYNC_FETCH: usize = 4;
/// Largest sync response: `MAX_SYNC_FETCH` actions at the wire limit.
pub const MAX_SYNC_RESPONSE_BYTES: usize =
    MAX_SYNC_FETCH * (crate::signed::MAX_WIRE_BYTES + 64) + 4096;
/// Nesting accepted when decoding any message. Results nest the deepest
/// (operation, element, search, file); this leaves room and stops a
/// hostile depth long before the stack.
const MAX_NESTING: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("message too large: {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes any message. Serializing plain data into a `Vec` cannot fail.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = ciborium::into_writer(message, &mut bytes);
    bytes
}

/// Decodes a message of at most `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, MessageError> {
    if bytes.len() > limit {
        return Err(MessageError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    ciborium::de::from_reader_with_recursion_limit(bytes, MAX_NESTING)
        .map_err(|error| MessageError::Malformed(error.to_string()))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReportBody {
    /// Targeted and accepted; running.
    Ack,
    /// Targeted, but this agent's ACL (or another local rule) refuses it.
    Rejected { reason: String },
    /// Done: the agent's result (deflated on the wire).
    Result(#[serde(with = "deflated")] Box<AgentResult>),
}

thread_local! {
    /// Bytes results may still inflate to on this thread (`usize::MAX`:
    /// only each result's own limit applies).
    static INFLATION_BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Runs `decode` with at most `budget` bytes of inflated results between
/// all the reports it decodes (each still within `MAX_REPORT_BYTES`). A
/// delivery may carry 64 MiB; without a budget, 512 deflated results of a
/// few kilobytes each could inflate to 8 MiB apiece.
pub fn with_inflation_budget<R>(budget: usize, decode: impl FnOnce() -> R) -> R {
    /// Puts the thread's budget back even if `decode` panics (pool
    /// threads outlive a panicking task).
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            INFLATION_BUDGET.with(|left| left.set(self.0));
        }
    }
    let _restore = Restore(INFLATION_BUDGET.with(|left| left.replace(budget)));
    decode()
}

/// A result travels deflated. MIG's format repeats each search's
/// parameters in every answer, so a result that found nothing is about
/// 17 KB as JSON and a tenth of that deflated, and every hop on the way
/// hashes (for the signature), encrypts and stores what it carries. The
/// agent deflates once and the console inflates once; hops only read the
/// report's header.
mod deflated {
    use std::io::{Read, Write};

    use flate2::Compression;
    use flate2::read::DeflateDecoder;
    use flate2::write::DeflateEncoder;
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::ByteBuf;

    use super::{MAX_NESTING, MAX_REPORT_BYTES};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        // Encoded first, then deflated in one piece: the encoder writes
        // token by token, and each write into a deflate stream is a call
        // into the compressor.
        let plain = super::encode(value);
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&plain).map_err(S::Error::custom)?;
        let bytes = encoder.finish().map_err(S::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }

    /// Inflates at most `MAX_REPORT_BYTES`, and no more than this
    /// thread's budget (a small deflated stream can claim to be huge).
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        let deflated = ByteBuf::deserialize(deserializer)?;
        let budget = super::INFLATION_BUDGET.with(std::cell::Cell::get);
        let limit = MAX_REPORT_BYTES.min(budget);
        let mut inflated = Vec::new();
        DeflateDecoder::new(deflated.as_slice())
            .take(limit as u64 + 1)
            .read_to_end(&mut inflated)
            .map_err(D::Error::custom)?;
        if inflated.len() > limit {
            return Err(D::Error::custom(
                "the result inflates past the report limit",
            ));
        }
        super::INFLATION_BUDGET.with(|left| left.set(budget.saturating_sub(inflated.len())));
        ciborium::de::from_reader_with_recursion_limit(inflated.as_slice(), MAX_NESTING)
            .map_err(D::Error::custom)
    }
}

/// What an agent tells the console about one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub action_id: ActionId,
    /// The agent's peer id, as text.
    pub agent: String,
    pub attributes: AgentAttributes,
    pub body: ReportBody,
}

impl Report {
    /// The bytes an agent signs: the domain prefix, then the report.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = REPORT_DOMAIN.to_vec();
        let _ = ciborium::into_writer(self, &mut bytes);
        bytes
    }

    /// Decodes signed bytes (after their signature was checked).
    pub fn from_signing_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        decode_signed(bytes)
    }
}

/// Decodes a report, or its header, from signed bytes.
fn decode_signed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, MessageError> {
    let body = bytes
        .strip_prefix(REPORT_DOMAIN)
        .ok_or_else(|| MessageError::Malformed("wrong report domain".into()))?;
    decode(body, MAX_REPORT_BYTES)
}

/// The part of a report that hops read: which action, which agent.
/// Decoding it skips the attributes and the body, which hops pass on
/// unread; the console decodes the whole `Report`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReportHeader {
    pub action_id: ActionId,
    pub agent: String,
}

impl ReportHeader {
    /// Decodes the header of signed bytes (after their signature was
    /// checked).
    pub fn from_signing_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        decode_signed(bytes)
    }
}

/// A report as it travels: the signed bytes, the signer's public key
/// (libp2p protobuf encoding) and the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedReport {
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl SignedReport {
    /// Whether every part is within its limit (checked before any
    /// signature work).
    pub fn within_limits(&self) -> bool {
        self.bytes.len() <= MAX_REPORT_BYTES
            && self.public_key.len() <= MAX_REPORT_KEY_BYTES
            && self.signature.len() <= MAX_REPORT_KEY_BYTES
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

/// A batch of parcels for the next hop (`/mig/reports/1` request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub parcels: Vec<Parcel>,
}

/// The next hop's answer: it stored this many parcels (all, or none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAck {
    pub stored: u32,
}

/// Peers offered in one answer to `SyncRequest::Peers` at most.
pub const MAX_SYNC_PEERS: usize = 32;

/// `/mig/sync/1` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Which actions do you hold that are still valid?
    Ids,
    /// Send me these actions' wire messages.
    Fetch(Vec<ByteBuf>),
    /// Which peers could I link to? (How agents find a few others.)
    Peers,
}

/// A peer and where it listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer id (bytes).
    pub peer: ByteBuf,
    /// Multiaddresses, as text.
    pub addresses: Vec<String>,
}

/// `/mig/sync/1` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SyncResponse {
    Ids(Vec<ByteBuf>),
    Actions(Vec<ByteBuf>),
    Peers(Vec<PeerRecord>),
}

/// A message type with its own size limit, so a codec can bound what it
/// reads from a stream before decoding.
pub trait Message: Serialize + DeserializeOwned {
    const MAX_BYTES: usize;

    fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        decode(bytes, Self::MAX_BYTES)
    }

    fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

impl Message for Delivery {
    const MAX_BYTES: usize = MAX_DELIVERY_BYTES;
}
impl Message for DeliveryAck {
    const MAX_BYTES: usize = MAX_DELIVERY_ACK_BYTES;
}
impl Message for SyncRequest {
    const MAX_BYTES: usize = MAX_SYNC_REQUEST_BYTES;
}
impl Message for SyncResponse {
    const MAX_BYTES: usize = MAX_SYNC_RESPONSE_BYTES;
}
impl Message for SignedReport {
    const MAX_BYTES: usize = MAX_REPORT_BYTES + 2 * MAX_REPORT_KEY_BYTES + 64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            action_id: ActionId([1; 32]),
            agent: "12D3KooWexample".into(),
            attributes: AgentAttributes {
                name: "web1".into(),
                ..Default::default()
            },
            body: ReportBody::Rejected {
                reason: "acl".into(),
            },
        }
    }

    #[test]
    fn every_message_round_trips() {
        let signed = SignedReport {
            bytes: report().signing_bytes(),
            public_key: vec![1; 36],
            signature: vec![2; 64],
        };
        let delivery = Delivery {
            parcels: vec![Parcel {
                console: vec![0, 1, 2],
                console_addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
                action_id: vec![3; 32],
                expire_after: 1_700_000_000,
                report: signed.clone(),
            }],
        };
        assert_eq!(Delivery::decode(&delivery.encode()), Ok(delivery));
        let ack = DeliveryAck { stored: 7 };
        assert_eq!(DeliveryAck::decode(&ack.encode()), Ok(ack));
        for request in [
            SyncRequest::Ids,
            SyncRequest::Fetch(vec![ByteBuf::from(vec![4; 32])]),
        ] {
            assert_eq!(SyncRequest::decode(&request.encode()), Ok(request));
        }
        let response = SyncResponse::Actions(vec![ByteBuf::from(b"wire".to_vec())]);
        assert_eq!(SyncResponse::decode(&response.encode()), Ok(response));
        let response = SyncResponse::Peers(vec![PeerRecord {
            peer: ByteBuf::from(vec![0, 36, 1]),
            addresses: vec!["/ip4/10.0.0.1/tcp/4001".into()],
        }]);
        assert_eq!(SyncResponse::decode(&response.encode()), Ok(response));
        assert_eq!(Report::from_signing_bytes(&signed.bytes), Ok(report()));
        assert_eq!(
            ReportHeader::from_signing_bytes(&signed.bytes),
            Ok(ReportHeader {
                action_id: ActionId([1; 32]),
                agent: "12D3KooWexample".into(),
            })
        );
    }

    fn result_report(operations: usize) -> Report {
        let at = crate::Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let operation = crate::ModuleResult {
            foundanything: false,
            success: true,
            elements: serde_json::json!({"backdoors": [{"search": {
                "paths": ["/usr/bin/*", "/usr/sbin/*", "/bin/*", "/sbin/*"],
                "sha256": ["adbee847c12c73605ff657e668c8096df138f824eb542027a10c0b5c07619c8d"],
            }}]}),
            ..Default::default()
        };
        Report {
            body: ReportBody::Result(Box::new(AgentResult {
                action_id: ActionId([1; 32]),
                agent: AgentAttributes::default(),
                status: crate::AgentStatus::Success,
                reason: None,
                operations: vec![operation; operations],
                started_at: at,
                finished_at: at,
            })),
            ..report()
        }
    }

    #[test]
    fn results_travel_deflated() {
        let report = result_report(40);
        let bytes = report.signing_bytes();
        assert_eq!(Report::from_signing_bytes(&bytes), Ok(report.clone()));
        let ReportBody::Result(result) = &report.body else {
            unreachable!()
        };
        let plain = encode(result).len();
        assert!(
            bytes.len() * 4 < plain,
            "{} signed bytes for a {plain}-byte result",
            bytes.len()
        );
    }

    #[test]
    fn a_result_that_inflates_past_the_limit_is_refused() {
        use std::io::Write;
        // Deflated, a few kilobytes; inflated, past the report limit.
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=MAX_REPORT_BYTES >> 20 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < MAX_REPORT_BYTES / 64);
        let mut value = ciborium::Value::serialized(&result_report(1)).unwrap();
        let body = value
            .as_map_mut()
            .unwrap()
            .iter_mut()
            .find(|(key, _)| key.as_text() == Some("body"))
            .unwrap();
        body.1 = ciborium::Value::Map(vec![(
            ciborium::Value::Text("Result".into()),
            ciborium::Value::Bytes(bomb),
        )]);
        let mut bytes = REPORT_DOMAIN.to_vec();
        bytes.extend(encode(&value));
        let error = Report::from_signing_bytes(&bytes).unwrap_err();
        assert!(error.to_string().contains("inflates past"), "{error}");
        // Hops never inflate: the header still reads.
        assert!(ReportHeader::from_signing_bytes(&bytes).is_ok());
    }

    #[test]
    fn results_decoded_together_share_one_inflation_budget() {
        let bytes = result_report(40).signing_bytes();
        let ReportBody::Result(result) = result_report(40).body else {
            unreachable!()
        };
        let inflated = encode(&result).len();
        let decoded = with_inflation_budget(2 * inflated, || {
            (0..3)
                .map(|_| Report::from_signing_bytes(&bytes).is_ok())
                .collect::<Vec<_>>()
        });
        assert_eq!(decoded, [true, true, false]);
        // The budget ends with the call.
        assert!(Report::from_signing_bytes(&bytes).is_ok());
    }

    #[test]
    fn oversize_deep_and_foreign_bytes_are_refused() {
        let big = vec![0u8; MAX_DELIVERY_ACK_BYTES + 1];
        assert!(matches!(
            DeliveryAck::decode(&big),
            Err(MessageError::TooLarge { .. })
        ));
        // An array nested far deeper than any message.
        let mut deep = vec![0x81u8; 10_000];
        deep.push(0x00);
        assert!(matches!(
            SyncRequest::decode(&deep),
            Err(MessageError::Malformed(_))
        ));
        let mut foreign = b"mig-mesh/action/v1\n".to_vec();
        foreign.extend(encode(&report()));
        assert!(Report::from_signing_bytes(&foreign).is_err());
        assert!(ReportHeader::from_signing_bytes(&foreign).is_err());
        // A header is only what a whole report starts with.
        let mut headless = REPORT_DOMAIN.to_vec();
        headless.extend(encode(&AgentAttributes::default()));
        assert!(ReportHeader::from_signing_bytes(&headless).is_err());
    }
}
