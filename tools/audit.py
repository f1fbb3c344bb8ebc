#!/usr/bin/env python3
"""`make audit`: cfn-lint and checkov on the templates tools/audit.yaml names. Every
finding fails, unless audit.yaml skips it with a reason (printed), for all resources or
for the ones it lists. A skip that matches nothing fails too, so the list stays true.

usage: audit.py [--checkov PATH]   (default: .venv-audit/bin/checkov)
"""
import argparse
import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkov", default=os.path.join(ROOT, ".venv-audit", "bin", "checkov"))
    ap.add_argument("--config", default=os.path.join(ROOT, "tools", "audit.yaml"))
    args = ap.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    templates = config["templates"]
    skips = config.get("checkov") or {}
    problems = []

    lint = subprocess.run([os.path.join(ROOT, ".venv", "bin", "cfn-lint")] + templates, cwd=ROOT,
                          capture_output=True, text=True)
    if lint.returncode != 0:
        problems.append("cfn-lint:\n" + (lint.stdout + lint.stderr).strip())
    print("cfn-lint: %s" % ("clean" if lint.returncode == 0 else "findings"))

    if not os.path.exists(args.checkov):
        sys.exit("audit: %s is missing: run `make audit` (it installs checkov into .venv-audit)" % args.checkov)
    cmd = [args.checkov, "--framework", "cloudformation", "--quiet", "-o", "json", "--skip-download"]
    for t in templates:
        cmd += ["-f", t]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    try:
        reports = json.loads(out.stdout)
    except ValueError:
        sys.exit("audit: checkov printed no JSON (exit %d):\n%s" % (out.returncode, out.stderr[-2000:]))
    if isinstance(reports, dict):
        reports = [reports]
    used = set()
    skipped = 0
    for report in reports:
        for r in report.get("results", {}).get("failed_checks", []):
            where = "%s:%s" % (r["file_path"].lstrip("/"), r["resource"].rsplit(".", 1)[-1])
            skip = skips.get(r["check_id"])
            if skip and (not skip.get("resources") or where in skip["resources"]):
                used.add((r["check_id"], where if skip.get("resources") else None))
                skipped += 1
                continue
            problems.append("checkov %s (%s): %s" % (r["check_id"], r["check_name"], where))
    for check, skip in skips.items():
        listed = skip.get("resources") or [None]
        for where in listed:
            if (check, where) not in used:
                problems.append("tools/audit.yaml skips %s%s, which no longer fails: remove it"
                                % (check, " for " + where if where else ""))
    print("checkov: %d findings skipped by tools/audit.yaml:" % skipped)
    for check, skip in sorted(skips.items()):
        print("  %s: %s" % (check, skip["reason"]))
    if problems:
        print("audit: FAILED\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print("audit: clean")


if __name__ == "__main__":
    main()
