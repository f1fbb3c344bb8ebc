//! The web pages of `deepalert serve`, over HTTP against the real router and engine: every
//! page and filter, hostile values shown as text, the timeline (page and API), login.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deepalert_core::finding::{ContentHost, EntityDomain};
use deepalert_core::ports::{PortResult, Reviewer, Store, SystemClock};
use deepalert_core::rules::RuleSet;
use deepalert_core::services::PipelineSettings;
use deepalert_core::{
    Alert, AttrContext, AttrType, Attribute, FindingContent, InspectorOutput, Report, ReportId,
    ReportStatus, ReviewResult, Severity, Task,
};
use deepalert_local::plugins::{
    EmitterEntry, EmitterPlugin, InspectorEntry, InspectorPlugin, PluginError, Plugins,
};
use deepalert_local::{Durability, Engine, RuntimeSettings, SqliteStore, server};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

const HOSTILE_RULE: &str = r#"<script>alert("rule")</script>"#;
const HOSTILE_KEY: &str = r#""'><img src=x onerror=alert(1)>"#;

struct Intel;

#[async_trait]
impl InspectorPlugin for Intel {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        Ok(InspectorOutput {
            findings: vec![FindingContent::Host(ContentHost {
                country: vec!["NL".into()],
                as_owner: vec![format!("AS-<b>{}</b>", task.attribute.value)],
                related_domains: vec![EntityDomain {
                    name: "c2.example.net".into(),
                    source: "passive-dns".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })],
            attributes: vec![],
        })
    }
}

struct Broken;

#[async_trait]
impl InspectorPlugin for Broken {
    async fn inspect(&self, _: &Task) -> Result<InspectorOutput, PluginError> {
        Err(PluginError::Failed("rate limited by the intel API".into()))
    }
}

/// Urgent for anything from `ids`, safe otherwise; the reason carries markup.
struct Policy;

#[async_trait]
impl Reviewer for Policy {
    async fn review(&self, r: &Report) -> PortResult<Option<ReviewResult>> {
        let urgent = r.alerts.iter().any(|a| a.detector == "ids");
        Ok(Some(ReviewResult {
            severity: if urgent {
                Severity::Urgent
            } else {
                Severity::Safe
            },
            reason: r#"policy says <i>"bad"</i>"#.into(),
        }))
    }
}

struct Sink;

#[async_trait]
impl EmitterPlugin for Sink {
    async fn emit(&self, _: &Report) -> Result<(), PluginError> {
        Ok(())
    }
}

struct Site {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn site(api_key: Option<&str>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let plugins = Plugins {
        inspectors: vec![
            InspectorEntry {
                name: "intel".into(),
                attribute_types: None,
                plugin: Arc::new(Intel),
            },
            InspectorEntry {
                name: "broken".into(),
                attribute_types: None,
                plugin: Arc::new(Broken),
            },
        ],
        reviewer: Arc::new(Policy),
        emitters: vec![EmitterEntry {
            name: "sink".into(),
            max_attempts: 1,
            plugin: Arc::new(Sink),
        }],
        flows: None,
    };
    let runtime = RuntimeSettings {
        inspection_delay: Duration::ZERO,
        review_delay: Duration::from_millis(300),
        ..RuntimeSettings::default()
    };
    let engine = Engine::new(
        store,
        plugins,
        PipelineSettings::default(),
        runtime,
        Arc::new(SystemClock),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (e, rules) = (engine.clone(), Arc::new(RuleSet::default()));
    let key = api_key.map(String::from);
    tokio::spawn(async move {
        let (run, http) = tokio::join!(
            e.clone().run(std::future::pending::<()>()),
            server::serve(listener, e, rules, key, async {
                let _ = stopped.await;
            })
        );
        let _ = (run, http);
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Site {
        _dir: dir,
        engine,
        base,
        http,
        _stop: stop,
    }
}

fn alert(detector: &str, rule_name: &str, key: &str, ip: &str) -> Alert {
    Alert {
        detector: detector.into(),
        rule_id: format!("{detector}-rule"),
        rule_name: rule_name.into(),
        alert_key: key.into(),
        description: "seen at the edge".into(),
        timestamp: None,
        attributes: vec![Attribute::new(
            AttrType::Ipaddr,
            "src",
            ip,
            &[AttrContext::Remote],
        )],
        body: Some(json!({"raw": "</pre><script>alert('body')</script>"})),
    }
}

impl Site {
    async fn receive(&self, a: &Alert) -> ReportId {
        self.engine.receive(a).await.unwrap().report_id
    }

    async fn published(&self, id: ReportId) -> Report {
        for _ in 0..200 {
            if let Some(r) = self.engine.store().compile_report(id).await.unwrap()
                && r.status == ReportStatus::Published
                && r.timeline.iter().any(|e| e.kind == "emit")
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("report {id} not published and emitted");
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.get_with(path, None).await
    }

    async fn get_with(&self, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.text().await.unwrap())
    }
}

fn form_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How many report rows a list page shows.
fn rows(page: &str) -> usize {
    page.matches("<tr data-report=").count()
}

#[tokio::test]
async fn an_empty_server_says_how_to_send_an_alert() {
    let s = site(None).await;
    let res = s.http.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let body = res.text().await.unwrap();
    assert!(body.contains("No reports yet."), "{body}");
    assert!(body.contains("/api/v1/alerts"), "{body}");
    assert_eq!(rows(&body), 0);
    // The assets are served from the binary.
    let (status, css) = s.get("/assets/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains(".sev-urgent"));
    let (status, js) = s.get("/assets/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("data-js"));
}

#[tokio::test]
async fn the_list_filters_counts_and_escapes() {
    let s = site(None).await;
    let hostile = s
        .receive(&alert("ids", HOSTILE_RULE, HOSTILE_KEY, "198.51.100.7"))
        .await;
    let quiet = s
        .receive(&alert("waf", "Blocked scan", "scan-1", "203.0.113.9"))
        .await;
    s.published(hostile).await;
    s.published(quiet).await;

    let (status, page) = s.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&page), 2);
    // Hostile values are text, in element content and in attributes.
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(&quot;rule&quot;)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&quot;'&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(page.contains(&format!(r#"href="/reports/{hostile}""#)));
    // Counts of the last 24 h, by severity.
    for (severity, n) in [
        ("urgent", 1),
        ("safe", 1),
        ("unclassified", 0),
        ("unreviewed", 0),
    ] {
        let at = page.find(&format!(r#"data-count="{severity}""#)).unwrap();
        let strong = &page[at..];
        let value =
            &strong[strong.find("<strong>").unwrap() + 8..strong.find("</strong>").unwrap()];
        assert_eq!(value, n.to_string(), "{severity}");
    }

    let only = |page: &str, id: ReportId| rows(page) == 1 && page.contains(&id.to_string());
    for (query, id) in [
        ("severity=urgent", hostile),
        ("severity=safe", quiet),
        ("detector=waf", quiet),
        ("q=198.51.100.7", hostile),
        ("q=SCAN-1", quiet),
        ("q=blocked+scan", quiet),
        ("status=published&detector=ids", hostile),
    ] {
        let (status, page) = s.get(&format!("/?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert!(only(&page, id), "{query}: {page}");
    }
    // The form keeps the filter it was given, escaped.
    let (_, page) = s.get("/?q=%22%3E%3Cb%3Ex").await;
    assert!(page.contains(r#"value="&quot;&gt;&lt;b&gt;x""#), "{page}");
    assert!(page.contains("No report matches these filters."), "{page}");
    let (_, page) = s.get("/?severity=unreviewed").await;
    assert_eq!(rows(&page), 0);
    // Empty fields, as a submitted form sends them, filter nothing.
    let (_, page) = s.get("/?status=&severity=&detector=&q=").await;
    assert_eq!(rows(&page), 2);

    for (query, says) in [
        ("status=closed", "status:"),
        (
            "severity=bad",
            "severity: expected safe, unclassified, urgent or unreviewed",
        ),
        ("page=0", "page: must be a number from 1"),
        ("page=x", "page: must be a number from 1"),
    ] {
        let (status, page) = s.get(&format!("/?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.contains(says), "{query}: {page}");
    }

    // The API takes the same filters.
    let (status, body) = s.get("/api/v1/reports?severity=urgent").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["reports"].as_array().unwrap().len(), 1);
    assert_eq!(listed["reports"][0]["id"], hostile.to_string());
    assert_eq!(listed["reports"][0]["alert_key"], HOSTILE_KEY);
}

#[tokio::test]
async fn the_list_pages_by_fifty() {
    let s = site(None).await;
    for i in 0..51 {
        s.receive(&alert("ids", "Probe", &format!("probe-{i}"), "192.0.2.1"))
            .await;
    }
    let (_, first) = s.get("/?detector=ids").await;
    assert_eq!(rows(&first), 50);
    assert!(
        first.contains(r#"rel="next" href="/?detector=ids&amp;page=2""#),
        "{first}"
    );
    assert!(!first.contains(r#"rel="prev""#));
    let (_, second) = s.get("/?detector=ids&page=2").await;
    assert_eq!(rows(&second), 1);
    assert!(
        second.contains(r#"rel="prev" href="/?detector=ids""#),
        "{second}"
    );
    assert!(!second.contains(r#"rel="next""#));
    // Newest first: the last one received heads the first page.
    assert!(first.find("probe-50").unwrap() < first.find("probe-49").unwrap());
}

#[tokio::test]
async fn a_report_page_shows_findings_notes_and_its_timeline() {
    let s = site(None).await;
    let id = s
        .receive(&alert("ids", HOSTILE_RULE, HOSTILE_KEY, "198.51.100.7"))
        .await;
    s.published(id).await;

    let (status, page) = s.get(&format!("/reports/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"data-severity="urgent""#), "{page}");
    assert!(
        page.contains("policy says &lt;i&gt;&quot;bad&quot;&lt;/i&gt;"),
        "{page}"
    );
    // Findings by inspector, readable: fields, not JSON.
    let finding = &page[page
        .find(r#"data-inspector="intel""#)
        .expect("intel's finding")..];
    assert!(finding.contains("<dt>country</dt><dd>NL</dd>"), "{finding}");
    assert!(finding.contains("<dt>as owner</dt><dd>AS-&lt;b&gt;198.51.100.7&lt;/b&gt;</dd>"));
    assert!(
        finding.contains("name: c2.example.net · source: passive-dns"),
        "{finding}"
    );
    // The failing inspector's note is highlighted.
    let notes = &page[page.find(r#"class="notes""#).expect("notes section")..];
    assert!(notes.contains("rate limited by the intel API"), "{notes}");
    // Alert bodies are collapsible and escaped.
    assert!(
        page.contains("<details><summary>Alert body</summary>"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&lt;/pre&gt;&lt;script&gt;alert('body')"),
        "{page}"
    );
    // The timeline: alert received, inspections, review, publication, emit.
    let kinds: Vec<&str> = page
        .match_indices("<li data-kind=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(kinds.first(), Some(&"alert"), "{kinds:?}");
    for k in ["inspection", "note", "review", "publication", "emit"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(at("inspection") < at("review") && at("review") < at("publication"));
    assert!(at("publication") < at("emit"), "{kinds:?}");

    // The same timeline from the API.
    let (status, body) = s.get(&format!("/api/v1/reports/{id}/timeline")).await;
    assert_eq!(status, StatusCode::OK);
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["report_id"], id.to_string());
    let api_kinds: Vec<&str> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(api_kinds, kinds);
    let inspection = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "inspection")
        .unwrap();
    assert_eq!(inspection["detail"]["inspector"], "intel");
    assert_eq!(inspection["detail"]["findings"], 1);
    let emit = t["timeline"].as_array().unwrap().last().unwrap();
    assert_eq!(emit["detail"]["emitter"], "sink");
    assert_eq!(emit["detail"]["ok"], true);

    let unknown = ReportId::new_random();
    let (status, page) = s.get(&format!("/reports/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains(&format!("report {unknown} not found")),
        "{page}"
    );
    let (status, page) = s.get("/reports/%3Cscript%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("&quot;&lt;script&gt;&quot; is not a report id"),
        "{page}"
    );
    let (status, _) = s.get(&format!("/api/v1/reports/{unknown}/timeline")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_an_api_key_pages_need_a_login_and_the_api_its_header() {
    let s = site(Some("s3cret-key")).await;
    let id = s
        .receive(&alert("ids", "Port scan", "scan", "192.0.2.4"))
        .await;

    // No cookie: the pages send the browser to the login form, and back afterwards.
    let res = s
        .http
        .get(format!("{}/reports/{id}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("/login?next=/reports/{id}")
    );
    let res = s
        .http
        .get(format!("{}/?q=a%26b", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[LOCATION], "/login?next=/%3Fq%3Da%2526b");
    let (status, form) = s.get("/login?next=/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains(r#"<form class="login" method="post" action="/login">"#),
        "{form}"
    );
    assert!(form.contains(r#"<label for="key">API key</label>"#));

    let login = |key: &str, next: &str, origin: Option<&str>| {
        let mut req = s
            .http
            .post(format!("{}/login", s.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("key={}&next={}", form_value(key), form_value(next)));
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send()
    };
    let wrong = login("guess", "/", None).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("not the API key"));
    let forged = login("s3cret-key", "/", Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get(SET_COOKIE).is_none());

    let origin = s.base.clone();
    let ok = login("s3cret-key", &format!("/reports/{id}"), Some(&origin))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], format!("/reports/{id}"));
    let set = ok.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("s3cret-key"),
        "the cookie is not the key: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    let (status, page) = s.get_with(&format!("/reports/{id}"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Port scan"));
    assert!(page.contains(r#"action="/logout""#));
    // The cookie is not an API credential.
    let (status, _) = s.get_with("/api/v1/reports", Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.get("/api/v1/reports").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let authorized = s
        .http
        .get(format!("{}/api/v1/reports/{id}/timeline", s.base))
        .bearer_auth("s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), StatusCode::OK);
    // `next` cannot leave this server.
    let away = login("s3cret-key", "//evil.example/x", None).await.unwrap();
    assert_eq!(away.headers()[LOCATION], "/");

    // Logging out ends the session.
    let out = s
        .http
        .post(format!("{}/logout", s.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (status, _) = s.get_with("/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}
