#!/usr/bin/env bash
# Fleet lint and report at 1k/10k/50k machines, side by side with the Python peer
# (peer_fleet.py) in the same run: wall time and peak memory (GNU time), three runs each.
# Usage: bash handlers/patchwatch/benches/fleet_side_by_side.sh [WORKDIR]   (after a release build)
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=target/release/patchwatch
work=${1:-/tmp/patchwatch-fleet-bench}
[ -x "$bin" ] || { echo "build first: cargo build --release -p patchwatch" >&2; exit 2; }
mkdir -p "$work"
for n in 1000 10000 50000; do
  [ -f "$work/fleet$n/snapshot.json" ] || "$bin" simulate --machines 40 --seed 3 --subscriptions 12 \
      --fleet-machines "$n" --out "$work/fleet$n" --expected-findings "$work/fleet$n/key.json" > /dev/null
done
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
printf '%-8s %-7s %10s %12s\n' machines tool seconds peak_MiB
for n in 1000 10000 50000; do
  snap="$work/fleet$n/snapshot.json"
  as_of=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['asOf'])" "$work/fleet$n/key.json")
  for i in 1 2 3; do
    read -r s kb < <(measure "$bin" lint --snapshot "$snap" --format json)
    printf '%-8s %-7s %10s %12.1f\n' "$n" lint "$s" "$(echo "$kb/1024" | bc -l)"
    read -r s kb < <(measure python3 handlers/patchwatch/benches/peer_fleet.py "$snap" "$as_of")
    printf '%-8s %-7s %10s %12.1f\n' "$n" peer "$s" "$(echo "$kb/1024" | bc -l)"
    rm -rf "$work/out" "$work/state"
    read -r s kb < <(measure "$bin" report --snapshot "$snap" --outbox "$work/out" --xlsx "$work/out.xlsx" \
        --html "$work/out.html" --state "file://$work/state")
    printf '%-8s %-7s %10s %12.1f\n' "$n" report "$s" "$(echo "$kb/1024" | bc -l)"
  done
done
