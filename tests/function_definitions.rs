//! function.json and host.json agree with the routes and envelopes each app's binary serves,
//! so the two cannot drift apart: every function folder belongs to an app, and each app's
//! router answers each of its functions.

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc};

use integration_tests::{example, http, pipeline, root, spawn_handler};
use patchwatch_host::apps::APPS;
use serde_json::{Value, json};

fn definition(name: &str) -> Value {
    let path = root().join("function-definitions").join(name).join("function.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

#[tokio::test]
async fn every_function_definition_is_served_by_its_app() {
    let out = tempfile::tempdir().unwrap();
    let snap = root().join("examples/snapshot.json").display().to_string();
    let vars = [
        ("PATCHWATCH_OUTBOX", out.path().display().to_string()),
        ("PATCHWATCH_SNAPSHOT", snap),
        // One-click links on, so /api/action is served rather than "not configured".
        ("PATCHWATCH_ACTION_KEYS", "function-definitions-test-key-0123456789".to_owned()),
        ("PATCHWATCH_PUBLIC_URL", "http://127.0.0.1:7071".to_owned()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host: Value = serde_json::from_str(&std::fs::read_to_string(root().join("host.json")).unwrap()).unwrap();
    assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], "handler");
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    let prefix = host["extensions"]["http"]["routePrefix"].as_str().unwrap_or("api");
    // The handler's last-attempt rule must match the host's poison threshold.
    assert_eq!(host["extensions"]["queues"]["maxDequeueCount"], maintenance_events::QUEUE_MAX_DEQUEUE);
    let event: Value = serde_json::from_str(&example("events/post-maintenance.json")).unwrap();

    let folders: BTreeSet<String> = std::fs::read_dir(root().join("function-definitions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let claimed: BTreeSet<String> = APPS.iter().flat_map(|a| a.functions.iter().map(|f| (*f).to_owned())).collect();
    assert_eq!(folders, claimed, "every function folder belongs to an app, and every app function has a folder");

    for app in APPS {
        let addr = match app.name {
            "maintenance-events" => spawn_handler(pipeline(&vars)).await,
            "alert-webhook" => {
                let state = alert_webhook::AppState { pipeline: Arc::new(pipeline(&vars)), token: None };
                serve(alert_webhook::router(state)).await
            }
            "itsm-webhook" => {
                serve(itsm_webhook::router(itsm_webhook::AppState::new(pipeline(&vars), Vec::new()))).await
            }
            other => panic!("no test wiring for app {other}"),
        };
        for name in app.functions {
            let def = definition(name);
            let trigger = def["bindings"].as_array().unwrap().iter().find(|b| b["direction"] == "in").unwrap().clone();
            let kind = trigger["type"].as_str().unwrap();
            let binding = trigger["name"].as_str().unwrap();
            match kind {
                "httpTrigger" => {
                    // Proxied HTTP functions arrive at /{routePrefix}/{route} unchanged.
                    let route = trigger["route"].as_str().unwrap();
                    let url = format!("http://{addr}/{prefix}/{route}");
                    let methods: Vec<&str> =
                        trigger["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
                    assert!(
                        def["bindings"].as_array().unwrap().len() == 2,
                        "{name}: proxying needs HTTP-only bindings"
                    );
                    let (body, expected) = match route {
                        "events" => (event.clone(), 200),
                        // An alert of another kind is acknowledged.
                        "alerts" => (json!({ "schemaId": "Microsoft.Insights/LogAlert", "data": {} }), 200),
                        // Served, and nothing happens without credentials.
                        "itsm" => (json!({ "action": "approve" }), 401),
                        // Served: the confirmation page's form is the only body it takes.
                        "action" => (json!({ "action": "acknowledge" }), 415),
                        _ => (Value::Null, 200),
                    };
                    let resp = if methods.contains(&"post") {
                        http().post(&url).json(&body).send().await.unwrap()
                    } else {
                        http().get(&url).send().await.unwrap()
                    };
                    assert_eq!(resp.status(), expected, "{}: {name} is not served as declared", app.name);
                }
                "eventGridTrigger" | "queueTrigger" => {
                    let body = json!({ "Data": { binding: event[0] }, "Metadata": {} });
                    let resp = http().post(format!("http://{addr}/{name}")).json(&body).send().await.unwrap();
                    let status = resp.status();
                    let answer: Value = resp.json().await.unwrap();
                    let log: Value = serde_json::from_str(answer["Logs"][0].as_str().unwrap()).unwrap();
                    let outcome = log["outcome"].as_str().unwrap();
                    assert!(
                        outcome == "sent" || outcome == "duplicate",
                        "{name}: binding {binding} not read: {answer}"
                    );
                    assert_eq!(status, 200);
                }
                "timerTrigger" => {
                    // The schedule comes from the app setting the infrastructure sets.
                    let (setting, outcome) = match *name {
                        "compliance-report" => ("%PATCHWATCH_REPORT_SCHEDULE%", "digest"),
                        "reminders" => ("%PATCHWATCH_REMINDER_SCHEDULE%", "reminders"),
                        other => panic!("{other}: a timer this test does not know"),
                    };
                    assert_eq!(trigger["schedule"], setting, "{name}");
                    assert!(
                        def["retry"]["maxRetryCount"].as_u64().is_some_and(|n| n > 0),
                        "{name}: a failed timer run is retried"
                    );
                    let body = json!({ "Data": { binding: { "IsPastDue": false } }, "Metadata": {} });
                    let resp = http().post(format!("http://{addr}/{name}")).json(&body).send().await.unwrap();
                    assert_eq!(resp.status(), 200, "{name}");
                    let answer: Value = resp.json().await.unwrap();
                    let log: Value = serde_json::from_str(answer["Logs"][0].as_str().unwrap()).unwrap();
                    assert_eq!(log["outcome"], outcome, "{name}: binding {binding} not served: {answer}");
                }
                other => panic!("{name}: unexpected trigger {other}"),
            }
        }
    }
}
