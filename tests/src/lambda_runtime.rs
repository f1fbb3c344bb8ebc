//! A Lambda Runtime API served by the test, so a real Lambda binary runs its real entry
//! point: it hands out the queued events one by one and records every answer.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};

#[derive(Clone, Default)]
struct Shared {
    events: Arc<Mutex<VecDeque<String>>>,
    handed_out: Arc<Mutex<usize>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// What the function said: `kind` is `response`, `error`, or `init-error` (start-up
/// failed; `request_id` is empty then).
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: String,
    pub kind: String,
    pub body: String,
}

pub struct RuntimeApi {
    shared: Shared,
    pub port: u16,
}

async fn next(State(s): State<Shared>) -> (HeaderMap, String) {
    let event = s.events.lock().unwrap().pop_front();
    let Some(event) = event else {
        // No more work: keep the runtime waiting, as Lambda does between invocations.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return (HeaderMap::new(), String::new());
    };
    let n = {
        let mut n = s.handed_out.lock().unwrap();
        *n += 1;
        *n
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let mut h = HeaderMap::new();
    h.insert(
        "Lambda-Runtime-Aws-Request-Id",
        format!("req-{n}").parse().unwrap(),
    );
    h.insert(
        "Lambda-Runtime-Deadline-Ms",
        deadline.to_string().parse().unwrap(),
    );
    h.insert(
        "Lambda-Runtime-Invoked-Function-Arn",
        "arn:aws:lambda:us-east-1:123456789012:function:under-test"
            .parse()
            .unwrap(),
    );
    h.insert(
        "Lambda-Runtime-Trace-Id",
        "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap(),
    );
    (h, event)
}

async fn respond(
    State(s): State<Shared>,
    Path((request_id, kind)): Path<(String, String)>,
    body: String,
) -> &'static str {
    s.answers.lock().unwrap().push(Answer {
        request_id,
        kind,
        body,
    });
    "{}"
}

async fn init_error(State(s): State<Shared>, body: String) -> &'static str {
    s.answers.lock().unwrap().push(Answer {
        request_id: String::new(),
        kind: "init-error".into(),
        body,
    });
    "{}"
}

impl RuntimeApi {
    /// Serves `events` (JSON documents, in order) on a free loopback port.
    pub async fn start(events: Vec<String>) -> RuntimeApi {
        let shared = Shared::default();
        shared.events.lock().unwrap().extend(events);
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(respond))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the Runtime API");
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RuntimeApi { shared, port }
    }

    /// `program` set up as Lambda starts a function (the Runtime API and the usual
    /// `AWS_LAMBDA_*` variables); add the function's own environment.
    pub fn command(&self, program: &str, function_name: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", self.port))
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            );
        cmd
    }

    pub fn answers(&self) -> Vec<Answer> {
        self.shared.answers.lock().unwrap().clone()
    }

    /// Waits up to `secs` for `n` answers (or an init error) and returns what came.
    pub async fn wait_answers(&self, n: usize, secs: u64) -> Vec<Answer> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let answers = self.answers();
            if answers.len() >= n
                || answers.iter().any(|a| a.kind == "init-error")
                || Instant::now() > deadline
            {
                return answers;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
