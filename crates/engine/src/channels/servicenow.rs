//! ServiceNow incidents through the Table API, one per failed run and never more.
//!
//! The incident's `correlation_id` is derived from the run (`patchwatch:<configuration hash>:<run>`,
//! within the field's 100 characters), and is looked up before anything is created, so a
//! redelivery or a later summary of the same run updates the incident instead of opening a
//! second one. A clean run of the same configuration resolves that configuration's open incidents.

use patchwatch_model::resource_id::last_segment;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::Channels;
use patchwatch_model::failure::Failure;
use patchwatch_model::{
    event::Phase,
    routing::Notification,
    secret::Secret,
    summary::{Outcome, RunSummary, Verdict},
};

/// The prefix shared by every incident of one configuration and one route's scope (its owner
/// group, for split routes): a clean run resolves only what the same scope opened.
pub fn scope_key(configuration_id: &str, route: &str, group: Option<&str>) -> String {
    let config = patchwatch_model::text::fnv64(&configuration_id.trim().trim_end_matches('/').to_ascii_lowercase());
    let scope =
        patchwatch_model::text::fnv64(&format!("{route}\u{1f}{}", group.unwrap_or("")).to_ascii_lowercase()) as u32;
    format!("patchwatch:{config:016x}:{scope:08x}:")
}

/// The incident key of one run and scope (at most 80 characters; the field holds 100).
pub fn correlation_id(scope: &str, s: &RunSummary) -> String {
    let run: String = last_segment(&s.run_id).chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    format!("{scope}{run}")
}

#[derive(Deserialize)]
struct Found {
    result: Vec<Incident>,
}

#[derive(Deserialize)]
struct Created {
    result: Incident,
}

#[derive(Deserialize)]
struct Incident {
    sys_id: String,
    #[serde(default)]
    number: String,
    /// 1 New, 2 In Progress, 3 On Hold; 6 Resolved, 7 Closed, 8 Canceled.
    #[serde(default)]
    state: String,
}

/// The incident states that still need someone (New, In Progress, On Hold).
const OPEN_STATES: [&str; 3] = ["1", "2", "3"];

/// A ServiceNow channel's client (Debug prints the secrets redacted).
#[derive(Debug)]
pub struct Client<'a> {
    pub channels: &'a Channels,
    pub channel: &'a str,
    pub instance: &'a str,
    pub user: &'a Secret,
    pub password: &'a Secret,
    pub assignment_group: Option<&'a str>,
}

