//! Every persisted key format, in one place. Keys are relative paths of `[A-Za-z0-9._-]`
//! segments, so the file and blob stores map them 1:1. Changing a format here orphans the
//! records written under the old one: treat these as a stored contract.
//!
//! | prefix | record | written by |
//! |---|---|---|
//! | `deliveries/<run>/<phase>/<target>` | [`crate::ledger::DeliveryRecord`] | the ledger |
//! | `history/<configuration>/<run>` | [`crate::history::RunRecord`] | run history |
//! | `approvals/<configuration>/<change>` | [`crate::approvals::ChangeDecision`] | ITSM change decisions |
//! | `acks/<run>` | [`crate::approvals::Acknowledgement`] | ITSM acknowledgements |
//! | `power/<run>/<machine>` | [`crate::power::PoweredMachine`] | machines started for a run |
//! | `itsm/seen/<caller>/<id>`, `itsm/requests/<caller>/<id>` | a replay marker | the ITSM webhook |
//! | `silences/<id>` | [`patchwatch_model::silence::Silence`] | `patchwatch silence`, the ITSM `silence` action |
//! | `followups/<run>/<route and group>` | [`crate::followups::FollowUp`] | a failed run's first message; the reminders timer |
//! | `actions/rerun/<run>` | a run re-run from a one-click link (JSON: who, when) | the first confirmed *Re-run* link of a run |
//! | `actions/used/<nonce>` | a use-once marker (JSON: action, run, route, when) | a one-click action link, when its action is confirmed |
//! | `alerts/open/<configuration>-<caller>` | the open assignment-alert group of a configuration and caller | the alert webhook |
//! | `alerts/groups/<group>/group`, `…/m-<event>`, `…/sealed` | a group, its members, its seal | the alert webhook; `inhibit::flush_due` |
//! | `alerts/held/<alert>` | an apply-updates alert waiting for its run's summary | the alert webhook; `inhibit::flush_due` |
//! | `pending-notices/<notice>` | a notice a background task could not send yet | ITSM re-runs; `undelivered::retry_pending` |

use patchwatch_model::{resource_id::last_segment, text::fnv64};

use crate::store::StateError;

/// Prefix of every delivery record.
pub const DELIVERIES: &str = "deliveries/";

/// Keys are relative paths of `[A-Za-z0-9._-]` segments, so both backends map them 1:1.
pub fn check(key: &str) -> Result<(), StateError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.starts_with('.')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if ok { Ok(()) } else { Err(StateError::InvalidKey(key.to_owned())) }
}

/// A key segment from arbitrary text: lower-case, unsafe characters replaced, length bounded.
pub fn segment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    out.truncate(80);
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() { "x".to_owned() } else { out }
}

/// The key prefix of one run: `deliveries/<configuration>-<run name>-<hash of the run id>`.
pub fn run_prefix(run_id: &str, configuration: &str) -> String {
    let lower = run_id.trim().trim_end_matches('/').to_ascii_lowercase();
    let name = last_segment(&lower);
    format!("{DELIVERIES}{}-{}-{:016x}", segment(configuration), segment(name), fnv64(&lower))
}

/// One delivery: `<run prefix>/<phase>/<target>-<hash of the target>`. The readable segment is
/// lossy (case, punctuation, length): the hash keeps targets such as "Team Web" and "team.web"
/// apart.
pub fn delivery(run_id: &str, configuration: &str, phase: &str, target: &str) -> String {
    format!("{}/{}/{}-{:08x}", run_prefix(run_id, configuration), segment(phase), segment(target), fnv64(target) as u32)
}

/// The ledger's run identity of one period's compliance digests (`digest/2026-W49`): one
/// delivery per period, route, channel and owner, however often the timer fires.
pub fn digest_run(period: &str) -> String {
    format!("digest/{period}")
}

/// Prefix of every history record.
pub const HISTORY: &str = "history/";

/// Every history record of one configuration.
pub fn history_prefix(configuration: &str) -> String {
    format!("{HISTORY}{}/", segment(configuration))
}

