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
use crate::store::breaker::Permit;
use crate::store::commit::Ticket;
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
    /// Told when a like is queued for a drainer that is already running (it may be waiting for
    /// a flush with nothing to apply).
    arrived: tokio::sync::Notify,
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
            arrived: tokio::sync::Notify::new(),
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
        } else {
            q.arrived.notify_one();
        }
        Ok(StagedToggle { rx })
    }

    /// Waits until a staged like is durable (or refused). A change that cannot be made durable
    /// has been undone, so a refused like is not counted later either.
    pub async fn finish_toggle(&self, staged: StagedToggle) -> Result<LikeOutcome, StoreError> {
        staged.rx.await.unwrap_or(Err(StoreError::Commit(crate::store::CommitError::Closed)))
    }
}

/// A batch applied to sled: what it did, and the breaker's permit it was applied under.
struct Done {
    batch: Vec<Queued>,
    applied: Vec<Applied>,
    permit: Permit,
}

/// A batch applied and waiting for its flush.
struct InFlight {
    done: Done,
    ticket: Ticket,
}

/// Applies what waits, a batch at a time, until the queue is empty.
///
/// Two batches overlap: while one is being flushed, the next is applied (the CPU's work and the
/// disk's wait no longer take turns). Batches are still answered in order, each once its own
/// flush is done; if a flush fails, the batch applied after it is taken back with it, newest
/// first, so that undoing never runs ahead of what was applied later.
async fn drain(store: Store) {
    let q = store.likes_queue.clone();
    let mut inflight: Option<InFlight> = None;
    loop {
        {
            let mut w = q.lock();
            if w.items.is_empty() && inflight.is_none() {
                w.draining = false;
                return;
            }
        }
        let fresh = take_fresh(&q);
        let prev = inflight.take();
        let flushing = prev.is_some();
        let settled = tokio::sync::Notify::new();
        // The batch before is answered as soon as its flush is done, even while this one is
        // still being applied; likes that arrive during that flush are applied meanwhile.
        let (mut current, failed) = tokio::join!(
            async {
                let mut fresh = fresh;
                if fresh.is_empty() && flushing {
                    tokio::select! {
                        _ = q.arrived.notified() => fresh = take_fresh(&q),
                        _ = settled.notified() => {}
                    }
                }
                if fresh.is_empty() { None } else { apply(&store, fresh).await }
            },
            async {
                let failed = match prev {
                    Some(prev) => settle(&store, prev).await,
                    None => None,
                };
                settled.notify_one();
                failed
            }
        );
        if let Some(failed) = failed {
            if let Some(later) = current.take() {
                // Its ticket is dropped: whatever that flush does, this batch is refused.
                refuse(&store, later.done);
            }
            refuse(&store, failed);
        }
        inflight = current;
        tokio::task::yield_now().await;
    }
}

/// Takes up to a batch of waiting likes; refuses those that waited too long.
fn take_fresh(q: &LikeQueue) -> Vec<Queued> {
    let batch: Vec<Queued> = {
        let mut w = q.lock();
        let n = w.items.len().min(MAX_BATCH);
        w.items.drain(..n).collect()
    };
    let (fresh, stale): (Vec<Queued>, Vec<Queued>) = batch.into_iter().partition(|x| x.at.elapsed() <= q.max_wait);
    if !stale.is_empty() {
        crate::metrics::count_refusal(crate::metrics::Refusal::Event, "server_busy_wait");
    }
    for x in stale {
        let _ = x.reply.send(Err(q.busy()));
    }
    fresh
}

/// One batch: breaker, one transaction, a ticket for the next flush. Answered at once when it
/// cannot be applied or changed nothing; otherwise handed back to wait for its flush.
async fn apply(store: &Store, batch: Vec<Queued>) -> Option<InFlight> {
    let permit = match store.admit() {
        Ok(p) => p,
        Err(_) => {
            answer_all(batch, || StoreError::Unavailable);
            return None;
        }
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
                return None;
            }
        }
    };
    let applied = match result {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "storage operation failed");
            store.breaker.record(permit, false, Duration::ZERO);
            answer_all(batch, || StoreError::Unavailable);
            return None;
        }
    };
    let changed = applied.iter().any(|a| a.is_ok_and(|o| o.changed));
    if !changed && !permit.is_trial() {
        // Nothing to make durable, nothing to prove: the permit tells the breaker nothing.
        answer(batch, applied);
        return None;
    }
    let ticket = store.commit.ticket();
    Some(InFlight { done: Done { batch, applied, permit }, ticket })
}

/// Waits for a batch's flush and answers it; hands the batch back if the flush failed.
async fn settle(store: &Store, flight: InFlight) -> Option<Done> {
    match flight.ticket.wait().await {
        Ok(took) => {
            let Done { batch, applied, permit } = flight.done;
            store.breaker.record(permit, true, took);
            answer(batch, applied);
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "a batch of likes was not made durable");
            Some(flight.done)
        }
    }
}

/// Takes back a batch that cannot be made durable and refuses its likes. Batches are refused
/// newest first.
fn refuse(store: &Store, failed: Done) {
    store.breaker.record(failed.permit, false, Duration::ZERO);
    undo(store, &failed.batch, &failed.applied);
    answer_all(failed.batch, || StoreError::Unavailable);
}

/// Takes back what a batch changed, newest first.
fn undo(store: &Store, batch: &[Queued], applied: &[Applied]) {
    let changed: Vec<&Toggle> =
        batch.iter().zip(applied).filter(|(_, a)| a.is_ok_and(|o| o.changed)).map(|(x, _)| &x.toggle).collect();
    if let Err(u) = store.undo_toggles(changed.into_iter().rev()) {
        tracing::error!(error = %u, "cannot undo likes that failed to persist");
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
