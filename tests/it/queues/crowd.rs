//! A venue's guests re-joining all at once get coalesced presence messages, each ending on the
//! final count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Presence, Ws, addr, connect, event, join, presence};
use crate::support::{Http, Server};

/// What one guest of the crowd saw.
struct Seen {
    snapshot_count: u64,
    /// Presence messages before its snapshot (its own `guest:joined` last).
    before: Presence,
    /// Presence messages after its snapshot.
    after: Presence,
    disconnected: bool,
}

/// Returns what the guest saw, and its connection still open: one guest closing must not show
/// up as a `guest:left` in another's record.
async fn crowd_guest(
    server: SocketAddr,
    i: usize,
    joined: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> (Seen, Option<Ws>) {
    let auth = json!({"guestSessionId": format!("crowd-guest-{i}"), "eventSlug": "reunion"});
    let mut ws = connect(server, &auth, None).await;
    let (snapshot, before) = join(&mut ws, "reunion").await;
    joined.fetch_add(1, Ordering::AcqRel);
    let mut seen = Seen {
        snapshot_count: snapshot["guestCount"].as_u64().unwrap_or(0),
        before,
        after: Vec::new(),
        disconnected: false,
    };
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    let _ = ws.send(Message::text("3")).await;
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some((name, data)) = event(t.as_str()) {
                        seen.after.extend(presence(&name, &data));
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    seen.disconnected = true;
                    return (seen, None);
                }
            },
            _ = stop.changed() => return (seen, Some(ws)),
        }
    }
}

const CROWD_LIMITS: &str =
    "[limits]\nmax_connections_per_ip = 1000\nconnect_per_ip = { rate = 1000, per = \"1s\", burst = 1000 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_rejoining_at_once_gets_coalesced_presence_ending_on_the_final_count() {
    let _heavy = crate::support::heavy().await;
    const G: usize = 200;
    let server = Server::start_with(Some(CROWD_LIMITS), &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    Http::new(&server).create_event("reunion", None).await;
    let joined = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut guests = Vec::new();
    for i in 0..G {
        guests.push(tokio::spawn(crowd_guest(addr(&server), i, joined.clone(), stop_rx.clone())));
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    crate::support::wait_for_count(&joined, G, 30, "guests joined").await;
    let all_joined = started.elapsed();
    // Long enough for the last window to end and send.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx.send(true).unwrap();

    let mut total = 0usize;
    let mut open = Vec::new();
    for (i, g) in guests.into_iter().enumerate() {
        let (seen, ws) =
            tokio::time::timeout(Duration::from_secs(5), g).await.expect("guest task ends").expect("guest task");
        open.push(ws);
        assert!(!seen.disconnected, "guest {i} was disconnected");
        let own = seen.before.last().unwrap_or_else(|| panic!("guest {i} got no guest:joined before its snapshot"));
        assert_eq!(
            own,
            &("guest:joined".to_string(), seen.snapshot_count),
            "guest {i}: its own guest:joined, then the snapshot"
        );
        let all: Vec<_> = seen.before.iter().chain(&seen.after).collect();
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1), "guest {i}: a stale count after a newer one: {all:?}");
        let last = all.last().map(|(_, c)| *c);
        assert_eq!(last, Some(G as u64), "guest {i} ends on the wrong count: {all:?}");
        assert!(all.iter().all(|(name, _)| name == "guest:joined"), "guest {i}: {all:?}");
        total += all.len();
    }
    println!(
        "{G} guests joined in {all_joined:?}; {total} presence messages in all (one per join to the whole room would be {})",
        G * (G + 1) / 2
    );
    assert!(total < G * G / 4, "{total} presence messages for {G} joins: not coalesced");
}
