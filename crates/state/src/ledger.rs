//! The delivery ledger: exactly-once notifications in effect under at-least-once delivery.
//!
//! One record per (run, phase, delivery target). A sender first claims the record (atomic
//! create, or compare-and-swap over an expired lease or a failed attempt), sends, then commits
//! the outcome with a compare-and-swap on the version it claimed. A duplicate event finds the
//! record sent and sends nothing; a crashed sender's claim expires after the lease and the next
//! delivery takes it over.

use std::{future::Future, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use patchwatch_model::{
    failure::{MIN_RETRY, STATE_RETRY},
    resource_id::last_segment,
    text::fnv64,
};

use crate::{
    keys,
    store::{StateError, StateStore, Versioned},
};

/// The ledger target that marks a run and phase as fully delivered.
pub const ALL_TARGETS: &str = "all-notifications";

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Someone is sending; valid until `lease_until`.
    Claimed,
    /// The last attempt failed transiently; the next delivery of the event retries.
    Pending,
    Sent,
    /// Refused for good (for example SMTP 550); never retried.
    Failed,
    /// Not sent: a silence matched it (`detail` names the silence, its author and end).
    /// Settled: nothing silenced is replayed when the silence ends.
    Silenced,
    /// Not sent on its own: folded into another message (`detail` says which). Settled.
    Inhibited,
}

impl DeliveryState {
    /// The word `patchwatch deliveries` shows.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryState::Claimed => "sending",
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Silenced => "silenced",
            DeliveryState::Inhibited => "inhibited",
        }
    }

    /// Settled deliveries are never acted on again.
    pub fn is_settled(self) -> bool {
        matches!(self, DeliveryState::Sent | DeliveryState::Failed | DeliveryState::Silenced | DeliveryState::Inhibited)
    }
}

/// One delivery's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub run_id: String,
    pub configuration: String,
    pub phase: String,
    pub target: String,
    pub state: DeliveryState,
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub subject: Option<String>,
    /// Where it went (recipients or outbox path).
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The result of trying to claim a delivery.
#[derive(Debug)]
pub enum Claim {
    /// Ours to send; commit with [`Ledger::finish`].
    Claimed(Token),
    AlreadySent(DeliveryRecord),
    /// Refused for good, silenced or inhibited: settled without a send.
    FailedForGood(DeliveryRecord),
    /// Another sender holds the claim until the given time.
    Busy {
        until: OffsetDateTime,
    },
}

/// Proof of a claim: the record and the version it was written at.
#[derive(Debug)]
pub struct Token {
    key: String,
    etag: String,
    pub record: DeliveryRecord,
}

impl Token {
    /// A stable hash of the delivery's key: the same for every attempt at this delivery, so a
    /// receiver can de-duplicate (Standard Webhooks `webhook-id`).
    pub fn id_hash(&self) -> String {
        format!("{:016x}", fnv64(&self.key))
    }
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Finish {
    Sent {
        subject: String,
        detail: String,
    },
    Retry {
        error: String,
    },
    Failed {
        error: String,
    },
    /// Deliberately not sent: a silence matched (`detail`: which, by whom, until when).
    Silenced {
        subject: String,
        detail: String,
    },
    /// Deliberately not sent on its own: folded into another message (`detail`: which).
    Inhibited {
        subject: String,
        detail: String,
    },
}

/// A clock, injectable so tests can stand inside or after a lease or grace period.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// What [`Ledger::once`] did.
#[derive(Debug)]
pub enum Once<T> {
    /// This call claimed the delivery and acted; the act step's value.
    Acted(T),
    /// An earlier attempt settled it (sent, or refused for good): its record.
    Settled(Box<DeliveryRecord>),
    /// Another sender holds the claim: ask again after this long.
    Busy { retry_after: Duration },
}

/// What identifies a delivery.
#[derive(Clone, Debug)]
pub struct DeliveryId<'a> {
    pub run_id: &'a str,
    pub configuration: &'a str,
    pub phase: &'a str,
    pub target: &'a str,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    store: Arc<dyn StateStore>,
    lease: Duration,
    owner: String,
}

