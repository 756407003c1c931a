//! `admin:notification`: admins tell each other; the server tells them (breaker changes, attacks).

use serde_json::Value;

use super::{ADMIN_ROOM, Relayed};
use crate::auth::Identity;
use crate::clock::iso_now;
use crate::error::WireError;
use crate::protocol::outgoing::{self as out, names};
use crate::state::App;
use crate::types::Slug;

pub fn apply(app: &App, who: &Identity, kind: &str, data: &Value) -> Result<Relayed, WireError> {
    if !who.is_admin() {
        return Err(WireError::AdminRequired);
    }
    let payload = out::Notification { kind, data, timestamp: iso_now() };
    let recipients = app.broadcast(ADMIN_ROOM, names::ADMIN_NOTIFICATION, &payload);
    Ok(Relayed { recipients, ack: serde_json::json!({"ok": true}) })
}

/// Sends a system notification to the admin room (breaker changes, and the like).
pub fn system_notice(app: &App, message: &str) {
    let data = serde_json::json!({ "message": message });
    let payload = out::Notification { kind: "system", data: &data, timestamp: iso_now() };
    app.broadcast(ADMIN_ROOM, names::ADMIN_NOTIFICATION, &payload);
}

/// Sends a security notification about an event to the admin room (an attack on its access
/// code, and the like).
pub fn security_notice(app: &App, message: &str, slug: &Slug) {
    let data = serde_json::json!({ "message": message, "eventSlug": slug.as_str() });
    let payload = out::Notification { kind: "security", data: &data, timestamp: iso_now() };
    app.broadcast(ADMIN_ROOM, names::ADMIN_NOTIFICATION, &payload);
}
