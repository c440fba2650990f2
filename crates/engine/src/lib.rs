//! patchwatch-engine: what patchwatch does with an event.
//!
//! - [`config`]: configuration, read once at start-up (environment and the routing file)
//! - [`pipeline`]: event → run data → summary → routing plan → notifications, with the
//!   control steps around a run ([`control`]: gates, cancel, power)
//! - [`notifier`]: the one way anything is sent: a ledger claim, then mail or a channel
//! - [`mail`] and [`channels`]: the transports behind the notifier
//! - [`links`]: signed, expiring, single-use one-click action links (acknowledge, re-run, snooze)
//! - [`source`]: where run data comes from (a snapshot or Resource Graph)
//! - [`reminders`]: follow-ups of failed runs until someone owns them (reminders, escalation)

pub mod channels;
pub mod compliance;
pub mod config;
pub mod control;
pub mod inhibit;
pub mod links;
pub mod mail;
pub mod notifier;
pub mod pipeline;
pub mod reminders;
pub mod source;
pub mod undelivered;
