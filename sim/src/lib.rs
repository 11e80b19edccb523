//! The fleet simulator (`mig-sim`): many real nodes in one process.
//!
//! Not built yet: the simulator issue fills this crate in.
