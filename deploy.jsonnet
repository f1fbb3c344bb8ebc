// Where `make deploy` puts deepalert. Fields are documented in README.md ("Deploying to AWS").
{
  // CloudFormation stack name; also prefixes the exported outputs (<StackName>-AlertTopicArn…).
  StackName: 'deepalert',
  // AWS region to deploy to.
  Region: 'us-east-1',
  // An existing S3 bucket in that region where the Lambda zips are uploaded.
  CodeS3Bucket: 'REPLACE-WITH-YOUR-CODE-BUCKET',
  // Key prefix for the uploaded zips (may be empty).
  CodeS3Prefix: 'deepalert',
  // Other regions whose cloud events (sign-ins, API calls, findings) reach the rules: each
  // gets a small forwarding stack (forwarder.yaml) sending them to Region's event bus.
  Regions: [],
}
