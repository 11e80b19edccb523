//! The action: MIG's syntaxversion 2 JSON, plus what the mesh needs
//! (`nonce`, `reply_to`, `signatures`), and its canonical signed body.
//!
//! Two representations, one meaning:
//! * JSON for people: [`Action::from_json`] reads a file as investigators
//!   write it (MIG's platform-filled fields are accepted and dropped; any
//!   other unknown field is an error naming the closest known one), and
//!   [`Action::to_json_pretty`] writes it back.
//! * The canonical body for machines: [`Action::canonical_bytes`] is the
//!   domain prefix followed by deterministic CBOR of every field but the
//!   signatures; [`Action::from_canonical_bytes`] reads it back, strictly.
//!   The action id is the SHA-256 of those bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value as Json, json};

use crate::canonical::{self, CanonicalError};
use crate::ids::{ActionId, Fingerprint, truncate_for_message};
use crate::time::Timestamp;

/// The only action syntax version agents accept (MIG's current one).
pub const SYNTAX_VERSION: u64 = 2;

/// Prefix of every canonical action body, so that an action signature can
/// never be mistaken for the signature of another kind of message.
pub const ACTION_DOMAIN: &[u8] = b"mig-mesh/action/v1\n";

/// Largest canonical action accepted anywhere (big IOC lists fit: 20,000
/// SHA-256 hashes take about 1.4 MB).
pub const MAX_ACTION_BYTES: usize = 4 * 1024 * 1024;

/// An action as investigators write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    #[serde(default, skip_serializing_if = "Description::is_empty")]
    pub description: Description,
    pub target: String,
    #[serde(default, skip_serializing_if = "Threat::is_empty")]
    pub threat: Threat,
    pub operations: Vec<Operation>,
    pub syntaxversion: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validfrom: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expireafter: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIG wrote revisions as numbers like 201409031800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Number>,
}

impl Description {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

impl Threat {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub module: String,
    #[serde(default = "empty_object")]
    pub parameters: Json,
}

fn empty_object() -> Json {
    Json::Object(Map::new())
}

/// Where results go: the console's peer id, addresses it can be dialled at
/// (relay circuit addresses included), and the X25519 key results are
/// sealed to. Signed like everything else in the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTo {
    pub peer_id: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_key: Option<String>,
}

/// One investigator's signature over the canonical body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    pub fingerprint: Fingerprint,
    #[serde(with = "signature_hex")]
    pub signature: [u8; 64],
}

mod signature_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&text, &mut bytes)
            .map_err(|_| serde::de::Error::custom("a signature is 128 hexadecimal characters"))?;
        Ok(bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unknown field '{path}'{}", suggestion_text(.suggestion))]
    UnknownField {
        path: String,
        suggestion: Option<String>,
    },
    #[error("field '{field}': {reason}")]
    Invalid { field: String, reason: String },
    #[error(
        "operation {index} has compressed parameters (is_compressed); decompress them first, they are signed as plain JSON here"
    )]
    CompressedParameters { index: usize },
    #[error("the canonical action is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the canonical action does not start with the action domain prefix")]
    WrongDomain,
    #[error("canonical encoding: {0}")]
    Canonical(#[from] CanonicalError),
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(known) => format!(" (did you mean '{known}'?)"),
        None => String::new(),
    }
}

/// Field names per JSON object, and the MIG fields each one drops.
struct Shape {
    known: &'static [&'static str],
    dropped: &'static [&'static str],
}

const ACTION_SHAPE: Shape = Shape {
    known: &[
        "name",
        "description",
        "target",
        "threat",
        "operations",
        "syntaxversion",
        "validfrom",
        "expireafter",
        "nonce",
        "reply_to",
        "signatures",
    ],
    // Filled in by MIG's API and scheduler; meaningless without them.
    dropped: &[
        "id",
        "status",
        "counters",
        "starttime",
        "finishtime",
        "lastupdatetime",
        "investigators",
        "pgpsignatures",
    ],
};
const DESCRIPTION_SHAPE: Shape = Shape {
    known: &["author", "email", "url", "revision"],
    dropped: &[],
};
const THREAT_SHAPE: Shape = Shape {
    known: &["ref", "level", "type", "family"],
    dropped: &[],
};
const OPERATION_SHAPE: Shape = Shape {
    known: &["module", "parameters"],
    dropped: &["want_compressed", "is_compressed"],
};
const REPLY_TO_SHAPE: Shape = Shape {
    known: &["peer_id", "addresses", "seal_key"],
    dropped: &[],
};
const SIGNATURE_SHAPE: Shape = Shape {
    known: &["fingerprint", "signature"],
    dropped: &[],
};

