//! The web page of `deepalert serve`: server-rendered HTML (maud) with one small script and
//! one stylesheet, both compiled into the binary.
//!
//! - `GET /` — reports, newest first; `status`, `severity`, `detector`, `q`, `page`
//! - `GET /reports/{id}` — one report: alerts, attributes with findings, notes, timeline
//! - `GET /login`, `POST /login`, `POST /logout` — only when an API key is set
//!
//! With an API key, the login form takes the key and sets a session cookie (`HttpOnly`,
//! `SameSite=Strict`, random, kept in memory: a restart logs everyone out); the key never
//! appears in a URL. The pages only read, and the API does not take the cookie, so a forged
//! cross-site request can do nothing; the two POSTs also refuse a foreign `Origin`.

mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use deepalert_core::ReportId;
use maud::Markup;
use serde::Deserialize;
use tracing::{error, warn};

use crate::runtime::Engine;
use crate::server::{ListQuery, constant_time_eq};

pub const SESSION_COOKIE: &str = "deepalert_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const PAGE_SIZE: u32 = 50;
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
/// Scripts and styles only from this server, no inline code: an injected `<script>` would
/// not run even if escaping failed somewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
pub struct Web {
    engine: Arc<Engine>,
    api_key: Option<Arc<str>>,
    sessions: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Web {
    pub fn new(engine: Arc<Engine>, api_key: Option<Arc<str>>) -> Self {
        Web {
            engine,
            api_key,
            sessions: Arc::default(),
        }
    }

    fn new_session(&self) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, expires| *expires > now);
        sessions.insert(token.clone(), now + SESSION_TTL);
        token
    }

    fn valid_session(&self, headers: &HeaderMap) -> bool {
        let Some(token) = cookie(headers, SESSION_COOKIE) else {
            return false;
        };
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(token)
            .is_some_and(|expires| *expires > Instant::now())
    }

    fn end_session(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.remove(token);
        }
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(web: Web) -> Router<S> {
    let pages = Router::new()
        .route("/", get(reports_page))
        .route("/reports/{id}", get(report_page))
        .route_layer(middleware::from_fn_with_state(web.clone(), require_session));
    Router::new()
        .merge(pages)
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/assets/style.css", get(|| asset("text/css", STYLE)))
        .route("/assets/app.js", get(|| asset("text/javascript", SCRIPT)))
        .layer(middleware::from_fn(security_headers))
        .with_state(web)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Without a session (when a key is set), pages send the browser to the login form and
/// come back to where it was.
async fn require_session(State(web): State<Web>, req: Request, next: Next) -> Response {
    if web.api_key.is_none() || web.valid_session(req.headers()) {
        return next.run(req).await;
    }
    let back = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = format!("/login?next={}", percent_encode(back));
    Redirect::to(&target).into_response()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Only a path on this server: `next` must not send the browser elsewhere after login.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form posted from another site carries its own `Origin`; browsers always send one on
/// POST, so one that names another host is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

fn html(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

fn error_page(web: &Web, status: StatusCode, message: &str) -> Response {
    html(status, views::error(web.api_key.is_some(), status, message))
}

#[derive(Deserialize, Default)]
struct PageQuery {
    #[serde(flatten)]
    list: ListQuery,
    page: Option<String>,
}

async fn reports_page(State(web): State<Web>, Query(q): Query<PageQuery>) -> Response {
    let page = match q.page.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => 1,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => {
                let msg = format!("page: must be a number from 1 to 100000, got {p:?}");
                return error_page(&web, StatusCode::BAD_REQUEST, &msg);
            }
        },
    };
    let mut filter = match q.list.filter(PAGE_SIZE) {
        Ok(f) => f,
        Err(e) => return error_page(&web, StatusCode::BAD_REQUEST, &e),
    };
    // One more than shown tells whether an older page exists.
    filter.limit = PAGE_SIZE + 1;
    filter.offset = (page - 1) * PAGE_SIZE;
    let store = web.engine.store();
    let since = Utc::now() - chrono::Duration::hours(24);
    let loaded = async {
        Ok::<_, deepalert_core::ports::PortError>((
            store.list_reports(&filter).await?,
            store.severity_counts(since).await?,
            store.detectors().await?,
        ))
    }
    .await;
    let (mut reports, counts, detectors) = match loaded {
        Ok(v) => v,
        Err(e) => {
            error!(error = %e.chain(), "loading the report list failed");
            let msg = "the reports could not be loaded; see the server log";
            return error_page(&web, StatusCode::INTERNAL_SERVER_ERROR, msg);
        }
    };
    let more = reports.len() > PAGE_SIZE as usize;
    reports.truncate(PAGE_SIZE as usize);
    let view = views::ReportList {
        reports: &reports,
        counts: &counts,
        detectors: &detectors,
        query: &q.list,
        filtered: filter.status.is_some()
            || filter.severity.is_some()
            || filter.detector.is_some()
            || filter.text.is_some(),
        page,
        more,
        login: web.api_key.is_some(),
    };
    html(StatusCode::OK, views::report_list(&view))
}

async fn report_page(State(web): State<Web>, Path(id): Path<String>) -> Response {
    let Ok(report_id) = id.parse::<ReportId>() else {
        let msg = format!("{id:?} is not a report id (a UUID)");
        return error_page(&web, StatusCode::BAD_REQUEST, &msg);
    };
    use deepalert_core::ports::Store;
    match web.engine.store().compile_report(report_id).await {
        Ok(Some(report)) => html(
            StatusCode::OK,
            views::report(&report, web.api_key.is_some()),
        ),
        Ok(None) => {
            let msg =
                format!("report {report_id} not found (it may have been deleted by retention)");
            error_page(&web, StatusCode::NOT_FOUND, &msg)
        }
        Err(e) => {
            error!(report_id = %report_id, error = %e.chain(), "loading a report failed");
            let msg = "the report could not be loaded; see the server log";
            error_page(&web, StatusCode::INTERNAL_SERVER_ERROR, msg)
        }
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(State(web): State<Web>, Query(q): Query<LoginQuery>) -> Response {
    if web.api_key.is_none() {
        return Redirect::to("/").into_response();
    }
    let next = local_path(q.next.as_deref());
    html(StatusCode::OK, views::login(next, None))
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

async fn login(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(expected) = &web.api_key else {
        return Redirect::to("/").into_response();
    };
    if !same_origin(&headers) {
        warn!("login refused: cross-site form post");
        return error_page(&web, StatusCode::FORBIDDEN, "cross-site login refused");
    }
    let next = local_path(form.next.as_deref());
    if !constant_time_eq(form.key.trim().as_bytes(), expected.as_bytes()) {
        warn!("login refused: wrong API key");
        // Slows guessing down; a person mistyping does not notice.
        tokio::time::sleep(Duration::from_millis(500)).await;
        return html(
            StatusCode::UNAUTHORIZED,
            views::login(
                next,
                Some("That is not the API key this server was started with."),
            ),
        );
    }
    let token = web.new_session();
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut res = Redirect::to(next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return error_page(&web, StatusCode::FORBIDDEN, "cross-site logout refused");
    }
    web.end_session(&headers);
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "deepalert_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local_path(Some("/reports/x?a=1")), "/reports/x?a=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "evil",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x_deepalert_session=no; deepalert_session=abc; b=c"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
    }

    #[test]
    fn foreign_origins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
