//! The action as it arrives from the mesh: the wire envelope, and the
//! canonical CBOR body on its own (agents decode the body only after the
//! signatures check, but a trusted signer's bytes are still bytes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::{Action, SignedAction};

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedAction::from_wire(data) {
        // A decoded envelope re-encodes to what was read.
        let again = SignedAction::from_wire(&signed.to_wire()).expect("re-encoded wire decodes");
        assert_eq!(again.id(), signed.id());
        let _ = Action::from_canonical_bytes(signed.body());
    }
    if let Ok(action) = Action::from_canonical_bytes(data) {
        // Canonical decoding accepts one encoding per action: ours.
        let bytes = action.canonical_bytes().expect("a decoded action encodes");
        assert_eq!(bytes, data, "decoded a non-canonical body");
    }
});
