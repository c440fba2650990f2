//! `patchwatch check-config` and `patchwatch routes test`: the routing file, checked and tried
//! without sending anything.

use std::{path::PathBuf, process::ExitCode};

use patchwatch_azure::action_group;
use patchwatch_azure::arm::ArmClient;
use patchwatch_engine::source::RunDataSource;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;
use patchwatch_model::notice::{Notice, NoticeKind, Severity};
use patchwatch_model::routing::{ChannelSpec, Notification, Routing};
use patchwatch_model::rundata::RunQuery;
use patchwatch_model::summary::Decision;
use patchwatch_model::summary::summarise;

use crate::EXIT_BAD_INPUT;

/// Check a routing file: syntax, channel references, addresses, endpoints, secret variables.
///
/// Problems are printed as FILE:LINE:COLUMN: error|warning: message. Exit 0 when there are no
/// errors (warnings, such as a secret variable not set in this shell, are allowed).
#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
    /// The routing file (default: PATCHWATCH_CONFIG).
    file: Option<PathBuf>,
    /// Also read the action groups it names through ARM (with your `az login`, or the managed
    /// identity) and report receivers patchwatch cannot serve.
    #[arg(long)]
    azure: bool,
}

pub(crate) async fn check(args: &CheckArgs) -> ExitCode {
    let Some(path) = args.file.clone().or_else(|| std::env::var_os("PATCHWATCH_CONFIG").map(PathBuf::from)) else {
        eprintln!("patchwatch: name a routing file, or set PATCHWATCH_CONFIG");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let env = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    match patchwatch_engine::config::load_routing(&path, &env) {
        Ok((r, warnings)) => {
            for w in &warnings {
                out!("{w}");
            }
            if args.azure {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let endpoint =
                    env("PATCHWATCH_ARM_ENDPOINT").unwrap_or_else(|| "https://management.azure.com".to_owned());
                let credential: Result<std::sync::Arc<dyn azure_core::credentials::TokenCredential>, _> =
                    if env("IDENTITY_ENDPOINT").is_some() {
                        // The deployed apps have user-assigned identities only: name the one to use.
                        let options = azure_identity::ManagedIdentityCredentialOptions {
                            user_assigned_id: env("AZURE_CLIENT_ID").map(azure_identity::UserAssignedId::ClientId),
                            ..Default::default()
                        };
                        azure_identity::ManagedIdentityCredential::new(Some(options)).map(|c| c as _)
                    } else {
                        azure_identity::DeveloperToolsCredential::new(None).map(|c| c as _)
                    };
                match (credential, endpoint.parse()) {
                    (Ok(c), Ok(url)) => {
                        let arm = ArmClient::new(url, c, "https://management.azure.com/.default".to_owned());
                        for line in action_group::check(&r, &arm).await {
                            out!("{}: {line}", path.display());
                        }
                    }
                    _ => out!("{}: warning: no Azure credential; action groups not checked", path.display()),
                }
            }
            let c = &r.control;
            let mut control = Vec::new();
            if !c.gates.is_empty() {
                control.push(format!("{} gates", c.gates.len()));
            }
            if c.power.is_some() {
                control.push("power".to_owned());
            }
            if !c.itsm.callers.is_empty() {
                control.push(format!("{} ITSM callers", c.itsm.callers.len()));
            }
            if c.suppress_alerts.is_some() {
                control.push("alerts suppressed during runs".to_owned());
            }
            out!(
                "{}: ok: {} channels, {} routes{}{}",
                path.display(),
                r.channels.len(),
                r.routes.len(),
                control.iter().map(|c| format!(", {c}")).collect::<String>(),
                if warnings.is_empty() { String::new() } else { format!(", {} warnings", warnings.len()) }
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                out!("{p}");
            }
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum RoutesCommand {
    Test(TestArgs),
}

/// Show which channels would receive what for an event (and which follow-ups it would open),
/// or for a notice of a kind and severity, without sending anything.
#[derive(clap::Args, Debug)]
pub(crate) struct TestArgs {
    /// Event Grid delivery (array or one event).
    #[arg(long, required_unless_present = "notice")]
    event: Option<PathBuf>,
    /// A notice kind instead of an event: gate, power, alert, itsm, reminder, undelivered, quiet.
    #[arg(long, conflicts_with = "event", value_parser = parse_kind)]
    notice: Option<NoticeKind>,
    /// The notice's severity: info, warning or critical.
    #[arg(long, default_value = "info", value_parser = parse_severity, requires = "notice")]
    severity: Severity,
    /// The maintenance configuration the notice is about.
    #[arg(long, requires = "notice")]
    configuration: Option<String>,
    /// Snapshot of ARG tables (default: PATCHWATCH_SNAPSHOT).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Routing file (default: PATCHWATCH_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<NoticeKind, String> {
    NoticeKind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("{s:?}: expected gate, power, alert, itsm, reminder, undelivered or quiet"))
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase()))
        .map_err(|_| format!("{s:?}: expected info, warning or critical"))
}

pub(crate) async fn test(args: TestArgs) -> ExitCode {
    let Some(config) = args.config.clone().or_else(|| std::env::var_os("PATCHWATCH_CONFIG").map(PathBuf::from)) else {
        eprintln!("patchwatch: give --config or set PATCHWATCH_CONFIG");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    if let Some(kind) = args.notice {
        return test_notice(&config, kind, args.severity, args.configuration.as_deref());
    }
    let Some(event_path) = args.event.clone() else {
        eprintln!("patchwatch: give --event or --notice");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(snapshot) = args.snapshot.clone().or_else(|| std::env::var_os("PATCHWATCH_SNAPSHOT").map(PathBuf::from))
    else {
        eprintln!("patchwatch: give --snapshot or set PATCHWATCH_SNAPSHOT");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let routing = match patchwatch_engine::config::load_routing(&config, &|_| true) {
        Ok((r, _)) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let items = match std::fs::read(&event_path)
        .map_err(|e| e.to_string())
        .and_then(|b| parse_delivery(&b).map_err(|e| e.to_string()))
    {
        Ok(items) => items,
        Err(e) => {
            eprintln!("patchwatch: {}: {e}", event_path.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let source = RunDataSource::SnapshotFile(snapshot);
    for item in items {
        let Incoming::Maintenance(event) = item else { continue };
        if let Err(code) = test_event(&routing, &source, &event).await {
            return code;
        }
    }
    ExitCode::SUCCESS
}

/// Prints the summary subject of one event and where its notifications would go; the error is
/// the exit code (run data that could not be read).
async fn test_event(routing: &Routing, source: &RunDataSource, event: &MaintenanceEvent) -> Result<(), ExitCode> {
    let query = RunQuery {
        correlation_id: event.correlation_id.clone(),
        subscription_ids: event.subscription_ids.clone(),
        include_results: true,
        since: Some(event.start),
        watch: Vec::new(),
    };
    let data = match source.load(&query).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return Err(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    // As if the grace period were over: the point is to see the routing.
    let Decision::Ready(summary) = summarise(event, &data, time::OffsetDateTime::now_utc(), std::time::Duration::ZERO)
    else {
        return Ok(());
    };
    out!("{}", summary.subject());
    let plan = routing.plan(event, &summary, &data);
    if plan.is_empty() {
        out!("  no route matches: nothing would be sent");
    }
    for n in &plan {
        out!(
            "  route {:<10} {:<13} {:<10} {:<11} {:>4} machines ({} not succeeded) -> {}",
            n.route,
            n.channel,
            n.spec.kind(),
            n.group.as_deref().unwrap_or("-"),
            n.summary.counts.total,
            n.summary.counts.total - n.summary.counts.succeeded,
            recipients_of(n)
        );
    }
    print_follow_ups(routing, &plan);
    Ok(())
}

/// The follow-ups a post event's plan would open: reminders until someone owns the failure.
fn print_follow_ups(routing: &Routing, plan: &[Notification]) {
    let mut seen = std::collections::HashSet::new();
    for n in plan {
        let Some(route) = routing.route(&n.route) else { continue };
        if !route.follows_up() || !n.summary.verdict.is_failure() || !seen.insert((&n.route, &n.group)) {
            continue;
        }
        let steps: Vec<String> =
            route.reminders.iter().map(|d| patchwatch_model::conditions::format_duration(*d)).collect();
        let escalation = route
            .escalate_to
            .as_ref()
            .map(|e| format!(", the last escalating to route {}", e.get_ref()))
            .unwrap_or_default();
        out!(
            "  follow-up {}{}: reminders after {}{escalation}, until acknowledged or patched",
            n.route,
            n.group.as_deref().map(|g| format!(" ({g})")).unwrap_or_default(),
            steps.join(", ")
        );
    }
}

/// Where a notice of this kind and severity would go.
fn test_notice(
    config: &std::path::Path,
    kind: NoticeKind,
    severity: Severity,
    configuration: Option<&str>,
) -> ExitCode {
    let routing = match patchwatch_engine::config::load_routing(config, &|_| true) {
        Ok((r, _)) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let mut notice = Notice::new(kind, "routes-test", severity, "test");
    notice.configuration = configuration.map(str::to_owned);
    let channels = routing.notice_channels(&notice, &[]);
    let to = if channels.is_empty() {
        "no notice route matches: the section's own `notify` list (else PATCHWATCH_MAIL_TO)".to_owned()
    } else {
        channels.join(", ")
    };
    out!("{} notice ({}) -> {to}", kind.as_str(), severity.label().to_ascii_lowercase());
    ExitCode::SUCCESS
}

/// Who a planned notification reaches, as the routing file names it.
fn recipients_of(n: &Notification) -> String {
    match &n.spec {
        ChannelSpec::Email { to, .. } => {
            let list = if n.recipients.is_empty() { to.clone() } else { n.recipients.clone() };
            if list.is_empty() { "PATCHWATCH_MAIL_TO".to_owned() } else { list.join(", ") }
        }
        ChannelSpec::Teams { url_env } | ChannelSpec::Slack { url_env } => format!("${url_env}"),
        ChannelSpec::Webhook { url, .. } => url.clone(),
        ChannelSpec::Servicenow { instance, .. } => instance.clone(),
        ChannelSpec::ActionGroup { id } => {
            format!("receivers of {}", patchwatch_model::resource_id::last_segment(id))
        }
        ChannelSpec::AlertWebhook { .. } => "an action group webhook".to_owned(),
    }
}
