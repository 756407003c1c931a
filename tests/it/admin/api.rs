//! Every HTTP route of the contract with its error statuses, against the real binary, and no
//! API answer ever cached.

use serde_json::json;

use super::{DANA, server_with_admin};
use crate::support::{Http, Server, Sock, admin_token, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shape() {
    let server = Server::start();
    let http = Http::new(&server);
    let (st, body) = http.call("GET", "/health", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["status"], "healthy");
    assert!(body["uptime"].is_f64());
    assert_eq!(body["connections"], 0);
    let (st, body) = http.call("GET", "/no/such/route", None, None).await;
    assert_eq!((st, body["error"].as_str().is_some()), (404, true));
    // The server's own address names it and links the admin page (it does not serve the gallery).
    let home = reqwest::get(format!("{}/", server.url)).await.unwrap();
    assert_eq!(home.status().as_u16(), 200);
    assert!(home.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = home.text().await.unwrap();
    assert!(page.contains("<h1>hafi-realtime</h1>") && page.contains("href=\"/admin/\""), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_registry() {
    let server = Server::start();
    let http = Http::new(&server);
    let admin = admin_token();
    let a = Some(admin.as_str());

    // Authentication and authorization.
    assert_eq!(http.call("GET", "/api/admin/events", None, None).await.0, 401);
    assert_eq!(http.call("GET", "/api/admin/events", Some("garbage"), None).await.0, 401);
    assert_eq!(http.call("GET", "/api/admin/events", Some(&token("u1", "PHOTOGRAPHER")), None).await.0, 403);

    let (st, ev) = http
        .call(
            "POST",
            "/api/admin/events",
            a,
            Some(json!({"slug": "Gala-2026", "name": "Gala", "accessCode": "ab12cd", "ownerId": 7})),
        )
        .await;
    assert_eq!(st, 201, "{ev}");
    assert_eq!(ev["slug"], "gala-2026");
    assert_eq!(ev["status"], "ACTIVE");
    assert_eq!(ev["accessCode"], "AB12CD");
    assert_eq!(ev["ownerId"], "7");
    assert!(ev["createdAt"].as_str().unwrap().ends_with('Z'));

    assert_eq!(http.call("POST", "/api/admin/events", a, Some(json!({"slug": "gala-2026"}))).await.0, 409);
    for bad in [
        json!({"slug": "bad slug"}),
        json!({"slug": "x", "status": "OPEN"}),
        json!({"slug": "x", "accessCode": "123"}),
        json!({"slug": "x", "bogus": 1}),
        json!([1]),
    ] {
        let (st, body) = http.call("POST", "/api/admin/events", a, Some(bad.clone())).await;
        assert_eq!(st, 400, "{bad} → {body}");
        assert!(body["error"].is_string());
    }
    assert_eq!(http.raw("POST", "/api/admin/events", a, "{not json").await.0, 400);
    let big = format!("{{\"slug\":\"x\",\"name\":\"{}\"}}", "n".repeat(70_000));
    assert_eq!(http.raw("POST", "/api/admin/events", a, &big).await.0, 413);

    let (st, list) = http.call("GET", "/api/admin/events", a, None).await;
    assert_eq!(st, 200);
    assert_eq!(list["events"].as_array().unwrap().len(), 1);
    assert_eq!(http.call("GET", "/api/admin/events/gala-2026", a, None).await.1["name"], "Gala");
    assert_eq!(http.call("GET", "/api/admin/events/nope", a, None).await.0, 404);

    let (st, ev) = http
        .call(
            "PATCH",
            "/api/admin/events/gala-2026",
            a,
            Some(json!({"status": "DRAFT", "accessCode": null, "name": "Gala!"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (ev["status"].clone(), ev["accessCode"].clone(), ev["name"].clone()),
        (json!("DRAFT"), json!(null), json!("Gala!"))
    );
    assert_eq!(http.call("PATCH", "/api/admin/events/gala-2026", a, Some(json!({"status": null}))).await.0, 400);
    assert_eq!(http.call("PATCH", "/api/admin/events/nope", a, Some(json!({"name": "x"}))).await.0, 404);

    // Deleting an event removes its guest sessions.
    let sid = http.guest_session("gala-2026").await;
    http.call("PATCH", "/api/admin/events/gala-2026", a, Some(json!({"status": "ACTIVE"}))).await;
    let (st, _) = http.call("DELETE", "/api/admin/events/gala-2026", a, None).await;
    assert_eq!(st, 204);
    assert_eq!(http.call("DELETE", "/api/admin/events/gala-2026", a, None).await.0, 404);
    http.create_event("gala-2026", None).await;
    let mut s = Sock::guest(&server.url, &sid, "gala-2026").await;
    assert_eq!(s.expect(crate::support::CONNECT_ERROR, 3000).await["message"], "Invalid guest session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sessions_and_gallery_access() {
    let server = Server::start();
    let http = Http::new(&server);
    let admin = admin_token();
    let a = Some(admin.as_str());

    // Registering a session creates its event (ACTIVE) when unknown, and keeps a given id.
    let (st, s) = http
        .call(
            "POST",
            "/api/admin/guest-sessions",
            a,
            Some(json!({"eventSlug": "new-event", "guestSessionId": "web_abc-1"})),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    assert_eq!((s["guestSessionId"].clone(), s["eventSlug"].clone()), (json!("web_abc-1"), json!("new-event")));
    assert_eq!(http.call("GET", "/api/admin/events/new-event", a, None).await.1["status"], "ACTIVE");
    let (st, s) = http.call("POST", "/api/admin/guest-sessions", a, Some(json!({"eventSlug": "new-event"}))).await;
    assert_eq!(st, 201);
    assert!(s["guestSessionId"].as_str().unwrap().starts_with("guest_"));
    for bad in [
        json!({}),
        json!({"eventSlug": "new-event", "guestSessionId": "has space"}),
        json!({"eventSlug": "new-event", "expiresAt": "2001-01-01T00:00:00Z"}),
    ] {
        assert_eq!(http.call("POST", "/api/admin/guest-sessions", a, Some(bad)).await.0, 400);
    }
    assert_eq!(http.call("POST", "/api/admin/guest-sessions", None, Some(json!({"eventSlug": "x"}))).await.0, 401);
    // A session id already used by another event.
    http.create_event("other", None).await;
    assert_eq!(
        http.call(
            "POST",
            "/api/admin/guest-sessions",
            a,
            Some(json!({"eventSlug": "other", "guestSessionId": "web_abc-1"}))
        )
        .await
        .0,
        409
    );

    // Gallery access with a code.
    http.call("POST", "/api/admin/events", a, Some(json!({"slug": "coded", "accessCode": "ZX81AB"}))).await;
    assert_eq!(http.call("POST", "/api/gallery/coded/access", None, Some(json!({}))).await.0, 403);
    assert_eq!(
        http.call("POST", "/api/gallery/coded/access", None, Some(json!({"access_code": "WRONG1"}))).await.0,
        403
    );
    let (st, s) = http.call("POST", "/api/gallery/coded/access", None, Some(json!({"access_code": "zx81ab"}))).await;
    assert_eq!(st, 201);
    assert_eq!(s["eventSlug"], "coded");
    let mut sock = Sock::guest(&server.url, s["guestSessionId"].as_str().unwrap(), "coded").await;
    sock.join("coded").await;
    assert_eq!(http.call("POST", "/api/gallery/unknown/access", None, Some(json!({}))).await.0, 404);
    http.call("PATCH", "/api/admin/events/coded", a, Some(json!({"status": "ARCHIVED"}))).await;
    assert_eq!(
        http.call("POST", "/api/gallery/coded/access", None, Some(json!({"access_code": "ZX81AB"}))).await.0,
        403
    );
    // No code on the event: open to anyone with the link.
    assert_eq!(http.call("POST", "/api/gallery/other/access", None, None).await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_and_rooms() {
    let server = Server::start();
    let http = Http::new(&server);
    let admin = admin_token();
    let a = Some(admin.as_str());
    http.create_event("party", None).await;
    let g = http.guest_session("party").await;
    let mut guest = Sock::guest(&server.url, &g, "party").await;
    guest.join("party").await;

    let (st, body) = http
        .call(
            "POST",
            "/api/emit",
            a,
            Some(json!({"event": "photo:like", "data": {"eventSlug": "party", "photo_id": 3, "likeCount": 12}})),
        )
        .await;
    assert_eq!((st, body["recipients"].clone()), (202, json!(1)));
    let like = guest.expect("photo:like", 3000).await;
    assert_eq!((like["photo_id"].clone(), like["likeCount"].clone()), (json!("3"), json!(12)));

    let (st, _) = http
        .call(
            "POST",
            "/api/emit",
            a,
            Some(json!({"event": "photo:upload:complete", "data": {"eventSlug": "party", "photo": {"id": 4}}})),
        )
        .await;
    assert_eq!(st, 202);
    assert_eq!(guest.expect("photo:upload:complete", 3000).await["photo"]["id"], 4);

    assert_eq!(http.call("POST", "/api/emit", a, Some(json!({"event": "event:join", "data": "party"}))).await.0, 400);
    assert_eq!(
        http.call("POST", "/api/emit", a, Some(json!({"event": "photo:like", "data": {"eventSlug": "party"}}))).await.0,
        400
    );
    assert_eq!(http.call("POST", "/api/emit", None, Some(json!({"event": "photo:like", "data": {}}))).await.0, 401);
    assert_eq!(
        http.call(
            "POST",
            "/api/emit",
            Some(&token("9", "PHOTOGRAPHER")),
            Some(json!({"event": "photo:like", "data": {}}))
        )
        .await
        .0,
        403
    );

    let (st, rooms) = http.call("GET", "/api/admin/rooms", a, None).await;
    assert_eq!(st, 200);
    let party = rooms["rooms"].as_array().unwrap().iter().find(|r| r["slug"] == "party").expect("party room").clone();
    assert_eq!(party["guestCount"], 1);
    assert_eq!(party["totalGuests"], 1);
    assert_eq!(party["peakGuests"], 1);
    assert_eq!(party["likes"], 12);
    assert_eq!(party["inMemory"], true);
    assert!(party["lastAccessAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(http.call("GET", "/api/admin/rooms", None, None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_reach_the_admin_room() {
    let server = Server::start();
    let http = Http::new(&server);
    let mut admin = Sock::with_token(&server.url, &admin_token()).await;
    admin.emit("admin:join", serde_json::Value::Null).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    http.create_event("live-list", None).await;
    let e = admin.expect("admin:event", 3000).await;
    assert_eq!((e["action"].clone(), e["slug"].clone()), (json!("created"), json!("live-list")));
    http.call("PATCH", "/api/admin/events/live-list", Some(&admin_token()), Some(json!({"name": "Renamed"}))).await;
    assert_eq!(admin.expect("admin:event", 3000).await["action"], "updated");
    http.call("DELETE", "/api/admin/events/live-list", Some(&admin_token()), None).await;
    assert_eq!(admin.expect("admin:event", 3000).await["action"], "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_are_never_cached() {
    let server = server_with_admin(Some("[limits]\nhttp_per_ip = { rate = 1, per = \"1h\", burst = 6 }\n"));
    let c = reqwest::Client::new();
    let ok = c
        .post(format!("{}/api/admin/login", server.url))
        .json(&json!({"username": "dana", "password": DANA}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let wrong = c
        .post(format!("{}/api/admin/login", server.url))
        .json(&json!({"username": "dana", "password": "nope nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(wrong.headers()["cache-control"], "no-store");
    let unauthorized = c.get(format!("{}/api/admin/events", server.url)).send().await.unwrap();
    assert_eq!(
        (unauthorized.status().as_u16(), &unauthorized.headers()["cache-control"]),
        (401, &"no-store".parse().unwrap())
    );
    let missing = c.get(format!("{}/api/nope", server.url)).send().await.unwrap();
    assert_eq!((missing.status().as_u16(), &missing.headers()["cache-control"]), (404, &"no-store".parse().unwrap()));
    let big = c.post(format!("{}/api/admin/events", server.url)).body("x".repeat(70_000)).send().await.unwrap();
    assert_eq!((big.status().as_u16(), &big.headers()["cache-control"]), (413, &"no-store".parse().unwrap()));
    // The guard's own refusal (the HTTP bucket of six is spent now).
    let mut last = None;
    for _ in 0..3 {
        last = Some(c.get(format!("{}/api/admin/events", server.url)).send().await.unwrap());
    }
    let limited = last.unwrap();
    assert_eq!((limited.status().as_u16(), &limited.headers()["cache-control"]), (429, &"no-store".parse().unwrap()));
}
