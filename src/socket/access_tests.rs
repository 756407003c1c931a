//! Who may do what, one row per identity and event: the rules of `ops::can_access`,
//! `ops::can_manage`, the admin room and each relayed event, checked against a real store with
//! no server around them.

use serde_json::{Value, json};

use super::membership::may_join_admin_room;
use super::ops::{self, can_access, can_manage};
use crate::auth::{Identity, Tokens};
use crate::clock::now_ms;
use crate::config::{Config, GuestComments};
use crate::error::WireError;
use crate::protocol::ClientEvent;
use crate::shutdown::Shutdown;
use crate::state::App;
use crate::store::{EventRecord, GuestSession, Store};
use crate::types::{EventStatus, GuestSessionId, PhotoId, Slug};

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn session(s: &str) -> GuestSessionId {
    GuestSessionId::parse(s).unwrap()
}

/// Events `open` (owned by `u1`), `other` (owned by `u2`) and `closed` (owned by `u1`,
/// archived); guest sessions `g-open` (for `open`), `g-old` (for `open`, expired) and
/// `g-closed` (for `closed`).
async fn app(dir: &std::path::Path, guest_comments: GuestComments) -> App {
    let store = Store::open(dir).unwrap();
    let event = |s: &str, owner: &str, status| EventRecord {
        slug: slug(s),
        name: None,
        status,
        owner_id: Some(owner.into()),
        access_code: None,
        created_ms: 0,
    };
    store.put_event(&event("open", "u1", EventStatus::Active)).await.unwrap();
    store.put_event(&event("other", "u2", EventStatus::Active)).await.unwrap();
    store.put_event(&event("closed", "u1", EventStatus::Archived)).await.unwrap();
    let now = now_ms();
    for (id, event, expires_ms) in
        [("g-open", "open", now + 3_600_000), ("g-old", "open", now - 1), ("g-closed", "closed", now + 3_600_000)]
    {
        let s = GuestSession { id: session(id), event_slug: slug(event), created_ms: 0, expires_ms };
        store.put_session(&s).await.unwrap();
    }
    let config = Config { guest_session_validation: true, guest_comments, ..Config::default() };
    let tokens = Tokens::new("0123456789abcdef0123456789abcdef").unwrap();
    App::new(config, store, tokens, Shutdown::default())
}

fn admin() -> Identity {
    Identity::Admin { user_id: "root".into() }
}
fn owner(id: &str) -> Identity {
    Identity::Owner { user_id: id.into() }
}
fn guest(id: &str, event: &str) -> Identity {
    Identity::Guest { session: session(id), slug: slug(event) }
}

/// Runs a relayed event as the socket layer does, keeping only what the sender is told.
fn relay(app: &App, who: &Identity, ev: ClientEvent) -> Result<(), WireError> {
    ops::relay_now(app, who, &ev).map(|_| ())
}

fn photo() -> PhotoId {
    PhotoId::parse("p1").unwrap()
}

fn comment(event: &str) -> ClientEvent {
    ClientEvent::Comment { slug: slug(event), photo: photo(), comment: json!({"message": "hi"}) }
}
fn upload_progress(event: &str) -> ClientEvent {
    ClientEvent::UploadProgress { slug: slug(event), photo: photo(), progress: json!(50), filename: "a.jpg".into() }
}
fn upload_complete(event: &str) -> ClientEvent {
    ClientEvent::UploadComplete { slug: slug(event), photo: json!({"id": "p1"}) }
}
fn update(event: &str) -> ClientEvent {
    ClientEvent::EventUpdate { slug: slug(event), updates: json!({"name": "n"}) }
}
fn notification() -> ClientEvent {
    ClientEvent::AdminNotification { kind: "info".into(), data: Value::Null }
}

const DENIED: Result<(), WireError> = Err(WireError::AccessDenied);
const ADMINS: Result<(), WireError> = Err(WireError::AdminRequired);

#[tokio::test]
async fn who_may_see_and_manage_each_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), GuestComments::Broadcast).await;
    // (who, event, may access: join, like, unlike, comment; may manage: uploads, updates)
    let table = [
        (admin(), "open", true, true),
        (admin(), "other", true, true),
        (admin(), "closed", true, true),
        (owner("u1"), "open", true, true),
        (owner("u1"), "closed", true, true),
        (owner("u1"), "other", false, false),
        (owner("u3"), "open", false, false),
        (guest("g-open", "open"), "open", true, false),
        (guest("g-open", "open"), "other", false, false),
        (guest("g-old", "open"), "open", false, false),
        (guest("g-closed", "closed"), "closed", false, false),
        // A session is good for its own event only, whatever the socket claims.
        (guest("g-open", "other"), "other", false, false),
        (guest("g-none", "open"), "open", false, false),
    ];
    for (who, event, access, manage) in table {
        let row = format!("{who:?} on {event}");
        assert_eq!(can_access(&app, &who, &slug(event)).unwrap(), access, "access: {row}");
        assert_eq!(can_manage(&app, &who, &slug(event)).unwrap(), manage, "manage: {row}");
        let as_access = if access { Ok(()) } else { DENIED };
        let as_manage = if manage { Ok(()) } else { DENIED };
        assert_eq!(relay(&app, &who, comment(event)), as_access, "photo:comment: {row}");
        assert_eq!(relay(&app, &who, upload_progress(event)), as_manage, "photo:upload:progress: {row}");
        assert_eq!(relay(&app, &who, upload_complete(event)), as_manage, "photo:upload:complete: {row}");
        assert_eq!(relay(&app, &who, update(event)), as_manage, "event:update: {row}");
    }
}

#[tokio::test]
async fn only_admins_join_the_admin_room_and_notify() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), GuestComments::Broadcast).await;
    let table = [(admin(), Ok(())), (owner("u1"), ADMINS), (guest("g-open", "open"), ADMINS)];
    for (who, expected) in table {
        assert_eq!(may_join_admin_room(&who), expected, "admin:join: {who:?}");
        assert_eq!(relay(&app, &who, notification()), expected, "admin:notification: {who:?}");
    }
}

#[tokio::test]
async fn comments_follow_the_studio_setting_except_for_admins() {
    for (mode, others) in [
        (GuestComments::Broadcast, Ok(())),
        (GuestComments::AdminsOnly, Ok(())),
        (GuestComments::Off, Err(WireError::CommentsOff)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), mode).await;
        assert_eq!(relay(&app, &admin(), comment("open")), Ok(()), "admin, {mode:?}");
        assert_eq!(relay(&app, &owner("u1"), comment("open")), others, "owner, {mode:?}");
        assert_eq!(relay(&app, &guest("g-open", "open"), comment("open")), others, "guest, {mode:?}");
        // Access is checked first: an outsider hears "access denied", not the setting.
        assert_eq!(relay(&app, &guest("g-open", "open"), comment("other")), DENIED, "outsider, {mode:?}");
    }
}
