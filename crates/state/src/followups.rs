//! Follow-ups: a failed run a route told someone about, kept until it is owned or fixed
//! (`followups/<run>/<route and group>`). The reminders timer reads them, sends each due step
//! once through the ledger, and closes them on an acknowledgement, a resolved incident or a
//! later clean run of the same machines. A snooze pauses the steps.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use patchwatch_model::summary::{Outcome, Verdict};

use crate::{
    keys,
    store::{StateError, StateStore, Versioned},
};

/// A machine that had not succeeded when the run was summarised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenMachine {
    pub id: String,
    pub name: String,
    pub outcome: Outcome,
    /// Its tags, so a silence by tag applies to reminders too.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// Why a follow-up ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `acknowledged by alice via servicenow`, `fixed by run 20261117…`, …
    pub reason: String,
}

/// One route's (and owner's) follow-up of one failed run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub run_id: String,
    pub configuration: String,
    pub configuration_id: String,
    pub route: String,
    /// The owner group of a split route.
    #[serde(default)]
    pub group: Option<String>,
    pub verdict: Verdict,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    /// When the first message went out: reminder steps count from here.
    #[serde(with = "time::serde::rfc3339")]
    pub first_sent: OffsetDateTime,
    /// The route's channels that got the first message.
    pub channels: Vec<String>,
    /// Email recipients of the owner group (empty: the channels' own).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Who was told, as a reminder says it (`owners: dba@example.com`, `oncall-teams`).
    pub told: Vec<String>,
    pub machines: Vec<OpenMachine>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub snoozed_until: Option<OffsetDateTime>,
    #[serde(default)]
    pub snoozed_by: Option<String>,
    #[serde(default)]
    pub closed: Option<Closed>,
}

impl FollowUp {
    pub fn key(&self) -> String {
        keys::followup(&self.run_id, &self.route, self.group.as_deref())
    }

    /// The ledger target of this follow-up's reminders (the route and group).
    pub fn target(&self) -> String {
        match &self.group {
            Some(g) => format!("{}.{g}", self.route),
            None => self.route.clone(),
        }
    }
}

/// Which follow-ups of a run an action is about: a route's (one owner group's), or every one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Which<'a> {
    pub route: Option<&'a str>,
    pub group: Option<&'a str>,
}

impl Which<'_> {
    fn selects(&self, f: &FollowUp) -> bool {
        let route = self.route.is_none_or(|r| r.eq_ignore_ascii_case(&f.route));
        let group = self.group.is_none_or(|g| f.group.as_deref().is_some_and(|fg| fg.eq_ignore_ascii_case(g)));
        route && group
    }
}

#[derive(Clone, Debug)]
pub struct FollowUps {
    store: Arc<dyn StateStore>,
}

fn encode(f: &FollowUp) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(f).map_err(|e| StateError::Unavailable(e.to_string()))
}

fn decode(v: &Versioned) -> Option<FollowUp> {
    serde_json::from_slice(&v.data).ok()
}

impl FollowUps {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// Opens a follow-up; a redelivered event finds it open and changes nothing (`false`).
    pub async fn open(&self, f: &FollowUp) -> Result<bool, StateError> {
        Ok(self.store.create(&f.key(), &encode(f)?).await?.is_some())
    }

    /// Every follow-up, open or closed.
    pub async fn all(&self) -> Result<Vec<FollowUp>, StateError> {
        self.under(keys::FOLLOWUPS).await
    }

    /// The follow-ups of one run.
    pub async fn of_run(&self, run_id: &str) -> Result<Vec<FollowUp>, StateError> {
        self.under(&keys::followups_of_run(run_id)).await
    }

    async fn under(&self, prefix: &str) -> Result<Vec<FollowUp>, StateError> {
        let mut out = Vec::new();
        for key in self.store.list(prefix).await? {
            let Some(v) = self.store.get(&key).await? else { continue };
            match decode(&v) {
                Some(f) => out.push(f),
                None => tracing::warn!(key = %key, "Unreadable follow-up skipped; it reminds no one until fixed."),
            }
        }
        out.sort_by_key(|f| (f.first_sent, f.key()));
        Ok(out)
    }

    /// Changes one follow-up with compare-and-swap; `None` when it does not exist.
    pub async fn update(&self, key: &str, change: impl Fn(&mut FollowUp)) -> Result<Option<FollowUp>, StateError> {
        for _ in 0..5 {
            let Some(v) = self.store.get(key).await? else { return Ok(None) };
            let Some(mut f) = decode(&v) else { return Ok(None) };
            change(&mut f);
            if self.store.replace(key, &encode(&f)?, &v.etag).await?.is_some() {
                return Ok(Some(f));
            }
        }
        Err(StateError::Unavailable(format!("{key}: too many concurrent writers")))
    }

