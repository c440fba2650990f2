//! A loopback fake of the ServiceNow Table API for incidents (`/api/now/table/incident`):
//! GET with `sysparm_query` (`correlation_id=…`, `correlation_idSTARTSWITH…`, `…ENDSWITH…`,
//! `^active=true`), POST to create, PATCH `/{sys_id}` to update (work notes are kept as a
//! journal); and change requests (`/api/now/table/change_request`, `approval=…^<field>=…`).
//! Basic auth required.

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

#[derive(Clone, Default)]
pub struct ServiceNow {
    pub incidents: Arc<Mutex<Vec<Value>>>,
    pub changes: Arc<Mutex<Vec<Value>>>,
    pub user: String,
    pub password: String,
}

impl ServiceNow {
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            incidents: Arc::default(),
            changes: Arc::default(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    pub fn all(&self) -> Vec<Value> {
        self.incidents.lock().unwrap().clone()
    }
}

fn matches(incident: &Value, query: &str) -> bool {
    query.split('^').all(|clause| {
        if let Some(v) = clause.strip_prefix("correlation_idSTARTSWITH") {
            incident["correlation_id"].as_str().is_some_and(|c| c.starts_with(v))
        } else if let Some(v) = clause.strip_prefix("correlation_idENDSWITH") {
            incident["correlation_id"].as_str().is_some_and(|c| c.ends_with(v))
        } else if clause.starts_with("ORDERBY") {
            true
        } else if let Some((field, v)) = clause.split_once('=').filter(|(f, _)| !f.starts_with("correlation_id")) {
            incident[field].as_str() == Some(v)
        } else if let Some(v) = clause.strip_prefix("correlation_id=") {
            incident["correlation_id"].as_str() == Some(v)
        } else if let Some(v) = clause.strip_prefix("correlation_id!=") {
            incident["correlation_id"].as_str() != Some(v)
        } else if let Some(list) = clause.strip_prefix("stateNOT IN") {
            !list.split(',').any(|st| incident["state"].as_str() == Some(st))
        } else if clause == "active=true" {
            incident["active"] == "true"
        } else {
            panic!("unexpected query clause {clause:?}")
        }
    })
}

impl Respond for ServiceNow {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password))
        );
        if req.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "User Not Authenticated"}}));
        }
        let mut incidents = self.incidents.lock().unwrap();
        let path = req.url.path().trim_end_matches('/').to_owned();
        match req.method.as_str() {
            "GET" => {
                let query = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "sysparm_query")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let table = if path.ends_with("/change_request") {
                    self.changes.lock().unwrap().clone()
                } else {
                    incidents.clone()
                };
                let result: Vec<Value> = table.iter().filter(|i| matches(i, &query)).cloned().collect();
                ResponseTemplate::new(200).set_body_json(json!({ "result": result }))
            }
            "POST" if path == "/api/now/table/incident" => {
                let mut body: Value = serde_json::from_slice(&req.body).unwrap();
                let n = incidents.len() + 1;
                body["sys_id"] = json!(format!("sys{n:04}"));
                body["number"] = json!(format!("INC{n:07}"));
                body["active"] = json!("true");
                body["state"] = json!("1");
                incidents.push(body.clone());
                ResponseTemplate::new(201).set_body_json(json!({ "result": body }))
            }
            "PATCH" => {
                let sys_id = path.rsplit('/').next().unwrap_or_default();
                let Some(incident) = incidents.iter_mut().find(|i| i["sys_id"] == sys_id) else {
                    return ResponseTemplate::new(404);
                };
                let patch: Value = serde_json::from_slice(&req.body).unwrap();
                for (k, v) in patch.as_object().unwrap() {
                    incident[k] = v.clone();
                }
                if let Some(note) = patch.get("work_notes") {
                    let mut journal = incident["journal"].as_array().cloned().unwrap_or_default();
                    journal.push(note.clone());
                    incident["journal"] = json!(journal);
                }
                // Resolved (6) stays active until closed (7), as in ServiceNow.
                if patch["state"] == "7" {
                    incident["active"] = json!("false");
                }
                let number = incident["number"].clone();
                ResponseTemplate::new(200).set_body_json(json!({ "result": { "sys_id": sys_id, "number": number } }))
            }
            _ => ResponseTemplate::new(405),
        }
    }
}
