//! Azure resource ids, validated before any of them becomes part of an ARM URL.
//!
//! An id from an event, a request or a data row is text an attacker may shape: `..`,
//! `%2e%2e` or `\` segments would let `Url::set_path` resolve it onto another subscription's
//! resource, and patchwatch would send its managed-identity token there. So ARM URLs are built
//! only from a [`ResourceId`], whose segments have each been checked against Azure's naming
//! rules, and each is percent-encoded on its own (see `azure::arm`).

use std::fmt;

/// Why an id was refused (the caller names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(String);

fn err(problem: impl Into<String>) -> IdError {
    IdError(problem.into())
}

/// Longest resource name accepted. ARM documents no single limit for every type; this bounds
/// work and URL length (segments are short in practice) without refusing a real name.
const MAX_NAME: usize = 4096;
/// Resource group names: 1–90 characters (ARM's documented rule).
const MAX_GROUP: usize = 90;

/// A validated ARM resource id: `/subscriptions/{guid}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{type}/{name}…]`
/// with optional nested `providers/{ns}` extension segments, kept as its segments.
///
/// ARM ids are case-insensitive: two ids that differ only in case are equal (and hash alike);
/// the id keeps the case it was given for display and links.
#[derive(Clone)]
pub struct ResourceId {
    segments: Vec<String>,
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.segments.len() == other.segments.len()
            && self.segments.iter().zip(&other.segments).all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

impl Eq for ResourceId {}

impl std::hash::Hash for ResourceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for s in &self.segments {
            s.to_ascii_lowercase().hash(state);
        }
    }
}

impl ResourceId {
    /// Parses and validates an id. Refuses anything that is not plain: empty, `.` or `..`
    /// segments, percent-encoded or backslash forms, and names outside Azure's character rules.
    pub fn parse(id: &str) -> Result<Self, IdError> {
        let rest =
            id.strip_prefix('/').ok_or_else(|| err("expected an Azure resource id starting with /subscriptions/"))?;
        if id.len() > 16 * 1024 {
            return Err(err("is longer than any Azure resource id"));
        }
        let segments: Vec<&str> = rest.split('/').collect();
        for (i, s) in segments.iter().enumerate() {
            check_plain(s).map_err(|p| err(format!("segment {} {p}", i + 1)))?;
        }
        let [subs, sub, groups, group, providers, namespace, ..] = segments.as_slice() else {
            return Err(err("expected /subscriptions/{id}/resourceGroups/{name}/providers/{namespace}/{type}/{name}"));
        };
        if !subs.eq_ignore_ascii_case("subscriptions") {
            return Err(err("expected /subscriptions/ first"));
        }
        if !is_guid(sub) {
            return Err(err(format!("subscription {:?} is not a GUID", shorten(sub))));
        }
        if !groups.eq_ignore_ascii_case("resourceGroups") {
            return Err(err("expected /resourceGroups/ after the subscription"));
        }
        check_group(group)?;
        if !providers.eq_ignore_ascii_case("providers") {
            return Err(err("expected /providers/ after the resource group"));
        }
        check_namespace(namespace)?;
        check_types_and_names(&segments[6..])?;
        Ok(Self { segments: segments.into_iter().map(str::to_owned).collect() })
    }

    /// The segments, each plain (no `/`), in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(String::as_str)
    }

    /// The subscription (a GUID, as `parse` checked).
    pub fn subscription(&self) -> &str {
        self.segments.get(1).map_or("", String::as_str)
    }

    /// The resource group.
    pub fn resource_group(&self) -> &str {
        self.segments.get(3).map_or("", String::as_str)
    }

    /// The last segment: the resource's own name.
    pub fn name(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }

    /// `namespace/type` of the resource itself (the last provider's), lower-cased.
    pub fn resource_type(&self) -> String {
        // Walked by position, as `parse` checked it: a resource may itself be named "providers".
        let mut namespace = 5;
        let mut i = 6;
        let mut pairs = 0;
        while i + 1 < self.segments.len() {
            if pairs > 0 && self.segments[i].eq_ignore_ascii_case("providers") {
                namespace = i + 1;
                pairs = 0;
            } else {
                pairs += 1;
            }
            i += 2;
        }
        let types = self.segments.iter().skip(namespace + 1).step_by(2).map(String::as_str);
        std::iter::once(self.segments.get(namespace).map_or("", String::as_str))
            .chain(types)
            .collect::<Vec<_>>()
            .join("/")
            .to_ascii_lowercase()
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.segments {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({self})")
    }
}

/// A maintenance configuration: `…/providers/Microsoft.Maintenance/maintenanceConfigurations/{name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigurationId(ResourceId);

impl ConfigurationId {
    pub fn parse(id: &str) -> Result<Self, IdError> {
        let r = ResourceId::parse(id)?;
        if r.segments.len() != 8 || r.resource_type() != "microsoft.maintenance/maintenanceconfigurations" {
            return Err(err(
                "expected /subscriptions/{id}/resourceGroups/{name}/providers/Microsoft.Maintenance/maintenanceConfigurations/{name}",
            ));
        }
        Ok(Self(r))
    }
    pub fn resource(&self) -> &ResourceId {
        &self.0
    }
}

