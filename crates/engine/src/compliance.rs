//! The compliance half: load the fleet (snapshot or Resource Graph, plus the run history
//! patchwatch keeps), lint it, build one digest per digest route and owner, and send each once
//! per period through the ledger.

use std::collections::HashMap;

use time::OffsetDateTime;
use tracing::info;

use patchwatch_fleet::{
    Fleet,
    digest::{self, Digest, DigestOptions},
    inventory::{PastOutcome, PastRun},
    lint::{self, Context, Finding, LintOptions, RingSequence},
};
use patchwatch_model::{
    routing::{ChannelSpec, PhaseMatch, RouteSpec, Routing, group_recipients},
    summary::Outcome,
    text::glob,
};
use patchwatch_state::history::{History, RunRecord};

use patchwatch_model::{failure::Deliveries, text::fnv64};
use patchwatch_state::{keys, ledger::DeliveryId};

use crate::{mail, notifier::Target, pipeline::Pipeline, source::RunDataError};

/// The fleet as judged at one moment.
#[derive(Debug)]
pub struct Evaluation {
    pub fleet: Fleet,
    pub options: LintOptions,
    pub digest: DigestOptions,
    pub findings: Vec<Finding>,
}

impl Evaluation {
    pub fn context(&self) -> Context<'_> {
        Context::new(&self.fleet, &self.options)
    }
}

/// Loads and lints the fleet. `as_of` overrides "now": by default a snapshot is judged as of
/// its newest timestamp, live data as of the pipeline's clock.
pub async fn evaluate(p: &Pipeline, as_of: Option<OffsetDateTime>) -> Result<Evaluation, RunDataError> {
    let started = std::time::Instant::now();
    let (mut fleet, newest) = p.source.load_fleet().await?;
    let loaded = started.elapsed();
    let as_of = as_of.or(newest).unwrap_or_else(|| p.now());
    let added = merge_history(&mut fleet, &p.history).await;
    let routing = p.routing.as_deref();
    let spec = routing.map(|r| r.compliance.clone()).unwrap_or_default();
    let mut options = LintOptions::new(as_of);
    options.pending_days = i64::from(spec.pending_days);
    options.owner_tags = spec.owner_tags.clone();
    options.rings = routing.map(|r| ring_sequences(r, &fleet, &spec.owner_tags)).unwrap_or_default();
    let findings = lint::lint(&fleet, &options);
    info!(
        load_ms = loaded.as_millis() as u64,
        lint_ms = (started.elapsed() - loaded).as_millis() as u64,
        machines = fleet.machines.len(),
        configurations = fleet.configurations.len(),
        runs = fleet.runs.len(),
        history_runs = added,
        findings = findings.len(),
        "Fleet evaluated."
    );
    let digest = DigestOptions { trend_runs: usize::from(spec.trend_runs), ..DigestOptions::default() };
    Ok(Evaluation { fleet, options, digest, findings })
}

/// Ring sequences from `[rings]` (globs on configuration names, in file order): each pair of
/// consecutive rings, one configuration of each that belongs together (the same owner, or with
/// no owner the same subscription), so two teams' rings are not judged against each other.
fn ring_sequences(routing: &Routing, fleet: &Fleet, owner_tags: &[String]) -> Vec<RingSequence> {
    let owner = |c: &patchwatch_fleet::inventory::Configuration| {
        owner_tags.iter().find_map(|t| c.tag(t)).map(str::to_ascii_lowercase)
    };
    let stages: Vec<(String, Vec<&patchwatch_fleet::inventory::Configuration>)> = routing
        .ring_order
        .iter()
        .filter_map(|ring| routing.rings.get(ring).map(|g| (ring.clone(), g)))
        .map(|(ring, g)| (ring, fleet.configurations.iter().filter(|c| glob(g, &c.name)).collect()))
        .collect();
    let mut out = Vec::new();
    for pair in stages.windows(2) {
        let [(ra, a), (rb, b)] = pair else { continue };
        for x in a {
            for y in b {
                let together = match (owner(x), owner(y)) {
                    (Some(ox), Some(oy)) => ox == oy,
                    _ => x.subscription.eq_ignore_ascii_case(&y.subscription),
                };
                if together {
                    out.push(RingSequence { name: format!("{ra} → {rb}"), configurations: vec![x.key(), y.key()] });
                }
            }
        }
    }
    out
}