impl Action {
    /// Reads an action from JSON text, as a person or MIG wrote it.
    pub fn from_json(text: &str) -> Result<Self, ActionError> {
        if text.len() > MAX_ACTION_BYTES * 2 {
            return Err(ActionError::TooLarge {
                size: text.len(),
                limit: MAX_ACTION_BYTES * 2,
            });
        }
        let mut value: Json = serde_json::from_str(text).map_err(|error| ActionError::Json {
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        })?;
        normalize_shape(&mut value)?;
        let action = deserialize_naming_the_field(value)?;
        action.check_fields()?;
        Ok(action)
    }

    /// The JSON form, indented for people.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain data to a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks what the types alone do not: non-empty names, bounded sizes.
    fn check_fields(&self) -> Result<(), ActionError> {
        let invalid = |field: &str, reason: &str| ActionError::Invalid {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.target.trim().is_empty() {
            return Err(invalid(
                "target",
                "must not be empty (use 'true' to target every agent)",
            ));
        }
        if self.operations.is_empty() {
            return Err(invalid("operations", "must hold at least one operation"));
        }
        if self.operations.len() > MAX_OPERATIONS {
            return Err(invalid(
                "operations",
                &format!("at most {MAX_OPERATIONS} operations"),
            ));
        }
        for (index, operation) in self.operations.iter().enumerate() {
            if operation.module.trim().is_empty() {
                return Err(invalid(
                    &format!("operations[{index}].module"),
                    "must not be empty",
                ));
            }
        }
        if let (Some(from), Some(until)) = (self.validfrom, self.expireafter)
            && until < from
        {
            return Err(invalid("expireafter", "is before validfrom"));
        }
        if let Some(nonce) = &self.nonce
            && (nonce.is_empty() || nonce.len() > 128)
        {
            return Err(invalid("nonce", "must be 1 to 128 characters"));
        }
        if let Some(key) = self
            .reply_to
            .as_ref()
            .and_then(|reply_to| reply_to.seal_key.as_deref())
            && let Err(error) = crate::seal::SealPublic::parse(key)
        {
            return Err(invalid("reply_to.seal_key", &error.to_string()));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(invalid(
                "signatures",
                &format!("at most {MAX_SIGNATURES} signatures"),
            ));
        }
        Ok(())
    }

    /// The canonical body: [`ACTION_DOMAIN`] then deterministic CBOR of
    /// every field except `signatures`. This is what is signed, hashed into
    /// the id and carried on the wire.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ActionError> {
        let mut bytes = ACTION_DOMAIN.to_vec();
        bytes.extend_from_slice(&canonical::encode_json(&self.body_json())?);
        if bytes.len() > MAX_ACTION_BYTES {
            return Err(ActionError::TooLarge {
                size: bytes.len(),
                limit: MAX_ACTION_BYTES,
            });
        }
        Ok(bytes)
    }

    /// The action id: SHA-256 of the canonical body.
    pub fn id(&self) -> Result<ActionId, ActionError> {
        Ok(ActionId::of_canonical_bytes(&self.canonical_bytes()?))
    }

