//! function.json and host.json agree with the routes and envelopes the handler serves, so the
//! two cannot drift apart.

use integration_tests::{example, http, pipeline, root, spawn_handler};
use serde_json::{Value, json};

fn definition(name: &str) -> Value {
    let path = root().join("function-definitions").join(name).join("function.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn every_function_definition_is_served() {
    let out = tempfile::tempdir().unwrap();
    let snap = root().join("examples/snapshot.json").display().to_string();
    let addr = spawn_handler(pipeline(&[
        ("PATCHWATCH_OUTBOX", &out.path().display().to_string()),
        ("PATCHWATCH_SNAPSHOT", &snap),
    ]))
    .await;
    let host: Value = serde_json::from_str(&std::fs::read_to_string(root().join("host.json")).unwrap()).unwrap();
    assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], "handler");
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    let prefix = host["extensions"]["http"]["routePrefix"].as_str().unwrap_or("api");
    // The handler's last-attempt rule must match the host's poison threshold.
    assert_eq!(host["extensions"]["queues"]["maxDequeueCount"], maintenance_events::QUEUE_MAX_DEQUEUE);
    let event: Value = serde_json::from_str(&example("events/post-maintenance.json")).unwrap();

    let mut names: Vec<String> = std::fs::read_dir(root().join("function-definitions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        let def = definition(&name);
        let trigger = &def["bindings"].as_array().unwrap().iter().find(|b| b["direction"] == "in").unwrap().clone();
        let kind = trigger["type"].as_str().unwrap();
        let binding = trigger["name"].as_str().unwrap();
        let resp = match kind {
            "httpTrigger" => {
                // Proxied HTTP functions arrive at /{routePrefix}/{route} unchanged.
                let url = format!("http://{addr}/{prefix}/{}", trigger["route"].as_str().unwrap());
                let methods: Vec<&str> =
                    trigger["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
                assert!(def["bindings"].as_array().unwrap().len() == 2, "{name}: proxying needs HTTP-only bindings");
                if methods.contains(&"post") {
                    http().post(&url).json(&event).send().await.unwrap()
                } else {
                    http().get(&url).send().await.unwrap()
                }
            }
            "eventGridTrigger" | "queueTrigger" => {
                let body = json!({ "Data": { binding: event[0] }, "Metadata": {} });
                let resp = http().post(format!("http://{addr}/{name}")).json(&body).send().await.unwrap();
                let status = resp.status();
                let answer: Value = resp.json().await.unwrap();
                let log: Value = serde_json::from_str(answer["Logs"][0].as_str().unwrap()).unwrap();
                let outcome = log["outcome"].as_str().unwrap();
                assert!(outcome == "sent" || outcome == "duplicate", "{name}: binding {binding} not read: {answer}");
                assert_eq!(status, 200);
                continue;
            }
            other => panic!("{name}: unexpected trigger {other}"),
        };
        assert_eq!(resp.status(), 200, "{name} is not served");
    }
}
