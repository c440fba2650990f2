//! Email delivery: lettre over SMTP, or an outbox directory of `.eml` + `.html` files.
//!
//! A message is text and HTML as `multipart/alternative`. One with inline images (the digest's
//! charts) puts the HTML and the images in `multipart/related`, each image with its `Content-ID`;
//! one with attachments wraps it all in `multipart/mixed`. The outbox's `.html`, like
//! [`write_standalone_html`], carries the images as `data:` URIs, so it opens in a browser whole.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, SinglePart, header::ContentType},
};
use tracing::info;

use patchwatch_render::{Attachment, InlineImage, Rendered, RenderedDigest, parts::standalone_html};

use crate::config::MailTarget;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP URL is invalid: {0}")]
    Url(String),
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("outbox {path}: {source}")]
    Outbox { path: PathBuf, source: std::io::Error },
    #[error("content type {0} is invalid")]
    ContentType(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl MailError {
    /// A later attempt may succeed: the server is down, answers 4xx or times out, or refuses
    /// authentication or TLS (530, 534, 535, 538), which an operator fixes without the message
    /// changing. Every other 5xx refuses this message for good (550 no such mailbox, 552 too
    /// big, 554 rejected, 500 a line too long, …): retrying would hold the event forever.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Smtp(e) => {
                let operator_fixable = ["530", "534", "535", "538"];
                !e.is_permanent() || e.status().is_some_and(|c| operator_fixable.contains(&c.to_string().as_str()))
            }
            Self::Outbox { .. } | Self::Write { .. } => true,
            Self::Url(_) | Self::Build(_) | Self::ContentType(_) => false,
        }
    }
}

/// Where a message went.
#[derive(Clone, Debug)]
pub enum Delivered {
    Smtp { recipients: usize },
    Outbox { eml: PathBuf, html: PathBuf },
}

/// Who a message is from and to, and its `Message-ID`: the headers that identify one delivery.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub from: &'a Mailbox,
    pub to: &'a [Mailbox],
    /// The same for every attempt at a delivery (see [`message_id`]).
    pub message_id: &'a str,
}

/// What one message carries: its subject, text and HTML, the images the HTML shows by `cid:`,
/// and attached files. Most messages have neither images nor attachments.
#[derive(Clone, Copy, Debug)]
pub struct Content<'a> {
    pub rendered: &'a Rendered,
    pub images: &'a [InlineImage],
    pub attachments: &'a [Attachment],
}

impl<'a> From<&'a Rendered> for Content<'a> {
    fn from(rendered: &'a Rendered) -> Self {
        Self { rendered, images: &[], attachments: &[] }
    }
}

impl<'a> From<&'a RenderedDigest> for Content<'a> {
    fn from(d: &'a RenderedDigest) -> Self {
        Self { rendered: &d.rendered, images: &d.images, attachments: &d.attachments }
    }
}

impl Content<'_> {
    /// The HTML with its images inlined as `data:` URIs, for a file a browser opens.
    pub fn standalone_html(&self) -> String {
        standalone_html(&self.rendered.html, self.images)
    }
}

/// Sends rendered email.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Mailer::Smtp"),
            Self::Outbox(p) => write!(f, "Mailer::Outbox({})", p.display()),
        }
    }
}

