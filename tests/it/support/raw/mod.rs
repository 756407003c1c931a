//! Raw Engine.IO 4 / Socket.IO 5 clients for the conformance tests: long-polling through
//! reqwest, websockets through tokio-tungstenite. They speak the wire format byte for byte, so
//! a test asserts exactly what a client receives; every wait is bounded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::common::Server;

pub type Ws = WebSocketStream<TcpStream>;

/// The record separator between packets of a polling payload.
pub const SEP: char = '\x1e';

/// Every client of these tests comes from loopback: only the per-IP caps are raised.
const LOOPBACK_LIMITS: &str =
    "max_connections_per_ip = 2000\nconnect_per_ip = { rate = 2000, per = \"1s\", burst = 2000 }\n";

/// A server whose `[limits]` table holds the loopback caps plus `limits` (TOML lines).
pub fn start(limits: &str, env: &[(&str, &str)]) -> Server {
    let toml = format!("[limits]\n{LOOPBACK_LIMITS}{limits}");
    Server::start_with(Some(&toml), env)
}

pub fn addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().expect("server address")
}

/// `http://ADDR/socket.io/?QUERY`
pub fn eio_url(server: &Server, query: &str) -> String {
    format!("{}/socket.io/?{query}", server.url)
}

/// The packets of a polling payload.
pub fn packets(payload: &str) -> Vec<&str> {
    payload.split(SEP).collect()
}

/// The JSON after a packet's prefix, e.g. the handshake data of `0{...}`.
pub fn json_after(packet: &str, prefix: &str) -> Option<Value> {
    serde_json::from_str(packet.strip_prefix(prefix)?).ok()
}

/// A Socket.IO EVENT frame (`42[name, data]`) as its name and first argument.
pub fn event(packet: &str) -> Option<(String, Value)> {
    let mut v: Vec<Value> = serde_json::from_str(packet.strip_prefix("42")?).ok()?;
    if v.is_empty() {
        return None;
    }
    let data = if v.len() > 1 { v.swap_remove(1) } else { Value::Null };
    Some((v[0].as_str()?.to_string(), data))
}

/// The reference server's message for each Engine.IO error code.
fn eio_error_message(code: u64) -> Option<&'static str> {
    Some(match code {
        0 => "Transport unknown",
        1 => "Session ID unknown",
        2 => "Bad handshake method",
        3 => "Bad request",
        4 => "Forbidden",
        5 => "Unsupported protocol version",
        _ => return None,
    })
}

/// Checks an Engine.IO error answer: HTTP 400 with `{"code":N,"message":M}`, N one of `codes`
/// and M the reference message for N.
pub fn eio_error(status: u16, body: &str, codes: &[u64]) -> Result<(), String> {
    let v: Value = serde_json::from_str(body).map_err(|_| format!("status {status}, body not JSON: {body:?}"))?;
    let code = v["code"].as_u64().ok_or_else(|| format!("status {status}, no numeric code: {body}"))?;
    if status != 400 || !codes.contains(&code) || v["message"].as_str() != eio_error_message(code) {
        return Err(format!(
            "status {status}, body {body}; expected 400 with code in {codes:?} and its reference message"
        ));
    }
    Ok(())
}

/// One HTTP request; status and body text. A request the server drops shows as status 0.
pub async fn http(client: &reqwest::Client, method: &str, url: &str, body: Option<String>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.body(b);
    }
    match tokio::time::timeout(Duration::from_secs(30), req.send()).await {
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Ok(Err(e)) => (0, format!("request failed: {e}")),
        Err(_) => (0, "no answer within 30 s".to_string()),
    }
}

/// An Engine.IO session over HTTP long-polling.
pub struct Polling {
    client: reqwest::Client,
    pub url: String,
    pub sid: String,
    pub open: Value,
}

impl Polling {
    /// The polling handshake: `GET ?EIO=4&transport=polling` answered `0{...}`.
    pub async fn open(server: &Server) -> Polling {
        let client = reqwest::Client::new();
        let (status, body) = http(&client, "GET", &eio_url(server, "EIO=4&transport=polling"), None).await;
        assert_eq!(status, 200, "handshake: {body}");
        let open = json_after(&body, "0").unwrap_or_else(|| panic!("open packet: {body:?}"));
        let sid = open["sid"].as_str().unwrap_or_else(|| panic!("no sid: {body}")).to_string();
        let url = eio_url(server, &format!("EIO=4&transport=polling&sid={sid}"));
        Polling { client, url, sid, open }
    }

    pub async fn get(&self) -> (u16, String) {
        http(&self.client, "GET", &self.url, None).await
    }

    /// A GET within `ms`; `None` while it is still pending.
    pub async fn get_within(&self, ms: u64) -> Option<(u16, String)> {
        tokio::time::timeout(Duration::from_millis(ms), self.get()).await.ok()
    }

    /// A GET left pending in the background.
    pub fn spawn_get(&self) -> tokio::task::JoinHandle<(u16, String)> {
        let (client, url) = (self.client.clone(), self.url.clone());
        tokio::spawn(async move { http(&client, "GET", &url, None).await })
    }

