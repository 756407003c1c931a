//! `fanout`: G guests in one room, and liker connection(s) of the same event liking distinct
//! photos at a fixed rate. Every like is broadcast to the whole room, so each like is G deliveries;
//! every guest times each delivery against the moment its like was sent. Reports deliveries,
//! losses, latencies and the server's CPU per delivery. The guests talk websocket or, with
//! `--transport polling`, long-poll (see `polling.rs`); the likers always use websockets.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::time::sleep;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Common;
use crate::client::{Fails, Target, Ws, event_name, hold, open_and_join, pong};
use crate::sample::{Server, epoch_ms, loadavg, machine_pct, round, self_cpu};
use crate::{polling, tally};

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 1000)]
    pub guests: usize,
    /// Likes per second sent by the liker.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Liker connections the likes are spread over (round robin).
    #[arg(long, default_value_t = 1)]
    pub likers: usize,
    /// How long likes are sent, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub send_secs: f64,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// At most this long to wait for the join broadcasts to settle before likes start, in seconds.
    #[arg(long, default_value_t = 180.0)]
    pub settle_max: f64,
    /// How the guests talk to the server (the likers always use websockets).
    #[arg(long, value_enum, default_value_t = polling::Transport::Websocket)]
    pub transport: polling::Transport,
}

struct FanoutState {
    base: Instant,
    sent_ns: Vec<AtomicU64>,
    tally: tally::Tallies,
    joined: AtomicUsize,
    failed: AtomicUsize,
    dropped: AtomicUsize,
    measuring: AtomicBool,
}

/// `photo_id":"p<seq>"` → seq.
fn like_seq(s: &str) -> Option<usize> {
    const KEY: &str = "\"photo_id\":\"";
    let start = s.find(KEY)? + KEY.len();
    let id = &s[start..start + s[start..].find('"')?];
    let digits = id.strip_prefix('p')?;
    let dash = digits.rfind('-').map(|i| i + 1).unwrap_or(0);
    digits[dash..].parse().ok()
}

enum FanoutGuest {
    Ws(Ws),
    Poll(polling::PollGuest),
}

/// A fanout guest's event handler: every event counts towards `rx_total` (so the set-up can tell
/// when the join broadcasts have drained); while measuring, each `photo:like` is a delivery with
/// its latency from the moment the like was sent.
fn count_like(st: Arc<FanoutState>) -> impl FnMut(&str) {
    move |s| {
        st.tally.with(|t| {
            t.event();
            if !st.measuring.load(Relaxed) || event_name(s) != Some("photo:like") {
                return;
            }
            let now = st.base.elapsed().as_nanos() as u64;
            match like_seq(s).and_then(|i| st.sent_ns.get(i)) {
                Some(sent) => t.delivery(now, now.saturating_sub(sent.load(Relaxed)) / 1000),
                None => t.unknown(),
            }
        })
    }
}

