//! Golden vectors: a fixed key seed and a fixed action pin the canonical
//! bytes, the action id and the signature. Any change to the encoding fails
//! here; if the change is deliberate, bump the domain prefix's version and
//! regenerate with `MIG_REGENERATE_GOLDEN=1 cargo test -p mig-proto --test golden`.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use ed25519_dalek::SigningKey;
use mig_proto::action::ACTION_DOMAIN;
use mig_proto::{Action, Fingerprint, SignedAction};

const ACTION: &str = include_str!("golden/action.json");
const REORDERED: &str = include_str!("golden/action-reordered.json");
const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/vectors.txt");

/// The key that signs the golden action: 32 bytes of 0x42.
const SEED: [u8; 32] = [0x42; 32];

fn computed_vectors() -> String {
    let action = Action::from_json(ACTION).unwrap();
    let key = SigningKey::from_bytes(&SEED);
    let mut signed = SignedAction::from_action(&action).unwrap();
    signed.sign(&key).unwrap();
    let entry = &signed.signatures()[0];
    format!(
        "seed {}\npublic {}\nfingerprint {}\ncanonical {}\nid {}\nsignature {}\nwire {}\n",
        hex::encode(SEED),
        hex::encode(key.verifying_key().as_bytes()),
        Fingerprint::of_key(&key.verifying_key()),
        hex::encode(signed.body()),
        signed.id(),
        hex::encode(entry.signature),
        hex::encode(signed.to_wire()),
    )
}

#[test]
fn canonical_bytes_id_and_signature_are_pinned() {
    let computed = computed_vectors();
    if std::env::var_os("MIG_REGENERATE_GOLDEN").is_some() {
        std::fs::write(VECTORS_PATH, &computed).unwrap();
    }
    let pinned = std::fs::read_to_string(VECTORS_PATH).unwrap();
    assert_eq!(computed, pinned, "the canonical encoding changed");
}

#[test]
fn canonical_bytes_start_with_the_domain_and_decode_back() {
    let action = Action::from_json(ACTION).unwrap();
    let bytes = action.canonical_bytes().unwrap();
    assert!(bytes.starts_with(ACTION_DOMAIN));
    assert_eq!(
        Action::from_canonical_bytes(&bytes)
            .unwrap()
            .canonical_bytes()
            .unwrap(),
        bytes
    );
}

/// Key order, `2.0` against `2`, `2.5e-1` against `0.25`, `\u00e9` against
/// `é`, `\/` against `/`, a surrogate pair against the raw emoji, time zones
/// and fractions of a second, and MIG's dropped fields: none of it changes
/// the canonical bytes.
#[test]
fn equivalent_json_gives_identical_bytes() {
    let original = Action::from_json(ACTION)
        .unwrap()
        .canonical_bytes()
        .unwrap();
    let reordered = Action::from_json(REORDERED)
        .unwrap()
        .canonical_bytes()
        .unwrap();
    assert_eq!(hex::encode(&reordered), hex::encode(&original));
}

#[test]
fn any_change_of_content_changes_the_id() {
    let action = Action::from_json(ACTION).unwrap();
    let id = action.id().unwrap();
    let mut changed = action.clone();
    changed.target.push(' ');
    assert_ne!(changed.id().unwrap(), id);
    let mut changed = action.clone();
    changed.reply_to.as_mut().unwrap().addresses.pop();
    assert_ne!(changed.id().unwrap(), id);
    let mut changed = action;
    changed.operations[0].parameters["searches"]["s1"]["options"]["ratio"] = serde_json::json!(0.5);
    assert_ne!(changed.id().unwrap(), id);
}
