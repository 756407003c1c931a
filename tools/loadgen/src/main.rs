//! `hafi-loadgen`: a bounded load generator for hafi-realtime (and any Socket.IO 4 server with the
//! events of SPEC §4), speaking Engine.IO 4 / Socket.IO 5 over raw websockets.
//!
//! Scenarios (subcommands): `idle`, `fanout`, `storm`, `churn`, `fill` (in `fill.rs`), `likes` (in
//! `likes.rs`: a like storm, open loop), and, with no server, `floor` (in `floor.rs`: the machine's
//! own cost of fan-out) and `disk` (in `likes.rs`: the disk's write + fdatasync rate). Every scenario has a connection
//! count and a hard deadline (`--duration`), prints progress on stderr and one JSON line with all
//! figures on stdout. Connections are spread over the source addresses 127.0.0.1..127.0.0.N, and
//! `idle` / `storm` split themselves into child processes (re-exec with `--shard`) when the
//! connection count exceeds what one process may open. The server's CPU and RSS are read from
//! `/proc/<--server-pid>`; the load generator's own CPU is reported beside it.
//!
//! Only loopback targets are accepted.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::sleep;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

mod fill;
mod floor;
mod likes;
mod polling;
mod tally;

type Ws = WebSocketStream<TcpStream>;

// ------------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------------

#[derive(Parser, Debug)]
#[command(name = "hafi-loadgen", about = "Bounded Socket.IO load generator for hafi-realtime (loopback only)")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug, Clone)]
enum Scenario {
    /// Hold N idle joined guest connections spread over R rooms.
    Idle(IdleArgs),
    /// G guests in one room; liker connection(s) like distinct photos at R/s.
    Fanout(FanoutArgs),
    /// C guests connecting and joining at once.
    Storm(StormArgs),
    /// K connect-join-leave cycles over S distinct slugs, with bounded concurrency.
    Churn(ChurnArgs),
    /// G guests connect over W seconds and join one room; presence seen after a settle time.
    Fill(fill::FillArgs),
    /// No server: N loopback readers, one writer thread sending each a 60-byte frame R times a second.
    Floor(floor::FloorArgs),
    /// S sender sockets like distinct photos at R/s in total (open loop); readers in the room.
    Likes(likes::LikesArgs),
    /// No server: the rate of a 4 KB write + fdatasync loop in a directory.
    Disk(likes::DiskArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    host: Ipv4Addr,
    #[arg(long)]
    port: u16,
    /// PID of the server process, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Hard deadline for the whole scenario, in seconds.
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// Number of source addresses 127.0.0.1..127.0.0.N to spread connections over.
    #[arg(long, default_value_t = 16)]
    sources: u8,
    /// Tokio worker threads of each load generator process.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Connections per load generator process at most (also capped by its open-file limit).
    #[arg(long, default_value_t = 9000)]
    per_process: usize,
    /// Prefix of slugs and guest session ids.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Timeout of one connect + handshake + join, in seconds.
    #[arg(long, default_value_t = 30.0)]
    conn_timeout: f64,
    #[arg(long, hide = true)]
    shard: Option<usize>,
    #[arg(long, hide = true, default_value_t = 1)]
    shards: usize,
    #[arg(long, hide = true)]
    start_at_ms: Option<u64>,
    #[arg(long, hide = true)]
    deadline_ms: Option<u64>,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Connections being set up at the same time (per process).
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Idle window over which the server's CPU is measured, in seconds.
    #[arg(long, default_value_t = 30.0)]
    window: f64,
    /// Wait after closing every connection before the last RSS sample, in seconds.
    #[arg(long, default_value_t = 5.0)]
    after_wait: f64,
}

#[derive(Args, Debug, Clone)]
struct StormArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 10000)]
    connections: usize,
    /// Rooms the guests join (each join is broadcast to its room, so one room costs O(C²)).
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    #[arg(long, default_value_t = 5.0)]
    after_wait: f64,
}

