#!/usr/bin/env python3
"""Regenerates fuzz/corpus/<target>/ from the project's fixtures.

Sources: examples/events/*.json, examples/snapshot.json (cut to a few machines of the example
run), examples/*.toml, ../shared/real-samples/ (when present), string literals of the tests and
unit tests (TOML routing files, JSON bodies), and the bodies the tests build with json!(),
written out below. Run from anywhere:  python3 fuzz/seeds/make_corpus.py
Existing seed files of the same name are overwritten; other files in corpus/ are left alone.
"""
import base64, copy, hashlib, hmac, json, pathlib, re, sys

FUZZ = pathlib.Path(__file__).resolve().parent.parent
ROOT = FUZZ.parent
SHARED = ROOT.parent / "shared" / "real-samples"
OUT = FUZZ / "corpus"
written = {}
seen = set()


def put(target, name, data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    if (target, data) in seen:
        return
    seen.add((target, data))
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:80]
    (d / name).write_bytes(data)
    written[target] = written.get(target, 0) + 1


def load(rel):
    return json.loads((ROOT / rel).read_text())


# ---------------------------------------------------------------- events
post = load("examples/events/post-maintenance.json")
pre = load("examples/events/pre-maintenance.json")
put("events", "example-post-maintenance.json", (ROOT / "examples/events/post-maintenance.json").read_bytes())
put("events", "example-pre-maintenance.json", (ROOT / "examples/events/pre-maintenance.json").read_bytes())
put("events", "post-single-object", post[0])
put("events", "pre-single-object", pre[0])

RUN = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-example/providers/Microsoft.Maintenance/maintenanceConfigurations/mc-example/providers/microsoft.maintenance/applyupdates/20230509150000"
MC = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-example/providers/Microsoft.Maintenance/maintenanceConfigurations/mc-example"
unit_post = {
    "id": RUN, "topic": MC, "subject": "mc-example",
    "data": {"correlationId": RUN, "maintenanceConfigurationId": MC,
             "startDateTime": "2023-05-09T15:00:00Z", "endDateTime": "2023-05-09T18:55:00Z",
             "resourceSubscriptionIds": ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"],
             "status": "Succeeded"},
    "eventType": "Microsoft.Maintenance.PostMaintenanceEvent", "eventTime": "2023-05-09T15:55:00.3717473Z",
    "dataVersion": "1.0", "metadataVersion": "1"}
cloud_pre = {
    "id": RUN, "source": MC, "subject": "mc-example", "specversion": "1.0",
    "type": "Microsoft.Maintenance.PreMaintenanceEvent", "time": "2023-05-09T14:25:00.3717473Z",
    "data": {"CorrelationId": RUN, "MaintenanceConfigurationId": MC,
             "StartDateTime": "2023-05-09T15:00:00Z", "EndDateTime": "2023-05-09T18:55:00Z",
             "CancellationCutOffDateTime": "2023-05-09T14:59:00Z",
             "ResourceSubscriptionIds": "11111111-1111-1111-1111-111111111111"}}
validation = {"id": "x", "topic": "t", "subject": "", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
              "eventTime": "2022-10-28T04:23:35.1981776Z", "data": {"validationCode": "512d38b6"}}
