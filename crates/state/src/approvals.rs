//! Change decisions and acknowledgements received from ITSM systems, kept in the state store.
//!
//! A decision is keyed by configuration and change number, so a later decision on the same
//! change (approved, then rejected) replaces the earlier one and a redelivery changes nothing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    keys,
    store::{StateError, StateStore},
};

/// An approved or rejected change for a configuration and window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeDecision {
    pub change: String,
    /// Configuration name.
    pub configuration: String,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub window_end: OffsetDateTime,
    pub approved: bool,
    /// Who decided, as the ITSM system says.
    pub by: String,
    /// The caller (ITSM system) that told us.
    pub caller: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// When the ITSM system made the decision, if it says: an older decision arriving late
    /// (a retry, out of order) does not replace a newer one.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
}

impl ChangeDecision {
    pub fn covers(&self, start: OffsetDateTime, end: OffsetDateTime) -> bool {
        self.window_start <= start && self.window_end >= end
    }
}

/// A failed run someone has taken ownership of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub run_id: String,
    pub by: String,
    pub caller: String,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What recording a decision did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Stored: new, or replacing a different earlier decision.
    Changed,
    /// The same decision was already stored.
    Unchanged,
    /// A newer decision on the same change is stored; this older one was not.
    Superseded,
}

#[derive(Clone, Debug)]
pub struct Approvals {
    store: Arc<dyn StateStore>,
}

impl Approvals {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    fn prefix(configuration: &str) -> String {
        keys::approvals_prefix(configuration)
    }

    fn key(configuration: &str, change: &str) -> String {
        keys::approval(configuration, change)
    }

    /// Records a decision; an identical one already stored, or an older one, changes nothing.
    pub async fn record(&self, d: &ChangeDecision) -> Result<Recorded, StateError> {
        let key = Self::key(&d.configuration, &d.change);
        let data = serde_json::to_vec(d).map_err(|e| StateError::Unavailable(e.to_string()))?;
        for _ in 0..5 {
            match self.store.get(&key).await? {
                None => {
                    if self.store.create(&key, &data).await?.is_some() {
                        return Ok(Recorded::Changed);
                    }
                }
                Some(v) => {
                    let old = serde_json::from_slice::<ChangeDecision>(&v.data).ok();
                    let same = old.as_ref().is_some_and(|old| {
                        old.approved == d.approved
                            && old.window_start == d.window_start
                            && old.window_end == d.window_end
                    });
                    let stale = old
                        .as_ref()
                        .is_some_and(|old| matches!((old.decided_at, d.decided_at), (Some(o), Some(n)) if n < o));
                    if same {
                        return Ok(Recorded::Unchanged);
                    }
                    if stale {
                        return Ok(Recorded::Superseded);
                    }
                    if self.store.replace(&key, &data, &v.etag).await?.is_some() {
                        return Ok(Recorded::Changed);
                    }
                }
            }
        }
        Err(StateError::Unavailable(format!("{key}: too many concurrent writers")))
    }

    /// Decisions for a configuration whose window covers `start`–`end`, newest first.
    pub async fn covering(
        &self,
        configuration: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Vec<ChangeDecision>, StateError> {
        let mut out = Vec::new();
        for key in self.store.list(&Self::prefix(configuration)).await? {
            if let Some(v) = self.store.get(&key).await?
                && let Ok(d) = serde_json::from_slice::<ChangeDecision>(&v.data)
                && d.configuration.eq_ignore_ascii_case(configuration)
                && d.covers(start, end)
            {
                out.push(d);
            }
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.at));
        Ok(out)
    }

    fn ack_key(run_id: &str) -> String {
        keys::ack(run_id)
    }

    /// Records an acknowledgement; `false` if the run was already acknowledged.
    pub async fn acknowledge(&self, ack: &Acknowledgement) -> Result<bool, StateError> {
        let data = serde_json::to_vec(ack).map_err(|e| StateError::Unavailable(e.to_string()))?;
        Ok(self.store.create(&Self::ack_key(&ack.run_id), &data).await?.is_some())
    }

    pub async fn acknowledgement(&self, run_id: &str) -> Result<Option<Acknowledgement>, StateError> {
        Ok(self.store.get(&Self::ack_key(run_id)).await?.and_then(|v| serde_json::from_slice(&v.data).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStore;
    use time::macros::datetime;

    #[tokio::test]
    async fn decisions_replace_by_change_and_cover_windows() {
        let dir = tempfile::tempdir().unwrap();
        let a = Approvals::new(Arc::new(FileStore::new(dir.path())));
        let mut d = ChangeDecision {
            change: "CHG0001".into(),
            configuration: "Ring1-PreProd".into(),
            window_start: datetime!(2026-11-17 22:00 UTC),
            window_end: datetime!(2026-11-18 02:00 UTC),
            approved: true,
            by: "alice".into(),
            caller: "snow".into(),
            at: datetime!(2026-11-16 10:00 UTC),
            decided_at: Some(datetime!(2026-11-16 09:00 UTC)),
        };
        assert_eq!(a.record(&d).await.unwrap(), Recorded::Changed);
        assert_eq!(a.record(&d).await.unwrap(), Recorded::Unchanged, "the same decision again changes nothing");
        let inside = (datetime!(2026-11-17 22:00 UTC), datetime!(2026-11-18 01:55 UTC));
        assert_eq!(a.covering("ring1-preprod", inside.0, inside.1).await.unwrap().len(), 1);
        assert!(a.covering("Ring1-PreProd", inside.0, datetime!(2026-11-18 03:00 UTC)).await.unwrap().is_empty());
        assert!(a.covering("Ring2-Prod", inside.0, inside.1).await.unwrap().is_empty());
        // An older rejection arriving late does not replace the newer approval.
        let mut late = d.clone();
        late.approved = false;
        late.decided_at = Some(datetime!(2026-11-15 09:00 UTC));
        assert_eq!(a.record(&late).await.unwrap(), Recorded::Superseded);
        d.approved = false;
        d.decided_at = Some(datetime!(2026-11-16 11:00 UTC));
        assert_eq!(a.record(&d).await.unwrap(), Recorded::Changed);
        let found = a.covering("Ring1-PreProd", inside.0, inside.1).await.unwrap();
        assert_eq!(found.len(), 1);
        assert!(!found[0].approved, "the later decision replaced the earlier one");
    }
}
