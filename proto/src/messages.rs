//! The request-response messages nodes exchange on their direct streams:
//! report deliveries, hop to hop towards a console (`/mig/reports/1`), and
//! catching up on still-valid actions (`/mig/sync/1`). Also the report an
//! agent signs, as bytes: an `Envelope` whose header hops read and whose
//! statement is sealed to the console (`crate::seal`). Signing and checking
//! the signature need the node's libp2p key and live in `mig-node`.
//!
//! Every message is CBOR (ciborium through serde). Each decoder here takes
//! untrusted bytes: the caller bounds the bytes read from the stream to the
//! message's limit, and decoding bounds nesting; these are the functions
//! the fuzz targets drive.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::seal::{SealError, SealSecret, Sealed, Sealer};
use crate::{ActionId, AgentAttributes, AgentResult};

/// Prefix of every signed report, so a report signature is never valid as
/// anything else.
pub const REPORT_DOMAIN: &[u8] = b"mig-mesh/report/v2\n";
/// Prefix of the associated data a sealed statement is bound to.
const SEAL_DOMAIN: &[u8] = b"mig-mesh/report-seal/v1\n";
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
    use std::cell::RefCell;

    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::ByteBuf;

    use super::{MAX_NESTING, MAX_REPORT_BYTES};

    thread_local! {
        // One of each per thread, reset for every result: making a
        // compressor allocates and clears a few hundred KiB of tables, a
        // decompressor tens of KiB, and a node (a console, most of all)
        // handles thousands of results one after another.
        static COMPRESSOR: RefCell<Compress> =
            RefCell::new(Compress::new(Compression::fast(), false));
        static DECOMPRESSOR: RefCell<Decompress> = RefCell::new(Decompress::new(false));
    }

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        // Encoded first, then deflated in one piece: the encoder writes
        // token by token, and each write into a deflate stream is a call
        // into the compressor.
        let plain = super::encode(value);
        let bytes = deflate(&plain).map_err(S::Error::custom)?;
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
        let inflated = inflate(&deflated, limit).map_err(D::Error::custom)?;
        super::INFLATION_BUDGET.with(|left| left.set(budget.saturating_sub(inflated.len())));
        ciborium::de::from_reader_with_recursion_limit(inflated.as_slice(), MAX_NESTING)
            .map_err(D::Error::custom)
    }

    pub(super) fn deflate(plain: &[u8]) -> Result<Vec<u8>, String> {
        COMPRESSOR.with(|compressor| {
            let mut compressor = compressor.borrow_mut();
            compressor.reset();
            let mut deflated = Vec::with_capacity(plain.len() / 2 + 64);
            loop {
                let consumed = usize::try_from(compressor.total_in()).unwrap_or(plain.len());
                let status = compressor
                    .compress_vec(
                        plain.get(consumed..).unwrap_or_default(),
                        &mut deflated,
                        FlushCompress::Finish,
                    )
                    .map_err(|error| error.to_string())?;
                if status == Status::StreamEnd {
                    return Ok(deflated);
                }
                // Out of room: the rest goes into more.
                deflated.reserve(deflated.capacity().max(64));
            }
        })
    }

    /// Inflates `deflated`; an error past `limit` bytes, for a stream cut
    /// short, or for one that is not deflate.
    pub(super) fn inflate(deflated: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        DECOMPRESSOR.with(|decompressor| {
            let mut decompressor = decompressor.borrow_mut();
            decompressor.reset(false);
            let cap = limit.saturating_add(1);
            let mut inflated =
                Vec::with_capacity(deflated.len().saturating_mul(4).max(64).min(cap));
            loop {
                let (read, written) = (decompressor.total_in(), decompressor.total_out());
                let consumed = usize::try_from(read).unwrap_or(deflated.len());
                let status = decompressor
                    .decompress_vec(
                        deflated.get(consumed..).unwrap_or_default(),
                        &mut inflated,
                        FlushDecompress::None,
                    )
                    .map_err(|error| error.to_string())?;
                if inflated.len() > limit {
                    return Err("the result inflates past the report limit".into());
                }
                if status == Status::StreamEnd {
                    return Ok(inflated);
                }
                if inflated.len() == inflated.capacity() {
                    // Room for at most one byte past the limit, to see it.
                    let more = inflated.capacity().min(cap - inflated.len());
                    inflated.reserve_exact(more);
                } else if (read, written) == (decompressor.total_in(), decompressor.total_out()) {
                    return Err("the deflated result is cut short".into());
                }
            }
        })
    }
}

