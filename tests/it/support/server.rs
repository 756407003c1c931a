//! Test harness: the real binary on a loopback port with a temp data dir, HTTP through reqwest,
//! and sockets through the `rust_socketio` client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const SECRET: &str = "test-secret-k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH";

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    config: Option<PathBuf>,
    extra_env: Vec<(String, String)>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(None, &[])
    }

    /// Starts with a TOML config (written to the data dir's parent) and extra environment.
    pub fn start_with(config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
        Server::start_in(None, config_toml, env)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"));
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(&self.data_dir)
            .env("NEXTAUTH_SECRET", SECRET)
            .env("RUST_LOG", std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("NODE_ENV")
            .env_remove("HAFI_ENV")
            .env_remove("HAFI_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = listening_url(&line) {
                    let _ = tx.send(url);
                }
            }
        });
        self.url = rx.recv_timeout(Duration::from_secs(20)).expect("server did not report its address");
        self.child = Some(child);
    }

    /// Starts with the data directory at `data_dir` (e.g. on a filesystem the test mounted).
    pub fn start_at(data_dir: PathBuf, config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
        Server::start_in(Some(data_dir), config_toml, env)
    }

    /// The data directory is `data_dir`, or `data` in a new temporary directory that also holds
    /// the config file.
    fn start_in(data_dir: Option<PathBuf>, config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = data_dir.unwrap_or_else(|| tmp.path().join("data"));
        let config = config_toml.map(|text| {
            let p = tmp.path().join("config.toml");
            std::fs::write(&p, text).expect("write config");
            p
        });
        let mut s = Server {
            child: None,
            url: String::new(),
            data_dir,
            _tmp: Some(tmp),
            config,
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        s.spawn();
        s
    }

    /// SIGTERM, then wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        for _ in 0..200 {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok().and_then(|s| s.code())
    }

    /// Waits up to `timeout` for the server to exit by itself; its exit code, or `None` if it is
    /// still running (or was killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGKILL: no chance to flush.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (gracefully) and starts again on the same data directory.
    pub fn restart(&mut self) {
        assert_eq!(self.stop(), Some(0), "server did not exit cleanly");
        self.spawn();
    }

    /// Starts again after `stop` (for provisioning the data directory in between).
    pub fn restart_after_stop(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The address of the "listening on http://ADDR" line, plain or inside a JSON log line.
pub fn listening_url(line: &str) -> Option<String> {
    const MARK: &str = "listening on http://";
    let at = line.find(MARK)? + MARK.len();
    let addr: String = line[at..].chars().take_while(|c| *c != '"' && !c.is_whitespace()).collect();
    (!addr.is_empty()).then(|| format!("http://{addr}"))
}

/// An HS256 token signed with the test secret.
pub fn token(user: &str, role: &str) -> String {
    let t = hafi_realtime::auth::Tokens::new(SECRET).expect("tokens");
    t.mint(user, role, Duration::from_secs(3600)).expect("mint").0
}

pub fn admin_token() -> String {
    token("admin-1", "ADMIN")
}

pub struct Http {
    pub base: String,
    client: reqwest::Client,
}

impl Http {
    pub fn new(server: &Server) -> Http {
        Http::with_base(&server.url)
    }

    pub fn with_base(base: &str) -> Http {
        Http { base: base.to_string(), client: reqwest::Client::new() }
    }

    /// Sends a request; returns status and JSON body (Null when empty or not JSON).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{}", self.base, path)).body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_event(&self, slug: &str, owner: Option<&str>) {
        let (st, body) = self
            .call(
                "POST",
                "/api/admin/events",
                Some(&admin_token()),
                Some(json!({"slug": slug, "name": slug, "ownerId": owner})),
            )
            .await;
        assert_eq!(st, 201, "create event: {body}");
    }

    pub async fn guest_session(&self, slug: &str) -> String {
        let (st, body) = self
            .call("POST", "/api/admin/guest-sessions", Some(&admin_token()), Some(json!({"eventSlug": slug})))
            .await;
        assert_eq!(st, 201, "guest session: {body}");
        body["guestSessionId"].as_str().expect("id").to_string()
    }
}

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

/// Waits until `count` reaches `n`; fails the test after `secs` seconds, naming `what`.
pub async fn wait_for_count(count: &std::sync::atomic::AtomicUsize, n: usize, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while count.load(std::sync::atomic::Ordering::Acquire) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} {what}",
            count.load(std::sync::atomic::Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
