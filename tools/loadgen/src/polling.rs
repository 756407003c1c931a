//! Long-polling guests for `fanout --transport polling`: what a phone behind a proxy that refuses
//! websockets does. Each guest does the Engine.IO 4 handshake by HTTP, never upgrades, and keeps
//! exactly one long-poll GET outstanding on its own keep-alive HTTP/1.1 connection; its POSTs
//! (CONNECT, join, pongs, close) go over a second keep-alive connection, since a connection with a
//! pending GET cannot carry another request before that GET is answered (no pipelining).
//!
//! The HTTP/1.1 client is written by hand: one request, one response with `Content-Length` (or
//! chunked), so that a poll costs a write and a read, which keeps the load generator's own CPU
//! small beside the server's.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::client::{Fail, Target, event_name, guest_auth, json_str_field};

/// How a fanout guest talks to the server.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Websocket,
    Polling,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Polling => "polling",
        }
    }
}

/// Engine.IO's packet separator inside a polling body.
const SEPARATOR: u8 = 0x1e;
/// Bounds on what one response may be: a status line or header line, the header count, a body.
const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 64;
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Polls that one handshake or join may take before it counts as failed (the time bound is the
/// caller's `--conn-timeout`).
const MAX_SETUP_POLLS: usize = 10_000;

/// Counters of every polling guest of the process, reported under `"polling"`.
#[derive(Default)]
pub struct PollStats {
    /// Handshake GETs (the open packet), apart from the long polls.
    handshakes: AtomicU64,
    /// Long-poll GETs after the handshake.
    gets: AtomicU64,
    posts: AtomicU64,
    connects: AtomicU64,
    /// GETs answered with nothing for the guest (`6` noop or an empty body).
    empty_polls: AtomicU64,
    /// Engine.IO packets received over all GETs.
    packets: AtomicU64,
    pongs: AtomicU64,
}

impl PollStats {
    pub fn json(&self) -> Value {
        let gets = self.gets.load(Relaxed);
        let packets = self.packets.load(Relaxed);
        json!({
            "handshakes": self.handshakes.load(Relaxed),
            "gets": gets,
            "posts": self.posts.load(Relaxed),
            "tcp_connects": self.connects.load(Relaxed),
            "empty_polls": self.empty_polls.load(Relaxed),
            "packets": packets,
            "packets_per_get": if gets > 0 { (packets as f64 / gets as f64 * 1000.0).round() / 1000.0 } else { 0.0 },
            "pongs": self.pongs.load(Relaxed),
        })
    }
}

/// One keep-alive HTTP/1.1 connection from a fixed source address; reopened when the server
/// closes it.
struct Conn {
    src: Ipv4Addr,
    server: SocketAddr,
    io: Option<BufReader<TcpStream>>,
}

impl Conn {
    async fn connect(&mut self, stats: &PollStats) -> Result<(), Fail> {
        let sock = TcpSocket::new_v4().map_err(|e| Fail::Tcp(e.kind()))?;
        sock.bind(SocketAddr::from((self.src, 0))).map_err(|e| Fail::Tcp(e.kind()))?;
        let stream = sock.connect(self.server).await.map_err(|e| Fail::Tcp(e.kind()))?;
        let _ = stream.set_nodelay(true);
        stats.connects.fetch_add(1, Relaxed);
        self.io = Some(BufReader::with_capacity(8192, stream));
        Ok(())
    }

    /// Sends one request and reads its response: (status, body). A reused connection that the
    /// server closed while idle is reopened once, before any byte of the response was read.
    async fn request(
        &mut self,
        method: &str,
        target: &str,
        body: &[u8],
        stats: &PollStats,
    ) -> Result<(u16, Vec<u8>), Fail> {
        let mut req = Vec::with_capacity(160 + body.len());
        req.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.server).as_bytes());
        if method == "POST" {
            req.extend_from_slice(
                format!("Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n", body.len()).as_bytes(),
            );
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        for attempt in 0..2 {
            let reused = self.io.is_some();
            if !reused {
                self.connect(stats).await?;
            }
            let Some(io) = self.io.as_mut() else { return Err(Fail::Closed) };
            let sent = io.get_mut().write_all(&req).await;
            let resp = match sent {
                Ok(()) => read_response(io).await,
                Err(e) => Err(Retry::Fresh(Fail::Tcp(e.kind()))),
            };
            match resp {
                Ok((status, body, keep_alive)) => {
                    if !keep_alive {
                        self.io = None;
                    }
                    return Ok((status, body));
                }
                Err(Retry::Fresh(f)) => {
                    self.io = None;
                    if !(reused && attempt == 0) {
                        return Err(f);
                    }
                }
                Err(Retry::No(f)) => {
                    self.io = None;
                    return Err(f);
                }
            }
        }
        Err(Fail::Closed)
    }
}

