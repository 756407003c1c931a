//! `photo:comment`: to the room and the admin feed, only to the admins, or refused, as the
//! studio configured guest comments.

use serde_json::Value;

use super::{ADMIN_ROOM, Relayed, require_access};
use crate::auth::Identity;
use crate::clock::iso_now;
use crate::config::GuestComments;
use crate::error::WireError;
use crate::protocol::outgoing::{self as out, names};
use crate::state::App;
use crate::types::{PhotoId, Slug};

pub fn apply(app: &App, who: &Identity, slug: &Slug, photo: &PhotoId, comment: &Value) -> Result<Relayed, WireError> {
    require_access(app, who, slug)?;
    let mode = if who.is_admin() { GuestComments::Broadcast } else { app.config.guest_comments };
    let payload = out::Comment { photo_id: photo.as_str(), comment, event_slug: slug.as_str(), timestamp: iso_now() };
    let recipients = match mode {
        GuestComments::Off => return Err(WireError::CommentsOff),
        GuestComments::AdminsOnly => app.broadcast(ADMIN_ROOM, names::PHOTO_COMMENT, &payload),
        GuestComments::Broadcast => {
            let n = app.broadcast(&slug.room(), names::PHOTO_COMMENT, &payload);
            // The admin page's feed: every comment, whichever room it went to.
            app.broadcast(ADMIN_ROOM, names::ADMIN_COMMENT, &payload);
            n
        }
    };
    Ok(Relayed { recipients, ack: serde_json::json!({"ok": true}) })
}
