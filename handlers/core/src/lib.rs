//! patchwatch-core: what every patchwatch handler shares.
//!
//! - [`event`]: Event Grid / CloudEvents intake; [`envelope`]: Functions custom-handler envelopes
//! - [`rundata`]: run data from snapshots or Azure Resource Graph ([`azure`])
//! - [`summary`]: the honest outcome of a run; [`render`]: handlebars email; [`mail`]: delivery
//! - [`pipeline`]: event → summary → email; [`runtime`], [`telemetry`], [`error`]: the edges
//! - [`simulate`]: realistic runs for demos, tests and benchmarks

pub mod apps;
pub mod azure;
pub mod channels;
pub mod config;
pub mod control;
pub mod entra;
pub mod envelope;
pub mod error;
pub mod event;
pub mod history;
pub mod json;
pub mod ledger;
pub mod mail;
pub mod notice;
pub mod pipeline;
pub mod render;
pub mod resource_id;
pub mod routing;
pub mod rundata;
pub mod runtime;
pub mod server;
pub mod simulate;
pub mod state;
pub mod summary;
pub mod telemetry;
