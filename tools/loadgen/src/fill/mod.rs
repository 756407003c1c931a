//! `fill`: a Wi-Fi blip refills a big room. G guests connect over a window W and join one room,
//! then keep reading for a settle time S after the last join. Every join is a presence change the
//! room hears about, so this measures what a refill costs the server (CPU seconds, RSS) and what
//! the guests end up believing: a guest that is still connected but whose last `guestCount` is
//! below G has silently fallen out of date ("stale"), which no error shows.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::sleep;

use crate::cli::Common;
use crate::client::{Fails, Target};
use crate::hist::Hist;
use crate::sample::{Server, epoch_ms, loadavg, machine_pct, nofile_soft, round, self_cpu};

mod guest;

use guest::{FAILED, Guest, JOINED, NONE, OPEN, SERVER_CLOSED, Shared, TRANSPORT_ERROR, guest, probe};

#[derive(Args, Debug, Clone)]
pub struct FillArgs {
    #[command(flatten)]
    pub common: Common,
    /// Guests that connect and join the one room.
    #[arg(long, default_value_t = 1000)]
    pub guests: usize,
    /// The connects are spread evenly over this many seconds.
    #[arg(long, default_value_t = 2.0)]
    pub window: f64,
    /// Every guest keeps reading this many seconds after the last join, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Skip the probe guest that joins after the settle time to read the server's own count.
    #[arg(long)]
    pub no_probe: bool,
}

