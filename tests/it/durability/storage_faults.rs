//! Storage that starts failing: the breaker opens, senders are told, `/health` degrades, relaying
//! goes on, admins are notified, and a trial write after the cool-down recovers. The server runs
//! in-process so its store can be wrapped with a fault-injecting flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{Http, SECRET, Sock, admin_token};
use hafi_realtime::App;
use hafi_realtime::Config;
use hafi_realtime::Shutdown;
use hafi_realtime::Tokens;
use hafi_realtime::{Flush, Store, StoreOptions};
use serde_json::{Value, json};

struct Faulty {
    inner: Arc<dyn Flush>,
    failing: Arc<AtomicBool>,
}

impl Flush for Faulty {
    fn flush(&self) -> Result<(), String> {
        if self.failing.load(Ordering::SeqCst) { Err("injected disk failure".into()) } else { self.inner.flush() }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_degrades_relays_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let opts = StoreOptions {
        flush_wrapper: Some(Box::new(move |inner| Arc::new(Faulty { inner, failing: f }) as Arc<dyn Flush>)),
        breaker_open_for: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), opts).unwrap();
    let config = Config {
        host: [127, 0, 0, 1].into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        secret: Some(SECRET.into()),
        ..Config::default()
    };
    let shutdown = Shutdown::default();
    let app = App::new(config, store, Tokens::new(SECRET).unwrap(), shutdown.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(hafi_realtime::serve(app, listener));
    let http = Http::with_base(&url);

    http.create_event("storm", None).await;
    let (ga, gb) = (http.guest_session("storm").await, http.guest_session("storm").await);
    let mut admin = Sock::with_token(&url, &admin_token()).await;
    admin.emit("admin:join", Value::Null).await;
    let mut a = Sock::guest(&url, &ga, "storm").await;
    a.join("storm").await;
    let mut b = Sock::guest(&url, &gb, "storm").await;
    b.join("storm").await;

    failing.store(true, Ordering::SeqCst);
    // Error replies are limited to one per second per event name and socket: one socket each.
    for i in 0..5 {
        let mut s = Sock::guest(&url, &ga, "storm").await;
        s.emit("photo:like", json!({"eventSlug": "storm", "photo_id": format!("p{i}")})).await;
        let e = s.expect("error", 3000).await;
        s.close().await;
        assert_eq!(
            (e["message"].clone(), e["event"].clone()),
            (json!("Service temporarily unavailable"), json!("photo:like"))
        );
    }
    let n = admin.expect_where("admin:notification", 3000, |v| v["type"] == "system").await;
    assert!(n["data"]["message"].as_str().unwrap().contains("failing"), "{n}");
    let (st, health) = http.call("GET", "/health", None, None).await;
    assert_eq!((st, health["status"].clone()), (503, json!("degraded")));

    // Open: writes fail fast, HTTP writes get 503, relaying needs no storage and goes on.
    let t = std::time::Instant::now();
    a.emit("photo:like", json!({"eventSlug": "storm", "photo_id": "fast"})).await;
    assert_eq!(a.expect("error", 3000).await["message"], "Service temporarily unavailable");
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(
        http.call("POST", "/api/admin/events", Some(&admin_token()), Some(json!({"slug": "nope"}))).await.0,
        503
    );
    a.emit("photo:comment", json!({"eventSlug": "storm", "photo_id": "p1", "comment": "still here"})).await;
    assert_eq!(b.expect("photo:comment", 3000).await["comment"], "still here");
    b.expect_none("photo:like", 300).await;

    // The disk heals; after the cool-down one trial write closes the breaker.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.emit("photo:like", json!({"eventSlug": "storm", "photo_id": "after"})).await;
    let like = b.expect("photo:like", 3000).await;
    assert_eq!((like["photo_id"].clone(), like["likeCount"].clone()), (json!("after"), json!(1)));
    let n = admin.expect_where("admin:notification", 3000, |v| v["type"] == "system").await;
    assert!(n["data"]["message"].as_str().unwrap().contains("recovered"), "{n}");
    assert_eq!(http.call("GET", "/health", None, None).await.0, 200);

    // Nothing refused was stored: only the like after recovery counts.
    let mut c = Sock::guest(&url, &ga, "storm").await;
    let snap = c.join("storm").await;
    assert_eq!(snap["likes"], json!({"after": 1}));
    assert_eq!(snap["likedByMe"], json!(["after"]));

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}
