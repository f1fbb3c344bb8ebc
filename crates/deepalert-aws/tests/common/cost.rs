//! What one alert costs on AWS, from what the stack really asked of it on moto: requests
//! by service (counted by `tests/moto/launcher.py`), Lambda invocations (the test's Lambda
//! service) and state transitions (the executions' histories). The prices are here, once.

use std::collections::BTreeMap;

use serde_json::Value;

/// US East, on-demand, in dollars per million. Duration (Lambda GB-seconds) is left out.
pub mod price {
    /// Step Functions Standard: per state transition.
    pub const TRANSITION: f64 = 25.0;
    pub const LAMBDA_REQUEST: f64 = 0.20;
    /// DynamoDB on-demand write and read request units.
    pub const WRU: f64 = 0.625;
    pub const RRU: f64 = 0.125;
    /// SNS publishes, per 64 KB chunk (deliveries to SQS and Lambda are free).
    pub const SNS_PUBLISH: f64 = 0.50;
    /// SQS requests, per 64 KB chunk.
    pub const SQS_REQUEST: f64 = 0.40;
}

/// Counts for one scenario, and how many alerts it sent.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub alerts: u32,
    pub transitions: f64,
    pub lambda_requests: f64,
    pub wru: f64,
    pub rru: f64,
    pub sns_publishes: f64,
    pub sqs_requests: f64,
    /// Requests by service and action, for the curious.
    pub by_action: BTreeMap<String, f64>,
}

impl Usage {
    /// From moto's request log (the stack's own requests), the Lambda invocations, and
    /// the batches the event source mappings delivered (each is a ReceiveMessage and a
    /// DeleteMessageBatch, as Lambda's pollers do). The producer's publish to the alert
    /// topic and its delivery to the alert queue are one SNS and one SQS request per alert.
    pub fn from_counts(
        alerts: u32,
        requests: &[Value],
        lambda_requests: usize,
        sqs_batches: usize,
        transitions: usize,
    ) -> Usage {
        let mut u = Usage {
            alerts,
            transitions: transitions as f64,
            lambda_requests: lambda_requests as f64,
            sns_publishes: alerts as f64,
            sqs_requests: alerts as f64 + 2.0 * sqs_batches as f64,
            ..Usage::default()
        };
        for r in requests {
            let service = r["service"].as_str().unwrap_or("");
            let action = r["action"].as_str().unwrap_or("");
            *u.by_action
                .entry(format!("{service} {action}"))
                .or_default() += 1.0;
            match service {
                "dynamodb" => {
                    u.wru += r["wru"].as_f64().unwrap_or(0.0);
                    u.rru += r["rru"].as_f64().unwrap_or(0.0);
                }
                "sns" if action == "Publish" || action == "PublishBatch" => {
                    u.sns_publishes += r["billed"].as_f64().unwrap_or(1.0);
                }
                // The functions' own requests; the event source mappings' receives and
                // deletes are counted as batches above.
                "sqs" => u.sqs_requests += r["billed"].as_f64().unwrap_or(1.0),
                _ => {}
            }
        }
        u
    }

    fn lines(&self) -> Vec<(&'static str, &'static str, f64, f64)> {
        let n = self.alerts as f64;
        vec![
            (
                "Step Functions",
                "state transitions",
                self.transitions / n,
                price::TRANSITION,
            ),
            (
                "Lambda",
                "requests",
                self.lambda_requests / n,
                price::LAMBDA_REQUEST,
            ),
            ("DynamoDB", "write request units", self.wru / n, price::WRU),
            ("DynamoDB", "read request units", self.rru / n, price::RRU),
            (
                "SNS",
                "publishes",
                self.sns_publishes / n,
                price::SNS_PUBLISH,
            ),
            ("SQS", "requests", self.sqs_requests / n, price::SQS_REQUEST),
        ]
    }

    /// Dollars per million alerts.
    pub fn per_million(&self) -> f64 {
        self.lines().iter().map(|(_, _, q, p)| q * p).sum()
    }

    pub fn table(&self, title: &str) -> String {
        let mut out = format!(
            "{title}\n  {:<15} {:<22} {:>10} {:>12}\n",
            "service", "what", "per alert", "$ per 1M"
        );
        for (service, what, q, p) in self.lines() {
            out.push_str(&format!(
                "  {service:<15} {what:<22} {q:>10.2} {:>12.2}\n",
                q * p
            ));
        }
        out.push_str(&format!(
            "  {:<15} {:<22} {:>10} {:>12.2}\n",
            "total",
            "",
            "",
            self.per_million()
        ));
        out
    }
}
