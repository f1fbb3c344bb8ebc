#!/usr/bin/env python3
"""Example exec reviewer for deepalert.

stdin:  the compiled report (alerts, attributes, sections of findings, notes).
stdout: {"severity": "safe"|"unclassified"|"urgent", "reason": "..."}
        (print nothing to give no verdict: the report is then published as unclassified).

Policy: an address on the threat list talking to one of our hosts is urgent; a threat-list
hit alone is unclassified (someone should look); nothing known is safe.
"""
import json
import sys


def review(report):
    threats, our_hosts = [], []
    for section in report.get("sections", []):
        value = section["attribute"]["value"]
        for host in section.get("hosts", []):
            if any(a.get("service_name") == "threat-list" for a in host.get("activities", [])):
                threats.append(value)
            if host.get("hostname"):
                our_hosts.append("%s (owner %s)" % (host["hostname"][0], ", ".join(host.get("owner", [])) or "unknown"))
    if threats and our_hosts:
        return {
            "severity": "urgent",
            "reason": "threat-listed %s reached our host %s" % (", ".join(threats), ", ".join(our_hosts)),
        }
    if threats:
        return {"severity": "unclassified", "reason": "threat-listed %s; no host of ours involved" % ", ".join(threats)}
    return {"severity": "safe", "reason": "no attribute is on the threat list"}


if __name__ == "__main__":
    json.dump(review(json.load(sys.stdin)), sys.stdout)
