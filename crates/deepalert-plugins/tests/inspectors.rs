//! Threat lists and the asset inventory, from files written here.

use deepalert_core::ports::InspectorPlugin;
use deepalert_core::{AttrType, FindingContent};
use deepalert_plugins::inspectors::inventory::{self, InventoryInspector};
use deepalert_plugins::inspectors::threat_list::{self, ThreatListInspector};
use deepalert_sdk::testing::task;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn lists() -> (tempfile::TempDir, ThreatListInspector) {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ips.txt",
        "# bad addresses\n198.51.100.7\n203.0.113.0/24\n\n2001:db8::/32\n",
    );
    write(
        dir.path(),
        "feodo.csv",
        "# Feodo Tracker export\nfirst_seen_utc,dst_ip,dst_port,malware\n2026-11-01 10:00:00,192.0.2.55,443,Emotet\n",
    );
    write(
        dir.path(),
        "domains.txt",
        "evil.example\nBAD.example.net.\n",
    );
    write(
        dir.path(),
        "urlhaus.csv",
        "# id,dateadded,url,url_status\n\"1\",\"2026-11-01\",\"http://Malware.example/payload.exe\",\"online\"\n",
    );
    write(
        dir.path(),
        "hashes.txt",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\n",
    );
    let options: threat_list::Options = serde_json::from_value(serde_json::json!({
        "files": [
            {"path": "ips.txt", "kind": "ipaddr"},
            {"path": "feodo.csv", "kind": "ipaddr", "column": "dst_ip", "source": "Feodo Tracker"},
            {"path": "domains.txt", "kind": "domain"},
            {"path": "urlhaus.csv", "kind": "url", "column": 2, "source": "URLhaus"},
            {"path": "hashes.txt", "kind": "filehashvalue"}
        ]
    }))
    .unwrap();
    let insp = ThreatListInspector::new(&options, dir.path()).unwrap();
    (dir, insp)
}

async fn sources(insp: &ThreatListInspector, t: AttrType, v: &str) -> Vec<String> {
    let out = insp.inspect(&task(t, v)).await.unwrap();
    out.findings
        .iter()
        .flat_map(|f| match f {
            FindingContent::Host(h) => h
                .activities
                .iter()
                .map(|a| a.target.clone())
                .collect::<Vec<_>>(),
            FindingContent::Binary(b) => b.activities.iter().map(|a| a.target.clone()).collect(),
            FindingContent::User(_) => vec![],
        })
        .collect()
}

#[tokio::test]
async fn threat_lists_match_ips_cidrs_domains_hashes_and_urls() {
    let (_dir, insp) = lists();
    assert_eq!(
        sources(&insp, AttrType::Ipaddr, "198.51.100.7").await,
        vec!["ips.txt"]
    );
    assert_eq!(
        sources(&insp, AttrType::Ipaddr, "203.0.113.200").await,
        vec!["ips.txt"],
        "in the /24"
    );
    assert_eq!(
        sources(&insp, AttrType::Ipaddr, "2001:db8::1").await,
        vec!["ips.txt"]
    );
    assert_eq!(
        sources(&insp, AttrType::Ipaddr, "192.0.2.55").await,
        vec!["Feodo Tracker"],
        "CSV by column name"
    );
    assert!(
        sources(&insp, AttrType::Ipaddr, "198.51.100.8")
            .await
            .is_empty()
    );
    assert!(
        sources(&insp, AttrType::Ipaddr, "not-an-ip")
            .await
            .is_empty()
    );

    assert_eq!(
        sources(&insp, AttrType::Domain, "evil.example").await,
        vec!["domains.txt"]
    );
    assert_eq!(
        sources(&insp, AttrType::Domain, "cdn.login.Evil.Example.").await,
        vec!["domains.txt"],
        "subdomain"
    );
    assert_eq!(
        sources(&insp, AttrType::Domain, "bad.example.net").await,
        vec!["domains.txt"]
    );
    assert!(
        sources(&insp, AttrType::Domain, "notevil.example")
            .await
            .is_empty(),
        "not a subdomain"
    );
    assert!(
        sources(&insp, AttrType::Domain, "example.net")
            .await
            .is_empty(),
        "parents of a listed domain are not listed"
    );

    assert_eq!(
        sources(&insp, AttrType::Url, "http://malware.example/payload.exe").await,
        vec!["URLhaus"],
        "CSV by index, header commented out; host compared case-insensitively"
    );
    assert!(
        sources(&insp, AttrType::Url, "http://malware.example/other")
            .await
            .is_empty()
    );
    assert_eq!(
        sources(
            &insp,
            AttrType::Filehashvalue,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )
        .await,
        vec!["hashes.txt"]
    );
    // Other types are not looked up.
    assert!(
        sources(&insp, AttrType::Username, "198.51.100.7")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_list_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ips.txt",
        "198.51.100.7\n# fine\n198.51.100.300\n",
    );
    let options: threat_list::Options = serde_json::from_value(
        serde_json::json!({"files": [{"path": "ips.txt", "kind": "ipaddr"}]}),
    )
    .unwrap();
    let err = ThreatListInspector::new(&options, dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("ips.txt:3") && err.contains("198.51.100.300"),
        "{err}"
    );
    let options: threat_list::Options = serde_json::from_value(
        serde_json::json!({"files": [{"path": "missing.txt", "kind": "domain"}]}),
    )
    .unwrap();
    let err = ThreatListInspector::new(&options, dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.txt"), "{err}");
}

#[tokio::test]
async fn inventory_says_whose_an_asset_is() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "assets.csv",
        "# our hosts\nmatch,owner,hostname,environment\n10.0.0.0/16,platform-team,,production\n10.0.1.23,alice,web-1,production\nbuild.internal.example.com,ci-team,build-1,staging\n",
    );
    let options: inventory::Options =
        serde_json::from_value(serde_json::json!({"file": "assets.csv"})).unwrap();
    let insp = InventoryInspector::new(&options, dir.path()).unwrap();
    let host = |out: deepalert_core::InspectorOutput| match out.findings.into_iter().next() {
        Some(FindingContent::Host(h)) => Some(h),
        _ => None,
    };
    let web = host(
        insp.inspect(&task(AttrType::Ipaddr, "10.0.1.23"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (web.owner, web.hostname, web.environment),
        (
            vec!["alice".into()],
            vec!["web-1".into()],
            vec!["production".into()]
        )
    );
    let other = host(
        insp.inspect(&task(AttrType::Ipaddr, "10.0.9.9"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(other.owner, vec!["platform-team"], "the /16");
    assert!(other.hostname.is_empty());
    let build = host(
        insp.inspect(&task(AttrType::Domain, "Build.Internal.Example.com"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(build.owner, vec!["ci-team"]);
    assert!(
        host(
            insp.inspect(&task(AttrType::Ipaddr, "192.0.2.1"))
                .await
                .unwrap()
        )
        .is_none(),
        "not ours"
    );
}
