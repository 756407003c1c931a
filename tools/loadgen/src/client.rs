//! The client side of Engine.IO 4 / Socket.IO 5 over a raw websocket, shared by the scenarios:
//! connect from one of the loopback source addresses, handshake, join a room, and read a joined
//! connection until told to stop. Events are recognised by their text, without a JSON parser, so
//! that the load generator's own CPU stays small beside the server's.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::cli::Common;

pub type Ws = WebSocketStream<TcpStream>;

pub struct Target {
    pub server: SocketAddr,
    url: String,
    pub sources: Vec<Ipv4Addr>,
    ws_cfg: WebSocketConfig,
    pub conn_timeout: Duration,
}

impl Target {
    pub fn new(c: &Common) -> Target {
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
pub enum Fail {
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
    pub fn key(&self) -> String {
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
    pub fn is_refusal(&self) -> bool {
        matches!(self, Fail::Http(_) | Fail::Refused(_) | Fail::JoinError(_))
    }
}

pub fn ws_fail(e: WsError) -> Fail {
    match e {
        WsError::Http(r) => Fail::Http(r.status().as_u16()),
        WsError::Io(e) => Fail::Tcp(e.kind()),
        e => Fail::Ws(e.to_string()),
    }
}

/// The event name of a Socket.IO EVENT packet `42["name",...]` (no namespace, no ack id).
pub fn event_name(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("42[\"")?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

/// The string value of `"key":"..."` in a small JSON text, without parsing it.
pub fn json_str_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = s.find(&pat)? + pat.len();
    let end = s[start..].find('"')?;
    Some(&s[start..start + end])
}

pub async fn next_text(ws: &mut Ws) -> Result<Utf8Bytes, Fail> {
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

pub async fn pong(ws: &mut Ws) -> Result<(), Fail> {
    ws.send(Message::Text(Utf8Bytes::from_static("3"))).await.map_err(ws_fail)
}

/// TCP connect from source address `src`, websocket upgrade, Engine.IO open, Socket.IO CONNECT.
pub async fn open(t: &Target, src_idx: usize, auth: &str) -> Result<Ws, Fail> {
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
pub async fn join(ws: &mut Ws, slug: &str) -> Result<(), Fail> {
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

pub fn guest_auth(session: &str, slug: &str) -> String {
    format!("{{\"guestSessionId\":\"{session}\",\"eventSlug\":\"{slug}\"}}")
}

pub async fn open_and_join(t: &Target, src_idx: usize, session: &str, slug: &str) -> Result<Ws, Fail> {
    let fut = async {
        let mut ws = open(t, src_idx, &guest_auth(session, slug)).await?;
        join(&mut ws, slug).await?;
        Ok(ws)
    };
    tokio::time::timeout(t.conn_timeout, fut).await.unwrap_or(Err(Fail::Timeout))
}

/// Reads until `stop` fires (then closes, returns true) or the server ends the connection
/// (returns false). Answers pings; hands every event packet to `on_event`.
pub async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, mut on_event: impl FnMut(&str)) -> bool {
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

#[derive(Default)]
pub struct Fails(Mutex<BTreeMap<String, u64>>);

impl Fails {
    pub fn add(&self, f: &Fail) {
        *self.0.lock().unwrap().entry(f.key()).or_default() += 1;
    }
    pub fn add_n(&self, k: &str, n: u64) {
        *self.0.lock().unwrap().entry(k.to_string()).or_default() += n;
    }
    pub fn json(&self) -> Value {
        json!(self.0.lock().unwrap().clone())
    }
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}
