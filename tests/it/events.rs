//! The gallery's socket events against the real binary: who may connect (the handshake's
//! refusals), what guests, owners and admins may send, and malformed payloads that change nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{CONNECT_ERROR, Http, Server, Sock, admin_token, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refusals() {
    let server = Server::start();
    let http = Http::new(&server);
    http.create_event("a", None).await;
    http.create_event("b", None).await;
    let ga = http.guest_session("a").await;

    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "Authentication required"),
        (json!({"token": "not-a-jwt"}), "Authentication required"),
        (json!({"guestSessionId": "guest_unknown", "eventSlug": "a"}), "Invalid guest session"),
        (json!({"guestSessionId": ga, "eventSlug": "b"}), "Invalid guest session"),
        (json!({"guestSessionId": ga}), "Invalid event"),
        (json!({"guestSessionId": ga, "eventSlug": "Not A Slug!"}), "Invalid event"),
    ];
    for (auth, want) in cases {
        let mut s = Sock::connect(&server.url, auth.clone()).await;
        let err = s.expect(CONNECT_ERROR, 3000).await;
        assert_eq!(err["message"], want, "auth {auth}");
    }

    // Archived event: its sessions no longer connect.
    let (st, _) =
        http.call("PATCH", "/api/admin/events/a", Some(&admin_token()), Some(json!({"status": "ARCHIVED"}))).await;
    assert_eq!(st, 200);
    let mut s = Sock::guest(&server.url, &ga, "a").await;
    assert_eq!(s.expect(CONNECT_ERROR, 3000).await["message"], "Invalid event");

    // eventId is accepted in place of eventSlug (older clients).
    let gb = http.guest_session("b").await;
    let mut s = Sock::connect(&server.url, json!({"guestSessionId": gb, "eventId": "b"})).await;
    s.join("b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_owner_admin_guest() {
    let server = Server::start();
    let http = Http::new(&server);
    http.create_event("mine", Some("u7")).await;
    http.create_event("other", Some("u8")).await;
    let g = http.guest_session("mine").await;

    let mut guest = Sock::guest(&server.url, &g, "mine").await;
    guest.join("mine").await;
    let mut owner = Sock::with_token(&server.url, &token("u7", "PHOTOGRAPHER")).await;
    owner.join("mine").await;
    let mut admin = Sock::with_token(&server.url, &admin_token()).await;
    admin.emit("admin:join", Value::Null).await;

    // The owner may not enter someone else's event.
    owner.emit("event:join", json!("other")).await;
    let e = owner.expect("error", 3000).await;
    assert_eq!(e["message"], "Access denied to this event");

    // A guest may not join another event.
    guest.emit("event:join", json!("other")).await;
    assert_eq!(guest.expect("error", 3000).await["message"], "Access denied to this event");

    // Owner relays uploads and updates to the room.
    owner
        .emit("photo:upload:progress", json!({"eventSlug": "mine", "photo_id": 5, "progress": 40, "filename": "a.jpg"}))
        .await;
    let p = guest.expect("photo:upload:progress", 3000).await;
    assert_eq!(
        (p["photo_id"].clone(), p["progress"].clone(), p["filename"].clone()),
        (json!("5"), json!(40), json!("a.jpg"))
    );
    owner.emit("photo:upload:complete", json!({"eventSlug": "mine", "photo": {"id": 5, "url": "/p/5.jpg"}})).await;
    assert_eq!(guest.expect("photo:upload:complete", 3000).await["photo"]["id"], 5);
    owner.emit("event:update", json!({"eventSlug": "mine", "updates": {"name": "New"}})).await;
    assert_eq!(guest.expect("event:update", 3000).await["updates"]["name"], "New");

    // A guest may not.
    owner.drain(300).await;
    guest.emit("event:update", json!({"eventSlug": "mine", "updates": {"name": "x"}})).await;
    assert_eq!(guest.expect("error", 3000).await["message"], "Access denied to this event");
    owner.expect_none("event:update", 500).await;

    // Admin room.
    guest.emit("admin:join", Value::Null).await;
    assert_eq!(guest.expect("error", 3000).await["message"], "Admin access required");
    guest.emit("admin:notification", json!({"type": "x", "data": 1})).await;
    assert_eq!(guest.expect("error", 3000).await["message"], "Admin access required");
    owner.emit("admin:notification", json!({"type": "x", "data": 1})).await;
    assert_eq!(owner.expect("error", 3000).await["message"], "Admin access required");
    admin.emit("admin:notification", json!({"type": "order", "data": {"id": 9}})).await;
    let n = admin.expect("admin:notification", 3000).await;
    assert_eq!((n["type"].clone(), n["data"]["id"].clone()), (json!("order"), json!(9)));
    admin.drain(300).await;

    // Admin-set like counts are the truth.
    admin.emit("photo:like", json!({"eventSlug": "mine", "photo_id": "p", "likeCount": 41})).await;
    assert_eq!(guest.expect("photo:like", 3000).await["likeCount"], 41);
    guest.emit("photo:like", json!({"eventSlug": "mine", "photo_id": "p"})).await;
    owner.expect_where("photo:like", 3000, |v| v["likeCount"] == 42).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_change_nothing() {
    let server = Server::start();
    let http = Http::new(&server);
    http.create_event("w", None).await;
    let g = http.guest_session("w").await;
    let mut watcher = Sock::guest(&server.url, &g, "w").await;
    watcher.join("w").await;

    let long = "x".repeat(300);
    let events = [
        "event:join",
        "event:leave",
        "photo:like",
        "photo:unlike",
        "photo:comment",
        "photo:upload:progress",
        "photo:upload:complete",
        "event:update",
        "admin:notification",
        "no:such:event",
    ];
    let payloads = [
        json!(null),
        json!(12),
        json!([1, 2]),
        json!({"eventSlug": 5}),
        json!({"eventSlug": "w".repeat(150), "photo_id": long, "comment": "x".repeat(5000), "progress": "x", "updates": 1, "photo": 2, "type": 3}),
    ];
    // Error replies are limited to one per second per event name and socket: each payload
    // round uses a fresh socket, and sends every event name once.
    let mut sent = 0;
    for p in &payloads {
        let mut bad = Sock::with_token(&server.url, &admin_token()).await;
        for ev in events {
            bad.emit(ev, p.clone()).await;
            sent += 1;
        }
        let mut answered: Vec<String> = Vec::new();
        for _ in events {
            let e = bad.expect("error", 3000).await;
            assert_eq!(e["message"], "Invalid payload", "{e} for {p}");
            answered.push(e["event"].as_str().unwrap().to_string());
        }
        answered.sort();
        let mut want: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        want.sort();
        assert_eq!(answered, want, "payload {p}");
        bad.close().await;
    }
    assert_eq!(sent, 50);
    let seen: Vec<String> = watcher.drain(500).await.into_iter().map(|(n, _)| n).collect();
    assert!(seen.is_empty(), "watcher saw {seen:?}");
    // Still serving, nothing changed.
    let snap = watcher.join("w").await;
    assert_eq!(snap["likes"], json!({}));
    let (st, _) = http.call("GET", "/health", None, None).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_object_auth_is_authentication_failed() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start();
    let addr = server.url.trim_start_matches("http://").to_string();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::text("40[\"not\",\"an object\"]")).await.unwrap();
    let reply = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("no reply").unwrap().unwrap();
        if let Message::Text(t) = msg {
            if t.as_str() == "2" {
                ws.send(Message::text("3")).await.unwrap();
                continue;
            }
            break t.as_str().to_string();
        }
    };
    assert_eq!(reply, "44{\"message\":\"Authentication failed\"}");
}

/// SPEC §1 puts `guest_comments` in `[storage]`: a server started with that file must start, and
/// keep a guest's comment from the room while the admins get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_comments_set_where_the_spec_puts_it() {
    let server = Server::start_with(Some("[storage]\nguest_comments = \"admins-only\"\n"), &[]);
    let http = Http::new(&server);
    http.create_event("quiet", None).await;
    let (a, b) = (http.guest_session("quiet").await, http.guest_session("quiet").await);
    let mut writer = Sock::guest(&server.url, &a, "quiet").await;
    writer.join("quiet").await;
    let mut reader = Sock::guest(&server.url, &b, "quiet").await;
    reader.join("quiet").await;
    let mut admin = Sock::with_token(&server.url, &admin_token()).await;
    admin.emit("admin:join", Value::Null).await;
    admin.drain(300).await;

    writer.emit("photo:comment", json!({"eventSlug": "quiet", "photo_id": "p1", "comment": "lovely"})).await;
    let c = admin.expect("photo:comment", 3000).await;
    assert_eq!((c["photo_id"].clone(), c["comment"].clone()), (json!("p1"), json!("lovely")));
    reader.expect_none("photo:comment", 500).await;
}
