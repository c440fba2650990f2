//! patchwatch-render: how patchwatch's messages look. Pure functions over the model: email
//! through handlebars templates ([`email`]), Teams cards ([`teams`]), Slack messages ([`slack`]),
//! the signed webhook's body ([`webhook`]), action group webhook bodies ([`common_alert`]) and
//! notice payloads ([`notice`]), and the compliance digest ([`digest`]: email with PNG charts, an
//! `.xlsx` workbook, chat cards). Every template and payload escapes what it prints; images and
//! attachments travel as [`parts`].

pub mod common_alert;
pub mod digest;
pub mod email;
pub mod notice;
pub mod parts;
pub mod slack;
pub mod teams;
pub mod webhook;

pub use digest::RenderedDigest;
pub use email::{RenderError, Rendered, Templates};
pub use parts::{Attachment, InlineImage};
pub use patchwatch_model::text::{format_minutes, format_time};

use patchwatch_model::summary::RunSummary;

/// A one-line headline for chat channels.
pub fn headline(s: &RunSummary, group: Option<&str>) -> String {
    match group {
        Some(g) => format!("{} ({g})", s.subject()),
        None => s.subject(),
    }
}
