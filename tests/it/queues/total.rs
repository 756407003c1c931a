//! The bound on all sockets' unsent bytes together (`outgoing_total_bytes`): when several readers
//! stop at once, the largest queues are shed before any one of them reaches its own bound, and a
//! reader that keeps up is never touched.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::Http;
use crate::support::raw::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const NO_VALIDATION: (&str, &str) = ("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true");
const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_queues_are_shed_when_all_together_pass_the_total() {
    let _heavy = crate::support::heavy().await;
    // Each socket may hold 1 MiB, all of them together 1 MiB too: three stalled readers pass
    // the total when each holds about a third of it.
    let server = start("outgoing_queue_bytes = 1048576\noutgoing_total_bytes = 1048576\n", &[NO_VALIDATION]);
    Http::new(&server).create_event("total", None).await;

    // The reader that keeps up.
    let (mut live, _) = sio_ws(&server, &guest_auth("live", "total")).await;
    join(&mut live, "total").await;
    let live = Reader::spawn(live);
    let (got, bytes, closed) = (&live.comments, &live.bytes, &live.closed);
    // Three readers that stop reading, with small receive buffers.
    let mut stalled = Vec::new();
    for i in 0..3 {
        let (mut ws, _) = sio_ws_at(addr(&server), &guest_auth(&format!("stalled-{i}"), "total"), Some(4096)).await;
        join(&mut ws, "total").await;
        stalled.push(ws);
    }

    let (mut admin, _) = sio_ws(&server, &admin_auth()).await;
    let filler = "y".repeat(1900);
    let started = Instant::now();
    let mut sent = 0usize;
    let mut shed_at_room_bytes = None;
    while sent < 2000 && started.elapsed() < Duration::from_secs(30) {
        // Under the admin event limit (200/s, burst 400).
        while sent >= 300 + (150.0 * started.elapsed().as_secs_f64()) as usize {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..10 {
            let frame = json!(["photo:comment", {"eventSlug": "total", "photo_id": "p", "comment": format!("{sent}:{filler}")}]);
            admin.send(Message::text(format!("42{frame}"))).await.expect("admin send");
            sent += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.load(Ordering::Acquire) < sent {
            assert!(
                Instant::now() < deadline,
                "the live reader fell behind: {} of {sent}",
                got.load(Ordering::Acquire)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let reset = stalled.iter().filter(|ws| ws.get_ref().take_error().ok().flatten().is_some()).count();
        if reset > 0 {
            shed_at_room_bytes = Some((bytes.load(Ordering::Acquire), reset));
            break;
        }
    }
    let (room_bytes, reset) = shed_at_room_bytes.unwrap_or_else(|| {
        panic!("no stalled reader was shed after {sent} comments ({} bytes)", bytes.load(Ordering::Acquire))
    });
    println!("{reset} stalled reader(s) reset after {room_bytes} bytes went to the room");
    // Each stalled reader was sent less than its own bound: the total shed it.
    assert!(room_bytes < MIB, "shed only after {room_bytes} bytes, which its own bound explains");
    assert!(reset < 3, "all three were shed; the total needed only the largest to go");
    // Sending goes on: the live reader is still connected and gets every comment.
    for _ in 0..10 {
        let frame =
            json!(["photo:comment", {"eventSlug": "total", "photo_id": "p", "comment": format!("{sent}:after")}]);
        admin.send(Message::text(format!("42{frame}"))).await.expect("admin send");
        sent += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.load(Ordering::Acquire) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(got.load(Ordering::Acquire), sent, "the live reader missed comments");
    assert!(live.in_order.load(Ordering::Acquire), "the live reader got comments out of order");
    assert!(!closed.load(Ordering::Acquire), "the live reader was disconnected");
}

/// A reader that reads slowly through a small receive buffer makes the server's direct writes
/// stop part-way through frames: the rest of a frame must go out before any later frame, so the
/// reader still gets every frame whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_every_frame_whole_and_in_order() {
    let _heavy = crate::support::heavy().await;
    let server = start("", &[NO_VALIDATION]);
    Http::new(&server).create_event("slow", None).await;
    let (mut slow, _) = sio_ws_at(addr(&server), &guest_auth("slow", "slow"), Some(4096)).await;
    join(&mut slow, "slow").await;
    let (mut admin, _) = sio_ws(&server, &admin_auth()).await;
    // 300 uploads of 3 to 5 KB, 100 a second: about 1.2 MB in all, more than the kernel holds,
    // while the reader drains as it goes.
    const N: usize = 300;
    let sender = tokio::spawn(async move {
        let started = Instant::now();
        for i in 0..N {
            while i >= 20 + (100.0 * started.elapsed().as_secs_f64()) as usize {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let body = "z".repeat(3000 + (i * 37) % 2000);
            let frame = json!(["photo:upload:complete", {"eventSlug": "slow", "photo": {"seq": i, "blob": body}}]);
            admin.send(Message::text(format!("42{frame}"))).await.expect("admin send");
        }
        admin
    });
    let mut next = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < N {
        assert!(Instant::now() < deadline, "only {next} of {N} frames arrived");
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => slow.send(Message::text("3")).await.expect("pong"),
            Ok(Some(Ok(Message::Text(t)))) => {
                let Some((name, data)) = event(t.as_str()) else { continue };
                if name != "photo:upload:complete" {
                    continue;
                }
                assert_eq!(data["photo"]["seq"].as_u64(), Some(next as u64), "out of order");
                let body = data["photo"]["blob"].as_str().expect("blob");
                assert_eq!(body.len(), 3000 + (next * 37) % 2000, "frame {next} cut");
                assert!(body.bytes().all(|b| b == b'z'), "frame {next} corrupted");
                next += 1;
                if next.is_multiple_of(20) {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the slow reader's connection ended after {next} frames: {other:?}"),
        }
    }
    drop(sender.await.expect("sender"));
}
