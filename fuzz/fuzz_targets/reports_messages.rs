//! `/mig/reports/1`: deliveries of signed reports, hop to hop, and their
//! acknowledgements, as the node's codec decodes them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::messages::{Delivery, DeliveryAck, Message, SignedReport};

fuzz_target!(|data: &[u8]| {
    if let Ok(delivery) = Delivery::decode(data) {
        assert_eq!(Delivery::decode(&delivery.encode()).as_ref(), Ok(&delivery));
        for parcel in &delivery.parcels {
            let _ = parcel.report.within_limits();
        }
    }
    let _ = DeliveryAck::decode(data);
    let _ = SignedReport::decode(data);
});
