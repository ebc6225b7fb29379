#!/usr/bin/env python3
"""Makes deploy/kubernetes/monitoring/prometheusrule.yaml from deploy/alerts.yml.

deploy/alerts.yml is the one source of the alert rules: promtool checks it, a Prometheus
without the operator loads it as it is, and the PrometheusRule carries the same text
under `spec:`, so the two cannot say different things. Edit alerts.yml, then run

    python3 deploy/prometheusrule.py           # rewrites the PrometheusRule
    python3 deploy/prometheusrule.py --check   # exit 1 when it is out of date (CI)

alerts.yml is copied as text from its `groups:` line on (its header comment is left out),
indented under `spec:`, not re-serialised: the generated file reads like alerts.yml, and
a change to one shows as the same change in the other. Standard library only.
"""

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "alerts.yml"
TARGET = ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/alerts.yml by deploy/prometheusrule.py: do not edit. Edit
# alerts.yml and run `python3 deploy/prometheusrule.py`; deploy/check.sh fails when this
# file differs from what the script makes.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: workflow-engine
  labels:
    app.kubernetes.io/name: workflow-engine
spec:
"""


def render(alerts_text: str) -> str:
    """The PrometheusRule for the given alerts.yml text: its `groups:` onwards, under spec."""
    lines = alerts_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    except StopIteration:
        raise SystemExit(f"{ALERTS}: no top-level `groups:` line") from None
    body = [("  " + line) if line.strip() else "" for line in lines[start:]]
    while body and not body[-1]:
        body.pop()
    return HEADER + "\n".join(body) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when they differ")
    args = parser.parse_args()
    wanted = render(ALERTS.read_text())
    if not args.check:
        TARGET.write_text(wanted)
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    current = TARGET.read_text() if TARGET.exists() else ""
    if current == wanted:
        print(f"{TARGET.relative_to(ROOT)} matches deploy/alerts.yml")
        return 0
    diff = difflib.unified_diff(
        current.splitlines(), wanted.splitlines(), str(TARGET.relative_to(ROOT)), "generated", lineterm=""
    )
    print("\n".join(diff))
    print(f"{TARGET.relative_to(ROOT)} is out of date: run `python3 deploy/prometheusrule.py`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
