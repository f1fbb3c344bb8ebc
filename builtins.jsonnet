// Parameters of the built-ins' stack for `make deploy-builtins` (examples/aws/builtins.yaml,
// deployed as <StackName>-builtins next to the deepalert stack named in deploy.jsonnet).
// Copy and edit that template to choose other built-ins; this file then holds its parameters.
{
  // ARN of the Secrets Manager secret holding the VirusTotal API key
  // (aws secretsmanager create-secret --name deepalert/virustotal --secret-string KEY).
  VirusTotalKeySecretArn: 'REPLACE-WITH-YOUR-SECRET-ARN',
  // SSM SecureString parameter holding the Slack webhook URL, without the leading slash
  // (aws ssm put-parameter --name /deepalert/slack-webhook-url --type SecureString --value URL).
  SlackWebhookParameter: 'deepalert/slack-webhook-url',
  // Days the Slack emitter remembers what it sent; keep it >= the stack's RetentionDays.
  RetentionDays: 30,
  // Reserved concurrency of the VirusTotal inspector: 0 reserves none (fits new accounts,
  // whose concurrency limit is 10); 1 keeps to the quota with one instance.
  VirusTotalReservedConcurrency: 0,
}
