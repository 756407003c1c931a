//! State survives a clean restart: likes, likers, events, sessions, room totals.

use crate::support::{Http, Server, Sock, admin_token};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_likes_events_and_sessions() {
    let mut server = Server::start();
    let http = Http::new(&server);
    http.create_event("keep", Some("owner-1")).await;
    let g1 = http.guest_session("keep").await;
    let g2 = http.guest_session("keep").await;
    {
        let mut a = Sock::guest(&server.url, &g1, "keep").await;
        a.join("keep").await;
        let mut b = Sock::guest(&server.url, &g2, "keep").await;
        b.join("keep").await;
        a.emit("photo:like", json!({"eventSlug": "keep", "photo_id": "p1"})).await;
        assert_eq!(b.expect("photo:like", 3000).await["likeCount"], 1);
        b.emit("photo:like", json!({"eventSlug": "keep", "photo_id": "p1"})).await;
        a.expect_where("photo:like", 3000, |v| v["likeCount"] == 2).await;
        b.emit("photo:like", json!({"eventSlug": "keep", "photo_id": "p2"})).await;
        a.expect_where("photo:like", 3000, |v| v["photo_id"] == "p2" && v["likeCount"] == 1).await;
        a.close().await;
        b.close().await;
    }
    server.restart();
    let http = Http::new(&server);

    let (st, ev) = http.call("GET", "/api/admin/events/keep", Some(&admin_token()), None).await;
    assert_eq!((st, ev["ownerId"].clone()), (200, json!("owner-1")));
    // The session still connects, and its likes are still its own.
    let mut b = Sock::guest(&server.url, &g2, "keep").await;
    let snap = b.join("keep").await;
    assert_eq!(snap["likes"]["p1"], 2);
    assert_eq!(snap["likes"]["p2"], 1);
    let mut mine: Vec<String> =
        snap["likedByMe"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    mine.sort();
    assert_eq!(mine, vec!["p1", "p2"]);
    assert_eq!(snap["totalGuests"], 2);
    assert_eq!(snap["peakGuests"], 2);
    // Liking again after the restart is still idempotent.
    b.emit("photo:like", json!({"eventSlug": "keep", "photo_id": "p1"})).await;
    b.expect_none("photo:like", 600).await;
    b.emit("photo:unlike", json!({"eventSlug": "keep", "photo_id": "p1"})).await;
    assert_eq!(b.expect("photo:like", 3000).await["likeCount"], 1);
}
