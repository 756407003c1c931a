//! Crowds and queues, with raw Engine.IO websockets: a venue's guests re-joining all at once, a
//! room of two thousand phones, phones that stop reading while their room is busy, and the
//! bounds on what waits to be sent to each socket and to all of them together.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::Server;

mod crowd;
mod defaults;
mod shed;
mod stadium;
mod total;

type Ws = WebSocketStream<TcpStream>;

fn addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().expect("server address")
}

/// The next text frame within 5 s; `None` when the connection ended.
async fn next_text(ws: &mut Ws) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.expect("no frame within 5 s") {
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// A Socket.IO event frame (`42[name, data]`) as its name and data.
fn event(frame: &str) -> Option<(String, Value)> {
    let mut v: Vec<Value> = serde_json::from_str(frame.strip_prefix("42")?).ok()?;
    if v.is_empty() {
        return None;
    }
    let data = if v.len() > 1 { v.swap_remove(1) } else { Value::Null };
    Some((v[0].as_str()?.to_string(), data))
}

/// Opens a websocket (with a small receive buffer when asked), then the Engine.IO open packet,
/// `40{auth}` and the CONNECT answer.
async fn connect(addr: SocketAddr, auth: &Value, recv_buffer: Option<u32>) -> Ws {
    let sock = TcpSocket::new_v4().expect("socket");
    if let Some(n) = recv_buffer {
        sock.set_recv_buffer_size(n).expect("receive buffer");
    }
    let stream = sock.connect(addr).await.expect("tcp connect");
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::client_async(url, stream))
        .await
        .expect("websocket handshake in time")
        .expect("websocket handshake");
    let open = next_text(&mut ws).await.expect("open packet");
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text(format!("40{auth}"))).await.expect("send CONNECT");
    loop {
        let m = next_text(&mut ws).await.expect("CONNECT answer");
        if m == "2" {
            ws.send(Message::text("3")).await.expect("pong");
        } else if m.starts_with("40") {
            return ws;
        } else {
            assert!(!m.starts_with("44"), "refused: {m}");
        }
    }
}

/// Presence messages a socket received: event name and `guestCount`.
type Presence = Vec<(String, u64)>;

fn presence(name: &str, data: &Value) -> Option<(String, u64)> {
    matches!(name, "guest:joined" | "guest:left")
        .then(|| (name.to_string(), data["guestCount"].as_u64().unwrap_or(u64::MAX)))
}

/// Sends `event:join` and reads up to the snapshot; returns it and the presence messages before it.
async fn join(ws: &mut Ws, slug: &str) -> (Value, Presence) {
    ws.send(Message::text(format!("42[\"event:join\",\"{slug}\"]"))).await.expect("send join");
    let mut before = Vec::new();
    loop {
        let m = next_text(ws).await.expect("connection closed while joining");
        if m == "2" {
            ws.send(Message::text("3")).await.expect("pong");
            continue;
        }
        let Some((name, data)) = event(&m) else { continue };
        if name == "event:snapshot" {
            return (data, before);
        }
        assert_ne!(name, "error", "join refused: {data}");
        before.extend(presence(&name, &data));
    }
}

/// Waits until every reader has read `sent` comments; fails after 10 s, naming the readers' counts
/// and `context` (what else the test saw).
async fn caught_up(readers: &[crate::support::raw::Reader], sent: usize, context: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while readers.iter().any(|r| r.comments.load(std::sync::atomic::Ordering::Acquire) < sent) {
        let counts: Vec<_> = readers.iter().map(|r| r.comments.load(std::sync::atomic::Ordering::Acquire)).collect();
        assert!(Instant::now() < deadline, "readers fell behind: {counts:?} of {sent}; {}", context());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
