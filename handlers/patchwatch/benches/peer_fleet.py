#!/usr/bin/env python3
"""The peer for the fleet benchmark: a plain Python script doing the lint's data work on the
same snapshot, the way an operations team would script it (json.load, dicts, no libraries).

It parses every table, resolves static assignments and dynamic scopes, and computes patch-mode,
bypass-flag, unassigned, assessment-off, assessment-stale, pending-critical (not-in-a-schedule
and due-after-a-run), repeat-no-show, short-window, scope-limit and config-expiring, plus
compliance per owner and subscription. It does not compute next runs (ring-order, calendar) or
render anything (email, charts, workbook): patchwatch does strictly more.

Usage: peer_fleet.py SNAPSHOT AS_OF(RFC 3339)   -> prints counts as JSON
"""
import json
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone

PLATFORM = "automaticbyplatform"


def ts(s):
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


def tag(tags, names):
    low = {k.lower(): v for k, v in (tags or {}).items()}
    for n in names:
        if n.lower() in low:
            return low[n.lower()]
    return None


def main(path, as_of):
    now = ts(as_of)
    with open(path, "rb") as f:
        snap = json.load(f)
    machines, configs = {}, {}
    for r in snap.get("resources", []):
        t = r["type"].lower()
        p = r.get("properties") or {}
        if t in ("microsoft.compute/virtualmachines", "microsoft.hybridcompute/machines"):
            prof = p.get("osProfile") or {}
            os_type = ((p.get("storageProfile") or {}).get("osDisk") or {}).get("osType") or p.get("osType") or ""
            linux = "linux" in os_type.lower() or ("linuxConfiguration" in prof and "windows" not in os_type.lower())
            ps = (prof.get("linuxConfiguration" if linux else "windowsConfiguration") or {}).get("patchSettings") or {}
            machines[r["id"].lower()] = {
                "name": r.get("name"), "sub": (r.get("subscriptionId") or "").lower(), "rg": (r.get("resourceGroup") or "").lower(),
                "loc": (r.get("location") or "").lower().replace(" ", ""), "arc": t.startswith("microsoft.hybridcompute"),
                "linux": linux, "mode": (ps.get("patchMode") or "").lower(), "assess": (ps.get("assessmentMode") or "").lower(),
                "bypass": ((ps.get("automaticByPlatformSettings") or {}).get("bypassPlatformSafetyChecksOnUserSchedule")),
                "tags": r.get("tags") or {},
            }
        elif t == "microsoft.maintenance/maintenanceconfigurations":
            w = p.get("maintenanceWindow") or {}
            h, _, m = (w.get("duration") or "0:0").partition(":")
            configs[r["id"].lower()] = {"name": r.get("name"), "minutes": int(h or 0) * 60 + int(m or 0),
                                        "expires": w.get("expirationDateTime"), "classes": (p.get("installPatches") or {})}
    statics, scopes, runs_expected = defaultdict(set), [], defaultdict(set)
    run_config = {}
    for r in snap.get("maintenanceresources", []):
        t = r["type"].lower()
        p = r.get("properties") or {}
        if t == "microsoft.maintenance/configurationassignments":
            target = (p.get("resourceId") or "").lower().rstrip("/")
            cfg = (p.get("maintenanceConfigurationId") or "").lower()
            parts = target.strip("/").split("/")
            if len(parts) in (2, 4) and parts[0] == "subscriptions":
                scopes.append((r["id"], parts[1], cfg, p.get("filter") or {}))
            else:
                statics[target].add(cfg)
        elif t == "microsoft.maintenance/applyupdates":
            run = (p.get("correlationId") or "").lower()
            runs_expected[run].add((p.get("resourceId") or "").lower())
            run_config[run] = (p.get("maintenanceConfigurationId") or "").lower()
    results = defaultdict(dict)
    for r in snap.get("patchinstallationresources", []):
        if not r["type"].lower().endswith("/patchinstallationresults"):
            continue
        p = r.get("properties") or {}
        machine = r["id"].lower().split("/patchinstallationresults/")[0]
        start, end = ts(p.get("startDateTime")), ts(p.get("lastModifiedDateTime"))
        minutes = (end - start).total_seconds() / 60 if start and end else None
        results[(p.get("maintenanceRunId") or "").lower()][machine] = (p.get("status"), minutes)
    assessed, pending = {}, defaultdict(list)
    for r in snap.get("patchassessmentresources", []):
        t = r["type"].lower()
        p = r.get("properties") or {}
        if t.endswith("/patchassessmentresults"):
            assessed[r["id"].lower().split("/patchassessmentresults/")[0]] = p
        elif t.endswith("/softwarepatches"):
            classes = [c.lower() for c in p.get("classifications") or []]
            if any(c.startswith("critical") or c.startswith("security") for c in classes):
                pending[r["id"].lower().split("/patchassessmentresults/")[0]].append(ts(p.get("publishedDateTime")))

    def scope_matches(sub, f, m):
        if m["sub"] != sub:
            return False
        def any_of(key, val):
            vals = f.get(key) or []
            return not vals or val in [v.lower().replace(" ", "") if key == "locations" else v.lower() for v in vals]
        kind = "microsoft.hybridcompute/machines" if m["arc"] else "microsoft.compute/virtualmachines"
        if not (any_of("resourceTypes", kind) and any_of("resourceGroups", m["rg"]) and any_of("locations", m["loc"])
                and any_of("osTypes", "linux" if m["linux"] else "windows")):
            return False
        ts_ = (f.get("tagSettings") or {})
        wanted = ts_.get("tags") or {}
        if not wanted:
            return True
        low = {k.lower(): str(v).lower() for k, v in m["tags"].items()}
        hits = [k.lower() in low and (not vs or low[k.lower()] in [v.lower() for v in vs]) for k, vs in wanted.items()]
        return all(hits) if (ts_.get("filterOperator") or "Any").lower() == "all" else any(hits)

    coverage = {k: set(statics.get(k, ())) for k in machines}
    scope_sizes = {}
    by_sub = defaultdict(list)
    for k, m in machines.items():
        by_sub[m["sub"]].append(k)
    for sid, sub, cfg, f in scopes:
        n = 0
        for k in by_sub.get(sub.lower(), []):
            if scope_matches(sub.lower(), f, machines[k]):
                coverage[k].add(cfg)
                n += 1
        scope_sizes[sid] = n
    findings = defaultdict(int)
    runs_by_config = defaultdict(list)
    for run, cfg in run_config.items():
        stamp = run.rsplit("/", 1)[-1]
        try:
            start = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        if start < now:
            runs_by_config[cfg].append((start, run))
    for v in runs_by_config.values():
        v.sort()
    owners = defaultdict(lambda: [0, 0])
    for k, m in machines.items():
        assigned = bool(coverage[k])
        if not m["arc"] and assigned and m["mode"] != PLATFORM:
            findings["patch-mode"] += 1
        elif not m["arc"] and assigned and m["bypass"] is not True:
            findings["bypass-flag"] += 1
        if not assigned:
            findings["unassigned"] += 1
        if m["assess"] != PLATFORM:
            findings["assessment-off"] += 1
        a = assessed.get(k)
        last = ts((a or {}).get("lastModifiedDateTime"))
        if last is None or now - last > timedelta(hours=24):
            findings["assessment-stale"] += 1
        old = [p for p in pending.get(k, []) if p and p < now - timedelta(days=14)]
        last_run = max((runs_by_config[c][-1][0] for c in coverage[k] if runs_by_config.get(c)), default=None)
        if old and (not assigned or (last_run and any(p < last_run for p in old))):
            findings["pending-critical"] += 1
        for c in coverage[k]:
            recent = runs_by_config.get(c, [])[-3:]
            if len(recent) == 3 and all(k in runs_expected[r] and k not in results[r] for _, r in recent):
                findings["repeat-no-show"] += 1
        counts = (a or {}).get("availablePatchCountByClassification") or {}
        ok = a is not None and int(counts.get("critical", 0) or 0) + int(counts.get("security", 0) or 0) == 0
        o = owners[tag(m["tags"], ["PatchOwner", "owner"]) or "(none)"]
        o[0] += 1
        o[1] += ok
    for cid, c in configs.items():
        longest = max((mins for _, r in runs_by_config.get(cid, [])[-3:] for _, mins in results[r].values() if mins), default=None)
        if (longest and longest + 10 > c["minutes"]) or c["minutes"] < 90:
            findings["short-window"] += 1
        exp = c["expires"]
        if exp and not exp.startswith("9999"):
            e = datetime.strptime(exp[:16], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
            if e <= now + timedelta(days=30):
                findings["config-expiring"] += 1
    findings["scope-limit"] = sum(1 for n in scope_sizes.values() if n > 900)
    print(json.dumps({"machines": len(machines), "findings": dict(sorted(findings.items())),
                      "owners": {k: v for k, v in sorted(owners.items())}}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
