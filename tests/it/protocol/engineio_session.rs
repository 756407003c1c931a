//! Engine.IO 4 session life: one pending GET, the upgrade to a websocket, and closing from
//! either side, each seen by the GET that is waiting at the time.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::raw::*;
use crate::support::{Http, admin_token};

/// Waits for a GET left pending; `None` when it is still pending after `ms`.
async fn answer_of(get: tokio::task::JoinHandle<(u16, String)>, ms: u64) -> Option<(u16, String)> {
    tokio::time::timeout(Duration::from_millis(ms), get).await.ok().map(|r| r.expect("GET task"))
}

/// The session is gone: a GET is 400 "Session ID unknown" (the body's exact form is checked by
/// `unknown_sid_is_400_session_id_unknown`).
async fn assert_sid_unknown(session: &Polling, what: &str) {
    let (status, body) =
        session.get_within(3000).await.unwrap_or_else(|| panic!("{what}: GET still pending, the session is alive"));
    let message = serde_json::from_str::<Value>(&body).ok().map(|v| v["message"].clone());
    assert_eq!((status, message), (400, Some(json!("Session ID unknown"))), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_get_is_refused_and_closes_the_session() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    let first = session.pending_get().await;
    let (status, body) = session.get_within(3000).await.expect("the second GET is answered at once");
    assert_eq!(status, 400, "second concurrent GET: {body}");
    let (status, body) = answer_of(first, 3000).await.expect("the pending GET is answered when the session closes");
    assert_eq!((status, body.as_str()), (200, "1"), "the pending GET gets the close packet");
    assert_sid_unknown(&session, "after the overlap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_answers_the_pending_get_with_noop_and_moves_the_session() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    let pending = session.pending_get().await;
    let mut sock =
        ws(&server, &format!("EIO=4&transport=websocket&sid={}", session.sid), None).await.expect("upgrade websocket");
    send(&mut sock, "2probe").await;
    assert_eq!(text(&mut sock, 3000).await.as_deref(), Ok("3probe"));
    send(&mut sock, "5").await;
    let (status, body) = answer_of(pending, 3000).await.expect("the pending GET is answered during the upgrade");
    assert_eq!((status, body.as_str()), (200, "6"), "the pending GET gets a noop");
    // The session now lives on the websocket.
    let answer = sio_connect_raw(&mut sock, &admin_auth()).await;
    assert!(json_after(&answer, "40").is_some_and(|v| v["sid"].is_string()), "{answer}");
    let (status, body) = session.get_within(3000).await.expect("a GET after the upgrade is answered at once");
    assert_eq!(status, 400, "polling on an upgraded session: {body}");
    // A second websocket for the same session gets nothing.
    match ws(&server, &format!("EIO=4&transport=websocket&sid={}", session.sid), None).await {
        Err(_) => {}
        Ok(mut second) => {
            send(&mut second, "2probe").await;
            let got = frame(&mut second, 2000).await;
            assert!(matches!(got, Frame::Closed(_)), "second websocket on an upgraded session got {got:?}");
        }
    }
    // And the first still works.
    send(&mut sock, "421[\"admin:join\"]").await;
    let ack = text(&mut sock, 3000).await.expect("ack");
    assert_eq!(ack_data(&ack, 1), Some(json!([{"ok": true}])), "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_buffered_before_the_upgrade_arrive_over_the_websocket() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    assert_eq!(session.post(&format!("40{}", admin_auth())).await, (200, "ok".to_string()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The CONNECT answer waits in the polling buffer: no GET has fetched it.
    let mut sock =
        ws(&server, &format!("EIO=4&transport=websocket&sid={}", session.sid), None).await.expect("upgrade websocket");
    send(&mut sock, "2probe").await;
    assert_eq!(text(&mut sock, 3000).await.as_deref(), Ok("3probe"));
    send(&mut sock, "5").await;
    let got = text(&mut sock, 3000).await.expect("the buffered CONNECT answer");
    assert!(json_after(&got, "40").is_some_and(|v| v["sid"].is_string()), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_answers_the_pending_get_with_noop() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    let pending = session.pending_get().await;
    let (status, body) = session.post("1").await;
    assert_eq!(status, 200, "POST of a close packet: {body}");
    let (status, body) = answer_of(pending, 3000).await.expect("the pending GET is answered on close");
    assert_eq!((status, body.as_str()), (200, "6"), "the pending GET gets a noop");
    assert_sid_unknown(&session, "after the client closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_close_answers_the_pending_get_with_close() {
    let server = start("", &[]);
    let http = Http::new(&server);
    http.create_event("closing", None).await;
    let guest = http.guest_session("closing").await;
    let session = Polling::open(&server).await;
    session.sio_connect(&guest_auth(&guest, "closing")).await;
    assert_eq!(session.post("42[\"event:join\",\"closing\"]").await, (200, "ok".to_string()));
    session.poll_until(5000, |p| event(p).is_some_and(|(n, _)| n == "event:snapshot")).await.expect("joined");

    let pending = session.pending_get().await;
    // Archiving the event ends its guests' access: the server disconnects them.
    let (status, body) = http
        .call("PATCH", "/api/admin/events/closing", Some(&admin_token()), Some(json!({"status": "ARCHIVED"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = answer_of(pending, 10_000).await.expect("the pending GET is answered when the server closes");
    assert_eq!(status, 200, "{body}");
    let mut got: Vec<String> = packets(&body).into_iter().map(String::from).collect();
    // A server-side disconnect (41) may come first, alone or in the same answer.
    if got.last().map(String::as_str) != Some("1") && got.iter().all(|p| p == "41") {
        let (status, more) = session
            .get_within(3000)
            .await
            .unwrap_or_else(|| panic!("no close packet after {got:?}: the session is still open"));
        assert_eq!(status, 200, "{more}");
        got.extend(packets(&more).into_iter().map(String::from));
    }
    assert_eq!(got.last().map(String::as_str), Some("1"), "the last packet is the close packet: {got:?}");
    assert!(got[..got.len() - 1].iter().all(|p| p == "41"), "only a disconnect may precede it: {got:?}");
    assert_sid_unknown(&session, "after the server closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_packet_over_the_websocket_closes_it() {
    let server = start("", &[]);
    let (mut sock, _) = open_ws(&server).await;
    send(&mut sock, "1").await;
    closed_within(&mut sock, 3000).await.expect("websocket closed after the client's close packet");
}
