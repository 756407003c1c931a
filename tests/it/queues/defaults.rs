//! Outgoing queues with their default settings, over raw websockets: a reader that stops reading
//! is shed once more than `outgoing_queue_bytes` (1 MiB) waits for it, and its TCP connection is
//! closed within 5 s though it never reads again, while the room's other readers get every
//! comment; and state updates (presence) replace each other, so a reader that pauses while a
//! crowd arrives is kept and ends on the final count.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::raw::*;
use crate::support::{Http, admin_token};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const MIB: usize = 1 << 20;
const NO_VALIDATION: (&str, &str) = ("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true");

/// The admin's comments, paced under the admin event limit (200/s, burst 400) so that none is
/// refused: this many may have been sent `elapsed` after the start.
fn admin_budget(elapsed: Duration) -> usize {
    300 + (150.0 * elapsed.as_secs_f64()) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_closed_within_5_s_of_passing_1_mib_and_the_others_get_everything() {
    let _heavy = crate::support::heavy().await;
    let server = start("", &[NO_VALIDATION]);
    Http::new(&server).create_event("flood", None).await;
    let mut readers = Vec::new();
    for i in 0..3 {
        let (mut ws, _) = sio_ws(&server, &guest_auth(&format!("reader-{i}"), "flood")).await;
        join(&mut ws, "flood").await;
        readers.push(Reader::spawn(ws));
    }
    let (mut paused, _) = sio_ws_at(addr(&server), &guest_auth("paused", "flood"), Some(4096)).await;
    join(&mut paused, "flood").await;
    // From here on nothing reads `paused` until the end.

    let (admin, _) = sio_ws(&server, &admin_auth()).await;
    let (mut flood, mut admin_rx) = admin.split();
    let admin_seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = admin_seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = admin_rx.next().await {
            if let Message::Text(t) = m {
                seen.lock().unwrap().push(t.as_str().chars().take(200).collect());
            }
        }
    });

    let filler = "x".repeat(1900);
    let started = Instant::now();
    let mut sent = 0usize;
    let mut passed = None;
    let mut reset = None;
    while sent < 3000 {
        while sent >= admin_budget(started.elapsed()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..20 {
            let frame = json!(["photo:comment", {"eventSlug": "flood", "photo_id": "p1", "comment": format!("{sent}:{filler}")}]);
            flood.send(Message::text(format!("42{frame}"))).await.expect("admin send");
            sent += 1;
        }
        super::caught_up(&readers, sent, || format!("admin got {:?}", admin_seen.lock().unwrap())).await;
        let room_bytes = readers[0].bytes.load(Ordering::Acquire);
        if room_bytes > MIB && passed.is_none() {
            passed = Some((Instant::now(), sent));
        }
        if reset.is_none() {
            reset = paused.get_ref().take_error().ok().flatten().map(|e| (Instant::now(), e));
            // Unsent bytes never exceed what the room was sent: closed before 1 MiB is too early.
            assert!(
                reset.is_none() || room_bytes > MIB,
                "the paused reader was closed when only {room_bytes} bytes had been sent to the room"
            );
        }
        // Well past the limit, or already closed: stop.
        if room_bytes > MIB + MIB / 2 || reset.is_some() && passed.is_some() {
            break;
        }
    }
    let (passed_at, passed_after) = passed.unwrap_or_else(|| panic!("1 MiB never reached: {sent} comments"));
    let deadline = passed_at + Duration::from_secs(5);

    // Never reading: the server must have closed the connection by the deadline.
    while reset.is_none() && Instant::now() < deadline {
        reset = paused.get_ref().take_error().ok().flatten().map(|e| (Instant::now(), e));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Reading now: at most what was already delivered, then the end.
    let mut frames = 0usize;
    let read_until = Instant::now() + Duration::from_secs(2);
    let end = loop {
        match frame(&mut paused, read_until.saturating_duration_since(Instant::now()).as_millis() as u64).await {
            Frame::Closed(how) => break Some(how),
            Frame::Silent => break None,
            Frame::Text(_) | Frame::Binary(_) => frames += 1,
        }
    };
    let sent_to_room = readers[0].bytes.load(Ordering::Acquire);
    println!(
        "1 MiB passed after {passed_after} comments; {sent} comments ({sent_to_room} bytes) sent; reset {:?} after passing; reading afterwards: {frames} frames, then {end:?}",
        reset.as_ref().map(|(at, e)| (at.saturating_duration_since(passed_at), e.kind()))
    );
    match (&reset, &end) {
        (Some(_), Some(_)) => {}
        (None, Some(how)) => panic!(
            "not reset within 5 s of passing 1 MiB while unread; reading afterwards got {frames} frames, then {how}: the close waited behind unsent data"
        ),
        (_, None) => panic!(
            "the paused reader's connection is open 5 s after its queue passed 1 MiB ({frames} frames read afterwards, still open)"
        ),
    }
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.comments.load(Ordering::Acquire), sent, "reader {i} missed comments");
        assert!(r.in_order.load(Ordering::Acquire), "reader {i} got comments out of order");
        assert!(!r.closed.load(Ordering::Acquire), "reader {i} was disconnected");
    }
    let admin_errors: Vec<String> =
        admin_seen.lock().unwrap().iter().filter(|t| t.contains("\"error\"")).cloned().collect();
    assert!(admin_errors.is_empty(), "admin refused: {admin_errors:?}");
}

