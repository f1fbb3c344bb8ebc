//! The pages' HTML. maud escapes every value it writes, attributes included; nothing here
//! writes raw HTML (`PreEscaped`) built from stored data.

use chrono::{DateTime, Utc};
use deepalert_core::{Alert, Attribute, Report, ReportStatus, Section, TimelineEntry};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::server::ListQuery;
use crate::store::ReportSummary;

fn layout(title: &str, login: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · deepalert" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "deepalert" }
                    nav aria-label="Main" { a href="/" { "Reports" } }
                    @if login {
                        form.logout method="post" action="/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn time(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// `safe` / `unclassified` / `urgent`, or `unreviewed` without a verdict.
fn badge(severity: Option<&str>) -> Markup {
    let s = severity.unwrap_or("unreviewed");
    html! { span.badge.(format!("sev-{s}")) data-severity=(s) { (s) } }
}

pub struct ReportList<'a> {
    pub reports: &'a [ReportSummary],
    pub counts: &'a [(String, u64)],
    pub detectors: &'a [String],
    pub query: &'a ListQuery,
    pub filtered: bool,
    pub page: u32,
    pub more: bool,
    pub login: bool,
}

fn query_string(q: &ListQuery, page: u32, severity: Option<&str>) -> String {
    let mut parts = vec![];
    let mut add = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", super::percent_encode(v)));
        }
    };
    add("status", q.status.as_deref());
    add("severity", severity.or(q.severity.as_deref()));
    add("detector", q.detector.as_deref());
    add("q", q.q.as_deref());
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() {
        "/".into()
    } else {
        format!("/?{}", parts.join("&"))
    }
}

pub fn report_list(v: &ReportList) -> Markup {
    let q = v.query;
    let selected = |field: &Option<String>, value: &str| field.as_deref() == Some(value);
    let count = |s: &str| {
        v.counts
            .iter()
            .find(|(k, _)| k == s)
            .map(|c| c.1)
            .unwrap_or(0)
    };
    let body = html! {
        div.title-row {
            h1 { "Reports" }
            label.refresh {
                input #auto-refresh type="checkbox" checked;
                " Auto-refresh"
            }
        }
        section.counts aria-label="Reports created in the last 24 hours" {
            h2 { "Last 24 h" }
            ul {
                @for s in ["urgent", "unclassified", "safe", "unreviewed"] {
                    li {
                        a href=(query_string(&ListQuery::default(), 1, Some(s))) data-count=(s) {
                            (badge(Some(s))) " " strong { (count(s)) }
                        }
                    }
                }
            }
        }
        form.filters method="get" action="/" role="search" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in ["new", "more", "published"] {
                        option value=(s) selected[selected(&q.status, s)] { (s) }
                    }
                }
            }
            label { "Severity "
                select name="severity" {
                    option value="" { "any" }
                    @for s in ["urgent", "unclassified", "safe", "unreviewed"] {
                        option value=(s) selected[selected(&q.severity, s)] { (s) }
                    }
                }
            }
            label { "Detector "
                select name="detector" {
                    option value="" { "any" }
                    @for d in v.detectors {
                        option value=(d) selected[selected(&q.detector, d)] { (d) }
                    }
                }
            }
            label { "Text "
                input type="search" name="q" value=(q.q.as_deref().unwrap_or(""))
                    placeholder="rule, alert key, IP, user…";
            }
            button type="submit" { "Filter" }
            @if v.filtered { a href="/" { "Clear" } }
        }
        @if v.reports.is_empty() {
            @if v.filtered || v.page > 1 {
                p.empty { "No report matches these filters. " a href="/" { "Show all reports" } "." }
            } @else {
                div.empty {
                    p { strong { "No reports yet." } " Send an alert and it shows up here within seconds:" }
                    pre { code { (SEND_ONE) } }
                    @if v.login {
                        p { "Add " code { "-H 'authorization: Bearer <key>'" } " with this server's API key." }
                    }
                }
            }
        } @else {
            table.reports {
                caption.visually-hidden { "Reports, most recently changed first" }
                thead { tr {
                    th scope="col" { "Severity" }
                    th scope="col" { "Rule" }
                    th scope="col" { "Detector" }
                    th scope="col" { "Alert key" }
                    th scope="col" { "Alerts" }
                    th scope="col" { "Status" }
                    th scope="col" { "Changed" }
                } }
                tbody {
                    @for r in v.reports {
                        tr data-report=(r.id) {
                            td { (badge(r.result.as_ref().map(|x| x.severity.as_str()))) }
                            td {
                                a href=(format!("/reports/{}", r.id)) {
                                    (if r.rule_name.is_empty() { &r.rule_id } else { &r.rule_name })
                                }
                                @if !r.rule_name.is_empty() { div.sub { (r.rule_id) } }
                            }
                            td { (r.detector) }
                            td.key { (r.alert_key) }
                            td.num { (r.alerts) }
                            td { (r.status.as_str()) }
                            td { (time(r.updated_at)) }
                        }
                    }
                }
            }
        }
        nav.pages aria-label="Pages" {
            @if v.page > 1 { a rel="prev" href=(query_string(q, v.page - 1, None)) { "← Newer" } }
            span { "Page " (v.page) }
            @if v.more { a rel="next" href=(query_string(q, v.page + 1, None)) { "Older →" } }
        }
    };
    layout("Reports", v.login, body)
}

