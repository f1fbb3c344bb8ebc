//! Each emitter against a loopback server that records the request and replays the
//! service's documented answers (including 429 and 500).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::Method;
use deepalert_core::ports::{EmitterPlugin, PluginError, PluginState, PortResult};
use deepalert_core::{
    Alert, AttrType, Attribute, Authored, Report, ReportId, ReportStatus, ReviewResult, Section,
    Severity,
};
use deepalert_plugins::builtin::{self, Context};
use deepalert_plugins::emitters::github::{self, GitHubIssues};
use deepalert_plugins::emitters::jsonl::JsonLines;
use deepalert_plugins::emitters::pagerduty::{self, PagerDuty};
use deepalert_plugins::emitters::slack::Slack;
use deepalert_plugins::emitters::webhook::{SIGNATURE_HEADER, Webhook, signature};
use deepalert_plugins::emitters::{AsEmitter, Notifier, OnChange, fingerprint};
use deepalert_plugins::secrets::Secrets;
use deepalert_testkit::http::Recorder;
use deepalert_testkit::smtp::SmtpSink;
use serde_json::json;

#[derive(Default)]
struct MemoryState(Mutex<HashMap<String, String>>);

#[async_trait]
impl PluginState for MemoryState {
    async fn get(&self, key: &str) -> PortResult<Option<String>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, value: &str) -> PortResult<()> {
        self.0.lock().unwrap().insert(key.into(), value.into());
        Ok(())
    }
}

fn report(severity: Severity) -> Report {
    let attr = Attribute::new(AttrType::Ipaddr, "remote address", "198.51.100.23", &[]);
    Report {
        id: ReportId::new_random(),
        alerts: vec![Alert {
            detector: "aws-guardduty".into(),
            rule_id: "UnauthorizedAccess:EC2/SSHBruteForce".into(),
            rule_name: "SSH brute force".into(),
            alert_key: "i-1".into(),
            description: String::new(),
            timestamp: None,
            attributes: vec![attr.clone()],
            body: None,
        }],
        attributes: vec![attr.clone()],
        sections: vec![Section {
            attribute: attr,
            hosts: vec![Authored {
                author: "blocklists".into(),
                content: Default::default(),
            }],
            users: vec![],
            binaries: vec![],
        }],
        notes: vec![],
        result: Some(ReviewResult {
            severity,
            reason: "threat-listed 198.51.100.23 reached web-1".into(),
        }),
        status: ReportStatus::Published,
        created_at: chrono::Utc::now(),
        published_at: Some(chrono::Utc::now()),
        publications: 1,
        timeline: vec![],
    }
}

#[tokio::test]
async fn slack_posts_a_block_kit_message() {
    let (svc, url) = Recorder::start().await;
    let slack = AsEmitter(Arc::new(Slack::new(
        format!("{url}/services/T000/B000/XXXX"),
        Some("http://deepalert.internal/api/v1/reports".into()),
    )));
    let r = report(Severity::Urgent);
    slack.emit(&r).await.unwrap();
    let seen = svc.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.clone(), seen[0].path.as_str()),
        (Method::POST, "/services/T000/B000/XXXX")
    );
    assert!(
        seen[0]
            .header("content-type")
            .starts_with("application/json")
    );
    let body = seen[0].json();
    assert!(
        body["text"].as_str().unwrap().contains("urgent"),
        "fallback text: {body}"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("SSH brute force")
    );
    let text = body.to_string();
    assert!(
        text.contains("198.51.100.23")
            && text.contains("1 finding(s) on 1 attribute(s) by blocklists"),
        "{text}"
    );
    let button = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("link button");
    assert_eq!(
        button["elements"][0]["url"],
        format!("http://deepalert.internal/api/v1/reports/{}", r.id)
    );

    // Slack's documented errors: 429 is "rate limited" (retried later), 500 a failure.
    svc.reply(429, "rate_limited");
    assert!(matches!(
        slack.emit(&r).await,
        Err(PluginError::RateLimited(_))
    ));
    svc.reply(500, "internal_error");
    let err = slack.emit(&r).await.unwrap_err().to_string();
    assert!(
        err.contains("500") && err.contains("internal_error"),
        "{err}"
    );
}

