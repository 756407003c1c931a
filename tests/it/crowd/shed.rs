//! Crowds, with raw Engine.IO websockets: a venue's guests re-joining all at once get coalesced
//! presence messages, and a phone that stops reading while its room is busy is shed, with its
//! TCP connection closed, while the others get everything.

mod common;
#[path = "protocol/support.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Http, Server, admin_token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use support::Reader;

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

// ------------------------------------------------------------------------------------------------
// A reader that stops reading
// ------------------------------------------------------------------------------------------------

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
    shed_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_upgraded_from_polling_that_stops_reading_has_its_websocket_closed() {
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while readers.iter().any(|r| r.comments.load(Ordering::Acquire) < sent) {
            let counts: Vec<_> = readers.iter().map(|r| r.comments.load(Ordering::Acquire)).collect();
            assert!(
                Instant::now() < deadline,
                "normal readers fell behind: {counts:?} of {sent}; admin errors {:?}",
                admin_errors.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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

// ------------------------------------------------------------------------------------------------
// A crowd re-joining at once
// ------------------------------------------------------------------------------------------------

/// What one guest of the crowd saw.
struct Seen {
    snapshot_count: u64,
    /// Presence messages before its snapshot (its own `guest:joined` last).
    before: Presence,
    /// Presence messages after its snapshot.
    after: Presence,
    disconnected: bool,
}

/// Returns what the guest saw, and its connection still open: one guest closing must not show
/// up as a `guest:left` in another's record.
async fn crowd_guest(
    server: SocketAddr,
    i: usize,
    joined: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> (Seen, Option<Ws>) {
    let auth = json!({"guestSessionId": format!("crowd-guest-{i}"), "eventSlug": "reunion"});
    let mut ws = connect(server, &auth, None).await;
    let (snapshot, before) = join(&mut ws, "reunion").await;
    joined.fetch_add(1, Ordering::AcqRel);
    let mut seen = Seen {
        snapshot_count: snapshot["guestCount"].as_u64().unwrap_or(0),
        before,
        after: Vec::new(),
        disconnected: false,
    };
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    let _ = ws.send(Message::text("3")).await;
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some((name, data)) = event(t.as_str()) {
                        seen.after.extend(presence(&name, &data));
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    seen.disconnected = true;
                    return (seen, None);
                }
            },
            _ = stop.changed() => return (seen, Some(ws)),
        }
    }
}

const CROWD_LIMITS: &str =
    "[limits]\nmax_connections_per_ip = 1000\nconnect_per_ip = { rate = 1000, per = \"1s\", burst = 1000 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_rejoining_at_once_gets_coalesced_presence_ending_on_the_final_count() {
    const G: usize = 200;
    let server = Server::start_with(Some(CROWD_LIMITS), &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    Http::new(&server).create_event("reunion", None).await;
    let joined = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut guests = Vec::new();
    for i in 0..G {
        guests.push(tokio::spawn(crowd_guest(addr(&server), i, joined.clone(), stop_rx.clone())));
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    common::wait_for_count(&joined, G, 30, "guests joined").await;
    let all_joined = started.elapsed();
    // Long enough for the last window to end and send.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx.send(true).unwrap();

    let mut total = 0usize;
    let mut open = Vec::new();
    for (i, g) in guests.into_iter().enumerate() {
        let (seen, ws) =
            tokio::time::timeout(Duration::from_secs(5), g).await.expect("guest task ends").expect("guest task");
        open.push(ws);
        assert!(!seen.disconnected, "guest {i} was disconnected");
        let own = seen.before.last().unwrap_or_else(|| panic!("guest {i} got no guest:joined before its snapshot"));
        assert_eq!(
            own,
            &("guest:joined".to_string(), seen.snapshot_count),
            "guest {i}: its own guest:joined, then the snapshot"
        );
        let all: Vec<_> = seen.before.iter().chain(&seen.after).collect();
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1), "guest {i}: a stale count after a newer one: {all:?}");
        let last = all.last().map(|(_, c)| *c);
        assert_eq!(last, Some(G as u64), "guest {i} ends on the wrong count: {all:?}");
        assert!(all.iter().all(|(name, _)| name == "guest:joined"), "guest {i}: {all:?}");
        total += all.len();
    }
    println!(
        "{G} guests joined in {all_joined:?}; {total} presence messages in all (one per join to the whole room would be {})",
        G * (G + 1) / 2
    );
    assert!(total < G * G / 4, "{total} presence messages for {G} joins: not coalesced");
}

// ------------------------------------------------------------------------------------------------
// A room large enough to be written by two threads
// ------------------------------------------------------------------------------------------------

/// A room of 2,048 members or more is written to by two threads, half each (see
/// `Engine::broadcast`). Every member must still get every comment once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phone_of_a_room_of_two_thousand_gets_every_comment_once_and_in_order() {
    const G: usize = 2_100;
    const COMMENTS: usize = 20;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let limits = "[limits]\nmax_connections_per_ip = 5000\nconnect_per_ip = { rate = 5000, per = \"1s\", burst = 5000 }\n\
                  [limits.events]\nadmin = { rate = 1000, per = \"1s\", burst = 1000 }\n";
    let server = Server::start_with(Some(limits), &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    Http::new(&server).create_event("stadium", None).await;
    let at = addr(&server);

    let mut readers = Vec::with_capacity(G);
    for batch in 0..G.div_ceil(100) {
        let joins: Vec<_> = (batch * 100..((batch + 1) * 100).min(G))
            .map(|i| {
                tokio::spawn(async move {
                    let auth = json!({"guestSessionId": format!("stadium-{i}"), "eventSlug": "stadium"});
                    let mut ws = connect(at, &auth, None).await;
                    join(&mut ws, "stadium").await;
                    ws
                })
            })
            .collect();
        for j in joins {
            readers.push(Reader::spawn(j.await.expect("guest joins")));
        }
    }

    let mut admin = connect(at, &json!({"token": admin_token()}), None).await;
    for seq in 0..COMMENTS {
        let frame =
            json!(["photo:comment", {"eventSlug": "stadium", "photo_id": "p1", "comment": format!("{seq}:cheers")}]);
        admin.send(Message::text(format!("42{frame}"))).await.expect("comment");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while readers.iter().any(|r| r.comments.load(Ordering::Acquire) < COMMENTS) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer, so a comment delivered twice would be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.comments.load(Ordering::Acquire), COMMENTS, "phone {i} got a wrong number of comments");
        assert!(r.in_order.load(Ordering::Acquire), "phone {i} got comments out of order");
        assert!(!r.closed.load(Ordering::Acquire), "phone {i} was disconnected");
    }
}
