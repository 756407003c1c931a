//! `photo:like` and `photo:unlike` (and an admin's absolute count): checked and admitted to the
//! commit queue on arrival (or refused "Server busy" at once), durable before anything is said,
//! then broadcast with the stored count.

use super::{ADMIN_ROOM, Relayed, require_access, security_notice, touch};
use crate::auth::Identity;
use crate::clock::iso_now;
use crate::engine::StateKey;
use crate::error::WireError;
use crate::protocol::ClientEvent;
use crate::protocol::outgoing::{self as out, names};
use crate::state::App;
use crate::store::{LikeCaps, LikeLimit, StagedToggle, StoreError};
use crate::types::{PhotoId, Slug};

/// A like or unlike that was authorized and queued as it arrived; its batch's flush, its
/// broadcast and acknowledgement come later, in the socket's order (see `socket::dispatch`).
pub struct Staged(Result<StagedToggle, WireError>);

/// Queues a like or unlike at once, before the events ahead of it on the same socket have
/// finished, so that one busy socket (the web app's broadcaster) is not limited to one like per
/// flush and broadcast. `None` for every other event, and for an admin's absolute count.
pub fn stage(app: &App, who: &Identity, ev: &ClientEvent) -> Option<Staged> {
    let (slug, photo, like) = match ev {
        ClientEvent::Like { like_count: Some(_), .. } if who.is_admin() => return None,
        ClientEvent::Like { slug, photo, .. } => (slug, photo, true),
        ClientEvent::Unlike { slug, photo } => (slug, photo, false),
        _ => return None,
    };
    let caps = LikeCaps::new(app.config.max_likes_per_identity, app.config.max_photos_per_event);
    let staged = require_access(app, who, slug)
        .and_then(|()| Ok(app.store.stage_toggle(slug, photo, &who.liker(), like, caps)?));
    Some(Staged(staged))
}

/// A like, unlike or admin count that is on disk: what its broadcast and answer need.
pub struct Durable {
    slug: Slug,
    photo: PhotoId,
    count: u64,
    /// False for a repeated like or unlike, which is answered but not broadcast.
    changed: bool,
}

/// The part of a like, unlike or admin count that waits: applied (or [`stage`]d before),
/// then durable. Its broadcast is [`announce_like`], done in the sender's order.
pub async fn make_durable(
    app: &App,
    who: &Identity,
    ev: &ClientEvent,
    staged: Option<Staged>,
) -> Result<Durable, WireError> {
    match ev {
        ClientEvent::Like { slug, photo, like_count: Some(count) } if who.is_admin() => {
            require_access(app, who, slug)?;
            app.store.set_like_count(slug, photo, *count).await?;
            Ok(Durable { slug: slug.clone(), photo: photo.clone(), count: *count, changed: true })
        }
        ClientEvent::Like { slug, photo, .. } | ClientEvent::Unlike { slug, photo } => {
            // Applied already when the socket staged it on arrival; otherwise now.
            let Some(Staged(staged)) = staged.or_else(|| stage(app, who, ev)) else {
                return Err(WireError::InvalidPayload);
            };
            match app.store.finish_toggle(staged?).await {
                Err(StoreError::LikeLimit(LikeLimit::PerEvent)) => {
                    like_cap_reached(app, slug);
                    Err(WireError::LikeLimit)
                }
                Err(e) => Err(e.into()),
                Ok(out) => {
                    Ok(Durable { slug: slug.clone(), photo: photo.clone(), count: out.count, changed: out.changed })
                }
            }
        }
        _ => Err(WireError::InvalidPayload),
    }
}

/// Broadcasts a durable like (if it changed anything) and makes its acknowledgement.
pub fn announce_like(app: &App, d: &Durable) -> Relayed {
    let recipients = if d.changed { emit_like(app, &d.slug, &d.photo, d.count) } else { 0 };
    touch(app, &d.slug);
    Relayed { recipients, ack: serde_json::json!({"ok": true, "likeCount": d.count}) }
}

fn emit_like(app: &App, slug: &Slug, photo: &PhotoId, count: u64) -> usize {
    // A photo's count is state: a reader that is behind gets the latest, not every step.
    let key: StateKey = format!("l:{}/{}", slug.as_str(), photo.as_str()).into();
    let payload = out::Like { photo_id: photo.as_str(), like_count: count, timestamp: iso_now() };
    let recipients = app.broadcast_keyed(&slug.room(), None, names::PHOTO_LIKE, &payload, Some(&key));
    let mirror =
        out::AdminLike { event_slug: slug.as_str(), photo_id: photo.as_str(), like_count: count, timestamp: iso_now() };
    let admin_key: StateKey = format!("al:{}/{}", slug.as_str(), photo.as_str()).into();
    app.broadcast_keyed(ADMIN_ROOM, None, names::ADMIN_LIKE, &mirror, Some(&admin_key));
    app.admin_feed.touch(slug);
    recipients
}

/// Tells the admin room, once per event and process, that an event has as many liked photos as
/// it may hold: guests liking further photos are refused from now on.
fn like_cap_reached(app: &App, slug: &Slug) {
    if !app.admin_feed.first_like_cap(slug) {
        return;
    }
    let max = app.config.max_photos_per_event;
    tracing::warn!(room = %slug, max, "event reached its cap on liked photos; likes of further photos are refused");
    let message = format!("Event {slug} reached its limit of {max} liked photos; likes of other photos are refused");
    security_notice(app, &message, slug);
}
