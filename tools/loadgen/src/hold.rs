//! `idle` and `storm`: held connections, possibly over several processes. `idle` holds N joined
//! guests in R rooms and measures the server's memory per connection and its CPU over an idle
//! window; `storm` has C guests connect and join at once. Above `--per-process` connections (or
//! the open-file limit) the program re-executes itself as shard processes (`--shard i --shards n`)
//! that start together, report a `ready` line, hold until told to stop and report a `done` line;
//! the parent adds their figures up.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::time::sleep;

use crate::cli::{Common, Scenario};
use crate::client::{Fails, Target, hold, open_and_join};
use crate::hist::Hist;
use crate::sample::{Server, epoch_ms, instant_at_epoch_ms, loadavg, machine_pct, nofile_soft, round, self_cpu};

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Connections being set up at the same time (per process).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Idle window over which the server's CPU is measured, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub window: f64,
    /// Wait after closing every connection before the last RSS sample, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub after_wait: f64,
}

#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 10000)]
    pub connections: usize,
    /// Rooms the guests join (each join is broadcast to its room, so one room costs O(C²)).
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    #[arg(long, default_value_t = 5.0)]
    pub after_wait: f64,
}

/// Runs `idle` or `storm`: a shard process holds its slice of the connections, the first process
/// spawns the shards and measures the server around them.
pub async fn run(scn: &Scenario, deadline: Instant) -> Value {
    let (plan, window, after_wait) = match scn {
        Scenario::Idle(a) => (
            HoldPlan { total: a.connections, rooms: a.rooms, concurrency: Some(a.concurrency), storm: false },
            a.window,
            a.after_wait,
        ),
        Scenario::Storm(a) => {
            (HoldPlan { total: a.connections, rooms: a.rooms, concurrency: None, storm: true }, 0.0, a.after_wait)
        }
        _ => return json!({"scenario": scn.name(), "error": "not a scenario of held connections"}),
    };
    let Some(common) = scn.common() else { return json!({"scenario": scn.name(), "error": "no server options"}) };
    if common.shard.is_some() {
        hold_child(common, plan, deadline).await
    } else {
        hold_parent(scn, plan, window, after_wait, deadline).await
    }
}

struct HoldPlan {
    total: usize,
    rooms: usize,
    concurrency: Option<usize>,
    storm: bool,
}

struct HoldStats {
    joined: AtomicUsize,
    failed: AtomicUsize,
    refused: AtomicUsize,
    dropped: AtomicUsize,
    closed: AtomicUsize,
    events: AtomicU64,
    fails: Fails,
    join_lat: Hist,
    last_join_ms: AtomicU64,
}

