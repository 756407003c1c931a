//! Server memory per idle websocket connection and server CPU per small echo, for the two
//! websocket crates that can sit on a hyper 1 upgrade: `tokio-tungstenite` and `fastwebsockets`.
//!
//! `ws_crates --crate tungstenite|fastwebsockets --conns N` re-runs itself with `--serve` so the
//! server's RSS and CPU time are its own process's, opens N loopback clients, and prints one
//! JSON line. The server keeps each connection in one task with the smallest buffers each crate
//! allows, the shape the wire layer is meant to have.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// Same allocator as the server binary, so the bytes measured are the ones users would see.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEADLINE: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ECHO_CLIENTS: usize = 100;
const ECHOES_PER_CLIENT: usize = 100;
const MESSAGE_BYTES: usize = 60;
/// Kernel clock ticks per second for /proc/<pid>/stat (`getconf CLK_TCK` is 100 on Linux).
const CLK_TCK: u64 = 100;
/// Source addresses used round-robin, so no single (source, destination) pair runs out of ports.
const SOURCE_ADDRS: u8 = 16;

/// tungstenite buffers: 1 KiB read buffer; a write buffer of 0 writes each frame out at once.
fn tungstenite_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(100_000))
        .max_frame_size(Some(100_000))
}

#[derive(Clone, Copy, PartialEq)]
enum Crate {
    Tungstenite,
    Fastwebsockets,
}

impl Crate {
    fn parse(s: &str) -> Option<Crate> {
        match s {
            "tungstenite" => Some(Crate::Tungstenite),
            "fastwebsockets" => Some(Crate::Fastwebsockets),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Crate::Tungstenite => "tungstenite",
            Crate::Fastwebsockets => "fastwebsockets",
        }
    }
}

struct Args {
    krate: Crate,
    conns: usize,
    serve: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut krate = None;
    let mut conns = 2000usize;
    let mut serve = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--crate" => {
                let v = it.next().ok_or("--crate needs a value")?;
                krate = Some(Crate::parse(&v).ok_or(format!("unknown crate {v}"))?);
            }
            "--conns" => {
                let v = it.next().ok_or("--conns needs a value")?;
                conns = v.parse().map_err(|_| format!("bad --conns {v}"))?;
            }
            "--serve" => serve = true,
            // cargo bench passes --bench; anything else unknown is ignored the same way.
            _ => {}
        }
    }
    let krate = krate.ok_or("usage: ws_crates --crate tungstenite|fastwebsockets --conns N")?;
    Ok(Args { krate, conns, serve })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = if args.serve { rt.block_on(serve(args.krate)) } else { rt.block_on(run(args.krate, args.conns)) };
    if let Err(e) = result {
        eprintln!("ws_crates: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- server (child process)

async fn serve(krate: Crate) -> Result<(), BoxError> {
    // The parent closes our stdin when it is done or dies; never outlive it.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let svc = service_fn(move |req| upgrade(krate, req));
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades();
            let _ = conn.await;
        });
    }
}

async fn upgrade(krate: Crate, req: Request<hyper::body::Incoming>) -> Result<Response<Empty<Bytes>>, BoxError> {
    match krate {
        Crate::Tungstenite => upgrade_tungstenite(req),
        Crate::Fastwebsockets => upgrade_fastwebsockets(req),
    }
}

fn bad_request() -> Result<Response<Empty<Bytes>>, BoxError> {
    Ok(Response::builder().status(StatusCode::BAD_REQUEST).body(Empty::new())?)
}

fn upgrade_tungstenite(mut req: Request<hyper::body::Incoming>) -> Result<Response<Empty<Bytes>>, BoxError> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return bad_request();
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(tungstenite_config())).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() || (msg.is_text() && ws.send(msg).await.is_err()) {
                break;
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Empty::new())?)
}

fn upgrade_fastwebsockets(mut req: Request<hyper::body::Incoming>) -> Result<Response<Empty<Bytes>>, BoxError> {
    let Ok((response, fut)) = fastwebsockets::upgrade::upgrade(&mut req) else {
        return bad_request();
    };
    tokio::spawn(async move {
        let Ok(mut ws) = fut.await else {
            return;
        };
        // The read buffer is a fixed 8 KiB in fastwebsockets 0.10; only limits are settable.
        ws.set_max_message_size(100_000);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        while let Ok(frame) = ws.read_frame().await {
            match frame.opcode {
                fastwebsockets::OpCode::Text => {
                    let reply = fastwebsockets::Frame::text(frame.payload);
                    if ws.write_frame(reply).await.is_err() {
                        break;
                    }
                }
                fastwebsockets::OpCode::Close => break,
                _ => {}
            }
        }
    });
    Ok(response)
}

