//! Per-socket limits with real clients: the like flood, the join limit, throttled error replies,
//! and the abuser disconnected while the rest of the room carries on.

use std::time::{Duration, Instant};

use crate::support::{Server, Sock};
use serde_json::{Value, json};

fn guest_server() -> Server {
    Server::start_with(None, &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_flood_is_capped_at_burst_plus_rate_and_the_abuser_is_dropped() {
    let server = guest_server();
    let mut watcher = Sock::guest(&server.url, "watcher", "flood").await;
    watcher.join("flood").await;
    let mut abuser = Sock::guest(&server.url, "abuser", "flood").await;
    abuser.join("flood").await;
    let neighbour = Sock::guest(&server.url, "neighbour", "flood").await;
    watcher.drain(200).await;

    let started = Instant::now();
    for i in 0..100 {
        abuser.emit("photo:like", json!({"eventSlug": "flood", "photo_id": format!("f{i}")})).await;
    }
    let sent_in = started.elapsed();
    let got = abuser.drain(1500).await;
    let errors: Vec<&Value> = got.iter().filter(|(n, _)| n == "error").map(|(_, v)| v).collect();
    assert!(!errors.is_empty(), "no rate-limit error");
    assert_eq!(errors[0]["message"], "Rate limit exceeded");
    assert_eq!(errors[0]["event"], "photo:like");
    assert!(errors[0]["retryAfterMs"].as_u64().unwrap() > 0);
    // One error reply per second per event name, however many refusals.
    let allowed_errors = 2 + sent_in.as_secs() as usize;
    assert!(errors.len() <= allowed_errors, "{} error replies", errors.len());
    // 80 refusals > 50 within a minute: the abuser is disconnected.
    assert!(got.iter().any(|(n, _)| n == "close"), "abuser not disconnected: {got:?}");

    let likes = watcher.drain(500).await.into_iter().filter(|(n, _)| n == "photo:like").count();
    let budget = 20 + (10.0 * (sent_in.as_secs_f64() + 0.2)).ceil() as usize;
    assert!((20..=budget).contains(&likes), "{likes} likes accepted, budget {budget}");

    // The rest of the room is unaffected: a normal guest's likes all arrive.
    for i in 0..10 {
        neighbour.emit("photo:like", json!({"eventSlug": "flood", "photo_id": format!("n{i}")})).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let normal = watcher
        .drain(800)
        .await
        .into_iter()
        .filter(|(n, v)| n == "photo:like" && v["photo_id"].as_str().unwrap().starts_with('n'))
        .count();
    assert_eq!(normal, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_limit_message() {
    let server = guest_server();
    let mut s = Sock::guest(&server.url, "joiner", "j").await;
    for _ in 0..5 {
        s.join("j").await;
    }
    s.emit("event:join", json!("j")).await;
    let e = s.expect("error", 3000).await;
    assert_eq!(e["message"], "Too many join requests");
    assert_eq!(e["event"], "event:join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_join_no_room_are_disconnected_admins_exempt() {
    let server = Server::start_with(
        Some("[limits]\nno_room_timeout = \"1s\"\n"),
        &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")],
    );
    let mut idle = Sock::guest(&server.url, "idle", "nr").await;
    let mut member = Sock::guest(&server.url, "member", "nr").await;
    member.join("nr").await;
    let mut admin = Sock::with_token(&server.url, &crate::support::admin_token()).await;
    idle.expect("close", 5000).await;
    member.expect_none("close", 1500).await;
    admin.expect_none("close", 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_while_the_room_goes_on() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // 20 MB go through one reader: not beside the other heavy tests on a 2-core machine.
    let _heavy = crate::support::heavy().await;
    // Default queue bound (1 MiB): 400 messages of 50 KB pass it many times over.
    let server = Server::start_with(None, &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    let addr = server.url.trim_start_matches("http://").to_string();
    // The stalled client: joins, then never reads again.
    let (mut stalled, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await.unwrap();
    stalled.next().await.unwrap().unwrap();
    stalled.send(Message::text("40{\"guestSessionId\":\"stalled\",\"eventSlug\":\"slow\"}")).await.unwrap();
    loop {
        if let Message::Text(t) = stalled.next().await.unwrap().unwrap()
            && t.as_str().starts_with("40")
        {
            break;
        }
    }
    stalled.send(Message::text("42[\"event:join\",\"slow\"]")).await.unwrap();
    let mut reader = Sock::guest(&server.url, "reader", "slow").await;
    let snap = reader.join("slow").await;
    assert_eq!(snap["guestCount"], 2);
    let admin = Sock::with_token(&server.url, &crate::support::admin_token()).await;
    let big = "x".repeat(50_000);
    const N: usize = 400;
    for i in 0..N {
        admin.emit("photo:upload:complete", json!({"eventSlug": "slow", "photo": {"id": i, "blob": big}})).await;
    }
    let mut got = 0;
    let mut left = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < N && Instant::now() < deadline {
        for (name, v) in reader.drain(200).await {
            match name.as_str() {
                "photo:upload:complete" => got += 1,
                "guest:left" => left = Some(v["guestCount"].clone()),
                _ => {}
            }
        }
    }
    assert_eq!(got, N, "the reading client missed messages");
    assert_eq!(left, Some(json!(1)), "the stalled client was not shed from the room");
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hafi_connections_refused_total{reason=\"slow_consumer\"} 1"), "{metrics}");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_socket_cap() {
    let server = Server::start_with(
        Some("[limits]\nmax_sockets_per_session = 3\n"),
        &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")],
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = Sock::guest(&server.url, "one-phone", "cap").await;
        s.join("cap").await;
        held.push(s);
    }
    let mut fourth = Sock::guest(&server.url, "one-phone", "cap").await;
    assert_eq!(fourth.expect(crate::support::CONNECT_ERROR, 3000).await["message"], "Too many connections");
    // Another session is not affected; closing one admits one again.
    let mut other = Sock::guest(&server.url, "other-phone", "cap").await;
    other.join("cap").await;
    held.pop().unwrap().close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = Sock::guest(&server.url, "one-phone", "cap").await;
    again.join("cap").await;
}
