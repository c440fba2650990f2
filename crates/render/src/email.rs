//! Rendering summaries into email with handlebars: HTML and plain text.
//!
//! Templates are embedded; a directory (`PATCHWATCH_TEMPLATES`) may override any of them by
//! file name. Strict mode makes a misspelt field an error instead of an empty string. HTML
//! templates escape everything they print; the text templates strip control characters.

use std::{
    borrow::Cow,
    path::Path,
    sync::{Arc, OnceLock},
};

use handlebars::Handlebars;
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;

use patchwatch_model::{
    event::Phase,
    summary::{Counts, MachineOutcome, Outcome, PatchFailure, RunSummary, Verdict},
    text::{format_minutes, format_time},
};

/// Most machine rows in one email; the rest are counted, not listed.
pub const MAX_ROWS: usize = 1000;
/// Most machine names listed under one failed patch.
const MAX_PATCH_MACHINES: usize = 25;

const EMBEDDED: [(&str, &str); 8] = [
    ("summary.html", include_str!("../templates/summary.html.hbs")),
    ("summary.txt", include_str!("../templates/summary.txt.hbs")),
    ("heads-up.html", include_str!("../templates/heads-up.html.hbs")),
    ("heads-up.txt", include_str!("../templates/heads-up.txt.hbs")),
    ("notice.html", include_str!("../templates/notice.html.hbs")),
    ("notice.txt", include_str!("../templates/notice.txt.hbs")),
    ("digest.html", include_str!("../templates/digest.html.hbs")),
    ("digest.txt", include_str!("../templates/digest.txt.hbs")),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {source}")]
    Template { name: String, source: Box<handlebars::TemplateError> },
    #[error("template file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("rendering {name}: {source}")]
    Render { name: String, source: Box<handlebars::RenderError> },
    #[error("drawing the {name} chart: {message}")]
    Chart { name: &'static str, message: String },
    #[error("writing the workbook: {0}")]
    Workbook(#[from] Box<rust_xlsxwriter::XlsxError>),
}

/// A rendered message body.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The templates, each compiled on first use (cheap to clone: a render can run on a thread of
/// its own). Compiling costs: handlebars' parser finds each element's line by counting from the
/// start of the file, so compiling all eight took 12 ms at every start, most of it for the
/// digest, which a run's summary never renders. Overrides are compiled at load, so that a broken
/// one is reported at start.
#[derive(Clone, Debug)]
pub struct Templates {
    templates: Arc<[Template]>,
    pub(crate) portal: Url,
}

#[derive(Debug)]
struct Template {
    name: &'static str,
    source: Cow<'static, str>,
    compiled: OnceLock<Handlebars<'static>>,
}

impl Template {
    fn compiled(&self) -> Result<&Handlebars<'static>, RenderError> {
        if let Some(registry) = self.compiled.get() {
            return Ok(registry);
        }
        let registry = compile(self.name, &self.source)?;
        // Two threads may compile it at once; either result is the same.
        Ok(self.compiled.get_or_init(|| registry))
    }
}

/// One template's registry: strict (a misspelt field is an error); HTML-escaped, or for text
/// templates stripped of control characters.
fn compile(name: &str, source: &str) -> Result<Handlebars<'static>, RenderError> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    if !name.ends_with(".html") {
        registry.register_escape_fn(strip_controls);
    }
    registry
        .register_template_string(name, source)
        .map_err(|source| RenderError::Template { name: name.to_owned(), source: Box::new(source) })?;
    Ok(registry)
}

impl Templates {
    /// Compiles the embedded templates, overridden by same-named `*.hbs` files in `dir`.
    /// The portal page of a resource, as every message links it.
    pub fn resource_link(&self, id: &str) -> String {
        resource_link(&self.portal, id)
    }

