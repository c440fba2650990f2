#!/usr/bin/env bash
# The reminders timer's pass (`patchwatch remind`) over 1,000 and 10,000 open follow-ups (a
# tenth acknowledged), side by side with the Python peer (peer_remind.py) in the same run: wall
# time and peak memory (GNU time), three runs each, each on a fresh copy of the state. Also the
# idle pass (every step already sent), the one the timer makes every 15 minutes.
# Usage: bash handlers/patchwatch/benches/follow_up_side_by_side.sh [WORKDIR]   (after a release build)
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=${PATCHWATCH_BIN:-target/release/patchwatch}
work=${1:-/tmp/patchwatch-remind-bench}
[ -x "$bin" ] || { echo "build first: cargo build --release -p patchwatch" >&2; exit 2; }
benches=handlers/patchwatch/benches
first_sent=2026-12-01T00:00:00Z
as_of=2026-12-01T04:05:00Z
mkdir -p "$work"
cat > "$work/config.toml" <<'TOML'
[channels.owners]
type = "email"
to = ["owners@example.com"]

[[routes]]
name = "owners"
channels = ["owners"]
remind_after = ["4h", "24h"]
TOML
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
row() { printf '%-9s %-12s %10s %12.1f\n' "$1" "$2" "$3" "$(echo "$4/1024" | bc -l)"; }
printf '%-9s %-12s %10s %12s\n' followups tool seconds peak_MiB
for n in 1000 10000; do
  rm -rf "$work/fixture$n" && python3 "$benches/follow_up_fixture.py" "$n" "$work/fixture$n" "$first_sent"
  for i in 1 2 3; do
    rm -rf "$work/state" "$work/out" && cp -r "$work/fixture$n" "$work/state"
    read -r s kb < <(measure env PATCHWATCH_MAIL_TO=ops@example.com "$bin" remind --config "$work/config.toml" \
        --state "file://$work/state" --outbox "$work/out" --as-of "$as_of")
    row "$n" remind "$s" "$kb"
    read -r s kb < <(measure env PATCHWATCH_MAIL_TO=ops@example.com "$bin" remind --config "$work/config.toml" \
        --state "file://$work/state" --outbox "$work/out" --as-of "$as_of")
    row "$n" remind-idle "$s" "$kb"
    rm -rf "$work/state" "$work/out" && cp -r "$work/fixture$n" "$work/state"
    read -r s kb < <(measure python3 "$benches/peer_remind.py" "$work/state" "$work/out" "$as_of")
    row "$n" peer "$s" "$kb"
    read -r s kb < <(measure python3 "$benches/peer_remind.py" "$work/state" "$work/out" "$as_of")
    row "$n" peer-idle "$s" "$kb"
  done
done
