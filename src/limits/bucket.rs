//! Token buckets. One type serves every limit: per-IP connection and HTTP rates (keyed tables),
//! and per-socket event rates (a bucket per event class inside the socket's context).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Bucket;

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
            Err(self.wait(spec))
        }
    }

    /// How long until a whole token is there (as of the last refill).
    fn wait(&self, spec: &Bucket) -> Duration {
        let per_sec = spec.rate as f64 / spec.per.as_secs_f64();
        Duration::from_secs_f64(((1.0 - self.tokens) / per_sec).max(0.001))
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

/// Buckets of failures (wrong access codes). Unlike [`KeyedBuckets`], looking costs nothing:
/// [`FailureBuckets::blocked`] is asked before an attempt is judged, and only a failure takes a
/// token, so a client learns nothing from which attempts are refused.
pub struct FailureBuckets<K> {
    spec: Bucket,
    table: Mutex<HashMap<K, Failures>>,
}

struct Failures {
    bucket: TokenBucket,
    /// Set by the first refusal after the bucket ran dry; cleared once it has refilled to half,
    /// so a sustained attack trips once, not at every token that trickles back.
    tripped: bool,
}

/// A refusal by [`FailureBuckets::blocked`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blocked {
    pub retry_after: Duration,
    /// This is the first refusal since the bucket ran dry.
    pub tripped_now: bool,
}

impl<K: Hash + Eq + Clone> FailureBuckets<K> {
    pub fn new(spec: Bucket) -> FailureBuckets<K> {
        FailureBuckets { spec, table: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` has no failure left to spend; takes nothing.
    pub fn blocked(&self, key: &K) -> Option<Blocked> {
        let now = Instant::now();
        let mut t = self.lock();
        let f = t.get_mut(key)?;
        f.bucket.refill(&self.spec, now);
        if f.bucket.tokens >= f64::from(self.spec.burst) / 2.0 {
            f.tripped = false;
        }
        if f.bucket.tokens >= 1.0 {
            return None;
        }
        let retry_after = f.bucket.wait(&self.spec);
        let tripped_now = !f.tripped;
        f.tripped = true;
        Some(Blocked { retry_after, tripped_now })
    }

    /// Counts one failure against `key`.
    pub fn fail(&self, key: &K) {
        let now = Instant::now();
        let mut t = self.lock();
        let f =
            t.entry(key.clone()).or_insert_with(|| Failures { bucket: TokenBucket::full(&self.spec), tripped: false });
        let _ = f.bucket.take(&self.spec, now);
    }

    /// Drops the buckets that are full again.
    pub fn sweep(&self) {
        let now = Instant::now();
        let spec = self.spec;
        self.lock().retain(|_, f| !f.bucket.is_full(&spec, now));
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

    #[test]
    fn failures_block_without_taking_and_trip_once() {
        let spec = Bucket { rate: 1, per: Duration::from_secs(3600), burst: 2 };
        let f = FailureBuckets::new(spec);
        assert_eq!(f.blocked(&"a"), None);
        assert!(f.is_empty(), "looking creates no entry");
        f.fail(&"a");
        assert_eq!(f.blocked(&"a"), None);
        f.fail(&"a");
        let first = f.blocked(&"a").expect("empty bucket blocks");
        assert!(first.tripped_now);
        assert!(first.retry_after > Duration::from_secs(3000));
        let second = f.blocked(&"a").expect("still blocked");
        assert!(!second.tripped_now, "one trip per emptying");
        assert_eq!(f.blocked(&"b"), None);
        f.sweep();
        assert_eq!(f.len(), 1);
    }
}
