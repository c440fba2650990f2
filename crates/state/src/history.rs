//! Run history: a compact record of every summarised run, kept for trend and run-over-run
//! features, pruned by age (`PATCHWATCH_HISTORY_DAYS`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use patchwatch_model::{
    summary::{Outcome, RunSummary},
    text::fnv64,
};

use crate::{
    keys,
    store::{StateError, StateStore},
};

/// What is kept of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub configuration: String,
    pub phase: String,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub window_end: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_start: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_finish: Option<OffsetDateTime>,
    pub verdict: String,
    pub total: usize,
    pub patched: usize,
    pub failed: usize,
    pub no_result: usize,
    pub window_exceeded: usize,
    pub reboot_pending: usize,
    /// `[name, outcome]` for every machine that did not succeed; successes are only counted.
    pub machines: Vec<(String, Outcome)>,
    /// `[KB or package, machine count]`.
    pub failed_patches: Vec<(String, usize)>,
    /// The listed machines that succeeded, with or without warnings: the FNV-1a hash of each
    /// lower-cased resource id as 16 hex digits, sorted and concatenated. Machines that simply
    /// succeeded are only counted, except those of open follow-ups (`RunQuery::watch`), which a
    /// post event lists so that this record can close their follow-up.
    #[serde(default)]
    pub succeeded: String,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded: OffsetDateTime,
}

impl RunRecord {
    pub fn from_summary(s: &RunSummary, now: OffsetDateTime) -> Self {
        Self {
            run_id: s.run_id.clone(),
            configuration: s.configuration_name.clone(),
            phase: s.phase.as_str().to_owned(),
            window_start: s.window_start,
            window_end: s.window_end,
            first_start: s.first_start,
            last_finish: s.last_finish,
            verdict: s.verdict.label().to_owned(),
            total: s.counts.total,
            patched: s.counts.patched,
            failed: s.counts.failed,
            no_result: s.counts.no_result,
            window_exceeded: s.counts.window_exceeded,
            reboot_pending: s.counts.reboot_pending,
            machines: s
                .machines
                .iter()
                .filter(|m| m.outcome != Outcome::Succeeded)
                .map(|m| (m.name.clone(), m.outcome))
                .collect(),
            failed_patches: s.failed_patches.iter().map(|p| (p.key.clone(), p.machines.len())).collect(),
            succeeded: succeeded_digest(s),
            recorded: now,
        }
    }
}

/// [`RunRecord::succeeded`] of a summary.
fn succeeded_digest(s: &RunSummary) -> String {
    let mut hashes: Vec<u64> = s
        .machines
        .iter()
        .filter(|m| matches!(m.outcome, Outcome::Succeeded | Outcome::CompletedWithWarnings))
        .map(|m| fnv64(&m.id.to_ascii_lowercase()))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes.iter().map(|h| format!("{h:016x}")).collect()
}

impl RunRecord {
    /// Whether the machine (by resource id) succeeded in this run.
    pub fn succeeded_on(&self, machine_id: &str) -> bool {
        let wanted = format!("{:016x}", fnv64(&machine_id.to_ascii_lowercase()));
        let digest = self.succeeded.as_bytes();
        let count = digest.len() / 16;
        // Sorted fixed-width hex compares like the numbers: a binary search over the chunks.
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match digest[mid * 16..mid * 16 + 16].cmp(wanted.as_bytes()) {
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        false
    }
}

#[derive(Clone, Debug)]
pub struct History {
    store: Arc<dyn StateStore>,
    retention_days: u32,
}

impl History {
    pub fn new(store: Arc<dyn StateStore>, retention_days: u32) -> Self {
        Self { store, retention_days }
    }

    fn key(run_id: &str, configuration: &str) -> String {
        // Same run identity as the ledger, under history/<configuration>/ so one prefix lists a ring.
        keys::history(run_id, configuration)
    }

    /// Stores (or replaces) the record of a post-event summary, then prunes expired records of
    /// the same configuration.
    pub async fn record(&self, record: &RunRecord) -> Result<(), StateError> {
        let key = Self::key(&record.run_id, &record.configuration);
        let data = serde_json::to_vec(record).map_err(|e| StateError::Unavailable(e.to_string()))?;
        match self.store.get(&key).await? {
            None => {
                if self.store.create(&key, &data).await?.is_none() {
                    // Written concurrently by a duplicate: same run, same content.
                    return Ok(());
                }
            }
            Some(v) => {
                self.store.replace(&key, &data, &v.etag).await?;
            }
        }
        self.prune(&record.configuration, record.recorded).await
    }

