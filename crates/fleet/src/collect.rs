//! Rows to fleet (being written).
