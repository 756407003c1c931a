//! Per-socket abuse limits: a token bucket per event class, throttled error replies, and the
//! count of rate-limit hits that gets a socket disconnected.
//!
//! Everything here is per socket and dies with it, so nothing grows with the number of clients
//! that ever came and went. The error-reply table is keyed by the known event names, plus a few
//! slots for unknown names, so a client inventing names cannot grow it either.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::bucket::TokenBucket;
use crate::config::{Bucket, EventLimits};
use crate::error::WireError;
use crate::protocol::EVENT_NAMES;

/// Which bucket an event draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Join,
    Like,
    Comment,
    Other,
    Admin,
}

fn class_of(event: &str, admin: bool) -> Class {
    if admin {
        return Class::Admin;
    }
    match event {
        "event:join" => Class::Join,
        "photo:like" | "photo:unlike" => Class::Like,
        "photo:comment" => Class::Comment,
        _ => Class::Other,
    }
}

const ERROR_EVERY: Duration = Duration::from_secs(1);
/// Unknown event names whose error replies are tracked at once; beyond that they are dropped.
const UNKNOWN_SLOTS: usize = 8;

/// What to do with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Refused; `disconnect` when the socket has crossed the abuse line.
    Refuse {
        error: WireError,
        disconnect: bool,
    },
}

/// One socket's event buckets, error-reply throttle and recent rate-limit hits.
pub struct SocketLimiter {
    join: TokenBucket,
    like: TokenBucket,
    comment: TokenBucket,
    other: TokenBucket,
    admin: TokenBucket,
    /// When an error reply was last sent, per known event name (index into `EVENT_NAMES`).
    last_error: [Option<Instant>; EVENT_NAMES.len()],
    /// The same for unknown names, at most `UNKNOWN_SLOTS` within the last second.
    unknown_errors: Vec<(String, Instant)>,
    /// Times of recent rate-limit hits, within `abuse_window`.
    hits: VecDeque<Instant>,
}

impl SocketLimiter {
    pub fn new(l: &EventLimits) -> SocketLimiter {
        SocketLimiter {
            join: TokenBucket::full(&l.join),
            like: TokenBucket::full(&l.like),
            comment: TokenBucket::full(&l.comment),
            other: TokenBucket::full(&l.other),
            admin: TokenBucket::full(&l.admin),
            last_error: [None; EVENT_NAMES.len()],
            unknown_errors: Vec::new(),
            hits: VecDeque::new(),
        }
    }

    /// Takes a token for `event`. `abuse_after` hits within `window` ask for a disconnect.
    pub fn check(&mut self, event: &str, admin: bool, l: &EventLimits, abuse_after: u32, window: Duration) -> Verdict {
        let now = Instant::now();
        let class = class_of(event, admin);
        let (bucket, spec): (&mut TokenBucket, &Bucket) = match class {
            Class::Join => (&mut self.join, &l.join),
            Class::Like => (&mut self.like, &l.like),
            Class::Comment => (&mut self.comment, &l.comment),
            Class::Other => (&mut self.other, &l.other),
            Class::Admin => (&mut self.admin, &l.admin),
        };
        let Err(wait) = bucket.take(spec, now) else { return Verdict::Go };
        while self.hits.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.hits.pop_front();
        }
        self.hits.push_back(now);
        let error = if class == Class::Join {
            WireError::TooManyJoins
        } else {
            WireError::RateLimited { retry_after_ms: wait.as_millis().max(1) as u64 }
        };
        Verdict::Refuse { error, disconnect: self.hits.len() as u32 >= abuse_after }
    }

    /// Whether an error reply for `event` may be sent now (at most one per second per name).
    pub fn may_reply(&mut self, event: &str) -> bool {
        let now = Instant::now();
        let Some(slot) = EVENT_NAMES.iter().position(|n| *n == event) else {
            self.unknown_errors.retain(|(_, t)| now.duration_since(*t) < ERROR_EVERY);
            if self.unknown_errors.len() >= UNKNOWN_SLOTS || self.unknown_errors.iter().any(|(n, _)| n == event) {
                return false;
            }
            self.unknown_errors.push((event.chars().take(64).collect(), now));
            return true;
        };
        match self.last_error[slot] {
            Some(t) if now.duration_since(t) < ERROR_EVERY => false,
            _ => {
                self.last_error[slot] = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn like_flood_gets_burst_then_refusals_then_disconnect() {
        let l = Config::default().limits.events;
        let mut g = SocketLimiter::new(&l);
        let mut ok = 0;
        let mut last = Verdict::Go;
        for _ in 0..100 {
            last = g.check("photo:like", false, &l, 50, Duration::from_secs(60));
            if last == Verdict::Go {
                ok += 1;
            }
        }
        assert!((20..=21).contains(&ok), "{ok}");
        assert!(matches!(last, Verdict::Refuse { error: WireError::RateLimited { .. }, disconnect: true }));
    }

    #[test]
    fn joins_have_their_own_message_and_admins_their_own_bucket() {
        let l = Config::default().limits.events;
        let mut g = SocketLimiter::new(&l);
        for _ in 0..5 {
            assert_eq!(g.check("event:join", false, &l, 50, Duration::from_secs(60)), Verdict::Go);
        }
        assert!(matches!(
            g.check("event:join", false, &l, 50, Duration::from_secs(60)),
            Verdict::Refuse { error: WireError::TooManyJoins, .. }
        ));
        for _ in 0..300 {
            assert_eq!(g.check("event:join", true, &l, 50, Duration::from_secs(60)), Verdict::Go);
        }
    }

    #[test]
    fn error_replies_are_throttled_per_name() {
        let l = Config::default().limits.events;
        let mut g = SocketLimiter::new(&l);
        assert!(g.may_reply("photo:like"));
        assert!(!g.may_reply("photo:like"));
        assert!(g.may_reply("photo:comment"));
        assert!(g.may_reply("made:up"));
        assert!(!g.may_reply("made:up"));
        for i in 0..UNKNOWN_SLOTS - 1 {
            assert!(g.may_reply(&format!("invented:{i}")));
        }
        assert!(!g.may_reply("one:too:many"), "unknown names are bounded");
    }
}
