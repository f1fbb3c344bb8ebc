//! The web page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `make browser`, which `make test` runs) loads the report list and a report page from the
//! real `deepalert serve` with reports made by the example plug-ins and policies. The test
//! reads the DOM after the page's script ran, and saves screenshots under
//! `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use deepalert_testkit::{Server, ServerSpec, example, free_port, python, read_json, repo_root};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");
const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> &'static str {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the browser test needs Debian's chromium; `make browser` installs it \
         (apt-get install chromium)"
    );
    CHROMIUM
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom` or `--screenshot=…`); returns
/// stdout. The flags keep it off the network it cannot reach here.
fn browse(profile: &Path, url: &str, what: &str) -> String {
    browse_sized(profile, url, what, (1280, 900))
}

fn browse_sized(profile: &Path, url: &str, what: &str, (w, h): (u32, u32)) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // Lets the deferred script run before the DOM is read.
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(profile: &Path, url: &str, name: &str, size: (u32, u32)) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    browse_sized(
        profile,
        url,
        &format!("--screenshot={}", path.display()),
        size,
    );
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot {path:?}: {e}"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{path:?} is not a page's screenshot ({} bytes)",
        png.len()
    );
    path
}

#[test]
fn chromium_renders_the_report_list_and_a_report() {
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("deepalert.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[pipeline]
inspection_delay = "200ms"
review_delay = "1s"

[[inspector]]
name = "example-intel"
command = ["{py}", "{inspector}"]
attribute_types = ["ipaddr", "username"]

[reviewer]
policies = "{policies}"

[[emitter]]
name = "jsonl-file"
command = ["{py}", "{emitter}"]
env = {{ EMITTER_OUT = "{out}" }}
"#,
            inspector = example("plugins/inspector.py").display(),
            emitter = example("plugins/emitter.py").display(),
            policies = example("policies").display(),
            out = tmp.path().join("emitted.jsonl").display(),
        ),
    )
    .unwrap();
    let server = Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&config),
        data: &tmp.path().join("data"),
        port: free_port(),
        api_key: None,
    });

    let mut reports: Vec<Value> = vec![];
    for file in [
        "alerts/guardduty-ssh-bruteforce.json",
        "alerts/console-login.json",
    ] {
        let (status, receipt) = server.post_alert(&read_json(&example(file)));
        assert_eq!(status, 202, "{receipt}");
        let id = receipt["report_id"].as_str().unwrap().to_string();
        reports.push(server.wait_report(&id, 30, |r| {
            r["status"] == "published"
                && r["timeline"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|e| e["kind"] == "emit"))
        }));
    }

    let profile = tmp.path().join("chromium");
    let list = browse(&profile, &format!("{}/", server.base), "--dump-dom");
    assert!(
        list.contains(r#"data-js="ready""#),
        "the page's script did not run (CSP, or a script error): {list}"
    );
    for r in &reports {
        let severity = r["result"]["severity"].as_str().unwrap();
        let row = &list[list
            .find(&format!(r#"data-report="{}""#, r["id"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("report {} not listed: {list}", r["id"]))..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!(r#"data-severity="{severity}""#)),
            "row of {} has no {severity} badge: {row}",
            r["id"]
        );
        // The script turned times into local ones with their age.
        assert!(
            row.contains(" ago)</time>") || row.contains("just now)</time>"),
            "{row}"
        );
    }

    // The urgent one if the policy found one, else the first.
    let shown = reports
        .iter()
        .find(|r| r["result"]["severity"] == "urgent")
        .unwrap_or(&reports[0]);
    let id = shown["id"].as_str().unwrap();
    let url = format!("{}/reports/{id}", server.base);
    let page = browse(&profile, &url, "--dump-dom");
    let severity = shown["result"]["severity"].as_str().unwrap();
    assert!(
        page.contains(&format!(
            r#"<span class="badge sev-{severity}" data-severity="{severity}">"#
        )),
        "{page}"
    );
    let reason = shown["result"]["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    // A finding of the example inspector, rendered as fields.
    let finding = &page[page
        .find(r#"data-inspector="example-intel""#)
        .unwrap_or_else(|| panic!("no finding of example-intel: {page}"))..];
    assert!(finding.contains("<dl class=\"fields\">"), "{finding}");
    // The timeline, in order.
    let kinds: Vec<&str> = page
        .match_indices(r#"<li data-kind=""#)
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    let api: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, api, "the page shows the report's timeline");
    for k in ["alert", "inspection", "review", "publication", "emit"] {
        assert!(
            kinds.contains(&k),
            "{k} missing from the timeline {kinds:?}"
        );
    }

    let list_png = screenshot(
        &profile,
        &format!("{}/", server.base),
        "reports.png",
        (1280, 520),
    );
    let report_png = screenshot(&profile, &url, "report.png", (1280, 1300));
    println!(
        "screenshots: {} {}",
        list_png.display(),
        report_png.display()
    );
}
