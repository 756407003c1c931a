//! Admin API: rooms, the event registry, guest sessions, and `/api/emit`.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use warp::Reply;

use super::{ApiError, ApiResult, body_object, json, require_admin};
use crate::clock::{iso_ms, now_ms, parse_iso};
use crate::protocol as payload;
use crate::protocol::outgoing::{self as out, names};
use crate::socket::ops;
use crate::state::App;
use crate::store::{EventRecord, GuestSession};
use crate::types::{AccessCode, EventStatus, GuestSessionId, Slug};

const NAME_MAX: usize = 200;

/// Tells the admin room that the event registry changed, so the admin page re-reads it.
fn announce(app: &App, action: &str, slug: &Slug) {
    let payload = out::RegistryChange { action, slug: slug.as_str(), timestamp: crate::clock::iso_now() };
    app.broadcast(ops::ADMIN_ROOM, names::ADMIN_EVENT, &payload);
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventJson {
    slug: String,
    name: Option<String>,
    status: EventStatus,
    owner_id: Option<String>,
    access_code: Option<String>,
    created_at: String,
}

impl From<&EventRecord> for EventJson {
    fn from(e: &EventRecord) -> EventJson {
        EventJson {
            slug: e.slug.as_str().to_string(),
            name: e.name.clone(),
            status: e.status,
            owner_id: e.owner_id.clone(),
            access_code: e.access_code.as_ref().map(|c| c.as_str().to_string()),
            created_at: iso_ms(e.created_ms),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionJson {
    guest_session_id: String,
    event_slug: String,
    expires_at: String,
}

impl From<&GuestSession> for SessionJson {
    fn from(s: &GuestSession) -> SessionJson {
        SessionJson {
            guest_session_id: s.id.as_str().to_string(),
            event_slug: s.event_slug.as_str().to_string(),
            expires_at: iso_ms(s.expires_ms),
        }
    }
}

fn path_slug(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse(raw).ok_or_else(|| ApiError::bad_request("Invalid event slug"))
}

fn field_slug(o: &Map<String, Value>, key: &str) -> Result<Slug, ApiError> {
    o.get(key)
        .and_then(Value::as_str)
        .and_then(Slug::parse)
        .ok_or_else(|| ApiError::bad_request(format!("{key} must be a slug of 1-100 characters [a-z0-9-]")))
}

fn opt_name(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().chars().count() <= NAME_MAX && !s.chars().any(char::is_control) => {
            Ok(Some(s.trim().to_string()))
        }
        _ => Err(ApiError::bad_request(format!("name must be a string of at most {NAME_MAX} characters"))),
    }
}

fn opt_owner(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        _ => Err(ApiError::bad_request("ownerId must be a string or an integer")),
    }
}

fn opt_code(v: &Value) -> Result<Option<AccessCode>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => AccessCode::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("accessCode must be 6 characters [A-Z0-9]")),
        _ => Err(ApiError::bad_request("accessCode must be 6 characters [A-Z0-9]")),
    }
}

fn status(v: &Value) -> Result<EventStatus, ApiError> {
    v.as_str()
        .and_then(EventStatus::parse)
        .ok_or_else(|| ApiError::bad_request("status must be DRAFT, ACTIVE or ARCHIVED"))
}

