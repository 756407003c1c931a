//! Socket.IO 5 over raw Engine.IO: CONNECT and CONNECT_ERROR, acknowledgements, malformed
//! packets, binary attachments and DISCONNECT.

use serde_json::{Value, json};

use crate::support::Http;
use crate::support::raw::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_auth_is_answered_with_a_socket_sid() {
    let server = start("", &[]);
    let http = Http::new(&server);
    let guest = http.guest_session("hall").await;
    let mut sids = Vec::new();
    for auth in [admin_auth(), guest_auth(&guest, "hall")] {
        let (mut sock, _) = open_ws(&server).await;
        let answer = sio_connect_raw(&mut sock, &auth).await;
        let data = json_after(&answer, "40").unwrap_or_else(|| panic!("CONNECT answer: {answer}"));
        let keys: Vec<&String> = data.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(keys, ["sid"], "{answer}");
        sids.push(data["sid"].as_str().expect("sid").to_string());
    }
    assert_ne!(sids[0], sids[1]);
    // The same over long-polling.
    let session = Polling::open(&server).await;
    let data = session.sio_connect(&admin_auth()).await;
    assert!(data["sid"].is_string(), "{data}");
}

/// Socket.IO 5 gives each socket its own id: the Engine.IO sid authenticates every polling
/// request and upgrade of its session, so it must not double as the socket's public id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_sid_is_not_the_engineio_sid() {
    let server = start("", &[]);
    let (mut sock, open) = open_ws(&server).await;
    let answer = sio_connect_raw(&mut sock, &admin_auth()).await;
    let socket_sid = json_after(&answer, "40").map(|v| v["sid"].clone());
    assert!(socket_sid.as_ref().is_some_and(Value::is_string), "{answer}");
    assert_ne!(socket_sid, Some(open["sid"].clone()), "the socket's sid is its Engine.IO session id");
    let session = Polling::open(&server).await;
    let data = session.sio_connect(&admin_auth()).await;
    assert_ne!(
        data["sid"].as_str(),
        Some(session.sid.as_str()),
        "the socket's sid is its Engine.IO session id (polling)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_credentials_gets_connect_error() {
    let server = start("", &[]);
    let (mut sock, _) = open_ws(&server).await;
    send(&mut sock, "40").await;
    let answer =
        text_where(&mut sock, 5000, |t| t.starts_with("40") || t.starts_with("44")).await.expect("CONNECT answer");
    assert_eq!(answer, "44{\"message\":\"Authentication required\"}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_namespaces_get_invalid_namespace_and_the_connection_stays_usable() {
    let server = start("", &[]);
    let (mut sock, _) = open_ws(&server).await;
    let cases = [
        ("40/other,".to_string(), "44/other,{\"message\":\"Invalid namespace\"}"),
        (format!("40/other,{}", admin_auth()), "44/other,{\"message\":\"Invalid namespace\"}"),
        ("40/random".to_string(), "44/random,{\"message\":\"Invalid namespace\"}"),
    ];
    for (packet, expected) in cases {
        send(&mut sock, &packet).await;
        assert_eq!(text(&mut sock, 3000).await.as_deref(), Ok(expected), "after {packet}");
    }
    let answer = sio_connect_raw(&mut sock, &admin_auth()).await;
    assert!(json_after(&answer, "40").is_some_and(|v| v["sid"].is_string()), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_an_ack_id_gets_an_ack_with_that_id() {
    let server = start("", &[]);
    Http::new(&server).create_event("acks", None).await;
    let (mut sock, _) = sio_ws(&server, &admin_auth()).await;
    send(&mut sock, "42456[\"admin:join\"]").await;
    let ack = text(&mut sock, 3000).await.expect("ack");
    assert_eq!(ack_data(&ack, 456), Some(json!([{"ok": true}])), "{ack}");
    // A refused event is acknowledged too, with the error.
    send(&mut sock, "4299[\"photo:comment\",42]").await;
    let ack = text_where(&mut sock, 3000, |t| t.starts_with("43")).await.expect("ack of an invalid payload");
    assert_eq!(ack_data(&ack, 99), Some(json!([{"ok": false, "error": "Invalid payload"}])), "{ack}");
    // Acks carry the result: an admin-set like count.
    send(&mut sock, "420[\"photo:like\",{\"eventSlug\":\"acks\",\"photo_id\":\"p1\",\"likeCount\":7}]").await;
    let ack = text_where(&mut sock, 3000, |t| t.starts_with("43")).await.expect("ack of a like");
    let data = ack_data(&ack, 0).unwrap_or_else(|| panic!("ack id 0: {ack}"));
    assert_eq!((data[0]["ok"].clone(), data[0]["likeCount"].clone()), (json!(true), json!(7)), "{ack}");
}

/// Sends `packets` on a connected websocket (or one not yet connected) and expects the server
/// to close it.
async fn closes(server: &crate::support::Server, connect_first: bool, packets: &[&str]) -> Result<(), String> {
    let mut sock = if connect_first { sio_ws(server, &admin_auth()).await.0 } else { open_ws(server).await.0 };
    for p in packets {
        send(&mut sock, p).await;
    }
    closed_within(&mut sock, 3000).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_the_connection() {
    let server = start("", &[]);
    let cases: &[&str] = &[
        "4abc",                                // unknown Socket.IO packet type
        "49",                                  // unknown Socket.IO packet type
        "49[\"admin:join\"]",                  // unknown Socket.IO packet type
        "4",                                   // empty Socket.IO packet
        "42",                                  // EVENT without its payload
        "42{}",                                // EVENT payload not an array
        "42[]",                                // EVENT payload empty
        "42\"admin:join\"",                    // EVENT payload a string
        "42[\"admin:join\"",                   // invalid JSON
        "42[\"photo:like\",{\"eventSlug\":}]", // invalid JSON
        "42abc[\"admin:join\"]",               // invalid ack id
        "43",                                  // ACK without payload
    ];
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = closes(&server, true, &[case]).await {
            failures.push(format!("{case:?} after CONNECT: {e}"));
        }
    }
    // Attachments that do not match their placeholders.
    let placeholder = "451-[\"photo:like\",{\"_placeholder\":true,\"num\":0}]";
    let (mut sock, _) = sio_ws(&server, &admin_auth()).await;
    send(&mut sock, placeholder).await;
    send(&mut sock, "42[\"admin:join\"]").await;
    if let Err(e) = closed_within(&mut sock, 3000).await {
        failures.push(format!("text frame where an attachment belongs: {e}"));
    }
    let (mut sock, _) = sio_ws(&server, &admin_auth()).await;
    send(&mut sock, "451-[\"photo:like\",{\"_placeholder\":true,\"num\":3}]").await;
    send_binary(&mut sock, &[1, 2]).await;
    if let Err(e) = closed_within(&mut sock, 3000).await {
        failures.push(format!("placeholder number beyond the attachments: {e}"));
    }
    // Before CONNECT, anything but a CONNECT closes the connection.
    for case in ["4abc", "42[\"admin:join\"]", "41"] {
        if let Err(e) = closes(&server, false, &[case]).await {
            failures.push(format!("{case:?} before CONNECT: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_packet_over_polling_closes_the_session() {
    let server = start("", &[]);
    let session = Polling::open(&server).await;
    session.sio_connect(&admin_auth()).await;
    let (status, body) = session.post("42{}").await;
    assert!(matches!(status, 200 | 400 | 0), "POST of a malformed packet: {status} {body}");
    let seen = session.poll_until(3000, |_| false).await.expect_err("no packet awaited");
    assert!(
        seen.last().is_some_and(|p| p.starts_with("<HTTP 400")),
        "session alive after a malformed packet: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_event_is_parsed_and_refused_as_invalid_payload() {
    let server = start("", &[]);
    let http = Http::new(&server);
    let guest = http.guest_session("bin").await;
    let (mut sock, _) = sio_ws(&server, &guest_auth(&guest, "bin")).await;
    join(&mut sock, "bin").await;
    send(&mut sock, "451-[\"photo:like\",{\"_placeholder\":true,\"num\":0}]").await;
    send_binary(&mut sock, &[1, 2, 3, 4]).await;
    let got = text_where(&mut sock, 3000, |t| t.starts_with("42[\"error\"")).await.expect("error reply");
    let (_, data) = event(&got).expect("error event");
    assert_eq!(
        (data["message"].clone(), data["event"].clone()),
        (json!("Invalid payload"), json!("photo:like")),
        "{got}"
    );
    // Two attachments and an ack id: the ack carries the refusal.
    send(&mut sock, "452-7[\"photo:comment\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]")
        .await;
    send_binary(&mut sock, &[5, 6]).await;
    send_binary(&mut sock, &[7, 8]).await;
    let ack = text_where(&mut sock, 3000, |t| t.starts_with("43")).await.expect("ack of a binary event");
    assert_eq!(ack_data(&ack, 7), Some(json!([{"ok": false, "error": "Invalid payload"}])), "{ack}");
    // The connection is still open and in order.
    send(&mut sock, "428[\"photo:like\",{\"eventSlug\":\"bin\",\"photo_id\":\"p1\"}]").await;
    let ack =
        text_where(&mut sock, 3000, |t| t.starts_with("43")).await.expect("ack of a like after the binary events");
    let data = ack_data(&ack, 8).unwrap_or_else(|| panic!("ack id 8: {ack}"));
    assert_eq!((data[0]["ok"].clone(), data[0]["likeCount"].clone()), (json!(true), json!(1)), "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_event_over_polling_is_parsed_from_base64() {
    let server = start("", &[]);
    Http::new(&server).create_event("bin64", None).await;
    let session = Polling::open(&server).await;
    session.sio_connect(&admin_auth()).await;
    let body = format!("451-9[\"photo:like\",{{\"_placeholder\":true,\"num\":0}}]{SEP}bAQIDBA==");
    assert_eq!(session.post(&body).await, (200, "ok".to_string()));
    let seen = session.poll_until(3000, |p| p.starts_with("43")).await.unwrap_or_else(|s| panic!("no ack: {s:?}"));
    let ack = seen.iter().find(|p| p.starts_with("43")).and_then(|p| ack_data(p, 9));
    assert_eq!(ack, Some(json!([{"ok": false, "error": "Invalid payload"}])), "{seen:?}");
    // Still connected.
    assert_eq!(session.post("421[\"admin:join\"]").await, (200, "ok".to_string()));
    let seen = session.poll_until(3000, |p| p.starts_with("431")).await.unwrap_or_else(|s| panic!("no ack: {s:?}"));
    let ack = seen.iter().find(|p| p.starts_with("43")).and_then(|p| ack_data(p, 1));
    assert_eq!(ack, Some(json!([{"ok": true}])), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_removes_its_socket_from_the_room() {
    let server = start("", &[]);
    let http = Http::new(&server);
    let (a, b) = (http.guest_session("bye").await, http.guest_session("bye").await);
    let (mut leaving, _) = sio_ws(&server, &guest_auth(&a, "bye")).await;
    join(&mut leaving, "bye").await;
    let (mut staying, _) = sio_ws(&server, &guest_auth(&b, "bye")).await;
    assert_eq!(join(&mut staying, "bye").await["guestCount"], json!(2));
    send(&mut leaving, "41").await;
    let left =
        text_where(&mut staying, 3000, |t| event(t).is_some_and(|(n, _)| n == "guest:left")).await.expect("guest:left");
    assert_eq!(event(&left).map(|(_, d)| d["guestCount"].clone()), Some(json!(1)), "{left}");
    let (_, rooms) = http.call("GET", "/api/admin/rooms", Some(&crate::support::admin_token()), None).await;
    let count =
        rooms["rooms"].as_array().and_then(|r| r.iter().find(|r| r["slug"] == "bye")).map(|r| r["guestCount"].clone());
    assert_eq!(count, Some(json!(1)), "{rooms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_disconnect_the_engineio_connection_stays_and_may_connect_again() {
    let server = start("ping_interval = \"300ms\"\nping_timeout = \"200ms\"\n", &[]);
    let (mut sock, _) = sio_ws(&server, &admin_auth()).await;
    send(&mut sock, "41").await;
    // The reference suite: the next thing the client gets is a ping, not a close.
    let got = frame(&mut sock, 2000).await;
    assert!(matches!(&got, Frame::Text(t) if t == "2"), "after DISCONNECT: {got:?}");
    send(&mut sock, "3").await;
    let answer = sio_connect_raw(&mut sock, &admin_auth()).await;
    assert!(json_after(&answer, "40").is_some_and(|v| v["sid"].is_string()), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_connects_is_closed_after_connect_timeout() {
    let server = start("connect_timeout = \"1s\"\n", &[]);
    let started = tokio::time::Instant::now();
    let (mut sock, _) = open_ws(&server).await;
    let closed = closed_within(&mut sock, 3000).await;
    let after = started.elapsed();
    closed.unwrap_or_else(|e| panic!("no CONNECT for {after:?}: {e}"));
    assert!(after >= std::time::Duration::from_millis(800), "closed too early, after {after:?}");
}
