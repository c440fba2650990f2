#!/usr/bin/env python3
"""The peer of `patchwatch remind` for the benchmark: a plain script doing the same job over the
same state directory. For every open follow-up: skip it if its run is acknowledged (and record
that), read the configuration's run history for later runs, find the latest due reminder step
(4 h, 24 h after the first message), claim that step once (an exclusive-create ledger file),
render a text and HTML email, write it to the outbox as .eml, and record the delivery.

Usage: peer_remind.py STATE_DIR OUTBOX AS_OF(RFC 3339)
"""
import datetime as dt, html, json, os, sys
from email.message import EmailMessage

STEPS = [dt.timedelta(hours=4), dt.timedelta(hours=24)]

def read(path):
    with open(path) as f:
        f.readline()
        return json.loads(f.read())

def when(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))

def main():
    state, outbox, as_of = sys.argv[1], sys.argv[2], when(sys.argv[3])
    os.makedirs(outbox, exist_ok=True)
    ledger = os.path.join(state, "peer-ledger")
    os.makedirs(ledger, exist_ok=True)
    sent = closed = 0
    for dirpath, _, files in os.walk(os.path.join(state, "followups")):
        for name in files:
            if name.startswith("."):
                continue
            f = read(os.path.join(dirpath, name))
            if f.get("closed"):
                continue
            run_hash = os.path.basename(dirpath)
            if os.path.exists(os.path.join(state, "acks", run_hash)):
                closed += 1
                continue
            history = os.path.join(state, "history", f["configuration"].lower())
            fixed = set()
            if os.path.isdir(history):
                for h in os.listdir(history):
                    r = read(os.path.join(history, h))
                    if when(r["window_start"]) > when(f["window_start"]):
                        fixed.update(n.lower() for n in r.get("succeeded", []))
            open_machines = [m for m in f["machines"] if m["name"].lower() not in fixed]
            due = [i for i, d in enumerate(STEPS) if when(f["first_sent"]) + d <= as_of]
            if not open_machines or not due:
                continue
            step = due[-1]
            claim = os.path.join(ledger, f"{run_hash}-{name}-{step + 1}")
            try:
                fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            run = f["run_id"].rsplit("/", 1)[-1]
            title = f"Reminder {step + 1} of {len(STEPS)}: {f['configuration']}: run {run} still {f['verdict']}"
            listed = ", ".join(f"{m['name']} ({m['outcome']})" for m in open_machines)
            facts = [("Run", f["run_id"]), ("Open since", f["first_sent"]), ("Told", "; ".join(f["told"])),
                     ("Still open", listed), ("Route", f["route"])]
            msg = EmailMessage()
            msg["Subject"] = f"[patchwatch] Warning: {title}"
            msg["From"] = "patchwatch@example.com"
            msg["To"] = "owners@example.com"
            msg.set_content(title + "\n\n" + "\n".join(f"{k}: {v}" for k, v in facts))
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in facts)
            msg.add_alternative(f"<h2>{html.escape(title)}</h2><table>{rows}</table>", subtype="html")
            with open(os.path.join(outbox, f"{run}-remind-{step + 1}.eml"), "wb") as out:
                out.write(bytes(msg))
            os.write(fd, json.dumps({"state": "sent", "subject": title, "at": as_of.isoformat()}).encode())
            os.close(fd)
            sent += 1
    print(f"{sent} sent, {closed} acknowledged")

if __name__ == "__main__":
    main()
