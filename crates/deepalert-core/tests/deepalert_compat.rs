//! DeepAlert's messages (both lines), exactly as its Go packages write them
//! (`tests/fixtures/deepalert`), read by the core: inspector results, reports, verdicts,
//! open attribute types and Go's zero times.

use std::path::PathBuf;

use deepalert_core::{
    AttrContext, AttrType, Attribute, FindingContent, InspectionReport, InspectorOutput, Report,
    ReportId, ReportStatus, SectionFormat, Severity, Task, parse_alert, parse_verdict,
};
use serde_json::{Value, json};

const PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/deepalert")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report_id() -> ReportId {
    PLACEHOLDER.parse().unwrap()
}

#[test]
fn a_fork_host_finding_becomes_a_finding_of_its_attribute() {
    let msg = InspectionReport::from_message(fixture("fork-finding-host.json").as_bytes()).unwrap();
    assert_eq!(msg.report_id, report_id());
    assert_eq!(msg.author, "ip-reputation");
    assert_eq!(msg.attribute.value, "198.51.100.23");
    assert_eq!(msg.attribute.attr_type, AttrType::Ipaddr);
    assert!(msg.output.attributes.is_empty());
    let [FindingContent::Host(host)] = msg.output.findings.as_slice() else {
        panic!("one host finding: {:?}", msg.output.findings)
    };
    assert_eq!(host.country, vec!["NL"]);
    assert_eq!(host.related_domains[0].name, "c2.example.net");
    // Go's zero time is "no time", not year 1.
    assert_eq!(host.activities[0].last_seen, None);
    assert_eq!(msg.error, None);
}

#[test]
fn a_fork_user_finding_and_an_original_binary_section_are_read_alike() {
    let user =
        InspectionReport::from_message(fixture("fork-finding-user.json").as_bytes()).unwrap();
    let [FindingContent::User(u)] = user.output.findings.as_slice() else {
        panic!("{user:?}")
    };
    assert_eq!(u.activities[0].remote_addr, "203.0.113.7");
    assert!(u.activities[0].last_seen.is_some());

    let binary =
        InspectionReport::from_message(fixture("original-section-binary.json").as_bytes()).unwrap();
    assert_eq!(binary.author, "malware-scan");
    assert_eq!(binary.attribute.attr_type, AttrType::Filehashvalue);
    let [FindingContent::Binary(b)] = binary.output.findings.as_slice() else {
        panic!("{binary:?}")
    };
    assert_eq!(b.related_malware[0].scans.len(), 2);
    assert!(b.related_malware[0].scans[0].positive);
    assert_eq!(b.related_malware[0].timestamp, None);
    assert_eq!(b.os, vec!["linux"]);
}

#[test]
fn new_attributes_in_both_lines_name_their_origin() {
    for (file, origin, found) in [
        (
            "fork-new-attributes.json",
            "198.51.100.23",
            "c2.example.net",
        ),
        (
            "original-new-attributes.json",
            "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
            "http://c2.example.net/payload",
        ),
    ] {
        let msg = InspectionReport::from_message(fixture(file).as_bytes()).unwrap();
        assert_eq!(msg.attribute.value, origin, "{file}");
        assert!(msg.output.findings.is_empty(), "{file}");
        assert_eq!(msg.output.attributes.len(), 1, "{file}");
        assert_eq!(msg.output.attributes[0].value, found, "{file}");
    }
}

#[test]
fn our_own_shape_is_still_read() {
    let ours = json!({
        "report_id": PLACEHOLDER, "author": "intel",
        "attribute": {"type": "ipaddr", "value": "192.0.2.1"},
        "findings": [{"type": "host", "content": {"country": ["JP"]}}],
        "attributes": []
    });
    let msg = InspectionReport::from_message(ours.to_string().as_bytes()).unwrap();
    assert_eq!(msg.output.findings.len(), 1);
    let failed = json!({
        "report_id": PLACEHOLDER, "author": "intel",
        "attribute": {"type": "ipaddr", "value": "192.0.2.1"},
        "error": "quota exceeded"
    });
    let msg = InspectionReport::from_message(failed.to_string().as_bytes()).unwrap();
    assert_eq!(msg.error.as_deref(), Some("quota exceeded"));
}