    /// The signed body as a JSON tree, times as Unix seconds. Optional
    /// fields that are absent (or empty objects) are left out.
    fn body_json(&self) -> Json {
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name));
        body.insert("target".into(), json!(self.target));
        body.insert("syntaxversion".into(), json!(self.syntaxversion));
        body.insert(
            "operations".into(),
            Json::Array(
                self.operations
                    .iter()
                    .map(|op| json!({"module": op.module, "parameters": op.parameters}))
                    .collect(),
            ),
        );
        if !self.description.is_empty() {
            body.insert("description".into(), json!(self.description));
        }
        if !self.threat.is_empty() {
            body.insert("threat".into(), json!(self.threat));
        }
        if let Some(time) = self.validfrom {
            body.insert("validfrom".into(), json!(time.unix_seconds()));
        }
        if let Some(time) = self.expireafter {
            body.insert("expireafter".into(), json!(time.unix_seconds()));
        }
        if let Some(nonce) = &self.nonce {
            body.insert("nonce".into(), json!(nonce));
        }
        if let Some(reply_to) = &self.reply_to {
            body.insert("reply_to".into(), json!(reply_to));
        }
        Json::Object(body)
    }

    /// Reads a canonical body back (without signatures). Refuses anything
    /// that is not exactly the canonical encoding of a valid action.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, ActionError> {
        if bytes.len() > MAX_ACTION_BYTES {
            return Err(ActionError::TooLarge {
                size: bytes.len(),
                limit: MAX_ACTION_BYTES,
            });
        }
        let cbor = bytes
            .strip_prefix(ACTION_DOMAIN)
            .ok_or(ActionError::WrongDomain)?;
        let mut body = canonical::decode_json(cbor)?;
        let Json::Object(fields) = &mut body else {
            return Err(ActionError::Invalid {
                field: "body".into(),
                reason: "is not a map".into(),
            });
        };
        for key in fields.keys() {
            if !ACTION_SHAPE.known.contains(&key.as_str()) || key == "signatures" {
                return Err(ActionError::UnknownField {
                    path: key.clone(),
                    suggestion: None,
                });
            }
        }
        for field in ["validfrom", "expireafter"] {
            if let Some(value) = fields.get_mut(field) {
                let seconds = value.as_i64().ok_or_else(|| ActionError::Invalid {
                    field: field.into(),
                    reason: "is not whole Unix seconds".into(),
                })?;
                let time = Timestamp::from_unix_seconds(seconds).map_err(|error| {
                    ActionError::Invalid {
                        field: field.into(),
                        reason: error.to_string(),
                    }
                })?;
                *value = json!(time.to_string());
            }
        }
        let action = deserialize_naming_the_field(body)?;
        action.check_fields()?;
        Ok(action)
    }
}

/// At most this many operations per action.
pub const MAX_OPERATIONS: usize = 64;
/// At most this many signatures per action.
pub const MAX_SIGNATURES: usize = 16;

/// Walks the JSON objects of an action: drops MIG's platform fields, turns
/// unknown fields into errors with a suggestion.
fn normalize_shape(value: &mut Json) -> Result<(), ActionError> {
    let Json::Object(action) = value else {
        return Err(ActionError::Invalid {
            field: "action".into(),
            reason: "must be a JSON object".into(),
        });
    };
    apply_shape(action, &ACTION_SHAPE, "")?;
    if let Some(Json::Object(description)) = action.get_mut("description") {
        apply_shape(description, &DESCRIPTION_SHAPE, "description.")?;
    }
    if let Some(Json::Object(threat)) = action.get_mut("threat") {
        apply_shape(threat, &THREAT_SHAPE, "threat.")?;
    }
    if let Some(Json::Object(reply_to)) = action.get_mut("reply_to") {
        apply_shape(reply_to, &REPLY_TO_SHAPE, "reply_to.")?;
    }
    if let Some(Json::Array(operations)) = action.get_mut("operations") {
        for (index, operation) in operations.iter_mut().enumerate() {
            if let Json::Object(operation) = operation {
                if operation.get("is_compressed") == Some(&Json::Bool(true)) {
                    return Err(ActionError::CompressedParameters { index });
                }
                apply_shape(
                    operation,
                    &OPERATION_SHAPE,
                    &format!("operations[{index}]."),
                )?;
            }
        }
    }
    if let Some(Json::Array(signatures)) = action.get_mut("signatures") {
        for (index, signature) in signatures.iter_mut().enumerate() {
            if let Json::Object(signature) = signature {
                apply_shape(
                    signature,
                    &SIGNATURE_SHAPE,
                    &format!("signatures[{index}]."),
                )?;
            }
        }
    }
    // `2.0` is the same number as `2`, as in the canonical encoding.
    if let Some(version) = action.get_mut("syntaxversion")
        && let Some(float) = version.as_f64()
        && version.is_f64()
        && float.fract() == 0.0
        && (0.0..=f64::from(u32::MAX)).contains(&float)
    {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = float as u64;
        *version = json!(whole);
    }
    // MIG's platform-filled times may be null; "validfrom": null means unset.
    for field in ["validfrom", "expireafter", "nonce", "reply_to"] {
        if action.get(field) == Some(&Json::Null) {
            action.remove(field);
        }
    }
    Ok(())
}

