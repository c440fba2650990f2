//! A whole fleet around the simulated run, for the schedule lint and the compliance digest:
//! machines with their patch settings, maintenance configurations, static assignments and
//! dynamic scopes, assessments with pending patches, and each configuration's earlier runs.
//!
//! The fleet is clean by default. A few dozen hand-made machines and configurations
//! ([`spec::PERSONAS`], [`spec::FIXED`]) each trip one check (or look as if they should and do
//! not), and the answer key lists every finding they cause. Every machine is a function of the
//! seed and its index, so each table is written in one pass without holding the fleet.

mod assess;
mod history;
mod key;
mod machines;
mod rows;
mod spec;
#[cfg(test)]
mod tests;

use std::io::{self, Write};

use time::{Duration, OffsetDateTime, PrimitiveDateTime, Time};

use crate::{
    AnswerKey, Machine, RowWriter, SimulateOptions, SimulatedEvents,
    calendar::{Nth, Recur, Window, Zone, new_year},
    run_name, simulate_run, write_install_results, write_maintenance_resources,
};
use spec::{Cfg, Classes, Expiry, FIXED, FixedConfig, PERSONAS, Persona, Sub};

/// The fleet around the run.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// Machines in the fleet, the run's own included. Raised to what the run and the
    /// hand-made cases need: the run's machines plus 53 (52 with one subscription). All
    /// machines but the run's and 42 hand-made ones are in one dynamic scope (`prod-fleet`):
    /// more than 900 there is a `scope-limit` warning, more than 1,000 an error.
    pub machines: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self { machines: 1000 }
    }
}

/// The events of the simulated run and the answer key of its fleet.
#[derive(Clone, Debug)]
pub struct SimulatedFleet {
    pub events: SimulatedEvents,
    pub key: AnswerKey,
}

/// Writes the snapshot of `opts`'s run inside a whole fleet to `out`: the run's rows are those
/// [`crate::write_snapshot`] writes for the same options, and the fleet's rows come beside
/// them in the same tables. Fails (`InvalidInput`) when the run's configuration name is one of
/// the fleet's other configurations.
pub fn write_fleet_snapshot(
    opts: &SimulateOptions,
    fleet: &FleetOptions,
    out: &mut impl Write,
) -> io::Result<SimulatedFleet> {
    let (mut rng, mut run, machines) = simulate_run(opts);
    let plan = Plan::new(opts, fleet, &run.subs, machines.len())?;
    // Last month's result of every 20th machine is one of the fleet's earlier runs.
    if let Some(previous) = plan.config(Cfg::Ring2).history.first() {
        run.previous_start = *previous;
        run.previous_run = plan.config(Cfg::Ring2).run_id(*previous);
    }
    let post_time = run.post_time(&machines);
    let fleet = machines::Fleet { plan: &plan, run: &machines };
    let mut w = RowWriter::new(out);
    write_maintenance_resources(&mut w, &run, &machines, post_time)?;
    fleet.write_maintenance(&mut w)?;
    write_install_results(&mut w, &run, &machines, &mut rng)?;
    fleet.write_earlier_results(&mut w)?;
    fleet.write_assessments(&mut w)?;
    fleet.write_resources(&mut w)?;
    w.finish()?;
    Ok(SimulatedFleet { events: run.events(post_time), key: plan.key(&machines) })
}

/// The simulated "now": half a day after the run started.
const AS_OF_AFTER_START: Duration = Duration::hours(12);

/// Everything about the fleet that is not one machine.
#[derive(Debug)]
pub(crate) struct Plan {
    seed: u64,
    subs: Vec<String>,
    as_of: OffsetDateTime,
    /// Indexed by `Cfg as usize`.
    configs: Vec<PlannedConfig>,
    /// The hand-made machines this fleet has (one needs two subscriptions).
    personas: Vec<Persona>,
    run_machines: usize,
    bulk: usize,
}

/// A maintenance configuration with its runs placed in time.
#[derive(Debug)]
pub(crate) struct PlannedConfig {
    cfg: Cfg,
    name: String,
    id: String,
    window: Window,
    reboot: &'static str,
    classes: Classes,
    owner: &'static str,
    /// The earlier runs the snapshot holds, newest first: the last three before the simulated
    /// run (its own configuration) or before the simulated now (the others).
    history: Vec<OffsetDateTime>,
    /// Start of the newest run before the simulated now.
    last_run: Option<OffsetDateTime>,
}

