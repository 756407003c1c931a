//! Group commit: many writers, one fsync.
//!
//! A writer applies its change to sled (memory) and then takes a ticket. One background task
//! flushes whenever tickets are outstanding; a flush that starts after ticket `n` was taken makes
//! every ticket up to `n` durable at once. So a burst of likes that arrives while one flush runs
//! shares the next flush instead of paying for one each.
//!
//! Under load, flushes start at most every [`GATHER`]: a flush costs the same CPU (writeback,
//! thread hand-offs) whether it carries one like or a thousand, and on a busy server that CPU is
//! what the likes need. A quiet server flushes at once; a busy one waits at most `GATHER` more.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

/// How far flushing has got: every ticket `<= ok` is durable; tickets in `(ok, failed]` were in a
/// flush that failed.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    ok: u64,
    failed: u64,
    /// How long the latest flush took.
    took: Duration,
}

/// The shortest time between the starts of two flushes.
pub const GATHER: Duration = Duration::from_millis(10);

/// Why a change could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("storage flush failed: {0}")]
    Flush(String),
    #[error("storage is shutting down")]
    Closed,
}

/// Something that can be flushed to stable storage.
pub trait Flush: Send + Sync + 'static {
    fn flush(&self) -> Result<(), String>;
}

struct Inner {
    target: Arc<dyn Flush>,
    /// `false`: every waiter pays for its own flush, one after the other (the naive way; kept
    /// for the benchmark that shows what group commit saves).
    group: bool,
    serial: tokio::sync::Mutex<()>,
    requested: AtomicU64,
    progress: watch::Sender<Progress>,
    wake: Notify,
}

/// Cheap-to-clone handle to the committer task.
#[derive(Clone)]
pub struct Committer {
    inner: Arc<Inner>,
}

impl Committer {
    /// Starts the flushing task on the current tokio runtime. `group = false` flushes once per
    /// waiter (benchmark baseline).
    pub fn start_with(target: Arc<dyn Flush>, group: bool) -> Committer {
        let (tx, _) = watch::channel(Progress::default());
        let inner = Arc::new(Inner {
            target,
            group,
            serial: tokio::sync::Mutex::new(()),
            requested: AtomicU64::new(0),
            progress: tx,
            wake: Notify::new(),
        });
        let task = inner.clone();
        tokio::spawn(async move { run(task).await });
        Committer { inner }
    }

    /// Waits until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<(), CommitError> {
        self.ticket().wait().await.map(|_| ())
    }

    /// Takes a place in the next flush now, to be waited for later: a writer that applied its
    /// change can let the next writer go on while the flush runs.
    pub fn ticket(&self) -> Ticket {
        if !self.inner.group {
            return Ticket { inner: self.inner.clone(), number: None };
        }
        let number = self.inner.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.wake.notify_one();
        Ticket { inner: self.inner.clone(), number: Some(number) }
    }
}

/// A change that will be durable once a flush that started after it has finished.
#[must_use]
pub struct Ticket {
    inner: Arc<Inner>,
    /// `None`: no group commit, this ticket pays for its own flush.
    number: Option<u64>,
}

impl Ticket {
    /// Waits for the flush that makes this ticket durable; says how long that flush took (the
    /// breaker judges the disk by it, not by the time spent waiting for it).
    pub async fn wait(self) -> Result<Duration, CommitError> {
        let Some(ticket) = self.number else {
            let _one_at_a_time = self.inner.serial.lock().await;
            let started = Instant::now();
            return flush_once(&self.inner).await.map(|()| started.elapsed()).map_err(CommitError::Flush);
        };
        let mut rx = self.inner.progress.subscribe();
        let seen = rx.wait_for(|p| p.ok >= ticket || p.failed >= ticket).await.map_err(|_| CommitError::Closed)?;
        if seen.ok >= ticket { Ok(seen.took) } else { Err(CommitError::Flush("a storage flush failed".into())) }
    }
}

/// One flush, timed.
async fn flush_once(inner: &Inner) -> Result<(), String> {
    let flusher = inner.target.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || flusher.flush())
        .await
        .unwrap_or_else(|e| Err(format!("flush task failed: {e}")));
    crate::metrics::METRICS.flush_seconds.observe(started.elapsed().as_secs_f64());
    result
}

async fn run(inner: Arc<Inner>) {
    let mut last_start: Option<Instant> = None;
    loop {
        inner.wake.notified().await;
        loop {
            if inner.requested.load(Ordering::Acquire) <= inner.progress.borrow().ok.max(inner.progress.borrow().failed)
            {
                break;
            }
            if let Some(gap) = last_start.and_then(|t| GATHER.checked_sub(t.elapsed())) {
                tokio::time::sleep(gap).await;
            }
            let target = inner.requested.load(Ordering::Acquire);
            let started = Instant::now();
            last_start = Some(started);
            let result = flush_once(&inner).await;
            let took = started.elapsed();
            inner.progress.send_modify(|p| {
                p.took = took;
                match result {
                    Ok(()) => p.ok = target,
                    Err(ref e) => {
                        tracing::error!(error = %e, "storage flush failed");
                        p.failed = target;
                    }
                }
            });
            // Ends the task if every handle went away during this flush. Handles dropped while
            // the task waits for `wake` go unnoticed: it stays parked, holding the flush target,
            // until its runtime shuts down.
            if Arc::strong_count(&inner) == 1 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    struct Counting(AtomicUsize, bool);
    impl Flush for Counting {
        fn flush(&self) -> Result<(), String> {
            std::thread::sleep(Duration::from_millis(20));
            self.0.fetch_add(1, Ordering::SeqCst);
            if self.1 { Err("disk on fire".into()) } else { Ok(()) }
        }
    }

    #[tokio::test]
    async fn many_waiters_share_few_flushes() {
        let target = Arc::new(Counting(AtomicUsize::new(0), false));
        let c = Committer::start_with(target.clone(), true);
        let waits: Vec<_> = (0..200)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.durable().await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let flushes = target.0.load(Ordering::SeqCst);
        assert!((1..20).contains(&flushes), "200 waiters took {flushes} flushes");
    }

    #[tokio::test]
    async fn failures_reach_the_waiter() {
        let c = Committer::start_with(Arc::new(Counting(AtomicUsize::new(0), true)), true);
        assert!(matches!(c.durable().await, Err(CommitError::Flush(_))));
    }
}
