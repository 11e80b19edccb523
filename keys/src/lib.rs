//! Investigator keys: secret key files (generated, encrypted at rest,
//! loaded with their permissions checked), public key and ACL files, and
//! signing actions. The `mig-keys` binary is a thin layer over this.

// Unit tests panic on purpose when a step fails.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod files;
pub mod keyfile;
pub mod signing;

pub use files::{FileError, load_acl, load_action, load_public_key, load_trust_store};
pub use keyfile::{
    GivenPassphrase, KdfCost, KeyFileError, PassphraseSource, PromptingPassphrase, SecretKey,
    load_secret_key, write_key_files,
};
pub use signing::{SigningError, fill_launch_defaults, sign_action};
