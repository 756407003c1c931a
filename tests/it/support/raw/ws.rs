//! Raw websockets to `/socket.io/`: frames as the client reads them, the Engine.IO and
//! Socket.IO handshakes, and joining a room; every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Ws, addr, event, json_after};
use crate::support::Server;

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
    serde_json::json!({ "token": crate::support::admin_token() })
}

pub fn guest_auth(session: &str, slug: &str) -> Value {
    serde_json::json!({ "guestSessionId": session, "eventSlug": slug })
}
