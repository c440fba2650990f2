//! The run's machine list inside a collector: each id stored once, as the run lists it.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasherDefault, Hasher},
};

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

/// Keyed by [`hash_lower`] of the id, so a 200,000-machine run keeps no second,
/// lower-cased copy of every id; ids whose hashes collide are kept in `collided` and told apart
/// case-insensitively, so a collision costs a scan, never a wrong machine.
#[derive(Debug, Default)]
pub(super) struct Listed {
    by_hash: HashMap<u64, Entry, Prehashed>,
    collided: Vec<Entry>,
}

/// Maps and sets keyed by [`hash_lower`] values, which need no second hashing.
pub(super) type Prehashed = BuildHasherDefault<IdentityHasher>;
pub(super) type HashSet64 = HashSet<u64, Prehashed>;

/// Passes a `u64` key through: it is a well-mixed hash already. (Unkeyed: ids crafted to collide
/// would make lookups slow, never wrong; ids come from the tenant's own Resource Graph.)
#[derive(Default)]
pub(super) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys come here; anything else is still hashed, if poorly.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A hash of the ASCII-lower-cased bytes of `id`, eight at a time (no lower-cased copy is made):
/// the keeping stage of a snapshot's stream looks up every row's machine, and a byte-at-a-time
/// hash of 100-byte ids was a fifth of its time. In memory only, never stored.
pub(super) fn hash_lower(id: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes = id.as_bytes();
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = (h ^ lower8(u64::from_le_bytes(w))).wrapping_mul(K).rotate_left(31);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ lower8(u64::from_le_bytes(last))).wrapping_mul(K);
    // murmur3's finaliser: every input bit reaches the low bits a hash table indexes by.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Eight bytes ASCII-lower-cased at once: 0x20 is added to each byte in `A..=Z`; other bytes,
/// non-ASCII ones included, are left as they are (as `to_ascii_lowercase` leaves them).
fn lower8(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = w & (0x7f * ONES);
    // Each byte stays under 0x100, so no carry crosses into the next byte.
    let at_least_a = low7 + (0x80 - u64::from(b'A')) * ONES;
    let above_z = low7 + (0x80 - u64::from(b'Z') - 1) * ONES;
    let upper = at_least_a & !above_z & !w & (0x80 * ONES);
    w | (upper >> 2)
}

impl Listed {
    pub(super) fn get(&self, key: &str) -> Option<&Entry> {
        self.get_hashed(hash_lower(key), key)
    }

    /// [`Listed::get`] with `hash` = [`hash_lower`]`(key)` computed already.
    pub(super) fn get_hashed(&self, hash: u64, key: &str) -> Option<&Entry> {
        match self.by_hash.get(&hash) {
            Some(e) if e.machine.id.eq_ignore_ascii_case(key) => Some(e),
            _ if self.collided.is_empty() => None,
            _ => self.collided.iter().find(|e| e.machine.id.eq_ignore_ascii_case(key)),
        }
    }

    /// [`Listed::get_hashed`], mutable.
    pub(super) fn get_mut_hashed(&mut self, hash: u64, key: &str) -> Option<&mut Entry> {
        match self.by_hash.get_mut(&hash) {
            Some(e) if e.machine.id.eq_ignore_ascii_case(key) => Some(e),
            _ => self.collided.iter_mut().find(|e| e.machine.id.eq_ignore_ascii_case(key)),
        }
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Adds `machine` unless the list names it already (the first listing wins).
    #[cfg(test)]
    pub(super) fn insert(&mut self, machine: ExpectedMachine) {
        self.insert_hashed(hash_lower(&machine.id), machine);
    }

    /// [`Listed::insert`] with `hash` = [`hash_lower`] of the machine's id computed already.
    pub(super) fn insert_hashed(&mut self, hash: u64, machine: ExpectedMachine) {
        if self.get_hashed(hash, &machine.id).is_some() {
            return;
        }
        let entry = Entry { machine, success: None };
        match self.by_hash.entry(hash) {
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
    fn hashes_ignore_ascii_case_only() {
        let ids = [
            "",
            "a",
            "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM-01",
            "@[\\]^_`{|}~ AZaz09 ÄÖÜ é ǅ Σ \u{7f}\u{80}",
            "exactly8",
            "exactly16bytes!!",
        ];
        for id in ids {
            assert_eq!(hash_lower(id), hash_lower(&id.to_ascii_lowercase()), "{id}");
            assert_eq!(hash_lower(id), hash_lower(&id.to_ascii_uppercase()), "{id}");
            for b in 0..=255u8 {
                assert_eq!(lower8(u64::from(b) << 24) >> 24, u64::from(b.to_ascii_lowercase()), "{b}");
            }
        }
        // Non-ASCII letters are not folded, as `to_ascii_lowercase` does not fold them.
        assert_ne!(hash_lower("Ä"), hash_lower("ä"));
        // Ids that differ anywhere, or only in length, hash apart.
        let mut seen = HashSet::new();
        for n in 0..20_000 {
            assert!(seen.insert(hash_lower(&format!("/subscriptions/s/resourcegroups/rg/vm{n}"))));
        }
        assert_ne!(hash_lower("ab"), hash_lower("ab\0"));
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
