//! Azure clients: credential selection and Resource Graph over REST.

pub mod arm;
pub mod credential;
pub mod resource_graph;
