//! The store on DynamoDB: one table, string keys `pk` / `sk`, TTL attribute `expires_at`.
//!
//! | item | pk | sk | written by |
//! |---|---|---|---|
//! | aggregation window | `aggr#<AlertID>` | `-` | receptor (conditional put: open a window or find it) |
//! | report head | `report#<id>` | `meta` | status, origin, result, counters |
//! | alert | `report#<id>` | `alert#<content hash>` | receptor (conditional: stored once); dispatcher marks it dispatched |
//! | attribute | `report#<id>` | `attr#<identity>` | dispatcher, gateway (conditional: claimed once) |
//! | finding | `report#<id>` | `finding#<hash>` | gateway (idempotent by content) |
//! | note | `report#<id>` | `note#<hash>` | any step |
//! | publication | `report#<id>` | `pub#<publication id>` | publisher (conditional, with the head) |
//! | timeline entry | `report#<id>` | `timeline#<ms>#<hash>` | flow runner |
//! | flow run | `report#<id>` | `flow#<flow>#<publication>` | flow runner |
//!
//! A report compiles from one (paginated) Query on its `pk`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use chrono::{DateTime, Utc};
use deepalert_core::flows::{FlowRun, FlowRunKey};
use deepalert_core::ports::{
    AlertReceipt, AttributeClaim, ClaimOutcome, NewAlert, PortError, PortResult, ReportHead, Store,
    StoredAlert,
};
use deepalert_core::{
    Alert, AttrHash, Attribute, Finding, FindingContent, Note, Report, ReportId, ReportStatus,
    ReviewResult, SectionsBuilder, TimelineEntry, sha256_hex,
};
use serde::Serialize;

type Item = HashMap<String, AttributeValue>;

/// DynamoDB items are at most 400 KB; keep published snapshots well under.
const MAX_SNAPSHOT_BYTES: usize = 350 * 1024;
/// Optimistic-concurrency retries before giving up (another writer kept winning).
const MAX_RACES: usize = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention: chrono::Duration,
    page_size: Option<i32>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn json<T: Serialize>(v: &T) -> AttributeValue {
    s(serde_json::to_string(v).expect("domain types always serialize"))
}

fn report_pk(id: ReportId) -> String {
    format!("report#{id}")
}

fn aws_err<E, R>(what: &str, e: SdkError<E, R>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    PortError::with_source(
        format!("dynamodb: {what}"),
        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    )
}

fn conditional_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// How a `TransactWriteItems` ended, once contention has been retried away.
enum Transacted {
    Done,
    /// Cancelled because conditions failed: which items (by position) failed theirs.
    /// Only this outcome means "claimed before", "over the limit" or "moved under us".
    ConditionsFailed(Vec<bool>),
}

/// Cancellation reasons that say "try again" (another writer on the same item, or
/// capacity), as opposed to a failed condition or a request that can never succeed.
const RETRYABLE_REASONS: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// Tries of a transaction cancelled by contention before the step fails (and its SQS
/// message or state-machine task is retried).
const CONTENTION_TRIES: u32 = 6;

enum Cancellation {
    Conditions(Vec<bool>),
    Contention(String),
    Refused(String),
}

fn cancellation<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<Cancellation> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(t) => {
            let codes: Vec<&str> = t
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None"))
                .collect();
            let listed = codes.join(", ");
            if codes.iter().any(|c| RETRYABLE_REASONS.contains(c)) {
                Some(Cancellation::Contention(listed))
            } else if codes
                .iter()
                .all(|c| *c == "None" || *c == "ConditionalCheckFailed")
                && codes.contains(&"ConditionalCheckFailed")
            {
                Some(Cancellation::Conditions(
                    codes
                        .iter()
                        .map(|c| *c == "ConditionalCheckFailed")
                        .collect(),
                ))
            } else {
                Some(Cancellation::Refused(listed))
            }
        }
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_) => {
            Some(Cancellation::Contention(e.to_string()))
        }
        _ => None,
    }
}

/// Exponential backoff with jitter: 25 ms, 50 ms, 100 ms… (± half).
async fn backoff(attempt: u32) {
    use std::hash::{BuildHasher, Hasher};
    let base = 25u64 << attempt.min(6);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = h.finish() % (base / 2 + 1);
    tokio::time::sleep(std::time::Duration::from_millis(base / 2 + jitter)).await;
}

