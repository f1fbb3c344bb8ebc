// Parameters of template.yaml for `make deploy`. Fields are documented in README.md
// ("Deploying to AWS"); leave one out to keep the template's default.
{
  // Seconds after an alert before its attributes are inspected (lets a burst aggregate).
  InspectionDelay: 300,
  // Seconds after dispatching before the report is reviewed (lets inspectors answer).
  ReviewDelay: 600,
  // Seconds a report accepts alerts with its AlertID, from its first alert.
  AggregationWindow: 3 * 3600,
  // Hops of inspector-found attributes that are inspected in turn.
  MaxAttributeDepth: 3,
  // Attributes inspected per report at most.
  MaxAttributesPerReport: 256,
  // Days before stored items expire (DynamoDB TTL).
  RetentionDays: 30,
  // ARN of your reviewer Lambda; empty: every report is published as unclassified.
  ReviewerLambdaArn: '',
  // Log filter of the functions (RUST_LOG syntax), e.g. 'info' or 'debug'.
  LogLevel: 'info',
  // 'true': also publish reports to the report topic as alerts arrive (status new/more),
  // as DeepAlert did. Emitters wanting only reviewed reports filter on status=published.
  PublishUnreviewed: 'false',
  // Sections of reports on the report topic: 'grouped' (by attribute; DeepAlert's fork)
  // or 'flat' (the original DeepAlert's list of findings).
  ReportSections: 'grouped',
  // Days the functions' and the state machine's logs are kept (a CloudWatch retention).
  LogRetentionDays: 30,
  // What the state machine logs: 'OFF', 'ERROR', 'FATAL' or 'ALL' (never execution data).
  StateMachineLogLevel: 'ERROR',
  // 'true': trace the functions and the state machine with AWS X-Ray.
  XRayTracing: 'false',
  // An SNS topic for alarms (dead-letter queues, failed reviews, function errors);
  // empty: no alarm.
  AlarmTopicArn: '',
  // Point-in-time recovery of the table.
  PointInTimeRecovery: 'true',
  // Encryption of topics, queues and table: 'none', 'create' (a key made by the stack),
  // or the ARN of your own key (see the README for the key policy it needs).
  KmsKey: 'none',
  // Other AWS accounts allowed to publish alerts, subscribe and send inspection results.
  TrustedAccountIds: [],
  // Rules that turn cloud events (CloudTrail, through EventBridge) into alerts: presets with
  // their options, and at most one directory of your own Rego rules (built into
  // event-router; `sources` are the EventBridge sources of its events). README, "Cloud events".
  Rules: [
    // notify: a notifier of Notifiers; the preset's default flow tells it (README, "Responding").
    { preset: 'root-login' },
    // { preset: 'suspicious-login-ip', options: { trusted_cidrs: ['203.0.113.0/24'] } },
    // { policies: 'examples/rules', sources: ['aws.signin'] },
  ],
  // GuardDuty and Security Hub findings as alerts (both on unless turned off here).
  Findings: { guardduty: true, securityhub: true },
  // Response flows after reports: notify, wait, check, remediate (README, "Responding").
  // Checked by `make deploy`; remediations run with a role holding only what they use.
  Notifiers: [
    // { name: 'sec-email', builtin: 'email', options: { sns_topic_arn: 'arn:aws:sns:REGION:ACCOUNT:sec-mail' } },
  ],
  // Where the notifiers' secrets are: name -> Secrets Manager ARN, or 'ssm:<parameter name>'.
  FlowSecrets: {},
  Flows: [
    // { name: 'contain-user', rule_id: 'non-compliant-user-created', min_severity: 'urgent',
    //   steps: [{ notify: 'sec-email' }, { wait: '10m' }, { check: 'iam-user-exists' },
    //           { remediate: 'iam-user', options: { dry_run: false } }] },
  ],
  // Build time, not a template parameter: a directory of Rego policies (relative to this
  // file) built into review-invoker; they take precedence over ReviewerLambdaArn.
  // Empty: none. Check them first with `deepalert policy test DIR`.
  ReviewerPolicies: '',
}