    /// A GET that is still pending after 300 ms. Pings that come first (a server may ping as
    /// soon as the session opens) are answered and polled past; anything else is a failure.
    pub async fn pending_get(&self) -> tokio::task::JoinHandle<(u16, String)> {
        for _ in 0..5 {
            let get = self.spawn_get();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if !get.is_finished() {
                return get;
            }
            let (status, body) = get.await.expect("GET task");
            assert!(
                status == 200 && packets(&body).iter().all(|p| *p == "2"),
                "GET answered with {status} {body:?} while nothing was due"
            );
            self.post("3").await;
        }
        panic!("no GET stays pending: the server keeps answering pings");
    }

    pub async fn post(&self, body: &str) -> (u16, String) {
        http(&self.client, "POST", &self.url, Some(body.to_string())).await
    }

    /// Polls (bounded by `ms` in all) until a packet satisfies `pred`; every packet received on
    /// the way, or `Err` with them when none did. A `2` is answered with `3`.
    pub async fn poll_until(&self, ms: u64, pred: impl Fn(&str) -> bool) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok((status, body)) = tokio::time::timeout(left, self.get()).await else { break };
            if status != 200 {
                seen.push(format!("<HTTP {status} {body}>"));
                return Err(seen);
            }
            let mut found = false;
            for p in packets(&body) {
                if p == "2" {
                    self.post("3").await;
                }
                found |= pred(p);
                seen.push(p.to_string());
            }
            if found {
                return Ok(seen);
            }
        }
        Err(seen)
    }

    /// CONNECT with `auth` and its answer, `40{"sid":...}`.
    pub async fn sio_connect(&self, auth: &Value) -> Value {
        assert_eq!(self.post(&format!("40{auth}")).await, (200, "ok".to_string()), "POST CONNECT");
        let seen = self.poll_until(5000, |p| p.starts_with("40") || p.starts_with("44")).await;
        let seen = seen.unwrap_or_else(|s| panic!("no CONNECT answer: {s:?}"));
        let last = seen.iter().rev().find(|p| p.starts_with("40") || p.starts_with("44")).cloned().unwrap_or_default();
        json_after(&last, "40").unwrap_or_else(|| panic!("CONNECT refused: {last}"))
    }
}

/// What the next websocket read gave.
#[derive(Debug)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// Close frame, end of stream or a transport error.
    Closed(String),
    /// Nothing within the wait.
    Silent,
}

/// Opens a websocket to `/socket.io/?QUERY`, with a small receive buffer when asked.
pub async fn ws(server: &Server, query: &str, recv_buffer: Option<u32>) -> Result<Ws, tungstenite::Error> {
    ws_at(addr(server), query, recv_buffer).await
}

pub async fn ws_at(addr: SocketAddr, query: &str, recv_buffer: Option<u32>) -> Result<Ws, tungstenite::Error> {
    let sock = TcpSocket::new_v4().expect("socket");
    if let Some(n) = recv_buffer {
        sock.set_recv_buffer_size(n).expect("receive buffer");
    }
    let stream = sock.connect(addr).await.expect("tcp connect");
    let url = format!("ws://{addr}/socket.io/?{query}");
    match tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::client_async(url, stream)).await {
        Ok(r) => r.map(|(ws, _)| ws),
        Err(_) => Err(tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// The next frame within `ms` (pings and pongs of the websocket layer skipped).
pub async fn frame(ws: &mut Ws, ms: u64) -> Frame {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Frame::Silent,
            Ok(Some(Ok(Message::Text(t)))) => return Frame::Text(t.as_str().to_string()),
            Ok(Some(Ok(Message::Binary(b)))) => return Frame::Binary(b.to_vec()),
            Ok(Some(Ok(Message::Close(c)))) => return Frame::Closed(format!("close frame {c:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Frame::Closed(format!("error: {e}")),
            Ok(None) => return Frame::Closed("end of stream".into()),
        }
    }
}

/// The next text frame within `ms`, skipping Engine.IO pings (answered); `Err` says what came.
pub async fn text(ws: &mut Ws, ms: u64) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        match frame(ws, left).await {
            Frame::Text(t) if t == "2" => send(ws, "3").await,
            Frame::Text(t) => return Ok(t),
            other => return Err(format!("{other:?}")),
        }
    }
}

/// The next text frame satisfying `pred` within `ms`; the frames skipped on the way in `Err`.
pub async fn text_where(ws: &mut Ws, ms: u64, pred: impl Fn(&str) -> bool) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut skipped = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        match text(ws, left).await {
            Ok(t) if pred(&t) => return Ok(t),
            Ok(t) => skipped.push(t),
            Err(e) => {
                skipped.push(format!("<{e}>"));
                return Err(skipped);
            }
        }
    }
}

/// Sends a text frame; a connection the server already closed is not an error here (the test
/// looks at what the client reads).
pub async fn send(ws: &mut Ws, text: &str) {
    let _ = ws.send(Message::text(text.to_string())).await;
}