const SEND_ONE: &str = r#"curl -X POST http://127.0.0.1:8080/api/v1/alerts \
  -H 'content-type: application/json' \
  -d '{"detector": "my-ids", "rule_name": "Suspicious login", "rule_id": "login-1",
       "alert_key": "alice", "attributes": [{"type": "ipaddr", "key": "src",
       "value": "198.51.100.7", "context": ["remote"]}]}'"#;

/// A report can gather thousands of alerts; the page stays readable and quick.
const MAX_ALERTS_SHOWN: usize = 100;

pub fn report(r: &Report, login: bool) -> Markup {
    let first = r.alerts.first();
    let title = first
        .map(|a| {
            if a.rule_name.is_empty() {
                a.rule_id.as_str()
            } else {
                a.rule_name.as_str()
            }
        })
        .unwrap_or("report");
    let severity = r.result.as_ref().map(|x| x.severity.as_str());
    let body = html! {
        p.crumbs { a href="/" { "← Reports" } }
        header.report-head {
            h1 { (badge(severity)) " " (title) }
            @match &r.result {
                Some(v) if !v.reason.is_empty() => p.reason { (v.reason) },
                Some(_) => p.reason.muted { "The reviewer gave no reason." },
                None => p.reason.muted { "Not reviewed yet: the reviewer runs after the review delay." },
            }
            dl.facts {
                dt { "Status" } dd { (r.status.as_str()) @if r.status == ReportStatus::More { " (new alerts since the last review)" } }
                dt { "Report" } dd { code { (r.id) } }
                @if let Some(a) = first { dt { "Detector" } dd { (a.detector) } }
                dt { "Alerts" } dd { (r.alerts.len()) }
                dt { "Publications" } dd { (r.publications) }
                dt { "Created" } dd { (time(r.created_at)) }
                @if let Some(t) = r.published_at { dt { "Published" } dd { (time(t)) } }
            }
        }
        @if !r.notes.is_empty() {
            section.notes aria-labelledby="notes-h" {
                h2 #notes-h { "Notes (" (r.notes.len()) ")" }
                ul {
                    @for n in &r.notes {
                        li {
                            strong { (n.author) } ": " (n.message)
                            @if let Some(a) = &n.attribute { " — " code { (a.value) } }
                            " " span.muted { (time(n.created_at)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="attrs-h" {
            h2 #attrs-h { "Attributes and findings" }
            @if r.attributes.is_empty() && r.sections.is_empty() {
                p.muted { "The alerts carry no attributes, so there was nothing to inspect." }
            } @else {
                table.attributes {
                    thead { tr {
                        th scope="col" { "Type" } th scope="col" { "Key" } th scope="col" { "Value" }
                        th scope="col" { "Context" } th scope="col" { "Findings" }
                    } }
                    tbody {
                        @for (attr, section) in attribute_rows(r) {
                            tr {
                                td { (attr.attr_type.to_string()) }
                                td { (attr.key) }
                                td.value { code { (attr.value) } }
                                td { (attr.context.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (findings(section)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="alerts-h" {
            h2 #alerts-h { "Alerts (" (r.alerts.len()) ")" }
            @for (i, a) in r.alerts.iter().take(MAX_ALERTS_SHOWN).enumerate() { (alert(i, a)) }
            @if r.alerts.len() > MAX_ALERTS_SHOWN {
                p.muted {
                    (r.alerts.len() - MAX_ALERTS_SHOWN) " more alert(s) not shown; "
                    code { "GET /api/v1/reports/" (r.id) } " has them all."
                }
            }
        }
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline" }
            (timeline(&r.timeline))
        }
    };
    layout(title, login, body)
}

/// The report's attributes in order, each with its findings; attributes that only an
/// inspector reported (DeepAlert's "new attributes") come after.
fn attribute_rows(r: &Report) -> Vec<(&Attribute, Option<&Section>)> {
    let mut rows: Vec<(&Attribute, Option<&Section>)> = r
        .attributes
        .iter()
        .map(|a| {
            let id = a.identity();
            (a, r.sections.iter().find(|s| s.attribute.identity() == id))
        })
        .collect();
    for s in &r.sections {
        let id = s.attribute.identity();
        if !r.attributes.iter().any(|a| a.identity() == id) {
            rows.push((&s.attribute, Some(s)));
        }
    }
    rows
}

fn findings(section: Option<&Section>) -> Markup {
    let mut by_inspector: Vec<(&str, &str, Value)> = vec![];
    if let Some(s) = section {
        for h in &s.hosts {
            by_inspector.push((
                &h.author,
                "host",
                serde_json::to_value(&h.content).unwrap_or_default(),
            ));
        }
        for u in &s.users {
            by_inspector.push((
                &u.author,
                "user",
                serde_json::to_value(&u.content).unwrap_or_default(),
            ));
        }
        for b in &s.binaries {
            by_inspector.push((
                &b.author,
                "binary",
                serde_json::to_value(&b.content).unwrap_or_default(),
            ));
        }
    }
    html! {
        @if by_inspector.is_empty() {
            span.muted { "none" }
        } @else {
            @for (author, kind, content) in &by_inspector {
                div.finding data-inspector=(author) {
                    div.finding-head {
                        strong { (if author.is_empty() { "inspector" } else { author }) }
                        " " span.kind { (kind) }
                    }
                    (fields(content))
                }
            }
        }
    }
}

/// A finding's non-empty fields as a definition list: lists joined, objects as `key: value`.
fn fields(v: &Value) -> Markup {
    let Value::Object(map) = v else {
        return html! { (plain(v)) };
    };
    html! {
        dl.fields {
            @for (k, v) in map.iter().filter(|(_, v)| !is_empty(v)) {
                dt { (k.replace('_', " ")) }
                dd {
                    @match v {
                        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
                            (items.iter().map(plain).collect::<Vec<_>>().join(", "))
                        }
                        Value::Array(items) => {
                            ul { @for i in items { li { (entity(i)) } } }
                        }
                        other => (entity(other)),
                    }
                }
            }
        }
    }
}

fn entity(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !is_empty(v))
            .map(|(k, v)| format!("{}: {}", k.replace('_', " "), plain(v)))
            .collect::<Vec<_>>()
            .join(" · "),
        other => plain(other),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(_) => entity(v),
        other => other.to_string(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn alert(i: usize, a: &Alert) -> Markup {
    html! {
        article.alert {
            h3 { (i + 1) ". " (if a.rule_name.is_empty() { &a.rule_id } else { &a.rule_name }) }
            dl.facts {
                dt { "Rule id" } dd { (a.rule_id) }
                dt { "Alert key" } dd { code { (a.alert_key) } }
                @if !a.description.is_empty() { dt { "Description" } dd { (a.description) } }
                @if let Some(t) = a.timestamp { dt { "Time" } dd { (time(t)) } }
                dt { "Attributes" } dd { (a.attributes.len()) }
            }
            @if let Some(body) = &a.body {
                details {
                    summary { "Alert body" }
                    pre { (serde_json::to_string_pretty(body).unwrap_or_default()) }
                }
            }
        }
    }
}

fn timeline(entries: &[TimelineEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p.muted { "Nothing recorded yet." }
        } @else {
            ol.timeline {
                @for e in entries {
                    li data-kind=(e.kind) {
                        (time(e.at)) " "
                        span.kind.(format!("kind-{}", e.kind)) { (e.kind) }
                        " " span.msg { (e.message) }
                    }
                }
            }
        }
    }
}

pub fn login(next: &str, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Log in" }
        p { "This server has an API key. Enter it to see the reports; it is sent once, and a session cookie is kept instead." }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="key" { "API key" }
            input #key type="password" name="key" autocomplete="current-password" required autofocus;
            button type="submit" { "Log in" }
        }
    };
    layout("Log in", false, body)
}

pub fn error(login: bool, status: axum::http::StatusCode, message: &str) -> Markup {
    let body = html! {
        h1 { (status.canonical_reason().unwrap_or("Error")) }
        p.error role="alert" { (message) }
        p { a href="/" { "Back to the reports" } }
    };
    layout("Error", login, body)
}
