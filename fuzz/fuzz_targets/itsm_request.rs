//! ITSM request bodies: the generic JSON form and the ServiceNow change_request form.
#![no_main]

use itsm_webhook::request::{Parsed, parse_generic, parse_servicenow};
use libfuzzer_sys::fuzz_target;
use patchwatch_model::settings::Action;

fn check(parsed: Parsed) {
    let Parsed::Act(r) = parsed else { return };
    assert!(!r.requested_by.is_empty());
    if let Some((start, end)) = r.window {
        assert!(end > start, "a window that ends before it starts was accepted");
    }
    match r.action {
        Action::Approve | Action::Reject => {
            assert!(r.window.is_some() && r.configuration.is_some() && r.change.is_some());
        }
        Action::Acknowledge | Action::Rerun => assert!(r.run.is_some()),
        Action::Emergency => {
            assert!(r.configuration.is_some());
            assert!(!(r.classifications.is_empty() && r.kb_numbers.is_empty()));
        }
        Action::Snooze => assert!(r.run.is_some()),
        Action::Silence => {
            let m = r.silence.as_ref().expect("a silence request carries its matchers");
            assert!(r.configuration.is_some() && m.configuration == r.configuration);
            assert!(r.until.is_some() || r.duration.is_some());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse_generic(data) {
        check(p);
    }
    if let Ok(p) = parse_servicenow(data) {
        check(p);
    }
});
