//! `likes`: a like storm, open loop. S sender sockets (guests of one event that need not join its
//! room) like distinct photos at a fixed total rate, each like asking for an acknowledgement;
//! R readers joined to the room time every `photo:like` broadcast against the moment its like
//! was sent. Every like names a new photo, so every accepted like changes a count: accepted
//! acknowledgements are durable likes. Reports accepted / busy / failed, acknowledgement and
//! broadcast latencies, the server's CPU per durable like, and its flushes (fsyncs) per second
//! and likes per flush, read from `/metrics`; `/health` is polled throughout.
//!
//! `disk` (no server): the rate of a 4 KB write + fdatasync loop in a directory, the physical
//! limit of one group commit per fsync on that disk.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::sleep;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Common;
use crate::client::{Target, Ws, event_name, guest_auth, hold, json_str_field, open, open_and_join, pong};
use crate::hist::Hist;
use crate::sample::{Server, epoch_ms, machine_pct, round, self_cpu};

#[derive(Args, Debug, Clone)]
pub struct LikesArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sender sockets the likes are spread over (round robin).
    #[arg(long, default_value_t = 200)]
    pub senders: usize,
    /// Likes per second offered, in total.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// How long likes are sent, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub secs: f64,
    /// Readers joined to the room.
    #[arg(long, default_value_t = 4)]
    pub readers: usize,
    /// After the last like, wait at most this long for acknowledgements, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
}

#[derive(Args, Debug, Clone)]
pub struct DiskArgs {
    /// Directory to write the test file in (on the disk the server's data directory is on).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
}

/// 4 KB write + fdatasync in a loop for `secs`; what one flush per group commit can reach.
pub fn disk(a: &DiskArgs) -> Value {
    let path = a.dir.join(format!("hafi-disk-probe-{}", std::process::id()));
    let result = (|| -> std::io::Result<(u64, f64, Hist)> {
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
        let block = [0x5au8; 4096];
        let lat = Hist::new();
        let (start, mut n) = (Instant::now(), 0u64);
        while start.elapsed().as_secs_f64() < a.secs {
            let t = Instant::now();
            f.write_all(&block)?;
            f.sync_data()?;
            lat.record(t.elapsed().as_micros() as u64);
            n += 1;
        }
        Ok((n, start.elapsed().as_secs_f64(), lat))
    })();
    let _ = std::fs::remove_file(&path);
    match result {
        Ok((n, secs, lat)) => json!({
            "scenario": "disk", "dir": a.dir.display().to_string(), "writes": n, "secs": round(secs, 3),
            "fdatasync_per_s": round(n as f64 / secs, 1), "latency": lat.summary(),
        }),
        Err(e) => json!({"scenario": "disk", "error": e.to_string()}),
    }
}

/// One plain HTTP/1.1 GET on loopback; the status and body.
async fn http_get(port: u16, host: std::net::Ipv4Addr, path: &str) -> Option<(u16, String)> {
    let fut = async {
        let mut s = TcpStream::connect((host, port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.ok().flatten()
}

/// A counter or gauge from a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find(|l| l.split_whitespace().next() == Some(name))?.split_whitespace().nth(1)?.parse().ok()
}

struct Shared {
    base: Instant,
    /// Send time of like n (ns since `base`), 0 before it is sent.
    sent_ns: Vec<AtomicU64>,
    accepted: AtomicU64,
    busy: AtomicU64,
    failed: AtomicU64,
    other_errors: std::sync::Mutex<BTreeMap<String, u64>>,
    ack_lat: Hist,
    busy_lat: Hist,
    bcast_lat: Hist,
    senders_dropped: AtomicUsize,
    readers_dropped: AtomicUsize,
    /// Broadcasts of this run's photos received by each reader.
    received: Vec<AtomicU64>,
    measuring: AtomicBool,
}

impl Shared {
    fn since_sent_us(&self, n: usize) -> Option<u64> {
        let sent = self.sent_ns.get(n)?.load(Relaxed);
        (sent > 0).then(|| (self.base.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000)
    }
}

/// `43<id>[{...}]` → (id, payload).
fn ack_of(s: &str) -> Option<(usize, &str)> {
    let rest = s.strip_prefix("43")?;
    let end = rest.find('[')?;
    Some((rest[..end].parse().ok()?, &rest[end..]))
}

/// `"photo_id":"p<run>-<n>"` → n, for this run's photos.
fn photo_index(s: &str, tag: &str) -> Option<usize> {
    let start = s.find(tag)? + tag.len();
    let digits: &str = s[start..].split('"').next()?;
    digits.parse().ok()
}

async fn sender(mut ws: Ws, mut rx: mpsc::UnboundedReceiver<String>, st: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(msg) => {
                    if ws.feed(Message::text(msg)).await.is_err() { break; }
                    while let Ok(more) = rx.try_recv() {
                        if ws.feed(Message::text(more)).await.is_err() { break; }
                    }
                    if ws.flush().await.is_err() { break; }
                }
                None => {
                    let _ = stop.changed().await;
                    return;
                }
            },
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let s = t.as_str();
                    if s == "2" {
                        if pong(&mut ws).await.is_err() { break; }
                    } else if let Some((n, body)) = ack_of(s) {
                        let lat = st.since_sent_us(n).unwrap_or(0);
                        if body.contains("\"ok\":true") {
                            st.accepted.fetch_add(1, Relaxed);
                            st.ack_lat.record(lat);
                        } else if body.contains("Server busy") {
                            st.busy.fetch_add(1, Relaxed);
                            st.busy_lat.record(lat);
                        } else {
                            st.failed.fetch_add(1, Relaxed);
                            let msg = json_str_field(body, "error").unwrap_or("?").to_string();
                            *st.other_errors.lock().unwrap().entry(msg).or_default() += 1;
                        }
                    } else if s.starts_with('1') || s.starts_with("41") {
                        st.senders_dropped.fetch_add(1, Relaxed);
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    st.senders_dropped.fetch_add(1, Relaxed);
                    return;
                }
            },
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
        }
    }
    st.senders_dropped.fetch_add(1, Relaxed);
}