/// A run: `{configuration id}/providers/microsoft.maintenance/applyupdates/{yyyyMMddHHmmss}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunId {
    id: ResourceId,
}

impl RunId {
    pub fn parse(id: &str) -> Result<Self, IdError> {
        let r = ResourceId::parse(id)?;
        let s = &r.segments;
        let shape = s.len() == 12
            && s[8].eq_ignore_ascii_case("providers")
            && s[9].eq_ignore_ascii_case("microsoft.maintenance")
            && s[11].len() == 14;
        if !shape || r.resource_type() != "microsoft.maintenance/applyupdates" {
            return Err(err(
                "expected {maintenance configuration id}/providers/microsoft.maintenance/applyupdates/{14 digits}",
            ));
        }
        ConfigurationId::parse(&format!("/{}", s[..8].join("/")))?;
        if !s[11].bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("run name {:?} is not 14 digits (yyyyMMddHHmmss)", s[11])));
        }
        Ok(Self { id: r })
    }
    pub fn resource(&self) -> &ResourceId {
        &self.id
    }
    /// The configuration this run belongs to.
    pub fn configuration(&self) -> ConfigurationId {
        ConfigurationId(ResourceId { segments: self.id.segments[..8].to_vec() })
    }
}

/// A machine patchwatch may power or patch: an Azure VM or an Arc-enabled server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineId(ResourceId);

impl MachineId {
    pub fn parse(id: &str) -> Result<Self, IdError> {
        let r = ResourceId::parse(id)?;
        let kind = r.resource_type();
        if r.segments.len() != 8
            || !(kind == "microsoft.compute/virtualmachines" || kind == "microsoft.hybridcompute/machines")
        {
            return Err(err("expected a Microsoft.Compute/virtualMachines or Microsoft.HybridCompute/machines id"));
        }
        Ok(Self(r))
    }
    pub fn resource(&self) -> &ResourceId {
        &self.0
    }
    pub fn is_arc(&self) -> bool {
        self.0.resource_type() == "microsoft.hybridcompute/machines"
    }
}

/// No empty, `.` or `..` segment; nothing that a URL parser or ARM would decode or re-split.
fn check_plain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    if s == "." || s == ".." {
        return Err("is a dot segment");
    }
    if s.contains('%') {
        return Err("is percent-encoded");
    }
    if s.contains('\\') {
        return Err("contains a backslash");
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or a control character");
    }
    Ok(())
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits (subscription and tenant ids).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The subscription id inside a resource id, if it holds a GUID one.
pub fn subscription_of(resource_id: &str) -> Option<String> {
    let mut parts = resource_id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("subscriptions") {
            return parts.next().filter(|s| is_guid(s)).map(str::to_owned);
        }
    }
    None
}

/// The last non-empty path segment of a resource id: a resource's name, a run's name.
pub fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Resource groups: 1–90 of letters, digits, `_`, `-`, `.`, `(`, `)`; not ending in `.`.
fn check_group(g: &str) -> Result<(), IdError> {
    let ok = g.chars().count() <= MAX_GROUP
        && !g.ends_with('.')
        && g.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'));
    if ok { Ok(()) } else { Err(err(format!("resource group {:?} breaks Azure's naming rules", shorten(g)))) }
}

/// `Microsoft.Compute`: dotted words of ASCII letters and digits.
fn check_namespace(ns: &str) -> Result<(), IdError> {
    let ok = ns.len() <= 128
        && ns.split('.').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()))
        && ns.contains('.');
    if ok {
        Ok(())
    } else {
        Err(err(format!("provider namespace {:?} is not of the form Microsoft.Name", shorten(ns))))
    }
}

/// After the first namespace: `{type}/{name}` pairs, and `providers/{namespace}` extensions.
fn check_types_and_names(rest: &[&str]) -> Result<(), IdError> {
    let mut i = 0;
    let mut pairs = 0;
    while i < rest.len() {
        if rest[i].eq_ignore_ascii_case("providers") && pairs > 0 {
            let ns = rest.get(i + 1).ok_or_else(|| err("ends after /providers/"))?;
            check_namespace(ns)?;
            i += 2;
            continue;
        }
        let (Some(kind), Some(name)) = (rest.get(i), rest.get(i + 1)) else {
            return Err(err("expected a resource type followed by a name"));
        };
        if !kind.bytes().all(|b| b.is_ascii_alphanumeric()) || kind.len() > 128 {
            return Err(err(format!("resource type {:?} is not a plain word", shorten(kind))));
        }
        check_name(name)?;
        pairs += 1;
        i += 2;
    }
    if pairs == 0 {
        return Err(err("names no resource after the provider namespace"));
    }
    Ok(())
}

/// A name given on its own (a machine or configuration named without its id), checked by the
/// same rules as a name inside an id.
pub fn check_resource_name(name: &str) -> Result<(), IdError> {
    check_plain(name).map_err(err)?;
    check_name(name)
}

