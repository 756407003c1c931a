//! Token buckets. One type serves every limit: per-IP connection and HTTP rates (keyed tables),
//! and per-socket event rates (a bucket per event class inside the socket's context).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::net::IpAddr;

use crate::config::{Bucket, Config};

/// The per-IP rate tables of the process, and when each refusal reason was last logged.
pub struct Limiters {
    pub login: KeyedBuckets<IpAddr>,
    pub http: KeyedBuckets<IpAddr>,
    pub connect: KeyedBuckets<IpAddr>,
    logged: Mutex<HashMap<&'static str, Instant>>,
}

impl Limiters {
    pub fn new(config: &Config) -> Limiters {
        Limiters {
            login: KeyedBuckets::new(config.limits.login_per_ip),
            http: KeyedBuckets::new(config.limits.http_per_ip),
            connect: KeyedBuckets::new(config.limits.connect_per_ip),
            logged: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a refusal (in `/metrics`); logs it at most once per second per reason, so abuse
    /// cannot flood the logs.
    pub fn note_refusal(&self, kind: crate::metrics::Refusal, reason: &'static str) {
        crate::metrics::refused(kind, reason);
        let now = Instant::now();
        let mut t = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let due = t.get(reason).is_none_or(|l| now.duration_since(*l) >= Duration::from_secs(1));
        if due {
            t.insert(reason, now);
            tracing::info!(reason, kind = ?kind, "refused");
        }
    }

    /// Forgets every bucket that has refilled.
    pub fn sweep(&self) {
        self.login.sweep();
        self.http.sweep();
        self.connect.sweep();
    }
}

/// One token bucket. Tokens refill continuously at `rate / per`, up to `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn full(spec: &Bucket) -> TokenBucket {
        TokenBucket { tokens: spec.burst as f64, last: Instant::now() }
    }

    fn refill(&mut self, spec: &Bucket, now: Instant) {
        let per_sec = spec.rate as f64 / spec.per.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(spec.burst as f64);
        self.last = now;
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, spec: &Bucket, now: Instant) -> Result<(), Duration> {
        self.refill(spec, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let per_sec = spec.rate as f64 / spec.per.as_secs_f64();
            Err(Duration::from_secs_f64(((1.0 - self.tokens) / per_sec).max(0.001)))
        }
    }

    /// True when the bucket has refilled completely (so forgetting it changes nothing).
    fn is_full(&mut self, spec: &Bucket, now: Instant) -> bool {
        self.refill(spec, now);
        self.tokens >= spec.burst as f64
    }
}

/// Buckets by key (client IP). Entries whose bucket has refilled are dropped by `sweep`, so the
/// table holds only keys that were active within about one refill time.
pub struct KeyedBuckets<K> {
    spec: Bucket,
    table: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    pub fn new(spec: Bucket) -> KeyedBuckets<K> {
        KeyedBuckets { spec, table: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, TokenBucket>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token for `key`, or returns the wait until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut t = self.lock();
        if let Some(b) = t.get_mut(key) {
            return b.take(&self.spec, now);
        }
        let mut b = TokenBucket::full(&self.spec);
        let r = b.take(&self.spec, now);
        t.insert(key.clone(), b);
        r
    }

    /// Drops the buckets that are full again.
    pub fn sweep(&self) {
        let now = Instant::now();
        let spec = self.spec;
        self.lock().retain(|_, b| !b.is_full(&spec, now));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let spec = Bucket { rate: 10, per: Duration::from_secs(1), burst: 3 };
        let mut b = TokenBucket::full(&spec);
        let t0 = Instant::now();
        assert!(b.take(&spec, t0).is_ok());
        assert!(b.take(&spec, t0).is_ok());
        assert!(b.take(&spec, t0).is_ok());
        let wait = b.take(&spec, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(101) && wait >= Duration::from_millis(99), "{wait:?}");
        assert!(b.take(&spec, t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(&spec, t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn keyed_table_shrinks() {
        let spec = Bucket { rate: 1000, per: Duration::from_secs(1), burst: 2 };
        let k = KeyedBuckets::new(spec);
        assert!(k.check(&1).is_ok());
        assert!(k.check(&1).is_ok());
        assert!(k.check(&1).is_err());
        assert!(k.check(&2).is_ok());
        assert_eq!(k.len(), 2);
        std::thread::sleep(Duration::from_millis(10));
        k.sweep();
        assert!(k.is_empty());
    }
}
