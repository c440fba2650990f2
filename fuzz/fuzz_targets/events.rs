//! Event Grid deliveries: one event or a batch, Event Grid schema or CloudEvents 1.0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchwatch_model::{
    event::{Incoming, parse_delivery},
    resource_id::subscription_of,
};

fuzz_target!(|data: &[u8]| {
    let Ok(items) = parse_delivery(data) else { return };
    // A delivery that parses always holds at least one event.
    assert!(!items.is_empty());
    for item in &items {
        if let Incoming::Maintenance(e) = item {
            // What parse_event promises to everything downstream.
            assert!(e.end >= e.start, "end before start accepted");
            assert!(e.correlation_id.starts_with('/') && e.maintenance_configuration_id.starts_with('/'));
            assert!(
                e.correlation_id.to_ascii_lowercase().contains("/providers/microsoft.maintenance/applyupdates/"),
                "run id without applyupdates accepted"
            );
            assert!(e.subscription_ids.iter().all(|s| s.len() == 36), "non-GUID subscription accepted");
            let _ = e.configuration_name();
            let _ = e.phase.as_str();
            let _ = subscription_of(&e.correlation_id);
        }
    }
});
