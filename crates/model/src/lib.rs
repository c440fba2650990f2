//! patchwatch-model: what patchwatch knows, with no I/O.
//!
//! - [`resource_id`]: typed ARM ids; [`json`]: strict JSON; [`event`]: Event Grid intake
//! - [`rundata`]: run data and its one row parser; [`summary`]: the honest outcome of a run
//! - [`routing`] and [`settings`]: the parsed configuration file and the routing plan
//! - [`notice`]: notices as data; [`failure`]: transient or permanent, and delivery reports
//! - [`text`]: glob, hash and one-line helpers; [`secret`]: values that never reach a log

pub mod conditions;
pub mod event;
pub mod failure;
pub mod json;
pub mod notice;
pub mod resource_id;
pub mod routing;
pub mod rundata;
pub mod secret;
pub mod settings;
pub mod silence;
pub mod summary;
pub mod text;