/// A configuration glob folded as [`segment`] folds names, to skip history folders it cannot
/// match. `None` when the fold cannot be trusted (a pattern past the 80-character cut, or one
/// that folds to nothing): then every folder is read.
pub fn history_folder_glob(glob: &str) -> Option<String> {
    let folded: String = glob
        .chars()
        .map(|c| match c {
            '*' | '?' => c,
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let folded = folded.trim_matches('-');
    (!folded.is_empty() && folded.chars().count() <= 80).then(|| folded.to_owned())
}

/// One run's history record: the ledger's run identity under the configuration's prefix.
pub fn history(run_id: &str, configuration: &str) -> String {
    let run = run_prefix(run_id, configuration);
    format!("{}{}", history_prefix(configuration), run.trim_start_matches(DELIVERIES))
}

/// Every change decision of one configuration.
pub fn approvals_prefix(configuration: &str) -> String {
    format!("approvals/{}-{:08x}/", segment(configuration), fnv64(&configuration.to_ascii_lowercase()) as u32)
}

/// One change decision (a later decision on the same change replaces it).
pub fn approval(configuration: &str, change: &str) -> String {
    format!("{}{}-{:016x}", approvals_prefix(configuration), segment(change), fnv64(&change.to_ascii_lowercase()))
}

/// A run's acknowledgement.
pub fn ack(run_id: &str) -> String {
    format!("acks/{:016x}", fnv64(&run_id.to_ascii_lowercase()))
}

/// Every machine patchwatch powered on for a run.
pub fn power_prefix(run_id: &str) -> String {
    format!("power/{:016x}/", fnv64(&run_id.to_ascii_lowercase()))
}

/// One machine powered on for a run.
pub fn power(run_id: &str, machine: &str) -> String {
    format!("{}{:016x}", power_prefix(run_id), fnv64(&machine.to_ascii_lowercase()))
}

/// An ITSM caller's signed message id, used once (replay protection).
pub fn itsm_seen(caller: &str, message_id: &str) -> String {
    format!("itsm/seen/{}/{:016x}", segment(caller), fnv64(message_id))
}

/// A one-click action link's nonce, recorded when its action is confirmed: a link works once.
pub fn action_used(nonce: &str) -> String {
    format!("actions/used/{:016x}", fnv64(nonce))
}

/// A run re-run from a one-click link: every copy of a message (email, Teams, Slack, each
/// reminder) carries its own link, and only the first confirmed one patches.
pub fn action_rerun(run_id: &str) -> String {
    format!("actions/rerun/{:016x}", fnv64(&run_id.trim().trim_end_matches('/').to_ascii_lowercase()))
}

/// An ITSM caller's request id: a repeated request is a duplicate.
pub fn itsm_request(caller: &str, request_id: &str) -> String {
    format!("itsm/requests/{}/{:016x}", segment(caller), fnv64(request_id))
}

/// Prefix of every silence.
pub const SILENCES: &str = "silences/";

/// One silence (its id is `s-` and 12 hex digits, already a safe segment).
pub fn silence(id: &str) -> String {
    format!("{SILENCES}{}", segment(id))
}

/// Prefix of every saved run-load progress.
pub const LOADS: &str = "loads/";

/// The saved progress of one run's load for one phase (`pre`, `post`).
pub fn load_progress(run_id: &str, phase: &str) -> String {
    format!("{LOADS}{:016x}/{}", fnv64(&run_id.trim().trim_end_matches('/').to_ascii_lowercase()), segment(phase))
}

/// Prefix of every follow-up.
pub const FOLLOWUPS: &str = "followups/";

/// Every follow-up of one run.
pub fn followups_of_run(run_id: &str) -> String {
    format!("{FOLLOWUPS}{:016x}/", fnv64(&run_id.trim().trim_end_matches('/').to_ascii_lowercase()))
}

/// One route's (and owner group's) follow-up of a run.
pub fn followup(run_id: &str, route: &str, group: Option<&str>) -> String {
    let target = format!("{route}\u{1f}{}", group.unwrap_or("")).to_ascii_lowercase();
    format!("{}{}-{:08x}", followups_of_run(run_id), segment(route), fnv64(&target) as u32)
}

/// Prefix of every assignment-alert group (header, members, seal).
pub const ALERT_GROUPS: &str = "alerts/groups/";

/// The group currently open for a configuration and caller (it names the group).
pub fn alert_open(configuration: &str, caller: &str) -> String {
    let who = format!("{}\u{1f}{}", configuration, caller).to_ascii_lowercase();
    format!("alerts/open/{}-{:016x}", segment(configuration), fnv64(&who))
}

/// A group's header (`group`: a name from [`alert_group_name`], or read back from a key).
pub fn alert_group(group: &str) -> String {
    format!("{ALERT_GROUPS}{group}/group")
}

/// A group's name: the configuration, who, and when it opened (unix seconds and a nonce).
pub fn alert_group_name(configuration: &str, caller: &str, opened: i64, nonce: u32) -> String {
    let who = format!("{}\u{1f}{}", configuration, caller).to_ascii_lowercase();
    let mut name = segment(configuration);
    name.truncate(40);
    format!("{}-{:08x}-{opened}-{nonce:08x}", name.trim_end_matches('-'), fnv64(&who) as u32)
}

/// One member of a group: the alert's event id, hashed.
pub fn alert_group_member(group: &str, event: &str) -> String {
    format!("{ALERT_GROUPS}{group}/m-{:016x}", fnv64(event))
}

/// A group's seal: written before its notice is built; a member that finds it sends alone.
pub fn alert_group_sealed(group: &str) -> String {
    format!("{ALERT_GROUPS}{group}/sealed")
}

/// Prefix of every held apply-updates alert.
pub const ALERTS_HELD: &str = "alerts/held/";

/// An apply-updates alert held until its run's summary is known (`key`: the notice's key).
pub fn alert_held(key: &str) -> String {
    format!("{ALERTS_HELD}{:016x}", fnv64(key))
}

/// Prefix of every pending notice.
pub const PENDING_NOTICES: &str = "pending-notices/";

/// A notice kept for another attempt (`key`: the notice's key).
pub fn pending_notice(key: &str) -> String {
    format!("{PENDING_NOTICES}{:016x}", fnv64(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check("deliveries/run-1/post/email").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "a/.hidden", "a b", "a\\b"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(segment("Ring2/Prod ÄÖ"), "ring2-prod");
        assert_eq!(segment("///"), "x");
    }

    #[test]
    fn run_prefix_is_stable_and_safe() {
        let a = run_prefix("/S/X/providers/Microsoft.Maintenance/applyUpdates/20261110220000", "Ring2/Prod");
        let b = run_prefix("/s/x/providers/microsoft.maintenance/applyupdates/20261110220000/", "Ring2/Prod");
        assert_eq!(a, b);
        assert!(check(&a).is_ok(), "{a}");
    }

    #[test]
    fn folded_globs_match_the_folders_names_are_stored_under() {
        for (name, pattern) in
            [("Ring1 (prod)", "Ring1 (prod)"), ("Ring1 (prod)", "*(prod)"), ("(x)y", "(x)*"), ("Ring2-Prod", "ring2-*")]
        {
            let folded = history_folder_glob(pattern).unwrap();
            assert!(
                patchwatch_model::text::glob(&folded, &segment(name)),
                "{pattern} -> {folded} vs {}",
                segment(name)
            );
        }
        assert_eq!(history_folder_glob("()"), None, "folds to nothing: read every folder");
        assert_eq!(history_folder_glob(&"r".repeat(81)), None, "past the cut: read every folder");
    }

    #[test]
    fn every_format_passes_the_check() {
        let run = "/subscriptions/x/providers/Microsoft.Maintenance/applyUpdates/20261110220000";
        for key in [
            delivery(run, "Ring2 Prod", "post", "owners.Team Web"),
            history(run, "Ring2 Prod"),
            approval("Ring2 Prod", "CHG0001"),
            ack(run),
            power(run, "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"),
            itsm_seen("ServiceNow prod", "msg_1"),
            itsm_request("ServiceNow prod", "req-1"),
            action_used("q5mH0Yd3Xz8kP1aB2cD3eF"),
        ] {
            assert!(check(&key).is_ok(), "{key}");
        }
    }
}

#[cfg(test)]
mod alert_key_tests {
    use super::*;

    #[test]
    fn alert_and_pending_keys_pass_the_check() {
        let group = alert_group_name(&"Ring2 Prod ".repeat(20), "alice@contoso.com", 1_795_000_000, 7);
        for key in [
            alert_open("Ring2 Prod", "alice@contoso.com"),
            alert_group(&group),
            alert_group_member(&group, "/subscriptions/x/events/1"),
            alert_group_sealed(&group),
            alert_held("alert:e1:failed"),
            pending_notice("itsm:rerun:1"),
        ] {
            assert!(check(&key).is_ok(), "{key}");
        }
        assert_eq!(alert_open("Ring2", "Alice@contoso.com"), alert_open("ring2", "alice@contoso.com"));
        assert_ne!(alert_open("Ring2", "alice@contoso.com"), alert_open("Ring2", "bob@contoso.com"));
    }
}
