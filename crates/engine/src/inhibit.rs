//! Inhibition: per-machine noise folded into one message, each fold visible in the ledger.
//!
//! - **Assignment alerts are grouped.** Every configuration-assignment alert joins the open group
//!   of its configuration and caller ([`group_assignment`]); its own delivery is recorded as
//!   `inhibited`, naming the group. When the group's window (`[alerts] group_window`, 5 minutes)
//!   has passed, [`flush_due`] sends ONE notice listing every member, once.
//! - **A failed apply-updates of a summarised run is folded into its summary.**
//!   [`fold_or_hold`] records the alert as `inhibited` when the run's post summary is already
//!   delivered, else holds it until the grace period is over; [`flush_due`] then folds it (the
//!   summary came) or sends it after all (it did not): nothing is lost.
//!
//! Grouping without a lock: the open record `alerts/open/<configuration>-<caller>` names the
//! group (created atomically, replaced by compare-and-swap when its window has passed); members
//! are separate creates (`alerts/groups/<group>/m-<event>`), so 200 concurrent alerts contend
//! only on the group's creation. A flush writes the group's seal before it lists the members,
//! and a member checks for the seal after it has joined: a member is either listed by the
//! flush or sees the seal and is sent on its own.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, warn};

use patchwatch_model::{
    event::MaintenanceEvent,
    failure::{Delivered, Deliveries, DeliveryStatus, STATE_RETRY},
    notice::{Notice, NoticeKind, Severity},
    resource_id::last_segment,
    routing::Notification,
    settings::DEFAULT_GROUP_WINDOW,
    text::fnv64,
};
use patchwatch_state::{
    keys,
    ledger::{ALL_TARGETS, DeliveryId, DeliveryRecord, DeliveryState, Finish, Once},
    store::StateError,
};

use crate::pipeline::Pipeline;

/// The ledger target of an alert grouped into an assignment notice.
pub const GROUPED: &str = "grouped";
/// The ledger target of an apply-updates alert folded into (or held for) its run's summary.
pub const FOLDED: &str = "folded";
/// A group is flushed this long after its window closed (members still joining see the seal).
const SETTLE: Duration = Duration::from_secs(30);
/// A held apply-updates alert waits the grace period and this much more for the summary.
const HOLD_MARGIN: Duration = Duration::from_secs(300);
/// A flushed group's seal is kept this long for members that were still joining.
const SEAL_KEPT: Duration = Duration::from_secs(86_400);
/// Lines of members in a group notice's text; the rest are counted ("and N more").
const MAX_LINES: usize = 100;

/// One configuration-assignment alert, as a group member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub configuration: String,
    pub caller: String,
    /// The machine's name (empty when the resource id names none).
    pub machine: String,
    /// `write` or `delete`.
    pub operation: String,
    pub status: String,
    pub time: String,
    pub resource_id: String,
    /// The alert's identity (its event id): a redelivery joins once.
    pub event: String,
}

/// The run an apply-updates alert belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    /// The applyUpdates resource id (the post event's correlation id).
    pub run_id: String,
    pub configuration: String,
}

