//! The circuit breaker around storage writes.
//!
//! A disk that fails or stalls must not turn every like into a 2-second hang: after
//! `FAILURES` consecutive failed writes, or one flush slower than `SLOW`, the breaker opens and
//! writes fail fast for `OPEN_FOR`; then exactly one trial write is let through, and its outcome
//! closes or re-opens the breaker. Relaying that needs no storage keeps working throughout.
//!
//! "Slow" is the flush's own time, and a flush carries a bounded batch (the commit queue is
//! bounded): time spent waiting in a long queue is overload, which admission control answers
//! with "Server busy", not a failing disk.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub const FAILURES: u32 = 5;
pub const SLOW: Duration = Duration::from_secs(2);
pub const OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Cool-down over; one trial write is in flight.
    Trial,
}

/// Whether the breaker is open, as seen by `/health`, metrics and the notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Closed,
    Open,
}

pub struct Breaker {
    state: Mutex<State>,
    status: watch::Sender<Status>,
    open_for: Duration,
}

/// Permission to write, returned by [`Breaker::admit`].
#[must_use]
pub struct Permit {
    trial: bool,
}

impl Permit {
    /// The one write after a cool-down whose outcome decides the breaker.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new(OPEN_FOR)
    }
}

impl Breaker {
    pub fn new(open_for: Duration) -> Breaker {
        Breaker { state: Mutex::new(State::Closed { failures: 0 }), status: watch::channel(Status::Closed).0, open_for }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a write start? `None` means fail fast.
    pub fn admit(&self) -> Option<Permit> {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Some(Permit { trial: false }),
            State::Open { until } if Instant::now() >= until => {
                *s = State::Trial;
                Some(Permit { trial: true })
            }
            State::Open { .. } | State::Trial => None,
        }
    }

    /// Would a write be let through now? (Closed, or open with its trial due.) Lets a queue
    /// refuse at once while the breaker is open, without taking the trial itself.
    pub fn may_admit(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => true,
            State::Open { until } => Instant::now() >= until,
            State::Trial => false,
        }
    }

    /// Reports how a write went and how long its flush took.
    pub fn record(&self, permit: Permit, ok: bool, took: Duration) {
        let healthy = ok && took < SLOW;
        let mut s = self.lock();
        let next = match (*s, healthy) {
            (_, true) if permit.trial || matches!(*s, State::Trial) => State::Closed { failures: 0 },
            (State::Closed { .. }, true) => State::Closed { failures: 0 },
            // A slow flush opens at once; failures open after FAILURES in a row.
            (State::Closed { failures }, false) => {
                let failures = if ok { FAILURES } else { failures + 1 };
                if failures >= FAILURES {
                    State::Open { until: Instant::now() + self.open_for }
                } else {
                    State::Closed { failures }
                }
            }
            (State::Trial, false) => State::Open { until: Instant::now() + self.open_for },
            (other, _) => other,
        };
        *s = next;
        drop(s);
        let status = if matches!(next, State::Closed { .. }) { Status::Closed } else { Status::Open };
        self.status.send_if_modified(|cur| {
            let changed = *cur != status;
            *cur = status;
            changed
        });
    }

    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Watch changes of status (for notifications and logs).
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_recovers_with_one_trial() {
        let b = Breaker::new(Duration::from_millis(30));
        for _ in 0..FAILURES - 1 {
            let p = b.admit().unwrap();
            b.record(p, false, Duration::ZERO);
        }
        assert_eq!(b.status(), Status::Closed);
        let p = b.admit().unwrap();
        b.record(p, true, Duration::ZERO);
        for _ in 0..FAILURES {
            let p = b.admit().unwrap();
            b.record(p, false, Duration::ZERO);
        }
        assert_eq!(b.status(), Status::Open);
        assert!(b.admit().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let trial = b.admit().expect("trial after cool-down");
        assert!(b.admit().is_none(), "only one trial at a time");
        b.record(trial, false, Duration::ZERO);
        assert_eq!(b.status(), Status::Open);
        std::thread::sleep(Duration::from_millis(40));
        let trial = b.admit().unwrap();
        b.record(trial, true, Duration::ZERO);
        assert_eq!(b.status(), Status::Closed);
        assert!(b.admit().is_some());
    }

    #[test]
    fn one_slow_flush_opens() {
        let b = Breaker::new(Duration::from_secs(30));
        let p = b.admit().unwrap();
        b.record(p, true, SLOW + Duration::from_millis(1));
        assert_eq!(b.status(), Status::Open);
    }
}
