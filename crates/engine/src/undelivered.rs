//! Nothing silently dropped: messages patchwatch never processed raise a notice, and notices a
//! background task could not send are sent again.
//!
//! - [`check`] peeks the queue trigger's poison queue (`PATCHWATCH_POISON_QUEUE`, never
//!   dequeued: the operator decides) and lists Event Grid's dead-letter container
//!   (`PATCHWATCH_DEADLETTER_CONTAINER`): one critical `undelivered` notice per message or blob,
//!   sent once ever (the ledger key is the message id or blob name). Notice routes
//!   (`match = { phase = "notice", notice = ["undelivered"] }`) choose the channels; else `[alerts] notify`; else
//!   `PATCHWATCH_MAIL_TO`.
//! - [`retry_pending`] sends the notices kept by [`keep_pending`] again (the ledger keeps each
//!   once) and forgets them once settled.
//!
//! The reminders timer calls [`check`], which also runs [`retry_pending`].

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use patchwatch_azure::queue::{MAX_PEEK, QueueClient, QueueMessage};
use patchwatch_model::{
    failure::{Delivered, Deliveries, STATE_RETRY},
    notice::{Notice, NoticeKind, Severity},
    text::one_line,
};
use patchwatch_state::{
    keys,
    store::{StateError, StateStore, blob::BlobStore},
};

use crate::pipeline::Pipeline;

/// At most this many dead-letter blobs are looked at per check (the rest, next time).
const MAX_BLOBS: usize = 500;

/// Where undelivered messages are looked for.
#[derive(Debug, Default)]
pub struct Sources {
    pub poison_queue: Option<QueueClient>,
    pub deadletter: Option<Arc<dyn StateStore>>,
}

impl Sources {
    /// The poison queue and the dead-letter container, from their URLs (each optional).
    pub fn new(
        poison_queue: Option<&str>,
        deadletter: Option<&str>,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Self, String> {
        let poison_queue = poison_queue.map(|u| QueueClient::new(u, credential.clone())).transpose()?;
        let deadletter = deadletter
            .map(|u| BlobStore::new(u, credential).map(|s| Arc::new(s) as Arc<dyn StateStore>))
            .transpose()?;
        Ok(Self { poison_queue, deadletter })
    }

    /// Whether a URL authenticates with the Azure credential (https without a SAS token).
    pub fn needs_credential(url: &str) -> bool {
        url.starts_with("https://") && !url.contains("sig=")
    }
}

/// One notice per message in the poison queue and per blob in the dead-letter container, sent
/// once ever; then the pending notices ([`retry_pending`]).
pub async fn check(p: &Pipeline) -> Deliveries {
    let mut out = Deliveries::default();
    let channels = p.alerts_notify();
    if let Some(queue) = &p.undelivered.poison_queue {
        match queue.peek(MAX_PEEK).await {
            Ok(messages) => {
                if !messages.is_empty() {
                    warn!(queue = %queue.describe(), messages = messages.len(), "Messages in the poison queue.");
                }
                for m in &messages {
                    out.absorb(p.notifier.send_notice(&poison_notice(queue, m), &channels).await);
                }
            }
            Err(e) => {
                warn!(queue = %queue.describe(), error = %e, "The poison queue could not be read; the next check tries again.");
                out.absorb([Delivered::retry("poison-queue", e.to_string(), e.retry_after())]);
            }
        }
    }
    if let Some(container) = &p.undelivered.deadletter {
        out.extend(check_dead_letters(p, container, &channels).await);
    }
    out.extend(retry_pending(p).await);
    out
}

/// One notice per dead-lettered blob, once ever. Every name is walked (the container is never
/// emptied by patchwatch), but a blob already reported is skipped before it is read, and at
/// most [`MAX_BLOBS`] new ones are read per check: the rest come on the next.
async fn check_dead_letters(p: &Pipeline, container: &Arc<dyn StateStore>, channels: &[String]) -> Deliveries {
    let mut out = Deliveries::default();
    let names = match container.list("").await {
        Ok(names) => names,
        Err(e) => {
            warn!(container = %container.describe(), error = %e, "The dead-letter container could not be listed; the next check tries again.");
            out.absorb([Delivered::retry("dead-letter", e.to_string(), STATE_RETRY)]);
            return out;
        }
    };
    let mut new = 0;
    for name in &names {
        // The notice's identity depends only on the blob's name.
        let placeholder = deadletter_notice(&container.describe(), name, None);
        match p.notifier.notice_settled(&placeholder, channels).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                out.absorb([Delivered::retry("dead-letter", e.to_string(), STATE_RETRY)]);
                return out;
            }
        }
        if new == MAX_BLOBS {
            warn!(container = %container.describe(), "More dead-lettered events than one check reads; the next check goes on.");
            break;
        }
        new += 1;
        let body = match container.get(name).await {
            Ok(v) => v.map(|v| v.data),
            Err(e) => {
                warn!(blob = %name, error = %e, "A dead-letter blob could not be read; noticed by name.");
                None
            }
        };
        let notice = deadletter_notice(&container.describe(), name, body.as_deref());
        out.absorb(p.notifier.send_notice(&notice, channels).await);
    }
    if new > 0 {
        warn!(container = %container.describe(), blobs = new, "Dead-lettered events reported.");
    }
    out
}

