//! A hostile network against the real binary: silent and idle connections, IPv6 clients with
//! a whole /64, `X-Forwarded-For` split over lines, guest-session and access-code abuse, login
//! floods, and the small promises around them (no caching of API answers, the server's own
//! origin). The token lifetime and `check`'s warning are in `cli.rs`, JSON logs in `ops.rs`.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Http, Server, Sock, admin_token};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn server_addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().expect("server address")
}

async fn connect_from(server: &Server, source: [u8; 4]) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((source, 0))).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sock.connect(server_addr(server)))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Reads one HTTP response: status, lower-cased head, body (sized by Content-Length).
async fn read_response(s: &mut TcpStream) -> Option<(u16, String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..1000 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return Some((status, head, body));
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    None
}

/// How long until the server closes `s` (EOF or reset), reading and dropping whatever it sends;
/// `None` if it is still open after `limit`.
async fn closed_within(mut s: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let deadline = tokio::time::Instant::from_std(since + limit);
    let mut chunk = [0u8; 1024];
    for _ in 0..1000 {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
    None
}

fn forwarded(ip: &str) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-forwarded-for", ip.parse().unwrap());
    h
}

/// POST with a JSON body, as a client behind the loopback proxy whose address is `ip`.
async fn post_as(c: &reqwest::Client, url: String, ip: &str, body: Value) -> reqwest::Response {
    c.post(url).headers(forwarded(ip)).json(&body).timeout(Duration::from_secs(30)).send().await.expect("request")
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"));
    c.env_remove("NODE_ENV")
        .env_remove("HAFI_ENV")
        .env_remove("HAFI_CONFIG")
        .env_remove("NEXTAUTH_SECRET")
        .env_remove("LOG_FORMAT")
        .env("RUST_LOG", "warn");
    c
}

/// A server whose data directory holds the admin user `dana` (added by the CLI while stopped).
fn server_with_admin(config: Option<&str>) -> Server {
    let mut server = Server::start_with(config, &[]);
    server.stop();
    let mut child = bin()
        .args(["admin", "add", "dana", "--password-stdin", "--data-dir"])
        .arg(server.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"dana's password\n").unwrap();
    assert!(child.wait().unwrap().success(), "admin add failed");
    server.restart_after_stop();
    server
}

const DANA: &str = "dana's password";

// 1. Silent connections are closed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_idle_connections_are_closed_and_free_their_place() {
    // Loopback is not a proxy here, so each connection counts against its source address at once.
    let server = Server::start_with(
        Some("[limits]\nheader_read_timeout = \"2s\"\nmax_connections_per_ip = 4\n"),
        &[("TRUSTED_PROXIES", "10.9.9.9/32")],
    );
    let src = [127, 0, 0, 7];
    let silent = connect_from(&server, src).await;
    let mut half = connect_from(&server, src).await;
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nAccept: ").await.unwrap();
    let t_half = Instant::now();
    let mut idle = connect_from(&server, src).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (st, head, _) = read_response(&mut idle).await.expect("response on the kept-alive connection");
    assert_eq!(st, 200);
    assert!(!head.contains("connection: close"), "kept alive: {head}");
    let t_idle = Instant::now();
    let silent2 = connect_from(&server, src).await;
    let t_silent = Instant::now();

    // Four held: a fifth from the same address is refused.
    let mut fifth = connect_from(&server, src).await;
    let (st, _, body) = read_response(&mut fifth).await.expect("refusal");
    assert_eq!(st, 429, "{body}");

    let limit = Duration::from_secs(2 + 3);
    let (a, b, c, d) = tokio::join!(
        closed_within(silent, t_silent, limit),
        closed_within(half, t_half, limit),
        closed_within(idle, t_idle, limit),
        closed_within(silent2, t_silent, limit),
    );
    for (what, closed) in [("silent", a), ("half a request head", b), ("idle keep-alive", c), ("second silent", d)] {
        let after = closed.unwrap_or_else(|| panic!("{what} connection still open after {limit:?}"));
        assert!(after >= Duration::from_millis(1000), "{what} closed after {after:?}, before the timeout");
    }

    // Their places are free again.
    let mut served = None;
    for _ in 0..40 {
        let mut s = connect_from(&server, src).await;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        match read_response(&mut s).await {
            Some((200, _, _)) => {
                served = Some(200);
                break;
            }
            other => served = other.map(|r| r.0),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, Some(200), "the address was not served again after its connections were closed");
}

