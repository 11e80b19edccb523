//! Workspace integration tests: scenarios that cross crate boundaries live
//! in `tests/tests/`; helpers they share will live here.
