//! Guest sessions and access codes under abuse: new sessions per IP come in a burst and then 429
//! (with a venue's burst of 100 admitted by default), and wrong codes are limited per client and
//! per event, the event's trip told to the admins once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Http, Server, Sock, admin_token, post_as, retry_after};

async fn access(c: &reqwest::Client, server: &Server, slug: &str, ip: &str, code: Option<&str>) -> reqwest::Response {
    post_as(c, format!("{}/api/gallery/{slug}/access", server.url), ip, json!({ "access_code": code })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_guest_sessions_per_ip_burst_then_429() {
    let server =
        Server::start_with(Some("[limits]\ngallery_access_per_ip = { rate = 1, per = \"1h\", burst = 3 }\n"), &[]);
    Http::new(&server).create_event("open", None).await;
    let c = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(access(&c, &server, "open", "198.51.100.10", None).await.status().as_u16(), 201);
    }
    let r = access(&c, &server, "open", "198.51.100.10", None).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(retry_after(&r) > 60, "Retry-After {} for a bucket of one per hour", retry_after(&r));
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(
        access(&c, &server, "open", "198.51.100.11", None).await.status().as_u16(),
        201,
        "another client is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_admit_a_venue_burst_of_100_sessions_then_refuse() {
    let server = Server::start();
    Http::new(&server).create_event("venue", None).await;
    let c = reqwest::Client::new();
    let ip = "198.51.100.77";
    // The HTTP API bucket (burst 40, 20/s) is respected: 40 at once, then 8 every half second.
    let mut statuses = Vec::new();
    let mut sent = 0;
    let started = Instant::now();
    while sent < 100 {
        let wave = if sent == 0 { 40 } else { 8.min(100 - sent) };
        let calls = (0..wave).map(|_| access(&c, &server, "venue", ip, None));
        for r in futures_util::future::join_all(calls).await {
            statuses.push(r.status().as_u16());
        }
        sent += wave;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let r = access(&c, &server, "venue", ip, None).await;
    assert_eq!(r.status().as_u16(), 429, "101st session within {:?}", started.elapsed());
    // The session bucket's wait (minutes), not the HTTP bucket's (under a second).
    assert!(retry_after(&r) >= 2, "Retry-After {}", retry_after(&r));
    assert_eq!(access(&c, &server, "venue", "198.51.100.78", None).await.status().as_u16(), 201);
}

const CODE_LIMITS: &str = "[limits]\naccess_code_failures_per_ip = { rate = 1, per = \"1h\", burst = 4 }\naccess_code_failures_per_event = { rate = 1, per = \"1h\", burst = 6 }\n";

async fn coded_event(server: &Server, slug: &str) {
    let (st, body) = Http::new(server)
        .call("POST", "/api/admin/events", Some(&admin_token()), Some(json!({"slug": slug, "accessCode": "ZX81AB"})))
        .await;
    assert_eq!(st, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_per_ip_then_even_the_right_code_is_refused() {
    let server = Server::start_with(Some(CODE_LIMITS), &[]);
    coded_event(&server, "coded").await;
    let c = reqwest::Client::new();
    let guesser = "198.51.100.20";
    for guess in ["AAAAAA", "BBBBBB", "CCCCCC", "DDDDDD"] {
        assert_eq!(access(&c, &server, "coded", guesser, Some(guess)).await.status().as_u16(), 403);
    }
    let wrong = access(&c, &server, "coded", guesser, Some("EEEEEE")).await;
    assert_eq!(wrong.status().as_u16(), 429);
    let right = access(&c, &server, "coded", guesser, Some("ZX81AB")).await;
    assert_eq!(right.status().as_u16(), 429, "the right code must be refused too while limited");
    assert!(retry_after(&right) > 60, "Retry-After {}", retry_after(&right));
    // Another client, and the event as a whole, are not limited yet.
    let other = access(&c, &server, "coded", "198.51.100.21", Some("zx81ab")).await;
    assert_eq!(other.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_per_event_trip_once_and_tell_the_admins() {
    let server = Server::start_with(Some(CODE_LIMITS), &[]);
    coded_event(&server, "coded").await;
    coded_event(&server, "coded-two").await;
    let mut admin = Sock::with_token(&server.url, &admin_token()).await;
    admin.emit("admin:join", Value::Null).await;
    admin.emit("admin:notification", json!({"type": "ready", "data": null})).await;
    admin.expect_where("admin:notification", 5000, |v| v["type"] == "ready").await;
    let c = reqwest::Client::new();
    // Six wrong codes from three clients (each under its own limit) empty the event's bucket.
    for (i, ip) in ["198.51.100.31", "198.51.100.32", "198.51.100.33"].iter().enumerate() {
        for j in 0..2 {
            let guess = format!("AAAA{i}{j}");
            assert_eq!(access(&c, &server, "coded", ip, Some(&guess)).await.status().as_u16(), 403);
        }
    }
    let security = |events: &[(String, Value)]| {
        events.iter().filter(|(n, v)| n == "admin:notification" && v["type"] == "security").count()
    };
    assert_eq!(security(&admin.drain(300).await), 0, "no notification before the limit trips");
    // A fresh client with the right code: the event is limited.
    let r = access(&c, &server, "coded", "198.51.100.34", Some("ZX81AB")).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(retry_after(&r) > 60);
    let note = admin.expect_where("admin:notification", 5000, |v| v["type"] == "security").await;
    assert_eq!(note["data"]["eventSlug"], "coded", "{note}");
    assert!(note["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{note}");
    assert!(note["timestamp"].is_string());
    // Still refused, but the admins heard once.
    assert_eq!(access(&c, &server, "coded", "198.51.100.35", Some("BBBBBB")).await.status().as_u16(), 429);
    assert_eq!(security(&admin.drain(500).await), 0, "one notification per trip");
    // Another event is not affected.
    assert_eq!(access(&c, &server, "coded-two", "198.51.100.35", Some("ZX81AB")).await.status().as_u16(), 201);
}