/// Resource names: ASCII letters and digits, `_`, `-`, `.`, `(`, `)`; not ending in `.` (ARM
/// refuses a trailing period for every type that allows periods). Machines and maintenance
/// configurations allow no other characters; resource groups (checked apart) also allow
/// Unicode letters.
fn check_name(n: &str) -> Result<(), IdError> {
    let ok = n.chars().count() <= MAX_NAME
        && !n.ends_with('.')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'));
    if ok { Ok(()) } else { Err(err(format!("name {:?} breaks Azure's naming rules", shorten(n)))) }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_owned() } else { format!("{}…", s.chars().take(80).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_case_insensitively_and_name_their_parts() {
        let a = ResourceId::parse("/subscriptions/00000000-0000-0000-0000-00000000000A/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM1").unwrap();
        let b = ResourceId::parse("/subscriptions/00000000-0000-0000-0000-00000000000a/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1").unwrap();
        assert_eq!(a, b);
        let state = std::hash::RandomState::new();
        assert_eq!(std::hash::BuildHasher::hash_one(&state, &a), std::hash::BuildHasher::hash_one(&state, &b));
        assert_eq!(
            (a.subscription(), a.resource_group(), a.name()),
            ("00000000-0000-0000-0000-00000000000A", "RG", "VM1")
        );
        assert_eq!(
            a.to_string(),
            "/subscriptions/00000000-0000-0000-0000-00000000000A/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM1"
        );
    }

    const MC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-example/providers/Microsoft.Maintenance/maintenanceConfigurations/mc-example";
    const VM: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1";

    fn run() -> String {
        format!("{MC}/providers/microsoft.maintenance/applyupdates/20230509150000")
    }

    #[test]
    fn plain_ids_parse_and_keep_their_text() {
        let r = RunId::parse(&run()).unwrap();
        assert_eq!(r.resource().to_string(), run());
        assert_eq!(r.configuration().resource().to_string(), MC);
        assert_eq!(r.resource().name(), "20230509150000");
        let m = MachineId::parse(VM).unwrap();
        assert!(!m.is_arc());
        assert!(
            MachineId::parse(&VM.replace("Microsoft.Compute/virtualMachines", "Microsoft.HybridCompute/machines"))
                .unwrap()
                .is_arc()
        );
        assert_eq!(ConfigurationId::parse(MC).unwrap().resource().to_string(), MC);
        let ag = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/microsoft.insights/actionGroups/ops";
        assert_eq!(ResourceId::parse(ag).unwrap().resource_type(), "microsoft.insights/actiongroups");
    }

    /// Every form that a URL parser or a server could resolve to another path.
    pub(crate) const TRAVERSALS: [&str; 8] = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "..\\..", ".", "%252e%252e"];

    #[test]
    fn dot_segments_in_every_form_are_refused() {
        for t in TRAVERSALS {
            let forged = format!(
                "{MC}/providers/microsoft.maintenance/applyupdates/{t}/{t}/{t}/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
            );
            assert!(RunId::parse(&forged).is_err(), "{t}");
            assert!(ConfigurationId::parse(&MC.replace("/rg-example/", &format!("/rg-example/{t}/"))).is_err(), "{t}");
            assert!(MachineId::parse(&VM.replace("/vm-1", &format!("/{t}/vm-1"))).is_err(), "{t}");
            assert!(MachineId::parse(&format!("{VM}/{t}")).is_err(), "{t}");
        }
    }

    #[test]
    fn a_resource_named_providers_is_an_ordinary_name() {
        let vm = VM.replace("/vm-1", "/providers");
        assert_eq!(MachineId::parse(&vm).unwrap().resource().resource_type(), "microsoft.compute/virtualmachines");
        let mc = MC.replace("/mc-example", "/providers");
        assert!(ConfigurationId::parse(&mc).is_ok());
        let run = format!("{mc}/providers/microsoft.maintenance/applyupdates/20230509150000");
        assert_eq!(RunId::parse(&run).unwrap().configuration().resource().to_string(), mc);
        assert!(ResourceId::parse(&format!("{VM}/providers")).is_err(), "an extension needs its namespace");
        assert!(MachineId::parse(&VM.replace("/vm-1", "/vm\u{2488}")).is_err(), "non-ASCII names are refused");
    }

    #[test]
    fn shapes_and_names_are_checked() {
        for bad in [
            "",
            "subscriptions/x",
            "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            &VM.replace("vm-1", "vm 1"),
            &VM.replace("vm-1", "vm-1."),
            &VM.replace("vm-1", "vm?x"),
            &VM.replace("vm-1", "vm#x"),
            &VM.replace("/rg/", "//"),
            &format!("{VM}/"),
            &VM.replace("Microsoft.Compute", "Microsoft"),
        ] {
            assert!(ResourceId::parse(bad).is_err() || MachineId::parse(bad).is_err(), "{bad}");
        }
        assert!(RunId::parse(&run().replace("20230509150000", "2023050915000x")).is_err());
        assert!(RunId::parse(&run().replace("20230509150000", "latest")).is_err());
        assert!(MachineId::parse(MC).is_err());
        assert!(ConfigurationId::parse(VM).is_err());
        assert!(RunId::parse(MC).is_err());
    }
}
