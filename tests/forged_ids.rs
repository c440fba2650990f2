//! Forged resource ids never reach ARM.
//!
//! A `correlationId` such as `<configuration>/providers/microsoft.maintenance/applyupdates/../../..
//! /subscriptions/<other>/…/virtualMachines/<vm>` once made the gate send its cancel PUT, with
//! patchwatch's token, to another subscription's VM. Each dot-segment form is tried here on a run
//! id, a configuration id and a machine id (event intake, ITSM request, power and re-run calls):
//! every one is refused naming the field, and the ARM fake sees no request at all.

use std::sync::Arc;

use integration_tests::{
    http,
    world::{CONFIG, World},
};
use patchwatch_engine::control::power;
use patchwatch_state::store::StateStore;
use patchwatch_state::store::file::FileStore;
use serde_json::{Value, json};

const OTHER: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/victim/providers/Microsoft.Compute/virtualMachines/victim-vm";

/// A ring 1 pre event (its gate would cancel the run) as posted by Event Grid.
async fn post_event(world: &World, edit: impl Fn(&mut Value)) -> (u16, Value) {
    let mut body = world.rings[1].events.pre.clone();
    edit(&mut body[0]["data"]);
    let state = maintenance_events::AppState::new(world.pipeline(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, maintenance_events::router(state)).await.unwrap() });
    let r = http().post(format!("http://{addr}/api/events")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn check_variant(t: &str) {
    let config = format!(
        "{CONFIG}\n[[itsm.callers]]\nname = \"desk\"\nbearer_env = \"ITSM_DESK\"\nconfigurations = [\"Ring*\"]\nactions = [\"rerun\", \"emergency\"]\n"
    );
    let mut world = World::new(&config).await;
    world.extra_env.push(("ITSM_DESK", "desk-secret-0123456789".to_owned()));
    let pre = world.event(1, true);
    world.set_now(pre.start - time::Duration::minutes(35));
    let traversal = format!("{t}/{t}/{t}/{t}/{t}/{t}/{t}/{t}/{t}");

    // The run id: the gate's cancel PUT target.
    let forged_run =
        format!("{}/providers/microsoft.maintenance/applyupdates/{traversal}{OTHER}", pre.maintenance_configuration_id);
    let (status, body) = post_event(&world, |d| d["correlationId"] = json!(forged_run)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("[0].data.correlationId")), "{t}: {body}");

    // The configuration id, with a run id that is string-wise a run of it.
    let forged_mc = pre
        .maintenance_configuration_id
        .replace("/maintenanceConfigurations/", &format!("/maintenanceConfigurations/{traversal}/"));
    let forged_mc_run = format!("{forged_mc}/providers/microsoft.maintenance/applyupdates/20261110220000");
    let (status, body) = post_event(&world, |d| {
        d["maintenanceConfigurationId"] = json!(forged_mc);
        d["correlationId"] = json!(forged_mc_run);
    })
    .await;
    assert_eq!(status, 400, "{t}: {body}");
    let field = body["error"]["field"].as_str().unwrap_or_default();
    assert!(field == "[0].data.correlationId" || field == "[0].data.maintenanceConfigurationId", "{t}: {body}");

    // A machine id in an ITSM request (emergency patching names machines).
    let itsm = integration_tests::world::spawn_itsm(&world).await;
    let forged_vm = OTHER.replace("/virtualMachines/", &format!("/virtualMachines/{traversal}/"));
    let request = json!({ "action": "emergency", "requestedBy": "d", "requestId": format!("r-{t}"), "configuration": "Ring1-PreProd",
        "kbNumbers": ["5031364"], "machines": [forged_vm] });
    let r = http().post(&itsm).bearer_auth("desk-secret-0123456789").json(&request).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("machines[0]")), "{t}: {body}");

    // Machine ids from run data, as the power calls (start, and stop from the records) use them.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(FileStore::new(dir.path()));
    let arm = world.pipeline().arm.unwrap();
    let report = power::start(
        power::PowerRun { arm: &arm, store: &store, run_id: &pre.correlation_id, now: pre.start },
        &[(forged_vm.clone(), "deallocated".to_owned())],
        2,
    )
    .await
    .unwrap();
    assert_eq!(report.failed.len(), 1, "{t}: {report:?}");

    assert!(world.arm.calls().is_empty(), "{t}: ARM saw {:?}", world.arm.calls());
}

macro_rules! variants {
    ($($name:ident => $t:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            check_variant($t).await;
        }
    )*};
}

variants! {
    plain_dot_dot => "..",
    percent_encoded_lower => "%2e%2e",
    percent_encoded_upper => "%2E%2E",
    half_encoded_first => ".%2e",
    half_encoded_second => "%2e.",
    backslash => "..\\..",
    single_dot => ".",
    double_encoded => "%252e%252e",
}
