//! The janitor with short durations: idle rooms leave memory and come back intact, expired
//! sessions stop working and leave the store, retention deletes old rooms, and memory returns
//! near where it started after thousands of rooms came and went.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Http, Server, Sock, admin_token, room};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const SHORT: &str = "[rooms]\nidle_evict = \"1s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_room_is_evicted_and_comes_back_intact() {
    let server = Server::start_with(Some(SHORT), &[]);
    let http = Http::new(&server);
    http.create_event("gala", None).await;
    let (g1, g2) = (http.guest_session("gala").await, http.guest_session("gala").await);
    let mut a = Sock::guest(&server.url, &g1, "gala").await;
    a.join("gala").await;
    let mut b = Sock::guest(&server.url, &g2, "gala").await;
    b.join("gala").await;
    a.emit("photo:like", json!({"eventSlug": "gala", "photo_id": "p1"})).await;
    b.expect("photo:like", 3000).await;
    assert_eq!(room(&http, "gala").await["inMemory"], true);
    a.close().await;
    b.close().await;
    let mut evicted = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if room(&http, "gala").await["inMemory"] == false {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "room not evicted after idle_evict");
    let r = room(&http, "gala").await;
    assert_eq!((r["totalGuests"].clone(), r["peakGuests"].clone(), r["likes"].clone()), (json!(2), json!(2), json!(1)));
    // The next join brings everything back.
    let mut c = Sock::guest(&server.url, &g1, "gala").await;
    let snap = c.join("gala").await;
    assert_eq!(snap["likes"], json!({"p1": 1}));
    assert_eq!(snap["likedByMe"], json!(["p1"]));
    assert_eq!((snap["totalGuests"].clone(), snap["peakGuests"].clone()), (json!(2), json!(2)));
    assert_eq!(room(&http, "gala").await["inMemory"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_cannot_connect_and_is_removed() {
    let mut server = Server::start_with(Some(SHORT), &[]);
    let http = Http::new(&server);
    http.create_event("brief", None).await;
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (st, s) = http
        .call(
            "POST",
            "/api/admin/guest-sessions",
            Some(&admin_token()),
            Some(json!({"eventSlug": "brief", "expiresAt": expires.to_rfc3339()})),
        )
        .await;
    assert_eq!(st, 201);
    let id = s["guestSessionId"].as_str().unwrap().to_string();
    let keep = http.guest_session("brief").await;
    let mut ok = Sock::guest(&server.url, &id, "brief").await;
    ok.join("brief").await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let mut late = Sock::guest(&server.url, &id, "brief").await;
    assert_eq!(late.expect(crate::support::CONNECT_ERROR, 3000).await["message"], "Invalid guest session");
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("hafi_sessions_expired_total ") && !l.ends_with(" 0")), "{metrics}");
    ok.close().await;
    late.close().await;
    assert_eq!(server.stop(), Some(0));
    let out = crate::support::cli::run(&["export"], server.data_dir(), "");
    let dump = String::from_utf8_lossy(&out.stdout);
    let sessions: Vec<&str> = dump.lines().filter(|l| l.contains("\"kind\":\"session\"")).collect();
    assert!(!sessions.iter().any(|l| l.contains(&id)), "expired session still stored");
    assert!(sessions.iter().any(|l| l.contains(&keep)), "live session was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_rooms_and_keeps_recent_ones() {
    // Seed a data directory with a room last visited ten days ago, then start with a
    // three-day retention.
    let mut server = Server::start_with(Some("[rooms]\nidle_evict = \"1s\"\nretention_days = 3\n"), &[]);
    let http = Http::new(&server);
    http.create_event("recent", None).await;
    let g = http.guest_session("recent").await;
    let mut s = Sock::guest(&server.url, &g, "recent").await;
    s.join("recent").await;
    s.emit("photo:like", json!({"eventSlug": "recent", "photo_id": "r1"})).await;
    s.expect("photo:like", 3000).await;
    s.close().await;
    assert_eq!(server.stop(), Some(0));
    let ten_days_ago = chrono::Utc::now().timestamp_millis() - 10 * 86_400_000;
    let seed = [
        json!({"kind": "room", "slug": "ancient", "record": {"total_guests": 3, "peak_guests": 2, "last_access_ms": ten_days_ago, "created_ms": ten_days_ago}}),
        json!({"kind": "like_count", "slug": "ancient", "photo": "a1", "count": 1, "updated_ms": ten_days_ago}),
        json!({"kind": "liker", "slug": "ancient", "photo": "a1", "liker": "old-guest"}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect::<String>();
    let mut imp = std::process::Command::new(env!("CARGO_BIN_EXE_hafi-realtime"))
        .args(["import", "--force", "--data-dir"])
        .arg(server.data_dir())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    imp.stdin.take().unwrap().write_all(seed.as_bytes()).unwrap();
    assert!(imp.wait().unwrap().success());
    server.restart_after_stop();
    let http = Http::new(&server);
    let mut gone = false;
    for _ in 0..40 {
        if room(&http, "ancient").await.is_null() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "old room not deleted");
    let recent = room(&http, "recent").await;
    assert_eq!(recent["likes"], 1, "recent room must be kept: {recent}");
    assert_eq!(server.stop(), Some(0));
    let out = crate::support::cli::run(&["export"], server.data_dir(), "");
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(!dump.contains("\"ancient\""), "old room's likes remain: {dump}");
    assert!(dump.contains("\"recent\""));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_rooms_come_and_go_and_memory_returns() {
    let _heavy = crate::support::heavy().await;
    const SLUGS: usize = 3000;
    let cfg = "[rooms]\nidle_evict = \"1s\"\n[limits.events]\njoin = { rate = 100000, per = \"1s\", burst = 100000 }\nother = { rate = 100000, per = \"1s\", burst = 100000 }\nadmin = { rate = 100000, per = \"1s\", burst = 100000 }\n";
    let server = Server::start_with(Some(cfg), &[]);
    let pid = server.pid().unwrap();
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    // Warm up (allocator, first room) before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    // An admin may enter every room.
    ws.send(Message::text(format!("40{{\"token\":\"{}\"}}", admin_token()))).await.unwrap();
    // Events may only follow the namespace CONNECT reply.
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap()
            && t.as_str().starts_with("40")
        {
            break;
        }
    }
    let mut peak = before;
    let mut snapshots = 0;
    let mut sent = 0;
    // Pipelined joins and leaves, a batch at a time, reading what comes back.
    while snapshots < SLUGS {
        while sent < SLUGS && sent < snapshots + 20 {
            let join = ws.send(Message::text(format!("42[\"event:join\",{{\"eventSlug\":\"s-{sent}\"}}]"))).await;
            let leave = ws.send(Message::text(format!("42[\"event:leave\",\"s-{sent}\"]"))).await;
            assert!(
                join.is_ok() && leave.is_ok(),
                "server closed the connection after {snapshots} snapshots: {join:?} {leave:?}"
            );
            sent += 1;
        }
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("server went quiet")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            if t.as_str() == "2" {
                ws.send(Message::text("3")).await.unwrap();
            } else if t.as_str().contains("event:snapshot") {
                snapshots += 1;
                if snapshots % 500 == 0 {
                    peak = peak.max(rss_kib(pid));
                }
            } else if t.as_str().starts_with("42[\"error\"") {
                panic!("refused: {t}");
            }
        }
    }
    let during_rooms = metric(&server, "hafi_rooms_in_memory").await;
    peak = peak.max(rss_kib(pid));
    let _ = ws.close(None).await;
    let mut rooms = during_rooms;
    for _ in 0..60 {
        rooms = metric(&server, "hafi_rooms_in_memory").await;
        if rooms == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib(pid);
    println!(
        "{SLUGS} rooms: in memory while active {during_rooms}, after idle_evict {rooms}; RSS before {before} KiB, peak {peak} KiB, after {after} KiB"
    );
    assert!(during_rooms > 100.0, "rooms were not held while active ({during_rooms})");
    assert_eq!(rooms, 0.0, "rooms left in memory after idle_evict");
    assert_eq!(metric(&server, "hafi_rooms_evicted_total").await, SLUGS as f64);
    // What stays is storage cache and allocator slack, not per-room state: bounded, and well
    // under what 3000 rooms' worth of presence would be if it leaked.
    assert!(after <= before + 24 * 1024, "RSS grew from {before} KiB to {after} KiB");
}
