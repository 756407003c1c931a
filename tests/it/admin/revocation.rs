//! Access that ends: guests whose event is archived or deleted or whose session expires, and
//! owners whose event changes hands, are disconnected from the server side within seconds, and
//! refused at once; login tokens die with their admin user or its password.

use std::time::{Duration, Instant};

use crate::support::{CONNECT_ERROR, Http, SECRET, Server, Sock, admin_token, token};
use hafi_realtime::App;
use hafi_realtime::Config;
use hafi_realtime::Shutdown;
use hafi_realtime::WireError;
use hafi_realtime::{EventRecord, GuestSession, Store};
use hafi_realtime::{EventStatus, GuestSessionId, Slug};
use hafi_realtime::{Identity, Tokens};
use serde_json::{Value, json};

/// How long a cut-off may take after an admin action or an expiry.
const WITHIN: Duration = Duration::from_secs(5);

/// Waits for the server-side disconnect (rust_socketio reports the DISCONNECT packet as
/// `close`); returns how long it took from `since`.
async fn cut_off(sock: &mut Sock, since: Instant, what: &str) -> Duration {
    let left = WITHIN.saturating_sub(since.elapsed());
    sock.expect("close", left.as_millis() as u64).await;
    let took = since.elapsed();
    assert!(took < WITHIN, "{what}: disconnected only after {took:?}");
    took
}

