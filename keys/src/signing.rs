//! Signing an action file: fill in what a launch needs, then sign the
//! canonical body. A co-signer signs the same file in turn.

use mig_proto::action::SYNTAX_VERSION;
use mig_proto::{Action, SignError, SignedAction, Target, Timestamp};

use crate::keyfile::SecretKey;

/// MIG's clients back-date `validfrom` by a minute to absorb clock skew.
pub const BACKDATE_SECONDS: i64 = 60;
/// MIG's default expiry (`-e 300s`).
pub const DEFAULT_EXPIRY_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the action is already signed, so it cannot be changed: {what} is missing")]
    SignedButIncomplete { what: &'static str },
    #[error("the target does not parse: {0}")]
    Target(String),
    #[error("syntaxversion is {0}; only {SYNTAX_VERSION} is supported")]
    SyntaxVersion(u64),
    #[error("{0}")]
    Action(#[from] mig_proto::ActionError),
    #[error("{0}")]
    Sign(#[from] SignError),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// Fills the validity window and nonce of an unsigned action; an action
/// that already carries signatures is left exactly as it is.
pub fn fill_launch_defaults(
    action: &mut Action,
    now: Timestamp,
    expiry_seconds: i64,
) -> Result<(), SigningError> {
    if !action.signatures.is_empty() {
        for (missing, what) in [
            (action.validfrom.is_none(), "validfrom"),
            (action.expireafter.is_none(), "expireafter"),
            (action.nonce.is_none(), "nonce"),
        ] {
            if missing {
                return Err(SigningError::SignedButIncomplete { what });
            }
        }
        return Ok(());
    }
    let valid_from = *action
        .validfrom
        .get_or_insert(now.plus_seconds(-BACKDATE_SECONDS));
    action
        .expireafter
        .get_or_insert(valid_from.plus_seconds(BACKDATE_SECONDS + expiry_seconds));
    if action.nonce.is_none() {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|error| SigningError::Random(error.to_string()))?;
        action.nonce = Some(hex::encode(nonce));
    }
    Ok(())
}

/// Checks the action is launchable and appends `key`'s signature.
pub fn sign_action(action: &mut Action, key: &SecretKey) -> Result<(), SigningError> {
    if action.syntaxversion != SYNTAX_VERSION {
        return Err(SigningError::SyntaxVersion(action.syntaxversion));
    }
    Target::parse(&action.target).map_err(|error| SigningError::Target(error.to_string()))?;
    let mut signed = SignedAction::from_action(action)?;
    signed.sign(key.signing_key())?;
    action.signatures = signed.signatures().to_vec();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");

    #[test]
    fn defaults_are_filled_once_and_cosigning_keeps_the_body() {
        let now = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
        let mut action = Action::from_json(EXAMPLE).unwrap();
        fill_launch_defaults(&mut action, now, DEFAULT_EXPIRY_SECONDS).unwrap();
        assert_eq!(action.validfrom.unwrap().unix_seconds(), 1_800_000_000 - 60);
        assert_eq!(
            action.expireafter.unwrap().unix_seconds(),
            1_800_000_000 + 300
        );
        assert_eq!(action.nonce.as_ref().unwrap().len(), 32);
        sign_action(&mut action, &SecretKey::from_seed(&[1; 32], "a")).unwrap();
        let id = action.id().unwrap();

        let later = now.plus_seconds(3_600);
        fill_launch_defaults(&mut action, later, 60).unwrap();
        sign_action(&mut action, &SecretKey::from_seed(&[2; 32], "b")).unwrap();
        assert_eq!(
            action.id().unwrap(),
            id,
            "co-signing changes nothing signed"
        );
        assert_eq!(action.signatures.len(), 2);
        assert!(matches!(
            sign_action(&mut action, &SecretKey::from_seed(&[2; 32], "b")),
            Err(SigningError::Sign(SignError::AlreadySigned(_)))
        ));
    }

    #[test]
    fn unparsable_targets_are_not_signed() {
        let mut action = Action::from_json(EXAMPLE).unwrap();
        action.target = "os = ".into();
        assert!(matches!(
            sign_action(&mut action, &SecretKey::from_seed(&[1; 32], "a")),
            Err(SigningError::Target(_))
        ));
    }
}