pub async fn send_binary(ws: &mut Ws, bytes: &[u8]) {
    let _ = ws.send(Message::binary(bytes.to_vec())).await;
}

/// Reads until the server ends the connection; how long that took, or `Err` with what was read
/// instead when it is still open after `ms`. Pings are not answered.
pub async fn closed_within(ws: &mut Ws, ms: u64) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(ms);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        match frame(ws, left).await {
            Frame::Closed(_) => return Ok(start.elapsed()),
            Frame::Silent => return Err(format!("still open after {ms} ms; read {seen:?}")),
            Frame::Text(t) => seen.push(t.chars().take(120).collect::<String>()),
            Frame::Binary(b) => seen.push(format!("<{} binary bytes>", b.len())),
        }
    }
}

/// A websocket open from the start: the socket and its `0{...}` handshake data.
pub async fn open_ws(server: &Server) -> (Ws, Value) {
    open_ws_at(addr(server), None).await
}

pub async fn open_ws_at(addr: SocketAddr, recv_buffer: Option<u32>) -> (Ws, Value) {
    let mut ws = ws_at(addr, "EIO=4&transport=websocket", recv_buffer).await.expect("websocket handshake");
    let open = text(&mut ws, 5000).await.expect("open packet");
    let data = json_after(&open, "0").unwrap_or_else(|| panic!("open packet: {open:?}"));
    (ws, data)
}

/// Sends CONNECT with `auth` and returns the raw answer (`40{...}` or `44{...}`).
pub async fn sio_connect_raw(ws: &mut Ws, auth: &Value) -> String {
    send(ws, &format!("40{auth}")).await;
    text_where(ws, 5000, |t| t.starts_with("40") || t.starts_with("44"))
        .await
        .unwrap_or_else(|s| panic!("no CONNECT answer: {s:?}"))
}

/// A websocket session connected to `/` with `auth`: the socket and its Socket.IO sid.
pub async fn sio_ws(server: &Server, auth: &Value) -> (Ws, String) {
    sio_ws_at(addr(server), auth, None).await
}

pub async fn sio_ws_at(addr: SocketAddr, auth: &Value, recv_buffer: Option<u32>) -> (Ws, String) {
    let (mut ws, _) = open_ws_at(addr, recv_buffer).await;
    let answer = sio_connect_raw(&mut ws, auth).await;
    let sid = json_after(&answer, "40").and_then(|v| v["sid"].as_str().map(String::from));
    (ws, sid.unwrap_or_else(|| panic!("CONNECT refused: {answer}")))
}

/// Emits `event:join` and waits for the snapshot.
pub async fn join(ws: &mut Ws, slug: &str) -> Value {
    send(ws, &format!("42[\"event:join\",\"{slug}\"]")).await;
    let snap = text_where(ws, 5000, |t| event(t).is_some_and(|(n, _)| n == "event:snapshot" || n == "error")).await;
    let snap = snap.unwrap_or_else(|s| panic!("no snapshot: {s:?}"));
    let (name, data) = event(&snap).expect("event");
    assert_eq!(name, "event:snapshot", "join refused: {data}");
    data
}

/// The data of an ACK packet with id `id` (`43<id>[...]`).
pub fn ack_data(packet: &str, id: u32) -> Option<Value> {
    json_after(packet, &format!("43{id}")).filter(Value::is_array)
}

pub fn admin_auth() -> Value {
    serde_json::json!({ "token": crate::common::admin_token() })
}

pub fn guest_auth(session: &str, slug: &str) -> Value {
    serde_json::json!({ "guestSessionId": session, "eventSlug": slug })
}

/// A reader that keeps up: counts the comments (numbered `<n>:...`) and their bytes, checks their
/// order, answers pings, and notes when its connection ends.
pub struct Reader {
    pub comments: Arc<AtomicUsize>,
    pub bytes: Arc<AtomicUsize>,
    pub in_order: Arc<AtomicBool>,
    pub closed: Arc<AtomicBool>,
}

impl Reader {
    pub fn spawn(mut ws: Ws) -> Reader {
        let r = Reader {
            comments: Arc::default(),
            bytes: Arc::default(),
            in_order: Arc::new(AtomicBool::new(true)),
            closed: Arc::default(),
        };
        let (comments, bytes, in_order, closed) =
            (r.comments.clone(), r.bytes.clone(), r.in_order.clone(), r.closed.clone());
        tokio::spawn(async move {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                        let _ = ws.send(Message::text("3")).await;
                    }
                    Some(Ok(Message::Text(t))) => {
                        let Some((name, data)) = event(t.as_str()) else { continue };
                        if name != "photo:comment" {
                            continue;
                        }
                        let seq = data["comment"]
                            .as_str()
                            .and_then(|c| c.split(':').next())
                            .and_then(|n| n.parse::<usize>().ok());
                        if seq != Some(comments.load(Ordering::Acquire)) {
                            in_order.store(false, Ordering::Release);
                        }
                        bytes.fetch_add(t.len(), Ordering::AcqRel);
                        comments.fetch_add(1, Ordering::AcqRel);
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        closed.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        });
        r
    }
}