impl PlannedConfig {
    /// The run's id (`correlationId`), lower-cased as ARG writes it.
    fn run_id(&self, start: OffsetDateTime) -> String {
        format!("{}/providers/microsoft.maintenance/applyupdates/{}", self.id.to_ascii_lowercase(), run_name(start))
    }
}

impl Plan {
    fn new(opts: &SimulateOptions, fleet: &FleetOptions, subs: &[String], run_machines: usize) -> io::Result<Self> {
        let as_of = opts.start + AS_OF_AFTER_START;
        let home = &subs[0];
        let mut configs = Vec::with_capacity(spec::CONFIGS.len());
        for cfg in spec::CONFIGS {
            let (name, window, fixed) = match FIXED.iter().find(|f| f.cfg == cfg) {
                Some(f) => (f.name.to_owned(), fixed_window(f, as_of), Some(*f)),
                None => ring(cfg, opts),
            };
            if cfg != Cfg::Ring2 && name.eq_ignore_ascii_case(&opts.configuration) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("configuration {name:?} is one of the simulated fleet's own; choose another name"),
                ));
            }
            let id = format!(
                "/subscriptions/{home}/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/{name}"
            );
            let (history, last_run) = if cfg == Cfg::Ring2 {
                (window.runs_before(opts.start, 3), Some(opts.start))
            } else {
                let h = window.runs_before(as_of, 3);
                let last = h.first().copied();
                (h, last)
            };
            configs.push(PlannedConfig {
                cfg,
                name,
                id,
                window,
                reboot: fixed.map_or("IfRequired", |f| f.reboot),
                classes: fixed.map_or(Classes::Usual, |f| f.classes),
                owner: fixed.map_or("team-platform", |f| f.owner),
                history,
                last_run,
            });
        }
        let distinct = Sub::Fleet.index(subs.len()) != Sub::Apps.index(subs.len());
        let personas: Vec<Persona> = PERSONAS.iter().filter(|p| distinct || !p.needs_other_sub).copied().collect();
        let total = fleet.machines.max(run_machines + personas.len());
        let bulk = total - run_machines - personas.len();
        Ok(Self { seed: opts.seed, subs: subs.to_vec(), as_of, configs, personas, run_machines, bulk })
    }

    fn config(&self, cfg: Cfg) -> &PlannedConfig {
        &self.configs[cfg as usize]
    }

    pub(crate) fn total(&self) -> usize {
        self.run_machines + self.personas.len() + self.bulk
    }

    fn sub(&self, sub: Sub) -> &str {
        &self.subs[sub.index(self.subs.len())]
    }

    fn key(&self, run: &[Machine]) -> AnswerKey {
        key::answer_key(self, run)
    }
}

/// The rings: the simulated run's configuration on the run's own weekday of the month, one week
/// after `Ring1-PreProd` and two after `Ring0-Dev`, all at the run's time of day in UTC.
fn ring(cfg: Cfg, opts: &SimulateOptions) -> (String, Window, Option<FixedConfig>) {
    let (name, weeks, minutes) = match cfg {
        Cfg::Ring0 => ("Ring0-Dev".to_owned(), 2, 180),
        Cfg::Ring1 => ("Ring1-PreProd".to_owned(), 1, 180),
        _ => (opts.configuration.clone(), 0, opts.window_minutes),
    };
    let date = opts.start.date() - Duration::weeks(weeks);
    let window = Window {
        recur: Recur::Monthly(Nth::of(date), date.weekday()),
        zone: Zone::Utc,
        at: Time::from_hms(opts.start.hour(), opts.start.minute(), 0).unwrap_or(Time::MIDNIGHT),
        first: new_year(opts.start.year() - 1),
        expires: None,
        minutes,
    };
    (name, window, None)
}

fn fixed_window(f: &FixedConfig, as_of: OffsetDateTime) -> Window {
    let end_of = |days: i64| {
        PrimitiveDateTime::new(as_of.date() + Duration::days(days), Time::from_hms(23, 59, 0).unwrap_or(Time::MIDNIGHT))
    };
    let expires = match f.expiry {
        Expiry::Never => None,
        Expiry::Far => Some(PrimitiveDateTime::new(
            new_year(as_of.year() + 2) - Duration::days(1),
            Time::from_hms(23, 59, 0).unwrap_or(Time::MIDNIGHT),
        )),
        Expiry::Expired => Some(end_of(-134)),
        Expiry::Soon => Some(end_of(19)),
    };
    Window {
        recur: f.recur,
        zone: f.zone,
        at: Time::from_hms(f.hour, 0, 0).unwrap_or(Time::MIDNIGHT),
        first: new_year(as_of.year() - 1),
        expires,
        minutes: f.minutes,
    }
}
