//! A hostile network against the real binary: silent, half-sent and idle connections, IPv6
//! clients with a whole /64, and `X-Forwarded-For` split over lines. Guest-session and
//! access-code abuse is in `access`, login floods in `admin::login`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, post_as};
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
