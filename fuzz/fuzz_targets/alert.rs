//! Action group webhook bodies: the common alert schema and the legacy activity-log schema,
//! and the notice built from a maintenance activity.
#![no_main]

use alert_webhook::alert::{Alert, notice, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Alert::Activity(activity)) = parse(data)
        && let Ok(n) = notice(&activity)
    {
        assert!(!n.title.is_empty());
        assert!(n.key.starts_with("alert:"));
    }
});
