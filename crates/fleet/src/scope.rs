//! Dynamic scopes (being written).
