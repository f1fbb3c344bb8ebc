#!/usr/bin/env python3
"""An exec inspector that answers in DeepAlert's own messages.

DeepAlert's Go `inspector` package sends, per task, one `Finding` message per finding and
one `ReportAttribute` message for all new attributes. deepalert reads the same messages
from an exec inspector's stdout, one JSON document per line, so an inspector written for
DeepAlert works under `deepalert serve` (and on AWS, on the inspection queue) unchanged.

stdin:  a task, {"report_id": "...", "attribute": {...}}
stdout: lines of {"report_id", "author", "attribute", "type", "content"} (findings) and
        {"report_id", "author", "origin_attr", "attributes"} (new attributes)

If INSPECTOR_LOG is set, each attribute received is appended to it (one JSON line).
"""
import json
import os
import sys

AUTHOR = "deepalert-style"
C2 = {"198.51.100.23": "c2.example.net"}


def main():
    task = json.load(sys.stdin)
    attr = task["attribute"]
    if os.environ.get("INSPECTOR_LOG"):
        with open(os.environ["INSPECTOR_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(attr) + "\n")
    out = []
    if attr["type"] == "ipaddr" and attr["value"] in C2:
        out.append({"report_id": task["report_id"], "author": AUTHOR, "attribute": attr, "type": "host",
                    "content": {"ipaddr": [attr["value"]], "country": ["NL"],
                                "activities": [{"service_name": "threat-intel", "remote_addr": attr["value"],
                                                "principal": "", "action": "listed as C2", "target": "",
                                                "last_seen": "0001-01-01T00:00:00Z"}]}})
        # As the Go package does: new attributes get the task attribute's time.
        out.append({"report_id": task["report_id"], "author": AUTHOR, "origin_attr": attr,
                    "attributes": [{"type": "domain", "key": "resolves to", "value": C2[attr["value"]],
                                    "context": ["remote"], "timestamp": attr.get("timestamp")}]})
    elif attr["type"] == "domain" and attr["value"] in C2.values():
        out.append({"report_id": task["report_id"], "author": AUTHOR, "attribute": attr, "type": "host",
                    "content": {"related_urls": [{"url": "http://%s/payload" % attr["value"], "reference": "",
                                                  "timestamp": "0001-01-01T00:00:00Z", "source": "sandbox"}]}})
    for message in out:
        print(json.dumps(message))


if __name__ == "__main__":
    main()
