#!/usr/bin/env bash
# Whole replays of one simulated run by several patchwatch builds, alternating, N rounds; prints
# each build's median and fastest wall time and median CPU time (user + system, GNU time). For
# comparing builds step by step; replay_side_by_side.sh compares against the Python peer.
# Usage: bash handlers/patchwatch/benches/replay_ab.sh SIMDIR ROUNDS BIN...
#   (SIMDIR from `patchwatch simulate --out SIMDIR`, e.g. /work/rpbench/sim50000)
set -euo pipefail
sim=$1 rounds=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "$sim/snapshot.json" > /dev/null
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    rm -rf "$work/state" "$work/outbox"
    /usr/bin/time -o "$work/time" -f "%e %U %S" "$bin" replay "$sim/post-maintenance.json" \
      --snapshot "$sim/snapshot.json" --outbox "$work/outbox" --state "file://$work/state" > /dev/null 2>&1
    echo "$bin $(cat "$work/time")" >> "$work/results"
  done
done
python3 - "$work/results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, wall, user, system = line.split()
    runs[b].append((float(wall), float(user) + float(system)))
for b, v in runs.items():
    print(f"{b}: wall median {statistics.median(w for w, _ in v):.3f} s, fastest {min(w for w, _ in v):.3f} s, "
          f"CPU median {statistics.median(c for _, c in v):.3f} s ({len(v)} runs)")
PY
