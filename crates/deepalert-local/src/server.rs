//! The HTTP API of `deepalert serve`.
//!
//! - `POST /api/v1/alerts` — one alert (JSON) → `202 {"report_id", "status"}`
//! - `GET  /api/v1/reports?status=&limit=` → `{"reports": [summary…]}`, newest first
//! - `GET  /api/v1/reports/{id}` → the report
//! - `GET  /healthz` → `{"status": "ok"}` (no key needed)
//!
//! Errors are JSON `{"error": "..."}` with a 4xx/5xx status. When an API key is set,
//! `/api/*` requires `Authorization: Bearer <key>`.

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
use deepalert_core::services::PipelineError;
use deepalert_core::{AlertError, ReportId, ReportStatus, parse_alert};
use serde::Deserialize;
use serde_json::json;
use tracing::{error, warn};

use crate::runtime::Engine;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_LIST_LIMIT: u32 = 50;
const MAX_LIST_LIMIT: u32 = 1000;

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    api_key: Option<Arc<str>>,
}

pub fn router(engine: Arc<Engine>, api_key: Option<String>) -> Router {
    let state = AppState {
        engine,
        api_key: api_key.map(Arc::from),
    };
    let api = Router::new()
        .route("/alerts", post(post_alert))
        .route("/reports", get(list_reports))
        .route("/reports/{id}", get(get_report))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn post_alert(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body is over the limit of {MAX_BODY_BYTES} bytes")
        } else {
            rejection.body_text()
        };
        ApiError(status, msg)
    })?;
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

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
}

async fn list_reports(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = q
        .status
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<ReportStatus>())
        .transpose()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("status: {e}")))?;
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_LIST_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("limit: must be a number from 1 to {MAX_LIST_LIMIT}, got {l:?}"),
                )
            })?,
    };
    let reports = state
        .engine
        .store()
        .list_reports(status, limit)
        .await
        .map_err(internal)?;
    Ok(Json(json!({ "reports": reports })))
}

async fn get_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: ReportId = id.parse().map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("report id {id:?} is not a UUID: {e}"),
        )
    })?;
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
    api_key: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, api_key))
        .with_graceful_shutdown(shutdown)
        .await
}