async fn metric(url: &str, line_prefix: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const REVOKED: &str = "hafi_connections_refused_total{reason=\"access_revoked\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_disconnected_when_their_access_ends() {
    let server = Server::start();
    let http = Http::new(&server);
    let admin = admin_token();
    for slug in ["arch", "gone", "brief", "keep"] {
        http.create_event(slug, None).await;
    }
    let mut arch = Sock::guest(&server.url, &http.guest_session("arch").await, "arch").await;
    arch.join("arch").await;
    // Connected but not in the room yet: its access ends all the same.
    let arch_session = http.guest_session("arch").await;
    let mut arch_idle = Sock::guest(&server.url, &arch_session, "arch").await;
    let mut gone = Sock::guest(&server.url, &http.guest_session("gone").await, "gone").await;
    gone.join("gone").await;
    let mut keep = Sock::guest(&server.url, &http.guest_session("keep").await, "keep").await;
    keep.join("keep").await;
    let mut watcher = Sock::guest(&server.url, &http.guest_session("keep").await, "keep").await;
    watcher.join("keep").await;
    let before = metric(&server.url, REVOKED).await;

    // A rename changes nobody's access.
    let (st, _) = http.call("PATCH", "/api/admin/events/arch", Some(&admin), Some(json!({"name": "Renamed"}))).await;
    assert_eq!(st, 200);
    arch.expect_none("close", 300).await;

    let t0 = Instant::now();
    let (st, _) = http.call("PATCH", "/api/admin/events/arch", Some(&admin), Some(json!({"status": "ARCHIVED"}))).await;
    assert_eq!(st, 200);
    let took = cut_off(&mut arch, t0, "guest of an archived event").await;
    cut_off(&mut arch_idle, t0, "roomless guest of an archived event").await;
    eprintln!("archive: disconnected after {took:?}");
    let mut again = Sock::guest(&server.url, &arch_session, "arch").await;
    assert_eq!(again.expect(CONNECT_ERROR, 3000).await["message"], "Invalid event");

    let t0 = Instant::now();
    let (st, _) = http.call("DELETE", "/api/admin/events/gone", Some(&admin), None).await;
    assert_eq!(st, 204);
    let took = cut_off(&mut gone, t0, "guest of a deleted event").await;
    eprintln!("delete: disconnected after {took:?}");

    // A session that expires two seconds from now.
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(2000);
    let (st, s) = http
        .call(
            "POST",
            "/api/admin/guest-sessions",
            Some(&admin),
            Some(json!({"eventSlug": "brief", "expiresAt": expires.to_rfc3339()})),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    let mut brief = Sock::guest(&server.url, s["guestSessionId"].as_str().unwrap(), "brief").await;
    brief.join("brief").await;
    let until_expiry = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    // Not before it expires (less a margin for the two clocks' reading).
    brief.expect_none("close", until_expiry.saturating_sub(Duration::from_millis(200)).as_millis() as u64).await;
    let expiry = Instant::now() + (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep_until(tokio::time::Instant::from_std(expiry)).await;
    let took = cut_off(&mut brief, expiry, "guest whose session expired").await;
    eprintln!("expiry: disconnected {took:?} after the session expired");

    // The untouched event's guests stay, and still act.
    keep.emit("photo:like", json!({"eventSlug": "keep", "photo_id": "p1"})).await;
    assert_eq!(watcher.expect("photo:like", 3000).await["likeCount"], 1);
    keep.expect_none("close", 100).await;
    watcher.expect_none("close", 100).await;
    let (_, rooms) = http.call("GET", "/api/admin/rooms", Some(&admin), None).await;
    let keep_room = rooms["rooms"].as_array().unwrap().iter().find(|r| r["slug"] == "keep").cloned().unwrap();
    assert_eq!(keep_room["guestCount"], 2, "{rooms}");
    let arch_room = rooms["rooms"].as_array().unwrap().iter().find(|r| r["slug"] == "arch").cloned().unwrap();
    assert_eq!(arch_room["guestCount"], 0, "the cut-off guest left its room: {rooms}");

    let after = metric(&server.url, REVOKED).await;
    assert!(after - before >= 4.0, "access_revoked went from {before} to {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_is_cut_off_when_its_event_changes_hands() {
    let server = Server::start();
    let http = Http::new(&server);
    let admin = admin_token();
    http.create_event("studio", Some("u7")).await;
    http.create_event("elsewhere", Some("u8")).await;
    let mut owner = Sock::with_token(&server.url, &token("u7", "PHOTOGRAPHER")).await;
    owner.join("studio").await;
    let mut other = Sock::with_token(&server.url, &token("u8", "PHOTOGRAPHER")).await;
    other.join("elsewhere").await;
    let mut admin_sock = Sock::with_token(&server.url, &admin).await;
    admin_sock.join("studio").await;
    let mut guest = Sock::guest(&server.url, &http.guest_session("studio").await, "studio").await;
    guest.join("studio").await;

    let t0 = Instant::now();
    let (st, _) = http.call("PATCH", "/api/admin/events/studio", Some(&admin), Some(json!({"ownerId": "u9"}))).await;
    assert_eq!(st, 200);
    let took = cut_off(&mut owner, t0, "former owner").await;
    eprintln!("owner change: disconnected after {took:?}");
    // Nobody else lost anything: the other owner, the admin, the event's guest.
    other.expect_none("close", 2500).await;
    admin_sock.expect_none("close", 10).await;
    guest.expect_none("close", 10).await;
    other.emit("event:update", json!({"eventSlug": "elsewhere", "updates": {"name": "still mine"}})).await;
    other.expect("event:update", 3000).await;

    // The former owner, reconnected, is not let back in; the new one is.
    let mut back = Sock::with_token(&server.url, &token("u7", "PHOTOGRAPHER")).await;
    back.emit("event:join", json!("studio")).await;
    assert_eq!(back.expect("error", 3000).await["message"], "Access denied to this event");
    let mut new_owner = Sock::with_token(&server.url, &token("u9", "PHOTOGRAPHER")).await;
    new_owner.join("studio").await;
}

/// Between an event's archive (or a session's expiry) and the janitor's pass, a connected guest
/// may still send: it is refused at use time. Run in-process, with no janitor at all, so the
/// disconnect never lands and only the use-time check stands between the guest and the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_guest_is_refused_before_the_disconnect_lands() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), secret: Some(SECRET.into()), ..Config::default() };
    let app = App::new(config, store.clone(), Tokens::new(SECRET).unwrap(), Shutdown::default());
    let now = hafi_realtime::now_ms();
    let slug = Slug::parse("late").unwrap();
    let mut event = EventRecord {
        slug: slug.clone(),
        name: None,
        status: EventStatus::Active,
        owner_id: Some("u7".into()),
        access_code: None,
        created_ms: now,
    };
    store.put_event(&event).await.unwrap();
    let session = |id: &str, expires_ms: i64| GuestSession {
        id: GuestSessionId::parse(id).unwrap(),
        event_slug: slug.clone(),
        created_ms: now,
        expires_ms,
    };
    store.put_session(&session("guest_a", now + 3_600_000)).await.unwrap();
    store.put_session(&session("guest_b", now + 3_600_000)).await.unwrap();
    let guest = |id: &str| Identity::Guest { session: GuestSessionId::parse(id).unwrap(), slug: slug.clone() };
    let owner = Identity::Owner { user_id: "u7".into() };
    let like = |photo: &str| {
        hafi_realtime::parse_event("photo:like", Some(&json!({"eventSlug": "late", "photo_id": photo}))).unwrap()
    };
    let comment = hafi_realtime::parse_event(
        "photo:comment",
        Some(&json!({"eventSlug": "late", "photo_id": "p", "comment": "hi"})),
    )
    .unwrap();
    let progress = hafi_realtime::parse_event(
        "photo:upload:progress",
        Some(&json!({"eventSlug": "late", "photo_id": "p", "progress": 5, "filename": "a.jpg"})),
    )
    .unwrap();

    assert_eq!(hafi_realtime::relay(&app, &guest("guest_a"), &like("p1")).await.unwrap().ack["likeCount"], 1);
    hafi_realtime::relay(&app, &guest("guest_a"), &comment).await.unwrap();
    hafi_realtime::relay(&app, &owner, &progress).await.unwrap();

    // guest_b's session expires (re-registered with an expiry just past).
    store.put_session(&session("guest_b", now - 1)).await.unwrap();
    assert_eq!(hafi_realtime::relay(&app, &guest("guest_b"), &like("p1")).await.unwrap_err(), WireError::AccessDenied);
    hafi_realtime::relay(&app, &guest("guest_a"), &like("p2")).await.unwrap();

    // The event is archived and handed to another owner.
    event.status = EventStatus::Archived;
    event.owner_id = Some("u9".into());
    store.put_event(&event).await.unwrap();
    assert_eq!(hafi_realtime::relay(&app, &guest("guest_a"), &like("p3")).await.unwrap_err(), WireError::AccessDenied);
    assert_eq!(hafi_realtime::relay(&app, &guest("guest_a"), &comment).await.unwrap_err(), WireError::AccessDenied);
    assert_eq!(hafi_realtime::relay(&app, &owner, &progress).await.unwrap_err(), WireError::AccessDenied);
    assert_eq!(hafi_realtime::relay(&app, &owner, &like("p3")).await.unwrap_err(), WireError::AccessDenied);
    // Nothing of the refused likes was stored.
    let likes: Vec<(String, u64)> =
        store.room_likes(&slug, 10).unwrap().into_iter().map(|(p, c)| (p.as_str().to_string(), c)).collect();
    assert_eq!(likes.iter().find(|(p, _)| p == "p3"), None, "{likes:?}");
    assert_eq!(likes.iter().find(|(p, _)| p == "p1").map(|l| l.1), Some(1), "{likes:?}");
}

// ---- login tokens and their admin users ---------------------------------------------------------

fn cli(args: &[&str], dir: &std::path::Path, stdin: &str) -> String {
    let mut cmd = crate::support::cli::bin();
    cmd.env("NEXTAUTH_SECRET", SECRET);
    let out = crate::support::cli::run_in(cmd, args, dir, stdin);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn login(http: &Http, user: &str, password: &str) -> (u16, Option<String>) {
    let (st, body) =
        http.call("POST", "/api/admin/login", None, Some(json!({"username": user, "password": password}))).await;
    (st, body["token"].as_str().map(str::to_string))
}

async fn rooms_status(http: &Http, token: &str) -> u16 {
    http.call("GET", "/api/admin/rooms", Some(token), None).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_end_with_their_user_or_password() {
    let mut server = Server::start();
    assert_eq!(server.stop(), Some(0));
    let dir = server.data_dir().to_path_buf();
    cli(&["admin", "add", "alice", "--password-stdin"], &dir, "first password\n");
    cli(&["admin", "add", "bob", "--password-stdin"], &dir, "bobs password\n");
    let web_app = cli(&["token", "--user", "web-app", "--role", "ADMIN", "--ttl", "1h"], &dir, "");
    // A token-command token that happens to name an admin user is not tied to it either.
    let named = cli(&["token", "--user", "alice", "--role", "ADMIN", "--ttl", "1h"], &dir, "");

    server.restart_after_stop();
    let http = Http::new(&server);
    let (st, alice) = login(&http, "alice", "first password").await;
    assert_eq!(st, 200);
    let alice = alice.unwrap();
    let bob = login(&http, "bob", "bobs password").await.1.unwrap();
    for t in [&alice, &bob, &web_app, &named] {
        assert_eq!(rooms_status(&http, t).await, 200);
    }
    // A restart alone changes nothing.
    server.restart();
    let http = Http::new(&server);
    for t in [&alice, &bob, &web_app, &named] {
        assert_eq!(rooms_status(&http, t).await, 200);
    }

    assert_eq!(server.stop(), Some(0));
    cli(&["admin", "passwd", "alice", "--password-stdin"], &dir, "second password\n");
    cli(&["admin", "remove", "bob"], &dir, "");
    server.restart_after_stop();
    let http = Http::new(&server);
    assert_eq!(rooms_status(&http, &alice).await, 401, "token minted under the old password");
    assert_eq!(rooms_status(&http, &bob).await, 401, "token of a removed user");
    assert_eq!(rooms_status(&http, &web_app).await, 200);
    assert_eq!(rooms_status(&http, &named).await, 200);
    // The old token opens no socket either (it falls through to "no guest credentials").
    let mut s = Sock::with_token(&server.url, &alice).await;
    assert_eq!(s.expect(CONNECT_ERROR, 3000).await["message"], "Authentication required");
    let mut s = Sock::with_token(&server.url, &web_app).await;
    s.emit("admin:join", Value::Null).await;
    s.expect_none("error", 300).await;

    assert_eq!(login(&http, "alice", "first password").await.0, 401);
    assert_eq!(login(&http, "bob", "bobs password").await.0, 401);
    let (st, fresh) = login(&http, "alice", "second password").await;
    assert_eq!(st, 200);
    assert_eq!(rooms_status(&http, &fresh.unwrap()).await, 200);
}
