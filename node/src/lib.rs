//! The agent: the module runtime that runs an action's operations, the
//! modules themselves, the agent's embedded store and its view of its own
//! host. The libp2p mesh and the relay role build on this.

// Unit tests panic on purpose when a step fails.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod config;
pub mod group_commit;
pub mod host;
pub mod identity;
pub mod mesh;
pub mod modules;
pub mod priority;
pub mod runtime;
pub mod status;
pub mod store;
