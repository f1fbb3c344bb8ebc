#!/usr/bin/env python3
"""Example exec inspector for deepalert.

stdin:  a task, {"report_id": "...", "attribute": {"type", "key", "value", "context"}}
stdout: {"findings": [{"type": "host"|"user"|"binary", "content": {...}}],
         "attributes": [new attributes worth inspecting]}

It looks attributes up in two small tables standing in for a threat list and an asset
inventory. A local address that belongs to one of our hosts yields that host's owner as a
new `username` attribute, which deepalert sends back to the inspectors (once per report).

If INSPECTOR_LOG is set, each task received is appended to that file (one JSON line), so
you can watch what deepalert sends.
"""
import json
import os
import sys

THREATS = {
    "198.51.100.23": "SSH brute-force botnet (example threat list)",
    "198.51.100.99": "SSH brute-force botnet (example threat list)",
    "203.0.113.77": "credential-stuffing proxy (example threat list)",
}
ASSETS = {
    "10.0.1.23": {"hostname": "web-1", "owner": "alice", "os": "Amazon Linux 2023"},
}
USERS = {
    "alice": [
        {
            "service_name": "aws-console",
            "remote_addr": "192.0.2.10",
            "principal": "alice",
            "action": "ConsoleLogin",
            "last_seen": "2026-11-21T17:02:00Z",
        }
    ],
}


def inspect(attr):
    value = attr.get("value", "")
    kind = attr.get("type")
    findings, new_attributes = [], []
    if kind == "ipaddr" and value in THREATS:
        findings.append({
            "type": "host",
            "content": {
                "ipaddr": [value],
                "activities": [{"service_name": "threat-list", "action": THREATS[value]}],
            },
        })
    if kind == "ipaddr" and value in ASSETS:
        asset = ASSETS[value]
        findings.append({
            "type": "host",
            "content": {
                "ipaddr": [value],
                "hostname": [asset["hostname"]],
                "owner": [asset["owner"]],
                "os": [asset["os"]],
            },
        })
        new_attributes.append({
            "type": "username",
            "key": "owner of " + asset["hostname"],
            "value": asset["owner"],
            "context": ["subject"],
        })
    if kind == "username" and value in USERS:
        findings.append({"type": "user", "content": {"activities": USERS[value]}})
    return {"findings": findings, "attributes": new_attributes}


def main():
    task = json.load(sys.stdin)
    log = os.environ.get("INSPECTOR_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(task["attribute"], sort_keys=True) + "\n")
    json.dump(inspect(task["attribute"]), sys.stdout)


if __name__ == "__main__":
    main()
