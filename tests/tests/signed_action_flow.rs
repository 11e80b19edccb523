//! An action from file to agent decision, across crates: an investigator
//! key from `mig-keys` signs the seed example, the bytes travel as a wire
//! message, and an "agent" (the `mig-proto` verifier plus the target
//! evaluator) decides from the received bytes alone.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use mig_keys::{SecretKey, fill_launch_defaults, sign_action};
use mig_proto::verify::{DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_VALIDITY_SECONDS};
use mig_proto::{
    Action, AgentAttributes, AgentContext, NoHistory, SignedAction, Timestamp, TrustStore,
    VerifyError, VerifyPolicy, verify,
};

const EXAMPLE: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");
const NOW: i64 = 1_800_000_000;

fn agent(os: &str) -> AgentAttributes {
    AgentAttributes {
        name: format!("{os}-host"),
        os: os.into(),
        id: "12D3KooWagent".into(),
        ..Default::default()
    }
}

fn signed_example_wire(key: &SecretKey) -> Vec<u8> {
    let mut action = Action::from_json(EXAMPLE).unwrap();
    fill_launch_defaults(&mut action, Timestamp::from_unix_seconds(NOW).unwrap(), 300).unwrap();
    sign_action(&mut action, key).unwrap();
    // What goes on the wire is built from the signed JSON file, as a console
    // launching `mig -i signed.json` would.
    let reloaded = Action::from_json(&action.to_json_pretty()).unwrap();
    SignedAction::from_action(&reloaded).unwrap().to_wire()
}

/// What an agent does with received bytes: verify, then decide whether the
/// target selects it.
fn agent_decides(
    wire: &[u8],
    trusted: &TrustStore,
    attributes: &AgentAttributes,
    now: i64,
) -> Result<bool, VerifyError> {
    let received =
        SignedAction::from_wire(wire).map_err(|error| VerifyError::Malformed(error.to_string()))?;
    let acl = trusted.default_acl();
    let policy = VerifyPolicy {
        trusted,
        acl: &acl,
        now: Timestamp::from_unix_seconds(now).unwrap(),
        max_validity_seconds: DEFAULT_MAX_VALIDITY_SECONDS,
        clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
    };
    let verified = verify(&received, &policy).into_verified()?;
    Ok(verified.target.matches(&AgentContext {
        attributes,
        history: &NoHistory,
    }))
}

#[test]
fn a_trusted_agent_runs_the_seed_example_only_where_targeted() {
    let investigator = SecretKey::generate("Investigator").unwrap();
    let trusted = TrustStore::new([investigator.public()]);
    let wire = signed_example_wire(&investigator);
    assert_eq!(
        agent_decides(&wire, &trusted, &agent("linux"), NOW),
        Ok(true)
    );
    assert_eq!(
        agent_decides(&wire, &trusted, &agent("darwin"), NOW),
        Ok(false)
    );
}

#[test]
fn agents_refuse_what_they_should() {
    let investigator = SecretKey::generate("Investigator").unwrap();
    let stranger = SecretKey::generate("Stranger").unwrap();
    let trusted = TrustStore::new([investigator.public()]);
    let linux = agent("linux");

    let forged = signed_example_wire(&stranger);
    assert!(matches!(
        agent_decides(&forged, &trusted, &linux, NOW),
        Err(VerifyError::UnknownSigner { .. })
    ));

    let wire = signed_example_wire(&investigator);
    assert!(matches!(
        agent_decides(&wire, &trusted, &linux, NOW + 3_600),
        Err(VerifyError::Expired { .. })
    ));

    // Flip one byte inside the signed body on the wire.
    let mut tampered = wire.clone();
    let position = tampered
        .windows(5)
        .position(|window| window == b"linux")
        .unwrap();
    tampered[position] = b'L';
    assert!(matches!(
        agent_decides(&tampered, &trusted, &linux, NOW),
        Err(VerifyError::BadSignature { .. })
    ));

    assert!(matches!(
        agent_decides(b"garbage", &trusted, &linux, NOW),
        Err(VerifyError::Malformed(_))
    ));
}

/// The repository carries its own copy of the seed example so it builds and
/// tests anywhere; where the shared original is present, they must agree.
#[test]
fn the_seed_example_copy_matches_the_original_when_present() {
    let original = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/examples/linux-backdoor-2014.json"
    );
    match std::fs::read_to_string(original) {
        Ok(text) => assert_eq!(text, EXAMPLE, "docs/examples/ differs from {original}"),
        Err(error) => eprintln!("skipping the comparison: {original}: {error}"),
    }
}
