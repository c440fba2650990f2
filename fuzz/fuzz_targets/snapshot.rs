//! Snapshot files (ARG tables of unprojected rows) through the shared row parser, for the run
//! of examples/events/post-maintenance.json: parsed whole, and streamed (a scanner, two parser
//! threads, the keeping stage), which must agree on the run's machines and results.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchwatch_model::rundata::{RunData, RunQuery, rows::RunCollector, snapshot};

const RUN: &str = "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod/providers/microsoft.maintenance/applyupdates/20261110220000";

fuzz_target!(|data: &[u8]| {
    let query = RunQuery {
        correlation_id: RUN.to_owned(),
        subscription_ids: vec![
            "910a2dec-8902-4cc1-8bee-8da1658eec67".to_owned(),
            "f893a2ee-fb32-455e-871c-8690ee42c90b".to_owned(),
            "71bb54d8-d101-45b9-8c34-0bff90150280".to_owned(),
        ],
        include_results: true,
        since: None,
        watch: Vec::new(),
    };
    let mut streamed = RunCollector::for_query(&query);
    let streamed = snapshot::read_into(data, &mut streamed).map(|()| streamed.finish());
    let Ok(run) = snapshot::parse(data, &query) else { return };
    if let Ok(streamed) = streamed {
        assert_eq!(listed(&streamed), listed(&run), "the stream and the whole parse disagree");
    }
    for m in &run.expected {
        let key = m.id.to_ascii_lowercase();
        assert!(
            key.contains("/providers/microsoft.compute/virtualmachines/")
                || key.contains("/providers/microsoft.hybridcompute/machines/"),
            "expected machine that is no machine: {}",
            m.id
        );
    }
    for (key, result) in &run.results {
        assert_eq!(key, &result.machine_id.to_ascii_lowercase());
        assert!(result.errors.len() <= 5);
    }
    for p in &run.failed_patches {
        assert!(run.results.contains_key(&p.machine_id), "failed patch of a machine without a result");
    }
});

/// The run's listed machines, results and counted groups, in a stable order.
fn listed(run: &RunData) -> (Vec<String>, Vec<String>, String) {
    let mut expected: Vec<String> = run.expected.iter().map(|m| m.id.clone()).collect();
    expected.sort();
    let mut results: Vec<String> = run.results.iter().map(|(k, r)| format!("{k} {} {:?}", r.status, r.last_modified)).collect();
    results.sort();
    (expected, results, format!("{:?}", run.succeeded))
}
