//! Progress of run loads that ran out of time: the pages Resource Graph already answered, so the
//! event's next delivery goes on from the next page instead of reading them again.

use std::sync::Arc;

use crate::{
    keys,
    store::{StateError, StateStore},
};

/// One run's saved load progress, by run and phase (the bytes are the loader's own format).
#[derive(Clone, Debug)]
pub struct Loads {
    store: Arc<dyn StateStore>,
}

impl Loads {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    pub async fn get(&self, run_id: &str, phase: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.store.get(&keys::load_progress(run_id, phase)).await?.map(|v| v.data))
    }

    /// Saves `data`, replacing what was saved before (the latest delivery's progress wins: it
    /// holds every page the earlier one held, and more).
    pub async fn save(&self, run_id: &str, phase: &str, data: &[u8]) -> Result<(), StateError> {
        let key = keys::load_progress(run_id, phase);
        for _ in 0..3 {
            let written = match self.store.get(&key).await? {
                Some(v) => self.store.replace(&key, data, &v.etag).await?,
                None => self.store.create(&key, data).await?,
            };
            if written.is_some() {
                return Ok(());
            }
        }
        Err(StateError::Unavailable(format!("{key} kept changing while being saved")))
    }

    /// Forgets the progress of a load that finished.
    pub async fn clear(&self, run_id: &str, phase: &str) -> Result<(), StateError> {
        self.store.delete(&keys::load_progress(run_id, phase), None).await.map(|_| ())
    }
}
