//! A proxy in front of moto that answers some requests the way real AWS does under load,
//! before they reach moto: what moto never does by itself (DynamoDB cancelling concurrent
//! transactions on the same item, throttling). Everything else is forwarded unchanged.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A fault to inject into the next `times` requests whose `X-Amz-Target` is `target`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub target: String,
    pub times: usize,
    pub status: u16,
    pub body: String,
}

impl Fault {
    /// DynamoDB cancelling a `TransactWriteItems` with these per-item reasons
    /// (`None`, `ConditionalCheckFailed`, `TransactionConflict`, `ThrottlingError`…).
    pub fn transaction_cancelled(reasons: &[&str], times: usize) -> Fault {
        let reasons: Vec<serde_json::Value> = reasons
            .iter()
            .map(|c| serde_json::json!({"Code": c}))
            .collect();
        Fault {
            target: "DynamoDB_20120810.TransactWriteItems".into(),
            times,
            status: 400,
            body: serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    reasons.iter().map(|r| r["Code"].as_str().unwrap_or("")).collect::<Vec<_>>().join(", ")
                ),
                "CancellationReasons": reasons,
            })
            .to_string(),
        }
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    injected: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

/// The proxy; point an SDK client's endpoint at `url`.
pub struct FaultProxy {
    pub url: String,
    shared: Shared,
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let fault = {
        let mut faults = s.faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|f| f.target == target && f.times > 0)
            .map(|f| {
                f.times -= 1;
                f.clone()
            })
    };
    if let Some(f) = fault {
        s.injected.lock().unwrap().push(target);
        return (
            StatusCode::from_u16(f.status).unwrap(),
            [("content-type", "application/x-amz-json-1.0")],
            f.body,
        )
            .into_response();
    }
    let url = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = s.client.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let mut out = HeaderMap::new();
            for (k, v) in resp.headers() {
                if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                    out.insert(k.clone(), v.clone());
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            faults: Arc::default(),
            injected: Arc::default(),
            client: reqwest::Client::new(),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            shared,
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push(fault);
    }

    /// Faults not yet used up are dropped.
    pub fn clear(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.lock().unwrap().len()
    }
}
