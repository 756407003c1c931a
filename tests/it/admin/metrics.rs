//! `/metrics` parses as Prometheus text and follows clients; every per-IP, per-session and
//! per-room table is back near empty after many clients from many addresses came and went.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Server, Sock, admin_token};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// Parses the text format strictly enough to catch a malformed line; returns sample → value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(rest.starts_with("HELP ") || rest.starts_with("TYPE "), "bad comment line: {line}");
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            !metric.is_empty() && metric.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name.contains('{') {
            assert!(name.ends_with('}'), "bad labels: {line}");
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        out.insert(name.to_string(), v);
    }
    out
}

async fn scrape(server: &Server, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", server.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_clients() {
    let server = Server::start();
    let m = parse_metrics(&scrape(&server, None).await.1);
    assert_eq!(m["hafi_connections{transport=\"websocket\"}"], 0.0);
    assert_eq!(m["hafi_build_info{version=\"0.1.0\"}"], 1.0);
    let a = Sock::with_token(&server.url, &admin_token()).await;
    let b = Sock::with_token(&server.url, &admin_token()).await;
    a.emit("admin:join", serde_json::Value::Null).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = parse_metrics(&scrape(&server, None).await.1);
    assert_eq!(m["hafi_connections{transport=\"websocket\"}"], 2.0);
    assert_eq!(m["hafi_events_received_total{event=\"admin:join\"}"], 1.0);
    b.close().await;
    let mut now = 2.0;
    for _ in 0..40 {
        now = parse_metrics(&scrape(&server, None).await.1)["hafi_connections{transport=\"websocket\"}"];
        if now == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, 1.0);
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token() {
    let server = Server::start_with(None, &[("METRICS_TOKEN", "scrape-me-please")]);
    assert_eq!(scrape(&server, None).await.0, 401);
    assert_eq!(scrape(&server, Some("wrong")).await.0, 401);
    let (st, body) = scrape(&server, Some("scrape-me-please")).await;
    assert_eq!(st, 200);
    parse_metrics(&body);
}

/// A bare Engine.IO/Socket.IO guest from `source` that joins `slug`.
async fn raw_guest(
    addr: SocketAddr,
    source: [u8; 4],
    id: &str,
    slug: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((source, 0))).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"), stream)
            .await
            .unwrap();
    let mut step = 0;
    while let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("timely frames") {
        let Message::Text(t) = msg else { continue };
        let t = t.as_str();
        if t == "2" {
            ws.send(Message::text("3")).await.unwrap();
        } else if t.starts_with('0') && step == 0 {
            ws.send(Message::text(format!("40{{\"guestSessionId\":\"{id}\",\"eventSlug\":\"{slug}\"}}")))
                .await
                .unwrap();
            step = 1;
        } else if t.starts_with("40") && step == 1 {
            ws.send(Message::text(format!("42[\"event:join\",\"{slug}\"]"))).await.unwrap();
            step = 2;
        } else if t.contains("event:snapshot") {
            return ws;
        } else if t.starts_with("44") {
            panic!("refused: {t}");
        }
    }
    panic!("no snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_shrink_after_many_clients_from_many_addresses() {
    // Rooms stay in memory for `idle_evict` after their last member leaves.
    let server = Server::start_with(
        Some("[rooms]\nidle_evict = \"1s\"\n"),
        &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")],
    );
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::new();
    for a in 0..30u8 {
        for c in 0..4u8 {
            let id = format!("g{a}-{c}");
            held.push(raw_guest(addr, [127, 0, 1, 10 + a], &id, &format!("room-{a}-{}", c % 2)).await);
        }
    }
    let m = parse_metrics(&scrape(&server, None).await.1);
    println!("while connected: {:?}", m.iter().filter(|(k, _)| k.starts_with("hafi_table_keys")).collect::<Vec<_>>());
    assert!(m["hafi_table_keys{table=\"connections_per_ip\"}"] >= 30.0);
    assert_eq!(m["hafi_table_keys{table=\"presence_rooms\"}"], 60.0);
    assert_eq!(m["hafi_table_keys{table=\"session_sockets\"}"], 120.0);
    for mut ws in held {
        let _ = ws.close(None).await;
    }
    // Connections end at once; rate buckets are forgotten once refilled (swept every 5 s).
    let mut last = HashMap::new();
    for _ in 0..40 {
        last = parse_metrics(&scrape(&server, None).await.1);
        let busy: Vec<_> = last.iter().filter(|(k, v)| k.starts_with("hafi_table_keys") && **v > 1.0).collect();
        if busy.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let tables: Vec<_> = last.iter().filter(|(k, _)| k.starts_with("hafi_table_keys")).collect();
    println!("after: {tables:?}");
    for (k, v) in tables {
        // The scraping client itself holds one connection and one HTTP bucket.
        assert!(*v <= 1.0, "{k} still holds {v} keys");
    }
    assert_eq!(last["hafi_rooms_in_memory"], 0.0);
    assert_eq!(last["hafi_tcp_connections"], 1.0);
}
