//! Engine.IO 4: the handshake on both transports, the error answers, and polling payloads.

use serde_json::{Value, json};

use crate::support::Http;
use crate::support::raw::*;

/// The handshake keys, exactly.
fn assert_open_keys(open: &Value) {
    let mut keys: Vec<&str> = open.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"], "{open}");
    assert!(open["sid"].as_str().is_some_and(|s| !s.is_empty()), "{open}");
}

const NUMBERS: &str = "ping_interval = \"300ms\"\nping_timeout = \"200ms\"\nmax_payload_bytes = 4096\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_packet_over_polling_carries_the_configured_numbers() {
    let server = start(NUMBERS, &[]);
    let client = reqwest::Client::new();
    let (status, body) = http(&client, "GET", &eio_url(&server, "EIO=4&transport=polling"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(packets(&body).len(), 1, "the handshake answer is the open packet alone: {body:?}");
    let open = json_after(&body, "0").unwrap_or_else(|| panic!("not an open packet: {body:?}"));
    assert_open_keys(&open);
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(300));
    assert_eq!(open["pingTimeout"], json!(200));
    assert_eq!(open["maxPayload"], json!(4096));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_packet_over_a_direct_websocket() {
    let server = start(NUMBERS, &[]);
    let (mut ws, open) = open_ws(&server).await;
    assert_open_keys(&open);
    // Nothing to upgrade to from a websocket.
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], json!(300));
    assert_eq!(open["pingTimeout"], json!(200));
    assert_eq!(open["maxPayload"], json!(4096));
    // Two sessions never share a sid.
    let (_, other) = open_ws(&server).await;
    assert_ne!(open["sid"], other["sid"]);
    send(&mut ws, "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sid_is_400_session_id_unknown() {
    let server = start("", &[]);
    let client = reqwest::Client::new();
    let url = eio_url(&server, "EIO=4&transport=polling&sid=no-such-session");
    let (status, body) = http(&client, "GET", &url, None).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).ok()),
        (400, Some(json!({"code": 1, "message": "Session ID unknown"}))),
        "GET: {body}"
    );
    let (status, body) = http(&client, "POST", &url, Some("40".into())).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).ok()),
        (400, Some(json!({"code": 1, "message": "Session ID unknown"}))),
        "POST: {body}"
    );
    // A websocket naming an unknown session gets no session.
    match ws(&server, "EIO=4&transport=websocket&sid=no-such-session", None).await {
        Err(_) => {}
        Ok(mut sock) => {
            let got = frame(&mut sock, 2000).await;
            assert!(matches!(got, Frame::Closed(_)), "websocket with an unknown sid got {got:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_transport_or_protocol_version_is_400_with_the_error_body() {
    let server = start("", &[]);
    let client = reqwest::Client::new();
    // Transport checks come first in the reference server (code 0); a missing or other EIO is
    // "Unsupported protocol version" there (code 5); "Bad request" (code 3) is accepted too.
    let cases: [(&str, &[u64]); 6] = [
        ("EIO=4", &[0]),
        ("EIO=4&transport=abc", &[0]),
        ("EIO=4&transport=flashsocket", &[0]),
        ("transport=polling", &[3, 5]),
        ("EIO=abc&transport=polling", &[3, 5]),
        ("EIO=3&transport=polling", &[3, 5]),
    ];
    let mut failures = Vec::new();
    for (query, codes) in cases {
        let (status, body) = http(&client, "GET", &eio_url(&server, query), None).await;
        if let Err(e) = eio_error(status, &body, codes) {
            failures.push(format!("GET ?{query}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_is_get_only() {
    let server = start("", &[]);
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for method in ["POST", "PUT"] {
        let (status, body) =
            http(&client, method, &eio_url(&server, "EIO=4&transport=polling"), Some("40".into())).await;
        if let Err(e) = eio_error(status, &body, &[2, 3]) {
            failures.push(format!("{method} handshake: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_without_a_valid_transport_or_version_gets_no_session() {
    let server = start("", &[]);
    let mut failures = Vec::new();
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=3&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        match ws(&server, query, None).await {
            Err(_) => {}
            Ok(mut sock) => match frame(&mut sock, 2000).await {
                Frame::Closed(_) => {}
                other => failures.push(format!("?{query}: websocket open, then {other:?}")),
            },
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_of_several_packets_is_ok_and_each_packet_is_processed_in_order() {
    let server = start("", &[]);
    Http::new(&server).create_event("multi", None).await;
    let session = Polling::open(&server).await;
    session.sio_connect(&admin_auth()).await;
    let body = format!("421[\"admin:join\"]{SEP}422[\"event:join\",\"multi\"]{SEP}423[\"admin:join\"]");
    assert_eq!(session.post(&body).await, (200, "ok".to_string()));
    let seen =
        session.poll_until(5000, |p| p.starts_with("433")).await.unwrap_or_else(|s| panic!("acks missing: {s:?}"));
    let acks: Vec<&String> = seen.iter().filter(|p| p.starts_with("43")).collect();
    assert_eq!(acks.len(), 3, "{seen:?}");
    assert_eq!(ack_data(acks[0], 1), Some(json!([{"ok": true}])), "{seen:?}");
    assert_eq!(ack_data(acks[1], 2).map(|d| d[0]["ok"].clone()), Some(json!(true)), "{seen:?}");
    assert_eq!(ack_data(acks[2], 3), Some(json!([{"ok": true}])), "{seen:?}");
    assert!(seen.iter().any(|p| event(p).is_some_and(|(n, _)| n == "event:snapshot")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_returns_every_queued_packet_joined_by_record_separators() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    assert_eq!(session.post(&format!("40{}", admin_auth())).await, (200, "ok".to_string()));
    // Let the CONNECT be handled before the event, as a client waits for its answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(session.post("427[\"admin:join\"]").await, (200, "ok".to_string()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) = session.get_within(5000).await.expect("GET with queued packets answered at once");
    assert_eq!(status, 200, "{body}");
    // Pings may be queued too; they are not what this is about.
    let got: Vec<&str> = packets(&body).into_iter().filter(|p| *p != "2").collect();
    assert_eq!(got.len(), 2, "both queued packets in one answer: {body:?}");
    let connect = json_after(got[0], "40").unwrap_or_else(|| panic!("CONNECT answer first: {body:?}"));
    assert!(connect["sid"].is_string(), "{body:?}");
    assert_eq!(ack_data(got[1], 7), Some(json!([{"ok": true}])), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_engineio_packet_closes_the_session() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    let (status, body) = session.post("abc").await;
    // A server may also drop the request; what matters is that the session is gone.
    assert!(status == 400 || status == 0, "POST of an invalid packet: {status} {body}");
    let seen = session.poll_until(3000, |_| false).await.expect_err("no packet is awaited");
    assert!(
        seen.last().is_some_and(|p| p.starts_with("<HTTP 400")),
        "session still open after an invalid packet: {seen:?}"
    );

    let (mut sock, _) = open_ws(&server).await;
    send(&mut sock, "abc").await;
    closed_within(&mut sock, 3000).await.expect("websocket closed after an invalid packet");
}
