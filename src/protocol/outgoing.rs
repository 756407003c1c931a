//! What the server sends: every payload type, and the event names it sends them under.
//!
//! Field names are the contract's (SPEC §4), so they are spelled out here once; every payload
//! carries `timestamp` (ISO-8601 UTC with milliseconds).

use serde::Serialize;
use serde_json::Value;

/// Event names the server sends.
pub mod names {
    pub const GUEST_JOINED: &str = "guest:joined";
    pub const GUEST_LEFT: &str = "guest:left";
    pub const SNAPSHOT: &str = "event:snapshot";
    pub const PHOTO_LIKE: &str = "photo:like";
    pub const PHOTO_COMMENT: &str = "photo:comment";
    pub const UPLOAD_PROGRESS: &str = "photo:upload:progress";
    pub const UPLOAD_COMPLETE: &str = "photo:upload:complete";
    pub const EVENT_UPDATE: &str = "event:update";
    pub const ADMIN_NOTIFICATION: &str = "admin:notification";
    pub const ADMIN_LIKE: &str = "admin:like";
    pub const ADMIN_COMMENT: &str = "admin:comment";
    pub const ADMIN_ROOM: &str = "admin:room";
    pub const ADMIN_EVENT: &str = "admin:event";
    pub const ERROR: &str = "error";
}

/// `photo:like`: a photo's stored count.
#[derive(Serialize)]
pub struct Like<'a> {
    pub photo_id: &'a str,
    #[serde(rename = "likeCount")]
    pub like_count: u64,
    pub timestamp: String,
}

/// `admin:like`: the same, with its event.
#[derive(Serialize)]
pub struct AdminLike<'a> {
    #[serde(rename = "eventSlug")]
    pub event_slug: &'a str,
    pub photo_id: &'a str,
    #[serde(rename = "likeCount")]
    pub like_count: u64,
    pub timestamp: String,
}

/// `photo:comment` and `admin:comment`.
#[derive(Serialize)]
pub struct Comment<'a> {
    pub photo_id: &'a str,
    pub comment: &'a Value,
    #[serde(rename = "eventSlug")]
    pub event_slug: &'a str,
    pub timestamp: String,
}

/// `photo:upload:progress`.
#[derive(Serialize)]
pub struct Progress<'a> {
    pub photo_id: &'a str,
    pub progress: &'a Value,
    pub filename: &'a str,
    pub timestamp: String,
}

/// `photo:upload:complete`.
#[derive(Serialize)]
pub struct Complete<'a> {
    pub photo: &'a Value,
    pub timestamp: String,
}

/// `event:update`.
#[derive(Serialize)]
pub struct Update<'a> {
    pub updates: &'a Value,
    pub timestamp: String,
}

/// `admin:notification`.
#[derive(Serialize)]
pub struct Notification<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub data: &'a Value,
    pub timestamp: String,
}

/// `guest:joined` and `guest:left`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence<'a> {
    pub guest_count: usize,
    pub event_slug: &'a str,
    pub timestamp: String,
}

/// `event:snapshot`: what a joiner needs to catch up (SPEC §4.1).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot<'a> {
    pub event_slug: &'a str,
    pub guest_count: usize,
    pub total_guests: u64,
    pub peak_guests: u64,
    pub likes: serde_json::Map<String, Value>,
    pub liked_by_me: Vec<String>,
    pub timestamp: String,
}

/// `admin:event`: the event registry changed.
#[derive(Serialize)]
pub struct RegistryChange<'a> {
    pub action: &'a str,
    pub slug: &'a str,
    pub timestamp: String,
}