/// A child process: opens its slice of connections, reports `ready`, holds until told to stop.
async fn hold_child(common: &Common, plan: HoldPlan, deadline: Instant) -> Value {
    let shard = common.shard.unwrap_or(0);
    let shards = common.shards.max(1);
    let t = Arc::new(Target::new(common));
    let mine: Vec<usize> = (shard..plan.total).step_by(shards).collect();
    let n = mine.len();
    let st = Arc::new(HoldStats {
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
        events: AtomicU64::new(0),
        fails: Fails::default(),
        join_lat: Hist::new(),
        last_join_ms: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = plan.concurrency.map(|c| Arc::new(Semaphore::new(c.max(1))));
    let start = common.start_at_ms.map(instant_at_epoch_ms).unwrap_or_else(Instant::now);
    tokio::time::sleep_until(start.into()).await;
    let start_ms = epoch_ms();
    let cpu0 = self_cpu();
    let prefix = &common.prefix;
    for &g in &mine {
        let t = t.clone();
        let st = st.clone();
        let stop = stop_rx.clone();
        let sem = sem.clone();
        let session = format!("{prefix}-g{g}");
        let slug = format!("{prefix}-{}", g % plan.rooms.max(1));
        tokio::spawn(async move {
            let permit = match &sem {
                Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore")),
                None => None,
            };
            let t0 = Instant::now();
            match open_and_join(&t, g, &session, &slug).await {
                Ok(ws) => {
                    drop(permit);
                    // Storm: latency from the common start; idle: from this connection's start.
                    let from = if plan.storm { start } else { t0 };
                    st.join_lat.record(from.elapsed().as_micros() as u64);
                    st.last_join_ms.fetch_max(epoch_ms(), Relaxed);
                    st.joined.fetch_add(1, Relaxed);
                    let ev = &st.events;
                    if hold(ws, stop, |_| {
                        ev.fetch_add(1, Relaxed);
                    })
                    .await
                    {
                        st.closed.fetch_add(1, Relaxed);
                    } else {
                        st.dropped.fetch_add(1, Relaxed);
                    }
                }
                Err(f) => {
                    drop(permit);
                    if f.is_refusal() {
                        st.refused.fetch_add(1, Relaxed);
                    }
                    st.failed.fetch_add(1, Relaxed);
                    st.fails.add(&f);
                }
            }
        });
    }
    // Connect phase.
    let mut last_print = Instant::now();
    let timed_out = loop {
        let done = st.joined.load(Relaxed) + st.failed.load(Relaxed);
        if done >= n {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!("[shard {shard}] joined {} failed {} of {n}", st.joined.load(Relaxed), st.failed.load(Relaxed));
            last_print = Instant::now();
        }
        sleep(Duration::from_millis(20)).await;
    };
    let ready = json!({
        "phase": "ready",
        "shard": shard,
        "planned": n,
        "joined": st.joined.load(Relaxed),
        "failed": st.failed.load(Relaxed),
        "refused": st.refused.load(Relaxed),
        "fails": st.fails.json(),
        "join_latency": st.join_lat.sparse(),
        "start_ms": start_ms,
        "last_join_ms": st.last_join_ms.load(Relaxed),
        "connect_cpu_s": self_cpu() - cpu0,
        "timed_out": timed_out,
    });
    println!("{ready}");
    // Hold until the parent says stop (a line or EOF on stdin), or the deadline.
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    let _ = tokio::time::timeout_at(deadline.into(), stdin.read_line(&mut line)).await;
    let _ = stop_tx.send(true);
    let joined = st.joined.load(Relaxed);
    let until = Instant::now() + Duration::from_secs(5);
    while st.closed.load(Relaxed) + st.dropped.load(Relaxed) < joined && Instant::now() < until {
        sleep(Duration::from_millis(20)).await;
    }
    json!({
        "phase": "done",
        "shard": shard,
        "dropped_while_held": st.dropped.load(Relaxed),
        "events_received": st.events.load(Relaxed),
        "cpu_s": self_cpu(),
    })
}

struct ChildIo {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// Spawns `shards` copies of this program for `total` connections; measures the server around the
/// phases; aggregates the children's JSON lines.
async fn hold_parent(scn: &Scenario, plan: HoldPlan, window: f64, after_wait: f64, deadline: Instant) -> Value {
    let Some(common) = scn.common() else { return json!({"scenario": scn.name(), "error": "no server options"}) };
    let server = Server { pid: common.server_pid.map(|p| p.to_string()) };
    let per = common.per_process.min(nofile_soft().saturating_sub(200)).max(1);
    let shards = plan.total.div_ceil(per).max(1);
    let deadline_ms = epoch_ms() + deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
    let start_at_ms = epoch_ms() + 300 + 50 * shards as u64;
    eprintln!("[{}] {} connections over {shards} process(es) of at most {per}", scn.name(), plan.total);

    let before = server.sample();
    let exe = std::env::current_exe().expect("current exe");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut children = Vec::new();
    for i in 0..shards {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(&args)
            .args([
                "--shard",
                &i.to_string(),
                "--shards",
                &shards.to_string(),
                "--deadline-ms",
                &deadline_ms.to_string(),
            ])
            .args(["--start-at-ms", &start_at_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn shard");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        children.push(ChildIo { child, stdin, lines });
    }
    let start = instant_at_epoch_ms(start_at_ms);

    // Ready lines.
    let mut readies = Vec::new();
    for c in children.iter_mut() {
        if let Ok(Ok(Some(l))) = tokio::time::timeout_at(deadline.into(), c.lines.next_line()).await {
            readies.push(serde_json::from_str::<Value>(&l).unwrap_or(Value::Null));
        }
    }
    let all_ready_at = Instant::now();
    let sum = |key: &str| readies.iter().map(|r| r.get(key).and_then(Value::as_u64).unwrap_or(0)).sum::<u64>();
    let joined = sum("joined");
    let failed = sum("failed");
    let refused = sum("refused");
    let fails = Fails::default();
    let lat = Hist::new();
    let mut last_join_ms = 0;
    let mut timed_out = readies.len() < shards;
    for r in &readies {
        if let Some(m) = r.get("fails").and_then(Value::as_object) {
            for (k, v) in m {
                fails.add_n(k, v.as_u64().unwrap_or(0));
            }
        }
        lat.add_sparse(&r["join_latency"]);
        last_join_ms = last_join_ms.max(r.get("last_join_ms").and_then(Value::as_u64).unwrap_or(0));
        timed_out |= r.get("timed_out").and_then(Value::as_bool).unwrap_or(false);
    }
    eprintln!("[{}] all shards ready: joined {joined}, failed {failed}", scn.name());
    // Let the last broadcasts drain before the "connected" sample.
    sleep(Duration::from_secs(1)).await;
    let connected = server.sample();
    // Idle window.
    let mut idle_end = connected;
    if window > 0.0 {
        let w = Duration::from_secs_f64(window).min(deadline.saturating_duration_since(Instant::now()));
        eprintln!("[{}] measuring idle server CPU over {:.0} s", scn.name(), w.as_secs_f64());
        sleep(w).await;
        idle_end = server.sample();
    }
    // Stop and collect.
    for c in children.iter_mut() {
        let _ = c.stdin.write_all(b"stop\n").await;
        let _ = c.stdin.flush().await;
    }
    let mut dones = Vec::new();
    for c in children.iter_mut() {
        let until = deadline.max(Instant::now() + Duration::from_secs(10));
        if let Ok(Ok(Some(l))) = tokio::time::timeout_at(until.into(), c.lines.next_line()).await {
            dones.push(serde_json::from_str::<Value>(&l).unwrap_or(Value::Null));
        }
    }
    for c in children.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.child.wait()).await;
    }
    let dsum = |key: &str| dones.iter().map(|r| r.get(key).and_then(Value::as_u64).unwrap_or(0)).sum::<u64>();
    let loadgen_cpu: f64 =
        dones.iter().map(|r| r.get("cpu_s").and_then(Value::as_f64).unwrap_or(0.0)).sum::<f64>() + self_cpu();
    let loadgen_connect_cpu: f64 =
        readies.iter().map(|r| r.get("connect_cpu_s").and_then(Value::as_f64).unwrap_or(0.0)).sum();
    let wait = Duration::from_secs_f64(after_wait).min(deadline.saturating_duration_since(Instant::now()));
    sleep(wait).await;
    let after = server.sample();

    let connect_cpu = connected.cpu - before.cpu;
    let all_joined_s = if last_join_ms > 0 { (last_join_ms as f64 - start_at_ms as f64) / 1000.0 } else { f64::NAN };
    let per_conn = |x: f64| if joined > 0 { x / joined as f64 } else { f64::NAN };
    let mut out = json!({
        "scenario": scn.name(),
        "planned": plan.total,
        "processes": shards,
        "rooms": plan.rooms,
        "joined": joined,
        "failed": failed,
        "refused": refused,
        "failures": fails.json(),
        "dropped_while_held": dsum("dropped_while_held"),
        "timed_out": timed_out,
        "join_latency": lat.summary(),
        "server": {
            "rss_before_kib": before.rss_kib,
            "rss_connected_kib": connected.rss_kib,
            "rss_after_close_kib": after.rss_kib,
            "rss_per_conn_bytes": round(per_conn((connected.rss_kib as f64 - before.rss_kib as f64) * 1024.0), 0),
            "connect_cpu_s": round(connect_cpu, 3),
            "cpu_per_conn_ms": round(per_conn(connect_cpu * 1000.0), 4),
        },
        "machine_busy_pct_connect": machine_pct(&before, &connected),
        "loadavg": loadavg(),
        "loadgen": {
            "cpu_s": round(loadgen_cpu, 3),
            "connect_cpu_s": round(loadgen_connect_cpu, 3),
        },
    });
    if plan.storm {
        out["all_joined_s"] = json!(round(all_joined_s, 3));
        out["ready_wall_s"] = json!(round(all_ready_at.saturating_duration_since(start).as_secs_f64(), 3));
        out["joined_within_5s"] = json!(lat.count_below(5_000_000));
    }
    if window > 0.0 {
        let secs = idle_end.at.zip(connected.at).map(|(a, b)| a.duration_since(b).as_secs_f64()).unwrap_or(window);
        out["server"]["idle_window_s"] = json!(round(secs, 2));
        out["server"]["idle_cpu_s"] = json!(round(idle_end.cpu - connected.cpu, 3));
        out["server"]["idle_cpu_pct"] = json!(round((idle_end.cpu - connected.cpu) / secs * 100.0, 3));
        out["server"]["rss_idle_end_kib"] = json!(idle_end.rss_kib);
        out["machine_busy_pct_idle"] = json!(machine_pct(&connected, &idle_end));
    }
    out
}
