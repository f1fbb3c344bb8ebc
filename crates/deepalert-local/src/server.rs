//! The HTTP API of `deepalert serve`.
//!
//! - `POST /api/v1/alerts` — one alert (JSON) → `202 {"report_id", "status"}`
//! - `POST /api/v1/events` — cloud events (one EventBridge event, an array, or a CloudTrail
//!   log file) → the rules' alerts: `202 {"alerts": [...]}`, or `200 {"alerts": []}`
//! - `GET  /api/v1/reports?status=&severity=&detector=&q=&limit=&offset=` →
//!   `{"reports": [summary…]}`, most recently changed first
//! - `GET  /api/v1/reports/{id}` → the report
//! - `GET  /api/v1/reports/{id}/timeline` → `{"report_id", "timeline": [entry…]}`, oldest first
//! - `GET  /`, `/reports/{id}`, `/login` → the web pages (see [`crate::web`])
//! - `GET  /healthz` → `{"status": "ok"}` (no key needed)
//!
//! Errors are JSON `{"error": "..."}` with a 4xx/5xx status. When an API key is set,
//! `/api/*` requires `Authorization: Bearer <key>` (a page's session cookie is not enough:
//! the API changes state, the pages only read).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deepalert_core::ports::Store;
use deepalert_core::rules::{RuleSet, parse_events};
use deepalert_core::services::PipelineError;
use deepalert_core::{AlertError, ReportId, ReportStatus, Severity, parse_alert};
use serde::Deserialize;
use serde_json::json;
use tracing::{error, warn};

use crate::runtime::Engine;
use crate::store::{ReportFilter, SeverityFilter};
use crate::web;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_LIST_LIMIT: u32 = 50;
const MAX_LIST_LIMIT: u32 = 1000;

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    rules: Arc<RuleSet>,
    api_key: Option<Arc<str>>,
}

pub fn router(engine: Arc<Engine>, rules: Arc<RuleSet>, api_key: Option<String>) -> Router {
    let state = AppState {
        engine,
        rules,
        api_key: api_key.map(Arc::from),
    };
    let api = Router::new()
        .route("/alerts", post(post_alert))
        .route("/events", post(post_events))
        .route("/reports", get(list_reports))
        .route("/reports/{id}", get(get_report))
        .route("/reports/{id}/timeline", get(get_timeline))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    let pages = web::router(web::Web::new(state.engine.clone(), state.api_key.clone()));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(state)
        .merge(pages)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &state.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()));
        if !ok {
            let why = if given.is_none() {
                "missing API key: send Authorization: Bearer <key>"
            } else {
                "wrong API key"
            };
            return ApiError(StatusCode::UNAUTHORIZED, why.into()).into_response();
        }
    }
    next.run(req).await
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body is over the limit of {MAX_BODY_BYTES} bytes")
        } else {
            rejection.body_text()
        };
        ApiError(status, msg)
    })
}

/// Cloud events → the rules' alerts, each received like a posted alert. Each event (each
/// record of a CloudTrail file) stands alone: a bad one is listed in `errors` with its
/// index, and the others' alerts are still stored.
async fn post_events(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = body_or_error(body)?;
    let events = parse_events(&body).map_err(|e| {
        warn!(error = %e, "events refused");
        ApiError(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let mut skipped = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                warn!(event = i, error = %e, "event refused");
                errors.push(json!({"event": i, "error": e.to_string()}));
                continue;
            }
        };
        let evaluation = state.rules.evaluate(event);
        for e in evaluation.skipped {
            warn!(event = i, rule = %e.rule, reason = %e.message, "rule skipped an event");
            skipped.push(json!({"event": i, "rule": e.rule, "reason": e.message}));
        }
        for e in evaluation.errors {
            warn!(event = i, rule = %e.rule, error = %e.message, "rule failed on an event");
            errors.push(json!({"event": i, "rule": e.rule, "error": e.to_string()}));
        }
        for alert in evaluation.alerts {
            match state.engine.receive(&alert).await {
                Ok(receipt) => alerts.push(json!({
                    "report_id": receipt.report_id,
                    "status": receipt.status,
                    "detector": alert.detector,
                    "rule_id": alert.rule_id,
                    "alert_key": alert.alert_key,
                })),
                Err(PipelineError::Invalid(e)) => {
                    errors.push(json!({"event": i, "error": format!("invalid alert: {e}")}));
                }
                Err(e) => {
                    error!(error = %e, "storing an event's alert failed");
                    return Err(ApiError(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the alerts could not be stored; retry".into(),
                    ));
                }
            }
        }
    }
    let status = match (alerts.is_empty(), errors.is_empty()) {
        (false, _) => StatusCode::ACCEPTED,
        (true, true) => StatusCode::OK,
        (true, false) => StatusCode::BAD_REQUEST,
    };
    let mut answer = json!({ "alerts": alerts });
    if !skipped.is_empty() {
        answer["skipped"] = json!(skipped);
    }
    if !errors.is_empty() {
        answer["errors"] = json!(errors);
        if alerts.is_empty() {
            answer["error"] = json!(format!(
                "no alert: {} event(s) or rule(s) failed (see errors)",
                errors.len()
            ));
        }
    }
    Ok((status, Json(answer)))
}

