//! Fault injection for the crash tests: the process dies (abort, as abruptly as kill -9:
//! no destructor, no flush) the n-th time it reaches a named step boundary. Off unless a
//! point is given (`deepalert serve` reads `DEEPALERT_FAULT=<point>:<n>`, for tests only).

use std::sync::atomic::{AtomicU32, Ordering};

/// The step boundaries where the engine can be made to die.
pub const POINTS: &[&str] = &[
    // The alert is committed; its 202 is not sent yet.
    "receive:accepted",
    // Some inspection jobs are queued; the dispatch is not marked done.
    "dispatch:tasks-queued",
    // One inspector's findings are stored; the job is not marked done (others pending).
    "inspect:stored",
    // The verdict is in hand; nothing is published.
    "review:reviewed",
    // The publication is recorded and its emit jobs queued; none has run.
    "review:published",
    // The emitter delivered; its job is not marked done.
    "emit:sent",
];

#[derive(Debug, Default)]
pub struct Faults {
    point: Option<(String, u32)>,
    hits: AtomicU32,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }

    /// `<point>:<n>` (n ≥ 1), a point of [`POINTS`].
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let (point, n) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("fault {spec:?}: expected <point>:<n>"))?;
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("fault {spec:?}: n must be a number from 1"))?;
        if !POINTS.contains(&point) {
            return Err(format!(
                "fault {spec:?}: no point {point:?} (points: {})",
                POINTS.join(", ")
            ));
        }
        Ok(Faults {
            point: Some((point.to_string(), n)),
            hits: AtomicU32::new(0),
        })
    }

    pub fn hit(&self, point: &str) {
        if let Some((p, n)) = &self.point
            && p == point
            && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == *n
        {
            eprintln!("deepalert: fault injection: dying at {point} (hit {n})");
            std::process::abort();
        }
    }
}