/// Adds the runs patchwatch recorded that the fleet data does not hold (ARG keeps installation
/// results for about 30 days; the history keeps them longer). Returns how many were added.
async fn merge_history(fleet: &mut Fleet, history: &History) -> usize {
    let known: std::collections::HashSet<String> = fleet.runs.iter().map(|r| r.run_id.clone()).collect();
    let mut added = 0;
    for c in fleet.configurations.clone() {
        let records = match history.runs(&c.name).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(configuration = %c.name, error = %e, "Run history unavailable; trends use Resource Graph only.");
                continue;
            }
        };
        for record in records.into_iter().filter(|r| r.phase == "post") {
            if !known.contains(&record.run_id.to_ascii_lowercase()) {
                fleet.runs.push(past_run(&record, &c.key()));
                added += 1;
            }
        }
    }
    fleet.runs.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.run_id.cmp(&b.run_id)));
    added
}

/// A history record as a run: only machines that did not succeed are named (by name).
fn past_run(r: &RunRecord, configuration: &str) -> PastRun {
    let machines: HashMap<std::sync::Arc<str>, PastOutcome> = r
        .machines
        .iter()
        .map(|(name, outcome)| {
            let o = match outcome {
                Outcome::Succeeded | Outcome::CompletedWithWarnings => PastOutcome::Succeeded,
                Outcome::NoResult => PastOutcome::NoShow,
                Outcome::WindowExceeded => PastOutcome::WindowExceeded,
                _ => PastOutcome::Failed,
            };
            (name.to_ascii_lowercase().into(), o)
        })
        .collect();
    let longest = match (r.first_start, r.last_finish) {
        (Some(s), Some(e)) if e >= s => u32::try_from((e - s).whole_minutes()).ok(),
        _ => None,
    };
    PastRun {
        run_id: r.run_id.to_ascii_lowercase(),
        configuration: configuration.to_owned(),
        configuration_name: r.configuration.clone(),
        start: r.window_start,
        succeeded_uncounted: r.total.saturating_sub(machines.len()),
        machines,
        longest_install_minutes: longest,
        install_minutes: longest.into_iter().collect(),
        failed_patches: r.failed_patches.iter().cloned().collect(),
    }
}

/// One digest to one channel (and, for a split route, one owner).
#[derive(Clone, Debug)]
pub struct DigestDelivery {
    pub route: String,
    /// Empty: email to the default recipients.
    pub channel: String,
    pub spec: Option<ChannelSpec>,
    pub owner: Option<String>,
    pub recipients: Vec<String>,
    pub digest: Digest,
}

impl DigestDelivery {
    /// The ledger target: unique per route, channel and owner. The owner is lower-cased: tag
    /// values are compared case-insensitively, so `TEAM-WEB` and `team-web` are one digest.
    pub fn target(&self) -> String {
        let mut t = format!("{}.{}", self.route, if self.channel.is_empty() { "default" } else { &self.channel });
        if let Some(o) = &self.owner {
            t.push('.');
            t.push_str(&o.to_ascii_lowercase());
        }
        t
    }
}

/// The digests to send: one per `phase = "digest"` route and owner (split routes), or one
/// whole-fleet digest to the default recipients when no route asks for digests.
pub fn plan(ev: &Evaluation, routing: Option<&Routing>) -> Vec<DigestDelivery> {
    let routes: Vec<&RouteSpec> = routing
        .map(|r| r.routes.iter().filter(|r| r.matcher.phase == PhaseMatch::Digest).collect())
        .unwrap_or_default();
    if routes.is_empty() {
        let digest = digest::build(&ev.context(), &ev.findings, None, &ev.digest);
        return vec![DigestDelivery {
            route: "default".to_owned(),
            channel: String::new(),
            spec: None,
            owner: None,
            recipients: Vec::new(),
            digest,
        }];
    }
    let mut out = Vec::new();
    for r in routes {
        route_digests(ev, routing, r, &mut out);
        if !r.continue_after {
            break;
        }
    }
    out
}

