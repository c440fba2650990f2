#!/usr/bin/env python3
"""Writes N open follow-ups (failed runs nobody acknowledged) into a file state store, in the
format patchwatch's FileStore keeps them (`<etag>\n<json>` under followups/<run hash>/...), for
the reminders benchmark. A tenth of the runs are acknowledged (acks/<run hash>).

Usage: follow_up_fixture.py N STATE_DIR FIRST_SENT(RFC 3339)
"""
import json, os, sys

def fnv64(s: str) -> int:
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def put(root, key, value):
    path = os.path.join(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("fixture-0\n" + json.dumps(value))

def main():
    n, root, first_sent = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    cfg_id = ("/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourceGroups/rg-patching/providers/"
              "Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod")
    for i in range(n):
        run = f"{cfg_id}/providers/microsoft.maintenance/applyupdates/2026{i:010d}"
        lower = run.lower()
        machines = [{"id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{i}-{m}",
                     "name": f"vm-{i}-{m}", "outcome": "Failed", "tags": [["PatchOwner", "team-web"]]} for m in range(5)]
        f = {"run_id": run, "configuration": "Ring2-Prod", "configuration_id": cfg_id, "route": "owners",
             "group": None, "verdict": "Failed", "window_start": "2026-11-10T22:00:00Z", "first_sent": first_sent,
             "channels": ["owners"], "recipients": [], "told": ["owners (email: owners@example.com)"],
             "machines": machines}
        target = "owners\x1f".lower()
        put(root, f"followups/{fnv64(lower):016x}/owners-{fnv64(target) & 0xFFFFFFFF:08x}", f)
        if i % 10 == 0:
            put(root, f"acks/{fnv64(lower):016x}", {"run_id": run, "by": "alice", "caller": "bench",
                                                    "note": None, "at": first_sent})

if __name__ == "__main__":
    main()
