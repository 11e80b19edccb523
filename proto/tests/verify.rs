//! Verification: every way an action can be refused has its own error, and
//! the verdict says which signers verified and what weight each module got.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use ed25519_dalek::SigningKey;
use mig_proto::action::ACTION_DOMAIN;
use mig_proto::verify::SignerStatus;
use mig_proto::{
    Acl, Action, PublicKey, SignedAction, Timestamp, TrustStore, VerifyError, VerifyPolicy, verify,
};

const EXAMPLE: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");
const NOW: i64 = 1_800_000_000;

fn key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32])
}

fn public(byte: u8, name: &str) -> PublicKey {
    PublicKey {
        key: key(byte).verifying_key(),
        comment: name.into(),
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

/// The seed example with a five-minute window around NOW.
fn example_action() -> Action {
    let mut action = Action::from_json(EXAMPLE).unwrap();
    action.validfrom = Some(at(NOW - 60));
    action.expireafter = Some(at(NOW + 300));
    action.nonce = Some("nonce-1".into());
    action
}

fn signed_by(action: &Action, keys: &[u8]) -> SignedAction {
    let mut signed = SignedAction::from_action(action).unwrap();
    for byte in keys {
        signed.sign(&key(*byte)).unwrap();
    }
    signed
}

struct Setup {
    trusted: TrustStore,
    acl: Acl,
}

impl Setup {
    fn new() -> Self {
        let trusted = TrustStore::new([public(1, "Alice"), public(2, "Bob")]);
        let acl = trusted.default_acl();
        Self { trusted, acl }
    }

    fn policy(&self, now: i64) -> VerifyPolicy<'_> {
        VerifyPolicy {
            trusted: &self.trusted,
            acl: &self.acl,
            now: at(now),
            max_validity_seconds: 86_400,
            clock_skew_seconds: 60,
        }
    }

    fn check(&self, signed: &SignedAction) -> Result<(), VerifyError> {
        verify(signed, &self.policy(NOW)).outcome
    }
}

#[test]
fn a_valid_action_verifies_with_a_readable_verdict() {
    let setup = Setup::new();
    let verdict = verify(&signed_by(&example_action(), &[1]), &setup.policy(NOW));
    assert!(verdict.is_valid(), "{:?}", verdict.outcome);
    assert_eq!(verdict.signers.len(), 1);
    assert_eq!(verdict.signers[0].status, SignerStatus::Verified);
    assert_eq!(verdict.signers[0].name.as_deref(), Some("Alice"));
    assert_eq!(verdict.modules[0].module, "filechecker");
    assert_eq!((verdict.modules[0].have, verdict.modules[0].need), (1, 1));
    let verified = verdict.into_verified().unwrap();
    assert_eq!(verified.action.target, "agents.os = 'linux'");
}

#[test]
fn verification_works_on_received_bytes() {
    let setup = Setup::new();
    let wire = signed_by(&example_action(), &[1, 2]).to_wire();
    let received = SignedAction::from_wire(&wire).unwrap();
    assert!(verify(&received, &setup.policy(NOW)).is_valid());
}

#[test]
fn a_changed_target_breaks_the_signature() {
    let setup = Setup::new();
    let signed = signed_by(&example_action(), &[1]);
    let mut changed = example_action();
    changed.target = "agents.os = 'darwin'".into();
    let forged = SignedAction::from_parts(
        changed.canonical_bytes().unwrap(),
        signed.signatures().to_vec(),
    );
    assert!(matches!(
        setup.check(&forged),
        Err(VerifyError::BadSignature { .. })
    ));

    // One flipped bit anywhere in the body does the same.
    let mut body = signed.body().to_vec();
    let last = body.len() - 1;
    body[last] ^= 1;
    let flipped = SignedAction::from_parts(body, signed.signatures().to_vec());
    assert!(matches!(
        setup.check(&flipped),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn an_untrusted_key_is_an_unknown_signer() {
    let setup = Setup::new();
    let error = setup
        .check(&signed_by(&example_action(), &[9]))
        .unwrap_err();
    assert!(matches!(error, VerifyError::UnknownSigner { .. }));
    assert!(error.to_string().contains("not among the trusted"));
}

#[test]
fn the_same_signer_twice_is_refused() {
    let setup = Setup::new();
    let signed = signed_by(&example_action(), &[1]);
    let mut signatures = signed.signatures().to_vec();
    signatures.push(signatures[0].clone());
    let doubled = SignedAction::from_parts(signed.body().to_vec(), signatures);
    let verdict = verify(&doubled, &setup.policy(NOW));
    assert!(matches!(
        verdict.outcome,
        Err(VerifyError::DuplicateSigner { .. })
    ));
    assert_eq!(verdict.signers[1].status, SignerStatus::Duplicate);
}

#[test]
fn time_window_errors() {
    let setup = Setup::new();
    let signed = signed_by(&example_action(), &[1]);
    let check_at = |now| verify(&signed, &setup.policy(now)).outcome;
    assert!(
        check_at(NOW - 60 - 60).is_ok(),
        "within the clock skew allowance"
    );
    assert!(matches!(
        check_at(NOW - 60 - 61),
        Err(VerifyError::NotYetValid { .. })
    ));
    assert!(
        check_at(NOW + 300 + 60).is_ok(),
        "within the clock skew allowance"
    );
    let error = check_at(NOW + 300 + 61).unwrap_err();
    assert!(matches!(error, VerifyError::Expired { .. }));
    assert!(
        error
            .to_string()
            .starts_with("expired at 2027-01-15T08:05:00Z"),
        "{error}"
    );

    let mut long = example_action();
    long.expireafter = Some(at(NOW + 2 * 86_400));
    let error = setup.check(&signed_by(&long, &[1])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the validity window of 2d1m is longer than the 1d allowed"
    );

    let mut unbounded = example_action();
    unbounded.expireafter = None;
    assert!(matches!(
        setup.check(&signed_by(&unbounded, &[1])),
        Err(VerifyError::MissingValidity {
            field: "expireafter"
        })
    ));
}

#[test]
fn acl_weights_are_summed_over_distinct_verified_signers() {
    let mut setup = Setup::new();
    let fingerprint = |byte: u8| public(byte, "").fingerprint();
    setup.acl = serde_json::from_str(&format!(
        r#"{{"file": {{"minimumweight": 2, "investigators": {{
                "Alice": {{"fingerprint": "{}", "weight": 1}},
                "Bob": {{"fingerprint": "{}", "weight": 1}}}}}}}}"#,
        fingerprint(1),
        fingerprint(2)
    ))
    .unwrap();
    let error = setup
        .check(&signed_by(&example_action(), &[1]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "insufficient signature weight for module 'filechecker': have 1, need 2 (acl entry 'file')"
    );
    assert!(setup.check(&signed_by(&example_action(), &[1, 2])).is_ok());

    let mut other = example_action();
    other.operations[0].module = "netstat".into();
    assert!(matches!(
        setup.check(&signed_by(&other, &[1, 2])),
        Err(VerifyError::NoAclEntry { .. })
    ));
}