    pub fn load(dir: Option<&Path>, portal: Url) -> Result<Self, RenderError> {
        let mut templates = Vec::with_capacity(EMBEDDED.len());
        for (name, embedded) in EMBEDDED {
            let template = match dir.map(|d| d.join(format!("{name}.hbs"))).filter(|p| p.exists()) {
                Some(path) => {
                    let source = std::fs::read_to_string(&path)
                        .map_err(|source| RenderError::Io { path: path.display().to_string(), source })?;
                    let compiled = OnceLock::from(compile(name, &source)?);
                    Template { name, source: Cow::Owned(source), compiled }
                }
                None => Template { name, source: Cow::Borrowed(embedded), compiled: OnceLock::new() },
            };
            templates.push(template);
        }
        Ok(Self { templates: templates.into(), portal })
    }

    /// Renders template `name` (`summary.html`, …) with `model`.
    fn render_one(&self, name: &str, model: &impl Serialize) -> Result<String, RenderError> {
        let failed =
            |source: handlebars::RenderError| RenderError::Render { name: name.to_owned(), source: Box::new(source) };
        let template = self
            .templates
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| failed(handlebars::RenderErrorReason::TemplateNotFound(name.to_owned()).into()))?;
        template.compiled()?.render(name, model).map_err(failed)
    }

    /// Renders the email for a summary (post) or heads-up (pre).
    /// `scope` names the part of the run shown (a split route's owner), if not all of it.
    /// `actions` are one-click links (label, URL) shown as buttons.
    pub fn render(
        &self,
        summary: &RunSummary,
        scope: Option<&str>,
        actions: &[(String, String)],
    ) -> Result<Rendered, RenderError> {
        let mut model = EmailModel::new(summary, &self.portal);
        model.actions = links(actions);
        if let Some(scope) = scope {
            model.scope = scope.to_owned();
            model.subject = patchwatch_model::text::one_line(&format!("{} ({scope})", model.subject));
        }
        let base = match summary.phase {
            Phase::Pre => "heads-up",
            Phase::Post => "summary",
        };
        Ok(Rendered {
            subject: model.subject.clone(),
            html: self.render_one(&format!("{base}.html"), &model)?,
            text: self.render_one(&format!("{base}.txt"), &model)?,
        })
    }
}

impl Templates {
    /// Renders template `name` (`digest`, …) as HTML and as text from one model.
    pub(crate) fn render_pair(&self, name: &str, model: &impl Serialize) -> Result<(String, String), RenderError> {
        Ok((self.render_one(&format!("{name}.html"), model)?, self.render_one(&format!("{name}.txt"), model)?))
    }
}

/// What the notice templates see.
#[derive(Serialize)]
struct NoticeModel<'a> {
    subject: String,
    title: &'a str,
    kind: &'a str,
    color: &'static str,
    facts: Vec<Fact<'a>>,
    /// One paragraph; line breaks are kept by the HTML (`pre-line`), not by markup.
    text: &'a str,
    link: Option<&'a str>,
    actions: Vec<Link>,
    generated: String,
}

/// A one-click action: a button in HTML, a line in text.
#[derive(Serialize)]
struct Link {
    label: String,
    url: String,
}

fn links(actions: &[(String, String)]) -> Vec<Link> {
    actions.iter().map(|(label, url)| Link { label: label.clone(), url: url.clone() }).collect()
}

#[derive(Serialize)]
struct Fact<'a> {
    label: &'a str,
    value: &'a str,
}

impl Templates {
    /// Renders a notice (gate decision, alert, ITSM action) as email.
    pub fn render_notice(&self, n: &patchwatch_model::notice::Notice) -> Result<Rendered, RenderError> {
        use patchwatch_model::notice::Severity;
        let model = NoticeModel {
            subject: n.subject(),
            title: &n.title,
            kind: n.kind.as_str(),
            color: match n.severity {
                Severity::Info => "#107c10",
                Severity::Warning => "#986f0b",
                Severity::Critical => "#a4262c",
            },
            facts: n.facts.iter().map(|(label, value)| Fact { label, value }).collect(),
            text: &n.text,
            link: n.link.as_deref(),
            actions: links(&n.actions),
            generated: format_time(OffsetDateTime::now_utc()),
        };
        Ok(Rendered {
            subject: model.subject.clone(),
            html: self.render_one("notice.html", &model)?,
            text: self.render_one("notice.txt", &model)?,
        })
    }
}

