//! The fleet's machines, each a function of the seed and its index: the run's own machines
//! first, then the hand-made ones, then the bulk.

use std::io::{self, Write};

use super::{
    Plan,
    spec::{
        ARC_READY, Assess, BIG_SCOPE, Cfg, FLEET_GROUPS, History, Member, Pending, Persona, SCOPES, Settings, Sub,
        VM_READY,
    },
};
use crate::{Fate, Machine, Rng, RowWriter, owner};

/// One machine of the fleet.
#[derive(Clone, Debug)]
pub(crate) struct FleetMachine {
    pub(crate) index: usize,
    /// Identity in the shape the run's rows are written from.
    pub(crate) m: Machine,
    pub(crate) name: String,
    pub(crate) location: &'static str,
    pub(crate) tags: Vec<(&'static str, String)>,
    pub(crate) settings: Settings,
    /// Deallocated (VM) or disconnected (Arc) now.
    pub(crate) off: bool,
    pub(crate) member: Member,
    pub(crate) assess: Assess,
    pub(crate) pending: Pending,
    pub(crate) history: History,
    /// One of the simulated run's machines: its resource row is the run's, with patch settings added.
    pub(crate) in_run: bool,
}

/// Independent streams of one machine's random draws, so each table can redraw what it needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    Identity = 1,
    Assessment = 2,
    NoShow = 3,
    /// Plus the run's position (0 = newest).
    Run = 10,
}

/// The generator of `stream` for machine `index`.
pub(crate) fn machine_rng(seed: u64, index: usize, stream: u64) -> Rng {
    let mut rng =
        Rng(seed ^ 0x00F1_EE70_0000_0000 ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (stream << 48));
    rng.next();
    rng
}

fn machine_id(sub: &str, group: &str, arc: bool, name: &str) -> String {
    let provider = if arc { "Microsoft.HybridCompute/machines" } else { "Microsoft.Compute/virtualMachines" };
    format!("/subscriptions/{sub}/resourceGroups/{group}/providers/{provider}/{name}")
}

impl Plan {
    /// Machine `i` of the fleet (`i < total()`).
    pub(crate) fn machine(&self, i: usize, run: &[Machine]) -> FleetMachine {
        if let Some(m) = run.get(i) {
            return self.run_machine(i, m);
        }
        let j = i - run.len();
        if j < self.personas.len() {
            let mut fm = self.persona_machine(j);
            fm.index = i;
            return fm;
        }
        self.bulk_machine(i)
    }

    fn run_machine(&self, i: usize, m: &Machine) -> FleetMachine {
        let mut rng = machine_rng(self.seed, i, Stream::Identity as u64);
        FleetMachine {
            index: i,
            name: patchwatch_model::resource_id::last_segment(&m.id).to_owned(),
            location: "westeurope",
            tags: vec![("PatchOwner", owner(&m.rg).to_owned()), ("env", "prod".to_owned())],
            settings: if m.arc { ARC_READY } else { VM_READY },
            off: m.fate == Fate::NoResultDeallocated,
            member: Member::Static(Cfg::Ring2),
            assess: Assess::Fresh,
            pending: if rng.below(4) == 0 { Pending::Recent } else { Pending::Nothing },
            history: History::Steady,
            in_run: true,
            m: m.clone(),
        }
    }

    /// Hand-made machine `j` (its index in the fleet is set by [`Plan::machine`]).
    pub(crate) fn persona_machine(&self, j: usize) -> FleetMachine {
        let p: &Persona = &self.personas[j];
        let sub = self.sub(p.sub).to_owned();
        FleetMachine {
            index: self.run_machines + j,
            m: Machine {
                id: machine_id(&sub, p.group, p.arc, p.name),
                rg: p.group.to_owned(),
                sub,
                windows: p.windows,
                arc: p.arc,
                fate: Fate::Succeeded,
                minutes: 0,
            },
            name: p.name.to_owned(),
            location: p.location,
            tags: p.tags.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            settings: p.settings,
            off: p.off,
            member: p.member,
            assess: p.assess,
            pending: p.pending,
            history: p.history,
            in_run: false,
        }
    }