fn apply_shape(
    object: &mut Map<String, Json>,
    shape: &Shape,
    prefix: &str,
) -> Result<(), ActionError> {
    object.retain(|key, _| !shape.dropped.contains(&key.as_str()));
    for key in object.keys() {
        if !shape.known.contains(&key.as_str()) {
            return Err(ActionError::UnknownField {
                path: format!("{prefix}{}", truncate_for_message(key)),
                suggestion: closest(key, shape.known),
            });
        }
    }
    Ok(())
}

/// The known name closest to a misspelt one, if any is close enough to be a
/// plausible typo.
pub(crate) fn closest(word: &str, known: &[&str]) -> Option<String> {
    let lowered = word.to_lowercase();
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(&lowered, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min()
        .map(|(_, candidate)| candidate.to_owned())
}

/// Deserializes, naming the field that failed by its path
/// (`operations[0].module`).
fn deserialize_naming_the_field(value: Json) -> Result<Action, ActionError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let reason = error.into_inner().to_string();
        // A missing field is reported at its parent; name it in full.
        let field = match (path.as_str(), reason.split('`').nth(1)) {
            (_, Some(missing)) if reason.starts_with("missing field") => {
                if path == "." {
                    missing.to_owned()
                } else {
                    format!("{path}.{missing}")
                }
            }
            (".", _) => "action".to_owned(),
            _ => path,
        };
        ActionError::Invalid { field, reason }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_EXAMPLE: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");

    #[test]
    fn the_seed_example_loads_as_it_is() {
        let action = Action::from_json(SEED_EXAMPLE).unwrap();
        assert_eq!(
            action.name,
            "Linux backdoor, found on compromised host in 2014"
        );
        assert_eq!(action.target, "agents.os = 'linux'");
        assert_eq!(action.operations[0].module, "filechecker");
        assert_eq!(action.description.revision, Some(201409031800u64.into()));
        assert_eq!(action.threat.family.as_deref(), Some("backdoor"));
        assert_eq!(action.syntaxversion, 2);
        assert!(action.validfrom.is_none() && action.signatures.is_empty());
    }

    #[test]
    fn mig_platform_fields_are_dropped() {
        let mut value: Json = serde_json::from_str(SEED_EXAMPLE).unwrap();
        value["id"] = json!(6146584129446641000u64);
        value["status"] = json!("completed");
        value["counters"] = json!({"sent": 1, "done": 1});
        value["pgpsignatures"] = json!(["wsBcBAABCAAQBQJ..."]);
        value["investigators"] = json!([{"name": "Julien"}]);
        value["starttime"] = json!("2014-09-03T18:00:00Z");
        value["operations"][0]["want_compressed"] = json!(false);
        let imported = Action::from_json(&value.to_string()).unwrap();
        assert_eq!(imported, Action::from_json(SEED_EXAMPLE).unwrap());
    }

    #[test]
    fn unknown_fields_name_the_closest_known_one() {
        let mut value: Json = serde_json::from_str(SEED_EXAMPLE).unwrap();
        value["tagret"] = json!("x");
        let error = Action::from_json(&value.to_string()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown field 'tagret' (did you mean 'target'?)"
        );

        let mut value: Json = serde_json::from_str(SEED_EXAMPLE).unwrap();
        value["description"]["autor"] = json!("x");
        let error = Action::from_json(&value.to_string()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown field 'description.autor' (did you mean 'author'?)"
        );

        let mut value: Json = serde_json::from_str(SEED_EXAMPLE).unwrap();
        value["flavour"] = json!("x");
        let error = Action::from_json(&value.to_string()).unwrap_err();
        assert_eq!(error.to_string(), "unknown field 'flavour'");
    }

    #[test]
    fn malformed_json_points_at_the_line() {
        let error = Action::from_json("{\n  \"name\": \"x\",\n  oops\n}").unwrap_err();
        assert!(
            matches!(error, ActionError::Json { line: 3, .. }),
            "{error}"
        );
    }

    #[test]
    fn mistyped_fields_are_named_by_path() {
        let error = Action::from_json(
            r#"{"name":"x","target":"true","syntaxversion":2,"operations":[{"module":7}]}"#,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("field 'operations[0].module': invalid type"),
            "{error}"
        );
        let error = Action::from_json(
            r#"{"name":"x","target":"true","syntaxversion":2,"operations":[{"parameters":{}}]}"#,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("field 'operations[0].module': missing"),
            "{error}"
        );
    }

    #[test]
    fn missing_and_empty_fields_are_named() {
        let error =
            Action::from_json(r#"{"name":"x","operations":[],"syntaxversion":2}"#).unwrap_err();
        assert!(error.to_string().contains("target"), "{error}");
        let error =
            Action::from_json(r#"{"name":"x","target":"true","operations":[],"syntaxversion":2}"#)
                .unwrap_err();
        assert!(error.to_string().contains("operations"), "{error}");
        let compressed = r#"{"name":"x","target":"true","syntaxversion":2,
            "operations":[{"module":"file","parameters":"H4sI","is_compressed":true}]}"#;
        assert!(matches!(
            Action::from_json(compressed),
            Err(ActionError::CompressedParameters { index: 0 })
        ));
    }

    #[test]
    fn canonical_bytes_round_trip() {
        let mut action = Action::from_json(SEED_EXAMPLE).unwrap();
        action.validfrom = Some(Timestamp::from_unix_seconds(1_800_000_000).unwrap());
        action.expireafter = Some(Timestamp::from_unix_seconds(1_800_000_360).unwrap());
        action.nonce = Some("n1".into());
        action.reply_to = Some(ReplyTo {
            peer_id: "12D3KooW".into(),
            addresses: vec!["/ip4/10.0.0.1/tcp/4001".into()],
            seal_key: Some("ab".repeat(32)),
        });
        let bytes = action.canonical_bytes().unwrap();
        assert!(bytes.starts_with(ACTION_DOMAIN));
        assert_eq!(Action::from_canonical_bytes(&bytes).unwrap(), action);

        // A seal key that is not one never reaches an agent's modules.
        if let Some(reply_to) = &mut action.reply_to {
            reply_to.seal_key = Some("not hex".into());
        }
        let bytes = action.canonical_bytes().unwrap();
        let error = Action::from_canonical_bytes(&bytes).unwrap_err();
        assert!(error.to_string().contains("reply_to.seal_key"), "{error}");
    }

    #[test]
    fn empty_description_and_absent_description_are_the_same_action() {
        let with_empty = r#"{"name":"x","description":{},"target":"true","syntaxversion":2,
            "operations":[{"module":"agentinfo"}]}"#;
        let without = r#"{"name":"x","target":"true","syntaxversion":2,
            "operations":[{"module":"agentinfo","parameters":{}}]}"#;
        assert_eq!(
            Action::from_json(with_empty).unwrap().id().unwrap(),
            Action::from_json(without).unwrap().id().unwrap()
        );
    }

    #[test]
    fn canonical_decoding_refuses_extra_fields_and_wrong_prefix() {
        let action = Action::from_json(SEED_EXAMPLE).unwrap();
        let bytes = action.canonical_bytes().unwrap();
        assert_eq!(
            Action::from_canonical_bytes(&bytes[1..]),
            Err(ActionError::WrongDomain)
        );
        let mut body = action.body_json();
        body["extra"] = json!(1);
        let mut forged = ACTION_DOMAIN.to_vec();
        forged.extend(canonical::encode_json(&body).unwrap());
        assert!(matches!(
            Action::from_canonical_bytes(&forged),
            Err(ActionError::UnknownField { .. })
        ));
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Found by `fuzz/run action_json`: an integer too big for 64 bits is
    /// read as a float; printing the action and reading it back gave
    /// another float (serde_json's fast float parser is not exact), so a
    /// co-signer reading the file the first signer wrote signed other
    /// bytes. Fixed with serde_json's `float_roundtrip`.
    #[test]
    fn printing_and_reading_back_keeps_the_canonical_bytes() {
        let text = include_str!("../../fuzz/seeds/action_json/regression-float-roundtrip.json");
        let action = Action::from_json(text).unwrap();
        let again = Action::from_json(&action.to_json_pretty()).unwrap();
        assert_eq!(
            again.canonical_bytes().unwrap(),
            action.canonical_bytes().unwrap()
        );
        for big in [
            "1e300",
            "20614055555575555555555555555555559031800",
            "0.1",
            "123456789.123456789",
        ] {
            let text = text.replace("20614055555575555555555555555555559031800", big);
            let action = Action::from_json(&text).unwrap();
            let again = Action::from_json(&action.to_json_pretty()).unwrap();
            assert_eq!(
                again.canonical_bytes().unwrap(),
                action.canonical_bytes().unwrap(),
                "{big}"
            );
        }
    }
}
