//! A room large enough to be written by two threads: every phone still gets every comment once,
//! in order.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{addr, connect, join};
use crate::support::raw::Reader;
use crate::support::{Http, Server, admin_token};

/// A room of 2,048 members or more is written to by two threads, half each (see
/// `Engine::broadcast`). Every member must still get every comment once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phone_of_a_room_of_two_thousand_gets_every_comment_once_and_in_order() {
    let _heavy = crate::support::heavy().await;
    const G: usize = 2_100;
    const COMMENTS: usize = 20;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let limits = "[limits]\nmax_connections_per_ip = 5000\nconnect_per_ip = { rate = 5000, per = \"1s\", burst = 5000 }\n\
                  [limits.events]\nadmin = { rate = 1000, per = \"1s\", burst = 1000 }\n";
    let server = Server::start_with(Some(limits), &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    Http::new(&server).create_event("stadium", None).await;
    let at = addr(&server);

    let mut readers = Vec::with_capacity(G);
    for batch in 0..G.div_ceil(100) {
        let joins: Vec<_> = (batch * 100..((batch + 1) * 100).min(G))
            .map(|i| {
                tokio::spawn(async move {
                    let auth = json!({"guestSessionId": format!("stadium-{i}"), "eventSlug": "stadium"});
                    let mut ws = connect(at, &auth, None).await;
                    join(&mut ws, "stadium").await;
                    ws
                })
            })
            .collect();
        for j in joins {
            readers.push(Reader::spawn(j.await.expect("guest joins")));
        }
    }

    let mut admin = connect(at, &json!({"token": admin_token()}), None).await;
    for seq in 0..COMMENTS {
        let frame =
            json!(["photo:comment", {"eventSlug": "stadium", "photo_id": "p1", "comment": format!("{seq}:cheers")}]);
        admin.send(Message::text(format!("42{frame}"))).await.expect("comment");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while readers.iter().any(|r| r.comments.load(Ordering::Acquire) < COMMENTS) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer, so a comment delivered twice would be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.comments.load(Ordering::Acquire), COMMENTS, "phone {i} got a wrong number of comments");
        assert!(r.in_order.load(Ordering::Acquire), "phone {i} got comments out of order");
        assert!(!r.closed.load(Ordering::Acquire), "phone {i} was disconnected");
    }
}