impl Client<'_> {
    fn table(&self) -> String {
        format!("{}/api/now/table/incident", self.instance)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.channels
            .http
            .request(method, url)
            .basic_auth(self.user.expose(), Some(self.password.expose()))
            .header("accept", "application/json")
    }

    async fn find(&self, query: &str) -> Result<Vec<Incident>, Failure> {
        let mut url = Url::parse(&self.table()).map_err(|e| Failure::Permanent(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("sysparm_query", query)
            .append_pair("sysparm_fields", "sys_id,number,state")
            .append_pair("sysparm_limit", "20");
        let response = self.channels.post(self.channel, self.request(reqwest::Method::GET, url.as_str())).await?;
        let found: Found = response.json().await.map_err(|e| super::transient(format!("ServiceNow answer: {e}")))?;
        Ok(found.result)
    }

    /// Brings ServiceNow in line with the summary: open or update the run's incident when it
    /// did not succeed, resolve the configuration's open incidents when it did.
    pub async fn sync(&self, n: &Notification, portal: &Url) -> Result<String, Failure> {
        let s = &n.summary;
        if s.phase != Phase::Post || matches!(s.verdict, Verdict::NoMachines | Verdict::Cancelled) {
            return Ok("ServiceNow: nothing to do".to_owned());
        }
        let scope = scope_key(&s.configuration_id, &n.route, n.group.as_deref());
        let key = correlation_id(&scope, s);
        if !s.verdict.is_failure() {
            // Open and not yet resolved (6), closed (7) or cancelled (8); never this run's own.
            let open = self
                .find(&format!("correlation_idSTARTSWITH{scope}^active=true^stateNOT IN6,7,8^correlation_id!={key}"))
                .await?;
            let mut resolved = Vec::new();
            for incident in open {
                let body = json!({
                    "state": "6",
                    "close_code": "Solution provided",
                    "close_notes": format!("Resolved by patchwatch: the next run {} of {} succeeded on all {} machines.",
                        last_segment(&s.run_id), s.configuration_name, s.counts.total),
                });
                let url = format!("{}/{}", self.table(), incident.sys_id);
                self.channels.post(self.channel, self.request(reqwest::Method::PATCH, &url).json(&body)).await?;
                resolved.push(incident.number);
            }
            return Ok(if resolved.is_empty() {
                "ServiceNow: no open incident to resolve".to_owned()
            } else {
                format!("ServiceNow: resolved {}", resolved.join(", "))
            });
        }
        let description = describe(s, portal);
        let existing = self.find(&format!("correlation_id={key}^active=true")).await?;
        if let Some(incident) = existing.first() {
            let body = json!({ "description": description, "work_notes": journal_text(&format!("patchwatch: {}", s.subject())) });
            let url = format!("{}/{}", self.table(), incident.sys_id);
            self.channels.post(self.channel, self.request(reqwest::Method::PATCH, &url).json(&body)).await?;
            return Ok(format!("ServiceNow: updated {}", incident.number));
        }
        let mut body = json!({
            "short_description": s.subject().chars().take(160).collect::<String>(),
            "description": description,
            "correlation_id": key,
            "correlation_display": "patchwatch",
            "category": "software",
            "impact": if s.verdict == Verdict::Failed { "2" } else { "3" },
            "urgency": if s.verdict == Verdict::Failed { "2" } else { "3" },
        });
        if let Some(group) = self.assignment_group {
            body["assignment_group"] = json!(group);
        }
        let response =
            self.channels.post(self.channel, self.request(reqwest::Method::POST, &self.table()).json(&body)).await?;
        let created: Created =
            response.json().await.map_err(|e| super::transient(format!("ServiceNow answer: {e}")))?;
        Ok(format!("ServiceNow: opened {} ({})", created.result.number, created.result.sys_id))
    }
}

/// A change request as the Table API returns it (dates are UTC `yyyy-MM-dd HH:mm:ss`).
#[derive(Debug, Clone, Deserialize)]
pub struct ChangeRequest {
    #[serde(default)]
    pub number: String,
    #[serde(default)]
    pub approval: String,
    #[serde(default)]
    pub start_date: String,
    #[serde(default)]
    pub end_date: String,
}

#[derive(Deserialize)]
struct Changes {
    result: Vec<ChangeRequest>,
}

/// Parses ServiceNow's `yyyy-MM-dd HH:mm:ss` (UTC) date.
pub fn parse_date(s: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s.trim(), &format).ok().map(time::PrimitiveDateTime::assume_utc)
}

