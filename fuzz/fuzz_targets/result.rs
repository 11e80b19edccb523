//! Agent results (CBOR in reports and the console's store, JSON for
//! scripts), the signed bytes of a report, and the plaintext of a sealed
//! one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::AgentResult;
use mig_proto::messages::{Envelope, Statement};

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = AgentResult::from_cbor(data) {
        let again = AgentResult::from_cbor(&result.to_cbor()).expect("re-encoded result decodes");
        assert_eq!(again, result);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<AgentResult>(text);
    }
    if let Ok(envelope) = Envelope::from_signing_bytes(data) {
        let _ = envelope.open(None);
    }
    let _ = Statement::from_plaintext(data);
});
