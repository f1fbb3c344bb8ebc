//! Crash tests of the real `deepalert serve`: it dies (abort, as kill -9) at each step
//! boundary of the pipeline (`deepalert_local::faults::POINTS`), and is also killed -9 at
//! random moments of a burst, once with `durability = "full"`; each time it restarts on
//! the same data directory, the clients send again what was not acknowledged (as any
//! producer retries), and the test checks: no accepted alert is missing from its report,
//! every report is published, none twice for one trigger, and the emitter got each
//! publication once, plus at most the deliveries in flight at the kill (delivered, not yet
//! recorded: never more than were made before it; the figure is printed).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deepalert_testkit::{Server, ServerSpec, free_port, read_json};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");
const ALERTS: usize = 12;

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// The delays of the crash tests: a job per step, and with no review delay, the
/// inspections inside the dispatch job.
const SEPARATE_STEPS: (&str, &str) = ("200ms", "1s");
const INSPECTIONS_IN_DISPATCH: (&str, &str) = ("0s", "0s");

fn setup(durability: &str) -> Setup {
    setup_with(durability, SEPARATE_STEPS)
}

fn setup_with(durability: &str, (inspection_delay, review_delay): (&str, &str)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    // Three inspectors, each one finding per attribute; an emitter appending what it gets.
    for name in ["a", "b", "c"] {
        let script = dir.path().join(format!("inspect-{name}.sh"));
        std::fs::write(
            &script,
            format!("#!/bin/sh\ncat >/dev/null\necho '{{\"findings\": [{{\"type\": \"host\", \"content\": {{\"hostname\": [\"{name}\"]}}}}]}}'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let emit = dir.path().join("emit.sh");
    std::fs::write(
        &emit,
        // One file per delivery: deliveries running at once never mix their writes.
        "#!/bin/sh\nmkdir -p emitted\npython3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({\"id\": r[\"id\"], \"publications\": r[\"publications\"]}))' > \"$(mktemp emitted/XXXXXXXX)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&emit, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("deepalert.toml");
    std::fs::write(
        &config,
        format!(
            r#"
durability = "{durability}"
[pipeline]
inspection_delay = "{inspection_delay}"
review_delay = "{review_delay}"
[[inspector]]
name = "a"
command = ["./inspect-a.sh"]
[[inspector]]
name = "b"
command = ["./inspect-b.sh"]
[[inspector]]
name = "c"
command = ["./inspect-c.sh"]
[[emitter]]
name = "log"
command = ["./emit.sh"]
"#
        ),
    )
    .unwrap();
    Setup { dir, config }
}

fn alert(i: usize) -> Value {
    json!({
        "detector": "crash-test", "rule_id": "r", "alert_key": format!("k{i}"),
        "attributes": [
            {"type": "ipaddr", "key": "src", "value": format!("198.51.100.{i}"), "context": ["remote"]},
            {"type": "domain", "key": "dst", "value": format!("host{i}.example.com"), "context": ["remote"]},
            {"type": "username", "key": "user", "value": format!("user{i}"), "context": ["subject"]}
        ]
    })
}

fn start(s: &Setup, port: u16, env: &[(&str, &str)]) -> Server {
    Server::start_with_env(
        ServerSpec {
            binary: Path::new(BIN),
            config: Some(&s.config),
            data: &s.dir.path().join("data"),
            port,
            api_key: None,
        },
        env,
    )
}

/// Sends every alert not yet acknowledged; stops at the first the server does not answer.
fn send_unacked(server: &Server, acked: &mut BTreeMap<usize, String>) {
    for i in 0..ALERTS {
        if acked.contains_key(&i) {
            continue;
        }
        match server.try_post_alert(&alert(i)) {
            Some((202, receipt)) => {
                acked.insert(i, receipt["report_id"].as_str().unwrap().to_string());
            }
            Some((status, body)) => panic!("alert {i}: {status} {body}"),
            None => return,
        }
    }
}

/// Deliveries begun: the emitter creates its file first thing.
fn deliveries_started(s: &Setup) -> usize {
    std::fs::read_dir(s.dir.path().join("emitted")).map_or(0, |d| d.count())
}

/// What the emitter got: one file per delivery.
fn deliveries(s: &Setup) -> Vec<Value> {
    let dir = s.dir.path().join("emitted");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        .map(|e| read_json(&e.path()))
        .collect()
}

/// After the crash: restart, send what is missing, wait for every report, check.
/// Returns the deliveries that repeated one made before the kill (in flight then: the
/// emitter had delivered, the engine had not recorded it).
fn recover_and_check(s: &Setup, mut acked: BTreeMap<usize, String>, what: &str) -> usize {
    // A delivery that was running at the kill may still be finishing.
    std::thread::sleep(Duration::from_millis(500));
    let before_restart = deliveries_started(s);
    let server = start(s, free_port(), &[]);
    send_unacked(&server, &mut acked);
    assert_eq!(
        acked.len(),
        ALERTS,
        "{what}: every alert acknowledged after restart"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut publications = 0;
    for (i, id) in &acked {
        let report = loop {
            let r = server.report(id);
            if r["status"] == "published" {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: report {id} of alert {i} never published: {r:#}\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let alerts = report["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{what}: alert {i} stored once: {report:#}");
        assert_eq!(alerts[0]["alert_key"], format!("k{i}"));
        assert_eq!(
            report["publications"], 1,
            "{what}: one trigger, one publication: {report:#}"
        );
        publications += 1;
        let hosts: usize = report["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["hosts"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(hosts, 9, "{what}: 3 attributes × 3 inspectors: {report:#}");
    }
    // Emits run after publication: wait for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries(s).len() < publications && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let emitted = deliveries(s);
    let mut per_report: BTreeMap<String, usize> = BTreeMap::new();
    for e in &emitted {
        *per_report
            .entry(e["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in acked.values() {
        let n = per_report.get(id).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "{what}: {id} delivered {n} times");
    }
    let repeated = emitted.len() - publications;
    assert!(
        repeated <= before_restart,
        "{what}: {repeated} repeated deliveries, but only {before_restart} began before the kill"
    );
    repeated
}

#[test]
fn dying_at_every_step_boundary_loses_nothing_and_publishes_once() {
    die_at_every_step_boundary(SEPARATE_STEPS);
}

#[test]
fn dying_at_every_step_boundary_with_inspections_inside_the_dispatch() {
    die_at_every_step_boundary(INSPECTIONS_IN_DISPATCH);
}

fn die_at_every_step_boundary(delays: (&str, &str)) {
    let mut figures = Vec::new();
    for (k, point) in deepalert_local::faults::POINTS.iter().enumerate() {
        let s = setup_with("normal", delays);
        // Not always the first time through: the 1st to 4th hit, varied per point.
        let hit = 1 + (k * 7 + std::process::id() as usize) % 4;
        let fault = format!("{point}:{hit}");
        let what = format!("{fault} (delays {delays:?})");
        let mut server = start(&s, free_port(), &[("DEEPALERT_FAULT", &fault)]);
        let mut acked = BTreeMap::new();
        send_unacked(&server, &mut acked);
        assert!(
            server.wait_exit(60),
            "{what}: the server never reached the point:\n{}",
            server.log()
        );
        assert!(
            server.log().contains(&format!("dying at {point}")),
            "{what}: {}",
            server.log()
        );
        let dup = recover_and_check(&s, acked, &what);
        figures.push(format!("{what}: repeated deliveries {dup}"));
    }
    eprintln!("{}", figures.join("\n"));
}

#[test]
fn kill_9_at_random_moments_of_a_burst() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    eprintln!("seed {seed}");
    for (run, durability) in ["normal", "normal", "full"].iter().enumerate() {
        let s = setup(durability);
        let mut server = start(&s, free_port(), &[]);
        let pid = server.pid().unwrap();
        // Somewhere between mid-intake and mid-emit (the pipeline takes ~1.5 s).
        let delay = Duration::from_millis(50 + next(2500));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let mut acked = BTreeMap::new();
        send_unacked(&server, &mut acked);
        killer.join().unwrap();
        assert!(server.wait_exit(10));
        let what = format!(
            "run {run} ({durability}), kill after {delay:?}, {} acked",
            acked.len()
        );
        let dup = recover_and_check(&s, acked, &what);
        eprintln!("{what}: repeated deliveries {dup}");
    }
}
