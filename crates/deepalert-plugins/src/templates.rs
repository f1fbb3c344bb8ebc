//! Message templates for notifiers: `{{report.result.reason}}`, `{{headline}}`,
//! `{{report.alerts[0].alert_key}}`… (minijinja: Jinja/handlebars-style `{{ … }}`, with
//! `{% if %}` and `{% for %}` when needed). The context is `report` (the report as JSON),
//! `headline` (`[severity] detector — rule`), `severity`, `reason`, `rule` and `link`
//! (the report's link when the notifier has a `link_base`).

use deepalert_core::Report;
use serde_json::json;

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Messages are plain text: nothing is escaped (Slack, Discord and the rest take JSON
    // strings, which serde escapes).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env
}

/// A template that does not parse is an error naming where.
pub fn check(template: &str) -> Result<(), String> {
    env()
        .template_from_str(template)
        .map(|_| ())
        .map_err(|e| format!("template: {e}"))
}

pub fn render(template: &str, report: &Report, link: Option<&str>) -> Result<String, String> {
    let env = env();
    let t = env
        .template_from_str(template)
        .map_err(|e| format!("template: {e}"))?;
    let result = report.result.as_ref();
    t.render(json!({
        "report": report,
        "headline": crate::emitters::headline(report),
        "severity": result.map(|r| r.severity.as_str()).unwrap_or("unreviewed"),
        "reason": result.map(|r| r.reason.as_str()).unwrap_or(""),
        "rule": crate::emitters::rule_label(report),
        "link": link,
    }))
    .map_err(|e| format!("template: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_report_fields_and_refuses_broken_templates() {
        let mut report = deepalert_core::Report {
            id: "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11".parse().unwrap(),
            alerts: vec![serde_json::from_value(json!({"detector": "aws-cloudtrail", "rule_id": "root-login", "alert_key": "123456789012"})).unwrap()],
            attributes: vec![],
            sections: vec![],
            notes: vec![],
            result: Some(deepalert_core::ReviewResult::unclassified("root signed in <from> \"home\"")),
            status: deepalert_core::ReportStatus::Published,
            created_at: chrono::Utc::now(),
            published_at: None,
            publications: 1,
            timeline: vec![],
        };
        let text = render(
            "{{severity}}: {{report.result.reason}} (key {{report.alerts[0].alert_key}}){% if link %} {{link}}{% endif %}",
            &report,
            Some("http://x/reports/1"),
        )
        .unwrap();
        assert_eq!(
            text,
            "unclassified: root signed in <from> \"home\" (key 123456789012) http://x/reports/1"
        );
        report.result = None;
        assert_eq!(
            render(
                "{{severity}}/{{reason}}/{{report.nothing.here}}",
                &report,
                None
            )
            .unwrap(),
            "unreviewed//"
        );
        assert!(check("{{ report.result").unwrap_err().contains("template"));
    }
}
