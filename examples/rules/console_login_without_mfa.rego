# An IAM user signed in to the console without MFA. Options (data.deepalert.options):
# `exempt_users`, user names this rule leaves alone (break-glass accounts, say).
package deepalert.rules

exempt contains user if {
	some user in data.deepalert.options.exempt_users
}

alert contains {
	"rule_id": "console-login-without-mfa",
	"rule_name": "Console sign-in without MFA",
	"alert_key": user,
	"description": sprintf("IAM user %s signed in to the console of account %s without MFA, from %s.", [user, input.account, ip]),
	"attributes": [
		{"type": "username", "key": "IAM user", "value": user, "context": ["subject"]},
		{"type": "ipaddr", "key": "source address", "value": ip, "context": ["remote", "client"]},
	],
} if {
	input.source == "aws.signin"
	input.detail.eventName == "ConsoleLogin"
	input.detail.userIdentity.type == "IAMUser"
	input.detail.responseElements.ConsoleLogin == "Success"
	input.detail.additionalEventData.MFAUsed != "Yes"
	user := input.detail.userIdentity.userName
	not exempt[user]
	ip := input.detail.sourceIPAddress
}
