//! The run's machine list inside a collector: each id stored once, as the run lists it.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::ExpectedMachine;

/// A result that simply succeeded: all a count needs of it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Success {
    pub(super) started: Option<OffsetDateTime>,
    pub(super) finished: Option<OffsetDateTime>,
}

/// One listed machine, and its result while it waits to be counted.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) machine: ExpectedMachine,
    pub(super) success: Option<Success>,
}

/// Keyed by the FNV-1a hash of the lower-cased id, so a 200,000-machine run keeps no second,
/// lower-cased copy of every id; ids whose hashes collide are kept in `collided` and told apart
/// case-insensitively, so a collision costs a scan, never a wrong machine.
#[derive(Debug, Default)]
pub(super) struct Listed {
    by_hash: HashMap<u64, Entry>,
    collided: Vec<Entry>,
}

/// FNV-1a over the ASCII-lower-cased bytes of `id` (no lower-cased copy is made).
pub(super) fn hash_lower(id: &str) -> u64 {
    id.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3))
}

impl Listed {
    pub(super) fn get(&self, key: &str) -> Option<&Entry> {
        match self.by_hash.get(&hash_lower(key)) {
            Some(e) if e.machine.id.eq_ignore_ascii_case(key) => Some(e),
            _ => self.collided.iter().find(|e| e.machine.id.eq_ignore_ascii_case(key)),
        }
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        match self.by_hash.get_mut(&hash_lower(key)) {
            Some(e) if e.machine.id.eq_ignore_ascii_case(key) => Some(e),
            _ => self.collided.iter_mut().find(|e| e.machine.id.eq_ignore_ascii_case(key)),
        }
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Adds `machine` unless the list names it already (the first listing wins).
    pub(super) fn insert(&mut self, machine: ExpectedMachine) {
        if self.contains(&machine.id) {
            return;
        }
        let entry = Entry { machine, success: None };
        match self.by_hash.entry(hash_lower(&entry.machine.id)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.collided.push(entry),
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<Entry> {
        let hash = hash_lower(key);
        if self.by_hash.get(&hash).is_some_and(|e| e.machine.id.eq_ignore_ascii_case(key)) {
            return self.by_hash.remove(&hash);
        }
        let at = self.collided.iter().position(|e| e.machine.id.eq_ignore_ascii_case(key))?;
        Some(self.collided.swap_remove(at))
    }

    /// The lower-cased ids of the machines whose success waits to be counted, with it.
    pub(super) fn waiting(&self) -> Vec<(String, Success)> {
        self.by_hash
            .values()
            .chain(&self.collided)
            .filter_map(|e| Some((e.machine.id.to_ascii_lowercase(), e.success?)))
            .collect()
    }

    /// Every listed machine's [`hash_lower`].
    pub(super) fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_hash.keys().copied().chain(self.collided.iter().map(|e| hash_lower(&e.machine.id)))
    }

    pub(super) fn into_machines(self) -> impl Iterator<Item = ExpectedMachine> {
        self.by_hash.into_values().chain(self.collided).map(|e| e.machine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str) -> ExpectedMachine {
        ExpectedMachine { id: id.to_owned(), resource_group: None }
    }

    #[test]
    fn ids_are_found_case_insensitively_and_the_first_listing_wins() {
        let mut l = Listed::default();
        l.insert(m("/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM1"));
        l.insert(m("/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"));
        let key = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1";
        assert!(l.get(key).unwrap().machine.id.contains("VM1"));
        assert!(l.remove(key).is_some());
        assert!(!l.contains(key));
    }

    #[test]
    fn colliding_hashes_are_told_apart() {
        let mut l = Listed::default();
        // Force a collision: put an entry under the other id's hash slot by hand.
        l.insert(m("/a"));
        let moved = l.by_hash.remove(&hash_lower("/a")).unwrap();
        l.by_hash.insert(hash_lower("/b"), moved);
        l.insert(m("/b"));
        assert_eq!(l.collided.len(), 1);
        assert_eq!(l.get("/B").unwrap().machine.id, "/b");
        assert!(l.remove("/b").is_some());
        assert!(l.get("/b").is_none());
        assert_eq!(l.into_machines().count(), 1);
    }
}
