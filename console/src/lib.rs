//! The investigator's console peer: joins the mesh with its own identity,
//! fills `reply_to`, signs, publishes, and collects the agents' signed
//! acks and results ([`launch`]); the command line and the shell share one
//! parser ([`args`]) and one executor ([`session`]); results print through
//! [`render`]; the roster of agents lives in the console's own store
//! ([`roster`]); [`demo`] runs a whole mesh on this machine.

// Unit tests panic on purpose when a step fails.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
pub mod config;
pub mod demo;
pub mod launch;
pub mod render;
pub mod roster;
pub mod session;
pub mod shell;
