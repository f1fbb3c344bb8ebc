#!/usr/bin/env python3
"""Example exec emitter for deepalert.

stdin: the published report. Exit status 0 means delivered; anything else makes deepalert
retry (max_attempts), then record the failure as a note on the report.

Appends each report as one JSON line to EMITTER_OUT (default: emitted.jsonl) and prints a
one-line summary on stderr (deepalert logs it only if the emitter fails).
"""
import json
import os
import sys

report = json.load(sys.stdin)
with open(os.environ.get("EMITTER_OUT", "emitted.jsonl"), "a", encoding="utf-8") as out:
    out.write(json.dumps(report, sort_keys=True) + "\n")
result = report.get("result") or {}
print("%s %s: %s" % (report["id"], result.get("severity"), result.get("reason")), file=sys.stderr)
