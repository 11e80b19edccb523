//! The investigator's console peer (`mig`): one-shot commands and the
//! interactive shell, launch and follow, results rendering, local history.
//!
//! Not built yet: the console issue fills this crate in.
