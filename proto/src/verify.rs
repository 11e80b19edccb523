//! Verifying a signed action against an agent's trust and policy, with a
//! verdict a person can read.
//!
//! The order is the safety argument: sizes first, then every signature over
//! the received body bytes, and only if all verify is the body decoded and
//! its syntax version, validity window, target and ACL weights checked.

use serde::Serialize;

use crate::acl::Acl;
use crate::action::{Action, MAX_ACTION_BYTES, SYNTAX_VERSION};
use crate::ids::{ActionId, Fingerprint, PublicKey};
use crate::signed::SignedAction;
use crate::target::Target;
use crate::time::{Timestamp, format_duration_seconds};

/// The investigator keys an agent trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<PublicKey>,
}

impl TrustStore {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let mut store = Self::default();
        for key in keys {
            store.add(key);
        }
        store
    }

    /// Adds a key; a key already present is kept once.
    pub fn add(&mut self, key: PublicKey) {
        if self.get(&key.fingerprint()).is_none() {
            self.keys.push(key);
        }
    }

    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|key| key.fingerprint() == *fingerprint)
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The ACL to use when none is configured (see [`Acl::any_trusted_key`]).
    pub fn default_acl(&self) -> Acl {
        Acl::any_trusted_key(
            self.keys
                .iter()
                .map(|key| (key.comment.as_str(), key.fingerprint())),
        )
    }
}

/// What an agent accepts. Time comes from the caller.
#[derive(Debug, Clone, Copy)]
pub struct VerifyPolicy<'a> {
    pub trusted: &'a TrustStore,
    pub acl: &'a Acl,
    pub now: Timestamp,
    /// The longest validity window accepted.
    pub max_validity_seconds: i64,
    /// How far apart the signer's clock and ours may be.
    pub clock_skew_seconds: i64,
}

/// Seven days: long enough for hosts that come online once a day.
pub const DEFAULT_MAX_VALIDITY_SECONDS: i64 = 7 * 86_400;
/// MIG's clients back-date `validfrom` by a minute for the same reason.
pub const DEFAULT_CLOCK_SKEW_SECONDS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed action: {0}")]
    Malformed(String),
    #[error("action is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("unsupported syntax version {found} (only {SYNTAX_VERSION} is supported)")]
    UnsupportedSyntaxVersion { found: u64 },
    #[error("the action carries no signature")]
    Unsigned,
    #[error(
        "bad signature by key {fingerprint}: the action was changed after it was signed, or the signature is corrupt"
    )]
    BadSignature { fingerprint: Fingerprint },
    #[error("signed by unknown key {fingerprint}: it is not among the trusted investigator keys")]
    UnknownSigner { fingerprint: Fingerprint },
    #[error("key {fingerprint} signed more than once; each investigator counts once")]
    DuplicateSigner { fingerprint: Fingerprint },
    #[error(
        "insufficient signature weight for module '{module}': have {have}, need {need} (acl entry '{entry}')"
    )]
    InsufficientWeight {
        module: String,
        entry: String,
        have: u64,
        need: u64,
    },
    #[error("no acl entry allows module '{module}' (and there is no 'default' entry)")]
    NoAclEntry { module: String },
    #[error("missing {field}: a signed action needs a validity window")]
    MissingValidity { field: &'static str },
    #[error("not yet valid: valid from {valid_from}, it is now {now}")]
    NotYetValid {
        valid_from: Timestamp,
        now: Timestamp,
    },
    #[error("expired at {expire_after}, it is now {now}")]
    Expired {
        expire_after: Timestamp,
        now: Timestamp,
    },
    #[error("the validity window of {window} is longer than the {limit} allowed")]
    ValidityTooLong { window: String, limit: String },
    #[error("invalid target: {0}")]
    InvalidTarget(String),
}

