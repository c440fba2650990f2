//! patchwatch-state: what patchwatch remembers, and where.
//!
//! - [`store`]: a small key/value store with atomic create and compare-and-swap (a directory or
//!   an Azure Blob container)
//! - [`keys`]: every persisted key format, beside the record types it names
//! - [`ledger`]: exactly-once deliveries, and [`ledger::Ledger::once`], the one claim → act →
//!   commit protocol every sender uses
//! - [`history`], [`approvals`], [`power`]: run history, ITSM decisions and acknowledgements,
//!   machines started for a run
//! - [`silences`], [`followups`]: time-boxed silences, and failed runs followed up until owned

pub mod approvals;
pub mod followups;
pub mod history;
pub mod keys;
pub mod ledger;
pub mod loads;
pub mod power;
pub mod silences;
pub mod store;
