//! The HTTP client side: `deepalert send` and `deepalert reports`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct ServerArgs {
    /// Base URL of a running `deepalert serve`.
    #[arg(
        long,
        global = true,
        env = "DEEPALERT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Name of the environment variable holding the API key.
    #[arg(long, global = true, default_value = "DEEPALERT_API_KEY")]
    api_key_env: String,
}

impl ServerArgs {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    pub(crate) fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let req = client.request(method, self.url(path));
        match std::env::var(&self.api_key_env) {
            Ok(key) if !key.is_empty() => req.bearer_auth(key),
            _ => req,
        }
    }
}

pub(crate) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// Turns a non-2xx answer into the server's `error` message.
pub(crate) async fn answer(
    server: &ServerArgs,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, String> {
    let resp = resp.map_err(|e| format!("cannot reach {}: {e}", server.server))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("unreadable answer from {} ({status}): {e}", server.server))?;
    if status.is_success() {
        Ok(body)
    } else {
        let msg = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        Err(format!("{status}: {msg}"))
    }
}

pub async fn send(server: &ServerArgs, files: &[PathBuf]) -> Result<ExitCode, String> {
    let client = client()?;
    let mut failed = 0usize;
    for file in files {
        let name = file.display();
        let alerts = match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                serde_json::from_slice::<Value>(&b).map_err(|e| format!("invalid JSON: {e}"))
            }) {
            Ok(Value::Array(items)) => items,
            Ok(one) => vec![one],
            Err(e) => {
                eprintln!("{name}: {e}");
                failed += 1;
                continue;
            }
        };
        for (i, alert) in alerts.iter().enumerate() {
            let label = if alerts.len() > 1 {
                format!("{name}[{i}]")
            } else {
                name.to_string()
            };
            let resp = server
                .request(&client, reqwest::Method::POST, "/api/v1/alerts")
                .json(alert)
                .send()
                .await;
            match answer(server, resp).await {
                Ok(receipt) => println!(
                    "{label}: report {} ({})",
                    receipt["report_id"].as_str().unwrap_or("?"),
                    receipt["status"].as_str().unwrap_or("?")
                ),
                Err(e) => {
                    eprintln!("{label}: {e}");
                    failed += 1;
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn list(
    server: &ServerArgs,
    status: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<ExitCode, String> {
    let client = client()?;
    let mut query = vec![("limit", limit.to_string())];
    if let Some(s) = status {
        query.push(("status", s.to_string()));
    }
    let resp = server
        .request(&client, reqwest::Method::GET, "/api/v1/reports")
        .query(&query)
        .send()
        .await;
    let body = answer(server, resp).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<9}  {:<12}  {:>6}  {:<24}  RULE",
        "ID", "STATUS", "SEVERITY", "ALERTS", "UPDATED"
    );
    for r in body["reports"].as_array().into_iter().flatten() {
        println!(
            "{:<36}  {:<9}  {:<12}  {:>6}  {:<24}  {}/{}",
            r["id"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["result"]["severity"].as_str().unwrap_or("-"),
            r["alerts"].as_u64().unwrap_or(0),
            r["updated_at"].as_str().unwrap_or(""),
            r["detector"].as_str().unwrap_or(""),
            r["rule_id"].as_str().unwrap_or(""),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(server: &ServerArgs, id: &str) -> Result<ExitCode, String> {
    let client = client()?;
    let resp = server
        .request(
            &client,
            reqwest::Method::GET,
            &format!("/api/v1/reports/{id}"),
        )
        .send()
        .await;
    let body = answer(server, resp).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
