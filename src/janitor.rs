//! The room janitor: one task that sleeps until the next deadline and then evicts idle rooms
//! from memory, removes expired guest sessions, disconnects sockets whose access ended and, with
//! `rooms.retention_days`, deletes rooms idle that long from disk. Shaped like mini-redis's purge task: `sleep_until` the earliest
//! deadline, woken early by shutdown.

use std::time::Duration;

use tokio::time::Instant;

use crate::clock::now_ms;
use crate::metrics::METRICS;
use crate::socket::revoke;
use crate::state::App;

/// How often sessions and retention are checked at most (rooms are evicted on their deadline).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One pass; `full` also checks sessions and retention (they scan the store, rooms do not).
/// Returns (rooms evicted, sessions expired, rooms deleted).
pub fn sweep(app: &App, full: bool) -> (usize, usize, usize) {
    let evicted = app.presence.evict_idle(app.config.idle_evict);
    let expired = if !full {
        0
    } else {
        app.store.remove_expired_sessions(now_ms()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot remove expired guest sessions");
            0
        })
    };
    let mut deleted = 0;
    if full && app.config.retention_days > 0 {
        let cutoff = now_ms().saturating_sub(i64::from(app.config.retention_days) * 86_400_000);
        let live = |s: &crate::types::Slug| app.presence.is_live(s);
        match app.store.delete_idle_rooms(cutoff, &live) {
            Ok(rooms) => deleted = rooms.len(),
            Err(e) => tracing::warn!(error = %e, "cannot delete old rooms"),
        }
    }
    METRICS.rooms_evicted.inc_by(evicted.len() as u64);
    METRICS.sessions_expired.inc_by(expired as u64);
    METRICS.rooms_deleted.inc_by(deleted as u64);
    if !evicted.is_empty() || expired > 0 || deleted > 0 {
        tracing::info!(
            rooms_evicted = evicted.len(),
            sessions_expired = expired,
            rooms_deleted = deleted,
            "janitor sweep"
        );
    }
    (evicted.len(), expired, deleted)
}

/// Runs until shutdown. Besides its own deadlines it checks connected sockets for access that
/// ended (see [`revoke`]): every [`revoke::CHECK_EVERY`], and at once for an event an admin
/// action changed.
pub async fn run(app: App) {
    let every = app.config.idle_evict.clamp(Duration::from_millis(100), SWEEP_EVERY);
    // Rooms whose deadlines fall close together are evicted in one pass.
    let slack = (app.config.idle_evict / 4).min(Duration::from_secs(5));
    let mut next_sweep = Instant::now() + every;
    let mut next_access_check = Instant::now() + revoke::CHECK_EVERY;
    loop {
        let next_evict = app.presence.next_eviction(app.config.idle_evict).map(|t| Instant::from_std(t) + slack);
        // Rooms become empty after this was computed: re-check at least every `every`.
        let deadline = next_evict.map_or(next_sweep, |e| e.min(next_sweep));
        let timed = tokio::select! {
            _ = tokio::time::sleep_until(deadline.min(next_access_check)) => true,
            _ = app.revoker.woken() => false,
            _ = app.shutdown.wait() => return,
        };
        // What an admin is waiting for goes first.
        revoke::pass(&app, &revoke::Scope::Events(app.revoker.take()));
        if Instant::now() >= next_access_check {
            revoke::pass(&app, &revoke::Scope::All);
            next_access_check = Instant::now() + revoke::CHECK_EVERY;
        }
        if !timed || Instant::now() < deadline {
            continue;
        }
        let full = Instant::now() >= next_sweep;
        sweep(&app, full);
        if full {
            next_sweep = Instant::now() + every;
        }
    }
}
