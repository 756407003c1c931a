//! `photo:upload:progress` and `photo:upload:complete`: the studio (admins, the event's owner)
//! tells the room about a photo on its way.

use serde_json::Value;

use super::{Relayed, require_manage};
use crate::auth::Identity;
use crate::clock::iso_now;
use crate::error::WireError;
use crate::protocol::outgoing::{self as out, names};
use crate::state::App;
use crate::types::{PhotoId, Slug};

pub fn progress(
    app: &App,
    who: &Identity,
    slug: &Slug,
    photo: &PhotoId,
    progress: &Value,
    filename: &str,
) -> Result<Relayed, WireError> {
    require_manage(app, who, slug)?;
    let payload = out::Progress { photo_id: photo.as_str(), progress, filename, timestamp: iso_now() };
    let recipients = app.broadcast(&slug.room(), names::UPLOAD_PROGRESS, &payload);
    Ok(Relayed { recipients, ack: serde_json::json!({"ok": true}) })
}

pub fn complete(app: &App, who: &Identity, slug: &Slug, photo: &Value) -> Result<Relayed, WireError> {
    require_manage(app, who, slug)?;
    let payload = out::Complete { photo, timestamp: iso_now() };
    let recipients = app.broadcast(&slug.room(), names::UPLOAD_COMPLETE, &payload);
    Ok(Relayed { recipients, ack: serde_json::json!({"ok": true}) })
}
