//! `maintenanceWindow.timeZone` to rules: Azure writes Windows zone names ("W. Europe Standard
//! Time"), which CLDR's windowsZones maps to IANA names (territory "001", the zone Windows
//! itself treats as the name's default); the rules then come from jiff's bundled tzdb, because
//! a Functions or Lambda host has no system tzdata to rely on.

use std::sync::OnceLock;

use jiff::tz::TimeZone;

/// The territory CLDR marks as a Windows zone's default mapping.
const DEFAULT_TERRITORY: &str = "001";

/// A zone name resolved to its rules and the IANA name they came from.
#[derive(Clone, Debug)]
pub(crate) struct Zone {
    pub(crate) rules: TimeZone,
    pub(crate) iana: String,
}

/// Windows name (any letter case), then IANA name (jiff matches those case-insensitively).
pub(crate) fn resolve(name: &str) -> Result<Zone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("empty time zone name".to_owned());
    }
    let iana = windows_to_iana(name);
    let lookup = iana.unwrap_or(name);
    match TimeZone::get(lookup) {
        Ok(rules) => {
            let iana = rules.iana_name().unwrap_or(lookup).to_owned();
            Ok(Zone { rules, iana })
        }
        Err(_) if iana.is_some() => {
            Err(format!("Windows zone maps to '{lookup}', which the bundled tz database lacks"))
        }
        Err(_) => Err("not a Windows or IANA time zone name".to_owned()),
    }
}

/// CLDR's default IANA zone for a Windows zone name; the exact spelling first, then any
/// letter case (the portal and the API both write the Windows spelling, but hand-written
/// Bicep and Terraform do not always).
fn windows_to_iana(name: &str) -> Option<&'static str> {
    if let Some(iana) = localzone::win_zone_to_iana(name, Some(DEFAULT_TERRITORY)) {
        return Some(iana);
    }
    let spelled = windows_names().iter().find(|known| known.eq_ignore_ascii_case(name))?;
    localzone::win_zone_to_iana(spelled, Some(DEFAULT_TERRITORY))
}

/// Every Windows zone name CLDR knows, as spelled there. localzone offers no list, so it is
/// gathered once by mapping each IANA zone of the bundled tzdb back to its Windows name.
pub(crate) fn windows_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = jiff::tz::db()
            .available()
            .filter_map(|iana| localzone::iana_to_win_zone(iana.as_str()).map(|(windows, _)| windows))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}