/// Plain-text escaping: drop control characters other than line breaks and tabs.
fn strip_controls(s: &str) -> String {
    // A value is one line: a note or error text cannot add lines of its own to the message.
    s.chars()
        .filter_map(|c| {
            if c == '\n' || c == '\t' {
                Some(' ')
            } else if c.is_control() {
                None
            } else {
                Some(c)
            }
        })
        .collect()
}

pub fn outcome_color(o: Outcome) -> &'static str {
    match o {
        Outcome::Failed => "#b3261e",
        Outcome::NoResult => "#6b4fa0",
        Outcome::WindowExceeded => "#c55a11",
        Outcome::RebootPending => "#9a6700",
        Outcome::CompletedWithWarnings => "#9a6700",
        Outcome::Succeeded => "#1e7b34",
    }
}

#[derive(Serialize)]
struct EmailModel {
    subject: String,
    /// The owner a split route's email is for; empty for the whole run.
    scope: String,
    verdict: &'static str,
    verdict_color: &'static str,
    all_ok: bool,
    configuration: String,
    configuration_link: String,
    window: String,
    window_length: String,
    cutoff: String,
    subscriptions: String,
    reported_status: String,
    run_id: String,
    total: usize,
    patched: usize,
    totals: Vec<Total>,
    rows: Vec<MachineRow>,
    hidden_rows: usize,
    failed_patches: Vec<PatchRow>,
    advice: Vec<String>,
    timing: String,
    actions: Vec<Link>,
    generated: String,
}

#[derive(Serialize)]
struct Total {
    label: &'static str,
    count: usize,
    color: &'static str,
}

#[derive(Serialize)]
struct MachineRow {
    name: String,
    link: String,
    resource_group: String,
    kind: &'static str,
    os: String,
    outcome: &'static str,
    color: &'static str,
    installed: u32,
    failed: u32,
    pending: u32,
    reboot: String,
    note: String,
}

#[derive(Serialize)]
struct PatchRow {
    key: String,
    title: String,
    classifications: String,
    count: usize,
    machines: String,
}

/// The portal page of a resource.
pub fn resource_link(portal: &Url, id: &str) -> String {
    format!("{}#resource{}", portal.as_str(), id)
}

impl EmailModel {
    fn new(s: &RunSummary, portal: &Url) -> Self {
        let c = &s.counts;
        let pre = s.phase == Phase::Pre;
        let (rows, hidden_rows) = machine_rows(s, portal);
        Self {
            subject: s.subject(),
            scope: String::new(),
            verdict: if pre { "Patching soon" } else { s.verdict.label() },
            verdict_color: if pre { "#1f4e79" } else { verdict_color(s.verdict) },
            all_ok: s.verdict.is_ok(),
            configuration: s.configuration_name.clone(),
            configuration_link: resource_link(portal, &s.configuration_id),
            window: format!("{} – {}", format_time(s.window_start), format_time(s.window_end)),
            window_length: format_minutes(s.window_minutes()),
            cutoff: s.cancellation_cutoff.map(format_time).unwrap_or_default(),
            subscriptions: s.subscriptions.join(", "),
            reported_status: s.reported_status.clone().unwrap_or_default(),
            run_id: s.run_id.clone(),
            total: c.total,
            patched: c.patched,
            totals: totals(c),
            rows,
            hidden_rows,
            failed_patches: s.failed_patches.iter().map(PatchRow::new).collect(),
            advice: s.advice.clone(),
            timing: timing(s),
            generated: format_time(OffsetDateTime::now_utc()),
            actions: Vec::new(),
        }
    }
}

/// The machine rows, at most [`MAX_ROWS`], and how many more were left out. Pre: every machine
/// in scope. Post: every machine that did not simply succeed.
fn machine_rows(s: &RunSummary, portal: &Url) -> (Vec<MachineRow>, usize) {
    let pre = s.phase == Phase::Pre;
    let listed: Vec<_> = s.machines.iter().filter(|m| pre || m.outcome != Outcome::Succeeded).collect();
    let hidden_rows = listed.len().saturating_sub(MAX_ROWS);
    let rows = listed.into_iter().take(MAX_ROWS).map(|m| MachineRow::new(m, portal)).collect();
    (rows, hidden_rows)
}

