//! Deterministic CBOR (RFC 8949 section 4.2.1) for JSON-shaped data.
//!
//! Everything the mesh signs is a JSON-shaped tree (an action body, module
//! parameters), so this module maps `serde_json::Value` to CBOR and back with
//! one rule per JSON type; the rules are specified in `docs/protocol.md`:
//!
//! * integers use the shortest head; a float whose value is a whole number
//!   within ±2^53 is written as that integer (so `1.0` and `1` are the same
//!   value), any other float as the shortest IEEE 754 form that keeps its
//!   value exactly (ciborium chooses half, single or double);
//! * map keys are text and sorted by their encoded bytes, which for text is
//!   shorter keys first, then bytewise;
//! * only definite lengths; no tags, no byte strings, no duplicate keys.
//!
//! Decoding checks all of this by encoding the decoded tree again and
//! comparing bytes, so there is exactly one accepted encoding per tree.

use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value as Json};

/// Nesting deeper than this is refused in both directions, so hostile input
/// cannot exhaust the stack.
pub const MAX_NESTING: usize = 48;

/// Whole floats up to this magnitude become integers.
const LARGEST_EXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("not CBOR: {0}")]
    NotCbor(String),
    #[error("CBOR {0} have no JSON equivalent")]
    NotJsonShaped(&'static str),
    #[error("map key is not text")]
    NonTextKey,
    #[error("map key '{0}' appears twice")]
    DuplicateKey(String),
    #[error("number {0} is not finite")]
    NonFiniteNumber(String),
    #[error("integer {0} is out of range")]
    IntegerOutOfRange(String),
    #[error("encoding is not the canonical one")]
    NotCanonical,
}

/// The canonical CBOR tree for a JSON value.
pub fn json_to_cbor(value: &Json) -> Result<Cbor, CanonicalError> {
    json_to_cbor_at(value, 0)
}

fn json_to_cbor_at(value: &Json, depth: usize) -> Result<Cbor, CanonicalError> {
    if depth > MAX_NESTING {
        return Err(CanonicalError::TooDeep);
    }
    Ok(match value {
        Json::Null => Cbor::Null,
        Json::Bool(flag) => Cbor::Bool(*flag),
        Json::Number(number) => number_to_cbor(number)?,
        Json::String(text) => Cbor::Text(text.clone()),
        Json::Array(items) => Cbor::Array(
            items
                .iter()
                .map(|item| json_to_cbor_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            sort_keys_canonically(&mut entries);
            Cbor::Map(
                entries
                    .into_iter()
                    .map(|(key, item)| {
                        Ok((Cbor::Text(key.clone()), json_to_cbor_at(item, depth + 1)?))
                    })
                    .collect::<Result<_, CanonicalError>>()?,
            )
        }
    })
}

/// RFC 8949 orders keys by their encoded bytes. A text key's encoding is a
/// head that grows with the length, then the UTF-8 bytes, so that order is
/// "shorter first, then bytewise".
fn sort_keys_canonically<T>(entries: &mut [(&String, T)]) {
    entries.sort_by(|(left, _), (right, _)| {
        left.len()
            .cmp(&right.len())
            .then_with(|| left.as_bytes().cmp(right.as_bytes()))
    });
}

fn number_to_cbor(number: &Number) -> Result<Cbor, CanonicalError> {
    if let Some(unsigned) = number.as_u64() {
        return Ok(Cbor::Integer(unsigned.into()));
    }
    if let Some(signed) = number.as_i64() {
        return Ok(Cbor::Integer(signed.into()));
    }
    let float = number
        .as_f64()
        .ok_or_else(|| CanonicalError::NonFiniteNumber(number.to_string()))?;
    Ok(float_to_cbor(float))
}

fn float_to_cbor(float: f64) -> Cbor {
    if float.fract() == 0.0 && float.abs() <= LARGEST_EXACT_FLOAT_INTEGER {
        // Exact: the magnitude is at most 2^53, and -0.0 becomes 0.
        #[allow(clippy::cast_possible_truncation)]
        let whole = float as i64;
        Cbor::Integer(whole.into())
    } else {
        Cbor::Float(float)
    }
}

/// Encodes a JSON value canonically.
pub fn encode_json(value: &Json) -> Result<Vec<u8>, CanonicalError> {
    encode_cbor(&json_to_cbor(value)?)
}

pub(crate) fn encode_cbor(value: &Cbor) -> Result<Vec<u8>, CanonicalError> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes)
        .map_err(|error| CanonicalError::NotCbor(error.to_string()))?;
    Ok(bytes)
}

/// Decodes one CBOR item that must fill `bytes` exactly.
pub(crate) fn decode_cbor(bytes: &[u8]) -> Result<Cbor, CanonicalError> {
    let mut reader = bytes;
    let value: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_NESTING + 2)
        .map_err(|error| match error {
            ciborium::de::Error::RecursionLimitExceeded => CanonicalError::TooDeep,
            other => CanonicalError::NotCbor(other.to_string()),
        })?;
    if !reader.is_empty() {
        return Err(CanonicalError::NotCbor(format!(
            "{} bytes after the item",
            reader.len()
        )));
    }
    Ok(value)
}

