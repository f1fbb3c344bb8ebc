//! A loopback HTTP service standing in for a third-party API: it records every request
//! and answers the scripted replies in turn, then a fallback.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// The path alone.
    pub path: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<VecDeque<(u16, String)>>>,
    fallback: Arc<(u16, String)>,
}

async fn record(
    State(r): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    r.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_string(),
        uri: uri.to_string(),
        headers,
        body,
    });
    let (status, body) = r
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| (*r.fallback).clone());
    (StatusCode::from_u16(status).unwrap(), body)
}

impl Recorder {
    /// Serves on a free loopback port; unscripted requests get 200 `{}`. Returns the base URL.
    pub async fn start() -> (Recorder, String) {
        Recorder::start_with_fallback(200, "{}").await
    }

    /// As [`Recorder::start`], answering unscripted requests with `status` and `body`.
    pub async fn start_with_fallback(status: u16, body: &str) -> (Recorder, String) {
        let r = Recorder {
            seen: Arc::default(),
            replies: Arc::default(),
            fallback: Arc::new((status, body.to_string())),
        };
        let app = Router::new().fallback(record).with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    /// Queues the answer to the next unanswered request (a `&str` or a JSON value).
    pub fn reply(&self, status: u16, body: impl ToString) {
        self.replies
            .lock()
            .unwrap()
            .push_back((status, body.to_string()));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
