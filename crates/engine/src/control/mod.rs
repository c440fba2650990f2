//! Control around a run: gates that cancel it before it starts, machines started for it
//! and stopped after it, and its machines' alerts muted while it runs.

pub mod gates;
pub mod power;
pub mod quiet;
pub mod run;
