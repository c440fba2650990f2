//! The compliance digest as a team receives it: an email (HTML and plain text through the
//! `digest.html` / `digest.txt` templates, overridable like the others) with two PNG charts shown
//! inline, an `.xlsx` workbook attached with every row ([`workbook`]), and compact Teams and Slack
//! cards ([`chat`]). The email caps its long tables at [`MAX_DIGEST_ROWS`] and says how many more
//! rows the workbook has.

pub mod charts;
pub mod chat;
mod model;
mod sample;
pub mod workbook;

pub use sample::sample;

use patchwatch_fleet::digest::Digest;

use crate::{
    RenderError, Rendered, Templates,
    parts::{Attachment, InlineImage, PNG, XLSX},
};

/// Most rows of one table in the digest email; the attached workbook has them all. Gmail cuts
/// off an HTML body past 102 KB: 25 rows a table and 5 findings a check keep the sample digest
/// (1,000 machines, 260 pending patches, 24 findings) at about 87 KB.
pub const MAX_DIGEST_ROWS: usize = 25;
/// Most findings listed under one check in the digest email.
pub const MAX_FINDINGS_PER_CHECK: usize = 5;
/// `Content-ID` of the pending-patches chart (`cid:` in the HTML).
pub const PENDING_CHART_ID: &str = "pending-patches@digest.patchwatch";
/// `Content-ID` of the failed and no-show chart.
pub const RUNS_CHART_ID: &str = "failed-no-show@digest.patchwatch";

/// A rendered digest: the message body, the charts its HTML shows by `cid:`, and the workbook.
#[derive(Clone, Debug)]
pub struct RenderedDigest {
    pub rendered: Rendered,
    pub images: Vec<InlineImage>,
    pub attachments: Vec<Attachment>,
}

impl Templates {
    /// Renders the digest email with its charts and its workbook attachment.
    pub fn render_digest(&self, d: &Digest) -> Result<RenderedDigest, RenderError> {
        let images = vec![
            InlineImage {
                content_id: PENDING_CHART_ID.to_owned(),
                content_type: PNG,
                filename: "pending-patches.png".to_owned(),
                bytes: charts::pending_by_classification(&d.pending_by_classification)?,
            },
            InlineImage {
                content_id: RUNS_CHART_ID.to_owned(),
                content_type: PNG,
                filename: "failed-and-no-show.png".to_owned(),
                bytes: charts::failed_and_no_show(&d.trends)?,
            },
        ];
        let attachment = Attachment { filename: attachment_name(d), content_type: XLSX, bytes: workbook::workbook(d)? };
        let model = model::DigestModel::new(d, &self.portal, &attachment.filename);
        let (html, text) = self.render_pair("digest", &model)?;
        Ok(RenderedDigest {
            rendered: Rendered { subject: model.subject().to_owned(), html, text },
            images,
            attachments: vec![attachment],
        })
    }
}

/// `Patch compliance 2026-W49: 87% of 1,000 machines (team-web)`, on one line.
pub fn subject(d: &Digest) -> String {
    let mut s = format!(
        "Patch compliance {}: {}% of {} machines",
        d.period,
        d.overall.percent(),
        thousands(d.overall.machines)
    );
    if let Some(owner) = &d.owner {
        s.push_str(&format!(" ({owner})"));
    }
    patchwatch_model::text::one_line(&s)
}

/// The workbook's file name: `patch-compliance-2026-w49-team-web.xlsx`.
pub fn attachment_name(d: &Digest) -> String {
    let mut name = format!("patch-compliance-{}", d.period);
    if let Some(owner) = &d.owner {
        name.push('-');
        name.push_str(owner);
    }
    let mut slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    slug.truncate(80);
    format!("{}.xlsx", slug.trim_matches('-'))
}

/// `1,000`.
pub(crate) use patchwatch_model::text::thousands;

#[cfg(test)]
mod tests;