impl RunRef {
    /// The run of an applyUpdates resource id under a maintenance configuration
    /// (`…/maintenanceConfigurations/<name>/providers/Microsoft.Maintenance/applyUpdates/<run>`);
    /// `None` for a machine-level run, which has no run summary.
    pub fn from_resource_id(id: &str) -> Option<Self> {
        let lower = id.to_ascii_lowercase();
        let mc = lower.find("/maintenanceconfigurations/")? + "/maintenanceconfigurations/".len();
        let name = id[mc..].split('/').next().filter(|n| !n.is_empty())?;
        let rest = &lower[mc + name.len()..];
        let run = rest.strip_prefix("/providers/microsoft.maintenance/applyupdates/")?;
        if run.is_empty() || run.contains('/') {
            return None;
        }
        Some(Self { run_id: id.trim().to_owned(), configuration: name.to_owned() })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct OpenGroup {
    group: String,
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupHeader {
    configuration: String,
    caller: String,
    #[serde(with = "time::serde::rfc3339")]
    opened: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct Seal {
    #[serde(with = "time::serde::rfc3339")]
    sealed: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct Held {
    notice: Notice,
    run: RunRef,
    #[serde(with = "time::serde::rfc3339")]
    due: OffsetDateTime,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(data: Option<&[u8]>) -> Option<T> {
    data.and_then(|d| serde_json::from_slice(d).ok())
}

fn window(p: &Pipeline) -> Duration {
    p.routing.as_ref().map_or(DEFAULT_GROUP_WINDOW, |r| r.control.alerts.group_window())
}

/// The ledger record of an alert's own delivery that was not sent on its own: a notice's
/// identity, as the notifier keeps it, under a target of its own.
fn own_id<'a>(notice: &'a Notice, target: &'a str) -> DeliveryId<'a> {
    crate::notifier::notice_id(notice, target)
}

/// Records a delivery as inhibited (once): folded into the message `detail` names.
pub async fn record_inhibited(p: &Pipeline, id: &DeliveryId<'_>, subject: &str, detail: &str) -> Delivered {
    let finish = Finish::Inhibited { subject: subject.to_owned(), detail: detail.to_owned() };
    match p.ledger().once(id, &p.notifier.clock, |_| async { (finish, ()) }).await {
        Ok(Once::Acted(())) => Delivered::done(id.target, DeliveryStatus::Inhibited, detail),
        Ok(Once::Settled(record)) => settled(id.target, &record),
        Ok(Once::Busy { retry_after }) => {
            Delivered::retry(id.target, format!("{}: another instance is recording it", id.target), retry_after)
        }
        Err(e) => Delivered::retry(id.target, e.to_string(), STATE_RETRY),
    }
}

fn settled(target: &str, record: &DeliveryRecord) -> Delivered {
    let outcome = match record.state {
        DeliveryState::Inhibited => DeliveryStatus::Inhibited,
        DeliveryState::Silenced => DeliveryStatus::Silenced,
        DeliveryState::Failed => DeliveryStatus::Failed,
        _ => DeliveryStatus::Duplicate,
    };
    Delivered::done(target, outcome, record.detail.clone().or_else(|| record.error.clone()).unwrap_or_default())
}

/// Groups one configuration-assignment alert: joins the open group of its configuration and
/// caller and records the alert's own delivery as inhibited. `None`: the group it joined was
/// already flushed, so the caller sends the notice on its own as before.
pub async fn group_assignment(p: &Pipeline, member: &Member, notice: &Notice) -> Option<Delivered> {
    let id = own_id(notice, GROUPED);
    // A redelivered alert that was grouped already joins nothing again.
    match p.ledger().status(&id).await {
        Ok(Some(record)) if record.state.is_settled() => return Some(settled(GROUPED, &record)),
        Ok(_) => {}
        Err(e) => return Some(Delivered::retry(GROUPED, e.to_string(), STATE_RETRY)),
    }
    let group = match join(p, member).await {
        Ok(Some(group)) => group,
        Ok(None) => {
            info!(configuration = %member.configuration, "The alert's group was already sent; the alert is sent on its own.");
            return None;
        }
        Err(e) => return Some(Delivered::retry(GROUPED, e.to_string(), STATE_RETRY)),
    };
    let detail =
        format!("grouped into the assignment notice for {} by {}, group {group}", member.configuration, member.caller);
    Some(record_inhibited(p, &id, &notice.subject(), &detail).await)
}

static NONCE: AtomicU32 = AtomicU32::new(0);

/// Adds `member` to the open group of its configuration and caller (opening one when none is
/// open or its window has passed). `None` when that group is already sealed.
async fn join(p: &Pipeline, member: &Member) -> Result<Option<String>, StateError> {
    let store = p.ledger().store();
    let now = p.now();
    let open_key = keys::alert_open(&member.configuration, &member.caller);
    for _ in 0..8 {
        let current = store.get(&open_key).await?;
        let live = decode::<OpenGroup>(current.as_ref().map(|v| v.data.as_slice())).filter(|g| now < g.until);
        let group = match live {
            Some(open) => open.group,
            None => {
                let nonce = fnv64(&format!(
                    "{}-{}-{}",
                    std::process::id(),
                    now.unix_timestamp_nanos(),
                    NONCE.fetch_add(1, Ordering::Relaxed)
                )) as u32;
                let name = keys::alert_group_name(&member.configuration, &member.caller, now.unix_timestamp(), nonce);
                let until = now + window(p);
                let header = GroupHeader {
                    configuration: member.configuration.clone(),
                    caller: member.caller.clone(),
                    opened: now,
                    until,
                };
                // The header first: a group the open record names always has one.
                store.create(&keys::alert_group(&name), &encode(&header)).await?;
                let open = encode(&OpenGroup { group: name.clone(), until });
                let written = match &current {
                    None => store.create(&open_key, &open).await?,
                    Some(v) => store.replace(&open_key, &open, &v.etag).await?,
                };
                if written.is_none() {
                    // Another alert opened the group first: join that one.
                    store.delete(&keys::alert_group(&name), None).await?;
                    continue;
                }
                info!(group = %name, configuration = %member.configuration, "Assignment alert group opened.");
                name
            }
        };
        // Already there (a redelivery): the member is the same.
        store.create(&keys::alert_group_member(&group, &member.event), &encode(member)).await?;
        if store.get(&keys::alert_group_sealed(&group)).await?.is_some() {
            return Ok(None);
        }
        return Ok(Some(group));
    }
    Err(StateError::Unavailable(format!("{open_key}: too much contention opening an alert group")))
}

/// Holds or folds an "apply updates failed" alert of a run under a maintenance configuration:
/// its summary already delivered → recorded as inhibited, nothing sent; not yet → held until the
/// grace period (and a margin) is over, for [`flush_due`] to decide.
pub async fn fold_or_hold(p: &Pipeline, run: &RunRef, notice: &Notice) -> Deliveries {
    let mut out = Deliveries::default();
    match fold(p, run, notice).await {
        Ok(Fold::Done(done)) => out.absorb([done]),
        Ok(Fold::NothingSent) => {
            let held = Held { notice: notice.clone(), run: run.clone(), due: p.now() };
            out.absorb(send_unfolded(p, &held, "none sent (no route matched the run)").await);
        }
        Ok(Fold::NotYet) => {
            let due = p.now() + p.grace + HOLD_MARGIN;
            let held = Held { notice: notice.clone(), run: run.clone(), due };
            match p.ledger().store().create(&keys::alert_held(&notice.key), &encode(&held)).await {
                Ok(_) => {
                    info!(run = %last_segment(&run.run_id), "Apply-updates alert held for the run's summary.");
                    out.absorb([Delivered::done(
                        FOLDED,
                        DeliveryStatus::Skipped,
                        format!("held until {} for the run summary of {}", fmt_time(due), describe(run)),
                    )]);
                }
                Err(e) => out.absorb([Delivered::retry(FOLDED, e.to_string(), STATE_RETRY)]),
            }
        }
        Err(e) => out.absorb([Delivered::retry(FOLDED, e.to_string(), STATE_RETRY)]),
    }
    out
}

fn describe(run: &RunRef) -> String {
    format!("{} run {}", run.configuration, last_segment(run.run_id.trim_end_matches('/')))
}

/// RFC 3339 to the second.
fn fmt_time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Whether an apply-updates alert folds into its run's summary.
enum Fold {
    /// Folded (recorded as inhibited), or settled earlier.
    Done(Delivered),
    /// The run's post summary is not delivered yet.
    NotYet,
    /// The run is complete but its summary went nowhere (no route matched): nothing to fold into.
    NothingSent,
}

/// The alert recorded as inhibited when its run's post summary is delivered.
async fn fold(p: &Pipeline, run: &RunRef, notice: &Notice) -> Result<Fold, StateError> {
    let id = own_id(notice, FOLDED);
    if let Some(record) = p.ledger().status(&id).await?
        && record.state.is_settled()
    {
        return Ok(Fold::Done(settled(FOLDED, &record)));
    }
    let summary =
        DeliveryId { run_id: &run.run_id, configuration: &run.configuration, phase: "post", target: ALL_TARGETS };
    let Some(record) = p.ledger().status(&summary).await? else { return Ok(Fold::NotYet) };
    if record.state != DeliveryState::Sent {
        return Ok(Fold::NotYet);
    }
    let Some(sent) = summary_sent(p, run).await? else { return Ok(Fold::NothingSent) };
    let at = sent.sent_at.map(|t| format!(", sent {}", fmt_time(t))).unwrap_or_default();
    let how = if sent.state == DeliveryState::Sent { String::new() } else { format!(", {}", sent.state.label()) };
    let detail = format!("folded into the run summary of {} ({}{how}{at})", describe(run), sent.target);
    Ok(Fold::Done(record_inhibited(p, &id, &notice.subject(), &detail).await))
}

/// One delivered notification of the run's post summary, if any went out.
async fn summary_sent(p: &Pipeline, run: &RunRef) -> Result<Option<DeliveryRecord>, StateError> {
    let store = p.ledger().store();
    let prefix = format!("{}/post/", keys::run_prefix(&run.run_id, &run.configuration));
    for key in store.list(&prefix).await? {
        let record = decode::<DeliveryRecord>(store.get(&key).await?.as_ref().map(|v| v.data.as_slice()));
        // A silenced or inhibited notification was handled as deliberately as a sent one: the
        // alert folds into it rather than going around the silence.
        let handled = |r: &DeliveryRecord| {
            matches!(r.state, DeliveryState::Sent | DeliveryState::Silenced | DeliveryState::Inhibited)
                && r.target != ALL_TARGETS
        };
        if let Some(r) = record.filter(handled) {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// The alert, sent after all: its run's summary never told anyone.
async fn send_unfolded(p: &Pipeline, held: &Held, why: &str) -> Vec<Delivered> {
    let notice = held.notice.clone().fact("Run summary", format!("{why} for {}", describe(&held.run)));
    p.notifier.send_notice(&notice, &p.alerts_notify()).await
}

/// Sends what is due: every assignment group whose window has passed (one notice each, once)
/// and every held apply-updates alert (folded when its summary came, else sent). The reminders
/// timer calls it; the alert webhook too, after each request.
pub async fn flush_due(p: &Pipeline) -> Deliveries {
    let mut out = Deliveries::default();
    match flush_groups(p).await {
        Ok(done) => out.extend(done),
        Err(e) => out.absorb([Delivered::retry("alert-groups", e.to_string(), STATE_RETRY)]),
    }
    match flush_held(p).await {
        Ok(done) => out.extend(done),
        Err(e) => out.absorb([Delivered::retry("held-alerts", e.to_string(), STATE_RETRY)]),
    }
    out
}

async fn flush_groups(p: &Pipeline) -> Result<Deliveries, StateError> {
    let store = p.ledger().store();
    let now = p.now();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in store.list(keys::ALERT_GROUPS).await? {
        if let Some(group) = key.strip_prefix(keys::ALERT_GROUPS).and_then(|k| k.split('/').next()) {
            groups.entry(group.to_owned()).or_default().push(key);
        }
    }
    let mut out = Deliveries::default();
    for (group, group_keys) in groups {
        let header = store.get(&keys::alert_group(&group)).await?;
        let Some(header) = decode::<GroupHeader>(header.as_ref().map(|v| v.data.as_slice())) else {
            // Sent (or never opened): drop the seal and late members once nobody can be joining.
            let seal = store.get(&keys::alert_group_sealed(&group)).await?;
            let seal = decode::<Seal>(seal.as_ref().map(|v| v.data.as_slice()));
            if seal.is_some_and(|s| s.sealed + SEAL_KEPT < now) {
                for key in &group_keys {
                    store.delete(key, None).await?;
                }
            }
            continue;
        };
        if now < header.until + SETTLE {
            continue;
        }
        // Seal first, then list: a member that joined before the seal is in the list; one that
        // comes after finds the seal and is sent on its own. Nothing falls between the two.
        store.create(&keys::alert_group_sealed(&group), &encode(&Seal { sealed: now })).await?;
        let sealed_keys = store.list(&format!("{}{group}/", keys::ALERT_GROUPS)).await?;
        let member_keys: Vec<&String> =
            sealed_keys.iter().filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with("m-"))).collect();
        let mut members = Vec::with_capacity(member_keys.len());
        for key in &member_keys {
            match decode::<Member>(store.get(key).await?.as_ref().map(|v| v.data.as_slice())) {
                Some(m) => members.push(m),
                None => warn!(key = %key, "Unreadable alert group member skipped."),
            }
        }
        if !members.is_empty() {
            let notice = group_notice(&group, &header, members);
            let sent = p.notifier.send_notice(&notice, &p.alerts_notify()).await;
            let retry = sent.iter().any(|d| d.retry.is_some());
            out.absorb(sent);
            if retry {
                continue;
            }
            info!(group = %group, configuration = %header.configuration, "Assignment alert group sent.");
        }
        for key in member_keys {
            store.delete(key, None).await?;
        }
        store.delete(&keys::alert_group(&group), None).await?;
    }
    Ok(out)
}

/// The one notice of a group: every member in its facts, at most [`MAX_LINES`] lines of text.
fn group_notice(group: &str, h: &GroupHeader, mut members: Vec<Member>) -> Notice {
    members.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.machine.cmp(&b.machine)));
    let count = |op: &str| members.iter().filter(|m| m.operation == op).count();
    let (written, deleted) = (count("write"), count("delete"));
    let failed = members.iter().filter(|m| m.status.eq_ignore_ascii_case("failed")).count();
    let name = |m: &Member| if m.machine.is_empty() { m.resource_id.clone() } else { m.machine.clone() };
    let mut lines: Vec<String> = members
        .iter()
        .take(MAX_LINES)
        .map(|m| format!("{}: {} {} at {}", name(m), m.operation, m.status, m.time))
        .collect();
    if members.len() > MAX_LINES {
        lines.push(format!("… and {} more (every machine is listed under Machines)", members.len() - MAX_LINES));
    }
    let mut ops = Vec::new();
    if written > 0 {
        ops.push(format!("{written} written"));
    }
    if deleted > 0 {
        ops.push(format!("{deleted} deleted"));
    }
    let title = format!(
        "{} configuration assignment(s) of {} changed by {} ({})",
        members.len(),
        h.configuration,
        h.caller,
        ops.join(", ")
    );
    let mut notice = Notice::new(
        NoticeKind::Alert,
        format!("alert-group:{group}"),
        if failed > 0 { Severity::Critical } else { Severity::Warning },
        title,
    );
    notice.configuration = Some(h.configuration.clone());
    notice.text = format!(
        "{} configuration-assignment alerts of {} by {} between {} and {}, grouped into this one notice: {}.",
        members.len(),
        h.configuration,
        h.caller,
        fmt_time(h.opened),
        fmt_time(h.until),
        lines.join("; ")
    );
    let machines: Vec<String> = members.iter().map(name).collect();
    notice
        .fact("Who", h.caller.clone())
        .fact("Configuration", h.configuration.clone())
        .fact("Assignments", members.len().to_string())
        .fact("Written", if written > 0 { written.to_string() } else { String::new() })
        .fact("Deleted", if deleted > 0 { deleted.to_string() } else { String::new() })
        .fact("Failed", if failed > 0 { failed.to_string() } else { String::new() })
        .fact("Window", format!("{} to {}", fmt_time(h.opened), fmt_time(h.until)))
        .fact("Machines", machines.join(", "))
}

async fn flush_held(p: &Pipeline) -> Result<Deliveries, StateError> {
    let store = p.ledger().store();
    let now = p.now();
    let mut out = Deliveries::default();
    for key in store.list(keys::ALERTS_HELD).await? {
        let Some(current) = store.get(&key).await? else { continue };
        let Some(held) = decode::<Held>(Some(&current.data)) else {
            warn!(key = %key, "Unreadable held alert left in place.");
            continue;
        };
        let sent = match fold(p, &held.run, &held.notice).await? {
            Fold::Done(done) => {
                out.absorb([done]);
                store.delete(&key, Some(&current.etag)).await?;
                continue;
            }
            Fold::NotYet if now < held.due => continue,
            Fold::NotYet => {
                info!(run = %last_segment(&held.run.run_id), "No run summary within the grace period; the apply-updates alert is sent.");
                send_unfolded(p, &held, "none within the grace period").await
            }
            Fold::NothingSent => send_unfolded(p, &held, "none sent (no route matched the run)").await,
        };
        let retry = sent.iter().any(|d| d.retry.is_some());
        out.absorb(sent);
        if !retry {
            store.delete(&key, Some(&current.etag)).await?;
        }
    }
    Ok(out)
}

/// A cancelled run's heads-ups: not sent, each recorded as inhibited ("run cancelled by gate …").
pub async fn cancelled(
    p: &Pipeline,
    event: &MaintenanceEvent,
    plan: &[Notification],
    gates: Option<&str>,
) -> Vec<Delivered> {
    let detail = format!("run cancelled by gate {}", gates.unwrap_or("(an earlier delivery's decision)"));
    let mut out = Vec::with_capacity(plan.len());
    for n in plan {
        let target = n.target();
        let id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: &target,
        };
        out.push(record_inhibited(p, &id, &n.summary.subject(), &detail).await);
    }
    out
}
