//! patchwatch-azure: the Azure clients, over one HTTP module ([`http`]: the shared client,
//! status errors, the one `Retry-After` parser, quota headers).
//!
//! - [`credential`]: the identity patchwatch runs as, picked explicitly
//! - [`arm`]: ARM reads, PUTs and actions on typed resource ids
//! - [`resource_graph`]: a run's data from Azure Resource Graph
//! - [`action_group`]: Azure Monitor action groups as read through ARM
//! - [`alert_rules`]: Azure Monitor alert processing rules that mute a run's machines
//! - [`entra`]: Microsoft Entra ID bearer tokens on inbound requests
//! - [`queue`]: Azure Queue Storage, peek only (the poison queue)

pub mod action_group;
pub mod alert_rules;
pub mod arm;
pub mod credential;
pub mod entra;
pub mod http;
pub mod queue;
pub mod resource_graph;

/// Azure Resource Manager in the public cloud.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// The token scope for ARM and Resource Graph.
pub const DEFAULT_ARM_SCOPE: &str = "https://management.azure.com/.default";
