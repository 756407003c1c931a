//! Engine.IO 4 heartbeat and `maxPayload`, with the reference test suite's short timers
//! (ping every 300 ms, 200 ms to answer) and a small payload limit.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::support::Http;
use crate::support::raw::*;

const INTERVAL: u64 = 300;
const TIMEOUT: u64 = 200;
/// Scheduling slack on a busy two-core machine.
const SLACK: u64 = 700;
const HEARTBEAT: &str = "ping_interval = \"300ms\"\nping_timeout = \"200ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_clients_are_pinged_every_interval_and_answered_pongs_keep_them() {
    let server = start(HEARTBEAT, &[]);
    let session = Polling::open(&server).await;
    let mut since = Instant::now();
    for round in 0..3 {
        let (status, body) =
            session.get_within(INTERVAL + SLACK + 1000).await.unwrap_or_else(|| panic!("round {round}: no ping"));
        let waited = since.elapsed();
        assert_eq!((status, body.as_str()), (200, "2"), "round {round}");
        assert!(waited <= Duration::from_millis(INTERVAL + SLACK), "round {round}: ping after {waited:?}");
        assert_eq!(session.post("3").await, (200, "ok".to_string()), "round {round}: pong");
        since = Instant::now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_client_that_never_answers_is_dropped_after_interval_plus_timeout() {
    let server = start(HEARTBEAT, &[]);
    let session = Polling::open(&server).await;
    tokio::time::sleep(Duration::from_millis(INTERVAL + TIMEOUT + SLACK)).await;
    // Whatever a last GET may still fetch, the session must be gone right after.
    let seen = session.poll_until(3000, |_| false).await.expect_err("no packet awaited");
    let dropped = seen.last().is_some_and(|p| p.starts_with("<HTTP 400"));
    assert!(dropped, "session alive {} ms after its first unanswered ping was due: {seen:?}", TIMEOUT + SLACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_are_pinged_and_answered_pongs_keep_them() {
    let server = start(HEARTBEAT, &[]);
    let (mut sock, _) = open_ws(&server).await;
    let mut since = Instant::now();
    for round in 0..3 {
        let got = frame(&mut sock, INTERVAL + SLACK + 1000).await;
        let waited = since.elapsed();
        assert!(matches!(&got, Frame::Text(t) if t == "2"), "round {round}: {got:?}");
        assert!(waited <= Duration::from_millis(INTERVAL + SLACK), "round {round}: ping after {waited:?}");
        send(&mut sock, "3").await;
        since = Instant::now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_answers_is_closed_after_interval_plus_timeout() {
    let server = start(HEARTBEAT, &[]);
    let started = Instant::now();
    let (mut sock, _) = open_ws(&server).await;
    // Reads (so a close is seen) but never answers the pings.
    let closed = closed_within(&mut sock, INTERVAL + TIMEOUT + SLACK).await;
    let after = started.elapsed();
    closed.unwrap_or_else(|e| panic!("no pong for {after:?}: {e}"));
    assert!(after >= Duration::from_millis(INTERVAL + TIMEOUT - 100), "closed too early, after {after:?}");
}

const SMALL_PAYLOAD: &str = "max_payload_bytes = 2048\n";

/// A `photo:comment` EVENT frame of about `len` bytes.
fn comment_frame(ack: u32, len: usize) -> String {
    let comment = "c".repeat(len.saturating_sub(80).min(1990));
    let pad = "p".repeat(len.saturating_sub(80 + comment.len()));
    let frame =
        json!(["photo:comment", {"eventSlug": "limits", "photo_id": "p1", "comment": comment, "guest_name": pad}]);
    format!("42{ack}{frame}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_over_max_payload_closes_the_connection() {
    let server = start(SMALL_PAYLOAD, &[]);
    Http::new(&server).create_event("limits", None).await;
    let (mut sock, _) = sio_ws(&server, &admin_auth()).await;
    assert_eq!(sock_open_max(&server).await, 2048);
    // Under the limit: handled and acknowledged.
    let under = comment_frame(1, 1500);
    assert!(under.len() < 2048);
    send(&mut sock, &under).await;
    let ack = text_where(&mut sock, 3000, |t| t.starts_with("431")).await.expect("ack of a message under the limit");
    assert!(json_after(&ack, "431").is_some_and(|v| v[0]["ok"] == json!(true)), "{ack}");
    // Over it: the connection is closed.
    let over = "x".repeat(3000);
    send(&mut sock, &format!("42[\"photo:comment\",\"{over}\"]")).await;
    closed_within(&mut sock, 3000).await.expect("websocket closed after a message over maxPayload");
}

/// `maxPayload` as a new session is told it.
async fn sock_open_max(server: &crate::support::Server) -> u64 {
    let (_, open) = open_ws(server).await;
    open["maxPayload"].as_u64().expect("maxPayload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_post_over_max_payload_is_413() {
    let server = start(SMALL_PAYLOAD, &[]);
    Http::new(&server).create_event("limits", None).await;
    let session = Polling::open(&server).await;
    assert_eq!(session.open["maxPayload"], json!(2048));
    session.sio_connect(&admin_auth()).await;
    let under = comment_frame(1, 1500);
    assert_eq!(session.post(&under).await, (200, "ok".to_string()), "a POST under the limit");
    session.poll_until(3000, |p| p.starts_with("431")).await.expect("ack of a POST under the limit");
    // Several packets that are each small but together over the limit count as one body.
    let over = format!("{}{SEP}{}", comment_frame(2, 1500), comment_frame(3, 1500));
    let (status, body) = session.post(&over).await;
    assert_eq!(status, 413, "POST of {} bytes: {body}", over.len());
}
