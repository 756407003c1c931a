//! Durable likes per second with group commit against one flush per like, in one run.
//!
//! Starts the real server twice per round (group commit on, then off), drives it with
//! `CLIENTS` guests that each like a fresh photo and wait for the broadcast of it (a broadcast
//! happens only after the like is on disk), and reports throughput and the like → broadcast
//! time. Rounds alternate the modes so machine noise hits both alike; medians are reported.
//!
//! `cargo bench --bench durable_likes` (env: BENCH_CLIENTS, BENCH_SECONDS, BENCH_ROUNDS).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Payload, TransportType};
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

/// The tests' launcher: the real binary on a loopback port with a temporary data directory.
#[allow(dead_code)]
#[path = "../tests/it/support/server.rs"]
mod server;

use server::Server;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn start(group_commit: bool) -> Server {
    let config = format!(
        "[storage]\ngroup_commit = {group_commit}\n[limits]\nmax_connections_per_ip = 10000\nconnect_per_ip = {{ rate = 10000, per = \"1s\", burst = 10000 }}\n[limits.events]\nlike = {{ rate = 100000, per = \"1s\", burst = 100000 }}\n"
    );
    Server::start_with(Some(&config), &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true"), ("RUST_LOG", "error")])
}

struct Result {
    likes_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run_mode(group_commit: bool, clients: usize, seconds: u64) -> Result {
    let server = start(group_commit);
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds + 2);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = server.url.clone();
        let lat = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            let mine = format!("c{c}-");
            let client = ClientBuilder::new(url)
                .transport_type(TransportType::Websocket)
                .auth(json!({"guestSessionId": format!("bench{c}"), "eventSlug": "bench"}))
                .on("photo:like", move |p, _| {
                    let tx = tx.clone();
                    let mine = mine.clone();
                    async move {
                        #[allow(deprecated)]
                        if let Payload::Text(v) = p
                            && let Some(id) = v.first().and_then(|x| x["photo_id"].as_str())
                            && id.starts_with(&mine)
                        {
                            let _ = tx.send(id.to_string());
                        }
                    }
                    .boxed()
                })
                .connect()
                .await
                .expect("connect");
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.emit("event:join", json!("bench")).await.expect("join");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let start = Instant::now();
            let mut n = 0u64;
            let mut local = Vec::new();
            while start.elapsed() < Duration::from_secs(seconds) && Instant::now() < deadline {
                let id = format!("c{c}-{n}");
                let t = Instant::now();
                client.emit("photo:like", json!({"eventSlug": "bench", "photo_id": id})).await.expect("emit");
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                        Ok(Some(got)) if got == id => break,
                        Ok(Some(_)) => continue,
                        _ => panic!("no broadcast for {id}"),
                    }
                }
                local.push(t.elapsed().as_secs_f64() * 1000.0);
                n += 1;
            }
            let _ = client.disconnect().await;
            lat.lock().await.extend(local);
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let mut l = latencies.lock().await.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    Result { likes_per_sec: l.len() as f64 / seconds as f64, p50_ms: q(0.5), p99_ms: q(0.99) }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let clients = env_num("BENCH_CLIENTS", 32) as usize;
    let seconds = env_num("BENCH_SECONDS", 5);
    let rounds = env_num("BENCH_ROUNDS", 3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = Vec::new();
    let mut single = Vec::new();
    for round in 0..rounds {
        for &mode in &[true, false] {
            let r = rt.block_on(run_mode(mode, clients, seconds));
            println!(
                "round {round} {:<13} {:>8.0} likes/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
                if mode { "group commit" } else { "flush per like" },
                r.likes_per_sec,
                r.p50_ms,
                r.p99_ms
            );
            if mode { group.push(r) } else { single.push(r) }
        }
    }
    let med = |v: &[Result], f: fn(&Result) -> f64| median(v.iter().map(f).collect());
    let (g, s) = (med(&group, |r| r.likes_per_sec), med(&single, |r| r.likes_per_sec));
    println!("\nmedians over {rounds} rounds, {clients} clients, {seconds} s each:");
    println!("| mode | durable likes/s | p50 like→broadcast | p99 like→broadcast |");
    println!("|---|---|---|---|");
    println!("| group commit | {g:.0} | {:.2} ms | {:.2} ms |", med(&group, |r| r.p50_ms), med(&group, |r| r.p99_ms));
    println!(
        "| flush per like | {s:.0} | {:.2} ms | {:.2} ms |",
        med(&single, |r| r.p50_ms),
        med(&single, |r| r.p99_ms)
    );
    println!("| ratio | {:.1}x | | |", g / s);
}
