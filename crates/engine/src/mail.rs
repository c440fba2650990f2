//! Email delivery: lettre over SMTP, or an outbox directory of `.eml` + `.html` files.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, header::ContentType},
};
use tracing::info;

use patchwatch_render::Rendered;

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
            Self::Outbox { .. } => true,
            Self::Url(_) | Self::Build(_) => false,
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
        let Envelope { from, to, message_id } = envelope;
        let message = build_message(from, to, rendered, message_id)?;
        match self {
            Self::Smtp(transport) => {
                transport.send(message).await?;
                info!(recipients = to.len(), "Email sent over SMTP.");
                Ok(Delivered::Smtp { recipients: to.len() })
            }
            Self::Outbox(dir) => {
                let (eml, html) = write_outbox(dir, file_stem, &message.formatted(), rendered.html.as_bytes()).await?;
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

/// The message itself. lettre encodes every header value, and the subject has no control
/// characters, so no field can add a header.
pub fn build_message(
    from: &Mailbox,
    to: &[Mailbox],
    rendered: &Rendered,
    message_id: &str,
) -> Result<Message, MailError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(fit_subject(&rendered.subject))
        .message_id(Some(message_id.to_owned()));
    for rcpt in to {
        builder = builder.to(rcpt.clone());
    }
    let body = MultiPart::alternative()
        .singlepart(lettre::message::SinglePart::builder().header(ContentType::TEXT_PLAIN).body(rendered.text.clone()))
        .singlepart(lettre::message::SinglePart::builder().header(ContentType::TEXT_HTML).body(rendered.html.clone()));
    Ok(builder.multipart(body)?)
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