fn get_s<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, key: &str) -> Option<i64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn bad_item(what: &str, why: impl std::fmt::Display) -> PortError {
    PortError::new(format!("dynamodb: malformed {what} item: {why}"))
}

fn parse_json<T: serde::de::DeserializeOwned>(item: &Item, key: &str, what: &str) -> PortResult<T> {
    let text = get_s(item, key).ok_or_else(|| bad_item(what, format!("no {key}")))?;
    serde_json::from_str(text).map_err(|e| bad_item(what, e))
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

impl DynamoStore {
    /// `retention`: items expire (DynamoDB TTL) this long after they are written.
    pub fn new(client: Client, table: impl Into<String>, retention: chrono::Duration) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retention,
            page_size: None,
        }
    }

    /// Items per Query page when compiling (tests use a small one to exercise paging).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    fn expires_at(&self, now: DateTime<Utc>) -> AttributeValue {
        n((now + self.retention).timestamp())
    }

    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_err("get item", e))?;
        Ok(out.item)
    }

    fn put(&self, item: Item, condition: Option<&str>) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()
            .expect("table name and item are set");
        TransactWriteItem::builder().put(put).build()
    }

    /// Runs a transaction, retrying (with backoff) cancellations caused by contention;
    /// `what` names it in errors.
    async fn transact(&self, what: &str, items: Vec<TransactWriteItem>) -> PortResult<Transacted> {
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match sent {
                Ok(_) => return Ok(Transacted::Done),
                Err(e) => e,
            };
            match cancellation(&e) {
                Some(Cancellation::Conditions(failed)) => {
                    return Ok(Transacted::ConditionsFailed(failed));
                }
                Some(Cancellation::Contention(why)) if attempt + 1 < CONTENTION_TRIES => {
                    tracing::debug!(what, reasons = %why, attempt, "transaction cancelled by contention; retrying");
                    backoff(attempt).await;
                    attempt += 1;
                }
                Some(Cancellation::Contention(why)) => {
                    return Err(PortError::new(format!(
                        "dynamodb: {what}: still cancelled after {CONTENTION_TRIES} tries ({why})"
                    )));
                }
                Some(Cancellation::Refused(why)) => {
                    return Err(PortError::new(format!(
                        "dynamodb: {what}: transaction cancelled ({why})"
                    )));
                }
                None => return Err(aws_err(what, e)),
            }
        }
    }

    /// BatchWriteItem, 25 at a time, retrying what it hands back under throttling.
    async fn batch_put(&self, what: &str, items: Vec<Item>) -> PortResult<()> {
        let mut requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("item set"),
                    )
                    .build()
            })
            .collect();
        let mut attempts = 0;
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| aws_err(what, e))?;
            let mut unprocessed = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if !unprocessed.is_empty() {
                attempts += 1;
                if attempts > 5 {
                    return Err(PortError::new(format!(
                        "dynamodb: {what}: still throttled after 5 retries"
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempts)).await;
            }
            unprocessed.extend(rest);
            requests = unprocessed;
        }
        Ok(())
    }

    fn alert_item(
        &self,
        report_id: ReportId,
        req: &NewAlert<'_>,
        joined_as: ReportStatus,
        review: bool,
    ) -> Item {
        HashMap::from([
            ("pk".into(), s(report_pk(report_id))),
            ("sk".into(), s(format!("alert#{}", req.alert_ref))),
            ("body".into(), json(req.alert)),
            ("joined_as".into(), s(joined_as.as_str())),
            ("run_review".into(), AttributeValue::Bool(review)),
            ("received_at".into(), n(req.now.timestamp_millis())),
            ("expires_at".into(), self.expires_at(req.now)),
        ])
    }

    /// The report an AlertID aggregates into now: opens a window with `candidate`, or
    /// finds the open one.
    async fn aggregation_target(&self, req: &NewAlert<'_>) -> PortResult<ReportId> {
        let pk = format!("aggr#{}", req.alert_id);
        let opened = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("-"))
            .item("report_id", s(req.candidate_report.to_string()))
            .item("created_at", n(req.now.timestamp_millis()))
            .item("expires_at", self.expires_at(req.now + req.window))
            .condition_expression("attribute_not_exists(pk) OR created_at <= :window_start")
            .expression_attribute_values(
                ":window_start",
                n((req.now - req.window).timestamp_millis()),
            )
            .send()
            .await;
        match opened {
            Ok(_) => Ok(req.candidate_report),
            Err(e) if conditional_failed(&e) => {
                let item = self
                    .get(&pk, "-")
                    .await?
                    .ok_or_else(|| bad_item("aggregation", "vanished"))?;
                get_s(&item, "report_id")
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(|| bad_item("aggregation", "bad report_id"))
            }
            Err(e) => Err(aws_err("open aggregation window", e)),
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_alert(&self, req: NewAlert<'_>) -> PortResult<AlertReceipt> {
        let report_id = self.aggregation_target(&req).await?;
        let pk = report_pk(report_id);
        for _ in 0..MAX_RACES {
            if let Some(existing) = self.get(&pk, &format!("alert#{}", req.alert_ref)).await? {
                let status = get_s(&existing, "joined_as")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad_item("alert", "bad joined_as"))?;
                let review = existing
                    .get("run_review")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false);
                return Ok(AlertReceipt {
                    report_id,
                    status,
                    duplicate: true,
                    review,
                });
            }
            let head = self.get(&pk, "meta").await?;
            let (items, receipt) = match head {
                // The window is ours (or its opener crashed before writing the head).
                None => {
                    let meta: Item = HashMap::from([
                        ("pk".into(), s(&pk)),
                        ("sk".into(), s("meta")),
                        ("status".into(), s(ReportStatus::New.as_str())),
                        ("detector".into(), s(&req.alert.detector)),
                        ("rule_id".into(), s(&req.alert.rule_id)),
                        ("created_at".into(), n(req.now.timestamp_millis())),
                        ("updated_at".into(), n(req.now.timestamp_millis())),
                        ("publications".into(), n(0)),
                        ("attr_count".into(), n(0)),
                        ("alert_count".into(), n(1)),
                        ("expires_at".into(), self.expires_at(req.now)),
                    ]);
                    (
                        vec![
                            self.put(meta, Some("attribute_not_exists(pk)")),
                            self.put(
                                self.alert_item(report_id, &req, ReportStatus::New, true),
                                Some("attribute_not_exists(pk)"),
                            ),
                        ],
                        AlertReceipt {
                            report_id,
                            status: ReportStatus::New,
                            duplicate: false,
                            review: true,
                        },
                    )
                }
                Some(meta) => {
                    let observed = get_s(&meta, "status").unwrap_or("").to_string();
                    let late = observed == ReportStatus::Published.as_str();
                    let update = Update::builder()
                        .table_name(&self.table)
                        .key("pk", s(&pk))
                        .key("sk", s("meta"))
                        .update_expression(
                            "SET #st = :more, updated_at = :now ADD alert_count :one",
                        )
                        .condition_expression("#st = :observed")
                        .expression_attribute_names("#st", "status")
                        .expression_attribute_values(":more", s(ReportStatus::More.as_str()))
                        .expression_attribute_values(":now", n(req.now.timestamp_millis()))
                        .expression_attribute_values(":observed", s(observed))
                        .expression_attribute_values(":one", n(1))
                        .build()
                        .expect("update is complete");
                    (
                        vec![
                            self.put(
                                self.alert_item(report_id, &req, ReportStatus::More, late),
                                Some("attribute_not_exists(pk)"),
                            ),
                            TransactWriteItem::builder().update(update).build(),
                        ],
                        AlertReceipt {
                            report_id,
                            status: ReportStatus::More,
                            duplicate: false,
                            review: late,
                        },
                    )
                }
            };
            match self.transact("store alert", items).await? {
                Transacted::Done => return Ok(receipt),
                // Someone else wrote this alert or moved the head: look again.
                Transacted::ConditionsFailed(_) => continue,
            }
        }
        Err(PortError::new(format!(
            "dynamodb: store alert: report {report_id} kept changing under {MAX_RACES} attempts"
        )))
    }

    async fn get_alert(
        &self,
        report_id: ReportId,
        alert_ref: &str,
    ) -> PortResult<Option<StoredAlert>> {
        self.get(&report_pk(report_id), &format!("alert#{alert_ref}"))
            .await?
            .map(|item| {
                Ok(StoredAlert {
                    alert: parse_json(&item, "body", "alert")?,
                    dispatched: item
                        .get("dispatched")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                })
            })
            .transpose()
    }

    async fn mark_dispatched(&self, report_id: ReportId, alert_ref: &str) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(report_pk(report_id)))
            .key("sk", s(format!("alert#{alert_ref}")))
            .update_expression("SET dispatched = :yes")
            // Never create an alert item from nothing.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| aws_err("mark alert dispatched", e))?;
        Ok(())
    }

    async fn claim_attributes(
        &self,
        report_id: ReportId,
        claims: &[AttributeClaim],
        claimer: &str,
        max_attributes: u32,
    ) -> PortResult<ClaimOutcome> {
        let pk = report_pk(report_id);
        let mut outcome = ClaimOutcome::default();
        for claim in claims {
            let sk = format!("attr#{}", claim.attribute.identity());
            let now = Utc::now();
            let attr: Item = HashMap::from([
                ("pk".into(), s(&pk)),
                ("sk".into(), s(&sk)),
                ("body".into(), json(&claim.attribute)),
                ("depth".into(), n(claim.depth)),
                ("claimer".into(), s(claimer)),
                ("claimed_at".into(), n(now.timestamp_millis())),
                ("expires_at".into(), self.expires_at(now)),
            ]);
            let count = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s("meta"))
                .update_expression("SET attr_count = attr_count + :one")
                .condition_expression("attr_count < :max")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":max", n(max_attributes))
                .build()
                .expect("update is complete");
            let result = self
                .transact(
                    "claim attribute",
                    vec![
                        self.put(attr, Some("attribute_not_exists(pk)")),
                        TransactWriteItem::builder().update(count).build(),
                    ],
                )
                .await?;
            match result {
                Transacted::Done => outcome.claimed.push(claim.attribute.clone()),
                Transacted::ConditionsFailed(failed) if failed.first() == Some(&true) => {
                    // Claimed before: ours again only if this same step claimed it.
                    let owner = self.get(&pk, &sk).await?;
                    if owner.as_ref().and_then(|i| get_s(i, "claimer")) == Some(claimer) {
                        outcome.claimed.push(claim.attribute.clone());
                    }
                }
                // Only the counter's condition failed: the report is full.
                Transacted::ConditionsFailed(_) => outcome.over_limit.push(claim.attribute.clone()),
            }
        }
        Ok(outcome)
    }

    async fn attribute_depth(
        &self,
        report_id: ReportId,
        attr: &AttrHash,
    ) -> PortResult<Option<u32>> {
        Ok(self
            .get(&report_pk(report_id), &format!("attr#{attr}"))
            .await?
            .and_then(|i| get_n(&i, "depth"))
            .map(|d| d as u32))
    }

    async fn put_findings(&self, findings: &[Finding]) -> PortResult<()> {
        let now = Utc::now();
        let items: Vec<Item> = findings
            .iter()
            .map(|f| {
                let (kind, content) = f.content.to_parts();
                HashMap::from([
                    ("pk".into(), s(report_pk(f.report_id))),
                    ("sk".into(), s(format!("finding#{}", f.identity()))),
                    ("attr_hash".into(), s(f.attribute.identity().0)),
                    ("author".into(), s(&f.author)),
                    ("kind".into(), s(kind)),
                    ("attribute".into(), json(&f.attribute)),
                    ("content".into(), s(content)),
                    ("created_at".into(), n(now.timestamp_millis())),
                    ("expires_at".into(), self.expires_at(now)),
                ])
            })
            .collect();
        self.batch_put("store findings", items).await
    }

    async fn append_timeline(
        &self,
        report_id: ReportId,
        entries: &[TimelineEntry],
    ) -> PortResult<()> {
        let items: Vec<Item> = entries
            .iter()
            .map(|e| {
                let body = serde_json::to_string(e).expect("entries serialize");
                // Sorted by time; the body's hash keeps entries of the same millisecond apart.
                let sk = format!(
                    "timeline#{:015}#{}",
                    e.at.timestamp_millis().max(0),
                    &sha256_hex(body.as_bytes())[..16]
                );
                HashMap::from([
                    ("pk".into(), s(report_pk(report_id))),
                    ("sk".into(), s(sk)),
                    ("body".into(), s(body)),
                    ("expires_at".into(), self.expires_at(e.at)),
                ])
            })
            .collect();
        self.batch_put("append to timeline", items).await
    }

    async fn get_flow_run(&self, key: &FlowRunKey) -> PortResult<Option<FlowRun>> {
        self.get(
            &report_pk(key.report_id),
            &format!("flow#{}#{}", key.flow, key.publication),
        )
        .await?
        .map(|item| parse_json(&item, "body", "flow run"))
        .transpose()
    }

    async fn put_flow_run(&self, run: &FlowRun) -> PortResult<()> {
        let now = Utc::now();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(report_pk(run.key.report_id)))
            .item(
                "sk",
                s(format!("flow#{}#{}", run.key.flow, run.key.publication)),
            )
            .item("body", json(run))
            .item("expires_at", self.expires_at(now))
            .send()
            .await
            .map_err(|e| aws_err("store flow run", e))?;
        Ok(())
    }

    async fn put_note(&self, report_id: ReportId, note: &Note) -> PortResult<()> {
        let hash = sha256_hex(
            serde_json::to_string(&(
                &note.author,
                note.attribute.as_ref().map(|a| a.identity()),
                &note.message,
            ))
            .expect("strings serialize")
            .as_bytes(),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(report_pk(report_id)))
            .item("sk", s(format!("note#{hash}")))
            .item("body", json(note))
            .item("created_at", n(note.created_at.timestamp_millis()))
            .item("expires_at", self.expires_at(note.created_at))
            .send()
            .await
            .map_err(|e| aws_err("store note", e))?;
        Ok(())
    }

    async fn report_head(&self, report_id: ReportId) -> PortResult<Option<ReportHead>> {
        let Some(meta) = self.get(&report_pk(report_id), "meta").await? else {
            return Ok(None);
        };
        Ok(Some(ReportHead {
            status: get_s(&meta, "status")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad_item("report head", "bad status"))?,
            detector: get_s(&meta, "detector").unwrap_or("").to_string(),
            rule_id: get_s(&meta, "rule_id").unwrap_or("").to_string(),
            alerts: get_n(&meta, "alert_count").unwrap_or(1) as u32,
            publications: get_n(&meta, "publications").unwrap_or(0) as u32,
        }))
    }

    async fn compile_report(&self, report_id: ReportId) -> PortResult<Option<Report>> {
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(report_pk(report_id)))
                .consistent_read(true)
                .set_limit(self.page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_err("compile report", e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        assemble(report_id, items)
    }

    async fn record_publication(
        &self,
        report: &Report,
        publication_id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Report> {
        let pk = report_pk(report.id);
        let pub_sk = format!("pub#{publication_id}");
        for _ in 0..MAX_RACES {
            if let Some(existing) = self.get(&pk, &pub_sk).await? {
                return parse_json(&existing, "snapshot", "publication");
            }
            let meta = self
                .get(&pk, "meta")
                .await?
                .ok_or_else(|| PortError::new(format!("report {} has no head item", report.id)))?;
            let count = get_n(&meta, "publications").unwrap_or(0);
            let mut snapshot = report.clone();
            snapshot.status = ReportStatus::Published;
            snapshot.published_at = Some(now);
            snapshot.publications = (count + 1) as u32;
            snapshot.shrink_to_fit(MAX_SNAPSHOT_BYTES, now);
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s("meta"))
                .update_expression(
                    "SET #st = :published, #res = :result, published_at = :now, updated_at = :now, publications = :next",
                )
                .condition_expression("publications = :count")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#res", "result")
                .expression_attribute_values(":published", s(ReportStatus::Published.as_str()))
                .expression_attribute_values(":result", json(&snapshot.result))
                .expression_attribute_values(":now", n(now.timestamp_millis()))
                .expression_attribute_values(":next", n(count + 1))
                .expression_attribute_values(":count", n(count))
                .build()
                .expect("update is complete");
            let publication: Item = HashMap::from([
                ("pk".into(), s(&pk)),
                ("sk".into(), s(&pub_sk)),
                ("number".into(), n(count + 1)),
                ("snapshot".into(), json(&snapshot)),
                ("published_at".into(), n(now.timestamp_millis())),
                ("expires_at".into(), self.expires_at(now)),
            ]);
            match self
                .transact(
                    "record publication",
                    vec![
                        TransactWriteItem::builder().update(update).build(),
                        self.put(publication, Some("attribute_not_exists(pk)")),
                    ],
                )
                .await?
            {
                Transacted::Done => return Ok(snapshot),
                // Another publication got in first: look again (it may be this one).
                Transacted::ConditionsFailed(_) => continue,
            }
        }
        Err(PortError::new(format!(
            "dynamodb: record publication: report {} kept changing under {MAX_RACES} attempts",
            report.id
        )))
    }
}

