# Unit tests of review.rego: `deepalert policy test examples/policies` runs every test_* rule.
package deepalert_test

import data.deepalert

threat_section := {"attribute": {"type": "ipaddr", "value": "198.51.100.23"}, "hosts": [{"author": "intel", "activities": [{"service_name": "threat-list"}]}]}

our_host_section := {"attribute": {"type": "ipaddr", "value": "10.0.1.23"}, "hosts": [{"author": "inventory", "hostname": ["web-1"]}]}

test_threat_reaching_our_host_is_urgent if {
	some v in deepalert.verdict with input as {"sections": [threat_section, our_host_section]}
	v.severity == "urgent"
	contains(v.reason, "web-1")
}

test_threat_alone_is_not_urgent if {
	verdicts := deepalert.verdict with input as {"sections": [threat_section]}
	every v in verdicts {
		v.severity != "urgent"
	}
}

test_nothing_known_is_safe if {
	verdicts := deepalert.verdict with input as {"sections": [our_host_section]}
	verdicts == {{"severity": "safe", "reason": "no attribute is on the threat list"}}
}
