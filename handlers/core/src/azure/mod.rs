//! Azure clients: credential selection and Resource Graph over REST.

pub mod credential;
pub mod resource_graph;