/// Builds the report from all its items (one Query), in the order things happened.
fn assemble(report_id: ReportId, items: Vec<Item>) -> PortResult<Option<Report>> {
    let mut meta = None;
    let mut alerts: Vec<(i64, String, Alert)> = vec![];
    let mut attrs: Vec<(i64, String, Attribute)> = vec![];
    let mut findings: Vec<(i64, String, Item)> = vec![];
    let mut notes: Vec<(i64, String, Note)> = vec![];
    let mut timeline: Vec<(String, TimelineEntry)> = vec![];
    for item in items {
        let sk = get_s(&item, "sk").unwrap_or("").to_string();
        if sk == "meta" {
            meta = Some(item);
        } else if let Some(hash) = sk.strip_prefix("alert#") {
            let at = get_n(&item, "received_at").unwrap_or(0);
            alerts.push((at, hash.to_string(), parse_json(&item, "body", "alert")?));
        } else if let Some(hash) = sk.strip_prefix("attr#") {
            let at = get_n(&item, "claimed_at").unwrap_or(0);
            attrs.push((
                at,
                hash.to_string(),
                parse_json(&item, "body", "attribute")?,
            ));
        } else if sk.starts_with("finding#") {
            findings.push((get_n(&item, "created_at").unwrap_or(0), sk, item));
        } else if sk.starts_with("timeline#") {
            timeline.push((sk, parse_json(&item, "body", "timeline entry")?));
        } else if sk.starts_with("note#") {
            let at = get_n(&item, "created_at").unwrap_or(0);
            notes.push((at, sk, parse_json(&item, "body", "note")?));
        }
    }
    let Some(meta) = meta else {
        return Ok(None);
    };
    alerts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    attrs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    findings.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    notes.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    timeline.sort_by(|a, b| a.0.cmp(&b.0));

    let attributes: Vec<Attribute> = attrs.into_iter().map(|a| a.2).collect();
    let mut sections = SectionsBuilder::new(&attributes);
    for (_, _, item) in &findings {
        let kind = get_s(item, "kind").unwrap_or("");
        let content = FindingContent::from_parts(kind, get_s(item, "content").unwrap_or(""))
            .map_err(|e| bad_item("finding", e))?;
        let author = get_s(item, "author").unwrap_or("").to_string();
        sections.add(parse_json(item, "attribute", "finding")?, author, content);
    }

    let result: Option<ReviewResult> = match get_s(&meta, "result") {
        Some(text) => serde_json::from_str(text).map_err(|e| bad_item("report head", e))?,
        None => None,
    };
    Ok(Some(Report {
        id: report_id,
        alerts: alerts.into_iter().map(|a| a.2).collect(),
        attributes,
        sections: sections.finish(),
        notes: notes.into_iter().map(|n| n.2).collect(),
        result,
        status: get_s(&meta, "status")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_item("report head", "bad status"))?,
        created_at: from_ms(get_n(&meta, "created_at").unwrap_or(0)),
        published_at: get_n(&meta, "published_at").map(from_ms),
        publications: get_n(&meta, "publications").unwrap_or(0) as u32,
        timeline: timeline.into_iter().map(|t| t.1).collect(),
    }))
}
