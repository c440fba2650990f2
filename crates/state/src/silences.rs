//! Silences kept in the state store (`silences/<id>`), as `patchwatch silence add|list|expire`
//! and the ITSM `silence` action write them. Matching is the model's
//! ([`patchwatch_model::silence`]); this module stores, lists and ends them.

use std::sync::Arc;

use time::OffsetDateTime;

use patchwatch_model::silence::Silence;

use crate::{
    keys,
    store::{StateError, StateStore},
};

#[derive(Clone, Debug)]
pub struct Silences {
    store: Arc<dyn StateStore>,
}

/// What ending a silence did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expired {
    Ended(Box<Silence>),
    /// It had already ended (by time or by hand): nothing changed.
    AlreadyOver(Box<Silence>),
    NotFound,
}

impl Silences {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// Stores a new silence; `false` when one with the same id exists (a repeated request).
    pub async fn add(&self, s: &Silence) -> Result<bool, StateError> {
        let data = serde_json::to_vec(s).map_err(|e| StateError::Unavailable(e.to_string()))?;
        Ok(self.store.create(&keys::silence(&s.id), &data).await?.is_some())
    }

    /// Every silence stored, newest first. Unreadable records are skipped, not fatal: one bad
    /// record must not stop every delivery.
    pub async fn all(&self) -> Result<Vec<Silence>, StateError> {
        let mut out = Vec::new();
        for key in self.store.list(keys::SILENCES).await? {
            if let Some(v) = self.store.get(&key).await? {
                match serde_json::from_slice::<Silence>(&v.data) {
                    Ok(s) => out.push(s),
                    Err(e) => tracing::warn!(key = %key, error = %e, "Unreadable silence skipped."),
                }
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(out)
    }

    /// The silences in force at `now`.
    pub async fn active(&self, now: OffsetDateTime) -> Result<Vec<Silence>, StateError> {
        Ok(self.all().await?.into_iter().filter(|s| s.is_active(now)).collect())
    }

    /// Deletes silences that ended before `before` (kept a while for `silence list --all`), so
    /// the list every delivery reads stays short. Returns how many went.
    pub async fn prune(&self, before: OffsetDateTime) -> Result<usize, StateError> {
        let mut removed = 0;
        for key in self.store.list(keys::SILENCES).await? {
            let Some(v) = self.store.get(&key).await? else { continue };
            let ended = serde_json::from_slice::<Silence>(&v.data).is_ok_and(|s| s.ends < before);
            if ended && self.store.delete(&key, Some(&v.etag)).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Ends a silence now (compare-and-swap, so two operators ending it agree).
    pub async fn expire(&self, id: &str, by: &str, now: OffsetDateTime) -> Result<Expired, StateError> {
        let key = keys::silence(id);
        for _ in 0..5 {
            let Some(v) = self.store.get(&key).await? else { return Ok(Expired::NotFound) };
            let mut s: Silence = serde_json::from_slice(&v.data).map_err(|e| StateError::Unavailable(e.to_string()))?;
            if s.ends <= now {
                return Ok(Expired::AlreadyOver(Box::new(s)));
            }
            s.ends = now.max(s.starts);
            s.expired_by = Some(by.to_owned());
            let data = serde_json::to_vec(&s).map_err(|e| StateError::Unavailable(e.to_string()))?;
            if self.store.replace(&key, &data, &v.etag).await?.is_some() {
                return Ok(Expired::Ended(Box::new(s)));
            }
        }
        Err(StateError::Unavailable(format!("{key}: too many concurrent writers")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStore;
    use patchwatch_model::silence::Matchers;
    use time::macros::datetime;

    #[tokio::test]
    async fn add_list_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let silences = Silences::new(Arc::new(FileStore::new(dir.path())));
        let now = datetime!(2026-12-02 10:00 UTC);
        let m = Matchers { configuration: Some("Ring2-*".into()), ..Matchers::default() };
        let s = Silence::new(m, now..now + time::Duration::hours(2), "alice", "CHG1", now).unwrap();
        assert!(silences.add(&s).await.unwrap());
        assert!(!silences.add(&s).await.unwrap(), "the same silence twice is stored once");
        assert_eq!(silences.active(now).await.unwrap(), vec![s.clone()]);
        let later = now + time::Duration::minutes(30);
        let Expired::Ended(ended) = silences.expire(&s.id, "bob", later).await.unwrap() else { panic!() };
        assert_eq!((ended.ends, ended.expired_by.as_deref()), (later, Some("bob")));
        assert!(silences.active(later).await.unwrap().is_empty());
        assert!(matches!(silences.expire(&s.id, "bob", later).await.unwrap(), Expired::AlreadyOver(_)));
        assert_eq!(silences.expire("s-nope", "bob", later).await.unwrap(), Expired::NotFound);
        assert_eq!(silences.all().await.unwrap().len(), 1, "an expired silence stays listed");
        assert_eq!(silences.prune(later).await.unwrap(), 0, "not before it ended");
        assert_eq!(silences.prune(later + time::Duration::seconds(1)).await.unwrap(), 1);
        assert!(silences.all().await.unwrap().is_empty());
    }
}
