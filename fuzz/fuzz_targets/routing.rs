//! The routing file (`PATCHWATCH_CONFIG`, TOML): channels, routes, rings, gates, power, ITSM
//! callers and alerts, with every check `check-config` reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchwatch_model::{routing::Routing, text::glob};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let issues = match Routing::parse(text, &|_| true) {
        Ok((routing, warnings)) => {
            assert!(warnings.iter().all(|w| w.warning), "an error came back as a warning");
            for pattern in routing.rings.values() {
                let _ = glob(pattern, "Ring2-Prod");
            }
            // The same file with no secret variable set: warnings, never a different verdict.
            match Routing::parse(text, &|_| false) {
                Ok((_, w)) => w,
                Err(e) => panic!("unset secret variables turned into errors: {e:?}"),
            }
        }
        Err(errors) => {
            assert!(errors.iter().any(|e| !e.warning), "rejected without an error");
            errors
        }
    };
    for issue in &issues {
        assert!(issue.line >= 1 && issue.column >= 1);
        let _ = issue.to_string();
    }
});
