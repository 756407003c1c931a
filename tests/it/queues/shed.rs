//! A phone that stops reading while its room is busy (a websocket from the start, or one upgraded
//! from polling) is shed, with its TCP connection closed, while the others get everything.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Ws, addr, connect, join, next_text};
use crate::support::raw::Reader;
use crate::support::{Http, Server, admin_token};

/// Sockets shed as slow consumers so far, from `/metrics`.
async fn shed_count(http: &reqwest::Client, server: &Server) -> u64 {
    let text =
        http.get(format!("{}/metrics", server.url)).send().await.expect("metrics").text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("hafi_connections_refused_total") && l.contains("reason=\"slow_consumer\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|n| n as u64)
        .unwrap_or(0)
}

const FLOOD_LIMITS: &str = "[limits.events]\nadmin = { rate = 5000, per = \"1s\", burst = 5000 }\n";
const ROUND: usize = 40;
const MAX_ROUNDS: usize = 250;

/// A socket that starts on long-polling and upgrades to a websocket, as socket.io-client does by
/// default; only the websocket's TCP connection gets the small receive buffer.
async fn connect_upgraded(addr: SocketAddr, auth: &Value, recv_buffer: u32) -> Ws {
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
    let open = http.get(&base).send().await.expect("polling handshake").text().await.unwrap_or_default();
    let sid = open
        .strip_prefix('0')
        .and_then(|o| serde_json::from_str::<Value>(o).ok())
        .and_then(|o| o["sid"].as_str().map(String::from));
    let sid = sid.unwrap_or_else(|| panic!("open packet: {open}"));
    let poll = format!("{base}&sid={sid}");
    assert_eq!(http.post(&poll).body(format!("40{auth}")).send().await.expect("CONNECT").status().as_u16(), 200);
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = http.get(&poll).send().await.expect("poll").text().await.unwrap_or_default();
        for packet in answer.split('\x1e') {
            if packet == "2" {
                http.post(&poll).body("3").send().await.expect("pong");
            }
        }
        let connected = answer.split('\x1e').any(|p| p.starts_with("40"));
        answers.push(answer);
        if connected {
            break;
        }
    }
    assert!(answers.last().is_some_and(|a| a.split('\x1e').any(|p| p.starts_with("40"))), "{answers:?}");
    let sock = TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(recv_buffer).expect("receive buffer");
    let stream = sock.connect(addr).await.expect("tcp connect");
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&sid={sid}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.expect("websocket upgrade");
    ws.send(Message::text("2probe")).await.expect("probe");
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("3probe"));
    ws.send(Message::text("5")).await.expect("upgrade");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_shed_and_its_tcp_closed_while_the_others_get_everything() {
    let _heavy = crate::support::heavy().await;
    shed_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_upgraded_from_polling_that_stops_reading_has_its_websocket_closed() {
    let _heavy = crate::support::heavy().await;
    shed_case(true).await;
}

/// Three readers and one that stops reading (a websocket from the start, or one upgraded from
/// polling) in a room that an admin floods with 2 KB comments.
async fn shed_case(upgraded: bool) {
    let server = Server::start_with(Some(FLOOD_LIMITS), &[]);
    let http = Http::new(&server);
    http.create_event("gala", None).await;
    let guest = |session: String| json!({"guestSessionId": session, "eventSlug": "gala"});

    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(addr(&server), &guest(http.guest_session("gala").await), None).await;
        join(&mut ws, "gala").await;
        readers.push(Reader::spawn(ws));
    }
    let paused_auth = guest(http.guest_session("gala").await);
    let mut paused = if upgraded {
        connect_upgraded(addr(&server), &paused_auth, 4096).await
    } else {
        connect(addr(&server), &paused_auth, Some(4096)).await
    };
    join(&mut paused, "gala").await;
    // From here on nothing reads `paused` until the server has had to close it.

    let admin = connect(addr(&server), &json!({"token": admin_token()}), None).await;
    let (mut flood, mut admin_rx) = admin.split();
    let admin_errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let errors = admin_errors.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = admin_rx.next().await {
            if let Message::Text(t) = m
                && t.as_str().contains("\"error\"")
            {
                errors.lock().unwrap().push(t.as_str().to_string());
            }
        }
    });

    // Metrics from another loopback address, so its HTTP bucket is not the guests'.
    let metrics = reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, 7])).build().unwrap();
    let filler = "x".repeat(1990);
    let mut sent = 0usize;
    let mut shed_seen = None;
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    for _ in 0..MAX_ROUNDS {
        for _ in 0..ROUND {
            let comment = format!("{sent}:{filler}");
            let frame = json!(["photo:comment", {"eventSlug": "gala", "photo_id": "p1", "comment": comment}]);
            flood.send(Message::text(format!("42{frame}"))).await.expect("flood");
            sent += 1;
        }
        // The normal readers keep up: each round waits until they have it all.
        super::caught_up(&readers, sent, || format!("admin errors {:?}", admin_errors.lock().unwrap())).await;
        if last_poll.elapsed() >= Duration::from_millis(100) {
            last_poll = Instant::now();
            if shed_count(&metrics, &server).await >= 1 {
                shed_seen = Some(Instant::now());
                break;
            }
        }
    }
    let shed_seen = shed_seen.unwrap_or_else(|| panic!("no slow consumer shed after {sent} comments of 2 KB"));
    let deadline = shed_seen + Duration::from_secs(5);

    // Without reading a byte: the server must have closed the connection (a reset).
    let reset = loop {
        if let Some(err) = paused.get_ref().take_error().expect("SO_ERROR") {
            break err;
        }
        assert!(Instant::now() < deadline, "paused reader's TCP connection still open 5 s after it was shed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let closed_after = shed_seen.elapsed();
    assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset, "{reset}");
    // Reading again: what was buffered, then the end, within the same deadline.
    let mut frames = 0usize;
    let end = loop {
        match tokio::time::timeout_at(deadline, paused.next()).await {
            Err(_) => panic!("paused reader still receiving 5 s after it was shed ({frames} frames read)"),
            Ok(Some(Ok(Message::Close(_)))) => break "close frame".to_string(),
            Ok(Some(Ok(_))) => frames += 1,
            Ok(Some(Err(e))) => break format!("error: {e}"),
            Ok(None) => break "end of stream".to_string(),
        }
    };
    println!(
        "shed seen after {sent} comments; reset observed {closed_after:?} later; then {frames} buffered frames and {end}"
    );

    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.comments.load(Ordering::Acquire), sent, "reader {i} missed comments");
        assert!(r.in_order.load(Ordering::Acquire), "reader {i} got comments out of order");
        assert!(!r.closed.load(Ordering::Acquire), "reader {i} was disconnected");
    }
    assert!(admin_errors.lock().unwrap().is_empty(), "{:?}", admin_errors.lock().unwrap());
}
