//! Live room summaries for the admin room (`admin:room`), so the admin page stays current
//! without polling. Changes mark a room dirty ([`crate::admin_feed`]); one task sends each dirty
//! room at most every 500 ms, and only when an admin is listening.

use std::time::Duration;

use serde::Serialize;

use crate::clock::{iso_ms, iso_now};
use crate::state::App;
use crate::types::{ADMIN_ROOM, Slug};

const TOP_PHOTOS: usize = 5;
const INTERVAL: Duration = Duration::from_millis(500);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    slug: String,
    guest_count: usize,
    peak_guests: u64,
    total_guests: u64,
    likes: u64,
    top_photos: Vec<TopPhotoJson>,
    last_access_at: Option<String>,
    in_memory: bool,
    timestamp: String,
}

#[derive(Serialize)]
pub struct TopPhotoJson {
    photo_id: String,
    #[serde(rename = "likeCount")]
    like_count: u64,
}

/// The summary of one room, as `admin:room` carries it.
pub fn summary(app: &App, slug: &Slug) -> Result<RoomSummary, crate::store::StoreError> {
    let rec = app.store.room(slug)?.unwrap_or_default();
    let (likes, top) = app.store.room_like_summary(slug, TOP_PHOTOS)?;
    Ok(RoomSummary {
        slug: slug.as_str().to_string(),
        guest_count: app.presence.guest_count(slug),
        peak_guests: rec.peak_guests,
        total_guests: rec.total_guests,
        likes,
        top_photos: top
            .into_iter()
            .map(|(p, c)| TopPhotoJson { photo_id: p.as_str().to_string(), like_count: c })
            .collect(),
        last_access_at: (rec.last_access_ms > 0).then(|| iso_ms(rec.last_access_ms)),
        in_memory: app.presence.is_live(slug),
        timestamp: iso_now(),
    })
}

fn admins_listening(app: &App) -> bool {
    app.engine().is_some_and(|e| e.room_len(ADMIN_ROOM) > 0)
}

/// Runs until shutdown.
pub async fn run(app: App) {
    loop {
        tokio::select! {
            _ = app.admin_feed.woken() => {}
            _ = app.shutdown.wait() => return,
        }
        tokio::time::sleep(INTERVAL).await;
        let dirty = app.admin_feed.take();
        if dirty.is_empty() || !admins_listening(&app) {
            continue;
        }
        for slug in dirty {
            match summary(&app, &slug) {
                Ok(s) => {
                    // A room's summary is state: a newer one replaces the one still waiting.
                    let key = crate::engine::StateKey::from(format!("r:{}", slug.as_str()));
                    app.broadcast_keyed(ADMIN_ROOM, None, crate::protocol::names::ADMIN_ROOM, &s, Some(&key));
                }
                Err(e) => tracing::warn!(room = %slug, error = %e, "cannot summarise room"),
            }
        }
    }
}
