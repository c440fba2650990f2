//! Control around a run: gates that cancel it before it starts, and machines started for it
//! and stopped after it.

pub mod gates;
pub mod power;
pub mod run;