impl MachineRow {
    fn new(m: &MachineOutcome, portal: &Url) -> Self {
        Self {
            name: m.name.clone(),
            link: resource_link(portal, &m.id),
            resource_group: m.resource_group.clone(),
            kind: if m.arc { "Arc" } else { "Azure VM" },
            os: m.os.clone().unwrap_or_else(|| "—".to_owned()),
            outcome: m.outcome.label(),
            color: outcome_color(m.outcome),
            installed: m.installed,
            failed: m.failed,
            pending: m.pending,
            reboot: m.reboot_status.clone().unwrap_or_else(|| "—".to_owned()),
            note: machine_note(m),
        }
    }
}

/// The machine's note, saying first when the run did not list it.
fn machine_note(m: &MachineOutcome) -> String {
    let note = m.note.clone().unwrap_or_default();
    if m.unlisted { format!("Not in the run's machine list. {note}").trim().to_owned() } else { note }
}

impl PatchRow {
    /// Names at most [`MAX_PATCH_MACHINES`] machines and counts the rest.
    fn new(p: &PatchFailure) -> Self {
        let mut machines = p.machines.iter().take(MAX_PATCH_MACHINES).cloned().collect::<Vec<_>>().join(", ");
        if p.machines.len() > MAX_PATCH_MACHINES {
            machines.push_str(&format!(" and {} more", p.machines.len() - MAX_PATCH_MACHINES));
        }
        Self {
            key: p.key.clone(),
            title: p.title.clone(),
            classifications: p.classifications.join(", "),
            count: p.machines.len(),
            machines,
        }
    }
}

/// Counts by outcome, worst first; outcomes nobody had are left out, but "Succeeded" always shows.
fn totals(c: &Counts) -> Vec<Total> {
    Outcome::ALL
        .iter()
        .map(|o| Total { label: o.label(), count: c.of(*o), color: outcome_color(*o) })
        .filter(|t| t.count > 0 || t.label == "Succeeded")
        .collect()
}

/// When installs ran and the longest one; empty when no machine reported times.
fn timing(s: &RunSummary) -> String {
    let (Some(a), Some(b)) = (s.first_start, s.last_finish) else { return String::new() };
    let mut t = format!(
        "Installs ran from {} to {} ({})",
        format_time(a),
        format_time(b),
        format_minutes((b - a).whole_minutes())
    );
    if let Some((name, mins)) = &s.longest_install {
        t.push_str(&format!("; the longest took {} on {name}", format_minutes(*mins)));
    }
    t.push('.');
    t
}

