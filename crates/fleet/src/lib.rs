//! patchwatch-fleet: the compliance half. What the fleet looks like ([`inventory`], filled from
//! ARG rows by [`collect`]), which machines a dynamic scope takes in ([`scope`]), when each
//! schedule runs next ([`patchwatch_schedule`]), what is wrong with the schedules ([`lint`]), how runs went
//! over time ([`trends`]) and the digest a team receives ([`digest`]). Pure: no I/O.

mod checks;
pub mod collect;
pub mod digest;
mod fix;
pub mod inventory;
pub mod lint;
pub mod scope;
pub mod trends;

pub use inventory::Fleet;
