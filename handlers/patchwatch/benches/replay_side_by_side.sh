#!/usr/bin/env bash
# Whole replay (`patchwatch replay --stats`) of simulated runs at 1k/10k/50k/200k machines, and of a
# 5-machine run inside a 1,000,000-machine fleet, side by side with the Python peer
# (peer_replay.py) in the same run: wall time and peak memory (GNU time), five runs each,
# alternating, each replay with a fresh ledger and outbox. Every peer run checks its counts
# against what the replay just printed, and the script stops if they differ. RUNS (default 5)
# sets the number of runs of each.
# With BASELINE_BIN set, that binary (e.g. an older commit's) is measured alternately too.
# Usage: bash handlers/patchwatch/benches/replay_side_by_side.sh [WORKDIR] [SIZES...]
#   (after a release build; SIZES default to "1000 10000 50000 200000 fleet1000000")
# The 1M-machine fleet snapshot is 8.6 GB: it needs that much free disk, and the peer is not run
# on it (json.load would need tens of GB of memory).
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=${PATCHWATCH_BIN:-${CARGO_TARGET_DIR:-target}/release/patchwatch}
base=${BASELINE_BIN:-}
work=${1:-/tmp/patchwatch-replay-bench}
shift || true
sizes=${*:-1000 10000 50000 200000 fleet1000000}
peer=handlers/patchwatch/benches/peer_replay.py
[ -x "$bin" ] || { echo "build first: cargo build --release -p patchwatch (or set PATCHWATCH_BIN)" >&2; exit 2; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
for n in $sizes; do
  dir="$work/sim$n"
  [ -f "$dir/snapshot.json" ] && continue
  case $n in
    # The run's 5 machines in a fleet of N: every other row belongs to other machines or runs.
    fleet*) "$bin" simulate --machines 5 --fleet-machines "${n#fleet}" --subscriptions 12 --seed 3 --out "$dir" ;;
    # The run alone (no fleet around it), as in BENCHMARKS.md's "Whole replay".
    *) "$bin" simulate --machines "$n" --fleet-machines 0 --subscriptions 12 --seed 3 --out "$dir" ;;
  esac > /dev/null
done
# Freshly written snapshots are still being written back to disk for a minute or more (the
# 1,000,000-machine fleet is 8.6 GB), which would slow whichever runs come first.
sync
exec 3>&1  # the progress lines, whatever the measured command's output goes to
results="$work/results.tsv"
: > "$results"
# Runs "$@" under GNU time; appends "size tool seconds peak_KiB" to the results and prints it.
measure() {
  local n=$1 tool=$2
  shift 2
  /usr/bin/time -o "$work/time" -f "%e %M" "$@"
  read -r s kb < "$work/time"
  printf '%s\t%s\t%s\t%s\n' "$n" "$tool" "$s" "$kb" >> "$results"
  printf '%-13s %-10s %8s s %8.1f MiB\n' "$n" "$tool" "$s" "$(echo "$kb/1024" | bc -l)" >&3
}
replay() {
  local n=$1 tool=$2 exe=$3 dir="$work/sim$1"
  rm -rf "$work/state" "$work/outbox"
  measure "$n" "$tool" "$exe" replay "$dir/post-maintenance.json" --snapshot "$dir/snapshot.json" \
    --outbox "$work/outbox" --state "file://$work/state" --stats > "$work/replay-$tool.txt" 2> "$work/stats.txt"
}
for n in $sizes; do
  dir="$work/sim$n"
  printf '%-13s snapshot %s MB\n' "$n" "$(( $(stat -c %s "$dir/snapshot.json") / 1000000 ))"
  # Read once before timing, so that every tool reads it from the page cache (where it fits).
  cat "$dir/snapshot.json" > /dev/null
  for i in $(seq "${RUNS:-5}"); do
    replay "$n" patchwatch "$bin"
    if [ -n "$base" ]; then replay "$n" baseline "$base"; fi
    case $n in
      fleet*) ;;
      *) measure "$n" peer python3 "$peer" "$dir/post-maintenance.json" "$dir/snapshot.json" \
           "$work/replay-patchwatch.txt" > /dev/null ;;
    esac
  done
done
rm -rf "$work/state" "$work/outbox"
# The table: time range, peak memory range, and the peer's median time over patchwatch's.
python3 - "$results" "$work" <<'PY'
import collections, os, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, tool, s, kb = line.split("\t")
    rows[(n, tool)].append((float(s), int(kb) / 1024))
sizes = list(dict.fromkeys(k[0] for k in rows))
tools = list(dict.fromkeys(k[1] for k in rows if k[1] != "peer"))
def rng(v, fmt):
    lo, hi = min(v), max(v)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else fmt.format(lo) + "–" + fmt.format(hi)
print()
head = ["machines", "snapshot MB"] + [f"{t} {u}" for t in tools + ["peer"] for u in ("s", "MiB")]
head += [f"peer / {t}" for t in tools]
print("| " + " | ".join(head) + " |")
print("|" + "---:|" * len(head))
for n in sizes:
    mb = os.path.getsize(os.path.join(sys.argv[2], f"sim{n}", "snapshot.json")) / 1e6
    cells = [n, f"{mb:,.1f}"]
    for t in tools + ["peer"]:
        r = rows.get((n, t))
        cells += [rng([x[0] for x in r], "{:.2f}"), rng([x[1] for x in r], "{:.0f}")] if r else ["-", "-"]
    peer = rows.get((n, "peer"))
    for t in tools:
        mine = rows.get((n, t))
        cells.append(f"{statistics.median(x[0] for x in peer) / statistics.median(x[0] for x in mine):.1f}x" if peer and mine else "-")
    print("| " + " | ".join(cells) + " |")
PY
