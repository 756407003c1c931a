//! Per-socket limits with real clients: the like flood, the join limit, throttled error replies,
//! and the abuser disconnected while the rest of the room carries on.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Sock};
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
    let normal = watcher.drain(800).await.into_iter().filter(|(n, v)| n == "photo:like" && v["photo_id"].as_str().unwrap().starts_with('n')).count();
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