#[test]
fn structural_errors() {
    let setup = Setup::new();
    let unsigned = signed_by(&example_action(), &[]);
    assert_eq!(setup.check(&unsigned), Err(VerifyError::Unsigned));

    let mut version_one = example_action();
    version_one.syntaxversion = 1;
    assert_eq!(
        setup.check(&signed_by(&version_one, &[1])),
        Err(VerifyError::UnsupportedSyntaxVersion { found: 1 })
    );

    let mut bad_target = example_action();
    bad_target.target = "os = ".into();
    assert!(matches!(
        setup.check(&signed_by(&bad_target, &[1])),
        Err(VerifyError::InvalidTarget(_))
    ));

    // Garbage that is validly signed is still refused, as malformed.
    let mut garbage = SignedAction::from_parts([ACTION_DOMAIN, b"\xff\xff"].concat(), vec![]);
    garbage.sign(&key(1)).unwrap();
    assert!(matches!(
        setup.check(&garbage),
        Err(VerifyError::Malformed(_))
    ));

    let mut huge =
        SignedAction::from_parts(vec![0; mig_proto::action::MAX_ACTION_BYTES + 1], vec![]);
    huge.sign(&key(1)).unwrap();
    assert!(matches!(
        setup.check(&huge),
        Err(VerifyError::TooLarge { .. })
    ));
}

#[test]
fn error_kinds_are_distinct() {
    let setup = Setup::new();
    let mut kinds = std::collections::BTreeSet::new();
    for signed in [
        signed_by(&example_action(), &[]),
        signed_by(&example_action(), &[9]),
    ] {
        kinds.insert(setup.check(&signed).unwrap_err().kind());
    }
    assert_eq!(kinds.len(), 2);
}
