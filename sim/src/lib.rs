//! The fleet simulator: many real `mig-node` instances (`mesh::start_in`,
//! with their real gossip, validation, target evaluation, journal, module
//! runs and result routing) in one process, over in-memory links that
//! model segments, relays, latency, loss, bandwidth and partitions, with a
//! console that launches actions exactly as `mig run` does.
//!
//! * `link.rs`: the simulated network (reachability, shaping).
//! * `scenario.rs`: what to simulate (TOML or flags), and the layout a seed
//!   draws from it.
//! * `fleet.rs`: starting the nodes, the console, churn and partitions;
//!   measuring.
//! * `report.rs`: figures, the analytic gossip model, table, JSON, SVG.

// Unit tests panic on purpose when a step fails.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fleet;
pub mod link;
pub mod report;
pub mod scenario;
