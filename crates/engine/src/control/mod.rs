//! Control around a run: gates that cancel it before it starts, machines started for it and
//! stopped after it, and change approvals received from ITSM systems.

pub mod approvals;
pub mod gates;
pub mod power;
pub mod run;
pub mod settings;