fn reject_unknown(o: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!("unknown field {k}"))),
        None => Ok(()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomJson {
    slug: String,
    guest_count: usize,
    peak_guests: u64,
    total_guests: u64,
    likes: u64,
    top_photos: Vec<serde_json::Value>,
    last_access_at: Option<String>,
    in_memory: bool,
}

/// Like total and the five most liked photos of a room.
fn like_summary(app: &App, slug: &Slug) -> Result<(u64, Vec<serde_json::Value>), ApiError> {
    let (total, top) = app.store.room_like_summary(slug, 5)?;
    Ok((total, top.into_iter().map(|(p, c)| serde_json::json!({"photo_id": p.as_str(), "likeCount": c})).collect()))
}

pub fn rooms(app: &App, auth: &Option<String>) -> ApiResult {
    require_admin(app, auth)?;
    let mut out: std::collections::BTreeMap<String, RoomJson> = Default::default();
    for (slug, rec) in app.store.rooms()? {
        let (likes, top_photos) = like_summary(app, &slug)?;
        out.insert(
            slug.as_str().to_string(),
            RoomJson {
                slug: slug.as_str().to_string(),
                guest_count: app.presence.guest_count(&slug),
                peak_guests: rec.peak_guests,
                total_guests: rec.total_guests,
                likes,
                top_photos,
                last_access_at: Some(iso_ms(rec.last_access_ms)),
                in_memory: app.presence.is_live(&slug),
            },
        );
    }
    for (slug, guests) in app.presence.live_rooms() {
        if !out.contains_key(slug.as_str()) {
            let (likes, top_photos) = like_summary(app, &slug)?;
            out.insert(
                slug.as_str().to_string(),
                RoomJson {
                    slug: slug.as_str().to_string(),
                    guest_count: guests,
                    peak_guests: 0,
                    total_guests: 0,
                    likes,
                    top_photos,
                    last_access_at: None,
                    in_memory: true,
                },
            );
        }
    }
    Ok(json(200, &serde_json::json!({ "rooms": out.into_values().collect::<Vec<_>>() })))
}

pub fn list_events(app: &App, auth: &Option<String>) -> ApiResult {
    require_admin(app, auth)?;
    let events: Vec<EventJson> = app.store.events()?.iter().map(EventJson::from).collect();
    Ok(json(200, &serde_json::json!({ "events": events })))
}

pub fn get_event(app: &App, auth: &Option<String>, raw: &str) -> ApiResult {
    require_admin(app, auth)?;
    let slug = path_slug(raw)?;
    match app.store.event(&slug)? {
        Some(e) => Ok(json(200, &EventJson::from(&e))),
        None => Err(ApiError::new(404, "Event not found")),
    }
}

pub async fn create_event(app: &App, auth: &Option<String>, body: &Bytes) -> ApiResult {
    require_admin(app, auth)?;
    let o = body_object(body)?;
    reject_unknown(&o, &["slug", "name", "status", "ownerId", "accessCode"])?;
    let null = Value::Null;
    let rec = EventRecord {
        slug: field_slug(&o, "slug")?,
        name: opt_name(o.get("name").unwrap_or(&null))?,
        status: match o.get("status") {
            None | Some(Value::Null) => EventStatus::Active,
            Some(v) => status(v)?,
        },
        owner_id: opt_owner(o.get("ownerId").unwrap_or(&null))?,
        access_code: opt_code(o.get("accessCode").unwrap_or(&null))?,
        created_ms: now_ms(),
    };
    if !app.store.create_event(&rec).await? {
        return Err(ApiError::new(409, "Event already exists"));
    }
    announce(app, "created", &rec.slug);
    Ok(json(201, &EventJson::from(&rec)))
}

pub async fn patch_event(app: &App, auth: &Option<String>, raw: &str, body: &Bytes) -> ApiResult {
    require_admin(app, auth)?;
    let slug = path_slug(raw)?;
    let o = body_object(body)?;
    reject_unknown(&o, &["name", "status", "ownerId", "accessCode"])?;
    let Some(mut rec) = app.store.event(&slug)? else {
        return Err(ApiError::new(404, "Event not found"));
    };
    let before = (rec.status, rec.owner_id.clone());
    if let Some(v) = o.get("name") {
        rec.name = opt_name(v)?;
    }
    if let Some(v) = o.get("status") {
        rec.status = status(v)?;
    }
    if let Some(v) = o.get("ownerId") {
        rec.owner_id = opt_owner(v)?;
    }
    if let Some(v) = o.get("accessCode") {
        rec.access_code = opt_code(v)?;
    }
    let access_changed = rec.status != before.0 || rec.owner_id != before.1;
    app.store.put_event(&rec).await?;
    if access_changed {
        app.revoker.event_changed(&rec.slug);
    }
    announce(app, "updated", &rec.slug);
    Ok(json(200, &EventJson::from(&rec)))
}

pub async fn delete_event(app: &App, auth: &Option<String>, raw: &str) -> ApiResult {
    require_admin(app, auth)?;
    let slug = path_slug(raw)?;
    if !app.store.delete_event(&slug).await? {
        return Err(ApiError::new(404, "Event not found"));
    }
    app.revoker.event_changed(&slug);
    announce(app, "deleted", &slug);
    Ok(warp::reply::with_status(warp::reply(), warp::http::StatusCode::NO_CONTENT).into_response())
}

/// Stores a guest session for `slug` (generated id unless given), expiring at `expires_ms`.
pub async fn store_session(
    app: &App,
    slug: &Slug,
    id: Option<GuestSessionId>,
    expires_ms: Option<i64>,
) -> Result<GuestSession, ApiError> {
    let now = now_ms();
    let ttl = app.config.guest_session_ttl.as_millis() as i64;
    let id = id.unwrap_or_else(GuestSessionId::generate);
    if let Some(existing) = app.store.session(&id)?
        && existing.event_slug != *slug
    {
        return Err(ApiError::new(409, "Guest session belongs to another event"));
    }
    let s = GuestSession {
        id,
        event_slug: slug.clone(),
        created_ms: now,
        expires_ms: expires_ms.unwrap_or(now.saturating_add(ttl)),
    };
    app.store.put_session(&s).await?;
    Ok(s)
}

pub async fn create_session(app: &App, auth: &Option<String>, body: &Bytes) -> ApiResult {
    require_admin(app, auth)?;
    let o = body_object(body)?;
    reject_unknown(&o, &["eventSlug", "guestSessionId", "expiresAt"])?;
    let slug = field_slug(&o, "eventSlug")?;
    let id = match o.get("guestSessionId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(GuestSessionId::parse)
                .ok_or_else(|| ApiError::bad_request("guestSessionId must be 1-128 characters [A-Za-z0-9_-]"))?,
        ),
    };
    let expires = match o.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(parse_iso(s).ok_or_else(|| ApiError::bad_request("expiresAt must be an ISO-8601 time"))?)
        }
        Some(Value::Number(n)) => {
            Some(n.as_i64().ok_or_else(|| ApiError::bad_request("expiresAt must be epoch milliseconds"))?)
        }
        Some(_) => return Err(ApiError::bad_request("expiresAt must be an ISO-8601 time")),
    };
    if expires.is_some_and(|e| e <= now_ms()) {
        return Err(ApiError::bad_request("expiresAt is in the past"));
    }
    if app.store.event(&slug)?.is_none() {
        let rec = EventRecord {
            slug: slug.clone(),
            name: None,
            status: EventStatus::Active,
            owner_id: None,
            access_code: None,
            created_ms: now_ms(),
        };
        // Losing a race with another creator is fine: the event exists either way.
        if app.store.create_event(&rec).await? {
            announce(app, "created", &slug);
        }
    }
    let s = store_session(app, &slug, id, expires).await?;
    Ok(json(201, &SessionJson::from(&s)))
}

/// Events that `/api/emit` relays, exactly those an admin socket may send to rooms.
const EMITTABLE: [&str; 6] = [
    "photo:like",
    "photo:comment",
    "photo:upload:progress",
    "photo:upload:complete",
    "event:update",
    "admin:notification",
];

pub async fn emit(app: &App, auth: &Option<String>, body: &Bytes) -> ApiResult {
    let who = require_admin(app, auth)?;
    let o = body_object(body)?;
    let event = o.get("event").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("event is required"))?;
    if !EMITTABLE.contains(&event) {
        return Err(ApiError::bad_request(format!("event must be one of {}", EMITTABLE.join(", "))));
    }
    let ev = payload::parse(event, o.get("data")).map_err(|e| ApiError::new(e.status(), e.to_string()))?;
    let relayed = ops::relay(app, &who, &ev).await.map_err(|e| ApiError {
        // "Server busy" is 503 with `Retry-After` (SPEC §7), in whole seconds.
        retry_after: e.retry_after_ms().filter(|_| e.status() == 503).map(|ms| ms.div_ceil(1000).max(1)),
        ..ApiError::new(e.status(), e.to_string())
    })?;
    Ok(json(202, &serde_json::json!({ "recipients": relayed.recipients })))
}
