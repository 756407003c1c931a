//! Operations on state that both a socket and `POST /api/emit` can ask for: authorize, change
//! state (durably, where the contract says so), then broadcast. Data flows one way:
//! validated event → permission → store → room.

use serde::Serialize;
use serde_json::Value;
use crate::engine::{Sid, StateKey};

use crate::auth::Identity;
use crate::clock::iso_now;
use crate::config::GuestComments;
use crate::error::WireError;
use crate::protocol::outgoing::{self as out, names};
use crate::protocol::ClientEvent;
use crate::socket::revoke;
use crate::state::App;
use crate::store::{LikeCaps, LikeLimit, StagedToggle, StoreError};
use crate::types::{PhotoId, Slug};

pub use crate::types::ADMIN_ROOM;

/// May `who` see and act as a member of the event `slug`? Checked at every use, so access that
/// ended is refused even before the janitor disconnects the socket.
pub fn can_access(app: &App, who: &Identity, slug: &Slug) -> Result<bool, StoreError> {
    match who {
        Identity::Admin { .. } => Ok(true),
        Identity::Guest { session, slug: own } => Ok(own == slug && revoke::guest_still_valid(app, session, own)?),
        Identity::Owner { .. } => can_manage(app, who, slug),
    }
}

/// May `who` act for the studio on `slug` (uploads, updates)? Admins, and the event's owner.
pub fn can_manage(app: &App, who: &Identity, slug: &Slug) -> Result<bool, StoreError> {
    match who {
        Identity::Admin { .. } => Ok(true),
        Identity::Guest { .. } => Ok(false),
        Identity::Owner { user_id } => Ok(revoke::event_owned_by(app.store.event(slug)?.as_ref(), user_id)),
    }
}

/// What a relayed event did: who it went to, and an acknowledgement for the sender.
#[derive(Debug)]
pub struct Relayed {
    pub recipients: usize,
    pub ack: Value,
}

/// Emits `data` as `event` to `room` (see [`App::broadcast`]).
pub fn broadcast<T: Serialize + ?Sized>(app: &App, room: &str, event: &str, data: &T) -> usize {
    app.broadcast(room, event, data)
}

/// [`App::broadcast_keyed`].
pub fn broadcast_keyed<T: Serialize + ?Sized>(app: &App, room: &str, except: Option<Sid>, event: &str, data: &T, key: Option<&StateKey>) -> usize {
    app.broadcast_keyed(room, except, event, data, key)
}

fn require_access(app: &App, who: &Identity, slug: &Slug) -> Result<(), WireError> {
    if can_access(app, who, slug)? { Ok(()) } else { Err(WireError::AccessDenied) }
}

fn require_manage(app: &App, who: &Identity, slug: &Slug) -> Result<(), WireError> {
    if can_manage(app, who, slug)? { Ok(()) } else { Err(WireError::AccessDenied) }
}

fn emit_like(app: &App, slug: &Slug, photo: &PhotoId, count: u64) -> usize {
    // A photo's count is state: a reader that is behind gets the latest, not every step.
    let key: StateKey = format!("l:{}/{}", slug.as_str(), photo.as_str()).into();
    let payload = out::Like { photo_id: photo.as_str(), like_count: count, timestamp: iso_now() };
    let recipients = broadcast_keyed(app, &slug.room(), None, names::PHOTO_LIKE, &payload, Some(&key));
    let mirror = out::AdminLike { event_slug: slug.as_str(), photo_id: photo.as_str(), like_count: count, timestamp: iso_now() };
    let admin_key: StateKey = format!("al:{}/{}", slug.as_str(), photo.as_str()).into();
    broadcast_keyed(app, ADMIN_ROOM, None, names::ADMIN_LIKE, &mirror, Some(&admin_key));
    app.admin_feed.touch(slug);
    recipients
}

/// Notes activity in a room: keeps it in memory, and its access time on disk current.
fn touch(app: &App, slug: &Slug) {
    if app.presence.touch(slug)
        && let Err(e) = app.store.touch_room(slug)
    {
        tracing::debug!(error = %e, "cannot record room access");
    }
}

/// A like or unlike that was authorized and applied as it arrived; its flush, broadcast and
/// acknowledgement come later, in the socket's order (see `socket::dispatch`).
pub struct Staged(Result<StagedToggle, WireError>);

/// Applies a like or unlike at once, before the events ahead of it on the same socket have
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
    let staged = require_access(app, who, slug).and_then(|()| Ok(app.store.stage_toggle(slug, photo, &who.liker(), like, caps)?));
    Some(Staged(staged))
}

/// Runs one room or admin event (everything but joins and leaves).
pub async fn relay(app: &App, who: &Identity, ev: &ClientEvent) -> Result<Relayed, WireError> {
    relay_staged(app, who, ev, None).await
}

/// [`relay`], for an event that [`stage`] may already have applied. Only an accepted event
/// counts as activity in its room: refused input changes nothing.
pub async fn relay_staged(app: &App, who: &Identity, ev: &ClientEvent, staged: Option<Staged>) -> Result<Relayed, WireError> {
    match ev {
        ClientEvent::Like { .. } | ClientEvent::Unlike { .. } => {
            let done = make_durable(app, who, ev, staged).await?;
            Ok(announce_like(app, &done))
        }
        other => relay_now(app, who, other),
    }
}

/// The finishing half of an event that waits: its broadcast, which makes its acknowledgement.
pub type Finishing = Box<dyn FnOnce() -> Result<Value, WireError> + Send>;

/// How an event runs.
pub enum Plan {
    /// At once, in its turn ([`relay_now`], or the socket's own membership events).
    Now,
    /// Applied now; this waits (for the disk) and then gives the finishing half.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Finishing> + Send>>),
}