/// A response error: `Fresh` when nothing of the response had arrived (the request may be sent
/// again on a new connection), `No` once it had.
enum Retry {
    Fresh(Fail),
    No(Fail),
}

impl From<Fail> for Retry {
    fn from(f: Fail) -> Retry {
        Retry::Fresh(f)
    }
}

async fn read_line(io: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> Result<(), Fail> {
    line.clear();
    let n = (&mut *io).take(MAX_LINE).read_until(b'\n', line).await.map_err(|e| Fail::Tcp(e.kind()))?;
    if n == 0 {
        return Err(Fail::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(Fail::Proto("http line too long or cut"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(())
}

/// Reads a status line, headers and a body; returns (status, body, keep-alive).
async fn read_response(io: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>, bool), Retry> {
    let mut line = Vec::with_capacity(128);
    read_line(io, &mut line).await?;
    let status_line = String::from_utf8_lossy(&line).into_owned();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status: u16 =
        parts.next().and_then(|s| s.parse().ok()).ok_or(Retry::No(Fail::Proto("bad http status line")))?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut headers = 0;
    loop {
        read_line(io, &mut line).await.map_err(Retry::No)?;
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(Retry::No(Fail::Proto("too many http headers")));
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = Some(value.parse().map_err(|_| Retry::No(Fail::Proto("bad content-length")))?),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => keep_alive = !value.contains("close"),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(io, &mut line).await.map_err(Retry::No)?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(Retry::No(Fail::Proto("http body too large")));
        }
        let mut body = vec![0; n];
        io.read_exact(&mut body).await.map_err(|e| Retry::No(Fail::Tcp(e.kind())))?;
        body
    } else {
        // Neither: the body runs to the end of the connection.
        keep_alive = false;
        let mut body = Vec::new();
        (&mut *io).take(MAX_BODY as u64).read_to_end(&mut body).await.map_err(|e| Retry::No(Fail::Tcp(e.kind())))?;
        body
    };
    Ok((status, body, keep_alive))
}

async fn read_chunked(io: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> Result<Vec<u8>, Fail> {
    let mut body = Vec::new();
    // Each round reads one chunk; the body bound also bounds the rounds.
    for _ in 0..=MAX_BODY {
        read_line(io, line).await?;
        let size_hex = String::from_utf8_lossy(line);
        let size_hex = size_hex.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| Fail::Proto("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            for _ in 0..MAX_HEADERS {
                read_line(io, line).await?;
                if line.is_empty() {
                    return Ok(body);
                }
            }
            return Err(Fail::Proto("too many http trailers"));
        }
        if body.len() + size > MAX_BODY {
            return Err(Fail::Proto("http body too large"));
        }
        let at = body.len();
        body.resize(at + size, 0);
        io.read_exact(&mut body[at..]).await.map_err(|e| Fail::Tcp(e.kind()))?;
        read_line(io, line).await?;
    }
    Err(Fail::Proto("too many chunks"))
}

/// A polling guest after its join: its session path and its two connections.
pub struct PollGuest {
    path: String,
    get: Conn,
    post: Conn,
}

impl PollGuest {
    async fn poll(&mut self, stats: &PollStats) -> Result<Vec<u8>, Fail> {
        stats.gets.fetch_add(1, Relaxed);
        match self.get.request("GET", &self.path, b"", stats).await? {
            (200, body) => Ok(body),
            (status, _) => Err(Fail::Http(status)),
        }
    }

    async fn send(&mut self, packet: &str, stats: &PollStats) -> Result<(), Fail> {
        stats.posts.fetch_add(1, Relaxed);
        match self.post.request("POST", &self.path, packet.as_bytes(), stats).await? {
            (200, _) => Ok(()),
            (status, _) => Err(Fail::Http(status)),
        }
    }

    /// One GET; answers pings, hands every other text packet to `on_packet`. Returns whether the
    /// server closed the session (`1` or a Socket.IO DISCONNECT).
    async fn poll_once(&mut self, stats: &PollStats, mut on_packet: impl FnMut(&str)) -> Result<(), Fail> {
        let body = self.poll(stats).await?;
        let mut got = 0;
        for part in body.split(|b| *b == SEPARATOR) {
            let Ok(s) = std::str::from_utf8(part) else { continue };
            match s {
                "" | "6" => {}
                "2" => {
                    got += 1;
                    stats.pongs.fetch_add(1, Relaxed);
                    self.send("3", stats).await?;
                }
                _ if s.starts_with('1') || s.starts_with("41") => return Err(Fail::Closed),
                _ => {
                    got += 1;
                    on_packet(s);
                }
            }
        }
        stats.packets.fetch_add(got, Relaxed);
        if got == 0 {
            stats.empty_polls.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}

/// Handshake by polling, Socket.IO CONNECT with the guest's auth, `event:join` and its snapshot,
/// within the caller's connect timeout.
pub async fn open_and_join(
    t: &Target,
    src_idx: usize,
    session: &str,
    slug: &str,
    stats: &PollStats,
) -> Result<PollGuest, Fail> {
    let fut = async {
        let src = t.sources[src_idx % t.sources.len()];
        let mut g = PollGuest {
            path: String::new(),
            get: Conn { src, server: t.server, io: None },
            post: Conn { src, server: t.server, io: None },
        };
        stats.handshakes.fetch_add(1, Relaxed);
        let open = match g.get.request("GET", "/socket.io/?EIO=4&transport=polling", b"", stats).await? {
            (200, body) => String::from_utf8_lossy(&body).into_owned(),
            (status, _) => return Err(Fail::Http(status)),
        };
        let sid = open
            .split(char::from(SEPARATOR))
            .find(|p| p.starts_with('0'))
            .and_then(|p| json_str_field(p, "sid"))
            .ok_or(Fail::Proto("no sid in the open packet"))?;
        g.path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        g.send(&format!("40{}", guest_auth(session, slug)), stats).await?;
        let mut verdict: Option<Result<(), Fail>> = None;
        for _ in 0..MAX_SETUP_POLLS {
            g.poll_once(stats, |s| {
                if verdict.is_none() && s.starts_with("40") {
                    verdict = Some(Ok(()));
                } else if verdict.is_none() && s.starts_with("44") {
                    verdict = Some(Err(Fail::Refused(json_str_field(s, "message").unwrap_or("?").to_string())));
                }
            })
            .await?;
            if verdict.is_some() {
                break;
            }
        }
        verdict.unwrap_or(Err(Fail::Proto("no answer to CONNECT")))?;
        g.send(&format!("42[\"event:join\",\"{slug}\"]"), stats).await?;
        let mut joined: Option<Result<(), Fail>> = None;
        for _ in 0..MAX_SETUP_POLLS {
            g.poll_once(stats, |s| match event_name(s) {
                Some("event:snapshot") if joined.is_none() => joined = Some(Ok(())),
                Some("error") if joined.is_none() => {
                    joined = Some(Err(Fail::JoinError(json_str_field(s, "message").unwrap_or("?").to_string())))
                }
                _ => {}
            })
            .await?;
            if joined.is_some() {
                break;
            }
        }
        joined.unwrap_or(Err(Fail::Proto("no snapshot after join")))?;
        Ok(g)
    };
    tokio::time::timeout(t.conn_timeout, fut).await.unwrap_or(Err(Fail::Timeout))
}

/// Polls until `stop` fires (then closes the session with POST `1`, returns true) or the server
/// ends the session or a request fails (returns false). Hands every event packet to `on_event`.
pub async fn hold(
    mut g: PollGuest,
    mut stop: watch::Receiver<bool>,
    stats: &PollStats,
    mut on_event: impl FnMut(&str),
) -> bool {
    // Made once, not per poll (see the websocket reader's `hold`).
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let polled = tokio::select! {
            r = g.poll_once(stats, |s| if s.starts_with("42") { on_event(s) }) => r,
            _ = &mut stopped => {
                let _ = tokio::time::timeout(Duration::from_secs(2), g.send("1", stats)).await;
                return true;
            }
        };
        if polled.is_err() {
            return false;
        }
    }
}
