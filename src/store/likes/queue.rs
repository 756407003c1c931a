//! The commit queue of likes and unlikes, with admission control (SPEC §7).
//!
//! A like costs little to apply, but a transaction and a flush cost a lot: sled writes out its
//! log buffer twice per transaction (each write a job for its I/O threads, which all wake for
//! it, and a wait for the disk) and once per flush. So likes wait here, and one drainer applies
//! all that are waiting as one transaction, flushes it (sharing the flush with any other durable
//! write), answers the batch, and takes the next: one transaction per flush, while the next
//! batch gathers. Each like is answered when its batch is on disk.
//!
//! Overload is not a fault. The queue holds at most `depth` likes admitted and not yet answered
//! (which also bounds what one flush carries): one more is refused "Server busy" at once. A like
//! that waited longer than `max_wait` to be applied (the CPU, not the queue, is the bottleneck)
//! is refused the same way instead of being applied late. Everything admitted and applied
//! commits. Other durable writes (events, sessions, admin users, admin counts) never wait here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{LikeCaps, LikeLimit, LikeOutcome};
use crate::store::{Store, StoreError};
use crate::types::{LikerKey, PhotoId, Slug};

/// Likes applied in one transaction, at most.
const MAX_BATCH: usize = 2048;

/// Batches up to this size are applied on the drainer's own task; larger ones on a blocking
/// thread, so that a long transaction does not hold up a worker of the runtime.
const INLINE: usize = 64;

/// One like or unlike as asked for.
pub(in crate::store) struct Toggle {
    pub slug: Slug,
    pub photo: PhotoId,
    pub liker: LikerKey,
    pub like: bool,
    pub caps: LikeCaps,
}

/// What a toggle did, or which cap refused it.
pub(in crate::store) type Applied = Result<LikeOutcome, LikeLimit>;

type Reply = oneshot::Sender<Result<LikeOutcome, StoreError>>;

/// A queued toggle. Its slot in the queue's count is given back when it is dropped, so every
/// path (answered, refused, lost in a panic) frees it.
struct Queued {
    toggle: Toggle,
    at: Instant,
    reply: Reply,
    _slot: Slot,
}

