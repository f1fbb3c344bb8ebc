package deepalert.rules

login(mfa) := {
	"source": "aws.signin",
	"detail-type": "AWS Console Sign In via CloudTrail",
	"account": "123456789012",
	"time": "2026-11-20T09:00:00Z",
	"detail": {
		"eventName": "ConsoleLogin",
		"sourceIPAddress": "198.51.100.23",
		"userIdentity": {"type": "IAMUser", "userName": "carol"},
		"responseElements": {"ConsoleLogin": "Success"},
		"additionalEventData": {"MFAUsed": mfa},
	},
}

test_without_mfa_alerts if {
	some a in alert with input as login("No")
	a.alert_key == "carol"
}

test_with_mfa_is_quiet if {
	count(alert) == 0 with input as login("Yes")
}

test_exempt_users_are_quiet if {
	count(alert) == 0 with input as login("No") with data.deepalert.options.exempt_users as ["carol"]
}