impl Mailer {
    pub fn new(target: &MailTarget) -> Result<Self, MailError> {
        match target {
            MailTarget::Smtp(url) => {
                // Never echo the URL: it may hold a password.
                let transport: AsyncSmtpTransport<Tokio1Executor> =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                        .map_err(|e| MailError::Url(e.to_string().replace(url.expose(), "***")))?
                        .timeout(Some(Duration::from_secs(20)))
                        .build();
                Ok(Self::Smtp(transport))
            }
            MailTarget::Outbox(dir) => Ok(Self::Outbox(dir.clone())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Smtp(_) => "SMTP".to_owned(),
            Self::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Builds and sends one multipart/alternative message; an outbox names its files after `file_stem`.
    pub async fn send(
        &self,
        envelope: Envelope<'_>,
        rendered: &Rendered,
        file_stem: &str,
    ) -> Result<Delivered, MailError> {
        self.send_content(envelope, rendered.into(), file_stem).await
    }

    /// Builds and sends one message with its inline images and attachments (see [`build_message_with`]).
    pub async fn send_content(
        &self,
        envelope: Envelope<'_>,
        content: Content<'_>,
        file_stem: &str,
    ) -> Result<Delivered, MailError> {
        let Envelope { from, to, message_id } = envelope;
        let message = build_message_with(from, to, content, message_id)?;
        match self {
            Self::Smtp(transport) => {
                transport.send(message).await?;
                info!(recipients = to.len(), "Email sent over SMTP.");
                Ok(Delivered::Smtp { recipients: to.len() })
            }
            Self::Outbox(dir) => {
                let html = content.standalone_html();
                let (eml, html) = write_outbox(dir, file_stem, &message.formatted(), html.as_bytes()).await?;
                info!(path = %eml.display(), "Email written to the outbox.");
                Ok(Delivered::Outbox { eml, html })
            }
        }
    }
}

/// Longest subject sent, in characters. RFC 5322 caps a header line at 998 octets, and mail
/// clients show about 80 characters; longer names are cut with an ellipsis (the body has them whole).
pub const MAX_SUBJECT_CHARS: usize = 200;

/// `subject` cut to [`MAX_SUBJECT_CHARS`], with an ellipsis where it was cut.
pub fn fit_subject(subject: &str) -> String {
    if subject.chars().count() <= MAX_SUBJECT_CHARS {
        return subject.to_owned();
    }
    let mut cut: String = subject.chars().take(MAX_SUBJECT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// A `Message-ID` for one delivery: the same for every attempt at it (from the ledger key), so a
/// rare second copy after a crash is recognisable as the same message and threads with it.
pub fn message_id(delivery_hash: &str, from: &Mailbox) -> String {
    format!("<patchwatch.{delivery_hash}@{}>", from.email.domain())
}

/// The message itself: text and HTML as multipart/alternative. lettre encodes every header
/// value, and the subject has no control characters, so no field can add a header.
pub fn build_message(
    from: &Mailbox,
    to: &[Mailbox],
    rendered: &Rendered,
    message_id: &str,
) -> Result<Message, MailError> {
    build_message_with(from, to, rendered.into(), message_id)
}

/// The message with its images and attachments:
///
/// ```text
/// multipart/mixed                  (only with attachments)
/// ├── multipart/alternative
/// │   ├── text/plain
/// │   └── multipart/related        (only with images; else the text/html part alone)
/// │       ├── text/html
/// │       └── image/png            Content-ID: <id>, Content-Disposition: inline
/// └── application/…                Content-Disposition: attachment; filename="…"
/// ```
pub fn build_message_with(
    from: &Mailbox,
    to: &[Mailbox],
    content: Content<'_>,
    message_id: &str,
) -> Result<Message, MailError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(fit_subject(&content.rendered.subject))
        .message_id(Some(message_id.to_owned()));
    for rcpt in to {
        builder = builder.to(rcpt.clone());
    }
    Ok(builder.multipart(body(content)?)?)
}

/// `s` with CRLF line endings, as a message body carries them. lettre converts a body itself,
/// but with one `String::insert` per line, which is quadratic: 0.1 s of copying for the
/// 900 KB email of a 50,000-machine run. Given CRLF already, it inserts nothing. (lettre picks
/// the transfer encoding from the text it is given, where a `\r` now counts: a line of 74 or 75
/// characters may go quoted-printable instead of 7bit, which changes the bytes, not what a mail
/// client shows.)
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut rest = s;
    while let Some(at) = rest.find('\n') {
        let line = &rest[..at];
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push_str("\r\n");
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

fn body(content: Content<'_>) -> Result<MultiPart, MailError> {
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(crlf(&content.rendered.text));
    let html = SinglePart::builder().header(ContentType::TEXT_HTML).body(crlf(&content.rendered.html));
    let alternative = if content.images.is_empty() {
        MultiPart::alternative().singlepart(text).singlepart(html)
    } else {
        let mut related = MultiPart::related().singlepart(html);
        for image in content.images {
            related = related.singlepart(
                lettre::message::Attachment::new_inline_with_name(image.content_id.clone(), image.filename.clone())
                    .body(image.bytes.clone(), content_type(image.content_type)?),
            );
        }
        MultiPart::alternative().singlepart(text).multipart(related)
    };
    if content.attachments.is_empty() {
        return Ok(alternative);
    }
    let mut mixed = MultiPart::mixed().multipart(alternative);
    for file in content.attachments {
        mixed = mixed.singlepart(
            lettre::message::Attachment::new(file.filename.clone())
                .body(file.bytes.clone(), content_type(file.content_type)?),
        );
    }
    Ok(mixed)
}

fn content_type(s: &str) -> Result<ContentType, MailError> {
    ContentType::parse(s).map_err(|_| MailError::ContentType(s.to_owned()))
}

/// Writes the message's HTML as a file that opens in a browser with its images (`data:` URIs),
/// atomically (temp file, then rename). `patchwatch report --html FILE` uses it.
pub async fn write_standalone_html(path: &Path, content: Content<'_>) -> Result<(), MailError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MailError::Write { path, source }
    };
    let written = match tokio::fs::write(&tmp, content.standalone_html()).await {
        Ok(()) => tokio::fs::rename(&tmp, path).await.map_err(err(path)),
        Err(e) => Err(err(&tmp)(e)),
    };
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
}

/// Writes `<stem>.eml` and `<stem>.html` atomically (temp file, then rename).
async fn write_outbox(dir: &Path, stem: &str, eml: &[u8], html: &[u8]) -> Result<(PathBuf, PathBuf), MailError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MailError::Outbox { path, source }
    };
    tokio::fs::create_dir_all(dir).await.map_err(err(dir))?;
    let mut out = Vec::new();
    for (ext, bytes) in [("html", html), ("eml", eml)] {
        let path = dir.join(format!("{stem}.{ext}"));
        let tmp = dir.join(format!(".{stem}.{ext}.tmp"));
        let written = match tokio::fs::write(&tmp, bytes).await {
            Ok(()) => tokio::fs::rename(&tmp, &path).await.map_err(err(&path)),
            Err(e) => Err(err(&tmp)(e)),
        };
        if let Err(e) = written {
            // A full disk leaves a partial temporary file: remove it, so nothing half-written stays.
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        out.push(path);
    }
    let eml = out.pop().unwrap_or_default();
    let html = out.pop().unwrap_or_default();
    Ok((eml, html))
}

/// A file-name-safe stem: `20230509T155500Z-ring2-prod-post`.
pub fn file_stem(when: time::OffsetDateTime, configuration: &str, phase: &str, run_name: &str) -> String {
    let slug = |s: &str| -> String {
        let mut out: String =
            s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        out.truncate(60);
        out.trim_matches('-').to_owned()
    };
    let t = when.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}-{}-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        slug(configuration),
        slug(run_name),
        slug(phase)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(subject: &str) -> Rendered {
        Rendered { subject: subject.into(), html: "<p>hi</p>".into(), text: "hi".into() }
    }

    #[test]
    fn message_is_multipart_alternative_with_one_subject_line() {
        let from: Mailbox = "patchwatch <pw@example.com>".parse().unwrap();
        let to: Vec<Mailbox> = vec!["ops@example.com".parse().unwrap()];
        let msg = build_message(&from, &to, &rendered("Ring — Failed"), "<a@example.com>").unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("text/plain") && text.contains("text/html"));
        assert_eq!(text.matches("\r\nSubject:").count() + usize::from(text.starts_with("Subject:")), 1);
        assert!(!text.contains("\r\nBcc:"));
    }

    #[test]
    fn bodies_get_crlf_line_endings_in_one_pass() {
        assert_eq!(crlf("a\nb\r\nc\n\n\r\nd"), "a\r\nb\r\nc\r\n\r\n\r\nd");
        assert_eq!(crlf("\n"), "\r\n");
        assert_eq!(crlf("no line end, \r alone"), "no line end, \r alone");
        assert_eq!(crlf(""), "");
    }

    #[test]
    fn messages_without_parts_stay_text_and_html_alternatives() {
        let from: Mailbox = "patchwatch <pw@example.com>".parse().unwrap();
        // Line endings of every kind, converted here as lettre would convert them.
        let r = Rendered {
            text: "hi\nsecond line\r\nthird\n\n\nend\n".into(),
            html: "<p>hi</p>\n<p>é</p>\r\n\n".into(),
            ..rendered("Ring — Failed")
        };
        let plain = build_message(&from, std::slice::from_ref(&from), &r, "<a@example.com>").unwrap();
        // The message as it was built before messages could carry parts.
        let before = Message::builder()
            .from(from.clone())
            .subject(fit_subject(&r.subject))
            .message_id(Some("<a@example.com>".to_owned()))
            .to(from.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(r.text.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(r.html.clone())),
            )
            .unwrap();
        // Byte for byte the same here, but for the random part boundary and the date (lines of 74
        // or 75 characters may change the transfer encoding: see `crlf`, and below).
        let normal = |m: &Message| {
            let f = String::from_utf8(m.formatted()).unwrap();
            let boundary = f.split("boundary=\"").nth(1).and_then(|b| b.split('"').next()).unwrap().to_owned();
            f.replace(&boundary, "BOUNDARY").lines().filter(|l| !l.starts_with("Date:")).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(normal(&plain), normal(&before));
        let text = String::from_utf8(plain.formatted()).unwrap();
        let parsed = mailparse::parse_mail(text.as_bytes()).unwrap();
        assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
        let types: Vec<&str> = parsed.subparts.iter().map(|p| p.ctype.mimetype.as_str()).collect();
        assert_eq!(types, ["text/plain", "text/html"]);
        // Around lettre's 76-character line limit, each body still decodes to what was rendered.
        for width in 70..80 {
            let line = "x".repeat(width);
            let r = Rendered { text: format!("{line}\n{line}\nend"), ..r.clone() };
            let message = build_message(&from, std::slice::from_ref(&from), &r, "<a@example.com>").unwrap();
            let formatted = message.formatted();
            let parsed = mailparse::parse_mail(&formatted).unwrap();
            assert_eq!(parsed.subparts[0].get_body().unwrap(), crlf(&r.text), "{width}");
        }
    }

    /// Every leaf part of a parsed message, depth first.
    fn leaves<'a>(m: &'a mailparse::ParsedMail<'a>, out: &mut Vec<&'a mailparse::ParsedMail<'a>>) {
        if m.subparts.is_empty() {
            out.push(m);
        }
        for p in &m.subparts {
            leaves(p, out);
        }
    }

    fn digest() -> patchwatch_render::RenderedDigest {
        let portal = url::Url::parse("https://portal.azure.com/").unwrap();
        let templates = patchwatch_render::Templates::load(None, portal).unwrap();
        templates.render_digest(&patchwatch_render::digest::sample()).unwrap()
    }

    #[test]
    fn digest_email_carries_its_charts_and_its_workbook() {
        use calamine::Reader as _;
        let from: Mailbox = "patchwatch <pw@example.com>".parse().unwrap();
        let to: Vec<Mailbox> = vec!["ops@example.com".parse().unwrap()];
        let d = digest();
        let msg = build_message_with(&from, &to, (&d).into(), "<digest@example.com>").unwrap();
        let raw = msg.formatted();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        assert_eq!(parsed.ctype.mimetype, "multipart/mixed");
        assert_eq!(parsed.subparts[0].ctype.mimetype, "multipart/alternative");
        assert_eq!(parsed.subparts[0].subparts[1].ctype.mimetype, "multipart/related");
        let mut parts = Vec::new();
        leaves(&parsed, &mut parts);
        let of = |t: &str| parts.iter().filter(|p| p.ctype.mimetype == t).copied().collect::<Vec<_>>();
        assert_eq!(of("text/plain").len(), 1);
        assert!(of("text/plain")[0].get_body().unwrap().contains("87% compliant: 870 of 1,000 machines"));
        let html = of("text/html")[0].get_body().unwrap();
        assert!(html.contains("87% compliant"));

        let images = of("image/png");
        assert_eq!(images.len(), 2);
        for image in images {
            let id = image.headers.iter().find(|h| h.get_key() == "Content-ID").unwrap().get_value();
            let id = id.trim_start_matches('<').trim_end_matches('>');
            assert!(html.contains(&format!("src=\"cid:{id}\"")), "no cid:{id} in the HTML");
            assert_eq!(image.get_content_disposition().disposition, mailparse::DispositionType::Inline);
            let png = image.get_body_raw().unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
            // IHDR: width and height, big-endian, at bytes 16..24.
            let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
            assert_eq!((size(16), size(20)), (1200, 600));
        }

        let xlsx = of("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        assert_eq!(xlsx.len(), 1);
        let disposition = xlsx[0].get_content_disposition();
        assert_eq!(disposition.disposition, mailparse::DispositionType::Attachment);
        assert_eq!(disposition.params.get("filename").map(String::as_str), Some("patch-compliance-2026-w49.xlsx"));
        let bytes = xlsx[0].get_body_raw().unwrap();
        let mut wb = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        let sheets = ["Summary", "Needs attention", "Pending patches", "Schedule findings", "Run history"];
        assert_eq!(wb.sheet_names(), sheets);
        for (sheet, rows) in sheets.iter().zip([9, 131, 261, 25, 25]) {
            assert_eq!(wb.worksheet_range(sheet).unwrap().height(), rows, "{sheet}");
        }
    }

    #[tokio::test]
    async fn outbox_and_report_html_show_the_charts_without_cid() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mailer::Outbox(dir.path().join("out"));
        let from: Mailbox = "pw@example.com".parse().unwrap();
        let d = digest();
        let envelope = Envelope { from: &from, to: std::slice::from_ref(&from), message_id: "<d@example.com>" };
        let Delivered::Outbox { eml, html } = m.send_content(envelope, (&d).into(), "digest").await.unwrap() else {
            panic!("expected the outbox")
        };
        let eml = std::fs::read(eml).unwrap();
        let parsed = mailparse::parse_mail(&eml).unwrap();
        let mut parts = Vec::new();
        leaves(&parsed, &mut parts);
        assert_eq!(parts.len(), 5, "text, HTML, two charts and the workbook");
        let html = std::fs::read_to_string(html).unwrap();
        assert!(!html.contains("cid:"), "a cid: reference a browser cannot show");
        assert_eq!(html.matches("<img src=\"data:image/png;base64,iVBORw0KGgo").count(), 2);

        let report = dir.path().join("report.html");
        write_standalone_html(&report, (&d).into()).await.unwrap();
        assert_eq!(std::fs::read_to_string(&report).unwrap(), html);
        let missing = dir.path().join("no-such-dir").join("report.html");
        let err = write_standalone_html(&missing, (&d).into()).await.unwrap_err();
        assert!(matches!(err, MailError::Write { .. }), "{err}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        );
    }

    #[test]
    fn long_subjects_are_cut_and_folded_under_the_line_limit() {
        let from: Mailbox = "patchwatch <pw@example.com>".parse().unwrap();
        let long = format!("{}: Failed — 3 of 40 patched", "Ring2-Prod".repeat(300));
        let msg = build_message(&from, std::slice::from_ref(&from), &rendered(&long), "<x@example.com>").unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.lines().all(|l| l.len() <= 998), "a header line over 998 octets");
        let parsed = mailparse::parse_mail(text.as_bytes()).unwrap();
        let subject = parsed.headers.iter().find(|h| h.get_key() == "Subject").unwrap().get_value();
        assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(subject.ends_with('…') && subject.starts_with("Ring2-ProdRing2-Prod"), "{subject}");
        println!("{}", text.lines().take(8).collect::<Vec<_>>().join("\n"));
    }

    #[test]
    fn stems_are_file_safe() {
        let t = time::macros::datetime!(2023-05-09 15:55:00 UTC);
        assert_eq!(
            file_stem(t, "Ring2/Prod ../x", "post", "20230509150000"),
            "20230509T155500Z-ring2-prod----x-20230509150000-post"
        );
    }

    #[tokio::test]
    async fn outbox_writes_eml_and_html() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mailer::Outbox(dir.path().join("out"));
        let from: Mailbox = "pw@example.com".parse().unwrap();
        let d = m
            .send(
                Envelope { from: &from, to: std::slice::from_ref(&from), message_id: "<a@example.com>" },
                &rendered("s"),
                "stem",
            )
            .await
            .unwrap();
        let Delivered::Outbox { eml, html } = d else { panic!("expected the outbox") };
        assert!(std::fs::read_to_string(eml).unwrap().contains("Subject: s"));
        assert_eq!(std::fs::read_to_string(html).unwrap(), "<p>hi</p>");
    }
}
