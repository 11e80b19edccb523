//! Action files as investigators (and MIG exports) write them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::Action;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(action) = Action::from_json(text) {
        // What we accept we can sign: encode, decode, same action.
        let bytes = action.canonical_bytes().expect("an accepted action encodes");
        let decoded = Action::from_canonical_bytes(&bytes).expect("our encoding decodes");
        assert_eq!(decoded.canonical_bytes().expect("encodes again"), bytes);
        // And the pretty form reads back as the same action.
        let again = Action::from_json(&action.to_json_pretty()).expect("our JSON reads back");
        assert_eq!(again.canonical_bytes().expect("encodes"), bytes);
    }
});
