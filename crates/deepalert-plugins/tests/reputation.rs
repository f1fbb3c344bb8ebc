//! VirusTotal and AbuseIPDB against a loopback server that checks the documented
//! requests and replays documented answers, including 404, 429 and 500.

use std::time::{Duration, Instant};

use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent};
use deepalert_plugins::inspectors::abuseipdb::AbuseIpDb;
use deepalert_plugins::inspectors::reputation::{ApiKey, CommonOptions};
use deepalert_plugins::inspectors::virustotal::VirusTotal;
use deepalert_sdk::testing::task;
use deepalert_testkit::http::{Recorder, Seen};
use serde_json::json;

/// A loopback API; what nobody scripted is a 500.
async fn start() -> (Recorder, String) {
    Recorder::start_with_fallback(500, "no reply scripted").await
}

fn options(url: &str, per_minute: u32) -> CommonOptions {
    serde_json::from_value(json!({
        "api_key_env": "UNUSED", "base_url": url, "requests_per_minute": per_minute, "cache_ttl": "1h"
    }))
    .unwrap()
}

#[tokio::test]
async fn virustotal_requests_and_findings() {
    let (api, url) = start().await;
    let vt = VirusTotal::new(&options(&url, 600), ApiKey::new("vt-key".into()));

    // GET /ip_addresses/{ip} (documented answer, trimmed).
    api.reply(200, json!({"data": {"id": "198.51.100.23", "type": "ip_address", "attributes": {
        "country": "NL", "as_owner": "Example Hosting BV", "reputation": -12,
        "last_analysis_stats": {"harmless": 60, "malicious": 7, "suspicious": 1, "undetected": 20, "timeout": 0}
    }}}));
    let out = vt
        .inspect(&task(AttrType::Ipaddr, "198.51.100.23"))
        .await
        .unwrap();
    let Seen {
        uri: path, headers, ..
    } = &api.seen()[0];
    assert_eq!(path, "/ip_addresses/198.51.100.23");
    assert_eq!(headers["x-apikey"], "vt-key");
    let FindingContent::Host(host) = &out.findings[0] else {
        panic!("{out:?}")
    };
    assert_eq!(host.country, vec!["NL"]);
    assert_eq!(host.as_owner, vec!["Example Hosting BV"]);
    assert_eq!(
        host.activities[0].action,
        "8 of 88 engines flag it malicious or suspicious"
    );

    // The same indicator again: from the cache, no request.
    let again = vt
        .inspect(&task(AttrType::Ipaddr, "198.51.100.23"))
        .await
        .unwrap();
    assert_eq!(again, out);
    assert_eq!(api.seen().len(), 1, "cache hit");

    // Files: detections become malware scans.
    api.reply(200, json!({"data": {"type": "file", "attributes": {
        "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        "meaningful_name": "eicar.com",
        "last_analysis_stats": {"malicious": 2, "suspicious": 0, "harmless": 0, "undetected": 1},
        "last_analysis_results": {
            "Avast": {"category": "malicious", "engine_name": "Avast", "result": "EICAR Test-NOT virus!!!"},
            "ClamAV": {"category": "malicious", "engine_name": "ClamAV", "result": "Eicar-Signature"},
            "Other": {"category": "undetected", "engine_name": "Other", "result": null}
        }
    }}}));
    let out = vt
        .inspect(&task(
            AttrType::Filehashvalue,
            "275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F",
        ))
        .await
        .unwrap();
    assert_eq!(
        api.seen()[1].uri,
        "/files/275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    );
    let FindingContent::Binary(bin) = &out.findings[0] else {
        panic!("{out:?}")
    };
    assert_eq!(bin.related_malware[0].scans.len(), 2);
    assert!(
        bin.related_malware[0]
            .scans
            .iter()
            .any(|s| s.vendor == "ClamAV" && s.name == "Eicar-Signature")
    );

    // URLs are addressed by unpadded base64url.
    api.reply(
        404,
        json!({"error": {"code": "NotFoundError", "message": "URL not found"}}),
    );
    let out = vt
        .inspect(&task(AttrType::Url, "http://malware.example/x?a=1"))
        .await
        .unwrap();
    assert_eq!(
        api.seen()[2].uri,
        "/urls/aHR0cDovL21hbHdhcmUuZXhhbXBsZS94P2E9MQ"
    );
    assert!(out.findings.is_empty(), "404: nothing known");

    // 429 is "rate limited" (noted on the report), not a silent nothing, and not cached.
    api.reply(
        429,
        json!({"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}),
    );
    let err = vt
        .inspect(&task(AttrType::Domain, "evil.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::RateLimited(_)), "{err}");
    assert!(
        err.to_string().contains("rate limited by virustotal"),
        "{err}"
    );
    api.reply(500, json!({"error": {"code": "TransientError"}}));
    let err = vt
        .inspect(&task(AttrType::Domain, "evil.example"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(api.seen().len(), 5, "failures are retried, not cached");
    // Other attribute types are not sent.
    vt.inspect(&task(AttrType::Username, "alice"))
        .await
        .unwrap();
    assert_eq!(api.seen().len(), 5);
}

#[tokio::test]
async fn abuseipdb_requests_and_findings() {
    let (api, url) = start().await;
    let db = AbuseIpDb::new(&options(&url, 600), ApiKey::new("abuse-key".into()));
    api.reply(200, json!({"data": {
        "ipAddress": "198.51.100.23", "isPublic": true, "ipVersion": 4, "isWhitelisted": false,
        "abuseConfidenceScore": 100, "countryCode": "NL", "usageType": "Data Center/Web Hosting/Transit",
        "isp": "Example Hosting BV", "domain": "example-hosting.nl", "totalReports": 1342,
        "numDistinctUsers": 210, "lastReportedAt": "2026-11-21T23:12:01+00:00"
    }}));
    let out = db
        .inspect(&task(AttrType::Ipaddr, "198.51.100.23"))
        .await
        .unwrap();
    let Seen {
        uri: path, headers, ..
    } = &api.seen()[0];
    assert_eq!(path, "/check?ipAddress=198.51.100.23&maxAgeInDays=90");
    assert_eq!(headers["key"], "abuse-key");
    assert_eq!(headers["accept"], "application/json");
    let FindingContent::Host(host) = &out.findings[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        host.activities[0].action,
        "abuse confidence 100% from 1342 report(s) in 90 days"
    );
    assert_eq!(host.country, vec!["NL"]);
    assert_eq!(host.related_domains[0].name, "example-hosting.nl");
    assert!(host.activities[0].last_seen.is_some());

    db.inspect(&task(AttrType::Ipaddr, "198.51.100.23"))
        .await
        .unwrap();
    assert_eq!(api.seen().len(), 1, "cache hit");
    db.inspect(&task(AttrType::Domain, "example.com"))
        .await
        .unwrap();
    db.inspect(&task(AttrType::Ipaddr, "not-an-ip"))
        .await
        .unwrap();
    assert_eq!(api.seen().len(), 1, "only IP addresses are checked");

    api.reply(429, json!({"errors": [{"detail": "Daily rate limit of 1000 requests exceeded for this endpoint.", "status": 429}]}));
    let err = db
        .inspect(&task(AttrType::Ipaddr, "192.0.2.1"))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::RateLimited(_)), "{err}");
    api.reply(
        401,
        json!({"errors": [{"detail": "Authentication failed.", "status": 401}]}),
    );
    let err = db
        .inspect(&task(AttrType::Ipaddr, "192.0.2.1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused the API key"), "{err}");
    assert!(
        !err.to_string().contains("abuse-key"),
        "the key is never in an error"
    );
}

#[tokio::test]
async fn the_rate_limit_holds() {
    let (api, url) = start().await;
    // 120 a minute: one every 500 ms.
    let db = AbuseIpDb::new(&options(&url, 120), ApiKey::new("k".into()));
    for _ in 0..4 {
        api.reply(
            200,
            json!({"data": {"abuseConfidenceScore": 0, "totalReports": 0}}),
        );
    }
    let start = Instant::now();
    let t = |i: u8| task(AttrType::Ipaddr, &format!("192.0.2.{i}"));
    // Four inspections in flight at once, as the runtime would run them.
    let (t1, t2, t3, t4) = (t(1), t(2), t(3), t(4));
    let (a, b, c, d) = tokio::join!(
        db.inspect(&t1),
        db.inspect(&t2),
        db.inspect(&t3),
        db.inspect(&t4)
    );
    for r in [a, b, c, d] {
        r.unwrap();
    }
    // Four requests at 500 ms spacing: the last starts no earlier than 1.5 s in.
    assert!(
        start.elapsed() >= Duration::from_millis(1450),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(api.seen().len(), 4);
    assert!(
        format!("{:?}", ApiKey::new("secret".into())) == "ApiKey(***)",
        "keys do not print"
    );
}
