//! patchwatch-host: the edge every handler shares, and nothing else.
//!
//! - [`runtime`]: serve a router on the custom-handler port, or on AWS Lambda
//! - [`server`]: HTTP limits (header and body time, size, requests in flight)
//! - [`envelope`]: Azure Functions custom-handler envelopes
//! - [`error`]: the one HTTP error answer; [`auth`]: the bearer-token extractor
//! - [`telemetry`]: tracing set-up; [`apps`]: the Function Apps patchwatch deploys

pub mod apps;
pub mod auth;
pub mod envelope;
pub mod error;
pub mod runtime;
pub mod server;
pub mod telemetry;