    /// Closes a follow-up (the first reason stays).
    pub async fn close(&self, f: &FollowUp, reason: &str, now: OffsetDateTime) -> Result<(), StateError> {
        self.update(&f.key(), |f| {
            if f.closed.is_none() {
                f.closed = Some(Closed { at: now, reason: reason.to_owned() });
            }
        })
        .await
        .map(|_| ())
    }

    /// Pauses the reminders of a run's follow-ups (those of `which` route and owner group, or
    /// all) until `until`. Returns the follow-ups snoozed; closed ones are left alone.
    pub async fn snooze(
        &self,
        run_id: &str,
        which: Which<'_>,
        until: OffsetDateTime,
        by: &str,
    ) -> Result<Vec<FollowUp>, StateError> {
        let mut out = Vec::new();
        for f in self.of_run(run_id).await? {
            if f.closed.is_some() || !which.selects(&f) {
                continue;
            }
            let changed = self
                .update(&f.key(), |f| {
                    f.snoozed_until = Some(until);
                    f.snoozed_by = Some(by.to_owned());
                })
                .await?;
            out.extend(changed);
        }
        Ok(out)
    }

    /// Deletes one follow-up (the reminders pass prunes those closed long ago).
    pub async fn remove(&self, f: &FollowUp) -> Result<bool, StateError> {
        self.store.delete(&f.key(), None).await
    }

    /// Deletes follow-ups closed before `before` (kept a while for `deliveries` and audits).
    pub async fn prune(&self, before: OffsetDateTime) -> Result<usize, StateError> {
        let mut removed = 0;
        for key in self.store.list(keys::FOLLOWUPS).await? {
            let Some(v) = self.store.get(&key).await? else { continue };
            if decode(&v).and_then(|f| f.closed).is_some_and(|c| c.at < before)
                && self.store.delete(&key, Some(&v.etag)).await?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStore;
    use time::macros::datetime;

    fn followup(route: &str, group: Option<&str>) -> FollowUp {
        FollowUp {
            run_id: "/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/maintenanceconfigurations/ring2/providers/microsoft.maintenance/applyupdates/20261201".into(),
            configuration: "Ring2".into(),
            configuration_id: "/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/maintenanceconfigurations/ring2".into(),
            route: route.into(),
            group: group.map(str::to_owned),
            verdict: Verdict::Failed,
            window_start: datetime!(2026-12-01 22:00 UTC),
            first_sent: datetime!(2026-12-02 00:30 UTC),
            channels: vec!["owners".into()],
            recipients: vec![],
            told: vec!["owners".into()],
            machines: vec![OpenMachine { id: "/x/vm1".into(), name: "vm1".into(), outcome: Outcome::Failed, tags: vec![] }],
            snoozed_until: None,
            snoozed_by: None,
            closed: None,
        }
    }

    #[tokio::test]
    async fn open_snooze_close_prune() {
        let dir = tempfile::tempdir().unwrap();
        let f = FollowUps::new(Arc::new(FileStore::new(dir.path())));
        let (a, b) = (followup("owners", Some("team-web")), followup("oncall", None));
        assert!(f.open(&a).await.unwrap() && f.open(&b).await.unwrap());
        assert!(!f.open(&a).await.unwrap(), "opened once");
        assert_eq!(f.of_run(&a.run_id.to_uppercase()).await.unwrap().len(), 2, "run ids compare case-insensitively");
        let until = datetime!(2026-12-03 00:30 UTC);
        let owners = Which { route: Some("OWNERS"), group: None };
        assert!(
            f.snooze(&a.run_id, Which { group: Some("team-data"), ..owners }, until, "bob").await.unwrap().is_empty()
        );
        let snoozed = f.snooze(&a.run_id, Which { group: Some("Team-Web"), ..owners }, until, "alice").await.unwrap();
        assert_eq!(snoozed.len(), 1);
        assert_eq!(snoozed[0].snoozed_until, Some(until));
        let now = datetime!(2026-12-02 08:00 UTC);
        f.close(&b, "acknowledged by bob", now).await.unwrap();
        f.close(&b, "fixed later", now).await.unwrap();
        let all = f.all().await.unwrap();
        let closed = all.iter().find(|x| x.route == "oncall").unwrap();
        assert_eq!(closed.closed.as_ref().unwrap().reason, "acknowledged by bob", "the first reason stays");
        assert_eq!(f.prune(now).await.unwrap(), 0);
        assert_eq!(f.prune(now + time::Duration::seconds(1)).await.unwrap(), 1);
        assert_eq!(f.all().await.unwrap().len(), 1);
    }
}