struct Slot(Arc<LikeQueue>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(in crate::store) struct LikeQueue {
    waiting: Mutex<Waiting>,
    /// Admitted and not yet answered.
    pending: AtomicUsize,
    depth: usize,
    max_wait: Duration,
}

#[derive(Default)]
struct Waiting {
    items: VecDeque<Queued>,
    /// A drainer task is running; it stops once the queue is empty.
    draining: bool,
}

impl LikeQueue {
    pub(in crate::store) fn new(depth: usize, max_wait: Duration) -> Arc<LikeQueue> {
        Arc::new(LikeQueue {
            waiting: Mutex::new(Waiting::default()),
            pending: AtomicUsize::new(0),
            depth: depth.max(1),
            max_wait,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a refused client is told to wait: about as long as the queue takes to drain.
    fn busy(&self) -> StoreError {
        StoreError::Busy { retry_after_ms: (self.max_wait.as_millis() as u64).saturating_mul(2).max(100) }
    }

    /// Likes admitted and not yet answered (for metrics and tests).
    pub(in crate::store) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// A like or unlike admitted to the queue; [`Store::finish_toggle`] waits for its answer.
#[must_use]
pub struct StagedToggle {
    rx: oneshot::Receiver<Result<LikeOutcome, StoreError>>,
}

impl Store {
    /// Admits a like (`like`) or unlike to the commit queue, or refuses it at once: "Server
    /// busy" when the queue is full, unavailable while the breaker is open. Toggles are applied
    /// in the order they were admitted; a like past one of `caps` changes nothing and is
    /// reported as refused by [`Store::finish_toggle`].
    pub fn stage_toggle(
        &self,
        slug: &Slug,
        photo: &PhotoId,
        liker: &LikerKey,
        like: bool,
        caps: LikeCaps,
    ) -> Result<StagedToggle, StoreError> {
        if !self.breaker.may_admit() {
            return Err(StoreError::Unavailable);
        }
        let q = &self.likes_queue;
        if q.pending.fetch_add(1, Ordering::AcqRel) >= q.depth {
            q.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(q.busy());
        }
        let slot = Slot(q.clone());
        let (reply, rx) = oneshot::channel();
        let toggle = Toggle { slug: slug.clone(), photo: photo.clone(), liker: liker.clone(), like, caps };
        let start = {
            let mut w = q.lock();
            w.items.push_back(Queued { toggle, at: Instant::now(), reply, _slot: slot });
            !std::mem::replace(&mut w.draining, true)
        };
        if start {
            tokio::spawn(drain(self.clone()));
        }
        Ok(StagedToggle { rx })
    }

    /// Waits until a staged like is durable (or refused). A change that cannot be made durable
    /// has been undone, so a refused like is not counted later either.
    pub async fn finish_toggle(&self, staged: StagedToggle) -> Result<LikeOutcome, StoreError> {
        staged.rx.await.unwrap_or(Err(StoreError::Commit(crate::store::CommitError::Closed)))
    }
}

/// Applies what waits, a batch at a time, until the queue is empty.
async fn drain(store: Store) {
    let q = store.likes_queue.clone();
    loop {
        let batch: Vec<Queued> = {
            let mut w = q.lock();
            if w.items.is_empty() {
                w.draining = false;
                return;
            }
            let n = w.items.len().min(MAX_BATCH);
            w.items.drain(..n).collect()
        };
        let (fresh, stale): (Vec<Queued>, Vec<Queued>) = batch.into_iter().partition(|x| x.at.elapsed() <= q.max_wait);
        if !stale.is_empty() {
            crate::metrics::refused(crate::metrics::Refusal::Event, "server_busy_wait");
        }
        for x in stale {
            let _ = x.reply.send(Err(q.busy()));
        }
        if !fresh.is_empty() {
            apply(&store, fresh).await;
        }
        tokio::task::yield_now().await;
    }
}

/// One batch: breaker, one transaction, one flush; answered once durable.
async fn apply(store: &Store, batch: Vec<Queued>) {
    let permit = match store.admit() {
        Ok(p) => p,
        Err(_) => return answer_all(batch, || StoreError::Unavailable),
    };
    let (result, batch) = if batch.len() <= INLINE {
        (store.apply_toggles(batch.iter().map(|x| &x.toggle)), batch)
    } else {
        let st = store.clone();
        match tokio::task::spawn_blocking(move || (st.apply_toggles(batch.iter().map(|x| &x.toggle)), batch)).await {
            Ok(v) => v,
            Err(e) => {
                // The batch went down with the thread; its slots and replies with it.
                tracing::error!(error = %e, "applying a batch of likes failed");
                store.breaker.record(permit, false, Duration::ZERO);
                return;
            }
        }
    };
    let applied = match result {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "storage operation failed");
            store.breaker.record(permit, false, Duration::ZERO);
            return answer_all(batch, || StoreError::Unavailable);
        }
    };
    let changed = applied.iter().any(|a| a.is_ok_and(|o| o.changed));
    if !changed && !permit.is_trial() {
        // Nothing to make durable, nothing to prove: the permit tells the breaker nothing.
        return answer(batch, applied);
    }
    // The next batch gathers while this one is flushed: one transaction per flush.
    match store.commit.ticket().wait().await {
        Ok(took) => {
            store.breaker.record(permit, true, took);
            answer(batch, applied);
        }
        Err(e) => {
            store.breaker.record(permit, false, Duration::ZERO);
            let undo: Vec<&Toggle> = batch
                .iter()
                .zip(&applied)
                .filter(|(_, a)| a.is_ok_and(|o| o.changed))
                .map(|(x, _)| &x.toggle)
                .collect();
            if let Err(u) = store.undo_toggles(undo.into_iter().rev()) {
                tracing::error!(error = %u, "cannot undo likes that failed to persist");
            }
            tracing::error!(error = %e, "a batch of likes was not made durable");
            answer_all(batch, || StoreError::Unavailable);
        }
    }
}

fn answer(batch: Vec<Queued>, applied: Vec<Applied>) {
    for (x, a) in batch.into_iter().zip(applied) {
        let _ = x.reply.send(a.map_err(StoreError::LikeLimit));
    }
}

fn answer_all(batch: Vec<Queued>, err: impl Fn() -> StoreError) {
    for x in batch {
        let _ = x.reply.send(Err(err()));
    }
}
