# Example reviewer policy. Input: the compiled report (see README, "Reports").
# Add verdicts to `verdict`; the most severe one wins.
package deepalert

# Findings by the example inspector's threat list.
threat_listed contains s.attribute.value if {
	some s in input.sections
	some h in s.hosts
	some a in h.activities
	a.service_name == "threat-list"
}

# Hosts our inventory knows (the inspector found a hostname for them).
our_hosts contains h.hostname[0] if {
	some s in input.sections
	some h in s.hosts
	count(h.hostname) > 0
}

# A threat-listed address reached one of our hosts: page someone.
verdict contains {
	"severity": "urgent",
	"reason": sprintf("threat-listed %s reached our host %s", [concat(", ", sort(threat_listed)), concat(", ", sort(our_hosts))]),
} if {
	count(threat_listed) > 0
	count(our_hosts) > 0
}

# A threat-listed address alone: worth a look, not a page.
verdict contains {
	"severity": "unclassified",
	"reason": sprintf("threat-listed %s; no host of ours involved", [concat(", ", sort(threat_listed))]),
} if {
	count(threat_listed) > 0
}

# Nothing on the threat list.
verdict contains {"severity": "safe", "reason": "no attribute is on the threat list"} if {
	count(threat_listed) == 0
}