#[test]
fn a_message_of_no_accepted_shape_is_an_error_that_says_why() {
    let attr = json!({"type": "ipaddr", "value": "192.0.2.1"});
    let cases = [
        (json!([1, 2]), "must be a JSON object"),
        (
            json!({"report_id": PLACEHOLDER, "author": "x", "attribute": attr}),
            "not an inspection message",
        ),
        (
            json!({"report_id": PLACEHOLDER, "author": "x", "attribute": attr, "type": "network", "content": {}}),
            "type \"network\" is not host, user or binary",
        ),
        (
            json!({"report_id": PLACEHOLDER, "author": "x", "attribute": attr, "type": "host"}),
            "missing field `content`",
        ),
        (
            json!({"report_id": PLACEHOLDER, "author": "x", "type": "host", "content": {}}),
            "missing field `attribute`",
        ),
        (
            json!({"report_id": "nope", "author": "x", "attribute": attr, "findings": []}),
            "report_id",
        ),
        (
            json!({"report_id": PLACEHOLDER, "author": "", "attribute": attr, "findings": []}),
            "author must not be empty",
        ),
        (
            json!({"report_id": PLACEHOLDER, "author": "x", "origin_attr": attr, "attributes": [{"type": "domain"}]}),
            "attributes",
        ),
        (
            json!({"report_id": PLACEHOLDER, "author": "x", "attribute": attr, "type": "host", "content": {"country": "NL"}}),
            "content",
        ),
    ];
    for (message, expected) in cases {
        let err = InspectionReport::from_message(message.to_string().as_bytes())
            .expect_err(&message.to_string())
            .to_string();
        assert!(err.contains(expected), "{message} gave {err:?}");
    }
    let err = InspectionReport::from_message(b"{not json").unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}

fn task_for(attribute: &str) -> Task {
    let attribute: Value =
        serde_json::from_str::<Value>(&fixture(attribute)).unwrap()["attribute"].clone();
    Task {
        report_id: report_id(),
        attribute: serde_json::from_value(attribute).unwrap(),
        detector: "falco".into(),
        rule_id: "outbound-to-c2".into(),
    }
}

#[test]
fn an_exec_inspector_may_print_deepalert_messages_one_per_line() {
    let task = task_for("fork-finding-host.json");
    let stdout = format!(
        "{}\n{}\n",
        fixture("fork-finding-host.json").trim(),
        fixture("fork-new-attributes.json").trim()
    );
    let out = InspectorOutput::from_plugin_output(&task, stdout.as_bytes()).unwrap();
    assert_eq!(out.findings.len(), 1);
    assert_eq!(out.attributes[0].value, "c2.example.net");

    // Our own shape, pretty-printed over several lines, still works; so does nothing.
    let ours =
        "{\n  \"findings\": [{\"type\": \"user\", \"content\": {}}],\n  \"attributes\": null\n}\n";
    let out = InspectorOutput::from_plugin_output(&task, ours.as_bytes()).unwrap();
    assert_eq!(out.findings.len(), 1);
    assert_eq!(
        InspectorOutput::from_plugin_output(&task, b"  \n").unwrap(),
        InspectorOutput::default()
    );
    assert_eq!(
        InspectorOutput::from_plugin_output(&task, b"null").unwrap(),
        InspectorOutput::default()
    );

    // A message about another report or attribute is refused, naming the line.
    let other = fixture("fork-finding-user.json");
    let err = InspectorOutput::from_plugin_output(&task, other.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("document 1") && err.to_string().contains("www-data"),
        "{err}"
    );
    let elsewhere = fixture("fork-finding-host.json")
        .replace(PLACEHOLDER, "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11");
    let err = InspectorOutput::from_plugin_output(&task, elsewhere.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("not the task's"), "{err}");
    let err = InspectorOutput::from_plugin_output(&task, b"{\"findings\": []}\n[1]").unwrap_err();
    assert!(err.to_string().contains("document 2"), "{err}");
}