#[tokio::test]
async fn pagerduty_triggers_on_urgent_and_resolves_when_safe() {
    let (svc, url) = Recorder::start().await;
    let state = Arc::new(MemoryState::default());
    let options: pagerduty::Options = serde_json::from_value(json!({
        "routing_key_env": "PD_KEY", "events_url": format!("{url}/v2/enqueue")
    }))
    .unwrap();
    let pd = PagerDuty::new("pd", "R0UT1NGKEY".into(), &options, state.clone());
    let mut r = report(Severity::Unclassified);
    pd.emit(&r).await.unwrap();
    assert!(svc.seen().is_empty(), "unclassified pages nobody");

    svc.reply(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
    );
    r.result.as_mut().unwrap().severity = Severity::Urgent;
    pd.emit(&r).await.unwrap();
    let trigger = &svc.seen()[0];
    assert_eq!(trigger.path, "/v2/enqueue");
    let body = trigger.json();
    assert_eq!(body["routing_key"], "R0UT1NGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], r.id.to_string());
    assert_eq!(body["payload"]["severity"], "critical");
    assert_eq!(body["payload"]["source"], "aws-guardduty");
    assert!(
        body["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("urgent")
    );

    r.result.as_mut().unwrap().severity = Severity::Safe;
    pd.emit(&r).await.unwrap();
    let resolve = svc.seen()[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], r.id.to_string());
    assert!(resolve.get("payload").is_none());

    // A safe report that never paged resolves nothing.
    pd.emit(&report(Severity::Safe)).await.unwrap();
    assert_eq!(svc.seen().len(), 2);
    svc.reply(429, r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#);
    r.result.as_mut().unwrap().severity = Severity::Urgent;
    assert!(matches!(
        pd.emit(&r).await,
        Err(PluginError::RateLimited(_))
    ));
}

#[tokio::test]
async fn github_opens_one_issue_per_report_and_comments_after() {
    let (svc, url) = Recorder::start().await;
    let state = Arc::new(MemoryState::default());
    let options: github::Options = serde_json::from_value(json!({
        "repository": "acme/security-alerts", "token_env": "GH_TOKEN", "labels": ["deepalert"], "api_url": url
    }))
    .unwrap();
    let gh = GitHubIssues::new("gh", "ghp_test".into(), options, state.clone());
    let mut r = report(Severity::Urgent);
    svc.reply(201, r#"{"id": 1, "number": 42, "html_url": "https://github.com/acme/security-alerts/issues/42"}"#);
    gh.emit(&r).await.unwrap();
    svc.reply(201, r#"{"id": 7}"#);
    r.publications = 2;
    gh.emit(&r).await.unwrap();
    let seen = svc.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.clone(), seen[0].path.as_str()),
        (Method::POST, "/repos/acme/security-alerts/issues")
    );
    assert_eq!(seen[0].header("authorization"), "Bearer ghp_test");
    assert_eq!(seen[0].header("accept"), "application/vnd.github+json");
    assert_eq!(seen[0].header("x-github-api-version"), "2022-11-28");
    assert!(
        !seen[0].header("user-agent").is_empty(),
        "GitHub requires a User-Agent"
    );
    let issue = seen[0].json();
    assert!(issue["title"].as_str().unwrap().starts_with("[urgent]"));
    assert_eq!(issue["labels"], json!(["deepalert"]));
    assert!(issue["body"].as_str().unwrap().contains("`198.51.100.23`"));
    assert_eq!(
        seen[1].path,
        "/repos/acme/security-alerts/issues/42/comments"
    );
    assert!(
        seen[1].json()["body"]
            .as_str()
            .unwrap()
            .contains("Published again (2)")
    );

    svc.reply(500, r#"{"message": "Server Error"}"#);
    let err = gh
        .emit(&report(Severity::Urgent))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("500"), "{err}");
}

#[tokio::test]
async fn webhook_signs_its_body() {
    let (svc, url) = Recorder::start().await;
    let hook = Webhook::new(format!("{url}/hooks/deepalert"), "s3cret".into());
    let r = report(Severity::Urgent);
    hook.emit(&r).await.unwrap();
    let seen = &svc.seen()[0];
    assert_eq!(seen.path, "/hooks/deepalert");
    assert_eq!(
        seen.header(SIGNATURE_HEADER),
        signature("s3cret", &seen.body)
    );
    assert!(seen.header(SIGNATURE_HEADER).starts_with("sha256="));
    assert_eq!(seen.header("x-deepalert-report-id"), r.id.to_string());
    let sent: Report = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent, r);
    // Known HMAC-SHA256 vector (RFC 4231 test case 2).
    assert_eq!(
        signature("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn unchanged_reports_are_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let state = Arc::new(MemoryState::default());
    let emitter = OnChange::new(
        "file",
        Arc::new(JsonLines::new(path.clone())),
        state.clone(),
    );
    let mut r = report(Severity::Unclassified);
    emitter.emit(&r).await.unwrap();
    r.publications = 2; // re-published, nothing new
    r.published_at = Some(chrono::Utc::now());
    emitter.emit(&r).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    r.result.as_mut().unwrap().severity = Severity::Urgent; // new verdict
    emitter.emit(&r).await.unwrap();
    let lines: Vec<Report> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].result.as_ref().unwrap().severity, Severity::Urgent);
    assert_ne!(fingerprint(&lines[0]), fingerprint(&lines[1]));

    // A failed send is not remembered: the next publication tries again.
    let (svc, url) = Recorder::start().await;
    let hook = OnChange::new("hook", Arc::new(Webhook::new(url, "k".into())), state);
    svc.reply(500, "down");
    assert!(hook.emit(&r).await.is_err());
    hook.emit(&r).await.unwrap();
    assert_eq!(svc.seen().len(), 2);
}

#[tokio::test]
async fn unreviewed_reports_are_not_sent_by_built_ins() {
    // With PublishUnreviewed / publish_unreviewed, reports also arrive as `new`/`more`;
    // a notification needs a verdict, so built-ins wait for the publication.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let emitter = OnChange::new(
        "file",
        Arc::new(JsonLines::new(path.clone())),
        Arc::new(MemoryState::default()),
    );
    let mut r = report(Severity::Urgent);
    r.result = None;
    for status in [ReportStatus::New, ReportStatus::More] {
        r.status = status;
        emitter.emit(&r).await.unwrap();
    }
    assert!(!path.exists(), "nothing sent before review");
    r.status = ReportStatus::Published;
    r.result = Some(ReviewResult::unclassified("no verdict"));
    emitter.emit(&r).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
}

