//! The gallery protocol driven by the `rust_socketio` client against the real binary.

mod common;

use common::{CONNECT_ERROR, Http, Server, Sock, admin_token, token};
use serde_json::{Value, json};

fn is_iso_millis(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && chrono_like(s)
}

fn chrono_like(s: &str) -> bool {
    s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T'
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_snapshot_distinct_guests_and_likes() {
    let server = Server::start();
    let http = Http::new(&server);
    http.create_event("wedding", None).await;
    let g1 = http.guest_session("wedding").await;
    let g2 = http.guest_session("wedding").await;

    let mut a = Sock::guest(&server.url, &g1, "wedding").await;
    let snap = a.join("wedding").await;
    assert_eq!(snap["eventSlug"], "wedding");
    assert_eq!(snap["guestCount"], 1);
    assert_eq!(snap["totalGuests"], 1);
    assert_eq!(snap["likes"], json!({}));
    assert_eq!(snap["likedByMe"], json!([]));
    assert!(is_iso_millis(&snap["timestamp"]), "{snap}");

    // A second socket of the same session is the same guest.
    let mut a2 = Sock::guest(&server.url, &g1, "wedding").await;
    a2.join("wedding").await;
    let joined = a.expect("guest:joined", 3000).await;
    assert_eq!(joined["guestCount"], 1, "{joined}");

    let mut b = Sock::guest(&server.url, &g2, "wedding").await;
    let snap_b = b.join("wedding").await;
    assert_eq!(snap_b["guestCount"], 2);
    assert_eq!(snap_b["totalGuests"], 2);
    assert_eq!(snap_b["peakGuests"], 2);
    assert_eq!(a.expect("guest:joined", 3000).await["guestCount"], 2);

    // A like is stored per identity and broadcast with the stored count.
    a.emit("photo:like", json!({"eventSlug": "wedding", "photo_id": 17, "likeCount": 999})).await;
    let like = b.expect("photo:like", 3000).await;
    assert_eq!(like["photo_id"], "17");
    assert_eq!(like["likeCount"], 1, "a guest cannot set the count");
    assert!(is_iso_millis(&like["timestamp"]));
    // The same session from its other tab: idempotent, nothing broadcast.
    a2.emit("photo:like", json!({"eventSlug": "wedding", "photoId": "17"})).await;
    b.expect_none("photo:like", 600).await;
    b.emit("photo:like", json!({"eventSlug": "wedding", "photo_id": "17"})).await;
    a.expect_where("photo:like", 3000, |v| v["likeCount"] == 2).await;

    // A later joiner's snapshot carries counts and its own likes.
    let mut b2 = Sock::guest(&server.url, &g2, "wedding").await;
    let snap = b2.join("wedding").await;
    assert_eq!(snap["likes"], json!({"17": 2}));
    assert_eq!(snap["likedByMe"], json!(["17"]));

    b.emit("photo:unlike", json!({"eventSlug": "wedding", "photo_id": "17"})).await;
    a.expect_where("photo:like", 3000, |v| v["likeCount"] == 1).await;

    // Leaving: the room hears the count of distinct guests that remain.
    b.close().await;
    b2.close().await;
    let left = a.expect("guest:left", 3000).await;
    assert!(left["guestCount"] == 2 || left["guestCount"] == 1);
    let mut last = left;
    while last["guestCount"] != 1 {
        last = a.expect("guest:left", 3000).await;
    }
    assert_eq!(last["guestCount"], 1);
}

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

/// One socket sending likes, unlikes and comments back to back (as the web app's broadcaster
/// does): likes are applied ahead of the broadcasts of earlier events, yet the room sees every
/// effect in the order sent, with counts that follow the order, and the stored state matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_burst_keeps_its_order() {
    let server = Server::start();
    let http = Http::new(&server);
    http.create_event("burst", None).await;
    let g = http.guest_session("burst").await;
    let mut watcher = Sock::guest(&server.url, &g, "burst").await;
    watcher.join("burst").await;
    let sender = Sock::with_token(&server.url, &admin_token()).await;

    let mut expected = Vec::new();
    for i in 0..40 {
        let p = format!("p{i}");
        sender.emit("photo:like", json!({"eventSlug": "burst", "photo_id": p})).await;
        expected.push(("photo:like".to_string(), p.clone(), Some(1)));
        sender.emit("photo:comment", json!({"eventSlug": "burst", "photo_id": p, "comment": format!("c{i}")})).await;
        expected.push(("photo:comment".to_string(), p.clone(), None));
        // The same photo toggled by every step: these may not be applied ahead of each other.
        let (ev, count) = if i % 2 == 0 { ("photo:like", 1) } else { ("photo:unlike", 0) };
        sender.emit(ev, json!({"eventSlug": "burst", "photo_id": "same"})).await;
        expected.push(("photo:like".to_string(), "same".to_string(), Some(count)));
    }
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.len() < expected.len() && tokio::time::Instant::now() < deadline {
        for (name, v) in watcher.drain(200).await {
            if name == "photo:like" || name == "photo:comment" {
                seen.push((name, v["photo_id"].as_str().unwrap_or("").to_string(), v["likeCount"].as_u64()));
            }
        }
    }
    assert_eq!(seen, expected);

    let mut late = Sock::guest(&server.url, &g, "burst").await;
    let snap = late.join("burst").await;
    assert_eq!(snap["likes"]["same"], 0, "{snap}");
    assert_eq!(snap["likes"]["p39"], 1, "{snap}");
    assert_eq!(snap["likes"].as_object().map(|m| m.len()), Some(41), "{snap}");
}