/// The verdict in the colour of the outcome it stands for.
fn verdict_color(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Succeeded => outcome_color(Outcome::Succeeded),
        Verdict::Failed => outcome_color(Outcome::Failed),
        Verdict::Incomplete | Verdict::NoMachines | Verdict::Cancelled => outcome_color(Outcome::NoResult),
        Verdict::WindowExceeded => outcome_color(Outcome::WindowExceeded),
        _ => outcome_color(Outcome::CompletedWithWarnings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchwatch_model::summary::{Counts, MachineOutcome, RunSummary, Verdict};
    use time::macros::datetime;

    fn summary(name: &str, note: &str) -> RunSummary {
        RunSummary {
            phase: Phase::Post,
            run_id: "/run".into(),
            configuration_id: "/mc".into(),
            configuration_name: name.into(),
            window_start: datetime!(2023-05-09 15:00 UTC),
            window_end: datetime!(2023-05-09 18:55 UTC),
            cancellation_cutoff: None,
            subscriptions: vec!["s".into()],
            reported_status: Some("Succeeded".into()),
            verdict: Verdict::Failed,
            counts: Counts { total: 1, failed: 1, ..Counts::default() },
            machines: vec![MachineOutcome {
                id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/<vm>".into(),
                name: "<b>vm</b>".into(),
                resource_group: "rg".into(),
                subscription_id: "s".into(),
                arc: false,
                os: None,
                outcome: Outcome::Failed,
                status: Some("Failed".into()),
                installed: 0,
                failed: 0,
                pending: 0,
                reboot_status: None,
                started: None,
                finished: None,
                errors: vec![],
                note: Some(note.into()),
                unlisted: false,
                tags: Default::default(),
            }],
            succeeded: vec![],
            failed_patches: vec![],
            first_start: None,
            last_finish: None,
            longest_install: None,
            advice: vec!["<script>alert(1)</script>".into()],
        }
    }

    fn templates() -> Templates {
        Templates::load(None, Url::parse("https://portal.azure.com/").unwrap()).unwrap()
    }

    #[test]
    fn html_escapes_every_value() {
        let r = templates()
            .render(&summary("<img src=x onerror=alert(1)>", "\"quoted\" & <tag>"), Some("<team>"), &[])
            .unwrap();
        assert!(!r.html.contains("<img src=x"), "configuration name was not escaped");
        assert!(!r.html.contains("<script>"), "advice was not escaped");
        assert!(!r.html.contains("<b>vm</b>"), "machine name was not escaped");
        assert!(r.html.contains("&lt;b&gt;vm&lt;/b&gt;"));
        assert!(r.html.contains("&quot;quoted&quot; &amp; &lt;tag&gt;"));
        assert!(r.text.contains("<b>vm</b>"), "plain text keeps the literal name");
        // One-click buttons: label and URL escaped in HTML, listed in text.
        let actions = [("<i>Ack</i>".to_owned(), "https://pw.example.com/api/action?token=a\"b&c".to_owned())];
        let r = templates().render(&summary("mc", "n"), None, &actions).unwrap();
        assert!(r.html.contains("&lt;i&gt;Ack&lt;/i&gt;") && !r.html.contains("<i>Ack"), "action label escaped");
        assert!(r.html.contains("a&quot;b&amp;c") && !r.html.contains("a\"b"), "action URL escaped in the attribute");
        assert!(r.text.contains("  <i>Ack</i>: https://pw.example.com/api/action?token=a\"b&c"), "{}", r.text);
    }

    #[test]
    fn text_strips_control_characters() {
        let r = templates().render(&summary("ring\u{1b}[31m", "bell\u{7}"), None, &[]).unwrap();
        assert!(!r.text.contains('\u{1b}') && !r.text.contains('\u{7}'));
    }

    #[test]
    fn override_directory_replaces_a_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("summary.txt.hbs"), "custom {{configuration}}").unwrap();
        let t = Templates::load(Some(dir.path()), Url::parse("https://portal.azure.com/").unwrap()).unwrap();
        assert_eq!(t.render(&summary("mc", "n"), None, &[]).unwrap().text, "custom mc");
        std::fs::write(dir.path().join("summary.txt.hbs"), "{{#if}}").unwrap();
        let err = Templates::load(Some(dir.path()), Url::parse("https://portal.azure.com/").unwrap()).unwrap_err();
        assert!(err.to_string().contains("summary.txt"), "{err}");
    }

    #[test]
    fn every_embedded_template_compiles_and_once() {
        let t = templates();
        assert_eq!(t.templates.len(), EMBEDDED.len());
        for template in t.templates.iter() {
            assert!(template.compiled.get().is_none(), "{} compiled before its first use", template.name);
            let first: *const Handlebars<'static> = template.compiled().unwrap();
            assert!(std::ptr::eq(first, template.compiled().unwrap()), "{} compiled twice", template.name);
        }
        // Clones share the compiled templates.
        let clone = t.clone();
        assert!(clone.templates.iter().all(|template| template.compiled.get().is_some()));
        let err = t.render_one("nothing.html", &()).unwrap_err();
        assert!(err.to_string().contains("nothing.html"), "{err}");
    }

    #[test]
    fn formats_are_readable() {
        assert_eq!(format_minutes(235), "3 h 55 min");
        assert_eq!(format_minutes(120), "2 h");
        assert_eq!(format_time(datetime!(2023-05-09 15:00:59 +02:00)), "2023-05-09 13:00 UTC");
    }
}