/// What an agent tells the console about one action, as the console reads
/// it (opened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub action_id: ActionId,
    /// The agent's peer id, as text.
    pub agent: String,
    pub attributes: AgentAttributes,
    pub body: ReportBody,
}

impl Report {
    /// Puts the report in its envelope: sealed with `sealer` (made for the
    /// action's seal key) or, for an action that names none, in the clear.
    pub fn envelope(self, sealer: Option<&Sealer>) -> Result<Envelope, SealError> {
        let statement = Statement {
            attributes: self.attributes,
            body: self.body,
        };
        let contents = match sealer {
            Some(sealer) => {
                let context = seal_context(&self.action_id, &self.agent);
                Contents::Sealed(sealer.seal(&context, &padded(&encode(&statement)))?)
            }
            None => Contents::Clear(Box::new(statement)),
        };
        Ok(Envelope {
            action_id: self.action_id,
            agent: self.agent,
            contents,
        })
    }
}

/// What the agent says, which hops do not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    pub attributes: AgentAttributes,
    pub body: ReportBody,
}

impl Statement {
    /// Decodes an opened (padded) statement.
    pub fn from_plaintext(plaintext: &[u8]) -> Result<Self, MessageError> {
        let malformed = || MessageError::Malformed("bad padding in a sealed report".into());
        let (length, rest) = plaintext.split_first_chunk::<4>().ok_or_else(malformed)?;
        let length = usize::try_from(u32::from_le_bytes(*length)).map_err(|_| malformed())?;
        let encoded = rest.get(..length).ok_or_else(malformed)?;
        decode(encoded, MAX_REPORT_BYTES)
    }
}

/// What an agent signs: the header hops read (which action, which agent),
/// then the statement, sealed to the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub action_id: ActionId,
    pub agent: String,
    pub contents: Contents,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Contents {
    /// For an action whose `reply_to` names no seal key.
    Clear(Box<Statement>),
    Sealed(Sealed),
}

/// Why a console cannot read a report addressed to it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("the report is in the clear, but the action asked for sealed reports")]
    NotSealed,
    #[error("the report is sealed, but the action named no seal key")]
    NoKey,
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Message(#[from] MessageError),
}

impl OpenError {
    /// Stable name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotSealed => "not_sealed",
            Self::NoKey => "sealed_without_key",
            Self::Seal(_) => "does_not_open",
            Self::Message(_) => "malformed",
        }
    }
}

impl Envelope {
    /// The bytes an agent signs: the domain prefix, then the envelope.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = REPORT_DOMAIN.to_vec();
        let _ = ciborium::into_writer(self, &mut bytes);
        bytes
    }

    /// Decodes signed bytes (after their signature was checked).
    pub fn from_signing_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        decode_signed(bytes)
    }

    /// The report inside, for the console holding the action's seal
    /// `secret` (`None`: the action named no seal key). A report in the
    /// clear for an action that asked for sealed ones is refused: the
    /// agent that sent it leaked what it found to every hop.
    pub fn open(self, secret: Option<&SealSecret>) -> Result<Report, OpenError> {
        let statement = match (self.contents, secret) {
            (Contents::Clear(statement), None) => *statement,
            (Contents::Clear(_), Some(_)) => return Err(OpenError::NotSealed),
            (Contents::Sealed(_), None) => return Err(OpenError::NoKey),
            (Contents::Sealed(sealed), Some(secret)) => {
                let context = seal_context(&self.action_id, &self.agent);
                Statement::from_plaintext(&secret.open(&context, &sealed)?)?
            }
        };
        Ok(Report {
            action_id: self.action_id,
            agent: self.agent,
            attributes: statement.attributes,
            body: statement.body,
        })
    }
}

