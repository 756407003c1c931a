//! Sockets through the `rust_socketio` client: every event received lands in a channel, and the
//! test waits for what it expects with a bounded wait.

use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A `rust_socketio` client whose received events land in a channel.
pub struct Sock {
    pub client: Client,
    rx: mpsc::UnboundedReceiver<(String, Value)>,
    /// Events read while waiting for the handshake, delivered before the channel's.
    early: std::collections::VecDeque<(String, Value)>,
}

fn first_value(p: Payload) -> Value {
    #[allow(deprecated)]
    match p {
        Payload::Text(mut v) => {
            if v.is_empty() {
                Value::Null
            } else {
                v.swap_remove(0)
            }
        }
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Payload::Binary(_) => Value::Null,
    }
}

pub const CONNECT_ERROR: &str = "connect_error";

/// `TEST_RUST_TRANSPORT=any` lets the client start on polling and upgrade.
fn transport() -> rust_socketio::TransportType {
    match std::env::var("TEST_RUST_TRANSPORT").as_deref() {
        Ok("any") => rust_socketio::TransportType::Any,
        Ok("polling") => rust_socketio::TransportType::Polling,
        _ => rust_socketio::TransportType::Websocket,
    }
}

impl Sock {
    pub async fn connect(url: &str, auth: Value) -> Sock {
        let (tx, rx) = mpsc::unbounded_channel();
        let tx_any = tx.clone();
        let tx_err = tx.clone();
        let tx_conn = tx.clone();
        let tx_close = tx.clone();
        let client = ClientBuilder::new(url)
            .namespace("/")
            .auth(auth)
            .reconnect(false)
            .transport_type(transport())
            .on_any(move |ev, payload, _| {
                let tx = tx_any.clone();
                async move {
                    let _ = tx.send((String::from(ev), first_value(payload)));
                }
                .boxed()
            })
            .on(rust_socketio::Event::Error, move |payload, _| {
                let tx = tx_err.clone();
                async move {
                    let v = first_value(payload);
                    // Connect errors arrive as text with the packet's JSON after a prefix.
                    let (name, v) = match v.as_str().and_then(|s| s.split_once("ConnectError frame: ")) {
                        Some((_, rest)) => {
                            (CONNECT_ERROR.to_string(), serde_json::from_str(rest).unwrap_or(Value::Null))
                        }
                        None => ("error".to_string(), v),
                    };
                    let _ = tx.send((name, v));
                }
                .boxed()
            })
            .on(rust_socketio::Event::Close, move |_, _| {
                let tx = tx_close.clone();
                async move {
                    let _ = tx.send(("close".to_string(), Value::Null));
                }
                .boxed()
            })
            .on(rust_socketio::Event::Connect, move |_, _| {
                let tx = tx_conn.clone();
                async move {
                    let _ = tx.send(("connect".to_string(), Value::Null));
                }
                .boxed()
            })
            .connect()
            .await
            .expect("socket connect");
        let mut sock = Sock { client, rx, early: Default::default() };
        // Wait for the namespace handshake (CONNECT or CONNECT_ERROR) before anything is sent:
        // unlike socket.io-client, this client does not buffer emits until then.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, sock.rx.recv()).await {
                Ok(Some((name, _))) if name == "connect" => break,
                Ok(Some(item)) => {
                    let done = item.0 == CONNECT_ERROR;
                    sock.early.push_back(item);
                    if done {
                        break;
                    }
                }
                Ok(None) | Err(_) => panic!("no handshake answer within 5 s"),
            }
        }
        sock
    }

    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<(String, Value)> {
        if let Some(item) = self.early.pop_front() {
            return Some(item);
        }
        tokio::time::timeout_at(deadline, self.rx.recv()).await.ok().flatten()
    }

    pub async fn guest(url: &str, session: &str, slug: &str) -> Sock {
        Sock::connect(url, json!({"guestSessionId": session, "eventSlug": slug})).await
    }

    pub async fn with_token(url: &str, token: &str) -> Sock {
        Sock::connect(url, json!({"token": token})).await
    }

    pub async fn emit(&self, event: &str, data: Value) {
        self.client.emit(event, data).await.expect("emit");
    }

    /// The next `event` (skipping others) within `ms`, or panic.
    pub async fn expect(&mut self, event: &str, ms: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        let mut skipped = Vec::new();
        loop {
            match self.next(deadline).await {
                Some((name, v)) if name == event => return v,
                Some(other) => skipped.push(other),
                None => panic!("no {event} within {ms} ms; received instead: {skipped:?}"),
            }
        }
    }

    /// The next `event` whose payload satisfies `pred` within `ms`, or panic.
    pub async fn expect_where(&mut self, event: &str, ms: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        let mut skipped = Vec::new();
        loop {
            match self.next(deadline).await {
                Some((name, v)) if name == event && pred(&v) => return v,
                Some(other) => skipped.push(other),
                None => panic!("no matching {event} within {ms} ms; received instead: {skipped:?}"),
            }
        }
    }

    /// Asserts that no `event` arrives within `ms`.
    pub async fn expect_none(&mut self, event: &str, ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match self.next(deadline).await {
                Some((name, v)) if name == event => panic!("unexpected {event}: {v}"),
                Some(_) => continue,
                None => return,
            }
        }
    }

    /// Everything received within `ms`.
    pub async fn drain(&mut self, ms: u64) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        let mut out = Vec::new();
        while let Some(item) = self.next(deadline).await {
            out.push(item);
        }
        out
    }

    pub async fn join(&mut self, slug: &str) -> Value {
        self.emit("event:join", json!(slug)).await;
        self.expect("event:snapshot", 5000).await
    }

    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}
