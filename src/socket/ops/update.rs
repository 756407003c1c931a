//! `event:update`: the studio tells the room its event changed.

use serde_json::Value;

use super::{Relayed, require_manage};
use crate::auth::Identity;
use crate::clock::iso_now;
use crate::error::WireError;
use crate::protocol::outgoing::{self as out, names};
use crate::state::App;
use crate::types::Slug;

pub fn apply(app: &App, who: &Identity, slug: &Slug, updates: &Value) -> Result<Relayed, WireError> {
    require_manage(app, who, slug)?;
    let payload = out::Update { updates, timestamp: iso_now() };
    let recipients = app.broadcast(&slug.room(), names::EVENT_UPDATE, &payload);
    Ok(Relayed { recipients, ack: serde_json::json!({"ok": true}) })
}
