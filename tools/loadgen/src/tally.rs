//! Counters of a fan-out's deliveries, one set per reader thread.
//!
//! A fan-out of 100,000 deliveries a second counted in shared atomics had the two reader
//! threads fight over the same cache lines, eight read-modify-writes per delivery, and that cost
//! fell on the machine the server under test shares. Each thread counts into a [`Tally`] of its
//! own, which only it writes; the totals are summed when read.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::hist::Hist;

pub struct Tally {
    pub lat: Hist,
    delivered: AtomicU64,
    events: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    unknown: AtomicU64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            lat: Hist::new(),
            delivered: AtomicU64::new(0),
            events: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        }
    }

    /// Any event received (a single writer: plain load and store, no locked instruction).
    pub fn event(&self) {
        self.events.store(self.events.load(Relaxed) + 1, Relaxed);
    }

    /// A delivery received at `now_ns` that was sent `lat_us` earlier.
    pub fn delivery(&self, now_ns: u64, lat_us: u64) {
        self.lat.record(lat_us);
        self.delivered.store(self.delivered.load(Relaxed) + 1, Relaxed);
        if now_ns < self.first_ns.load(Relaxed) {
            self.first_ns.store(now_ns, Relaxed);
        }
        if now_ns > self.last_ns.load(Relaxed) {
            self.last_ns.store(now_ns, Relaxed);
        }
    }

    pub fn unknown(&self) {
        self.unknown.fetch_add(1, Relaxed);
    }
}

/// Every thread's tally of one run.
pub struct Tallies {
    id: usize,
    all: Mutex<Vec<Arc<Tally>>>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's tally, and the run it belongs to.
    static MINE: RefCell<Option<(usize, Arc<Tally>)>> = const { RefCell::new(None) };
}

impl Tallies {
    pub fn new() -> Tallies {
        Tallies { id: NEXT_ID.fetch_add(1, Relaxed), all: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on the calling thread's tally, made on first use.
    pub fn with<R>(&self, f: impl FnOnce(&Tally) -> R) -> R {
        MINE.with(|mine| {
            let mut mine = mine.borrow_mut();
            if mine.as_ref().is_none_or(|(id, _)| *id != self.id) {
                let t = Arc::new(Tally::new());
                self.all.lock().unwrap_or_else(|p| p.into_inner()).push(t.clone());
                *mine = Some((self.id, t));
            }
            let (_, t) = mine.as_ref().expect("set just above");
            f(t)
        })
    }

    fn sum(&self, field: impl Fn(&Tally) -> u64) -> u64 {
        self.all.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|t| field(t)).sum()
    }

    pub fn delivered(&self) -> u64 {
        self.sum(|t| t.delivered.load(Relaxed))
    }

    pub fn events(&self) -> u64 {
        self.sum(|t| t.events.load(Relaxed))
    }

    pub fn unknown(&self) -> u64 {
        self.sum(|t| t.unknown.load(Relaxed))
    }

    /// First and last delivery (`u64::MAX` and 0 when there was none).
    pub fn span_ns(&self) -> (u64, u64) {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let first = all.iter().map(|t| t.first_ns.load(Relaxed)).min().unwrap_or(u64::MAX);
        let last = all.iter().map(|t| t.last_ns.load(Relaxed)).max().unwrap_or(0);
        (first, last)
    }

    /// Every thread's latencies in one histogram.
    pub fn latency(&self) -> Hist {
        let merged = Hist::new();
        for t in self.all.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            merged.merge(&t.lat);
        }
        merged
    }
}
