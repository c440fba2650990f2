//! One-click action tokens as a link or a form carries them: whatever the text, verifying it
//! never panics, and a token it accepts is one of ours (a real claim set, unexpired).
#![no_main]

use std::{sync::LazyLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use patchwatch_engine::links::{ActionLinks, LinkAction, LinkTarget};
use patchwatch_model::secret::Secret;

const NOW: i64 = 1_796_000_000;

static LINKS: LazyLock<ActionLinks> = LazyLock::new(|| {
    let base = "https://patchwatch.example.com".parse().expect("a URL");
    let keys = vec![
        Secret::new("fuzz-key-new-0123456789abcdef0123456789abcdef".to_owned()),
        Secret::new("fuzz-key-old-fedcba9876543210fedcba9876543210".to_owned()),
    ];
    ActionLinks::new(base, keys, Duration::from_secs(72 * 3600)).expect("valid keys")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).expect("a time");
    if let Ok(claims) = LINKS.verify(text, now) {
        assert!(claims.expires() > now, "an expired token was accepted");
        assert!(LinkAction::parse(claims.action.as_str()).is_some());
    }
    // A real token, with the input appended or prepended, is refused or is the same token.
    let target = LinkTarget { run: "/subscriptions/s/x/applyupdates/20261201220000", configuration: "Ring2", route: "r", group: None };
    let token = LINKS.token(&target, LinkAction::Acknowledge, now);
    if !text.is_empty() {
        assert!(LINKS.verify(&format!("{token}{text}"), now).is_err() || text.trim().is_empty());
    }
});
