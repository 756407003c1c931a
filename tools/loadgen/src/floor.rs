//! `floor`: what fan-out costs this machine with no server at all, the floor under the server's
//! CPU per delivery. One writer thread accepts N loopback TCP connections and, R times a second
//! for D seconds, writes the same pre-encoded 60-byte frame (a websocket text frame of a small
//! event, encoded once per tick like a broadcast) to each of them with one nonblocking `write`.
//! N reader sockets in the load generator's runtime read and check every frame.
//!
//! The writer's CPU comes from `/proc/thread-self` of the writer thread alone: utime + stime
//! (10 ms ticks) and the scheduler's nanosecond run time. On loopback it includes the kernel's
//! work of delivering each frame into the reader's socket, as a server's writes do.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

use crate::hist::Hist;
use crate::sample::{loadavg, machine_busy, nofile_soft, proc_cpu, round, self_cpu};

#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// Reader connections (N).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Frames per second written to every reader (R).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long frames are written, in seconds (D).
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Tokio worker threads of the readers (the writer is a thread of its own).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Number of source addresses 127.0.0.1..127.0.0.N the readers connect from.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// Hard deadline for the whole scenario, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
}

const FRAME: usize = 60;
/// A frame still queued for a reader beyond this many bytes sheds that reader (a slow consumer).
const MAX_PENDING: usize = 64 * 1024;
/// Readers connecting at the same time (below the listen backlog).
const CONNECT_CONCURRENCY: usize = 100;

/// Tick `seq`'s frame: a websocket text frame (FIN, opcode 1, 58-byte payload) whose payload is a
/// Socket.IO event padded with spaces, carrying the tick's send time.
fn frame(seq: u64, t_us: u64) -> [u8; FRAME] {
    let mut f = [b' '; FRAME];
    f[0] = 0x81;
    f[1] = (FRAME - 2) as u8;
    let text = format!("42[\"floor\",{{\"seq\":{seq},\"t_us\":{t_us}}}]");
    let n = text.len().min(FRAME - 2);
    f[2..2 + n].copy_from_slice(&text.as_bytes()[..n]);
    f
}

/// The send time in a frame, or None when it is not one of ours.
fn frame_time(f: &[u8]) -> Option<u64> {
    if f.len() != FRAME || f[0] != 0x81 || f[1] as usize != FRAME - 2 {
        return None;
    }
    let text = std::str::from_utf8(&f[2..]).ok()?;
    const KEY: &str = "\"t_us\":";
    let start = text.find(KEY)? + KEY.len();
    let digits = &text[start..start + text[start..].find('}')?];
    digits.parse().ok()
}

/// Nanoseconds this thread has run, from the scheduler.
fn thread_sched_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

#[derive(Default)]
struct WriterReport {
    accepted: usize,
    ticks: u64,
    sent: u64,
    stalls: u64,
    shed: u64,
    write_errors: u64,
    unflushed_bytes: u64,
    cpu_s: f64,
    sched_s: f64,
    send_s: f64,
    machine_s: f64,
    tick_write_sum_s: f64,
    tick_write_max_s: f64,
    late_ticks: u64,
}

/// Writes what it can of `bytes` into `s`; the rest stays in `pending`. Err: the socket failed.
fn push(s: &mut TcpStream, pending: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    let mut buf = bytes;
    if !pending.is_empty() {
        pending.extend_from_slice(bytes);
        let n = match s.write(pending) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        pending.drain(..n);
        return Ok(());
    }
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    pending.extend_from_slice(buf);
    Ok(())
}

