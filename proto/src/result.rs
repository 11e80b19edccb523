//! Results: MIG's per-operation module result envelope, and the agent
//! result around it that travels back to the console.
//!
//! CBOR on the wire ([`AgentResult::to_cbor`]), JSON for people; both are
//! the same serde shape, so they round-trip into each other.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::attributes::AgentAttributes;
use crate::canonical::MAX_NESTING;
use crate::ids::ActionId;
use crate::time::Timestamp;

/// Largest agent result accepted from the network.
pub const MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;

/// MIG's module result: `success` means the module ran to completion,
/// `foundanything` that at least one check hit. `elements` and
/// `statistics` belong to the module.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleResult {
    pub foundanything: bool,
    pub success: bool,
    #[serde(default)]
    pub elements: Json,
    #[serde(default)]
    pub statistics: Json,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl ModuleResult {
    /// A module that could not run: not successful, with the reason.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            errors: vec![reason.into()],
            ..Self::default()
        }
    }
}

/// What became of an action on one agent (MIG's command statuses, plus
/// `rejected` for actions an agent refused to run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Success,
    Failed,
    Timeout,
    Expired,
    Cancelled,
    Rejected,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }
}

/// One agent's answer to one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentResult {
    pub action_id: ActionId,
    pub agent: AgentAttributes,
    pub status: AgentStatus,
    /// Why the status is not `success`, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One per operation, in the action's order.
    pub operations: Vec<ModuleResult>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultDecodeError {
    #[error("result is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed result: {0}")]
    Malformed(String),
}

impl AgentResult {
    /// Whether any operation found anything.
    pub fn found_anything(&self) -> bool {
        self.operations
            .iter()
            .any(|operation| operation.foundanything)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        // Serializing plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut bytes);
        bytes
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ResultDecodeError> {
        if bytes.len() > MAX_RESULT_BYTES {
            return Err(ResultDecodeError::TooLarge {
                size: bytes.len(),
                limit: MAX_RESULT_BYTES,
            });
        }
        ciborium::de::from_reader_with_recursion_limit(bytes, MAX_NESTING)
            .map_err(|error| ResultDecodeError::Malformed(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> AgentResult {
        AgentResult {
            action_id: ActionId([9; 32]),
            agent: AgentAttributes {
                name: "web1.example.org".into(),
                os: "linux".into(),
                id: "12D3KooWexample".into(),
                ..Default::default()
            },
            status: AgentStatus::Success,
            reason: None,
            operations: vec![ModuleResult {
                foundanything: true,
                success: true,
                elements: json!({"s1": [{"file": "/usr/bin/wget", "search": {"paths": ["/usr/bin"]},
                    "fileinfo": {"size": 419080, "mode": "-rwxr-xr-x", "lastmodified": "2016-07-05 15:32:42 +0000 UTC"}}]}),
                statistics: json!({"filescount": 12, "openfailed": 0, "totalhits": 1, "exectime": "2.01ms", "ratio": 0.5}),
                errors: vec![],
            }],
            started_at: Timestamp::from_unix_seconds(1_800_000_000).unwrap(),
            finished_at: Timestamp::from_unix_seconds(1_800_000_002).unwrap(),
        }
    }

    #[test]
    fn cbor_and_json_round_trip() {
        let result = sample();
        assert_eq!(AgentResult::from_cbor(&result.to_cbor()).unwrap(), result);
        let text = serde_json::to_string(&result).unwrap();
        assert_eq!(serde_json::from_str::<AgentResult>(&text).unwrap(), result);
        assert!(text.contains("\"status\":\"success\""));
        assert!(result.found_anything());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(AgentResult::from_cbor(&[0xff, 0x00, 0x13]).is_err());
        assert!(AgentResult::from_cbor(&vec![0x81; 10_000]).is_err());
    }
}