static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Ledger {
    pub fn new(store: Arc<dyn StateStore>, lease: Duration) -> Self {
        let owner = format!(
            "{}-{:x}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 ^ fnv64(&format!("{:p}", &store))
        );
        Self { store, lease, owner }
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn key(id: &DeliveryId<'_>) -> String {
        keys::delivery(id.run_id, id.configuration, id.phase, id.target)
    }

    /// The current record of a delivery, if any.
    pub async fn status(&self, id: &DeliveryId<'_>) -> Result<Option<DeliveryRecord>, StateError> {
        Ok(self.store.get(&Self::key(id)).await?.and_then(|v| parse(&v)))
    }

    /// Claims a delivery for sending, unless it is sent, failed for good, or claimed by someone
    /// whose lease has not run out.
    pub async fn claim(&self, id: &DeliveryId<'_>, now: OffsetDateTime) -> Result<Claim, StateError> {
        let key = Self::key(id);
        let lease_until = now + self.lease;
        // One owner per claim attempt: concurrent requests in one process are rivals too, and
        // only a retried write of this very attempt may find its own record.
        let owner = format!("{}-{}", self.owner, CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        // Each round either wins or observes someone else's write; a few rounds settle any race.
        for _ in 0..8 {
            match self.store.get(&key).await? {
                None => {
                    let record = DeliveryRecord {
                        run_id: id.run_id.to_owned(),
                        configuration: id.configuration.to_owned(),
                        phase: id.phase.to_owned(),
                        target: id.target.to_owned(),
                        state: DeliveryState::Claimed,
                        owner: owner.clone(),
                        lease_until,
                        attempts: 1,
                        updated: now,
                        sent_at: None,
                        subject: None,
                        detail: None,
                        error: None,
                    };
                    if let Some(etag) = self.store.create(&key, &encode(&record)).await? {
                        return Ok(Claim::Claimed(Token { key, etag, record }));
                    }
                }
                Some(current) => {
                    let record = match parse(&current) {
                        Some(r) => r,
                        None => {
                            warn!(key = %key, "Unreadable delivery record; taking it over.");
                            self.fresh_record(id, now)
                        }
                    };
                    match record.state {
                        DeliveryState::Sent => return Ok(Claim::AlreadySent(record)),
                        DeliveryState::Failed | DeliveryState::Silenced | DeliveryState::Inhibited => {
                            return Ok(Claim::FailedForGood(record));
                        }
                        // Our own claim (a retried write whose answer was lost) is still ours.
                        DeliveryState::Claimed if record.lease_until > now && record.owner != owner => {
                            return Ok(Claim::Busy { until: record.lease_until });
                        }
                        DeliveryState::Claimed | DeliveryState::Pending => {
                            if record.state == DeliveryState::Claimed {
                                warn!(key = %key, previous_owner = %record.owner, "Claim expired; taking the delivery over.");
                            }
                            let mut next = record;
                            next.state = DeliveryState::Claimed;
                            next.owner.clone_from(&owner);
                            next.lease_until = lease_until;
                            next.attempts += 1;
                            next.updated = now;
                            if let Some(etag) = self.store.replace(&key, &encode(&next), &current.etag).await? {
                                return Ok(Claim::Claimed(Token { key, etag, record: next }));
                            }
                        }
                    }
                }
            }
        }
        Err(StateError::Unavailable(format!("{key}: too much contention claiming the delivery")))
    }

    /// The one delivery protocol: claim → act → commit. Claims `id`; if the claim is ours, runs
    /// `act` (which gets the token, for its stable id) and records the [`Finish`] it returns.
    /// A delivery already settled is not acted on again, and a busy claim is never waited on
    /// here: the caller's upstream retries after [`Once::Busy`]'s wait (the holder's lease, 1 to
    /// 30 seconds: a live holder usually finishes well inside it, a dead one's lease runs out).
    /// A commit that fails after the act is logged, not returned: the act happened, and a
    /// redelivery after the lease finds the record pending or takes the claim over.
    pub async fn once<T, Fut>(
        &self,
        id: &DeliveryId<'_>,
        clock: &Clock,
        act: impl FnOnce(&Token) -> Fut,
    ) -> Result<Once<T>, StateError>
    where
        Fut: Future<Output = (Finish, T)>,
    {
        let now = clock();
        let token = match self.claim(id, now).await? {
            Claim::Claimed(token) => token,
            Claim::AlreadySent(record) | Claim::FailedForGood(record) => return Ok(Once::Settled(Box::new(record))),
            Claim::Busy { until } => return Ok(Once::Busy { retry_after: busy_wait(until, now) }),
        };
        let (finish, value) = act(&token).await;
        match self.finish(token, finish, clock()).await {
            Ok(true) => {}
            Ok(false) => warn!(target = id.target, "The claim expired while acting; another instance may act again."),
            Err(e) => {
                tracing::error!(target = id.target, error = %e, "The outcome could not be recorded in the state store.")
            }
        }
        Ok(Once::Acted(value))
    }

    /// Records how a claimed attempt ended. `Ok(false)` means the claim was lost (its lease ran
    /// out and another sender took over) and nothing was written.
    pub async fn finish(&self, token: Token, finish: Finish, now: OffsetDateTime) -> Result<bool, StateError> {
        let mut record = token.record;
        record.updated = now;
        match finish {
            Finish::Sent { subject, detail } => {
                record.state = DeliveryState::Sent;
                record.sent_at = Some(now);
                record.subject = Some(subject);
                record.detail = Some(detail);
                record.error = None;
            }
            Finish::Retry { error } => {
                record.state = DeliveryState::Pending;
                record.error = Some(error);
            }
            Finish::Failed { error } => {
                record.state = DeliveryState::Failed;
                record.error = Some(error);
            }
            Finish::Silenced { subject, detail } => settle(&mut record, DeliveryState::Silenced, subject, detail),
            Finish::Inhibited { subject, detail } => settle(&mut record, DeliveryState::Inhibited, subject, detail),
        }
        // The send already happened: a passing store error must not leave the claim hanging.
        let data = encode(&record);
        let mut attempt = 0;
        loop {
            match self.store.replace(&token.key, &data, &token.etag).await {
                Ok(written) => return Ok(written.is_some()),
                Err(e) if attempt >= 2 => return Err(e),
                Err(e) => {
                    attempt += 1;
                    warn!(error = %e, attempt, "Recording the delivery failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                }
            }
        }
    }

    /// Every delivery record, or those of runs whose id or name contains `run`.
    pub async fn list(&self, run: Option<&str>) -> Result<Vec<DeliveryRecord>, StateError> {
        let mut out = Vec::new();
        for key in self.store.list(keys::DELIVERIES).await? {
            if let Some(record) = self.store.get(&key).await?.and_then(|v| parse(&v)) {
                let wanted = run.is_none_or(|r| {
                    let r = r.to_ascii_lowercase();
                    record.run_id.to_ascii_lowercase().contains(&r) || key.contains(&r)
                });
                if wanted {
                    out.push(record);
                }
            }
        }
        out.sort_by_key(|r| r.updated);
        Ok(out)
    }

    /// Puts the run's deliveries that failed for good back to pending (after the operator fixed
    /// the cause), and clears its "every notification delivered" marks, so the next delivery of
    /// the event retries exactly those. Returns how many were reset.
    pub async fn retry_failed(&self, run: &str) -> Result<usize, StateError> {
        let run = run.trim().trim_end_matches('/').to_ascii_lowercase();
        let mut reset = 0;
        for key in self.store.list(keys::DELIVERIES).await? {
            let Some(current) = self.store.get(&key).await? else { continue };
            let Some(mut record) = parse(&current) else { continue };
            // Exactly this run: its full id, or its name (the id's last segment).
            let id = record.run_id.trim_end_matches('/').to_ascii_lowercase();
            if run.is_empty() || (id != run && last_segment(&id) != run) {
                continue;
            }
            if record.target == ALL_TARGETS {
                self.store.delete(&key, Some(&current.etag)).await?;
            } else if record.state == DeliveryState::Failed {
                record.state = DeliveryState::Pending;
                if self.store.replace(&key, &encode(&record), &current.etag).await?.is_some() {
                    reset += 1;
                }
            }
        }
        Ok(reset)
    }

    fn fresh_record(&self, id: &DeliveryId<'_>, now: OffsetDateTime) -> DeliveryRecord {
        DeliveryRecord {
            run_id: id.run_id.to_owned(),
            configuration: id.configuration.to_owned(),
            phase: id.phase.to_owned(),
            target: id.target.to_owned(),
            state: DeliveryState::Pending,
            owner: String::new(),
            lease_until: now,
            attempts: 0,
            updated: now,
            sent_at: None,
            subject: None,
            detail: None,
            error: None,
        }
    }
}

/// A delivery deliberately not sent: why is its detail.
fn settle(record: &mut DeliveryRecord, state: DeliveryState, subject: String, detail: String) {
    record.state = state;
    record.subject = Some(subject);
    record.detail = Some(detail);
    record.error = None;
}

/// How long to wait on a claim someone else holds: until its lease ends, between 1 and 30 s.
fn busy_wait(until: OffsetDateTime, now: OffsetDateTime) -> Duration {
    Duration::try_from(until - now).unwrap_or(Duration::ZERO).clamp(MIN_RETRY, STATE_RETRY)
}

fn encode(record: &DeliveryRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

fn parse(v: &Versioned) -> Option<DeliveryRecord> {
    serde_json::from_slice(&v.data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStore;
    use time::macros::datetime;

    fn id() -> DeliveryId<'static> {
        DeliveryId {
            run_id: "/s/x/providers/microsoft.maintenance/applyupdates/20261110220000",
            configuration: "Ring2",
            phase: "post",
            target: "email",
        }
    }

    const T0: OffsetDateTime = datetime!(2026-11-10 23:00 UTC);

    #[tokio::test]
    async fn claim_send_then_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Arc::new(FileStore::new(dir.path())), Duration::from_secs(60));
        let Claim::Claimed(token) = ledger.claim(&id(), T0).await.unwrap() else { panic!("first claim must win") };
        assert!(matches!(ledger.claim(&id(), T0).await.unwrap(), Claim::Busy { .. }));
        let sent = Finish::Sent { subject: "s".into(), detail: "d".into() };
        assert!(ledger.finish(token, sent, T0).await.unwrap());
        assert!(matches!(ledger.claim(&id(), T0).await.unwrap(), Claim::AlreadySent(_)));
        assert_eq!(ledger.list(Some("20261110220000")).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn expired_claim_is_taken_over_and_the_old_owner_cannot_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn StateStore> = Arc::new(FileStore::new(dir.path()));
        let crashed = Ledger::new(store.clone(), Duration::from_secs(60));
        let next = Ledger::new(store, Duration::from_secs(60));
        let Claim::Claimed(old) = crashed.claim(&id(), T0).await.unwrap() else { panic!() };
        let later = T0 + Duration::from_secs(61);
        let Claim::Claimed(new) = next.claim(&id(), later).await.unwrap() else {
            panic!("expired claim must be taken over")
        };
        assert_eq!(new.record.attempts, 2);
        assert!(!crashed.finish(old, Finish::Sent { subject: "s".into(), detail: "d".into() }, later).await.unwrap());
        assert!(next.finish(new, Finish::Retry { error: "smtp down".into() }, later).await.unwrap());
        let Claim::Claimed(again) = next.claim(&id(), later).await.unwrap() else { panic!("pending is retried") };
        assert!(next.finish(again, Finish::Failed { error: "550".into() }, later).await.unwrap());
        assert!(matches!(next.claim(&id(), later).await.unwrap(), Claim::FailedForGood(_)));
        assert_eq!(next.retry_failed("20261110220000").await.unwrap(), 1);
        assert!(matches!(next.claim(&id(), later).await.unwrap(), Claim::Claimed(_)), "reset deliveries are retried");
    }

    fn clock_at(t: OffsetDateTime) -> Clock {
        Arc::new(move || t)
    }

    #[tokio::test]
    async fn once_acts_once_and_reports_the_settled_record_after() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Arc::new(FileStore::new(dir.path())), Duration::from_secs(60));
        let clock = clock_at(T0);
        let sent = || Finish::Sent { subject: "s".into(), detail: "to ops".into() };
        let first = ledger
            .once(&id(), &clock, |t| {
                let hash = t.id_hash();
                async move { (sent(), hash) }
            })
            .await
            .unwrap();
        let Once::Acted(hash) = first else { panic!("the first call acts") };
        assert_eq!(hash.len(), 16);
        let mut acted = false;
        let again = ledger
            .once(&id(), &clock, |_| {
                acted = true;
                async { (sent(), ()) }
            })
            .await
            .unwrap();
        assert!(!acted, "a settled delivery is not acted on again");
        let Once::Settled(record) = again else { panic!("the second call finds the record") };
        assert_eq!((record.state, record.detail.as_deref()), (DeliveryState::Sent, Some("to ops")));
    }

    #[tokio::test]
    async fn once_retries_after_a_transient_finish_and_never_after_a_permanent_one() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Arc::new(FileStore::new(dir.path())), Duration::from_secs(60));
        let clock = clock_at(T0);
        let retry = ledger.once(&id(), &clock, |_| async { (Finish::Retry { error: "503".into() }, 1) }).await.unwrap();
        assert!(matches!(retry, Once::Acted(1)));
        let failed =
            ledger.once(&id(), &clock, |_| async { (Finish::Failed { error: "550".into() }, 2) }).await.unwrap();
        assert!(matches!(failed, Once::Acted(2)), "a pending delivery is acted on again");
        let after = ledger.once(&id(), &clock, |_| async { (Finish::Retry { error: "x".into() }, 3) }).await.unwrap();
        let Once::Settled(record) = after else { panic!("failed for good is settled") };
        assert_eq!(record.state, DeliveryState::Failed);
    }

    #[tokio::test]
    async fn once_does_not_wait_on_a_busy_claim() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Arc::new(FileStore::new(dir.path())), Duration::from_secs(600));
        let Claim::Claimed(_held) = ledger.claim(&id(), T0).await.unwrap() else { panic!() };
        let busy =
            ledger.once(&id(), &clock_at(T0), |_| async { (Finish::Retry { error: "x".into() }, ()) }).await.unwrap();
        let Once::Busy { retry_after } = busy else { panic!("a held claim is busy") };
        assert_eq!(retry_after, STATE_RETRY, "a long lease is re-checked within 30 s");
        let near_end = T0 + Duration::from_secs(599);
        let busy = ledger
            .once(&id(), &clock_at(near_end), |_| async { (Finish::Retry { error: "x".into() }, ()) })
            .await
            .unwrap();
        assert!(matches!(busy, Once::Busy { retry_after } if retry_after == MIN_RETRY));
    }

    #[tokio::test]
    async fn targets_that_read_alike_are_separate_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Arc::new(FileStore::new(dir.path())), Duration::from_secs(60));
        let long_a = "x".repeat(200);
        let long_b = format!("{long_a}y");
        for target in ["owners.owners.team.web", "owners.owners.Team Web", long_a.as_str(), long_b.as_str()] {
            let id = DeliveryId { target, ..id() };
            assert!(matches!(ledger.claim(&id, T0).await.unwrap(), Claim::Claimed(_)), "{target} collided");
        }
    }
}