async fn post_alert(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = body_or_error(body)?;
    let alert = parse_alert(&body).map_err(|e| {
        warn!(error = %e, "alert refused");
        match e {
            AlertError::Parse(_) | AlertError::Invalid(_) => {
                ApiError(StatusCode::BAD_REQUEST, e.to_string())
            }
        }
    })?;
    match state.engine.receive(&alert).await {
        Ok(receipt) => Ok((StatusCode::ACCEPTED, Json(json!(receipt)))),
        Err(PipelineError::Invalid(e)) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid alert: {e}"),
        )),
        Err(e) => {
            error!(error = %e, "storing alert failed");
            Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the alert could not be stored; retry".into(),
            ))
        }
    }
}

/// The report list's query, shared by the API and the web page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub detector: Option<String>,
    /// Text in the rule, an alert key or an attribute value.
    pub q: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

impl ListQuery {
    /// Empty parameters are absent (an HTML form sends every field).
    pub(crate) fn filter(&self, default_limit: u32) -> Result<ReportFilter, String> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let status = given(&self.status)
            .map(|s| s.parse::<ReportStatus>())
            .transpose()
            .map_err(|e| format!("status: {e}"))?;
        let severity = given(&self.severity)
            .map(|s| match s {
                "safe" => Ok(SeverityFilter::Is(Severity::Safe)),
                "unclassified" => Ok(SeverityFilter::Is(Severity::Unclassified)),
                "urgent" => Ok(SeverityFilter::Is(Severity::Urgent)),
                "unreviewed" => Ok(SeverityFilter::Unreviewed),
                other => Err(format!(
                    "severity: expected safe, unclassified, urgent or unreviewed, got {other:?}"
                )),
            })
            .transpose()?;
        let number = |name: &str, v: Option<&str>, range: std::ops::RangeInclusive<u32>| {
            v.map(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{name}: must be a number from {} to {}, got {v:?}",
                            range.start(),
                            range.end()
                        )
                    })
            })
            .transpose()
        };
        Ok(ReportFilter {
            status,
            severity,
            detector: given(&self.detector).map(String::from),
            text: given(&self.q).map(String::from),
            limit: number("limit", given(&self.limit), 1..=MAX_LIST_LIMIT)?
                .unwrap_or(default_limit),
            offset: number("offset", given(&self.offset), 0..=u32::MAX)?.unwrap_or(0),
        })
    }
}

async fn list_reports(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = q
        .filter(DEFAULT_LIST_LIMIT)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let reports = state
        .engine
        .store()
        .list_reports(&filter)
        .await
        .map_err(internal)?;
    Ok(Json(json!({ "reports": reports })))
}

fn report_id(id: &str) -> Result<ReportId, ApiError> {
    id.parse().map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("report id {id:?} is not a UUID: {e}"),
        )
    })
}

async fn get_timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = report_id(&id)?;
    match state.engine.store().report_timeline(id).await {
        Ok(Some(timeline)) => Ok(Json(json!({ "report_id": id, "timeline": timeline }))),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("report {id} not found"),
        )),
        Err(e) => Err(internal(e)),
    }
}

async fn get_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = report_id(&id)?;
    match state.engine.store().compile_report(id).await {
        Ok(Some(report)) => Ok(Json(json!(report))),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("report {id} not found"),
        )),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: deepalert_core::ports::PortError) -> ApiError {
    error!(error = %e.chain(), "request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log".into(),
    )
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    rules: Arc<RuleSet>,
    api_key: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, rules, api_key))
        .with_graceful_shutdown(shutdown)
        .await
}
