#!/usr/bin/env python3
"""The peer for the replay benchmark: a plain Python script computing a run's counts from the
same snapshot, the way an operations team would script it (json.load, dicts, no libraries).

It applies the rules of patchwatch's summary (crates/model/src/summary.rs, `machine`): the
run's machines from its `applyupdates` rows, each machine's latest result of this run, one
outcome per machine (failed, no result, window exceeded, reboot pending, completed with
warnings, succeeded; results of machines the run does not list count too), and the failed
patch rows of those results grouped by KB. It renders and sends nothing: patchwatch does
strictly more (the email, the ledger, the run history, follow-ups).

Usage: peer_replay.py EVENT SNAPSHOT [PATCHWATCH_OUTPUT]   -> prints the counts as JSON
With PATCHWATCH_OUTPUT (what `patchwatch replay` printed), checks that patchwatch's totals,
per-outcome counts and top failed patches are the same, and exits 1 if not.
"""
import json
import re
import sys
from datetime import datetime

LABELS = {
    "failed": "Failed",
    "no_result": "No result",
    "window_exceeded": "Window exceeded",
    "reboot_pending": "Reboot pending",
    "warnings": "Completed with warnings",
    "succeeded": "Succeeded",
}


def norm(run_id):
    return (run_id or "").strip().rstrip("/").lower()


def as_int(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if v >= 0 else None
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


def as_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() == "true"
    return False


def ts(s):
    if not isinstance(s, str):
        return None
    try:
        return datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def parent(id_, marker):
    low = id_.lower()
    at = low.find(marker)
    return None if at < 0 else low[:at].rstrip("/")


def last_segment(id_):
    return id_.rstrip("/").rsplit("/", 1)[-1]


def outcome(r):
    status = (r.get("status") or "").lower()
    reboot = (r.get("rebootStatus") or "").lower()
    if status in ("notstarted", "inprogress"):
        return "no_result"
    if (as_int(r.get("failedPatchCount")) or 0) > 0:
        return "failed"
    if as_bool(r.get("maintenanceWindowExceeded")):
        return "window_exceeded"
    if status == "failed":
        return "failed"
    if reboot in ("required", "failed"):
        return "reboot_pending"
    if status == "succeeded":
        return "succeeded"
    # completedwithwarnings, and any unknown status: never shown as success.
    return "warnings"


def counts(event_path, snapshot_path):
    with open(event_path, "rb") as f:
        event = json.load(f)
    event = event[0] if isinstance(event, list) else event
    run = norm(event["data"]["correlationId"])
    with open(snapshot_path, "rb") as f:
        snap = json.load(f)
    tables = {k.lower(): v for k, v in snap.items()}

    expected = {}
    for r in tables.get("maintenanceresources", []):
        if r["type"].lower() != "microsoft.maintenance/applyupdates":
            continue
        p = r.get("properties") or {}
        if norm(p.get("correlationId")) != run:
            continue
        machine = (p.get("resourceId") or "").strip() and p["resourceId"]
        if not machine:
            at = r["id"].lower().find("/providers/microsoft.maintenance/applyupdates")
            machine = r["id"][:at] if at >= 0 else r["id"]
        key = machine.lower()
        if "/providers/microsoft.compute/virtualmachines/" in key or "/providers/microsoft.hybridcompute/machines/" in key:
            expected.setdefault(key, machine)

    results, failed_rows = {}, []
    for r in tables.get("patchinstallationresources", []):
        t = r["type"].lower()
        p = r.get("properties") or {}
        if t.endswith("/patchinstallationresults"):
            if norm(p.get("maintenanceRunId")) != run:
                continue
            key = parent(r["id"], "/patchinstallationresults/")
            if key is None:
                continue
            modified = ts(p.get("lastModifiedDateTime"))
            old = results.get(key)
            # A retried install: the latest result counts (a result without a time is oldest).
            if old is None or (modified is not None and (old[1] is None or modified > old[1])):
                results[key] = (r["id"].lower(), modified, p, r["id"][: len(key)])
        elif t.endswith("/patchinstallationresults/softwarepatches"):
            if (p.get("installationState") or "").lower() == "failed":
                failed_rows.append(r)

    c = dict.fromkeys(LABELS, 0)
    names = {}
    for key, machine in expected.items():
        r = results.get(key)
        c["no_result" if r is None else outcome(r[2])] += 1
        names[key] = last_segment(machine)
    for key, r in results.items():
        if key not in expected:
            c[outcome(r[2])] += 1
            names[key] = last_segment(r[3])

    by_result = {r[0]: key for key, r in results.items()}
    groups = {}
    for row in failed_rows:
        result_id = parent(row["id"], "/softwarepatches/")
        machine = by_result.get(result_id)
        if machine is None:
            continue
        p = row.get("properties") or {}
        kb = p.get("kbId") or p.get("Kbid") or p.get("kbid") or p.get("KBId")
        if kb is not None and kb.strip():
            key = "KB" + strip_kb(kb)
        else:
            key = p.get("patchName") or last_segment(row["id"])
        g = groups.setdefault(key.lower(), [key, set()])
        g[1].add(names[machine])
    patches = sorted(((g[0], len(g[1])) for g in groups.values()), key=lambda kv: (-kv[1], kv[0]))

    total = sum(c.values())
    patched = c["succeeded"] + c["warnings"] + c["reboot_pending"]
    return {"total": total, "patched": patched, "counts": c, "failed_patches": patches}


def strip_kb(kb):
    # Rust's trim_start_matches("KB").trim_start_matches("kb"): every leading "KB", then every "kb".
    while kb.startswith("KB"):
        kb = kb[2:]
    while kb.startswith("kb"):
        kb = kb[2:]
    return kb


def check(mine, output_path):
    """Compares with what `patchwatch replay` printed: the subject, the totals line and the
    failed patches it lists (its top ten)."""
    with open(output_path, encoding="utf-8") as f:
        text = f.read()
    problems = []
    m = re.search(r" — (\d+) of (\d+) patched", text)
    if not m:
        return ["no `N of M patched` subject in patchwatch's output"]
    if (int(m.group(1)), int(m.group(2))) != (mine["patched"], mine["total"]):
        problems.append(f"patched/total: patchwatch {m.group(1)}/{m.group(2)}, peer {mine['patched']}/{mine['total']}")
    theirs = dict.fromkeys(LABELS, 0)
    by_label = {v: k for k, v in LABELS.items()}
    for line in text.splitlines():
        parts = line.strip().split(" · ")
        found = [re.fullmatch(r"(.+) (\d+)", part) for part in parts]
        if found and all(f and f.group(1) in by_label for f in found):
            for f in found:
                theirs[by_label[f.group(1)]] = int(f.group(2))
            break
    if theirs != mine["counts"]:
        problems.append(f"outcomes: patchwatch {theirs}, peer {mine['counts']}")
    listed = re.findall(r"^  (\S+) +(\d+) machine\(s\)  ", text, re.M)
    theirs_patches = [(k, int(n)) for k, n in listed]
    if theirs_patches != mine["failed_patches"][: len(theirs_patches)] or (
        not theirs_patches and mine["failed_patches"]
    ):
        problems.append(f"failed patches: patchwatch {theirs_patches}, peer {mine['failed_patches'][:10]}")
    return problems


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    mine = counts(sys.argv[1], sys.argv[2])
    print(json.dumps(mine))
    if len(sys.argv) == 4:
        problems = check(mine, sys.argv[3])
        for p in problems:
            print(f"peer_replay: differs from patchwatch: {p}", file=sys.stderr)
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()
