//! Likes as guests and admins see them: one per identity however many tabs, counts the server
//! keeps (a guest cannot set one), the snapshot a joiner gets, and the order of a burst.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Http, Server, Sock, admin_token, room};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_holds_at_most_snapshot_max_photos_most_recent_first() {
    let server = Server::start_with(Some("[rooms]\nsnapshot_max_photos = 3\n"), &[]);
    let http = Http::new(&server);
    http.create_event("huge", None).await;
    for i in 0..8 {
        let (st, _) = http
            .call("POST", "/api/emit", Some(&admin_token()), Some(json!({"event": "photo:like", "data": {"eventSlug": "huge", "photo_id": format!("p{i}"), "likeCount": i + 1}})))
            .await;
        assert_eq!(st, 202);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let g = http.guest_session("huge").await;
    let mut s = Sock::guest(&server.url, &g, "huge").await;
    let snap = s.join("huge").await;
    assert_eq!(snap["likes"], json!({"p7": 8, "p6": 7, "p5": 6}));
    // The room's totals still count every photo.
    assert_eq!(room(&http, "huge").await["likes"], 36);
}