async fn reader(ws: Ws, i: usize, tag: String, st: Arc<Shared>, stop: watch::Receiver<bool>) {
    let stopped = hold(ws, stop, |s| {
        if event_name(s) == Some("photo:like")
            && let Some(n) = photo_index(s, &tag)
        {
            st.received[i].fetch_add(1, Relaxed);
            if st.measuring.load(Relaxed)
                && let Some(us) = st.since_sent_us(n)
            {
                st.bcast_lat.record(us);
            }
        }
    })
    .await;
    if !stopped {
        st.readers_dropped.fetch_add(1, Relaxed);
    }
}

pub async fn likes(a: &LikesArgs, deadline: Instant) -> Value {
    let c = &a.common;
    let server = Server { pid: c.server_pid.map(|p| p.to_string()) };
    let t = Arc::new(Target::new(c));
    let run = format!("{}", epoch_ms() % 100_000_000);
    let slug = format!("{}-likes-{run}", c.prefix);
    let total = (a.rate * a.secs).ceil() as usize;
    let st = Arc::new(Shared {
        base: Instant::now(),
        sent_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        accepted: AtomicU64::new(0),
        busy: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        other_errors: std::sync::Mutex::new(BTreeMap::new()),
        ack_lat: Hist::new(),
        busy_lat: Hist::new(),
        bcast_lat: Hist::new(),
        senders_dropped: AtomicUsize::new(0),
        readers_dropped: AtomicUsize::new(0),
        received: (0..a.readers).map(|_| AtomicU64::new(0)).collect(),
        measuring: AtomicBool::new(false),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tag = format!("\"photo_id\":\"p{run}-");

    for i in 0..a.readers {
        match open_and_join(&t, i, &format!("{}-{run}-r{i}", c.prefix), &slug).await {
            Ok(ws) => {
                tokio::spawn(reader(ws, i, tag.clone(), st.clone(), stop_rx.clone()));
            }
            Err(f) => return json!({"scenario": "likes", "error": format!("reader could not join: {}", f.key())}),
        }
    }
    let mut txs = Vec::new();
    for k in 0..a.senders.max(1) {
        let auth = guest_auth(&format!("{}-{run}-s{k}", c.prefix), &slug);
        let ws = match tokio::time::timeout(t.conn_timeout, open(&t, a.readers + k, &auth)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(f)) => {
                return json!({"scenario": "likes", "error": format!("sender could not connect: {}", f.key())});
            }
            Err(_) => return json!({"scenario": "likes", "error": "sender connect timed out"}),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        txs.push(tx);
        tokio::spawn(sender(ws, rx, st.clone(), stop_rx.clone()));
    }
    eprintln!("[likes] {} readers, {} senders; {} likes/s for {} s", a.readers, txs.len(), a.rate, a.secs);

    // /health every 250 ms; the breaker gauge and flush count from /metrics.
    let health_bad = Arc::new(AtomicU64::new(0));
    let health_checks = Arc::new(AtomicU64::new(0));
    let breaker_seen = Arc::new(AtomicBool::new(false));
    let poller = {
        let (bad, checks, seen, host, port) =
            (health_bad.clone(), health_checks.clone(), breaker_seen.clone(), c.host, c.port);
        tokio::spawn(async move {
            loop {
                sleep(Duration::from_millis(250)).await;
                let ok = matches!(http_get(port, host, "/health").await, Some((200, _)));
                checks.fetch_add(1, Relaxed);
                if !ok {
                    bad.fetch_add(1, Relaxed);
                }
                if let Some((_, page)) = http_get(port, host, "/metrics").await
                    && metric(&page, "hafi_storage_breaker_open").unwrap_or(0.0) > 0.0
                {
                    seen.store(true, Relaxed);
                }
            }
        })
    };
    let flushes = |page: Option<(u16, String)>| page.and_then(|(_, p)| metric(&p, "hafi_storage_flush_seconds_count"));
    let flushes0 = flushes(http_get(c.port, c.host, "/metrics").await);
    let s0 = server.sample();
    let lg0 = self_cpu();
    st.measuring.store(true, Relaxed);

    // Open loop: every millisecond, send what the rate says is due by now.
    let start = Instant::now();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total && Instant::now() < deadline {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * a.rate) as usize).min(total);
        while sent < due {
            let msg = format!("42{sent}[\"photo:like\",{{\"eventSlug\":\"{slug}\",\"photo_id\":\"p{run}-{sent}\"}}]");
            st.sent_ns[sent].store((st.base.elapsed().as_nanos() as u64).max(1), Relaxed);
            let _ = txs[sent % txs.len()].send(msg);
            sent += 1;
        }
        if sent > 0 && sent.is_multiple_of((a.rate as usize).max(1) * 5) {
            eprintln!(
                "[likes] sent {sent}/{total}: accepted {} busy {} failed {}",
                st.accepted.load(Relaxed),
                st.busy.load(Relaxed),
                st.failed.load(Relaxed)
            );
        }
    }
    let send_s = start.elapsed().as_secs_f64();
    // Drain: until every like has an answer, or no progress for 2 s, or the drain time is over.
    let answered = |st: &Shared| st.accepted.load(Relaxed) + st.busy.load(Relaxed) + st.failed.load(Relaxed);
    let drain_until = deadline.min(Instant::now() + Duration::from_secs_f64(a.drain));
    let (mut last, mut last_change) = (answered(&st), Instant::now());
    while answered(&st) < sent as u64 && Instant::now() < drain_until && last_change.elapsed() < Duration::from_secs(2)
    {
        sleep(Duration::from_millis(50)).await;
        let now = answered(&st);
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
    }
    // Broadcasts of the last accepted likes may still be on their way.
    sleep(Duration::from_millis(300)).await;
    let s1 = server.sample();
    let lg1 = self_cpu();
    let flushes1 = flushes(http_get(c.port, c.host, "/metrics").await);
    poller.abort();
    let final_health = http_get(c.port, c.host, "/health").await.map(|x| x.0);
    let _ = stop_tx.send(true);

    let window = s1.at.zip(s0.at).map(|(b, a)| b.duration_since(a).as_secs_f64()).unwrap_or(send_s);
    let accepted = st.accepted.load(Relaxed);
    let busy = st.busy.load(Relaxed);
    let failed = st.failed.load(Relaxed);
    let cpu = s1.cpu - s0.cpu;
    let flush_n = flushes1.zip(flushes0).map(|(b, a)| b - a);
    let received: Vec<u64> = st.received.iter().map(|r| r.load(Relaxed)).collect();
    json!({
        "scenario": "likes",
        "offered_per_s": a.rate,
        "secs": a.secs,
        "senders": txs.len(),
        "readers": a.readers,
        "sent": sent,
        "send_s": round(send_s, 3),
        "accepted": accepted,
        "busy": busy,
        "failed": failed,
        "failed_by_message": json!(st.other_errors.lock().unwrap().clone()),
        "unanswered": (sent as u64).saturating_sub(accepted + busy + failed),
        "accepted_per_s": round(accepted as f64 / send_s, 1),
        "busy_pct": round(busy as f64 * 100.0 / sent.max(1) as f64, 2),
        "ack_latency": st.ack_lat.summary(),
        "busy_latency": st.busy_lat.summary(),
        "broadcast_latency": st.bcast_lat.summary(),
        "readers_received": received,
        "readers_dropped": st.readers_dropped.load(Relaxed),
        "senders_dropped": st.senders_dropped.load(Relaxed),
        "health_checks": health_checks.load(Relaxed),
        "health_not_200": health_bad.load(Relaxed),
        "health_final": final_health,
        "breaker_opened": breaker_seen.load(Relaxed),
        "flushes": flush_n,
        "fsyncs_per_s": flush_n.map(|n| round(n / window, 1)),
        "likes_per_flush": flush_n.map(|n| round(accepted as f64 / n.max(1.0), 1)),
        "machine_busy_pct": machine_pct(&s0, &s1),
        "server": {
            "cpu_s": round(cpu, 3),
            "cpu_pct": round(cpu / window * 100.0, 1),
            "cpu_per_durable_like_us": round(if accepted > 0 { cpu * 1e6 / accepted as f64 } else { f64::NAN }, 2),
            "rss_end_kib": s1.rss_kib,
        },
        "loadgen": { "cpu_s": round(lg1 - lg0, 3), "cpu_pct": round((lg1 - lg0) / window * 100.0, 1) },
    })
}