// ---------------------------------------------------------------- driver (parent process)

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(krate: Crate, conns: usize) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut child = ChildGuard(
        Command::new(exe)
            .args(["--serve", "--crate", krate.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let pid = child.0.id();
    let stdout = child.0.stdout.take().ok_or("no child stdout")?;
    let port: u16 = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??
    .trim()
    .parse()?;
    let out =
        tokio::time::timeout(DEADLINE, measure(krate, conns, pid, port)).await.map_err(|_| "deadline passed")??;
    println!("{out}");
    drop(child);
    Ok(())
}

async fn measure(krate: Crate, conns: usize, pid: u32, port: u16) -> Result<String, BoxError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_base = rss_kib(pid)?;
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    let started = Instant::now();
    let mut clients: Vec<Client> = futures_util::stream::iter(0..conns)
        .map(|i| connect(server, i))
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(pid)?;
    let bytes_per_conn = if conns == 0 { 0.0 } else { (rss.saturating_sub(rss_base) * 1024) as f64 / conns as f64 };

    let echo_clients = ECHO_CLIENTS.min(clients.len());
    let cpu_before = cpu_ticks(pid)?;
    let ns_before = cpu_ns(pid);
    let text = "x".repeat(MESSAGE_BYTES);
    let echoes = futures_util::future::join_all(clients.iter_mut().take(echo_clients).map(|c| echo(c, &text)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let total: usize = echoes.iter().sum();
    let cpu_after = cpu_ticks(pid)?;
    let ns_after = cpu_ns(pid);
    let cpu_us = (cpu_after.saturating_sub(cpu_before)) * 1_000_000 / CLK_TCK;
    let per_echo = if total == 0 { 0.0 } else { cpu_us as f64 / total as f64 };
    let per_echo_ns_clock = match (ns_before, ns_after) {
        (Some(a), Some(b)) if total > 0 => b.saturating_sub(a) as f64 / 1000.0 / total as f64,
        _ => 0.0,
    };

    for c in clients.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_millis(50), c.close(None)).await;
    }
    drop(clients);
    Ok(format!(
        "{{\"crate\":\"{}\",\"conns\":{},\"rss_base_kib\":{},\"rss_kib\":{},\"bytes_per_conn\":{:.0},\"cpu_us_per_echo\":{:.2},\"cpu_us_per_echo_schedstat\":{:.2},\"echoes\":{},\"connect_s\":{:.2}}}",
        krate.name(),
        conns,
        rss_base,
        rss,
        bytes_per_conn,
        per_echo,
        per_echo_ns_clock,
        total,
        connect_secs
    ))
}

async fn connect(server: SocketAddr, i: usize) -> Result<Client, BoxError> {
    let last_octet = 2 + (i % SOURCE_ADDRS as usize) as u8;
    let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)), 0);
    let socket = TcpSocket::new_v4()?;
    socket.bind(source)?;
    let fut = async {
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{server}/");
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            url,
            MaybeTlsStream::Plain(stream),
            Some(WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0)),
        )
        .await?;
        Ok::<_, BoxError>(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut).await.map_err(|_| "connect timeout")?
}

/// Sends one message at a time and waits for its echo; returns how many came back.
async fn echo(c: &mut Client, text: &str) -> Result<usize, BoxError> {
    let mut n = 0;
    for _ in 0..ECHOES_PER_CLIENT {
        c.send(Message::text(text)).await?;
        match tokio::time::timeout(Duration::from_secs(10), c.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.len() == text.len() => n += 1,
            other => return Err(format!("bad echo: {other:?}").into()),
        }
    }
    Ok(n)
}

fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

/// utime + stime of the whole process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).ok_or("bad stat")?.parse()?;
    let stime: u64 = f.get(12).ok_or("bad stat")?.parse()?;
    Ok(utime + stime)
}

/// Nanoseconds on CPU summed over the process's live threads (finer than clock ticks).
fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(path).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}
