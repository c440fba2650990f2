//! Every KQL query patchwatch sends to Azure Resource Graph, checked by Microsoft's own KQL parser
//! (`@kusto/language-service-next`, run by tests/kql/check.mjs under Node): syntax, semantics
//! against Resource Graph's tables (unknown tables, columns and functions), and Resource Graph's
//! narrower set of operators. The parser is installed by .ci/run (`(cd tests/kql && npm ci)`);
//! without Node or the package these tests fail, never skip. The checker's runner is
//! `integration_tests::kql`, shared with tests/resource_graph_eval.rs (the queries as sent).

use integration_tests::kql::{check, describe, run_checker};
use patchwatch_azure::resource_graph::queries_for_check;

/// Every query is checked once: names are unique.
fn checked_count(queries: &[(&str, String)]) -> usize {
    queries.iter().map(|(n, _)| *n).collect::<std::collections::BTreeSet<_>>().len()
}

#[test]
fn every_resource_graph_query_passes_microsofts_kql_parser() {
    let queries = queries_for_check();
    // Run loads and fleet loads (the compliance digest) both.
    let names: Vec<&str> = queries.iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&"post: succeeded machine counts") && names.contains(&"fleet assessments"), "{names:?}");
    assert_eq!(checked_count(&queries), queries.len());
    let (code, checked) = check(&queries);
    let errors = describe(&checked, &queries);
    assert!(errors.is_empty(), "Microsoft's KQL parser rejects queries patchwatch sends:{errors}");
    assert_eq!(code, Some(0));
}

/// The checker can fail: a syntax error, an unknown column, an unknown function and an unknown
/// table are each reported, with a clean query beside them reporting nothing.
#[test]
fn checker_reports_syntax_errors_and_unknown_names() {
    let queries: Vec<(&str, String)> = vec![
        (
            "clean",
            "resources | where type =~ 'microsoft.compute/virtualmachines' \
             | extend os = tostring(properties.storageProfile.osDisk.osType) | project id, kind, location, tags, os"
                .into(),
        ),
        (
            "unbalanced parenthesis",
            "resources | where (type =~ 'microsoft.compute/virtualmachines' | project id".into(),
        ),
        ("misspelt column", "resources | where subscriptionID == '00000000-0000-0000-0000-000000000000'".into()),
        ("misspelt function", "resources | extend machineId = tolowr(id)".into()),
        ("unknown table", "patchresources | take 1".into()),
    ];
    let (code, checked) = check(&queries);
    assert_eq!(code, Some(1), "{checked:?}");
    assert!(checked[0].errors.is_empty(), "false positive:{}", describe(&checked[..1], &queries[..1]));
    for (c, needle) in checked[1..].iter().zip(["Expected: )", "subscriptionID", "tolowr", "patchresources"]) {
        assert!(
            c.errors.iter().any(|e| e.message.contains(needle)),
            "{}: expected an error naming {needle:?}, got {:?}",
            c.name,
            c.errors
        );
    }
    let column = &checked[2].errors[0];
    assert_eq!(&queries[2].1[column.start..column.start + column.length], "subscriptionID");
}

/// Valid KQL that Resource Graph refuses is reported too: an operator outside its supported set,
/// an unsupported join flavour, and a join strategy hint.
#[test]
fn checker_reports_kql_outside_resource_graphs_subset() {
    let queries: Vec<(&str, String)> = vec![
        ("make-series", "resources | make-series n = count() on todatetime(properties.timeCreated) step 1d".into()),
        ("anti join", "resources | join kind=leftanti (resources | project id) on id".into()),
        ("broadcast join", "resources | join hint.strategy=broadcast (resources | project id) on id".into()),
    ];
    let (code, checked) = check(&queries);
    assert_eq!(code, Some(1), "{checked:?}");
    for (c, needle) in checked.iter().zip(["'make-series'", "kind=leftanti", "hint.strategy"]) {
        assert!(
            c.errors.iter().any(|e| e.message.starts_with("Resource Graph:") && e.message.contains(needle)),
            "{}: expected a Resource Graph error naming {needle}, got {:?}",
            c.name,
            c.errors
        );
    }
}

#[test]
fn checker_refuses_bad_input() {
    for input in [&b"not json"[..], b"{}", br#"[{"name": "no query"}]"#] {
        let run = run_checker(input);
        assert_eq!(run.status.code(), Some(2), "{}: {}", String::from_utf8_lossy(input), run.stderr);
    }
}