    /// Records of one configuration, oldest first.
    pub async fn runs(&self, configuration: &str) -> Result<Vec<RunRecord>, StateError> {
        let mut out = Vec::new();
        for key in self.store.list(&keys::history_prefix(configuration)).await? {
            if let Some(v) = self.store.get(&key).await?
                && let Ok(r) = serde_json::from_slice::<RunRecord>(&v.data)
            {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.window_start);
        Ok(out)
    }

    /// The latest run recorded of any configuration matching `glob` that started before `before`.
    pub async fn latest_matching(&self, glob: &str, before: OffsetDateTime) -> Result<Option<RunRecord>, StateError> {
        let mut latest: Option<RunRecord> = None;
        // Keys are `history/<segment(configuration)>/…`: read only the folders the pattern can
        // match (folded the same way), not every run of every configuration.
        let folded = keys::history_folder_glob(glob);
        for key in self.store.list(keys::HISTORY).await? {
            let folder = key.split('/').nth(1).unwrap_or_default();
            if folded.as_ref().is_some_and(|f| !patchwatch_model::text::glob(f, folder)) {
                continue;
            }
            if let Some(v) = self.store.get(&key).await?
                && let Ok(r) = serde_json::from_slice::<RunRecord>(&v.data)
                && patchwatch_model::text::glob(glob, &r.configuration)
                && r.window_start < before
                && latest.as_ref().is_none_or(|l| r.window_start > l.window_start)
            {
                latest = Some(r);
            }
        }
        Ok(latest)
    }

    async fn prune(&self, configuration: &str, now: OffsetDateTime) -> Result<(), StateError> {
        let cutoff = now - time::Duration::days(i64::from(self.retention_days));
        for record in self.runs(configuration).await? {
            if record.window_start < cutoff {
                self.store.delete(&Self::key(&record.run_id, &record.configuration), None).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStore;
    use time::macros::datetime;

    fn record(run: &str, start: OffsetDateTime, recorded: OffsetDateTime) -> RunRecord {
        RunRecord {
            run_id: format!("/s/x/providers/microsoft.maintenance/applyupdates/{run}"),
            configuration: "Ring1-Dev".into(),
            phase: "post".into(),
            window_start: start,
            window_end: start,
            first_start: None,
            last_finish: None,
            verdict: "Succeeded".into(),
            total: 3,
            patched: 3,
            failed: 0,
            no_result: 0,
            window_exceeded: 0,
            reboot_pending: 0,
            machines: vec![("vm1".into(), Outcome::RebootPending)],
            failed_patches: vec![],
            succeeded: String::new(),
            recorded,
        }
    }

    #[test]
    fn succeeded_machines_are_found_by_id() {
        let mut r = record("20261110220000", datetime!(2026-11-10 22:00 UTC), datetime!(2026-11-10 23:00 UTC));
        let mut hashes: Vec<u64> = ["/x/vm2", "/x/vm3", "/y/vm9"].iter().map(|id| fnv64(id)).collect();
        hashes.sort_unstable();
        r.succeeded = hashes.iter().map(|h| format!("{h:016x}")).collect();
        assert!(r.succeeded_on("/X/VM2") && r.succeeded_on("/x/vm3") && r.succeeded_on("/y/vm9"));
        assert!(!r.succeeded_on("/x/vm4") && !r.succeeded_on("vm2"));
        r.succeeded.clear();
        assert!(!r.succeeded_on("/x/vm2"));
    }

    #[tokio::test]
    async fn history_keeps_runs_and_prunes_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(Arc::new(FileStore::new(dir.path())), 30);
        let now = datetime!(2026-11-10 23:00 UTC);
        h.record(&record("20260901220000", datetime!(2026-09-01 22:00 UTC), datetime!(2026-09-01 23:00 UTC)))
            .await
            .unwrap();
        h.record(&record("20261013220000", datetime!(2026-10-13 22:00 UTC), datetime!(2026-10-13 23:00 UTC)))
            .await
            .unwrap();
        assert_eq!(h.runs("Ring1-Dev").await.unwrap().len(), 1, "the September run is past 30 days of October's");
        h.record(&record("20261110220000", datetime!(2026-11-10 22:00 UTC), now)).await.unwrap();
        // Recording the same run again replaces it.
        h.record(&record("20261110220000", datetime!(2026-11-10 22:00 UTC), now)).await.unwrap();
        let runs = h.runs("Ring1-Dev").await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].machines, vec![("vm1".to_owned(), Outcome::RebootPending)]);
    }
}