/// One guest of the crowd: connects, joins, keeps reading; at phase 1 guests 0..5 leave the room
/// and 5..10 close their connection; at phase 2 everyone stops.
async fn crowd_guest(
    addr: SocketAddr,
    i: usize,
    joined: Arc<AtomicUsize>,
    mut phase: watch::Receiver<u8>,
) -> Result<(), String> {
    let (mut ws, _) = sio_ws_at(addr, &guest_auth(&format!("crowd-{i}"), "crowd"), None).await;
    join(&mut ws, "crowd").await;
    joined.fetch_add(1, Ordering::AcqRel);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    let _ = ws.send(Message::text("3")).await;
                }
                Some(Ok(_)) => {}
                _ => return Err(format!("guest {i} disconnected")),
            },
            changed = phase.changed() => {
                let now = *phase.borrow();
                if changed.is_err() || now >= 2 {
                    return Ok(());
                }
                if i < 5 {
                    let _ = ws.send(Message::text("42[\"event:leave\",\"crowd\"]")).await;
                } else if i < 10 {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
        }
    }
}

/// The room's live guest count as the server reports it.
async fn room_count(http: &Http) -> Option<u64> {
    let (_, rooms) = http.call("GET", "/api/admin/rooms", Some(&admin_token()), None).await;
    rooms["rooms"].as_array()?.iter().find(|r| r["slug"] == "crowd")?["guestCount"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_paused_while_a_crowd_joins_is_kept_and_ends_on_the_final_count() {
    let _heavy = crate::support::heavy().await;
    const G: usize = 200;
    const LEAVING: usize = 10;
    let server = start("", &[NO_VALIDATION]);
    let http = Http::new(&server);
    http.create_event("crowd", None).await;
    let (mut paused, _) = sio_ws_at(addr(&server), &guest_auth("paused", "crowd"), Some(4096)).await;
    join(&mut paused, "crowd").await;
    // From here on `paused` is not read until the crowd has settled.

    let joined = Arc::new(AtomicUsize::new(0));
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let mut guests = Vec::new();
    for i in 0..G {
        guests.push(tokio::spawn(crowd_guest(addr(&server), i, joined.clone(), phase_rx.clone())));
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    crate::support::wait_for_count(&joined, G, 30, "guests joined").await;
    phase_tx.send(1).expect("phase");
    let expected = (1 + G - LEAVING) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut count = room_count(&http).await;
    while count != Some(expected) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        count = room_count(&http).await;
    }
    assert_eq!(count, Some(expected), "the server's own count");
    // Long enough for the last presence window to close and send.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Resume: read everything that waited, until the room is quiet.
    let mut presence = Vec::new();
    let mut frames = 0usize;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
        match frame(&mut paused, left.min(1500)).await {
            Frame::Text(t) if t == "2" => send(&mut paused, "3").await,
            Frame::Text(t) => {
                frames += 1;
                if let Some((name, data)) = event(&t).filter(|(n, _)| n == "guest:joined" || n == "guest:left") {
                    presence.push((name, data["guestCount"].as_u64().unwrap_or(u64::MAX)));
                }
            }
            Frame::Binary(_) => frames += 1,
            Frame::Closed(how) => {
                panic!("the paused reader was disconnected ({how}) after {frames} frames; presence {presence:?}")
            }
            Frame::Silent => break,
        }
    }
    println!("paused reader: {frames} frames after resuming, {} presence messages: {presence:?}", presence.len());
    assert_eq!(presence.last().map(|(_, c)| *c), Some(expected), "last presence message: {presence:?}");
    // Still connected and served.
    send(&mut paused, "425[\"photo:like\",{\"eventSlug\":\"crowd\",\"photo_id\":\"p1\"}]").await;
    let ack = text_where(&mut paused, 3000, |t| t.starts_with("435")).await.expect("the paused reader is still served");
    assert_eq!(ack_data(&ack, 5).map(|d| d[0]["ok"].clone()), Some(json!(true)), "{ack}");

    phase_tx.send(2).expect("phase");
    for (i, g) in guests.into_iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(5), g).await.expect("guest ends").expect("guest task");
        r.unwrap_or_else(|e| panic!("guest {i}: {e}"));
    }
}