    /// The bulk: clean members of the big scope, spread over its resource groups.
    fn bulk_machine(&self, i: usize) -> FleetMachine {
        let mut rng = machine_rng(self.seed, i, Stream::Identity as u64);
        let windows = rng.below(10) < 7;
        let arc = rng.below(100) < 15;
        let g = rng.below(FLEET_GROUPS.len() as u64) as usize;
        let group = FLEET_GROUPS[g];
        let app = group.trim_start_matches("rg-fleet-");
        let team = ["team-web", "team-apps", "team-data", "team-infra", "team-infra"][g];
        // Tag values are matched case-insensitively.
        let env = if rng.below(100) < 3 { "Prod" } else { "prod" };
        let pending = if rng.below(10) < 3 { Pending::Recent } else { Pending::Nothing };
        let sub = self.sub(Sub::Fleet).to_owned();
        let name = format!("{}-{app}-{i:05}", if windows { "win" } else { "lnx" });
        FleetMachine {
            index: i,
            m: Machine {
                id: machine_id(&sub, group, arc, &name),
                rg: group.to_owned(),
                sub,
                windows,
                arc,
                fate: Fate::Succeeded,
                minutes: 0,
            },
            name,
            location: "westeurope",
            tags: vec![("PatchOwner", team.to_owned()), ("env", env.to_owned())],
            settings: if arc { ARC_READY } else { VM_READY },
            off: false,
            member: Member::Scope(BIG_SCOPE),
            assess: Assess::Fresh,
            pending,
            history: History::Normal,
            in_run: false,
        }
    }

    /// `/subscriptions/<sub>/providers/Microsoft.Maintenance/configurationAssignments/<name>`.
    pub(crate) fn scope_id(&self, s: usize) -> String {
        format!(
            "/subscriptions/{}/providers/Microsoft.Maintenance/configurationAssignments/{}",
            self.sub(SCOPES[s].sub),
            SCOPES[s].name
        )
    }
}

/// The fleet, ready to be written table by table.
#[derive(Debug)]
pub(crate) struct Fleet<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) run: &'a [Machine],
}

impl Fleet<'_> {
    pub(crate) fn machines(&self) -> impl Iterator<Item = FleetMachine> + '_ {
        (0..self.plan.total()).map(|i| self.plan.machine(i, self.run))
    }

    /// Earlier runs' records, each machine's part in them and its static assignment, then the
    /// dynamic scopes.
    pub(crate) fn write_maintenance<W: Write>(&self, w: &mut RowWriter<'_, W>) -> io::Result<()> {
        for c in &self.plan.configs {
            for start in &c.history {
                w.row(&self.plan.run_record(c, *start))?;
            }
        }
        for fm in self.machines() {
            for row in self.plan.applyupdates_rows(&fm) {
                w.row(&row)?;
            }
            if let Member::Static(cfg) = fm.member {
                w.row(&self.plan.static_assignment(&fm, cfg))?;
            }
        }
        for s in 0..SCOPES.len() {
            w.row(&self.plan.scope_row(s))?;
        }
        Ok(())
    }

    /// Results of the earlier runs (last month's result of every 20th machine of the run is
    /// already written beside the run's own).
    pub(crate) fn write_earlier_results<W: Write>(&self, w: &mut RowWriter<'_, W>) -> io::Result<()> {
        for fm in self.machines() {
            for row in self.plan.earlier_results(&fm) {
                w.row(&row)?;
            }
        }
        Ok(())
    }

    pub(crate) fn write_assessments<W: Write>(&self, w: &mut RowWriter<'_, W>) -> io::Result<()> {
        w.table("patchassessmentresources")?;
        for fm in self.machines() {
            for row in self.plan.assessment_rows(&fm) {
                w.row(&row)?;
            }
        }
        Ok(())
    }

    /// Every machine, then the maintenance configurations.
    pub(crate) fn write_resources<W: Write>(&self, w: &mut RowWriter<'_, W>) -> io::Result<()> {
        w.table("resources")?;
        for fm in self.machines() {
            w.row(&self.plan.machine_row(&fm))?;
        }
        for c in &self.plan.configs {
            w.row(&self.plan.configuration_row(c))?;
        }
        Ok(())
    }
}