/// Builds a notifier as `deepalert serve` does, from its options, with `env` as the
/// environment its secrets come from.
async fn notifier(
    kind: &str,
    options: serde_json::Value,
    env: &[(&str, String)],
) -> Arc<dyn Notifier> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let secrets = Secrets::new(move |k| env.get(k).cloned(), None);
    let dir = std::env::temp_dir();
    let ctx = Context {
        base_dir: &dir,
        secret: &secrets,
        aws: None,
    };
    match builtin::notifier(kind, options, &ctx).await {
        Ok(n) => n,
        Err(e) => panic!("{kind}: {e}"),
    }
}

#[tokio::test]
async fn discord_posts_an_embed_with_the_templates_text() {
    let (svc, url) = Recorder::start().await;
    let discord = notifier(
        "discord",
        json!({"webhook_url_env": "DISCORD_URL", "link_base": "http://deepalert.internal/reports",
               "template": "{{severity}} on {{report.alerts[0].alert_key}}: {{reason}}"}),
        &[("DISCORD_URL", format!("{url}/api/webhooks/1/abc"))],
    )
    .await;
    let r = report(Severity::Urgent);
    // As an emitter it sends with its own template; a flow step passes its own text.
    AsEmitter(discord.clone()).emit(&r).await.unwrap();
    discord.send(&r, Some("step text")).await.unwrap();
    let seen = svc.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/api/webhooks/1/abc");
    let body = seen[0].json();
    assert_eq!(
        body["content"],
        "urgent on i-1: threat-listed 198.51.100.23 reached web-1"
    );
    assert_eq!(
        body["allowed_mentions"]["parse"],
        json!([]),
        "no @everyone from alert text"
    );
    let embed = &body["embeds"][0];
    assert_eq!(embed["color"], 0xD93025);
    assert_eq!(
        embed["url"],
        format!("http://deepalert.internal/reports/{}", r.id)
    );
    assert!(
        embed["title"].as_str().unwrap().contains("SSH brute force"),
        "{embed}"
    );
    assert!(embed.to_string().contains("198.51.100.23"), "{embed}");
    assert_eq!(seen[1].json()["content"], "step text");

    svc.reply(429, r#"{"retry_after": 1.5}"#);
    assert!(matches!(
        discord.send(&r, None).await,
        Err(PluginError::RateLimited(_))
    ));
}

#[tokio::test]
async fn google_chat_posts_a_card() {
    let (svc, url) = Recorder::start().await;
    let chat = notifier(
        "google-chat",
        json!({"webhook_url_env": "CHAT_URL", "link_base": "http://deepalert.internal/reports"}),
        &[(
            "CHAT_URL",
            format!("{url}/v1/spaces/AAA/messages?key=k&token=t"),
        )],
    )
    .await;
    let r = report(Severity::Safe);
    chat.send(&r, None).await.unwrap();
    let seen = &svc.seen()[0];
    assert_eq!(seen.uri, "/v1/spaces/AAA/messages?key=k&token=t");
    let body = seen.json();
    let card = &body["cardsV2"][0]["card"];
    assert!(
        card["header"]["title"]
            .as_str()
            .unwrap()
            .starts_with("[safe]"),
        "{card}"
    );
    let text = card.to_string();
    assert!(
        text.contains("threat-listed 198.51.100.23 reached web-1"),
        "{text}"
    );
    assert!(
        text.contains(&format!("http://deepalert.internal/reports/{}", r.id)),
        "{text}"
    );
    assert!(body["text"].as_str().unwrap().contains("SSH brute force"));
}

#[tokio::test]
async fn email_is_sent_over_smtp() {
    let sink = SmtpSink::start();
    let mail = notifier(
        "email",
        json!({"smtp_host": "127.0.0.1", "smtp_port": sink.port, "tls": "none",
               "from": "deepalert <deepalert@example.com>", "to": ["soc@example.com", "oncall@example.com"],
               "template": "Look at {{report.alerts[0].alert_key}} now."}),
        &[],
    )
    .await;
    let r = report(Severity::Urgent);
    AsEmitter(mail).emit(&r).await.unwrap();
    let got = sink.wait_for(1, std::time::Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["mail_from"], "deepalert@example.com");
    assert_eq!(
        got[0]["rcpt_tos"],
        json!(["soc@example.com", "oncall@example.com"])
    );
    let data = got[0]["data"].as_str().unwrap();
    assert!(data.contains("Subject: [urgent] aws-guardduty"), "{data}");
    assert!(data.contains("Look at i-1 now."), "{data}");
    assert!(
        data.contains("Reason: threat-listed 198.51.100.23 reached web-1"),
        "{data}"
    );
    assert!(data.contains(&r.id.to_string()), "{data}");
}

#[tokio::test]
async fn notifier_options_are_checked() {
    let secrets = Secrets::new(|_| Some("http://127.0.0.1:9/x".into()), None);
    let dir = std::env::temp_dir();
    let ctx = Context {
        base_dir: &dir,
        secret: &secrets,
        aws: None,
    };
    let err = |kind: &str, o: serde_json::Value| {
        let ctx = &ctx;
        let kind = kind.to_string();
        async move {
            match builtin::notifier(&kind, o, ctx).await {
                Ok(_) => panic!("{kind}: accepted"),
                Err(e) => e.to_string(),
            }
        }
    };
    let e = err(
        "slack",
        json!({"webhook_url_env": "U", "template": "{{ report.result"}),
    )
    .await;
    assert!(e.contains("template"), "{e}");
    let e = err("email", json!({"smtp_host": "h", "from": "a@b.c"})).await;
    assert!(e.contains("to: list at least one recipient"), "{e}");
    let e = err("email", json!({"to": ["a@b.c"]})).await;
    assert!(
        e.contains("smtp_host") && e.contains("sns_topic_arn"),
        "{e}"
    );
    let e = err(
        "email",
        json!({"smtp_host": "h", "from": "a@b.c", "to": ["a@b.c"], "tls": "maybe"}),
    )
    .await;
    assert!(e.contains("tls"), "{e}");
    let e = err("pagerduty", json!({})).await;
    assert!(e.contains("no built-in notifier \"pagerduty\""), "{e}");
}
