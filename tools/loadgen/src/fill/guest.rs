//! One guest of `fill` and what it saw: its phase, how its connection ended, the last
//! `guestCount` it heard and when; and the probe guest that reads the server's own count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Fail, Fails, Target, Ws, event_name, guest_auth, json_str_field, next_text, open, pong, ws_fail};
use crate::hist::Hist;

pub const NONE: u64 = u64::MAX;

// Phases of one guest.
const PENDING: u8 = 0;
pub const JOINED: u8 = 1;
pub const FAILED: u8 = 2;

// How a guest's connection ended (while the scenario still wanted it).
pub const OPEN: u8 = 0;
pub const SERVER_CLOSED: u8 = 1;
pub const TRANSPORT_ERROR: u8 = 2;

/// What one guest saw; times are microseconds since the first connect.
pub struct Guest {
    pub phase: AtomicU8,
    pub connected: AtomicBool,
    pub ended: AtomicU8,
    pub last_count: AtomicU64,
    pub presence_msgs: AtomicU64,
    pub joined_us: AtomicU64,
    pub ended_us: AtomicU64,
    pub last_presence_us: AtomicU64,
    pub last_rx_us: AtomicU64,
}

impl Guest {
    pub fn new() -> Guest {
        Guest {
            phase: AtomicU8::new(PENDING),
            connected: AtomicBool::new(false),
            ended: AtomicU8::new(OPEN),
            last_count: AtomicU64::new(NONE),
            presence_msgs: AtomicU64::new(0),
            joined_us: AtomicU64::new(NONE),
            ended_us: AtomicU64::new(NONE),
            last_presence_us: AtomicU64::new(NONE),
            last_rx_us: AtomicU64::new(NONE),
        }
    }
}

pub struct Shared {
    pub base: Instant,
    pub guests: Vec<Guest>,
    pub fails: Fails,
    pub join_lat: Hist,
}

impl Shared {
    pub fn us(&self) -> u64 {
        Instant::now().saturating_duration_since(self.base).as_micros() as u64
    }
}

/// The number after `"key":` in a small JSON text, without parsing it.
fn json_u64_field(s: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let start = s.find(&pat)? + pat.len();
    let digits = s[start..].trim_start();
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

enum Seen {
    Other,
    Snapshot,
    JoinError(String),
    ServerClosed,
}

/// Handles one text frame of a guest: answers pings, records presence.
async fn on_text(ws: &mut Ws, s: &str, me: &Guest, sh: &Shared) -> Result<Seen, Fail> {
    me.last_rx_us.store(sh.us(), Relaxed);
    if s == "2" {
        pong(ws).await?;
        return Ok(Seen::Other);
    }
    if s.starts_with('1') || s.starts_with("41") {
        return Ok(Seen::ServerClosed);
    }
    match event_name(s) {
        Some("guest:joined" | "guest:left") => {
            me.presence_msgs.fetch_add(1, Relaxed);
            me.last_presence_us.store(sh.us(), Relaxed);
            if let Some(n) = json_u64_field(s, "guestCount") {
                me.last_count.store(n, Relaxed);
            }
            Ok(Seen::Other)
        }
        Some("event:snapshot") => Ok(Seen::Snapshot),
        Some("error") => Ok(Seen::JoinError(json_str_field(s, "message").unwrap_or("?").to_string())),
        _ => Ok(Seen::Other),
    }
}

fn end(me: &Guest, sh: &Shared, how: u8) {
    me.ended.store(how, Relaxed);
    me.ended_us.store(sh.us(), Relaxed);
}

/// Reads frames until the join's snapshot (Ok), or the join fails.
async fn join(ws: &mut Ws, slug: &str, me: &Guest, sh: &Shared) -> Result<(), Fail> {
    ws.send(Message::text(format!("42[\"event:join\",\"{slug}\"]"))).await.map_err(ws_fail)?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                match on_text(ws, t.as_str(), me, sh).await.inspect_err(|_| end(me, sh, TRANSPORT_ERROR))? {
                    Seen::Snapshot => return Ok(()),
                    Seen::JoinError(m) => return Err(Fail::JoinError(m)),
                    Seen::ServerClosed => {
                        end(me, sh, SERVER_CLOSED);
                        return Err(Fail::Closed);
                    }
                    Seen::Other => {}
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                end(me, sh, SERVER_CLOSED);
                return Err(Fail::Closed);
            }
            Some(Err(e)) => {
                end(me, sh, TRANSPORT_ERROR);
                return Err(ws_fail(e));
            }
            Some(Ok(_)) => {}
        }
    }
}

/// One guest: connects at `start`, joins, then reads and records presence until stopped or closed.
pub async fn guest(
    t: Arc<Target>,
    g: usize,
    session: String,
    slug: String,
    start: Instant,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::time::sleep_until(start.into()).await;
    let me = &sh.guests[g];
    let t0 = Instant::now();
    let setup = async {
        let mut ws = open(&t, g, &guest_auth(&session, &slug)).await?;
        me.connected.store(true, Relaxed);
        join(&mut ws, &slug, me, &sh).await?;
        Ok::<Ws, Fail>(ws)
    };
    let mut ws = match tokio::time::timeout(t.conn_timeout, setup).await.unwrap_or(Err(Fail::Timeout)) {
        Ok(ws) => ws,
        Err(f) => {
            me.phase.store(FAILED, Relaxed);
            sh.fails.add(&f);
            return;
        }
    };
    sh.join_lat.record(t0.elapsed().as_micros() as u64);
    me.joined_us.store(sh.us(), Relaxed);
    me.phase.store(JOINED, Relaxed);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => match on_text(&mut ws, t.as_str(), me, &sh).await {
                    Ok(Seen::ServerClosed) => return end(me, &sh, SERVER_CLOSED),
                    Ok(_) => {}
                    Err(_) => return end(me, &sh, TRANSPORT_ERROR),
                },
                Some(Ok(Message::Close(_))) | None => return end(me, &sh, SERVER_CLOSED),
                Some(Err(_)) => return end(me, &sh, TRANSPORT_ERROR),
                Some(Ok(_)) => {}
            },
            // Dropping the socket is enough: the process exits right after the report.
            _ = stop.changed() => return,
        }
    }
}

/// One more guest joins after the settle time; its snapshot's `guestCount` minus itself is the
/// number of guests the server counts in the room.
pub async fn probe(t: &Target, src: usize, session: &str, slug: &str) -> Result<u64, Fail> {
    let fut = async {
        let mut ws = open(t, src, &guest_auth(session, slug)).await?;
        ws.send(Message::text(format!("42[\"event:join\",\"{slug}\"]"))).await.map_err(ws_fail)?;
        loop {
            let m = next_text(&mut ws).await?;
            let s = m.as_str();
            if s == "2" {
                pong(&mut ws).await?;
            } else if event_name(s) == Some("event:snapshot") {
                return json_u64_field(s, "guestCount")
                    .map(|n| n.saturating_sub(1))
                    .ok_or(Fail::Ws("snapshot without guestCount".into()));
            } else if event_name(s) == Some("error") {
                return Err(Fail::JoinError(json_str_field(s, "message").unwrap_or("?").to_string()));
            }
        }
    };
    tokio::time::timeout(t.conn_timeout, fut).await.unwrap_or(Err(Fail::Timeout))
}
