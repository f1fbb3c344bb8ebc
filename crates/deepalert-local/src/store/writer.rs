//! Group commit: the only thread that writes to the database.
//!
//! Writes queue up while a commit is in progress; the next batch runs them all in one
//! transaction, each in its own savepoint so a failing write rolls back alone. Callers are
//! answered after the batch commits, so an answered write is as durable as the commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use rusqlite::{Connection, TransactionBehavior};

use super::CachedSql;
use tracing::error;

/// Writes per transaction at most: bounds how long one commit keeps callers waiting.
const MAX_BATCH: usize = 256;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What running one write produced: keep its savepoint or roll it back, and how to answer
/// its caller once the batch's fate is known.
pub(super) struct Ran {
    keep: bool,
    answer: Completion,
}

impl Ran {
    pub(super) fn ok(answer: impl FnOnce(Result<(), String>) + Send + 'static) -> Ran {
        Ran {
            keep: true,
            answer: Box::new(answer),
        }
    }

    /// The write failed on its own; its caller already has its error.
    pub(super) fn failed(answer: impl FnOnce(String) + Send + 'static) -> Ran {
        Ran {
            keep: false,
            answer: Box::new(move |r| answer(r.err().unwrap_or_default())),
        }
    }
}

/// A write. Called with `None` when its batch could not even start.
pub(super) type Op = Box<dyn FnOnce(Option<&Connection>) -> Ran + Send>;

/// Writes run and transactions committed since the store opened (the benchmark prints
/// them).
#[derive(Debug, Default)]
pub struct WriteStats {
    pub writes: AtomicU64,
    pub transactions: AtomicU64,
}

pub(super) fn spawn(conn: Connection, stats: Arc<WriteStats>) -> Sender<Op> {
    let (tx, rx) = std::sync::mpsc::channel::<Op>();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, rx, &stats))
        .expect("cannot spawn the sqlite writer thread");
    tx
}

fn run(mut conn: Connection, rx: Receiver<Op>, stats: &WriteStats) {
    let mut batch: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    // Ends when every store handle (sender) is dropped.
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        commit_batch(&mut conn, &mut batch);
    }
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Op>) {
    let mut answers: Vec<Completion> = Vec::with_capacity(batch.len());
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            error!(error = %e, "cannot begin a write transaction");
            for op in batch.drain(..) {
                (op(None).answer)(Err(e.to_string()));
            }
            return;
        }
    };
    for op in batch.drain(..) {
        // rusqlite's `Savepoint` parses its SQL each time; these come from the cache.
        let ran = match tx.exec("SAVEPOINT write", []) {
            Ok(_) => {
                let ran = op(Some(&*tx));
                let released = if ran.keep {
                    tx.exec("RELEASE write", [])
                } else {
                    tx.exec("ROLLBACK TO write", [])
                        .and_then(|_| tx.exec("RELEASE write", []))
                };
                match released {
                    Ok(_) => ran,
                    Err(e) => Ran {
                        keep: false,
                        answer: Box::new(move |_| (ran.answer)(Err(e.to_string()))),
                    },
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let ran = op(None);
                Ran {
                    keep: false,
                    answer: Box::new(move |_| (ran.answer)(Err(msg))),
                }
            }
        };
        answers.push(ran.answer);
    }
    let committed = tx.commit().map_err(|e| {
        error!(error = %e, "write transaction failed to commit");
        e.to_string()
    });
    for answer in answers {
        answer(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    type Answers = Arc<Mutex<Vec<(&'static str, bool)>>>;

    fn insert(v: &'static str, fail: bool, answers: Answers) -> Op {
        Box::new(move |c| {
            c.expect("batch started")
                .execute("INSERT INTO t VALUES (?1)", [v])
                .unwrap();
            if fail {
                Ran::failed(move |_| answers.lock().unwrap().push((v, false)))
            } else {
                Ran::ok(move |r| answers.lock().unwrap().push((v, r.is_ok())))
            }
        })
    }

    #[test]
    fn a_failing_write_rolls_back_alone_and_the_batch_commits() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
        let answers = Answers::default();
        // Twice: the cached savepoint statements are reused by the second batch.
        for round in 0..2 {
            let mut batch = vec![
                insert("a", false, answers.clone()),
                insert("b", true, answers.clone()),
                insert("c", false, answers.clone()),
            ];
            commit_batch(&mut conn, &mut batch);
            let rows: Vec<String> = conn
                .prepare("SELECT v FROM t ORDER BY rowid")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let want: Vec<&str> = ["a", "c"].repeat(round + 1);
            assert_eq!(rows, want);
        }
        assert_eq!(
            *answers.lock().unwrap(),
            [("a", true), ("b", false), ("c", true)].repeat(2)
        );
    }
}
