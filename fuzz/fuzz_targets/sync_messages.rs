//! `/mig/sync/1`: catching-up requests and responses, as the node's codec
//! decodes them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::messages::{Message, SyncRequest, SyncResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = SyncRequest::decode(data) {
        assert_eq!(SyncRequest::decode(&request.encode()).as_ref(), Ok(&request));
    }
    if let Ok(response) = SyncResponse::decode(data) {
        assert_eq!(SyncResponse::decode(&response.encode()).as_ref(), Ok(&response));
    }
});
