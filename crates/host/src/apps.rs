//! The Function Apps patchwatch deploys: one per handler binary, each with only its own
//! functions (and so only the rights those need). Packaging, infrastructure and the
//! function-definition test all read this one table.

/// One Function App (or Lambda function).
#[derive(Debug, Clone, Copy)]
pub struct App {
    /// The binary, and the app's name suffix.
    pub name: &'static str,
    /// Folders under `function-definitions/` this app serves.
    pub functions: &'static [&'static str],
}

pub const APPS: &[App] = &[
    App {
        name: "maintenance-events",
        functions: &["events", "maintenance-event", "maintenance-queue", "compliance-report", "reminders", "health"],
    },
    App { name: "alert-webhook", functions: &["alerts", "health"] },
    App { name: "itsm-webhook", functions: &["itsm", "action", "health"] },
];