fn median(v: &mut [u64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    json!(v[v.len() / 2])
}

fn spread(v: &mut [u64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    json!({"min": v[0], "median": v[v.len() / 2], "max": v[v.len() - 1]})
}

fn secs(us: u64) -> f64 {
    round(us as f64 / 1e6, 3)
}

/// min / median / max of microsecond times, in seconds.
fn spread_s(v: &mut [u64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    json!({"min": secs(v[0]), "median": secs(v[v.len() / 2]), "max": secs(v[v.len() - 1])})
}

pub async fn fill(a: &FillArgs, deadline: Instant) -> Value {
    let c = &a.common;
    let g_total = a.guests.max(1);
    // One process holds every guest: raise the open-file limit to its hard limit, and refuse
    // plainly when even that is too small.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let nofile = nofile_soft();
    if g_total + 64 > nofile {
        return json!({"scenario": "fill", "error": format!("{g_total} guests need more open files than the limit {nofile}")});
    }
    let server = Server { pid: c.server_pid.map(|p| p.to_string()) };
    let t = Arc::new(Target::new(c));
    let run = format!("{}", epoch_ms() % 100_000_000);
    let slug = format!("{}-fill{run}", c.prefix);
    let loadavg_before = loadavg();
    let (stop_tx, stop_rx) = watch::channel(false);
    let before = server.sample();
    let cpu_lg0 = self_cpu();
    let sh = Arc::new(Shared {
        base: Instant::now() + Duration::from_millis(100),
        guests: (0..g_total).map(|_| Guest::new()).collect(),
        fails: Fails::default(),
        join_lat: Hist::new(),
    });
    let window = Duration::from_secs_f64(a.window.max(0.0));
    for g in 0..g_total {
        let start = sh.base + window.mul_f64(g as f64 / g_total as f64);
        let session = format!("{}-{run}-f{g}", c.prefix);
        tokio::spawn(guest(t.clone(), g, session, slug.clone(), start, sh.clone(), stop_rx.clone()));
    }
    eprintln!("[fill] {g_total} guests over {:.1} s into room {slug}", window.as_secs_f64());

    // Until every guest has joined or failed.
    let count = |p: u8| sh.guests.iter().filter(|x| x.phase.load(Relaxed) == p).count();
    let mut last_print = Instant::now();
    while count(JOINED) + count(FAILED) < g_total && Instant::now() < deadline {
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!("[fill] joined {} failed {} of {g_total}", count(JOINED), count(FAILED));
            last_print = Instant::now();
        }
        sleep(Duration::from_millis(10)).await;
    }
    let filled = server.sample();
    let settle = Duration::from_secs_f64(a.settle.max(0.0)).min(deadline.saturating_duration_since(Instant::now()));
    eprintln!("[fill] joined {} failed {}; settling {:.1} s", count(JOINED), count(FAILED), settle.as_secs_f64());
    sleep(settle).await;
    let after = server.sample();
    let cpu_lg1 = self_cpu();
    let end_us = sh.us();

    // The guests' view at the end of the settle time, read before the probe changes it.
    let g_u64 = g_total as u64;
    let (mut joined, mut connected, mut by_close, mut by_error, mut holding, mut above) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut stale_counts, mut stale_rx, mut msgs, mut end_times, mut join_times, mut presence_times) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut stale_ids: Vec<usize> = vec![];
    let mut open_counts: Vec<u64> = vec![];
    for (i, x) in sh.guests.iter().enumerate() {
        let phase = x.phase.load(Relaxed);
        if x.connected.load(Relaxed) {
            connected += 1;
        }
        match x.ended.load(Relaxed) {
            SERVER_CLOSED => by_close += 1,
            TRANSPORT_ERROR => by_error += 1,
            _ => {}
        }
        if x.ended.load(Relaxed) != OPEN {
            end_times.push(x.ended_us.load(Relaxed));
        }
        if phase != JOINED {
            continue;
        }
        joined += 1;
        msgs.push(x.presence_msgs.load(Relaxed));
        join_times.push(x.joined_us.load(Relaxed));
        let lp = x.last_presence_us.load(Relaxed);
        if lp != NONE {
            presence_times.push(lp);
        }
        if x.ended.load(Relaxed) != OPEN {
            continue;
        }
        let last = x.last_count.load(Relaxed);
        open_counts.push(last);
        if last == g_u64 {
            holding += 1;
        } else if last != NONE && last > g_u64 {
            above += 1;
        } else {
            stale_counts.push(if last == NONE { 0 } else { last });
            stale_rx.push(x.last_rx_us.load(Relaxed));
            stale_ids.push(i);
        }
    }
    let stale = stale_counts.len();
    let fill_us = join_times.iter().copied().max().unwrap_or(0);
    let presence_total: u64 = msgs.iter().sum();

    let server_count = if a.no_probe || Instant::now() >= deadline {
        Value::Null
    } else {
        match probe(&t, g_total, &format!("{}-{run}-probe", c.prefix), &slug).await {
            Ok(n) => json!(n),
            Err(f) => json!(format!("probe failed: {}", f.key())),
        }
    };
    let stale_vs_server = server_count.as_u64().map(|n| open_counts.iter().filter(|&&c| c != n).count());
    let _ = stop_tx.send(true);

    let server_cpu = after.cpu - before.cpu;
    json!({
        "scenario": "fill",
        "guests": g_total,
        "window_s": a.window,
        "settle_s": round(settle.as_secs_f64(), 3),
        "sources": c.sources,
        "connected": connected,
        "joined": joined,
        "failed": count(FAILED),
        "failures": sh.fails.json(),
        "disconnected_by_server": by_close + by_error,
        "ended_by": {"close": by_close, "transport_error": by_error},
        "disconnect_s": spread_s(&mut end_times),
        "holding_final_count": holding,
        "stale": stale,
        "stale_last_count": spread(&mut stale_counts),
        "stale_last_rx_s": median(&mut stale_rx).as_u64().map(secs),
        "stale_first_ids": stale_ids.iter().take(10).collect::<Vec<_>>(),
        "above_g": above,
        "server_count_probe": server_count,
        "stale_vs_server": stale_vs_server,
        "presence_msgs_total": presence_total,
        "presence_msgs_per_guest": spread(&mut msgs),
        "presence_msgs_one_per_join": g_u64 * (g_u64 + 1) / 2,
        "fill_s": secs(fill_us),
        "presence_settled_s": presence_times.iter().copied().max().map(secs),
        "observed_s": secs(end_us),
        "join_latency": sh.join_lat.summary(),
        "server": {
            "cpu_s": round(server_cpu, 3),
            "cpu_fill_s": round(filled.cpu - before.cpu, 3),
            "cpu_settle_s": round(after.cpu - filled.cpu, 3),
            "rss_before_kib": before.rss_kib,
            "rss_filled_kib": filled.rss_kib,
            "rss_after_kib": after.rss_kib,
        },
        "loadgen": { "cpu_s": round(cpu_lg1 - cpu_lg0, 3) },
        "machine_busy_pct": machine_pct(&before, &after),
        "loadavg_before": loadavg_before,
        "loadavg": loadavg(),
    })
}