// 2. IPv6 grouping.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_share_the_limits_of_their_64() {
    let server = Server::start();
    let c = reqwest::Client::new();
    let url = format!("{}/api/admin/login", server.url);
    let mut statuses = Vec::new();
    for n in 1..=7 {
        let r = post_as(
            &c,
            url.clone(),
            &format!("2001:db8:1:2::{n:x}"),
            json!({"username": "dana", "password": "wrong password"}),
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429, 429], "seven addresses of one /64 share one login bucket");
    let other =
        post_as(&c, url.clone(), "2001:db8:1:3::1", json!({"username": "dana", "password": "wrong password"})).await;
    assert_eq!(other.status().as_u16(), 401, "another /64 has its own bucket");
    // IPv4-mapped IPv6 is the IPv4 client.
    for _ in 0..5 {
        post_as(&c, url.clone(), "198.51.100.4", json!({"username": "dana", "password": "wrong password"})).await;
    }
    let mapped =
        post_as(&c, url, "::ffff:198.51.100.4", json!({"username": "dana", "password": "wrong password"})).await;
    assert_eq!(mapped.status().as_u16(), 429);
}

// 3. X-Forwarded-For over several lines.

async fn raw_login(server: &Server, forwarded_lines: &[&str]) -> u16 {
    let body = json!({"username": "dana", "password": "wrong password"}).to_string();
    let mut req = format!(
        "POST /api/admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for l in forwarded_lines {
        req.push_str(&format!("X-Forwarded-For: {l}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req.push_str(&body);
    let mut s = connect_from(server, [127, 0, 0, 1]).await;
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut s).await.expect("login answer").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_lines_are_read_as_one_list() {
    let server = Server::start();
    let c = reqwest::Client::new();
    // 203.0.113.50 spends its five logins.
    for _ in 0..5 {
        let r = post_as(
            &c,
            format!("{}/api/admin/login", server.url),
            "203.0.113.50",
            json!({"username": "dana", "password": "x"}),
        )
        .await;
        assert_eq!(r.status().as_u16(), 401);
    }
    // The client wrote a fresh address on the first line; the proxy appended the real one.
    assert_eq!(raw_login(&server, &["198.51.100.1", "203.0.113.50"]).await, 429, "the proxy's line names the client");
    // The client claims the spent address; the proxy's line names a fresh client.
    assert_eq!(raw_login(&server, &["203.0.113.50", "198.51.100.2"]).await, 401, "the client's own line was believed");
    // A trusted hop on its own line is skipped.
    assert_eq!(raw_login(&server, &["198.51.100.3", "203.0.113.50", "127.0.0.9"]).await, 429);
}

// 4. Guest sessions and access codes.

async fn access(c: &reqwest::Client, server: &Server, slug: &str, ip: &str, code: Option<&str>) -> reqwest::Response {
    post_as(c, format!("{}/api/gallery/{slug}/access", server.url), ip, json!({ "access_code": code })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_guest_sessions_per_ip_burst_then_429() {
    let server =
        Server::start_with(Some("[limits]\ngallery_access_per_ip = { rate = 1, per = \"1h\", burst = 3 }\n"), &[]);
    Http::new(&server).create_event("open", None).await;
    let c = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(access(&c, &server, "open", "198.51.100.10", None).await.status().as_u16(), 201);
    }
    let r = access(&c, &server, "open", "198.51.100.10", None).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(retry_after(&r) > 60, "Retry-After {} for a bucket of one per hour", retry_after(&r));
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(
        access(&c, &server, "open", "198.51.100.11", None).await.status().as_u16(),
        201,
        "another client is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_admit_a_venue_burst_of_100_sessions_then_refuse() {
    let server = Server::start();
    Http::new(&server).create_event("venue", None).await;
    let c = reqwest::Client::new();
    let ip = "198.51.100.77";
    // The HTTP API bucket (burst 40, 20/s) is respected: 40 at once, then 8 every half second.
    let mut statuses = Vec::new();
    let mut sent = 0;
    let started = Instant::now();
    while sent < 100 {
        let wave = if sent == 0 { 40 } else { 8.min(100 - sent) };
        let calls = (0..wave).map(|_| access(&c, &server, "venue", ip, None));
        for r in futures_util::future::join_all(calls).await {
            statuses.push(r.status().as_u16());
        }
        sent += wave;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let r = access(&c, &server, "venue", ip, None).await;
    assert_eq!(r.status().as_u16(), 429, "101st session within {:?}", started.elapsed());
    // The session bucket's wait (minutes), not the HTTP bucket's (under a second).
    assert!(retry_after(&r) >= 2, "Retry-After {}", retry_after(&r));
    assert_eq!(access(&c, &server, "venue", "198.51.100.78", None).await.status().as_u16(), 201);
}

const CODE_LIMITS: &str = "[limits]\naccess_code_failures_per_ip = { rate = 1, per = \"1h\", burst = 4 }\naccess_code_failures_per_event = { rate = 1, per = \"1h\", burst = 6 }\n";

async fn coded_event(server: &Server, slug: &str) {
    let (st, body) = Http::new(server)
        .call("POST", "/api/admin/events", Some(&admin_token()), Some(json!({"slug": slug, "accessCode": "ZX81AB"})))
        .await;
    assert_eq!(st, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_per_ip_then_even_the_right_code_is_refused() {
    let server = Server::start_with(Some(CODE_LIMITS), &[]);
    coded_event(&server, "coded").await;
    let c = reqwest::Client::new();
    let guesser = "198.51.100.20";
    for guess in ["AAAAAA", "BBBBBB", "CCCCCC", "DDDDDD"] {
        assert_eq!(access(&c, &server, "coded", guesser, Some(guess)).await.status().as_u16(), 403);
    }
    let wrong = access(&c, &server, "coded", guesser, Some("EEEEEE")).await;
    assert_eq!(wrong.status().as_u16(), 429);
    let right = access(&c, &server, "coded", guesser, Some("ZX81AB")).await;
    assert_eq!(right.status().as_u16(), 429, "the right code must be refused too while limited");
    assert!(retry_after(&right) > 60, "Retry-After {}", retry_after(&right));
    // Another client, and the event as a whole, are not limited yet.
    let other = access(&c, &server, "coded", "198.51.100.21", Some("zx81ab")).await;
    assert_eq!(other.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_per_event_trip_once_and_tell_the_admins() {
    let server = Server::start_with(Some(CODE_LIMITS), &[]);
    coded_event(&server, "coded").await;
    coded_event(&server, "coded-two").await;
    let mut admin = Sock::with_token(&server.url, &admin_token()).await;
    admin.emit("admin:join", Value::Null).await;
    admin.emit("admin:notification", json!({"type": "ready", "data": null})).await;
    admin.expect_where("admin:notification", 5000, |v| v["type"] == "ready").await;
    let c = reqwest::Client::new();
    // Six wrong codes from three clients (each under its own limit) empty the event's bucket.
    for (i, ip) in ["198.51.100.31", "198.51.100.32", "198.51.100.33"].iter().enumerate() {
        for j in 0..2 {
            let guess = format!("AAAA{i}{j}");
            assert_eq!(access(&c, &server, "coded", ip, Some(&guess)).await.status().as_u16(), 403);
        }
    }
    let security = |events: &[(String, Value)]| {
        events.iter().filter(|(n, v)| n == "admin:notification" && v["type"] == "security").count()
    };
    assert_eq!(security(&admin.drain(300).await), 0, "no notification before the limit trips");
    // A fresh client with the right code: the event is limited.
    let r = access(&c, &server, "coded", "198.51.100.34", Some("ZX81AB")).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(retry_after(&r) > 60);
    let note = admin.expect_where("admin:notification", 5000, |v| v["type"] == "security").await;
    assert_eq!(note["data"]["eventSlug"], "coded", "{note}");
    assert!(note["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{note}");
    assert!(note["timestamp"].is_string());
    // Still refused, but the admins heard once.
    assert_eq!(access(&c, &server, "coded", "198.51.100.35", Some("BBBBBB")).await.status().as_u16(), 429);
    assert_eq!(security(&admin.drain(500).await), 0, "one notification per trip");
    // Another event is not affected.
    assert_eq!(access(&c, &server, "coded-two", "198.51.100.35", Some("ZX81AB")).await.status().as_u16(), 201);
}

// 5. Login cannot exhaust memory.

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_answered_at_once_within_bounded_memory() {
    let server = server_with_admin(None);
    let pid = server.pid().expect("pid");
    let before = rss_kb(pid);
    assert!(before > 0);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..6000 {
                peak = peak.max(rss_kb(pid));
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    let c = reqwest::Client::new();
    let url = format!("{}/api/admin/login", server.url);
    let calls = (1..=60).map(|n| {
        let password = if n % 2 == 0 { DANA } else { "wrong password" };
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c
                .post(url)
                .headers(forwarded(&format!("198.18.0.{n}")))
                .json(&json!({"username": "dana", "password": password}))
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match r {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Ok((status, retry, body))
                }
                Err(e) => Err(e.to_string()),
            }
        }
    });
    let results = futures_util::future::join_all(calls).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let mut busy = 0;
    let mut checked = 0;
    for r in &results {
        let (status, retry, body) = r.as_ref().unwrap_or_else(|e| panic!("a login was not answered: {e}"));
        match status {
            200 | 401 => checked += 1,
            503 => {
                busy += 1;
                assert_eq!(retry.as_deref(), Some("1"), "503 without Retry-After: 1");
                assert!(body["error"].is_string(), "{body}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(busy >= 1, "60 logins at once, none refused: the checks are not bounded");
    assert!(checked >= 1, "no login was checked");
    let grown_mb = peak.saturating_sub(before) / 1024;
    assert!(grown_mb < 150, "RSS grew by {grown_mb} MB (from {} MB to {} MB)", before / 1024, peak / 1024);
    // Served normally once the flood is over.
    let (st, _) = Http::new(&server)
        .call("POST", "/api/admin/login", None, Some(json!({"username": "dana", "password": DANA})))
        .await;
    assert_eq!(st, 200);
}

// 6. Small ones.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_are_never_cached() {
    let server = server_with_admin(Some("[limits]\nhttp_per_ip = { rate = 1, per = \"1h\", burst = 6 }\n"));
    let c = reqwest::Client::new();
    let ok = c
        .post(format!("{}/api/admin/login", server.url))
        .json(&json!({"username": "dana", "password": DANA}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let wrong = c
        .post(format!("{}/api/admin/login", server.url))
        .json(&json!({"username": "dana", "password": "nope nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(wrong.headers()["cache-control"], "no-store");
    let unauthorized = c.get(format!("{}/api/admin/events", server.url)).send().await.unwrap();
    assert_eq!(
        (unauthorized.status().as_u16(), &unauthorized.headers()["cache-control"]),
        (401, &"no-store".parse().unwrap())
    );
    let missing = c.get(format!("{}/api/nope", server.url)).send().await.unwrap();
    assert_eq!((missing.status().as_u16(), &missing.headers()["cache-control"]), (404, &"no-store".parse().unwrap()));
    let big = c.post(format!("{}/api/admin/events", server.url)).body("x".repeat(70_000)).send().await.unwrap();
    assert_eq!((big.status().as_u16(), &big.headers()["cache-control"]), (413, &"no-store".parse().unwrap()));
    // The guard's own refusal (the HTTP bucket of six is spent now).
    let mut last = None;
    for _ in 0..3 {
        last = Some(c.get(format!("{}/api/admin/events", server.url)).send().await.unwrap());
    }
    let limited = last.unwrap();
    assert_eq!((limited.status().as_u16(), &limited.headers()["cache-control"]), (429, &"no-store".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_origin_is_the_own_origin_instead_of_the_host() {
    let c = reqwest::Client::new();
    let poll = |url: &str, origin: &str| {
        c.get(format!("{url}/socket.io/?EIO=4&transport=polling")).header("origin", origin.to_string()).send()
    };
    // Without it, an Origin matching the Host header is our own.
    let plain = Server::start();
    let host_origin = plain.url.clone();
    assert_eq!(poll(&plain.url, &host_origin).await.unwrap().status().as_u16(), 200);

    let server = Server::start_with(Some("[auth]\npublic_origin = \"https://live.example-studio.com\"\n"), &[]);
    let own = poll(&server.url, "https://live.example-studio.com").await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(own.headers()["access-control-allow-origin"], "https://live.example-studio.com");
    let rebound = poll(&server.url, &server.url).await.unwrap();
    assert_eq!(rebound.status().as_u16(), 403, "an Origin that only matches the Host header");
    assert_eq!(
        poll(&server.url, "http://localhost:3000").await.unwrap().status().as_u16(),
        200,
        "allowed origins still are"
    );
}