pub async fn fanout(a: &FanoutArgs, deadline: Instant) -> Value {
    let c = &a.common;
    let server = Server { pid: c.server_pid.map(|p| p.to_string()) };
    let t = Arc::new(Target::new(c));
    let total_likes = (a.rate * a.send_secs).round().max(1.0) as usize;
    let st = Arc::new(FanoutState {
        base: Instant::now(),
        sent_ns: (0..total_likes).map(|_| AtomicU64::new(0)).collect(),
        tally: tally::Tallies::new(),
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        measuring: AtomicBool::new(false),
    });
    let fails = Arc::new(Fails::default());
    let poll_stats = Arc::new(polling::PollStats::default());
    let slug = format!("{}-fanout", c.prefix);
    let before = server.sample();
    let cpu_lg0 = self_cpu();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let setup_start = Instant::now();
    if a.transport == polling::Transport::Polling {
        // Each polling guest holds two connections (its pending GET and its POSTs).
        let _ = rlimit::increase_nofile_limit(u64::MAX);
    }
    for g in 0..a.guests {
        let (t, st, fails, stop, sem, pst) =
            (t.clone(), st.clone(), fails.clone(), stop_rx.clone(), sem.clone(), poll_stats.clone());
        let session = format!("{}-f{g}", c.prefix);
        let slug = slug.clone();
        let transport = a.transport;
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await.expect("semaphore");
            let guest = match transport {
                polling::Transport::Websocket => open_and_join(&t, g, &session, &slug).await.map(FanoutGuest::Ws),
                polling::Transport::Polling => {
                    polling::open_and_join(&t, g, &session, &slug, &pst).await.map(FanoutGuest::Poll)
                }
            };
            drop(permit);
            match guest {
                Ok(guest) => {
                    st.joined.fetch_add(1, Relaxed);
                    let on_event = count_like(st.clone());
                    let ended_by_stop = match guest {
                        FanoutGuest::Ws(ws) => hold(ws, stop, on_event).await,
                        FanoutGuest::Poll(p) => polling::hold(p, stop, &pst, on_event).await,
                    };
                    if !ended_by_stop {
                        st.dropped.fetch_add(1, Relaxed);
                    }
                }
                Err(f) => {
                    st.failed.fetch_add(1, Relaxed);
                    fails.add(&f);
                }
            }
        });
    }
    // Wait for every guest, then for the guest:joined broadcasts to drain.
    let mut last_print = Instant::now();
    while st.joined.load(Relaxed) + st.failed.load(Relaxed) < a.guests && Instant::now() < deadline {
        if last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "[fanout] joined {} failed {} of {}  (events received {})",
                st.joined.load(Relaxed),
                st.failed.load(Relaxed),
                a.guests,
                st.tally.events()
            );
            last_print = Instant::now();
        }
        sleep(Duration::from_millis(20)).await;
    }
    let settle_until = (Instant::now() + Duration::from_secs_f64(a.settle_max)).min(deadline);
    let mut prev = u64::MAX;
    while Instant::now() < settle_until {
        let now = st.tally.events();
        if now == prev {
            break;
        }
        prev = now;
        sleep(Duration::from_millis(1000)).await;
    }
    let setup_s = setup_start.elapsed().as_secs_f64();
    let guests = st.joined.load(Relaxed);
    eprintln!(
        "[fanout] {guests} guests joined and settled in {setup_s:.1} s; liking at {}/s for {} s",
        a.rate, a.send_secs
    );

    // The likers: separate guest connections of the same event (one by default), each in its own
    // task, fed through a channel; like k goes out through liker k % likers.
    let liker_errors = Arc::new(AtomicU64::new(0));
    let liker_first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let mut liker_tx = Vec::new();
    for l in 0..a.likers.max(1) {
        let mut ws = match open_and_join(&t, a.guests + l, &format!("{}-liker{l}", c.prefix), &slug).await {
            Ok(ws) => ws,
            Err(f) => return json!({"scenario": "fanout", "error": format!("liker could not connect: {}", f.key())}),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        liker_tx.push(tx);
        let (errors, first) = (liker_errors.clone(), liker_first_error.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(msg) => if ws.send(Message::text(msg)).await.is_err() { break; },
                        None => break,
                    },
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            let s = t.as_str();
                            if s == "2" { let _ = pong(&mut ws).await; }
                            else if event_name(s) == Some("error") {
                                errors.fetch_add(1, Relaxed);
                                let mut f = first.lock().unwrap();
                                if f.is_none() { eprintln!("[fanout] liker got {s}"); *f = Some(s.to_string()); }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => { eprintln!("[fanout] liker connection ended"); break; }
                    }
                }
            }
        });
    }
    let after_setup = server.sample();
    let cpu_lg1 = self_cpu();
    st.measuring.store(true, Relaxed);
    let run = format!("{}", epoch_ms() % 100_000_000);
    let interval = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0usize;
    let send_start = Instant::now();
    while sent < total_likes && Instant::now() < deadline {
        tick.tick().await;
        let msg = format!("42[\"photo:like\",{{\"eventSlug\":\"{slug}\",\"photo_id\":\"p{run}-{sent}\"}}]");
        st.sent_ns[sent].store(st.base.elapsed().as_nanos() as u64, Relaxed);
        if liker_tx[sent % liker_tx.len()].send(msg).is_err() {
            break;
        }
        sent += 1;
        if sent.is_multiple_of(a.rate.max(1.0) as usize * 5) {
            eprintln!(
                "[fanout] likes sent {sent}/{total_likes}, deliveries {} / expected so far {}",
                st.tally.delivered(),
                sent * guests
            );
        }
    }
    let send_s = send_start.elapsed().as_secs_f64();
    // Drain: until every expected delivery arrived, or no progress for 3 s.
    let expected = (guests * sent) as u64;
    let mut last = st.tally.delivered();
    let mut last_change = Instant::now();
    let drain_until = deadline.min(Instant::now() + Duration::from_secs(60));
    while st.tally.delivered() < expected && Instant::now() < drain_until {
        sleep(Duration::from_millis(50)).await;
        let d = st.tally.delivered();
        if d != last {
            last = d;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let liker_errors = liker_errors.load(Relaxed);
    let liker_first_error = liker_first_error.lock().unwrap().clone();
    let end = server.sample();
    let cpu_lg2 = self_cpu();
    // Before the stop, so that the guests' closing POSTs are not counted.
    let poll_json = poll_stats.json();
    let _ = stop_tx.send(true);
    let delivered = st.tally.delivered();
    let (first, lastd) = st.tally.span_ns();
    let span_s = if lastd > first && first != u64::MAX { (lastd - first) as f64 / 1e9 } else { f64::NAN };
    let window_s = end.at.zip(after_setup.at).map(|(a, b)| a.duration_since(b).as_secs_f64()).unwrap_or(f64::NAN);
    let server_cpu = end.cpu - after_setup.cpu;
    let mut out = json!({
        "scenario": "fanout",
        "transport": a.transport.name(),
        "guests_planned": a.guests,
        "guests": guests,
        "failed": st.failed.load(Relaxed),
        "failures": fails.json(),
        "guests_dropped": st.dropped.load(Relaxed),
        "rate_per_s": a.rate,
        "likers": a.likers.max(1),
        "likes_sent": sent,
        "send_s": round(send_s, 3),
        "liker_errors": liker_errors,
        "liker_first_error": liker_first_error,
        "offered_deliveries_per_s": round(guests as f64 * a.rate, 1),
        "expected": expected,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "loss_pct": round(if expected > 0 { (expected.saturating_sub(delivered)) as f64 * 100.0 / expected as f64 } else { 0.0 }, 4),
        "unknown_ids": st.tally.unknown(),
        "delivered_per_s": round(delivered as f64 / span_s, 1),
        "latency": st.tally.latency().summary(),
        "setup_s": round(setup_s, 2),
        "machine_busy_pct": machine_pct(&after_setup, &end),
        "loadavg": loadavg(),
        "server": {
            "rss_before_kib": before.rss_kib,
            "rss_after_setup_kib": after_setup.rss_kib,
            "rss_end_kib": end.rss_kib,
            "setup_cpu_s": round(after_setup.cpu - before.cpu, 3),
            "fanout_cpu_s": round(server_cpu, 3),
            "fanout_window_s": round(window_s, 3),
            "cpu_pct": round(server_cpu / window_s * 100.0, 2),
            "cpu_per_delivery_us": round(if delivered > 0 { server_cpu * 1e6 / delivered as f64 } else { f64::NAN }, 4),
        },
        "loadgen": {
            "setup_cpu_s": round(cpu_lg1 - cpu_lg0, 3),
            "fanout_cpu_s": round(cpu_lg2 - cpu_lg1, 3),
            "cpu_pct": round((cpu_lg2 - cpu_lg1) / window_s * 100.0, 2),
        },
    });
    if a.transport == polling::Transport::Polling {
        out["polling"] = poll_json;
    }
    out
}
