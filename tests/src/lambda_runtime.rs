//! A Lambda Runtime API served by the test, so a real Lambda binary runs its real entry
//! point: it hands out invocations one by one to whichever process asks, and routes each
//! answer back to its invoker (and records it).

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tokio::sync::{Notify, oneshot};

/// What the function said: `kind` is `response`, `error`, or `init-error` (start-up
/// failed; `request_id` is empty then).
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: String,
    pub kind: String,
    pub body: String,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<(String, Option<oneshot::Sender<Answer>>)>,
    waiting: HashMap<String, oneshot::Sender<Answer>>,
    handed_out: usize,
    answers: Vec<Answer>,
}

#[derive(Clone, Default)]
struct Shared {
    queue: Arc<Mutex<Queue>>,
    ready: Arc<Notify>,
    function_arn: Arc<str>,
}

#[derive(Clone)]
pub struct RuntimeApi {
    shared: Shared,
    pub port: u16,
}

async fn next(State(s): State<Shared>) -> (HeaderMap, String) {
    let (event, request_id) = loop {
        let notified = s.ready.notified();
        {
            let mut q = s.queue.lock().unwrap();
            if let Some((event, reply)) = q.events.pop_front() {
                q.handed_out += 1;
                let id = format!("req-{}", q.handed_out);
                if let Some(reply) = reply {
                    q.waiting.insert(id.clone(), reply);
                }
                break (event, id);
            }
        }
        // No work: keep the runtime waiting, as Lambda does between invocations.
        notified.await;
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let mut h = HeaderMap::new();
    h.insert("Lambda-Runtime-Aws-Request-Id", request_id.parse().unwrap());
    h.insert(
        "Lambda-Runtime-Deadline-Ms",
        deadline.to_string().parse().unwrap(),
    );
    h.insert(
        "Lambda-Runtime-Invoked-Function-Arn",
        s.function_arn.parse().unwrap(),
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
    let answer = Answer {
        request_id,
        kind,
        body,
    };
    let mut q = s.queue.lock().unwrap();
    if let Some(reply) = q.waiting.remove(&answer.request_id) {
        let _ = reply.send(answer.clone());
    }
    q.answers.push(answer);
    "{}"
}

async fn init_error(State(s): State<Shared>, body: String) -> &'static str {
    s.queue.lock().unwrap().answers.push(Answer {
        request_id: String::new(),
        kind: "init-error".into(),
        body,
    });
    "{}"
}

impl RuntimeApi {
    /// Serves `events` (JSON documents, in order) on a free loopback port.
    pub async fn start(events: Vec<String>) -> RuntimeApi {
        let api =
            RuntimeApi::serve("arn:aws:lambda:us-east-1:123456789012:function:under-test").await;
        api.shared
            .queue
            .lock()
            .unwrap()
            .events
            .extend(events.into_iter().map(|e| (e, None)));
        api.shared.ready.notify_waiters();
        api
    }

    /// An empty Runtime API for the function `function_arn`; see [`RuntimeApi::invoke`].
    pub async fn serve(function_arn: &str) -> RuntimeApi {
        let shared = Shared {
            function_arn: function_arn.into(),
            ..Shared::default()
        };
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

    /// Queues one invocation and waits (up to `timeout`) for the function's answer.
    pub async fn invoke(&self, event: String, timeout: Duration) -> Result<Answer, String> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .queue
            .lock()
            .unwrap()
            .events
            .push_back((event, Some(tx)));
        self.shared.ready.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the runtime dropped the invocation".into()),
            Err(_) => {
                let init = self
                    .answers()
                    .into_iter()
                    .find(|a| a.kind == "init-error")
                    .map(|a| format!(" (init error: {})", a.body))
                    .unwrap_or_default();
                Err(format!("no answer within {timeout:?}{init}"))
            }
        }
    }

    /// `program` set up as Lambda starts a function (the Runtime API and the usual
    /// `AWS_LAMBDA_*` variables); add the function's own environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, function_name: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.lambda_env(function_name));
        cmd
    }

    /// The variables Lambda sets for a function using this Runtime API.
    pub fn lambda_env(&self, function_name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", self.port)),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "stream".to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn answers(&self) -> Vec<Answer> {
        self.shared.queue.lock().unwrap().answers.clone()
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
