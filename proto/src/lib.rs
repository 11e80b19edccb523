//! Wire and file formats of the MIG mesh: the action and its canonical
//! signed encoding, signatures and verification, investigator ACLs, the
//! target language, agent attributes and results.
//!
//! No I/O happens here: no files, no network, no clock. Callers pass the
//! current time in, which is what lets every crate above test against it.
//! The one call into the operating system is for randomness: the keys
//! `seal` makes.

// Unit tests panic on purpose when a step fails.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acl;
pub mod action;
pub mod attributes;
pub mod cancel;
pub mod canonical;
pub mod ids;
pub mod messages;
pub mod modules;
pub mod result;
pub mod seal;
pub mod signed;
pub mod target;
pub mod time;
pub mod verify;

pub use acl::{Acl, AclEntry, AclError, AclInvestigator};
pub use action::{Action, ActionError, Description, Operation, ReplyTo, SignatureEntry, Threat};
pub use attributes::{ActionHistory, AgentAttributes, AgentContext, AgentEnvironment, NoHistory};
pub use cancel::{Cancel, SignedCancel};
pub use ids::{ActionId, Fingerprint, IdError, PublicKey};
pub use result::{AgentResult, AgentStatus, ModuleResult};
pub use signed::{SignError, SignedAction, WireError};
pub use target::{ParseError, Target};
pub use time::Timestamp;
pub use verify::{TrustStore, Verdict, VerifiedAction, VerifyError, VerifyPolicy, verify};