impl VerifyError {
    /// A stable short name per reason, for counters and scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedSyntaxVersion { .. } => "unsupported_syntax_version",
            Self::Unsigned => "unsigned",
            Self::BadSignature { .. } => "bad_signature",
            Self::UnknownSigner { .. } => "unknown_signer",
            Self::DuplicateSigner { .. } => "duplicate_signer",
            Self::InsufficientWeight { .. } => "insufficient_weight",
            Self::NoAclEntry { .. } => "no_acl_entry",
            Self::MissingValidity { .. } => "missing_validity",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::ValidityTooLong { .. } => "validity_too_long",
            Self::InvalidTarget(_) => "invalid_target",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignerStatus {
    Verified,
    BadSignature,
    UnknownKey,
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerCheck {
    pub fingerprint: Fingerprint,
    /// The comment of the trusted key (usually a name), if known.
    pub name: Option<String>,
    pub status: SignerStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleWeight {
    pub module: String,
    pub acl_entry: Option<String>,
    pub have: u64,
    pub need: u64,
}

/// Everything verification found out, in the order it was checked.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub action_id: ActionId,
    pub signers: Vec<SignerCheck>,
    pub modules: Vec<ModuleWeight>,
    #[serde(skip)]
    pub action: Option<Action>,
    #[serde(serialize_with = "serialize_outcome")]
    pub outcome: Result<(), VerifyError>,
}

fn serialize_outcome<S: serde::Serializer>(
    outcome: &Result<(), VerifyError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("valid", &outcome.is_ok())?;
    if let Err(error) = outcome {
        map.serialize_entry("reason", error.kind())?;
        map.serialize_entry("message", &error.to_string())?;
    }
    map.end()
}

/// A signed action that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedAction {
    pub id: ActionId,
    pub action: Action,
    pub target: Target,
    pub signers: Vec<Fingerprint>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The verified action, or the first reason it was refused.
    pub fn into_verified(self) -> Result<VerifiedAction, VerifyError> {
        self.outcome?;
        let action = self
            .action
            .ok_or_else(|| VerifyError::Malformed("no body".into()))?;
        let target = Target::parse(&action.target)
            .map_err(|error| VerifyError::InvalidTarget(error.to_string()))?;
        let signers = self
            .signers
            .iter()
            .filter(|signer| signer.status == SignerStatus::Verified)
            .map(|signer| signer.fingerprint)
            .collect();
        Ok(VerifiedAction {
            id: self.action_id,
            action,
            target,
            signers,
        })
    }
}

/// Checks every signature over `body` and lists each signer; the first
/// failure is the error. Returns the distinct verified signers.
pub(crate) fn check_signatures(
    body: &[u8],
    signatures: &[crate::action::SignatureEntry],
    trusted: &TrustStore,
    signers: &mut Vec<SignerCheck>,
) -> Result<Vec<Fingerprint>, VerifyError> {
    let mut first_failure = None;
    let mut verified = Vec::new();
    for entry in signatures {
        let fingerprint = entry.fingerprint;
        let already_seen = signers.iter().any(|seen| seen.fingerprint == fingerprint);
        let known = trusted.get(&fingerprint);
        let (status, failure) = if already_seen {
            (
                SignerStatus::Duplicate,
                Some(VerifyError::DuplicateSigner { fingerprint }),
            )
        } else if let Some(public) = known {
            let signature = ed25519_dalek::Signature::from_bytes(&entry.signature);
            if public.key.verify_strict(body, &signature).is_ok() {
                verified.push(fingerprint);
                (SignerStatus::Verified, None)
            } else {
                (
                    SignerStatus::BadSignature,
                    Some(VerifyError::BadSignature { fingerprint }),
                )
            }
        } else {
            (
                SignerStatus::UnknownKey,
                Some(VerifyError::UnknownSigner { fingerprint }),
            )
        };
        signers.push(SignerCheck {
            fingerprint,
            name: known
                .map(|key| key.comment.clone())
                .filter(|name| !name.is_empty()),
            status,
        });
        if first_failure.is_none() {
            first_failure = failure;
        }
    }
    match first_failure {
        Some(failure) => Err(failure),
        None => Ok(verified),
    }
}

/// Verifies `signed` under `policy`.
pub fn verify(signed: &SignedAction, policy: &VerifyPolicy<'_>) -> Verdict {
    let mut verdict = Verdict {
        action_id: signed.id(),
        signers: Vec::new(),
        modules: Vec::new(),
        action: None,
        outcome: Ok(()),
    };
    verdict.outcome = check(signed, policy, &mut verdict);
    verdict
}

fn check(
    signed: &SignedAction,
    policy: &VerifyPolicy<'_>,
    verdict: &mut Verdict,
) -> Result<(), VerifyError> {
    let body = signed.body();
    if body.len() > MAX_ACTION_BYTES {
        return Err(VerifyError::TooLarge {
            size: body.len(),
            limit: MAX_ACTION_BYTES,
        });
    }
    if signed.signatures().is_empty() {
        return Err(VerifyError::Unsigned);
    }

    let verified = check_signatures(
        body,
        signed.signatures(),
        policy.trusted,
        &mut verdict.signers,
    )?;

    // Only now, with every signature good, is the body decoded.
    let action = Action::from_canonical_bytes(body)
        .map_err(|error| VerifyError::Malformed(error.to_string()))?;
    let action = verdict.action.insert(action);

    if action.syntaxversion != SYNTAX_VERSION {
        return Err(VerifyError::UnsupportedSyntaxVersion {
            found: action.syntaxversion,
        });
    }
    let valid_from = action
        .validfrom
        .ok_or(VerifyError::MissingValidity { field: "validfrom" })?;
    let expire_after = action.expireafter.ok_or(VerifyError::MissingValidity {
        field: "expireafter",
    })?;
    let window = expire_after.seconds_since(valid_from);
    if window > policy.max_validity_seconds {
        return Err(VerifyError::ValidityTooLong {
            window: format_duration_seconds(window),
            limit: format_duration_seconds(policy.max_validity_seconds),
        });
    }
    let now = policy.now;
    if now.plus_seconds(policy.clock_skew_seconds) < valid_from {
        return Err(VerifyError::NotYetValid { valid_from, now });
    }
    if now.plus_seconds(-policy.clock_skew_seconds) > expire_after {
        return Err(VerifyError::Expired { expire_after, now });
    }
    Target::parse(&action.target).map_err(|error| VerifyError::InvalidTarget(error.to_string()))?;

    let mut first_shortfall = None;
    for operation in &action.operations {
        let module = operation.module.clone();
        if verdict.modules.iter().any(|seen| seen.module == module) {
            continue;
        }
        let weight = match policy.acl.entry_for(&module) {
            Some((entry_name, entry)) => {
                let have = entry.weight_of(&verified);
                let need = u64::from(entry.minimumweight);
                if have < need && first_shortfall.is_none() {
                    first_shortfall = Some(VerifyError::InsufficientWeight {
                        module: module.clone(),
                        entry: entry_name.to_owned(),
                        have,
                        need,
                    });
                }
                ModuleWeight {
                    module,
                    acl_entry: Some(entry_name.to_owned()),
                    have,
                    need,
                }
            }
            None => {
                if first_shortfall.is_none() {
                    first_shortfall = Some(VerifyError::NoAclEntry {
                        module: module.clone(),
                    });
                }
                ModuleWeight {
                    module,
                    acl_entry: None,
                    have: 0,
                    need: 0,
                }
            }
        };
        verdict.modules.push(weight);
    }
    first_shortfall.map_or(Ok(()), Err)
}
