//! Raw Engine.IO 4 / Socket.IO 5 clients for the conformance tests: long-polling through
//! reqwest, websockets through tokio-tungstenite. They speak the wire format byte for byte, so
//! a test asserts exactly what a client receives; every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;

use crate::support::Server;

mod reader;
mod ws;

pub use reader::Reader;
pub use ws::*;

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