/// Decides how an event runs, and for one that waits, applies it now: likes and unlikes are
/// staged on arrival, so a socket's next like is applied while this one is being flushed.
pub fn plan(app: &App, who: &Identity, ev: &ClientEvent) -> Plan {
    if !matches!(ev, ClientEvent::Like { .. } | ClientEvent::Unlike { .. }) {
        return Plan::Now;
    }
    let staged = stage(app, who, ev);
    let (app, who, ev) = (app.clone(), who.clone(), ev.clone());
    Plan::Later(Box::pin(async move {
        let durable = make_durable(&app, &who, &ev, staged).await;
        Box::new(move || durable.map(|d| announce_like(&app, &d).ack)) as Finishing
    }))
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
pub async fn make_durable(app: &App, who: &Identity, ev: &ClientEvent, staged: Option<Staged>) -> Result<Durable, WireError> {
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
                Ok(out) => Ok(Durable { slug: slug.clone(), photo: photo.clone(), count: out.count, changed: out.changed }),
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

/// Runs an event that needs no disk write: checks, then broadcasts.
pub fn relay_now(app: &App, who: &Identity, ev: &ClientEvent) -> Result<Relayed, WireError> {
    let ack = |_: Option<u64>| serde_json::json!({"ok": true});
    let done = match ev {
        ClientEvent::Comment { slug, photo, comment } => {
            require_access(app, who, slug)?;
            let mode = if who.is_admin() { GuestComments::Broadcast } else { app.config.guest_comments };
            let payload = out::Comment { photo_id: photo.as_str(), comment, event_slug: slug.as_str(), timestamp: iso_now() };
            let recipients = match mode {
                GuestComments::Off => return Err(WireError::CommentsOff),
                GuestComments::AdminsOnly => broadcast(app, ADMIN_ROOM, names::PHOTO_COMMENT, &payload),
                GuestComments::Broadcast => {
                    let n = broadcast(app, &slug.room(), names::PHOTO_COMMENT, &payload);
                    // The admin page's feed: every comment, whichever room it went to.
                    broadcast(app, ADMIN_ROOM, names::ADMIN_COMMENT, &payload);
                    n
                }
            };
            Ok(Relayed { recipients, ack: ack(None) })
        }
        ClientEvent::UploadProgress { slug, photo, progress, filename } => {
            require_manage(app, who, slug)?;
            let payload = out::Progress { photo_id: photo.as_str(), progress, filename, timestamp: iso_now() };
            let recipients = broadcast(app, &slug.room(), names::UPLOAD_PROGRESS, &payload);
            Ok(Relayed { recipients, ack: ack(None) })
        }
        ClientEvent::UploadComplete { slug, photo } => {
            require_manage(app, who, slug)?;
            let payload = out::Complete { photo, timestamp: iso_now() };
            let recipients = broadcast(app, &slug.room(), names::UPLOAD_COMPLETE, &payload);
            Ok(Relayed { recipients, ack: ack(None) })
        }
        ClientEvent::EventUpdate { slug, updates } => {
            require_manage(app, who, slug)?;
            let payload = out::Update { updates, timestamp: iso_now() };
            let recipients = broadcast(app, &slug.room(), names::EVENT_UPDATE, &payload);
            Ok(Relayed { recipients, ack: ack(None) })
        }
        ClientEvent::AdminNotification { kind, data } => {
            if !who.is_admin() {
                return Err(WireError::AdminRequired);
            }
            let payload = out::Notification { kind, data, timestamp: iso_now() };
            let recipients = broadcast(app, ADMIN_ROOM, names::ADMIN_NOTIFICATION, &payload);
            Ok(Relayed { recipients, ack: ack(None) })
        }
        ClientEvent::Like { .. } | ClientEvent::Unlike { .. } | ClientEvent::Join(_) | ClientEvent::Leave(_) | ClientEvent::AdminJoin => {
            Err(WireError::InvalidPayload)
        }
    }?;
    if let Some(slug) = ev.slug() {
        touch(app, slug);
    }
    Ok(done)
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

/// Sends a system notification to the admin room (breaker changes, and the like).
pub fn system_notice(app: &App, message: &str) {
    let data = serde_json::json!({ "message": message });
    let payload = out::Notification { kind: "system", data: &data, timestamp: iso_now() };
    broadcast(app, ADMIN_ROOM, names::ADMIN_NOTIFICATION, &payload);
}

/// Sends a security notification about an event to the admin room (an attack on its access
/// code, and the like).
pub fn security_notice(app: &App, message: &str, slug: &Slug) {
    let data = serde_json::json!({ "message": message, "eventSlug": slug.as_str() });
    let payload = out::Notification { kind: "security", data: &data, timestamp: iso_now() };
    broadcast(app, ADMIN_ROOM, names::ADMIN_NOTIFICATION, &payload);
}

/// Logs every change of the storage breaker and tells the admin room. Runs until shutdown.
pub async fn watch_breaker(app: App) {
    use crate::breaker::Status;
    let mut rx = app.store.breaker().subscribe();
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = app.shutdown.wait() => return,
        }
        let status = *rx.borrow_and_update();
        match status {
            Status::Open => {
                tracing::error!("storage breaker opened: writes refused until a trial write succeeds");
                system_notice(&app, "Storage is failing: likes and changes are refused for now; live relaying continues");
            }
            Status::Closed => {
                tracing::warn!("storage breaker closed: writes accepted again");
                system_notice(&app, "Storage recovered: likes and changes are accepted again");
            }
        }
    }
}
