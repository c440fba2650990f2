//! Routing checks addresses without lettre (the domain crate does no I/O and links no mailer);
//! the mailer parses them with lettre. Every address routing accepts must be one the mailer
//! takes, or a summary would be refused for good at send time instead of at start-up.

use lettre::message::Mailbox;
use patchwatch_model::text::is_mailbox;

const SAMPLES: &[&str] = &[
    "ops@contoso.com",
    "Ops Team <ops@contoso.com>",
    "John Q. Public <jqp@contoso.com>",
    "\"Ops, EU\" <ops@contoso.com>",
    "<ops@contoso.com>",
    "  ops@contoso.com  ",
    "a.b+c@mail.contoso.com",
    "o'brien@contoso.com",
    "Zoë <zoe@contoso.com>",
    "ops@localhost",
    "ops@xn--bcher-kva.example",
    "ops@contoso",
    "ops@[127.0.0.1]",
    "Doe, John <j@contoso.com>",
    "ops@contoso.com <ops@contoso.com>",
    "\"ops team\"@contoso.com",
    "Ops (EU) <ops@contoso.com>",
    "\"Ops <ops@contoso.com>",
    "Ops < ops@contoso.com>",
    "ops@ contoso.com",
    "ops@contoso..com",
    ".ops@contoso.com",
    "ops.@contoso.com",
    "ops@-contoso.com",
    "ops@contoso-.com",
    "ops",
    "",
];

#[test]
fn every_address_routing_accepts_is_one_the_mailer_takes() {
    for s in SAMPLES {
        if is_mailbox(s) {
            assert!(s.parse::<Mailbox>().is_ok(), "routing accepts {s:?} but the mailer refuses it");
        }
    }
}

#[test]
fn the_common_forms_are_accepted_by_both() {
    for s in &SAMPLES[..11] {
        assert!(is_mailbox(s), "routing refuses {s:?}");
        assert!(s.parse::<Mailbox>().is_ok(), "the mailer refuses {s:?}");
    }
}