#[derive(Args, Debug, Clone)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1000)]
    guests: usize,
    /// Likes per second sent by the liker.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Liker connections the likes are spread over (round robin).
    #[arg(long, default_value_t = 1)]
    likers: usize,
    /// How long likes are sent, in seconds.
    #[arg(long, default_value_t = 20.0)]
    send_secs: f64,
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// At most this long to wait for the join broadcasts to settle before likes start, in seconds.
    #[arg(long, default_value_t = 180.0)]
    settle_max: f64,
    /// How the guests talk to the server (the likers always use websockets).
    #[arg(long, value_enum, default_value_t = polling::Transport::Websocket)]
    transport: polling::Transport,
}

#[derive(Args, Debug, Clone)]
struct ChurnArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 20000)]
    cycles: usize,
    #[arg(long, default_value_t = 5000)]
    slugs: usize,
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Cycles run before the "before" RSS sample (allocator and runtime warm-up).
    #[arg(long, default_value_t = 1000)]
    warmup: usize,
    /// Wait after the last cycle before the "after" RSS sample, in seconds.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
}

impl Scenario {
    /// The server-facing options; `floor` has no server.
    fn common(&self) -> Option<&Common> {
        match self {
            Scenario::Idle(a) => Some(&a.common),
            Scenario::Fanout(a) => Some(&a.common),
            Scenario::Storm(a) => Some(&a.common),
            Scenario::Churn(a) => Some(&a.common),
            Scenario::Fill(a) => Some(&a.common),
            Scenario::Likes(a) => Some(&a.common),
            Scenario::Floor(_) | Scenario::Disk(_) => None,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Scenario::Idle(_) => "idle",
            Scenario::Fanout(_) => "fanout",
            Scenario::Storm(_) => "storm",
            Scenario::Churn(_) => "churn",
            Scenario::Fill(_) => "fill",
            Scenario::Floor(_) => "floor",
            Scenario::Likes(_) => "likes",
            Scenario::Disk(_) => "disk",
        }
    }
}

// ------------------------------------------------------------------------------------------------
// /proc readings
// ------------------------------------------------------------------------------------------------

const CLK_TCK: f64 = 100.0;

/// utime + stime of a process (all its threads), in seconds.
fn proc_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / CLK_TCK)
}

/// VmRSS of a process, in KiB.
fn proc_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn self_cpu() -> f64 {
    proc_cpu("self").unwrap_or(0.0)
}

/// Soft limit of open files of this process.
fn nofile_soft() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// Busy CPU time of the whole machine (all cores; user, nice, system, irq, softirq, steal), in
/// seconds: with the server's and the load generator's CPU it shows what else ran meanwhile.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    (get(0) + get(1) + get(2) + get(5) + get(6) + get(7)) as f64 / CLK_TCK
}

#[derive(Clone, Copy, Debug, Default)]
struct ServerSample {
    cpu: f64,
    rss_kib: u64,
    at: Option<Instant>,
    machine: f64,
}

/// Percent of one core that the whole machine was busy between two samples.
fn machine_pct(a: &ServerSample, b: &ServerSample) -> f64 {
    let secs = b.at.zip(a.at).map(|(b, a)| b.duration_since(a).as_secs_f64()).unwrap_or(f64::NAN);
    round((b.machine - a.machine) / secs * 100.0, 1)
}

struct Server {
    pid: Option<String>,
}

