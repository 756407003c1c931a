//! The login endpoint that admin users use: a token for the HTTP API and sockets, the same answer
//! for a wrong password and an unknown user, five attempts per minute per IP, and a flood of
//! logins answered at once within bounded memory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{DANA, server_with_admin};
use crate::support::cli::run;
use crate::support::{Http, Server, Sock, forwarded};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_endpoint() {
    // Provision the admin before the server takes the data directory.
    let mut server = Server::start();
    server.stop();
    assert!(
        run(&["admin", "add", "dana", "--password-stdin"], server.data_dir(), "dana's password\n").status.success()
    );
    server.restart_after_stop();
    let http = Http::new(&server);

    let t0 = Instant::now();
    let (st, ok) = http
        .call("POST", "/api/admin/login", None, Some(json!({"username": "dana", "password": "dana's password"})))
        .await;
    let t_ok = t0.elapsed();
    assert_eq!(st, 200, "{ok}");
    let token = ok["token"].as_str().unwrap().to_string();
    assert!(ok["expiresAt"].as_str().unwrap().ends_with('Z'));
    // The token works for the HTTP API and as a socket token.
    assert_eq!(http.call("GET", "/api/admin/events", Some(&token), None).await.0, 200);
    let mut s = Sock::with_token(&server.url, &token).await;
    s.emit("admin:join", Value::Null).await;
    s.emit("admin:notification", json!({"type": "hello", "data": null})).await;
    assert_eq!(s.expect("admin:notification", 3000).await["type"], "hello");

    let t1 = Instant::now();
    let (st_wrong, wrong) =
        http.call("POST", "/api/admin/login", None, Some(json!({"username": "dana", "password": "nope nope"}))).await;
    let t_wrong = t1.elapsed();
    let t2 = Instant::now();
    let (st_unknown, unknown) =
        http.call("POST", "/api/admin/login", None, Some(json!({"username": "zed", "password": "nope nope"}))).await;
    let t_unknown = t2.elapsed();
    assert_eq!((st_wrong, st_unknown), (401, 401));
    assert_eq!(wrong, json!({"error": "Invalid credentials"}));
    assert_eq!(wrong, unknown, "same answer for a wrong password and an unknown user");
    // Both paths hash once: an unknown user is not answered measurably faster.
    assert!(t_unknown * 4 > t_wrong && t_unknown * 4 > t_ok, "unknown {t_unknown:?} vs wrong {t_wrong:?}, ok {t_ok:?}");

    // Five attempts per minute per IP (three used): the sixth is refused with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            http.call("POST", "/api/admin/login", None, Some(json!({"username": "dana", "password": "x"}))).await.0,
        );
    }
    assert_eq!(statuses, vec![401, 401, 429]);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/admin/login", server.url))
        .json(&json!({"username": "dana", "password": "dana's password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_answered_at_once_within_bounded_memory() {
    let _heavy = crate::support::heavy().await;
    let server = server_with_admin(None);
    let pid = server.pid().expect("pid");
    let before = rss_kb(pid);
    assert!(before > 0);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..6000 {
                peak = peak.max(rss_kb(pid));
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    let c = reqwest::Client::new();
    let url = format!("{}/api/admin/login", server.url);
    let calls = (1..=60).map(|n| {
        let password = if n % 2 == 0 { DANA } else { "wrong password" };
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c
                .post(url)
                .headers(forwarded(&format!("198.18.0.{n}")))
                .json(&json!({"username": "dana", "password": password}))
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match r {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Ok((status, retry, body))
                }
                Err(e) => Err(e.to_string()),
            }
        }
    });
    let results = futures_util::future::join_all(calls).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let mut busy = 0;
    let mut checked = 0;
    for r in &results {
        let (status, retry, body) = r.as_ref().unwrap_or_else(|e| panic!("a login was not answered: {e}"));
        match status {
            200 | 401 => checked += 1,
            503 => {
                busy += 1;
                assert_eq!(retry.as_deref(), Some("1"), "503 without Retry-After: 1");
                assert!(body["error"].is_string(), "{body}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(busy >= 1, "60 logins at once, none refused: the checks are not bounded");
    assert!(checked >= 1, "no login was checked");
    let grown_mb = peak.saturating_sub(before) / 1024;
    assert!(grown_mb < 150, "RSS grew by {grown_mb} MB (from {} MB to {} MB)", before / 1024, peak / 1024);
    // Served normally once the flood is over.
    let (st, _) = Http::new(&server)
        .call("POST", "/api/admin/login", None, Some(json!({"username": "dana", "password": DANA})))
        .await;
    assert_eq!(st, 200);
}
