//! `churn`: K connect-join-leave-close cycles over S distinct slugs with bounded concurrency, after
//! a warm-up. Samples the server's RSS every second: memory that keeps growing with the cycles is
//! a leak, memory that comes back after the settle time is a cache.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::sleep;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Common;
use crate::client::{Fail, Fails, Target, open_and_join, ws_fail};
use crate::sample::{Server, epoch_ms, loadavg, machine_pct, proc_rss_kib, round, self_cpu};

#[derive(Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 20000)]
    pub cycles: usize,
    #[arg(long, default_value_t = 5000)]
    pub slugs: usize,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Cycles run before the "before" RSS sample (allocator and runtime warm-up).
    #[arg(long, default_value_t = 1000)]
    pub warmup: usize,
    /// Wait after the last cycle before the "after" RSS sample, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub settle: f64,
}

async fn churn_cycle(t: &Target, i: usize, prefix: &str, run: &str, slugs: usize) -> Result<(), Fail> {
    let slug = format!("{prefix}-s{}", i % slugs.max(1));
    let session = format!("{prefix}-{run}-c{i}");
    let mut ws = open_and_join(t, i, &session, &slug).await?;
    ws.send(Message::text(format!("42[\"event:leave\",\"{slug}\"]"))).await.map_err(ws_fail)?;
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    // Read until the server's close arrives (or the socket ends).
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = ws.next().await {} }).await;
    Ok(())
}

pub async fn churn(a: &ChurnArgs, deadline: Instant) -> Value {
    let c = &a.common;
    let server = Server { pid: c.server_pid.map(|p| p.to_string()) };
    let t = Arc::new(Target::new(c));
    let fails = Arc::new(Fails::default());
    let ok = Arc::new(AtomicUsize::new(0));
    let run = format!("{}", epoch_ms() % 100_000_000);
    let start_sample = server.sample();

    let run_cycles = |range: std::ops::Range<usize>| {
        let (t, fails, ok, run) = (t.clone(), fails.clone(), ok.clone(), run.clone());
        let prefix = c.prefix.clone();
        let (slugs, conc) = (a.slugs, a.concurrency.max(1));
        async move {
            let sem = Arc::new(Semaphore::new(conc));
            let mut handles = Vec::new();
            for i in range {
                if Instant::now() >= deadline {
                    break;
                }
                let permit = sem.clone().acquire_owned().await.expect("semaphore");
                let (t, fails, ok, run, prefix) = (t.clone(), fails.clone(), ok.clone(), run.clone(), prefix.clone());
                handles.push(tokio::spawn(async move {
                    match churn_cycle(&t, i, &prefix, &run, slugs).await {
                        Ok(()) => {
                            ok.fetch_add(1, Relaxed);
                        }
                        Err(f) => fails.add(&f),
                    }
                    drop(permit);
                }));
                if handles.len() >= 4096 {
                    handles.retain(|h| !h.is_finished());
                }
            }
            for h in handles {
                let _ = h.await;
            }
        }
    };

    // Warm-up, then the "before" sample.
    eprintln!("[churn] warm-up: {} cycles", a.warmup);
    run_cycles(0..a.warmup).await;
    sleep(Duration::from_secs(2)).await;
    let before = server.sample();
    let cpu_lg0 = self_cpu();
    ok.store(0, Relaxed);
    let fails_warmup = fails.total();

    // Sampler.
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        let pid = c.server_pid.map(|p| p.to_string());
        let ok = ok.clone();
        let total = a.cycles;
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut i = 0u64;
            loop {
                sleep(Duration::from_secs(1)).await;
                i += 1;
                let rss = pid.as_deref().and_then(proc_rss_kib).unwrap_or(0);
                samples.lock().unwrap().push((t0.elapsed().as_secs_f64(), rss));
                if i.is_multiple_of(5) {
                    eprintln!("[churn] cycles {}/{total}  server RSS {} MiB", ok.load(Relaxed), rss / 1024);
                }
            }
        })
    };
    let t_start = Instant::now();
    run_cycles(a.warmup..a.warmup + a.cycles).await;
    let cycles_s = t_start.elapsed().as_secs_f64();
    let done = server.sample();
    let cpu_lg1 = self_cpu();
    let settle = Duration::from_secs_f64(a.settle).min(deadline.saturating_duration_since(Instant::now()));
    eprintln!("[churn] {} cycles in {cycles_s:.1} s; settling {:.0} s", ok.load(Relaxed), settle.as_secs_f64());
    sleep(settle).await;
    sampler.abort();
    let after = server.sample();
    let s = samples.lock().unwrap().clone();
    let max_during = s.iter().map(|x| x.1).max().unwrap_or(0);
    let mut sorted: Vec<u64> = s.iter().map(|x| x.1).collect();
    sorted.sort_unstable();
    let median_during = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    // At most 60 evenly spread samples in the output.
    let step = (s.len() / 60).max(1);
    let series: Vec<Value> = s.iter().step_by(step).map(|(t, r)| json!([round(*t, 1), r])).collect();
    let completed = ok.load(Relaxed);
    json!({
        "scenario": "churn",
        "cycles_planned": a.cycles,
        "cycles_ok": completed,
        "failed": fails.total() - fails_warmup,
        "failures": fails.json(),
        "slugs": a.slugs,
        "concurrency": a.concurrency,
        "warmup_cycles": a.warmup,
        "cycles_per_s": round(completed as f64 / cycles_s, 1),
        "duration_s": round(cycles_s, 2),
        "machine_busy_pct": machine_pct(&before, &done),
        "loadavg": loadavg(),
        "server": {
            "rss_start_kib": start_sample.rss_kib,
            "rss_before_kib": before.rss_kib,
            "rss_max_during_kib": max_during,
            "rss_median_during_kib": median_during,
            "rss_end_of_cycles_kib": done.rss_kib,
            "rss_after_kib": after.rss_kib,
            "rss_after_vs_before_pct": round((after.rss_kib as f64 / before.rss_kib.max(1) as f64 - 1.0) * 100.0, 2),
            "cpu_s": round(done.cpu - before.cpu, 3),
            "cpu_per_cycle_ms": round((done.cpu - before.cpu) * 1000.0 / completed.max(1) as f64, 4),
            "rss_series_kib": series,
        },
        "loadgen": { "cpu_s": round(cpu_lg1 - cpu_lg0, 3) },
    })
}