impl Server {
    fn sample(&self) -> ServerSample {
        match &self.pid {
            Some(p) => ServerSample {
                cpu: proc_cpu(p).unwrap_or(f64::NAN),
                rss_kib: proc_rss_kib(p).unwrap_or(0),
                at: Some(Instant::now()),
                machine: machine_busy(),
            },
            None => ServerSample { cpu: f64::NAN, rss_kib: 0, at: Some(Instant::now()), machine: machine_busy() },
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn instant_at_epoch_ms(ms: u64) -> Instant {
    let now = epoch_ms();
    if ms >= now {
        Instant::now() + Duration::from_millis(ms - now)
    } else {
        Instant::now() - Duration::from_millis(now - ms)
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

// ------------------------------------------------------------------------------------------------
// A compact latency histogram: log-linear buckets on microseconds (64 sub-buckets per power of
// two, relative error under 1.6 %), lock-free counters.
// ------------------------------------------------------------------------------------------------

const HIST_BUCKETS: usize = 128 + 40 * 64;

struct Hist {
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
    fn new() -> Self {
        Hist {
            b: (0..HIST_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            n: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
    fn record(&self, us: u64) {
        self.b[hist_index(us)].fetch_add(1, Relaxed);
        self.n.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }
    fn merge(&self, other: &Hist) {
        for (mine, theirs) in self.b.iter().zip(&other.b) {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
        self.n.fetch_add(other.n.load(Relaxed), Relaxed);
        self.sum_us.fetch_add(other.sum_us.load(Relaxed), Relaxed);
        self.max_us.fetch_max(other.max_us.load(Relaxed), Relaxed);
    }
    fn add_sparse(&self, v: &Value) {
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
    fn sparse(&self) -> Value {
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
    fn quantile_ms(&self, q: f64) -> f64 {
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
    fn summary(&self) -> Value {
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
}

// ------------------------------------------------------------------------------------------------
// Engine.IO / Socket.IO over a raw websocket
// ------------------------------------------------------------------------------------------------

struct Target {
    server: SocketAddr,
    url: String,
    sources: Vec<Ipv4Addr>,
    ws_cfg: WebSocketConfig,
    conn_timeout: Duration,
}

impl Target {
    fn new(c: &Common) -> Target {
        assert!(c.host.is_loopback(), "hafi-loadgen only targets loopback addresses");
        let n = c.sources.max(1);
        Target {
            server: SocketAddr::from((c.host, c.port)),
            url: format!("ws://{}:{}/socket.io/?EIO=4&transport=websocket", c.host, c.port),
            sources: (1..=n).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
            ws_cfg: WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0),
            conn_timeout: Duration::from_secs_f64(c.conn_timeout),
        }
    }
}

#[derive(Debug)]
enum Fail {
    Tcp(std::io::ErrorKind),
    Http(u16),
    Ws(String),
    Refused(String),
    Closed,
    Timeout,
    JoinError(String),
    /// The server's answer did not follow the protocol (polling transport).
    Proto(&'static str),
}

impl Fail {
    fn key(&self) -> String {
        match self {
            Fail::Tcp(k) => format!("tcp: {k:?}"),
            Fail::Http(s) => format!("http {s}"),
            Fail::Ws(e) => format!("ws: {e}"),
            Fail::Refused(m) => format!("connect_error: {m}"),
            Fail::Closed => "closed during handshake".into(),
            Fail::Timeout => "timeout".into(),
            Fail::JoinError(m) => format!("join error: {m}"),
            Fail::Proto(m) => format!("protocol: {m}"),
        }
    }
    /// A refusal by the server (as opposed to a transport failure).
    fn is_refusal(&self) -> bool {
        matches!(self, Fail::Http(_) | Fail::Refused(_) | Fail::JoinError(_))
    }
}

fn ws_fail(e: WsError) -> Fail {
    match e {
        WsError::Http(r) => Fail::Http(r.status().as_u16()),
        WsError::Io(e) => Fail::Tcp(e.kind()),
        e => Fail::Ws(e.to_string()),
    }
}

/// The event name of a Socket.IO EVENT packet `42["name",...]` (no namespace, no ack id).
fn event_name(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("42[\"")?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

/// The string value of `"key":"..."` in a small JSON text, without parsing it.
fn json_str_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = s.find(&pat)? + pat.len();
    let end = s[start..].find('"')?;
    Some(&s[start..start + end])
}

async fn next_text(ws: &mut Ws) -> Result<Utf8Bytes, Fail> {
    loop {
        match ws.next().await {
            None => return Err(Fail::Closed),
            Some(Err(e)) => return Err(ws_fail(e)),
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(_))) => return Err(Fail::Closed),
            Some(Ok(_)) => continue,
        }
    }
}

async fn pong(ws: &mut Ws) -> Result<(), Fail> {
    ws.send(Message::Text(Utf8Bytes::from_static("3"))).await.map_err(ws_fail)
}

/// TCP connect from source address `src`, websocket upgrade, Engine.IO open, Socket.IO CONNECT.
async fn open(t: &Target, src_idx: usize, auth: &str) -> Result<Ws, Fail> {
    let src = t.sources[src_idx % t.sources.len()];
    let sock = TcpSocket::new_v4().map_err(|e| Fail::Tcp(e.kind()))?;
    sock.bind(SocketAddr::from((src, 0))).map_err(|e| Fail::Tcp(e.kind()))?;
    let stream = sock.connect(t.server).await.map_err(|e| Fail::Tcp(e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(t.url.as_str(), stream, Some(t.ws_cfg)).await.map_err(ws_fail)?;
    loop {
        let m = next_text(&mut ws).await?;
        if m.starts_with('0') {
            break;
        }
    }
    ws.send(Message::text(format!("40{auth}"))).await.map_err(ws_fail)?;
    loop {
        let m = next_text(&mut ws).await?;
        let s = m.as_str();
        if s.starts_with("40") {
            return Ok(ws);
        }
        if s.starts_with("44") {
            return Err(Fail::Refused(json_str_field(s, "message").unwrap_or("?").to_string()));
        }
        if s == "2" {
            pong(&mut ws).await?;
        }
    }
}

/// Sends `event:join` and waits for `event:snapshot` (or an `error` event).
async fn join(ws: &mut Ws, slug: &str) -> Result<(), Fail> {
    ws.send(Message::text(format!("42[\"event:join\",\"{slug}\"]"))).await.map_err(ws_fail)?;
    loop {
        let m = next_text(ws).await?;
        let s = m.as_str();
        if s == "2" {
            pong(ws).await?;
        } else if let Some(name) = event_name(s) {
            if name == "event:snapshot" {
                return Ok(());
            }
            if name == "error" {
                return Err(Fail::JoinError(json_str_field(s, "message").unwrap_or("?").to_string()));
            }
        }
    }
}

fn guest_auth(session: &str, slug: &str) -> String {
    format!("{{\"guestSessionId\":\"{session}\",\"eventSlug\":\"{slug}\"}}")
}

async fn open_and_join(t: &Target, src_idx: usize, session: &str, slug: &str) -> Result<Ws, Fail> {
    let fut = async {
        let mut ws = open(t, src_idx, &guest_auth(session, slug)).await?;
        join(&mut ws, slug).await?;
        Ok(ws)
    };
    tokio::time::timeout(t.conn_timeout, fut).await.unwrap_or(Err(Fail::Timeout))
}

/// Reads until `stop` fires (then closes, returns true) or the server ends the connection
/// (returns false). Answers pings; hands every event packet to `on_event`.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, mut on_event: impl FnMut(&str)) -> bool {
    // Made once: a `changed()` made anew for every message registers with the channel that all
    // readers share, under its lock, once per delivery.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let s = t.as_str();
                    if s == "2" {
                        if pong(&mut ws).await.is_err() { return false; }
                    } else if s.starts_with("42") {
                        on_event(s);
                    } else if s.starts_with('1') || s.starts_with("41") {
                        return false;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                Some(Ok(_)) => {}
            },
            _ = &mut stopped => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return true;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Shared counters of one process
// ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Fails(Mutex<BTreeMap<String, u64>>);

impl Fails {
    fn add(&self, f: &Fail) {
        *self.0.lock().unwrap().entry(f.key()).or_default() += 1;
    }
    fn add_n(&self, k: &str, n: u64) {
        *self.0.lock().unwrap().entry(k.to_string()).or_default() += n;
    }
    fn json(&self) -> Value {
        json!(self.0.lock().unwrap().clone())
    }
    fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}

// ------------------------------------------------------------------------------------------------
// idle and storm: held connections, possibly over several processes
// ------------------------------------------------------------------------------------------------

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
        "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "loadgen": {
            "cpu_s": round(loadgen_cpu, 3),
            "connect_cpu_s": round(loadgen_connect_cpu, 3),
        },
    });
    if plan.storm {
        out["all_joined_s"] = json!(round(all_joined_s, 3));
        out["ready_wall_s"] = json!(round(all_ready_at.saturating_duration_since(start).as_secs_f64(), 3));
        out["joined_within_5s"] = json!(count_below(&lat, 5_000_000));
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

fn count_below(h: &Hist, us: u64) -> u64 {
    let top = hist_index(us);
    h.b.iter().take(top).map(|c| c.load(Relaxed)).sum()
}

// ------------------------------------------------------------------------------------------------
// fanout
// ------------------------------------------------------------------------------------------------

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

async fn fanout(a: &FanoutArgs, deadline: Instant) -> Value {
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
        "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
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

// ------------------------------------------------------------------------------------------------
// churn
// ------------------------------------------------------------------------------------------------

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

async fn churn(a: &ChurnArgs, deadline: Instant) -> Value {
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
        "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
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

// ------------------------------------------------------------------------------------------------

fn main() {
    let cli = Cli::parse();
    let scn = cli.scenario.clone();
    let Some(c) = scn.common().cloned() else {
        match &scn {
            Scenario::Floor(a) => println!("{}", floor::floor(a)),
            Scenario::Disk(a) => println!("{}", likes::disk(a)),
            _ => {}
        }
        std::process::exit(0);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(c.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let deadline = match c.deadline_ms {
        Some(ms) => instant_at_epoch_ms(ms),
        None => Instant::now() + Duration::from_secs_f64(c.duration),
    };
    let t0 = Instant::now();
    let mut out = rt.block_on(async {
        match &scn {
            Scenario::Idle(a) => {
                let plan =
                    HoldPlan { total: a.connections, rooms: a.rooms, concurrency: Some(a.concurrency), storm: false };
                if c.shard.is_some() {
                    hold_child(&c, plan, deadline).await
                } else {
                    hold_parent(&scn, plan, a.window, a.after_wait, deadline).await
                }
            }
            Scenario::Storm(a) => {
                let plan = HoldPlan { total: a.connections, rooms: a.rooms, concurrency: None, storm: true };
                if c.shard.is_some() {
                    hold_child(&c, plan, deadline).await
                } else {
                    hold_parent(&scn, plan, 0.0, a.after_wait, deadline).await
                }
            }
            Scenario::Fanout(a) => fanout(a, deadline).await,
            Scenario::Churn(a) => churn(a, deadline).await,
            Scenario::Fill(a) => fill::fill(a, deadline).await,
            Scenario::Likes(a) => likes::likes(a, deadline).await,
            Scenario::Floor(_) | Scenario::Disk(_) => Value::Null,
        }
    });
    if c.shard.is_none() {
        out["wall_s"] = json!(round(t0.elapsed().as_secs_f64(), 2));
        out["deadline_hit"] = json!(Instant::now() >= deadline);
        out["loadgen_threads"] = json!(c.threads);
        if out.get("loadgen").is_some() && out["loadgen"].get("cpu_s").is_none() {
            out["loadgen"]["cpu_s"] = json!(round(self_cpu(), 3));
        }
    }
    println!("{out}");
    // Exit at once: held connections are closed by the kernel.
    std::process::exit(0);
}