/// Decodes canonical CBOR into JSON, refusing any other encoding of it.
pub fn decode_json(bytes: &[u8]) -> Result<Json, CanonicalError> {
    let value = cbor_to_json(&decode_cbor(bytes)?)?;
    if encode_json(&value)? != bytes {
        return Err(CanonicalError::NotCanonical);
    }
    Ok(value)
}

/// The JSON value of a CBOR tree (no canonical-form check).
pub fn cbor_to_json(value: &Cbor) -> Result<Json, CanonicalError> {
    cbor_to_json_at(value, 0)
}

fn cbor_to_json_at(value: &Cbor, depth: usize) -> Result<Json, CanonicalError> {
    if depth > MAX_NESTING {
        return Err(CanonicalError::TooDeep);
    }
    Ok(match value {
        Cbor::Null => Json::Null,
        Cbor::Bool(flag) => Json::Bool(*flag),
        Cbor::Integer(integer) => {
            let wide = i128::from(*integer);
            if let Ok(unsigned) = u64::try_from(wide) {
                Json::Number(unsigned.into())
            } else if let Ok(signed) = i64::try_from(wide) {
                Json::Number(signed.into())
            } else {
                return Err(CanonicalError::IntegerOutOfRange(wide.to_string()));
            }
        }
        Cbor::Float(float) => Json::Number(
            Number::from_f64(*float)
                .ok_or_else(|| CanonicalError::NonFiniteNumber(float.to_string()))?,
        ),
        Cbor::Text(text) => Json::String(text.clone()),
        Cbor::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| cbor_to_json_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut map = Map::new();
            for (key, item) in entries {
                let Cbor::Text(key) = key else {
                    return Err(CanonicalError::NonTextKey);
                };
                if map
                    .insert(key.clone(), cbor_to_json_at(item, depth + 1)?)
                    .is_some()
                {
                    return Err(CanonicalError::DuplicateKey(key.clone()));
                }
            }
            Json::Object(map)
        }
        Cbor::Bytes(_) => return Err(CanonicalError::NotJsonShaped("byte strings")),
        Cbor::Tag(..) => return Err(CanonicalError::NotJsonShaped("tags")),
        _ => return Err(CanonicalError::NotJsonShaped("simple values")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn hex_of(value: &Json) -> String {
        hex::encode(encode_json(value).unwrap())
    }

    #[test]
    fn keys_sort_shorter_first_then_bytewise() {
        // {"b":1,"aa":2,"a":3} -> a, b, aa
        assert_eq!(
            hex_of(&json!({"b": 1, "aa": 2, "a": 3})),
            "a3616103616201626161 02".replace(' ', "")
        );
    }

    #[test]
    fn integers_and_floats() {
        assert_eq!(hex_of(&json!(1)), "01");
        assert_eq!(hex_of(&json!(1.0)), "01", "whole floats are integers");
        assert_eq!(hex_of(&json!(-0.0)), "00");
        assert_eq!(hex_of(&json!(-1)), "20");
        assert_eq!(hex_of(&json!(1000)), "1903e8");
        assert_eq!(hex_of(&json!(1.5)), "f93e00", "half precision when exact");
        assert_eq!(
            hex_of(&json!(100000.5)),
            "fa47c35040",
            "single precision when exact"
        );
        assert_eq!(hex_of(&json!(0.1)), "fb3fb999999999999a");
        assert_eq!(hex_of(&json!(1e300)), "fb7e37e43c8800759c");
        assert_eq!(hex_of(&json!(201409031800u64)), "1b0000002ee4e9ee78");
    }

    #[test]
    fn unicode_is_utf8_text() {
        assert_eq!(hex_of(&json!("é")), "62c3a9");
        assert_eq!(hex_of(&json!("\u{1F600}")), "64f09f9880");
    }

    #[test]
    fn decoding_refuses_other_encodings() {
        // 1 written with a one-byte head extension instead of inline.
        assert_eq!(
            decode_json(&hex::decode("1801").unwrap()),
            Err(CanonicalError::NotCanonical)
        );
        // Keys out of order.
        let unordered = hex::decode("a2616202616101").unwrap();
        assert_eq!(decode_json(&unordered), Err(CanonicalError::NotCanonical));
        // Indefinite-length array.
        assert_eq!(
            decode_json(&hex::decode("9f01ff").unwrap()),
            Err(CanonicalError::NotCanonical)
        );
        // Duplicate keys.
        assert!(matches!(
            decode_json(&hex::decode("a2616101616102").unwrap()),
            Err(CanonicalError::DuplicateKey(_))
        ));
        // A byte string and a tag.
        assert!(decode_json(&hex::decode("4101").unwrap()).is_err());
        assert!(decode_json(&hex::decode("c101").unwrap()).is_err());
        // Trailing bytes.
        assert!(decode_json(&hex::decode("0101").unwrap()).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        assert_eq!(encode_json(&deep), Err(CanonicalError::TooDeep));
        let mut bytes = vec![0x81u8; 100_000];
        bytes.push(0x01);
        assert!(decode_json(&bytes).is_err());
    }

    fn arbitrary_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Json::Number)),
            ".*".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|map| Json::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn encoding_round_trips_and_is_stable(value in arbitrary_json()) {
            let bytes = encode_json(&value).unwrap();
            let decoded = decode_json(&bytes).unwrap();
            prop_assert_eq!(encode_json(&decoded).unwrap(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_json(&bytes);
        }
    }
}