other = {"id": "y", "eventType": "Microsoft.Storage.BlobCreated", "data": {}}
put("events", "unit-post-eventgrid", [unit_post])
put("events", "unit-pre-cloudevents", [cloud_pre])
put("events", "unit-pre-cloudevents-single", cloud_pre)
pascal = copy.deepcopy(unit_post)
pascal["data"] = {k[0].upper() + k[1:]: v for k, v in unit_post["data"].items()}
put("events", "unit-post-pascal-case", pascal)
put("events", "validation", [validation])
put("events", "other-event-type", [other])
put("events", "batch-mixed", [pre[0], post[0], validation, other, cloud_pre])
e = copy.deepcopy(unit_post); e["data"]["resourceSubscriptionIds"] = "11111111-1111-1111-1111-111111111111, 22222222-2222-2222-2222-222222222222"
put("events", "subscriptions-as-string", [e])
e = copy.deepcopy(unit_post); del e["data"]["resourceSubscriptionIds"]
put("events", "subscriptions-absent", [e])
e = copy.deepcopy(unit_post); e["data"]["correlationId"] = RUN.replace("mc-example", "other")
put("events", "bad-run-of-other-configuration", [e])
e = copy.deepcopy(unit_post); e["data"]["startDateTime"] = "not a date"
put("events", "bad-start-date", [e])
e = copy.deepcopy(unit_post); e["eventTime"] = "9999-12-31T23:59:59Z"
put("events", "far-future-event-time", e)
e = copy.deepcopy(unit_post); e["data"]["endDateTime"] = "2023-05-09T14:00:00+01:00"
put("events", "end-before-start-offset", [e])
e = copy.deepcopy(unit_post); e["data"]["resourceSubscriptionIds"] = [7]
put("events", "bad-subscription-type", [e])
put("events", "lambda-validation", [{"id": "v1", "topic": "/subscriptions/x", "subject": "", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2026-11-11T00:00:00Z", "data": {"validationCode": "abc", "validationUrl": "https://example.com"}, "dataVersion": "1", "metadataVersion": "1"}])
put("events", "empty-array", "[]")
put("events", "truncated", '[{"id": ')

# ---------------------------------------------------------------- envelope
def envelope(binding, value, meta=True):
    body = {"Data": {binding: value}}
    if meta:
        body["Metadata"] = {"sys": {"MethodName": "maintenance-event", "UtcNow": "2026-11-11T00:20:00Z",
                                    "RandGuid": "00000000-0000-0000-0000-000000000000"}}
    return body

text = json.dumps(post[0], separators=(",", ":"))
put("envelope", "event-object", envelope("event", post[0]))
put("envelope", "event-string", envelope("event", text))
put("envelope", "message-base64", envelope("message", base64.b64encode(text.encode()).decode()))
put("envelope", "message-text", envelope("message", text))
put("envelope", "message-double-encoded", envelope("message", json.dumps(text)))
put("envelope", "message-object-batch", envelope("message", post))
put("envelope", "message-cloudevents", envelope("message", cloud_pre))
put("envelope", "dequeue-count", {"Data": {"message": json.dumps(unit_post)}, "Metadata": {"DequeueCount": 2, "sys": {"MethodName": "maintenance-queue"}}})
put("envelope", "dequeue-count-string", {"Data": {"message": unit_post}, "Metadata": {"DequeueCount": "5"}})
put("envelope", "single-unnamed-binding", '{"Data":{"eventGridEvent":{"id":"1"}}}')
put("envelope", "two-bindings", '{"Data":{"a":1,"b":2}}')
put("envelope", "not-base64", envelope("message", "%%% not base64 or json"))
put("envelope", "number-binding", '{"Data":{"event":7}}')
put("envelope", "metadata-only", '{"Metadata":{}}')
put("envelope", "validation-base64", envelope("message", base64.b64encode(json.dumps([validation]).encode()).decode()))
for p in sorted((SHARED / "lambda").glob("*.json")) if SHARED.exists() else []:
    put("envelope", "real-lambda-" + p.name, p.read_bytes())

# ---------------------------------------------------------------- alert
TMC = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod"


def common_alert(op, status, scope, event_id):
    return {"schemaId": "azureMonitorCommonAlertSchema", "data": {
        "essentials": {"alertId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.AlertsManagement/alerts/aaaaaaaa-0000-0000-0000-000000000001",
                       "alertRule": "maintenance-changes", "severity": "Sev4", "signalType": "Activity Log", "monitorCondition": "Fired",
                       "monitoringService": "Activity Log - Administrative", "alertTargetIDs": [scope.lower()], "configurationItems": ["Ring2-Prod"],
                       "originAlertId": "x", "firedDateTime": "2026-11-20T10:00:05.000Z", "description": "", "essentialsVersion": "1.0", "alertContextVersion": "1.0"},
        "alertContext": {"authorization": {"action": op, "scope": scope}, "channels": "Operation", "claims": "{\"name\":\"Alice\"}",
                         "caller": "alice@contoso.com", "correlationId": "11111111-0000-0000-0000-000000000000", "eventSource": "Administrative",
                         "eventTimestamp": "2026-11-20T10:00:00.123Z", "eventDataId": event_id, "level": "Informational", "operationName": op,
                         "operationId": "22222222-0000-0000-0000-000000000000", "status": status, "subStatus": "", "submissionTimestamp": "2026-11-20T10:00:01Z",
                         "properties": {"eventCategory": "Administrative", "entity": scope, "message": op, "hierarchy": "tenant/sub"},
                         "Activity Log Event Description": ""},
        "customProperties": None}}

assignment = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01/providers/Microsoft.Maintenance/configurationAssignments/Ring2-Prod"
put("alert", "common-configuration-write", common_alert("Microsoft.Maintenance/maintenanceConfigurations/write", "Succeeded", TMC, "e-1"))
put("alert", "common-configuration-delete-failed", common_alert("Microsoft.Maintenance/maintenanceConfigurations/delete", "Failed", TMC, "e-5"))
put("alert", "common-assignment-write", common_alert("Microsoft.Maintenance/configurationAssignments/write", "Succeeded", assignment, ""))
put("alert", "common-applyupdates-failed", common_alert("Microsoft.Maintenance/applyUpdates/write", "Failed", TMC + "/providers/Microsoft.Maintenance/applyUpdates/20261120100000", "e-3"))
put("alert", "common-restart-ignored", common_alert("Microsoft.Compute/virtualMachines/restart/action", "Succeeded", "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z", "e-4"))
put("alert", "common-started", common_alert("Microsoft.Maintenance/maintenanceConfigurations/write", "Started", TMC, "e-6"))
r = common_alert("Microsoft.Maintenance/maintenanceConfigurations/write", "Succeeded", TMC, "e-7"); r["data"]["essentials"]["monitorCondition"] = "Resolved"
put("alert", "common-resolved", r)
r = common_alert("Microsoft.Maintenance/maintenanceConfigurations/write", "Succeeded", TMC, "e-8"); del r["data"]["alertContext"]["authorization"]; del r["data"]["alertContext"]["properties"]["entity"]
put("alert", "common-target-ids-only", r)
put("alert", "legacy-assignment-delete", {"schemaId": "Microsoft.Insights/activityLogs", "data": {"status": "Activated", "context": {"activityLog": {
    "authorization": {"action": "Microsoft.Maintenance/configurationAssignments/delete", "scope": assignment}, "channels": "Operation",
    "claims": "{}", "caller": "bob@contoso.com", "correlationId": "33333333-0000-0000-0000-000000000000", "description": "",
    "eventSource": "Administrative", "eventTimestamp": "2026-11-20T11:00:00Z", "eventDataId": "e-2", "level": "Informational",
    "operationName": "Microsoft.Maintenance/configurationAssignments/delete", "operationId": "o", "resourceId": assignment,
    "resourceGroupName": "rg-web", "resourceProviderName": "Microsoft.Maintenance", "resourceType": "Microsoft.Maintenance/configurationAssignments",
    "status": "Succeeded", "subStatus": "", "subscriptionId": "00000000-0000-0000-0000-000000000000", "submissionTimestamp": "2026-11-20T11:00:01Z"}},
    "properties": {}}})
put("alert", "legacy-configuration-delete", {"schemaId": "Microsoft.Insights/activityLogs", "data": {"status": "Activated", "context": {"activityLog": {
    "caller": "bob@contoso.com", "correlationId": "c2", "eventDataId": "e2", "eventTimestamp": "2026-11-20T11:00:00Z",
    "operationName": "Microsoft.Maintenance/maintenanceConfigurations/delete", "resourceId": TMC, "status": "Succeeded"}}, "properties": {}}})
put("alert", "metric-ignored", {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"monitoringService": "Platform", "signalType": "Metric"}, "alertContext": {}}})
put("alert", "log-alert-ignored", '{"schemaId":"Microsoft.Insights/LogAlert","data":{}}')
put("alert", "no-operation", '{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"monitoringService":"Activity Log - Administrative"},"alertContext":{}}}')
put("alert", "schema-id-number", '{"schemaId": 5}')

# ---------------------------------------------------------------- itsm_request
TRUN = TMC.replace("Ring2-Prod", "Ring0-Dev") + "/providers/microsoft.maintenance/applyupdates/20261103220000"
reqs = {
    "approve": {"action": "approve", "requestedBy": "mallory", "configuration": "Ring2-Prod", "change": "CHG1",
                "window": {"start": "2026-11-17T21:00:00Z", "end": "2026-11-18T02:00:00Z"}},
    "approve-decided-at": {"action": "approve", "requestedBy": "alice@contoso.com", "requestId": "REQ-1", "configuration": TMC, "change": "CHG0012345",
                           "window": {"start": "2026-11-17T22:00:00Z", "end": "2026-11-18T02:00:00Z"}, "note": "CAB approved", "decidedAt": "2026-11-16T10:00:00+01:00"},
    "reject": {"action": "reject", "requestedBy": "cab", "configuration": "Ring2-Prod", "change": "CHG2",
               "window": {"start": "2026-11-17T21:00:00Z", "end": "2026-11-18T02:00:00Z"}},
    "rerun": {"action": "rerun", "requestedBy": "mallory", "run": TRUN},
    "rerun-request-id": {"action": "rerun", "requestedBy": "d", "requestId": "r4", "run": TRUN.replace("applyupdates/2026", "applyupdates/1999")},
    "acknowledge": {"action": "acknowledge", "requestedBy": "bob@contoso.com", "run": TRUN, "note": "KB5031364 known issue"},
    "acknowledge-with-configuration": {"action": "acknowledge", "requestedBy": "m", "configuration": "Ring2-Prod", "run": TRUN},
    "emergency": {"action": "emergency", "requestedBy": "d", "requestId": "em-1", "configuration": "Ring0-Dev", "machines": ["vm-web-01", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-02"],
                  "classifications": ["Critical", "Security"], "kbNumbers": ["5031364"], "rebootSetting": "IfRequired", "maximumDuration": "PT2H"},
    "emergency-kb-only": {"action": "emergency", "requestedBy": "d", "requestId": "r2", "configuration": "Lab-9", "kbNumbers": ["5031364"]},
    "emergency-no-patches": {"action": "emergency", "requestedBy": "d", "requestId": "r0", "configuration": "Ring0-Dev"},
    "emergency-bad-classification": {"action": "emergency", "requestedBy": "a", "configuration": "R", "classifications": ["Security", "Hotfixes"]},
    "emergency-duration": {"action": "emergency", "requestedBy": "a", "configuration": "R", "classifications": ["Other"], "rebootSetting": "never", "maximumDuration": "P1DT2H30M"},
    "unknown-action": {"action": "launch", "requestedBy": "d"},
    "snooze": {"action": "snooze", "requestedBy": "bob@contoso.com", "run": TRUN, "duration": "24h", "route": "owners"},
    "snooze-until": {"action": "snooze", "requestedBy": "bob", "run": TRUN, "until": "2026-12-03T08:00:00Z"},
    "silence": {"action": "silence", "requestedBy": "carol", "configuration": "Ring2-Prod", "duration": "4h", "note": "CHG0042",
                "silence": {"machine": "vm-sql-*", "tags": {"PatchOwner": "team-data"}, "outcome": ["Failed", "Incomplete"], "channel": "ops-*"}},
    "silence-bad-outcome": {"action": "silence", "requestedBy": "carol", "configuration": "Ring2-Prod", "until": "2026-12-03T08:00:00Z",
                            "silence": {"outcome": ["Sometimes"]}},
    "servicenow-approved": {"number": "CHG0012345", "approval": "approved", "start_date": "2026-11-17 22:00:00", "end_date": "2026-11-18 02:00:00",
                            "u_maintenance_configuration": "Ring1-PreProd", "sys_updated_by": "alice", "sys_updated_on": "2026-11-16 09:00:00"},
    "servicenow-rejected": {"number": "CHG0099", "approval": "rejected", "start_date": "2026-11-17 21:00:00", "end_date": "2026-11-18 02:00:00",
                            "u_maintenance_configuration": "Ring2-Prod"},
    "servicenow-requested": {"number": "CHG0100", "approval": "requested", "start_date": "2026-11-17 21:00:00", "end_date": "2026-11-18 02:00:00",
                             "u_maintenance_configuration": "Ring2-Prod"},
}
for name, body in reqs.items():
    put("itsm_request", name, body)
put("itsm_request", "control-character", r'{"action":"ack","requestedBy":"a\nb","run":"x"}')
put("itsm_request", "kb-empty", r'{"action":"emergency","requestedBy":"a","configuration":"R","kbNumbers":["1",""]}')
put("itsm_request", "duplicate-key", '{"action":"approve","action":"reject","requestedBy":"a"}')
if SHARED.exists():
    for p in sorted((SHARED / "servicenow").glob("*.json")):
        put("itsm_request", "real-" + p.name, p.read_bytes())
        res = json.loads(p.read_text()).get("result", {})
        # The same record shaped as the change_request business rule sends it.
        put("itsm_request", "real-as-change-" + p.stem, {"number": res.get("number", "CHG0000001"), "approval": "approved",
            "start_date": "2026-11-17 22:00:00", "end_date": "2026-11-18 02:00:00", "u_maintenance_configuration": "Ring2-Prod",
            "sys_updated_by": res.get("sys_updated_by", "admin"), "sys_updated_on": res.get("sys_updated_on", "2026-11-16 09:00:00")})

# ---------------------------------------------------------------- itsm_signature
# Layout (see fuzz_targets/itsm_signature.rs): flags byte, then now \n id \n timestamp \n
# signature \n authorization \n body. Bit 0-3: send id, timestamp, signature, authorization;
# bit 4: repeat the header chosen by bits 5-6; bit 7: append a valid signature.
def sig_input(flags, now, wid="", ts="", sig="", auth="", body=""):
    return bytes([flags]) + "\n".join([str(now), wid, str(ts), sig, auth, body]).encode()


def sign(secret, wid, ts, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return "v1," + base64.b64encode(hmac.new(key, f"{wid}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()

if SHARED.exists():
    v = json.loads((SHARED / "webhooks/standard-webhooks-vectors.json").read_text())
    for i, vec in enumerate(v["vectors"]):
        assert sign(vec["secret"], vec["msg_id"], vec["timestamp"], vec["payload"]) == vec["signature"]
        put("itsm_signature", f"vector-{i}", sig_input(0x07, vec["timestamp"], vec["msg_id"], vec["timestamp"], vec["signature"], body=vec["payload"]))
        put("itsm_signature", f"vector-{i}-stale", sig_input(0x07, vec["timestamp"] + 301, vec["msg_id"], vec["timestamp"], vec["signature"], body=vec["payload"]))
    for i, vec in enumerate(v["negative"]):
        put("itsm_signature", f"negative-{i}", sig_input(0x07, 1649367553, vec["msg_id"], 1649367553, vec["signature"], body=vec["payload"]))
    h = v["spec_example_headers"]
    put("itsm_signature", "spec-example-headers", sig_input(0x07, int(h["webhook-timestamp"]), h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], body='{"type":"contact.created"}'))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNl"
now = 1_700_000_000
body = json.dumps(reqs["rerun"])
put("itsm_signature", "signed-rerun", sig_input(0x07, now, "msg_1", now, sign(SECRET, "msg_1", now, body), body=body))
put("itsm_signature", "signed-rotated-key", sig_input(0x07, now, "msg_2", now, "v1,AAAA " + sign(NEW, "msg_2", now, '{"action":"approve"}'), body='{"action":"approve"}'))
put("itsm_signature", "signed-tampered", sig_input(0x07, now, "msg_3", now, sign(SECRET, "msg_3", now, body), body=body.replace("mallory", "alice")))
put("itsm_signature", "signed-future", sig_input(0x07, now, "msg_4", now + 299, sign(SECRET, "msg_4", now + 299, body), body=body))
put("itsm_signature", "forged-flag", sig_input(0x87, now, "msg_5", now - 100, "v1,x", body=body))
put("itsm_signature", "repeated-id", sig_input(0x17, now, "msg_6", now, sign(SECRET, "msg_6", now, body), body=body))
put("itsm_signature", "missing-id", sig_input(0x06, now, "", now, sign(SECRET, "msg_7", now, body), body=body))
put("itsm_signature", "bad-timestamp", sig_input(0x07, now, "msg_8", "17e8", "v1,abc", body=body))
put("itsm_signature", "bearer", sig_input(0x08, now, auth="Bearer bearer-secret-0123456789", body=body))
put("itsm_signature", "bearer-rotated-caller", sig_input(0x08, now, auth="Bearer   s3cret-token  ", body="{}"))
put("itsm_signature", "bearer-wrong", sig_input(0x08, now, auth="Bearer bearer-secret-012345678", body=body))
put("itsm_signature", "basic", sig_input(0x08, now, auth="Basic s3cret-token", body=body))
put("itsm_signature", "bearer-repeated", sig_input(0x78, now, auth="Bearer s3cret-token", body=body))
put("itsm_signature", "no-credentials", sig_input(0x00, now, body=body))

# ---------------------------------------------------------------- snapshot
snap = load("examples/snapshot.json")
RUN_EX = post[0]["data"]["correlationId"].lower()
mr = snap["maintenanceresources"]
machines = []
for row in mr:
    if row["type"] == "microsoft.maintenance/applyupdates" and row["properties"]["correlationId"].lower() == RUN_EX:
        machines.append(row["properties"]["resourceId"].lower())
results = [r for r in snap["patchinstallationresources"] if r["type"].endswith("/patchinstallationresults")
           and r["properties"]["maintenanceRunId"].lower() == RUN_EX]
failed = [r for r in results if r["properties"]["status"] != "Succeeded"]
pick = []
for r in failed[:2] + [r for r in results if r["properties"]["status"] == "Succeeded"][:1]:
    pick.append(r["id"].lower().split("/patchinstallationresults/")[0])
no_result = [m for m in machines if m not in {r["id"].lower().split("/patchinstallationresults/")[0] for r in results}]
pick += no_result[:1]
small = {
    "maintenanceresources": [r for r in mr if r["type"] != "microsoft.maintenance/applyupdates"] +
                            [r for r in mr if r["type"] == "microsoft.maintenance/applyupdates" and r["properties"]["resourceId"].lower() in pick],
    "patchinstallationresources": [r for r in snap["patchinstallationresources"] if r["id"].lower().split("/patchinstallationresults/")[0] in pick
                                   and r["properties"].get("maintenanceRunId", "").lower() == RUN_EX]
                                  + [r for r in snap["patchinstallationresources"] if r["id"].lower().split("/patchinstallationresults/")[0] in pick
                                     and r["type"].endswith("softwarepatches") and r["properties"].get("installationState") == "Failed"][:6]
                                  + [r for r in snap["patchinstallationresources"] if r["id"].lower().split("/patchinstallationresults/")[0] in pick
                                     and r["type"].endswith("softwarepatches") and r["properties"].get("installationState") != "Failed"][:2]
                                  + [r for r in snap["patchinstallationresources"] if r["properties"].get("maintenanceRunId", "").lower() not in ("", RUN_EX)][:1],
    "resources": [r for r in snap["resources"] if r["id"].lower() in pick],
}
put("snapshot", "example-cut-4-machines.json", json.dumps(small, indent=0))
tiny = {k: v[:3] for k, v in small.items()}
put("snapshot", "example-cut-3-rows", tiny)
lenient = copy.deepcopy(tiny)
for r in lenient["patchinstallationresources"]:
    p = r["properties"]
    if "installedPatchCount" in p:
        p["installedPatchCount"] = str(p["installedPatchCount"])
        p["maintenanceWindowExceeded"] = "True"
        p["errorDetails"] = {"code": "PatchFailed", "message": "One or more updates failed", "details": [{"code": "0x80070643", "message": "Fatal error during installation"}, "plain"]}
        break
for r in lenient["resources"][:1]:
    r["properties"]["extended"] = {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}}
    r["properties"]["storageProfile"] = {"osDisk": {"osType": "Windows"}}
for r in lenient["maintenanceresources"]:
    if r["type"] == "microsoft.maintenance/applyupdates":
        r["machineTags"] = {"PatchOwner": "team-data", "n": 1}
        del r["properties"]["resourceId"]
        break
lenient["somethingelse"] = [1, 2]
put("snapshot", "lenient-variants", lenient)
put("snapshot", "unit-missing-id", '{"maintenanceresources": [{"id": "a", "type": "t"}, {"type": "t"}]}')
put("snapshot", "unit-unknown-table", '{"somethingelse": [1, 2], "resources": []}')
put("snapshot", "unit-resources-object", '{"resources": {}}')
put("snapshot", "unit-trailing", '{} trailing')

# ---------------------------------------------------------------- routing
for p in sorted((ROOT / "examples").glob("*.toml")):
    put("routing", "example-" + p.name, p.read_bytes())
LIT = re.compile(r'r#"(.*?)"#|"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    """A Rust string literal's escapes: \\n, \\t, \\", \\\\, \\u{..}, \\x.., line continuations."""
    def one(m):
        e = m.group(1)
        if e[0] == "\n":
            return ""
        if e[0] == "u":
            return chr(int(e[2:-1], 16))
        if e[0] == "x":
            return chr(int(e[1:], 16))
        return {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}[e]
    return re.sub(r"\\(\n\s*|u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)", one, s, flags=re.S)

sources = sorted(ROOT.glob("tests/*.rs")) + sorted(ROOT.glob("tests/support/*.rs")) + sorted(ROOT.glob("handlers/*/tests/*.rs")) \
    + sorted(ROOT.glob("handlers/*/src/**/*.rs"))
for src in sources:
    for m in LIT.finditer(src.read_text()):
        raw = m.group(1) if m.group(1) is not None else unescape(m.group(2))
        if re.search(r"^\s*\[\[?(channels|routes|rings|gates|power|itsm|alerts)", raw, re.M) and len(raw) > 10:
            raw = raw.replace("{CONFIG}", "").replace("{}", "")
            raw = re.sub(r"\{[A-Za-z_][A-Za-z0-9_]*\}", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Insights/actionGroups/ops", raw)
            raw = raw.replace("{{", "{").replace("}}", "}")
            put("routing", f"test-{src.stem}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}", raw)
            continue
        try:
            v = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(v, (dict, list)) or len(raw) < 8:
            continue
        keys = set(v) if isinstance(v, dict) else set().union(*(set(x) for x in v if isinstance(x, dict)))
        target = ("alert" if "schemaId" in keys else "itsm_request" if keys & {"action", "number", "requestedBy"}
                  else "envelope" if keys & {"Data", "Metadata"} else "events" if keys & {"eventType", "specversion", "type"}
                  else "snapshot" if keys & {"maintenanceresources", "resources", "patchinstallationresources"} else None)
        if target:
            put(target, f"test-{src.stem}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}", raw)

try:  # the channels the routing unit tests share, with a few of their routes
    CHANNELS = unescape(open(ROOT / "handlers/core/src/routing.rs").read().split('const CHANNELS: &str = "')[1].split('";')[0])
except (IndexError, OSError):
    CHANNELS = '[channels.owner]\ntype = "email"\n[channels.mail]\ntype = "email"\nto = ["ops@example.com"]\n[channels.chat]\ntype = "teams"\nurl_env = "T"\n[rings]\nprod = "Ring2-*"\ndev = "Ring0-*"\n'
for i, routes in enumerate([
    '[[routes]]\nname = "a"\nmatch = { ring = "dev" }\nchannels = ["mail"]\n',
    '[[routes]]\nname = "a"\nchannels = ["mail"]\ncontinue = true\n[[routes]]\nname = "b"\nmatch = { outcome = "any_failure" }\nchannels = ["chat"]\n',
    '[[routes]]\nname = "t"\nmatch = { tags = { PatchOwner = "team-data" }, outcome = "any_failure" }\nchannels = ["mail"]\n',
    '[[routes]]\nname = "o"\nsplit_by_tag = "PatchOwner"\nrecipients = { team-web = ["web@example.com"] }\nchannels = ["owner"]\n',
]):
    put("routing", f"channels-and-routes-{i}", CHANNELS + routes)

# ---------------------------------------------------------------- action_token
# Tokens as patchwatch_engine::links mints them, under the fuzz target's two keys: valid, expired,
# signed by another key, naming the wrong key, an unknown action, an extra claim, no signature.
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(key, claims):
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key.encode(), ("patchwatch-link-v1." + payload).encode(), hashlib.sha256).digest()
    return payload + "." + b64(sig)


KEY_NEW = "fuzz-key-new-0123456789abcdef0123456789abcdef"
KEY_OLD = "fuzz-key-old-fedcba9876543210fedcba9876543210"
kid = lambda k: hashlib.sha256(k.encode()).hexdigest()[:8]
CLAIMS = {"run": TRUN, "cfg": "Ring0-Dev", "act": "acknowledge", "route": "owners", "group": "team-web",
          "exp": 1796100000, "nonce": "tPWPYauMMgpVjz-v26Aogg", "kid": kid(KEY_NEW)}
for name, value in {
    "valid-acknowledge": token(KEY_NEW, CLAIMS),
    "valid-rerun-old-key": token(KEY_OLD, dict(CLAIMS, act="rerun", kid=kid(KEY_OLD))),
    "valid-snooze-no-group": token(KEY_NEW, {k: v for k, v in dict(CLAIMS, act="snooze").items() if k != "group"}),
    "expired": token(KEY_NEW, dict(CLAIMS, exp=1700000000)),
    "unknown-key": token("another-key-" + "a" * 32, dict(CLAIMS, kid="00000000")),
    "wrong-kid": token(KEY_NEW, dict(CLAIMS, kid=kid(KEY_OLD))),
    "unknown-action": token(KEY_NEW, dict(CLAIMS, act="launch")),
    "extra-claim": token(KEY_NEW, dict(CLAIMS, admin=True)),
    "no-signature": b64(json.dumps(CLAIMS).encode()),
    "dots": "...",
}.items():
    put("action_token", name, value)

# ---------------------------------------------------------------- dictionaries (fuzz/dict/<target>.dict)
def esc(token):
    """A token in libFuzzer's dictionary syntax: "..." with \\\\, \\" and \\xNN escapes."""
    out = ""
    for b in token.encode():
        c = chr(b)
        out += "\\\\" if c == "\\" else '\\"' if c == '"' else c if 0x20 <= b < 0x7F else f"\\x{b:02X}"
    return f'"{out}"'

JSON = ["{", "}", "[", "]", ":", ",", '"', '":"', '","', "true", "false", "null", "-0", "1e999", "0.5", "-1",
        "18446744073709551616", "4294967296", "\\u0000", "\\ud800", "\\\\", "\\n", "\\\""]
EVENT_WORDS = ["id", "topic", "subject", "data", "eventType", "eventTime", "dataVersion", "metadataVersion", "specversion",
               "type", "time", "source", "correlationId", "maintenanceConfigurationId", "startDateTime", "endDateTime",
               "cancellationCutOffDateTime", "resourceSubscriptionIds", "status", "validationCode", "validationUrl",
               "Microsoft.Maintenance.PreMaintenanceEvent", "Microsoft.Maintenance.PostMaintenanceEvent",
               "Microsoft.EventGrid.SubscriptionValidationEvent", "/subscriptions/", "/resourceGroups/",
               "/providers/Microsoft.Maintenance/maintenanceConfigurations/", "/providers/microsoft.maintenance/applyupdates/",
               "00000000-0000-0000-0000-000000000000", "2026-11-10T22:00:00Z", "2023-05-09T15:55:00.3717473Z", "+01:00",
               "Succeeded", "1.0"]
WORDS = {
    "events": EVENT_WORDS,
    "envelope": ["Data", "Metadata", "event", "message", "sys", "MethodName", "DequeueCount", "eventGridEvent", "UtcNow",
                 "eyJ", "W3si", "==", "\\\""] + EVENT_WORDS,
    "alert": ["schemaId", "azureMonitorCommonAlertSchema", "Microsoft.Insights/activityLogs", "data", "essentials", "alertContext",
              "monitoringService", "Activity Log - Administrative", "monitorCondition", "Resolved", "Fired", "operationName",
              "authorization", "scope", "properties", "entity", "message", "alertTargetIDs", "Activity Log Event Description",
              "status", "caller", "eventTimestamp", "firedDateTime", "eventDataId", "alertId", "correlationId", "alertRule",
              "context", "activityLog", "resourceId", "description", "Succeeded", "Failed", "Started",
              "Microsoft.Maintenance/maintenanceConfigurations/write", "Microsoft.Maintenance/maintenanceConfigurations/delete",
              "Microsoft.Maintenance/configurationAssignments/write", "Microsoft.Maintenance/applyUpdates/write",
              "/maintenanceConfigurations/", "/configurationAssignments/", "/providers/microsoft.maintenance/configurationassignments/"],
    "itsm_request": ["action", "approve", "reject", "acknowledge", "rerun", "emergency", "requestedBy", "requestId", "configuration",
                     "change", "window", "start", "end", "run", "note", "machines", "classifications", "kbNumbers", "rebootSetting",
                     "maximumDuration", "decidedAt", "snooze", "silence", "until", "duration", "route", "machine", "tags",
                     "outcome", "channel", "Failed", "Incomplete", "WindowExceeded", "24h", "4h", "Critical", "Security", "UpdateRollUp", "FeaturePack", "ServicePack", "Definition",
                     "Tools", "Updates", "Other", "IfRequired", "Never", "Always", "PT2H", "P1DT30M", "number", "approval", "approved",
                     "rejected", "start_date", "end_date", "u_maintenance_configuration", "sys_updated_by", "sys_updated_on",
                     "2026-11-17 22:00:00", "2026-11-17T22:00:00Z", "/providers/microsoft.maintenance/applyupdates/",
                     "/providers/Microsoft.Compute/virtualMachines/", "/providers/Microsoft.HybridCompute/machines/",
                     "/providers/Microsoft.Maintenance/maintenanceConfigurations/", "/subscriptions/", "/resourceGroups/"],
    "itsm_signature": ["\n", "Bearer ", "v1,", "v1a,", "whsec_", "msg_", "1614265330", "1649367553", "1700000000",
                       "-9223372036854775808", "9223372036854775807", "bearer-secret-0123456789", "s3cret-token", " ", ",", "{}"],
    "snapshot": ["maintenanceresources", "patchinstallationresources", "patchassessmentresources", "resources", "id", "type",
                 "resourceGroup", "tags", "properties", "machineTags", "correlationId", "resourceId", "maintenanceRunId", "status",
                 "installedPatchCount", "failedPatchCount", "pendingPatchCount", "maintenanceWindowExceeded", "rebootStatus",
                 "startDateTime", "lastModifiedDateTime", "osType", "errorDetails", "details", "code", "message", "installationState",
                 "patchName", "kbId", "KBId", "version", "classifications", "extended", "instanceView", "powerState",
                 "storageProfile", "osDisk", "osName", "microsoft.maintenance/applyupdates", "microsoft.compute/virtualmachines",
                 "microsoft.hybridcompute/machines", "/patchinstallationresults", "/patchinstallationresults/", "/softwarepatches/",
                 "microsoft.compute/virtualmachines/patchinstallationresults",
                 "microsoft.compute/virtualmachines/patchinstallationresults/softwarepatches",
                 "/providers/microsoft.maintenance/applyupdates", "/providers/microsoft.compute/virtualmachines/",
                 "/providers/microsoft.hybridcompute/machines/", "PowerState/deallocated", "Failed"],
    "action_token": [".", "-", "_", "eyJ", "patchwatch-link-v1.", "run", "cfg", "act", "route", "group", "exp", "nonce", "kid",
                     "acknowledge", "rerun", "snooze"],
    "routing": ["[rings]", "[channels.", "[[routes]]", "[[gates]]", "[power]", "[[itsm.callers]]", "[alerts]", "type", "email", "teams",
                "slack", "webhook", "servicenow", "action_group", "to", "subject_prefix", "url_env", "url", "secret_env", "instance",
                "user_env", "password_env", "assignment_group", "id", "name", "channels", "match", "configuration", "ring",
                "subscription", "resource_group", "tags", "outcome", "any", "any_failure", "all_succeeded", "phase", "pre", "post",
                "continue", "split_by_tag", "recipients", "recipients_from_tag", "verdict", "when", "notice", "severity",
                "remind_after", "escalate_to", "fallback_recipients", "failed_percent >= 10", " and ", "4h", "24h", "warning",
                "critical", "info", "gate", "alert", "reminder", "undelivered", "quiet", "Failed", "Incomplete", "[suppress_alerts]",
                "resource_groups", "reboot_margin_minutes", "group_window", "previous_ring", "configurations",
                "max_failed_percent", "max_kb_failed_percent", "blocking_kbs", "max_no_result", "max_age_days", "source", "itsm",
                "configuration_field", "mode", "enforce", "dry_run", "undecided", "fail_closed", "fail_open", "notify",
                "concurrency", "stop_after", "signing_secret_env", "bearer_env", "actions", "approve", "reject", "acknowledge",
                "rerun", "emergency", "https://", "http://127.0.0.1", "ops@example.com", "Ring2-*", "PatchOwner", " = ", "\n",
                "[", "]", "{", "}", "\"", "'''", '"""', "true", "false", "1979-05-27T07:32:00Z", "inf", "nan", "0x7f", "#",
                "\\u00e9", "é", "€", "𝄞"],
}
DICT = FUZZ / "dict"
DICT.mkdir(exist_ok=True)
for target, words in WORDS.items():
    tokens = list(words) if target in ("routing", "itsm_signature") else JSON + words + [f'"{w}"' for w in words]
    lines = [f"# {target}: generated by fuzz/seeds/make_corpus.py"] + [esc(t) for t in dict.fromkeys(tokens)]
    (DICT / f"{target}.dict").write_text("\n".join(lines) + "\n")

total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
for t, c in sorted(written.items()):
    print(f"{t}: {c} seeds")
print(f"corpus total: {total} bytes")