/// The writer thread: accept N connections, then the timed writes; closes every connection at
/// the end so that the readers see EOF.
fn writer(listener: TcpListener, a: FloorArgs, st: Arc<Readers>, base: Instant, deadline: Instant) -> WriterReport {
    let mut r = WriterReport::default();
    let mut socks: Vec<Option<TcpStream>> = Vec::with_capacity(a.connections);
    if listener.set_nonblocking(true).is_err() {
        return r;
    }
    // Until every reader connected, or every connect attempt ended and each success was accepted.
    let settled = |accepted: usize| {
        let (ok, failed) = (st.connected.load(Relaxed), st.connect_failed.load(Relaxed));
        ok + failed >= a.connections as u64 && accepted as u64 >= ok
    };
    while socks.len() < a.connections && !settled(socks.len()) && Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                if s.set_nonblocking(true).is_ok() {
                    socks.push(Some(s));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    r.accepted = socks.len();
    let mut pending: Vec<Vec<u8>> = vec![Vec::new(); socks.len()];
    let period = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
    let ticks = (a.rate * a.secs).round().max(1.0) as u64;
    // Let the readers' last connects settle into their read loops.
    std::thread::sleep(Duration::from_millis(200));
    let (cpu0, sched0, machine0) = (proc_cpu("thread-self").unwrap_or(f64::NAN), thread_sched_ns(), machine_busy());
    let start = Instant::now();
    for k in 0..ticks {
        let due = start + period.mul_f64(k as f64);
        if due >= deadline {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > period {
            r.late_ticks += 1;
        }
        let t0 = Instant::now();
        let f = frame(k, base.elapsed().as_micros() as u64);
        for (s, q) in socks.iter_mut().zip(pending.iter_mut()) {
            let Some(sock) = s else { continue };
            let queued_before = !q.is_empty();
            match push(sock, q, &f) {
                Ok(()) => {
                    r.sent += 1;
                    if queued_before || !q.is_empty() {
                        r.stalls += 1;
                    }
                    if q.len() > MAX_PENDING {
                        r.shed += 1;
                        q.clear();
                        *s = None;
                    }
                }
                Err(_) => {
                    r.write_errors += 1;
                    *s = None;
                }
            }
        }
        let took = t0.elapsed().as_secs_f64();
        r.tick_write_sum_s += took;
        r.tick_write_max_s = r.tick_write_max_s.max(took);
        r.ticks += 1;
    }
    r.send_s = start.elapsed().as_secs_f64();
    r.cpu_s = proc_cpu("thread-self").unwrap_or(f64::NAN) - cpu0;
    r.sched_s = match (sched0, thread_sched_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
        _ => f64::NAN,
    };
    r.machine_s = machine_busy() - machine0;
    // Flush what is still queued (bounded), then close everything.
    let flush_until = Instant::now() + Duration::from_secs(2);
    while pending.iter().any(|q| !q.is_empty()) && Instant::now() < flush_until {
        for (s, q) in socks.iter_mut().zip(pending.iter_mut()) {
            if let Some(sock) = s
                && !q.is_empty()
                && push(sock, q, &[]).is_err()
            {
                q.clear();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    r.unflushed_bytes = pending.iter().map(|q| q.len() as u64).sum();
    r
}

/// One reader: reads frames until EOF; every whole frame is a delivery with its latency.
async fn reader(src: Ipv4Addr, server: SocketAddr, sem: Arc<Semaphore>, st: Arc<Readers>, base: Instant) {
    let permit = sem.acquire_owned().await;
    let connected = async {
        let sock = TcpSocket::new_v4().ok()?;
        sock.bind(SocketAddr::from((src, 0))).ok()?;
        sock.connect(server).await.ok()
    }
    .await;
    drop(permit);
    let Some(mut stream) = connected else {
        st.connect_failed.fetch_add(1, Relaxed);
        return;
    };
    st.connected.fetch_add(1, Relaxed);
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        let n = match stream.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        have += n;
        let now = base.elapsed().as_micros() as u64;
        let whole = have / FRAME * FRAME;
        for f in buf[..whole].chunks_exact(FRAME) {
            match frame_time(f) {
                Some(t) => {
                    st.lat.record(now.saturating_sub(t));
                    st.received.fetch_add(1, Relaxed);
                }
                None => {
                    st.bad_frames.fetch_add(1, Relaxed);
                }
            }
        }
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

struct Readers {
    connected: AtomicU64,
    connect_failed: AtomicU64,
    received: AtomicU64,
    bad_frames: AtomicU64,
    lat: Hist,
}

pub fn floor(a: &FloorArgs) -> Value {
    let t_wall = Instant::now();
    let deadline = t_wall + Duration::from_secs_f64(a.duration);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let nofile = nofile_soft();
    if 2 * a.connections + 64 > nofile {
        return json!({"scenario": "floor", "error": format!("{} connections need more open files than the limit {nofile}", a.connections)});
    }
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
        Ok(l) => l,
        Err(e) => return json!({"scenario": "floor", "error": format!("listen: {e}")}),
    };
    let server = match listener.local_addr() {
        Ok(s) => s,
        Err(e) => return json!({"scenario": "floor", "error": format!("listen: {e}")}),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(a.threads.max(1)).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return json!({"scenario": "floor", "error": format!("runtime: {e}")}),
    };
    let base = Instant::now();
    let st = Arc::new(Readers {
        connected: AtomicU64::new(0),
        connect_failed: AtomicU64::new(0),
        received: AtomicU64::new(0),
        bad_frames: AtomicU64::new(0),
        lat: Hist::new(),
    });
    let (wa, wst) = (a.clone(), st.clone());
    let writer = std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || writer(listener, wa, wst, base, deadline));
    let writer = match writer {
        Ok(w) => w,
        Err(e) => return json!({"scenario": "floor", "error": format!("writer thread: {e}")}),
    };
    let sources: Vec<Ipv4Addr> = (1..=a.sources.max(1)).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    eprintln!("[floor] {} readers, {} frames/s each for {} s", a.connections, a.rate, a.secs);
    rt.block_on(async {
        let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let handles: Vec<_> = (0..a.connections)
            .map(|i| tokio::spawn(reader(sources[i % sources.len()], server, sem.clone(), st.clone(), base)))
            .collect();
        for h in handles {
            if tokio::time::timeout_at(deadline.into(), h).await.is_err() {
                break;
            }
        }
    });
    let w = writer.join().unwrap_or_default();
    rt.shutdown_timeout(Duration::from_secs(1));
    let received = st.received.load(Relaxed);
    let per_delivery = |s: f64| round(if w.sent > 0 { s * 1e6 / w.sent as f64 } else { f64::NAN }, 4);
    let total_cpu = self_cpu();
    json!({
        "scenario": "floor",
        "connections": a.connections,
        "connected": st.connected.load(Relaxed),
        "connect_failed": st.connect_failed.load(Relaxed),
        "accepted": w.accepted,
        "rate_per_s": a.rate,
        "secs": a.secs,
        "frame_bytes": FRAME,
        "ticks": w.ticks,
        "late_ticks": w.late_ticks,
        "expected": w.ticks * w.accepted as u64,
        "sent": w.sent,
        "received": received,
        "lost": w.sent.saturating_sub(received),
        "bad_frames": st.bad_frames.load(Relaxed),
        "write_stalls": w.stalls,
        "shed": w.shed,
        "write_errors": w.write_errors,
        "unflushed_bytes": w.unflushed_bytes,
        "sent_per_s": round(w.sent as f64 / w.send_s, 1),
        "latency": st.lat.summary(),
        "writer": {
            "send_s": round(w.send_s, 3),
            "cpu_s": round(w.cpu_s, 3),
            "sched_cpu_s": round(w.sched_s, 4),
            "cpu_pct": round(w.sched_s / w.send_s * 100.0, 2),
            "cpu_per_delivery_us": per_delivery(w.cpu_s),
            "sched_cpu_per_delivery_us": per_delivery(w.sched_s),
            "tick_write_mean_ms": round(w.tick_write_sum_s * 1000.0 / w.ticks.max(1) as f64, 3),
            "tick_write_max_ms": round(w.tick_write_max_s * 1000.0, 3),
        },
        "loadgen": {
            "cpu_s": round(total_cpu, 3),
            "readers_cpu_s": round(total_cpu - w.cpu_s, 3),
        },
        "machine_busy_pct": round(w.machine_s / w.send_s * 100.0, 1),
        "loadavg": loadavg(),
        "loadgen_threads": a.threads,
        "wall_s": round(t_wall.elapsed().as_secs_f64(), 2),
        "deadline_hit": Instant::now() >= deadline,
    })
}
