//! A compact latency histogram: log-linear buckets on microseconds (64 sub-buckets per power of
//! two, relative error under 1.6 %), lock-free counters. Shard processes send theirs to the parent
//! in a sparse JSON form, which the parent adds up.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{Value, json};

use crate::sample::round;

const HIST_BUCKETS: usize = 128 + 40 * 64;

pub struct Hist {
    b: Vec<AtomicU64>,
    n: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

fn hist_index(us: u64) -> usize {
    if us < 128 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // >= 7
    let sub = ((us >> (e - 6)) & 63) as usize;
    (128 + (e - 7) * 64 + sub).min(HIST_BUCKETS - 1)
}

fn hist_value(i: usize) -> f64 {
    if i < 128 {
        return i as f64;
    }
    let e = (i - 128) / 64 + 7;
    let sub = ((i - 128) % 64) as u64;
    let lo = (64 + sub) << (e - 6);
    let width = 1u64 << (e - 6);
    lo as f64 + width as f64 / 2.0
}

impl Hist {
    pub fn new() -> Self {
        Hist {
            b: (0..HIST_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            n: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
    pub fn record(&self, us: u64) {
        self.b[hist_index(us)].fetch_add(1, Relaxed);
        self.n.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }
    pub fn merge(&self, other: &Hist) {
        for (mine, theirs) in self.b.iter().zip(&other.b) {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
        self.n.fetch_add(other.n.load(Relaxed), Relaxed);
        self.sum_us.fetch_add(other.sum_us.load(Relaxed), Relaxed);
        self.max_us.fetch_max(other.max_us.load(Relaxed), Relaxed);
    }
    pub fn add_sparse(&self, v: &Value) {
        if let Some(arr) = v.get("buckets").and_then(Value::as_array) {
            for p in arr {
                if let (Some(i), Some(c)) = (p.get(0).and_then(Value::as_u64), p.get(1).and_then(Value::as_u64))
                    && (i as usize) < HIST_BUCKETS
                {
                    self.b[i as usize].fetch_add(c, Relaxed);
                }
            }
        }
        self.n.fetch_add(v.get("n").and_then(Value::as_u64).unwrap_or(0), Relaxed);
        self.sum_us.fetch_add(v.get("sum_us").and_then(Value::as_u64).unwrap_or(0), Relaxed);
        self.max_us.fetch_max(v.get("max_us").and_then(Value::as_u64).unwrap_or(0), Relaxed);
    }
    pub fn sparse(&self) -> Value {
        let buckets: Vec<[u64; 2]> = self
            .b
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.load(Relaxed);
                (c > 0).then_some([i as u64, c])
            })
            .collect();
        json!({"buckets": buckets, "n": self.n.load(Relaxed), "sum_us": self.sum_us.load(Relaxed), "max_us": self.max_us.load(Relaxed)})
    }
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.n.load(Relaxed);
        if n == 0 {
            return f64::NAN;
        }
        let target = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.b.iter().enumerate() {
            acc += c.load(Relaxed);
            if acc >= target {
                return (hist_value(i) / 1000.0).min(self.max_us.load(Relaxed) as f64 / 1000.0);
            }
        }
        self.max_us.load(Relaxed) as f64 / 1000.0
    }
    pub fn summary(&self) -> Value {
        let n = self.n.load(Relaxed);
        json!({
            "count": n,
            "mean_ms": if n > 0 { round(self.sum_us.load(Relaxed) as f64 / n as f64 / 1000.0, 3) } else { f64::NAN },
            "p50_ms": round(self.quantile_ms(0.50), 3),
            "p90_ms": round(self.quantile_ms(0.90), 3),
            "p99_ms": round(self.quantile_ms(0.99), 3),
            "p999_ms": round(self.quantile_ms(0.999), 3),
            "max_ms": round(self.max_us.load(Relaxed) as f64 / 1000.0, 3),
        })
    }
    /// Samples below `us` microseconds (to the bucket's precision).
    pub fn count_below(&self, us: u64) -> u64 {
        let top = hist_index(us);
        self.b.iter().take(top).map(|c| c.load(Relaxed)).sum()
    }
}
