//! Signed cancels, as they arrive on the action topic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::{SignedCancel, Timestamp, TrustStore};

fuzz_target!(|data: &[u8]| {
    if let Some(cancel) = SignedCancel::from_wire(data) {
        let now = Timestamp::from_unix_seconds(1_700_000_000).expect("a valid time");
        let _ = cancel.verify(&TrustStore::new([]), now, 3600, 60);
    }
});