fn route_digests(ev: &Evaluation, routing: Option<&Routing>, r: &RouteSpec, out: &mut Vec<DigestDelivery>) {
    // A route split by a tag judges owners by that tag.
    let split_options;
    let (options, findings) = match &r.split_by_tag {
        Some(tag) if ev.options.owner_tags.first() != Some(tag) => {
            split_options = LintOptions { owner_tags: vec![tag.clone()], ..ev.options.clone() };
            (&split_options, lint::lint(&ev.fleet, &split_options))
        }
        _ => (&ev.options, ev.findings.clone()),
    };
    let cx = Context::new(&ev.fleet, options);
    let shared = digest::Shared::new(&cx, &ev.digest);
    let owners: Vec<Option<String>> =
        if r.split_by_tag.is_some() { digest::owners(&cx).into_iter().map(Some).collect() } else { vec![None] };
    for owner in owners {
        let digest = shared.build(&findings, owner.as_deref());
        let recipients = group_recipients(r, owner.as_deref());
        for c in &r.channels {
            let spec = routing.and_then(|rt| rt.channels.get(c.get_ref())).cloned();
            // A split email with nobody to send to (an unmapped owner) is skipped, as for runs.
            if owner.is_some()
                && recipients.is_empty()
                && matches!(&spec, Some(ChannelSpec::Email { to, .. }) if to.is_empty())
            {
                info!(route = %r.name.get_ref(), owner = ?owner, "No recipients for this owner's digest; skipped.");
                continue;
            }
            out.push(DigestDelivery {
                route: r.name.get_ref().clone(),
                channel: c.get_ref().clone(),
                spec,
                owner: owner.clone(),
                recipients: recipients.clone(),
                digest: digest.clone(),
            });
        }
    }
}

/// What one compliance run did: the period, the fleet's numbers and every delivery.
#[derive(Debug)]
pub struct DigestRun {
    pub period: String,
    pub machines: usize,
    pub compliant: usize,
    pub errors: usize,
    pub warnings: usize,
    pub deliveries: Deliveries,
}

/// Sends each planned digest once per period (the ledger answers repeats and rival instances).
pub async fn send(p: &Pipeline, plan: &[DigestDelivery]) -> Deliveries {
    let mut out = Deliveries::default();
    for d in plan {
        let subject = patchwatch_render::digest::subject(&d.digest);
        let run_id = keys::digest_run(&d.digest.period);
        let owner = d.owner.as_deref().map_or_else(|| "fleet".to_owned(), str::to_ascii_lowercase);
        let owner = owner.as_str();
        let target = d.target();
        let stem = format!(
            "{}-{}-{:08x}",
            mail::file_stem(d.digest.generated, "compliance", "digest", &d.digest.period),
            keys::segment(owner),
            fnv64(&target) as u32
        );
        let id = DeliveryId { run_id: &run_id, configuration: owner, phase: "digest", target: &target };
        let delivered = p.notifier.deliver_digest(Target { id, subject: &subject, file_stem: &stem }, d).await;
        out.absorb([delivered]);
    }
    out
}

/// The digests of one evaluation, ready to send, and the numbers of the run.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Vec<DigestDelivery>,
    /// The whole-fleet digest, when asked for (for files).
    pub whole: Option<Digest>,
    pub period: String,
    pub overall: digest::Compliance,
    pub errors: usize,
    pub warnings: usize,
}

/// Evaluates the fleet and plans its digests. The fleet is dropped before this returns, so it
/// never shares the peak with the rendering (charts, workbooks) that sending does.
pub async fn prepare(p: &Pipeline, as_of: Option<OffsetDateTime>, whole_fleet: bool) -> Result<Prepared, RunDataError> {
    let ev = evaluate(p, as_of).await?;
    let plan = plan(&ev, p.routing.as_deref());
    let planned_whole = plan.iter().find(|d| d.owner.is_none()).map(|d| &d.digest);
    let whole = match planned_whole {
        Some(d) => whole_fleet.then(|| d.clone()),
        None => Some(digest::build(&ev.context(), &ev.findings, None, &ev.digest)),
    };
    let overall = planned_whole.or(whole.as_ref()).map(|d| d.overall.clone()).unwrap_or_default();
    let errors = ev.findings.iter().filter(|f| f.severity == lint::Level::Error).count();
    Ok(Prepared {
        period: digest::period_of(ev.options.as_of),
        warnings: ev.findings.len() - errors,
        errors,
        overall,
        whole: whole.filter(|_| whole_fleet),
        plan,
    })
}

/// The whole compliance run of the timer: prepare, then send each digest once.
pub async fn run(p: &Pipeline, as_of: Option<OffsetDateTime>) -> Result<DigestRun, RunDataError> {
    let prepared = prepare(p, as_of, false).await?;
    let deliveries = send(p, &prepared.plan).await;
    Ok(prepared.finish(deliveries))
}

impl Prepared {
    /// The run's report once its digests were sent.
    pub fn finish(&self, deliveries: Deliveries) -> DigestRun {
        DigestRun {
            period: self.period.clone(),
            machines: self.overall.machines,
            compliant: self.overall.compliant,
            errors: self.errors,
            warnings: self.warnings,
            deliveries,
        }
    }
}