#[test]
fn reports_from_both_lines_decode() {
    let fork: Report = serde_json::from_str(&fixture("fork-report.json")).unwrap();
    assert_eq!(fork.status, ReportStatus::More);
    assert_eq!(fork.result, None, "an empty severity is not reviewed");
    assert_eq!(fork.sections.len(), 1);
    assert_eq!(fork.sections[0].attribute.value, "198.51.100.23");
    assert_eq!(fork.sections[0].hosts[0].content.country, vec!["NL"]);
    assert_eq!(fork.sections[0].hosts[0].author, "");

    let original: Report = serde_json::from_str(&fixture("original-report.json")).unwrap();
    assert_eq!(
        original.result.as_ref().map(|r| r.severity),
        Some(Severity::Urgent)
    );
    assert_eq!(original.sections.len(), 1);
    assert_eq!(original.sections[0].binaries[0].author, "malware-scan");
    assert_eq!(
        original.sections[0].binaries[0].content.related_malware[0].relation,
        "dropped"
    );
    assert!(original.alerts[0].attributes.is_empty());
}

#[test]
fn our_reports_carry_deepalert_names_and_the_flat_list_on_request() {
    let mut report: Report = serde_json::from_str(&fixture("original-report.json")).unwrap();
    report.result = None;
    let grouped = report.to_wire(SectionFormat::Grouped);
    let section = &grouped["sections"][0];
    assert_eq!(section["attr"], section["attribute"], "the fork reads attr");
    assert_eq!(section["binaries"][0]["author"], "malware-scan");
    assert_eq!(
        grouped["result"],
        json!({"severity": "", "reason": ""}),
        "result is always an object, as DeepAlert sent it"
    );

    let flat = report.to_wire(SectionFormat::Flat);
    assert_eq!(flat["sections"][0]["type"], "binary");
    assert_eq!(flat["sections"][0]["author"], "malware-scan");
    assert_eq!(flat["sections"][0]["report_id"], PLACEHOLDER);
    assert_eq!(
        flat["sections"][0]["content"]["related_malware"][0]["relation"],
        "dropped"
    );
    // Both shapes read back to the same report.
    let back: Report = serde_json::from_value(flat).unwrap();
    assert_eq!(back.sections, report.sections);
    let back: Report = serde_json::from_value(grouped).unwrap();
    assert_eq!(back.sections, report.sections);
    assert_eq!(back.result, None);
}

#[test]
fn a_verdict_with_an_empty_severity_or_null_is_no_verdict() {
    for none in [
        "",
        "null",
        " \n",
        r#"{"severity": "", "reason": ""}"#,
        r#"{"reason": "x"}"#,
    ] {
        assert_eq!(parse_verdict(none.as_bytes()), Ok(None), "{none:?}");
    }
    let v = parse_verdict(br#"{"severity": "safe", "reason": "our scanner"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(v.severity, Severity::Safe);
    assert_eq!(v.reason, "our scanner");
    let err = parse_verdict(br#"{"severity": "high"}"#).unwrap_err();
    assert!(err.contains("unknown severity \"high\""), "{err}");
    assert!(parse_verdict(b"[1]").is_err());
}

#[test]
fn unknown_attribute_types_and_contexts_are_kept_as_they_came() {
    let alert = parse_alert(fixture("alert.json").as_bytes()).unwrap();
    let instance = &alert.attributes[3];
    assert_eq!(
        instance.attr_type,
        AttrType::Other("instanceid".to_string())
    );
    assert!(instance.context.contains(&AttrContext::Local));
    assert!(
        instance
            .context
            .contains(&AttrContext::Other("workload".to_string()))
    );
    let back = serde_json::to_value(instance).unwrap();
    assert_eq!(back["type"], "instanceid");
    assert_eq!(back["context"], json!(["local", "workload"]));
    // Its identity differs from a known type with the same value.
    let as_domain = Attribute {
        attr_type: AttrType::Domain,
        ..instance.clone()
    };
    assert_ne!(instance.identity(), as_domain.identity());
    // Configuration filters name known types only.
    assert!("instanceid".parse::<AttrType>().is_err());
    assert_eq!("url".parse::<AttrType>(), Ok(AttrType::Url));
}

#[test]
fn go_zero_times_are_no_time() {
    let alert = parse_alert(
        br#"{"detector":"d","rule_id":"r","timestamp":"0001-01-01T00:00:00Z",
             "attributes":[{"type":"ipaddr","key":"k","value":"192.0.2.1","context":null,"timestamp":"0001-01-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    assert_eq!(alert.timestamp, None);
    assert_eq!(alert.attributes[0].timestamp, None);
}