/// The event a message or blob holds: JSON, or base64 of JSON (queue messages); the first of
/// an array.
fn event_of(text: &[u8]) -> Option<Value> {
    let parse = |b: &[u8]| patchwatch_model::json::from_slice(b, "event").ok();
    let value = parse(text).or_else(|| {
        let trimmed: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD.decode(trimmed).ok().and_then(|d| parse(&d))
    })?;
    match value {
        Value::Array(mut items) if !items.is_empty() => Some(items.swap_remove(0)),
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

fn field(event: Option<&Value>, keys: &[&str]) -> String {
    let Some(obj) = event.and_then(Value::as_object) else { return String::new() };
    for key in keys {
        let mut at = Some(obj);
        let mut value = None;
        for part in key.split('.') {
            value = at.and_then(|o| patchwatch_model::json::get_ci(o, part));
            at = value.and_then(Value::as_object);
        }
        match value {
            Some(Value::String(s)) => return one_line(s),
            Some(v @ Value::Number(_)) => return v.to_string(),
            _ => {}
        }
    }
    String::new()
}

fn with_event(notice: Notice, event: Option<&Value>) -> Notice {
    notice
        .fact("Event id", field(event, &["id"]))
        .fact("Event type", field(event, &["eventType", "type"]))
        .fact("Subject", field(event, &["subject"]))
        .fact("Correlation id", field(event, &["data.correlationId", "data.CorrelationId"]))
}

/// A message the queue trigger gave up on.
pub fn poison_notice(queue: &QueueClient, m: &QueueMessage) -> Notice {
    let event = event_of(m.text.as_bytes());
    let subject = field(event.as_ref(), &["subject"]);
    let what = if subject.is_empty() { format!("message {}", m.id) } else { subject };
    let mut notice = Notice::new(
        NoticeKind::Undelivered,
        format!("undelivered:queue:{}:{}", queue.name(), m.id),
        Severity::Critical,
        format!("Undelivered: a maintenance event in the poison queue ({what})"),
    );
    notice.text = format!(
        "The queue trigger failed on this message until its last attempt (host.json queues.maxDequeueCount), so the Functions host moved it to {}. patchwatch never processed it. Find the failure in the function's logs by its message id, fix the cause, then move the message back to the queue it came from, or delete it. patchwatch only peeks: the message stays where it is.",
        queue.name()
    );
    let notice = notice
        .fact("Where", format!("poison queue {} ({})", queue.name(), queue.describe()))
        .fact("Message id", m.id.clone())
        .fact("Inserted", m.inserted.clone())
        .fact("Reason", "the queue trigger's attempts were used up".to_owned())
        .fact("Attempts", if m.dequeue_count > 0 { m.dequeue_count.to_string() } else { String::new() });
    with_event(notice, event.as_ref())
}

/// An event Event Grid gave up delivering.
pub fn deadletter_notice(container: &str, blob: &str, body: Option<&[u8]>) -> Notice {
    let event = body.and_then(event_of);
    let e = event.as_ref();
    let subject = field(e, &["subject"]);
    let what = if subject.is_empty() { blob.to_owned() } else { subject };
    let mut notice = Notice::new(
        NoticeKind::Undelivered,
        format!("undelivered:deadletter:{blob}"),
        Severity::Critical,
        format!("Undelivered: Event Grid dead-lettered a maintenance event ({what})"),
    );
    notice.text = "Event Grid gave up delivering this event to patchwatch and wrote it to the dead-letter container: patchwatch never processed it. Fix the cause the last delivery outcome names (an unreachable endpoint, a refused token, a rejected body), then deliver the event again (the blob holds it) and delete the blob. patchwatch only reads it.".to_owned();
    let notice = notice
        .fact("Where", format!("dead-letter container {container}"))
        .fact("Blob", blob.to_owned())
        .fact("Reason", field(e, &["deadLetterReason", "deadletterreason"]))
        .fact("Attempts", field(e, &["deliveryAttempts", "deliveryattempts"]))
        .fact("Last outcome", field(e, &["lastDeliveryOutcome", "lastdeliveryoutcome"]))
        .fact("Last attempt", field(e, &["lastDeliveryAttemptTime", "lastdeliveryattempttime"]))
        .fact(
            "Read",
            if body.is_some() && event.is_none() {
                "the blob is not an event".to_owned()
            } else if body.is_none() {
                "the blob could not be read".to_owned()
            } else {
                String::new()
            },
        )
        .fact("Events in the blob", others(body));
    with_event(notice, e)
}

/// Event Grid writes one or more events per dead-letter blob: when there are several, how many
/// and their correlation ids (the facts above describe the first).
fn others(body: Option<&[u8]>) -> String {
    let Some(Value::Array(items)) = body.and_then(|b| patchwatch_model::json::from_slice(b, "event").ok()) else {
        return String::new();
    };
    if items.len() < 2 {
        return String::new();
    }
    let ids: Vec<String> = items
        .iter()
        .map(|i| field(Some(i), &["data.correlationId", "data.CorrelationId", "id"]))
        .filter(|s| !s.is_empty())
        .collect();
    format!("{}: {}", items.len(), ids.join(", "))
}

/// A notice kept for another attempt, and the channels it goes to.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    pub notice: Notice,
    pub channels: Vec<String>,
}

/// Keeps a notice that could not go out yet (a background task's), for [`retry_pending`].
pub async fn keep_pending(p: &Pipeline, notice: &Notice, channels: &[String]) -> Result<(), StateError> {
    let record = Pending { notice: notice.clone(), channels: channels.to_vec() };
    let data = serde_json::to_vec(&record).map_err(|e| StateError::Unavailable(e.to_string()))?;
    let key = keys::pending_notice(&notice.key);
    let store = p.ledger().store();
    if store.create(&key, &data).await?.is_none() {
        info!(key = %key, "The notice was already kept for a retry.");
    }
    Ok(())
}

/// Sends every kept notice again (each channel once, through the ledger); forgets those settled.
pub async fn retry_pending(p: &Pipeline) -> Deliveries {
    let mut out = Deliveries::default();
    let store = p.ledger().store();
    let keys = match store.list(keys::PENDING_NOTICES).await {
        Ok(k) => k,
        Err(e) => {
            out.absorb([Delivered::retry("pending-notices", e.to_string(), STATE_RETRY)]);
            return out;
        }
    };
    for key in keys {
        let current = match store.get(&key).await {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                out.absorb([Delivered::retry("pending-notices", e.to_string(), STATE_RETRY)]);
                continue;
            }
        };
        let Ok(pending) = serde_json::from_slice::<Pending>(&current.data) else {
            warn!(key = %key, "Unreadable pending notice left in place.");
            continue;
        };
        let sent = p.notifier.send_notice(&pending.notice, &pending.channels).await;
        let settled = sent.iter().all(|d| d.retry.is_none());
        out.absorb(sent);
        if settled {
            info!(key = %key, "Pending notice settled.");
            if let Err(e) = store.delete(&key, Some(&current.etag)).await {
                warn!(key = %key, error = %e, "A settled pending notice could not be removed; the ledger keeps it sent once.");
            }
        }
    }
    out
}
