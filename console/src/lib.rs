//! The investigator's console peer: joins the mesh with its own identity,
//! fills `reply_to`, signs, publishes, and collects the agents' signed
//! acks and results. `mig run` is a thin layer over [`launch`]; the full
//! console builds on the same library.

// Unit tests panic on purpose when a step fails.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod launch;