/// What a sealed statement is bound to: its action and its agent.
fn seal_context(action_id: &ActionId, agent: &str) -> Vec<u8> {
    let mut context = SEAL_DOMAIN.to_vec();
    context.extend_from_slice(&action_id.0);
    context.extend_from_slice(agent.as_bytes());
    context
}

/// Length-prefixed and padded, so the size of a sealed report tells a hop
/// little: up to 64 KiB to a power of two (at least 1 KiB, which an ack
/// and a result that found nothing both fit in), above it to a multiple of
/// 64 KiB.
fn padded(encoded: &[u8]) -> Vec<u8> {
    const SMALLEST: usize = 1024;
    const STEP: usize = 64 * 1024;
    let length = 4 + encoded.len();
    let size = if length <= STEP {
        length.next_power_of_two().max(SMALLEST)
    } else {
        length.div_ceil(STEP) * STEP
    };
    let mut plaintext = Vec::with_capacity(size);
    plaintext.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    plaintext.extend_from_slice(encoded);
    plaintext.resize(size, 0);
    plaintext
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

    /// The signed bytes of `report` in the clear.
    fn clear(report: Report) -> Vec<u8> {
        report.envelope(None).unwrap().signing_bytes()
    }

    /// Decodes and opens signed bytes in the clear.
    fn read_clear(bytes: &[u8]) -> Result<Report, OpenError> {
        Envelope::from_signing_bytes(bytes)?.open(None)
    }

    #[test]
    fn every_message_round_trips() {
        let signed = SignedReport {
            bytes: clear(report()),
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
        assert_eq!(read_clear(&signed.bytes), Ok(report()));
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

    proptest::proptest! {
        /// The thread's one compressor and decompressor, reset for each
        /// result, give back exactly what went in, whatever came before.
        #[test]
        fn deflating_and_inflating_give_back_the_bytes(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048), 1usize..300),
                1..4,
            )
        ) {
            for (pattern, repeats) in chunks {
                let plain = pattern.repeat(repeats);
                let deflated = deflated::deflate(&plain).unwrap();
                proptest::prop_assert_eq!(deflated::inflate(&deflated, plain.len()).unwrap(), plain);
            }
        }
    }

    #[test]
    fn inflating_stops_at_the_limit_and_refuses_cut_and_bad_streams() {
        let plain: Vec<u8> = (0..200_000u32).map(|index| (index % 251) as u8).collect();
        let deflated = deflated::deflate(&plain).unwrap();
        assert_eq!(deflated::inflate(&deflated, plain.len()).unwrap(), plain);
        assert!(
            deflated::inflate(&deflated, plain.len() - 1)
                .unwrap_err()
                .contains("past the report limit")
        );
        let cut = &deflated[..deflated.len() / 2];
        assert!(
            deflated::inflate(cut, plain.len())
                .unwrap_err()
                .contains("cut short")
        );
        assert!(deflated::inflate(&[0xff; 64], plain.len()).is_err());
        // The thread's decompressor is fine after the failures.
        assert_eq!(deflated::inflate(&deflated, plain.len()).unwrap(), plain);
    }

    #[test]
    fn results_travel_deflated() {
        let report = result_report(40);
        let bytes = clear(report.clone());
        assert_eq!(read_clear(&bytes), Ok(report.clone()));
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
        let envelope = result_report(1).envelope(None).unwrap();
        let mut value = ciborium::Value::serialized(&envelope).unwrap();
        fn field<'a>(map: &'a mut ciborium::Value, name: &str) -> &'a mut ciborium::Value {
            let (_, value) = map
                .as_map_mut()
                .unwrap()
                .iter_mut()
                .find(|(key, _)| key.as_text() == Some(name))
                .unwrap();
            value
        }
        // contents: {"Clear": {attributes, body}}
        let body = field(field(field(&mut value, "contents"), "Clear"), "body");
        *body = ciborium::Value::Map(vec![(
            ciborium::Value::Text("Result".into()),
            ciborium::Value::Bytes(bomb),
        )]);
        let mut bytes = REPORT_DOMAIN.to_vec();
        bytes.extend(encode(&value));
        let error = Envelope::from_signing_bytes(&bytes).unwrap_err();
        assert!(error.to_string().contains("inflates past"), "{error}");
        // Hops never inflate: the header still reads.
        assert!(ReportHeader::from_signing_bytes(&bytes).is_ok());
    }

    #[test]
    fn results_decoded_together_share_one_inflation_budget() {
        let secret = SealSecret::generate().unwrap();
        let sealer = Sealer::new(&secret.public()).unwrap();
        let bytes = result_report(40)
            .envelope(Some(&sealer))
            .unwrap()
            .signing_bytes();
        let ReportBody::Result(result) = result_report(40).body else {
            unreachable!()
        };
        let inflated = encode(&result).len();
        let open = || {
            Envelope::from_signing_bytes(&bytes)
                .unwrap()
                .open(Some(&secret))
                .is_ok()
        };
        let decoded =
            with_inflation_budget(2 * inflated, || (0..3).map(|_| open()).collect::<Vec<_>>());
        assert_eq!(decoded, [true, true, false]);
        // The budget ends with the call.
        assert!(open());
    }

    #[test]
    fn a_sealed_report_opens_for_its_console_and_shows_hops_only_its_header() {
        let secret = SealSecret::generate().unwrap();
        let sealer = Sealer::new(&secret.public()).unwrap();
        let sealed = |report: Report| report.envelope(Some(&sealer)).unwrap().signing_bytes();
        let bytes = sealed(result_report(1));
        assert_eq!(
            Envelope::from_signing_bytes(&bytes)
                .unwrap()
                .open(Some(&secret)),
            Ok(result_report(1))
        );
        assert_eq!(
            ReportHeader::from_signing_bytes(&bytes).unwrap().agent,
            "12D3KooWexample"
        );
        // Neither the host's name nor the result is readable on the way.
        let visible = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(visible(b"12D3KooWexample"));
        assert!(!visible(b"web1"));
        assert!(!visible(b"Result"));

        // An ack and a result that found nothing look alike in size.
        let ack = sealed(Report {
            body: ReportBody::Ack,
            ..report()
        });
        assert_eq!(ack.len(), bytes.len());

        // A sealed statement moved under another agent's name does not open.
        let mut moved = Envelope::from_signing_bytes(&bytes).unwrap();
        moved.agent = "12D3KooWother".into();
        assert!(matches!(
            moved.open(Some(&secret)),
            Err(OpenError::Seal(SealError::DoesNotOpen))
        ));
        // The console reads only what the action asked for.
        let envelope = Envelope::from_signing_bytes(&bytes).unwrap();
        assert_eq!(envelope.open(None), Err(OpenError::NoKey));
        let in_clear = Envelope::from_signing_bytes(&clear(report())).unwrap();
        assert_eq!(in_clear.open(Some(&secret)), Err(OpenError::NotSealed));
    }

    #[test]
    fn padding_hides_small_sizes_and_stays_bounded() {
        for (encoded, size) in [
            (0, 1024),
            (1020, 1024),
            (1021, 2048),
            (65_532, 65_536),
            (65_533, 131_072),
            (200_000, 262_144),
        ] {
            let plaintext = padded(&vec![7; encoded]);
            assert_eq!(plaintext.len(), size, "{encoded} bytes");
            assert!(plaintext.len() <= (4 + encoded).max(1024) * 2);
        }
        let statement = Statement {
            attributes: AgentAttributes::default(),
            body: ReportBody::Ack,
        };
        assert_eq!(
            Statement::from_plaintext(&padded(&encode(&statement))),
            Ok(statement)
        );
        for bad in [&[][..], &[9, 0, 0, 0, 1][..], &[0xff; 8][..]] {
            assert!(Statement::from_plaintext(bad).is_err());
        }
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
        foreign.extend(encode(&report().envelope(None).unwrap()));
        assert!(Envelope::from_signing_bytes(&foreign).is_err());
        assert!(ReportHeader::from_signing_bytes(&foreign).is_err());
        // A header is only what a whole report starts with.
        let mut headless = REPORT_DOMAIN.to_vec();
        headless.extend(encode(&AgentAttributes::default()));
        assert!(ReportHeader::from_signing_bytes(&headless).is_err());
    }
}
