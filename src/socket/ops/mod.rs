//! Operations on state that both a socket and `POST /api/emit` can ask for: authorize, change
//! state (durably, where the contract says so), then broadcast. Data flows one way:
//! validated event → permission → store → room.
//!
//! One file per relayed event holds its checks, its effect and its broadcast (`like`, `comment`,
//! `upload`, `update`, `notification`); this module routes to them ([`relay`] for `/api/emit`,
//! [`plan`] and [`relay_now`] for sockets). The socket's own membership events (`event:join`,
//! `event:leave`, `admin:join`) are the socket layer's.

use serde_json::Value;

use crate::auth::Identity;
use crate::error::WireError;
use crate::protocol::ClientEvent;
use crate::socket::revoke;
use crate::state::App;
use crate::store::StoreError;
use crate::types::Slug;

mod comment;
mod like;
mod notification;
mod update;
mod upload;

pub use crate::types::ADMIN_ROOM;
pub use like::{Staged, announce_like, make_durable, stage};
pub use notification::{security_notice, system_notice};

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

fn require_access(app: &App, who: &Identity, slug: &Slug) -> Result<(), WireError> {
    if can_access(app, who, slug)? { Ok(()) } else { Err(WireError::AccessDenied) }
}

fn require_manage(app: &App, who: &Identity, slug: &Slug) -> Result<(), WireError> {
    if can_manage(app, who, slug)? { Ok(()) } else { Err(WireError::AccessDenied) }
}

/// Notes activity in a room: keeps it in memory, and its access time on disk current.
fn touch(app: &App, slug: &Slug) {
    if app.presence.touch(slug)
        && let Err(e) = app.store.touch_room(slug)
    {
        tracing::debug!(error = %e, "cannot record room access");
    }
}

/// Runs one room or admin event (everything but joins and leaves).
pub async fn relay(app: &App, who: &Identity, ev: &ClientEvent) -> Result<Relayed, WireError> {
    relay_staged(app, who, ev, None).await
}

/// [`relay`], for an event that [`stage`] may already have applied. Only an accepted event
/// counts as activity in its room: refused input changes nothing.
pub async fn relay_staged(
    app: &App,
    who: &Identity,
    ev: &ClientEvent,
    staged: Option<Staged>,
) -> Result<Relayed, WireError> {
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

/// Runs an event that needs no disk write: checks, then broadcasts.
pub fn relay_now(app: &App, who: &Identity, ev: &ClientEvent) -> Result<Relayed, WireError> {
    let done = match ev {
        ClientEvent::Comment { slug, photo, comment } => comment::apply(app, who, slug, photo, comment),
        ClientEvent::UploadProgress { slug, photo, progress, filename } => {
            upload::progress(app, who, slug, photo, progress, filename)
        }
        ClientEvent::UploadComplete { slug, photo } => upload::complete(app, who, slug, photo),
        ClientEvent::EventUpdate { slug, updates } => update::apply(app, who, slug, updates),
        ClientEvent::AdminNotification { kind, data } => notification::apply(app, who, kind, data),
        ClientEvent::Like { .. }
        | ClientEvent::Unlike { .. }
        | ClientEvent::Join(_)
        | ClientEvent::Leave(_)
        | ClientEvent::AdminJoin => Err(WireError::InvalidPayload),
    }?;
    if let Some(slug) = ev.slug() {
        touch(app, slug);
    }
    Ok(done)
}

/// Logs every change of the storage breaker and tells the admin room. Runs until shutdown.
pub async fn watch_breaker(app: App) {
    use crate::store::BreakerStatus as Status;
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
                system_notice(
                    &app,
                    "Storage is failing: likes and changes are refused for now; live relaying continues",
                );
            }
            Status::Closed => {
                tracing::warn!("storage breaker closed: writes accepted again");
                system_notice(&app, "Storage recovered: likes and changes are accepted again");
            }
        }
    }
}
