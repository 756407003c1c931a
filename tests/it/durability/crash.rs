//! kill -9 in the middle of a like storm: after a restart every count is at least the last one
//! any client was sent, and equals the number of stored likers.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{Server, Sock};
use serde_json::{Value, json};

const GUESTS: usize = 12;
const PHOTOS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_acknowledged() {
    let mut server = Server::start_with(None, &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    let slug = "crash";
    let mut observer = Sock::guest(&server.url, "observer", slug).await;
    observer.join(slug).await;

    let mut likers = Vec::new();
    for g in 0..GUESTS {
        let s = Sock::guest(&server.url, &format!("guest{g}"), slug).await;
        likers.push(s);
    }
    // Every guest likes every photo, interleaved, as fast as the client sends.
    let mut tasks = Vec::new();
    for (g, s) in likers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for p in 0..PHOTOS {
                let photo = (p + g * 7) % PHOTOS;
                if s.client
                    .emit("photo:like", json!({"eventSlug": slug, "photo_id": format!("p{photo}")}))
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            s
        }));
    }
    // Record what clients are told until enough has been acknowledged, then pull the plug.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut broadcasts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while broadcasts < GUESTS * PHOTOS / 2 && tokio::time::Instant::now() < deadline {
        for (name, v) in observer.drain(20).await {
            if name == "photo:like" {
                broadcasts += 1;
                let c = seen.entry(v["photo_id"].as_str().unwrap().to_string()).or_default();
                *c = (*c).max(v["likeCount"].as_u64().unwrap());
            }
        }
    }
    server.kill9();
    // Anything that reached the observer's buffer before the kill was sent by the server too.
    for (name, v) in observer.drain(300).await {
        if name == "photo:like" {
            let c = seen.entry(v["photo_id"].as_str().unwrap().to_string()).or_default();
            *c = (*c).max(v["likeCount"].as_u64().unwrap());
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    assert!(broadcasts > 0, "no like was acknowledged before the kill");
    assert!(broadcasts < GUESTS * PHOTOS, "the kill came after the storm ended; it proves nothing");

    server.restart_after_stop();
    let mut after = Sock::guest(&server.url, "observer", slug).await;
    let snap = after.join(slug).await;
    let stored: HashMap<String, u64> =
        snap["likes"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    for (photo, count) in &seen {
        let s = stored.get(photo).copied().unwrap_or(0);
        assert!(s >= *count, "{photo}: a client saw {count}, the server now says {s}");
    }
    after.close().await;
    assert_eq!(server.stop(), Some(0));

    // Counts agree with the stored likers, photo by photo.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hafi-realtime"))
        .arg("export")
        .arg("--data-dir")
        .arg(server.data_dir())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let mut likers_per_photo: HashMap<String, u64> = HashMap::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["kind"].as_str() {
            Some("liker") => *likers_per_photo.entry(v["photo"].as_str().unwrap().to_string()).or_default() += 1,
            Some("like_count") => {
                counts.insert(v["photo"].as_str().unwrap().to_string(), v["count"].as_u64().unwrap());
            }
            _ => {}
        }
    }
    for (photo, count) in &counts {
        assert_eq!(likers_per_photo.get(photo).copied().unwrap_or(0), *count, "{photo}: count and likers disagree");
        assert!(*count <= GUESTS as u64);
    }
    assert_eq!(counts, stored, "snapshot and export agree");
}