impl Client<'_> {
    /// Approved change requests whose `field` names the configuration, newest first; cancelled
    /// changes (state 4) do not count, whatever their approval says.
    pub async fn approved_changes(&self, field: &str, configuration: &str) -> Result<Vec<ChangeRequest>, Failure> {
        let mut url = Url::parse(&format!("{}/api/now/table/change_request", self.instance))
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        // `^` separates clauses in an encoded query: a name holding one could widen the query.
        if configuration.contains('^') || field.contains('^') {
            return Err(Failure::Permanent("configuration names with '^' cannot be queried".to_owned()));
        }
        url.query_pairs_mut()
            .append_pair(
                "sysparm_query",
                &format!("approval=approved^{field}={configuration}^stateNOT IN4^ORDERBYDESCsys_updated_on"),
            )
            .append_pair("sysparm_fields", "number,approval,start_date,end_date")
            .append_pair("sysparm_limit", "20");
        let response = self.channels.post(self.channel, self.request(reqwest::Method::GET, url.as_str())).await?;
        let found: Changes = response.json().await.map_err(|e| super::transient(format!("ServiceNow answer: {e}")))?;
        Ok(found.result)
    }

    /// The incidents patchwatch opened for this run (any route), as `(number, open)`: a run
    /// whose incidents all left the open states is owned by whoever resolved them.
    pub async fn run_incidents(&self, configuration_id: &str, run_id: &str) -> Result<Vec<(String, bool)>, Failure> {
        let config = patchwatch_model::text::fnv64(&configuration_id.trim().trim_end_matches('/').to_ascii_lowercase());
        let run: String = last_segment(run_id).chars().filter(char::is_ascii_alphanumeric).take(40).collect();
        let found = self
            .find(&format!("correlation_idSTARTSWITHpatchwatch:{config:016x}:^correlation_idENDSWITH{run}"))
            .await?;
        Ok(found.into_iter().map(|i| (i.number, OPEN_STATES.contains(&i.state.as_str()))).collect())
    }

    /// Adds a work note to every open incident patchwatch opened for this run.
    pub async fn note_run(&self, configuration_id: &str, run_id: &str, note: &str) -> Result<Vec<String>, Failure> {
        let config = patchwatch_model::text::fnv64(&configuration_id.trim().trim_end_matches('/').to_ascii_lowercase());
        let run: String = last_segment(run_id).chars().filter(char::is_ascii_alphanumeric).take(40).collect();
        let open = self
            .find(&format!("correlation_idSTARTSWITHpatchwatch:{config:016x}:^correlation_idENDSWITH{run}^active=true"))
            .await?;
        let mut noted = Vec::new();
        for incident in open {
            let url = format!("{}/{}", self.table(), incident.sys_id);
            let body = json!({ "work_notes": journal_text(note) });
            self.channels.post(self.channel, self.request(reqwest::Method::PATCH, &url).json(&body)).await?;
            noted.push(incident.number);
        }
        Ok(noted)
    }
}

/// Text for a journal field (`work_notes`, `comments`). ServiceNow renders `[code]…[/code]` in
/// journal entries as HTML, so text from callers (who acknowledged, their note) could otherwise
/// inject markup into every reader's incident view: square brackets become parentheses, and
/// control characters other than line breaks become spaces.
pub fn journal_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '[' => '(',
            ']' => ')',
            '\n' => '\n',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Plain-text incident description (ServiceNow renders it as text).
fn describe(s: &RunSummary, portal: &Url) -> String {
    let mut out = format!("{}\n\nConfiguration: {}\nRun: {}\n", s.subject(), s.configuration_name, s.run_id);
    out.push_str(&format!("Portal: {}#resource{}\n\n", portal, s.configuration_id));
    for m in s.machines.iter().filter(|m| m.outcome != Outcome::Succeeded).take(200) {
        out.push_str(&format!(
            "- {} ({}): {}{}\n",
            m.name,
            m.resource_group,
            m.outcome.label(),
            m.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default()
        ));
    }
    for p in s.failed_patches.iter().take(20) {
        out.push_str(&format!("Failed patch {} on {} machine(s)\n", p.key, p.machines.len()));
    }
    for a in &s.advice {
        out.push_str(&format!("Advice: {a}\n"));
    }
    out
}

#[cfg(test)]
mod journal_tests {
    #[test]
    fn journal_text_cannot_open_a_code_block() {
        let t = super::journal_text("Acknowledged by x: [code]<img src=x onerror=alert(1)>[/CODE]\r\nok");
        assert!(!t.contains('[') && !t.contains(']') && !t.contains('\r'), "{t}");
        assert_eq!(t, "Acknowledged by x: (code)<img src=x onerror=alert(1)>(/CODE) \nok");
    }
}
