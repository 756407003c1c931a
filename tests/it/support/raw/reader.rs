//! A raw websocket reader that keeps up with a room's comments, run as its own task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{Ws, event};

/// A reader that keeps up: counts the comments (numbered `<n>:...`) and their bytes, checks their
/// order, answers pings, and notes when its connection ends.
pub struct Reader {
    pub comments: Arc<AtomicUsize>,
    pub bytes: Arc<AtomicUsize>,
    pub in_order: Arc<AtomicBool>,
    pub closed: Arc<AtomicBool>,
}

impl Reader {
    pub fn spawn(mut ws: Ws) -> Reader {
        let r = Reader {
            comments: Arc::default(),
            bytes: Arc::default(),
            in_order: Arc::new(AtomicBool::new(true)),
            closed: Arc::default(),
        };
        let (comments, bytes, in_order, closed) =
            (r.comments.clone(), r.bytes.clone(), r.in_order.clone(), r.closed.clone());
        tokio::spawn(async move {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                        let _ = ws.send(Message::text("3")).await;
                    }
                    Some(Ok(Message::Text(t))) => {
                        let Some((name, data)) = event(t.as_str()) else { continue };
                        if name != "photo:comment" {
                            continue;
                        }
                        let seq = data["comment"]
                            .as_str()
                            .and_then(|c| c.split(':').next())
                            .and_then(|n| n.parse::<usize>().ok());
                        if seq != Some(comments.load(Ordering::Acquire)) {
                            in_order.store(false, Ordering::Release);
                        }
                        bytes.fetch_add(t.len(), Ordering::AcqRel);
                        comments.fetch_add(1, Ordering::AcqRel);
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        closed.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        });
        r
    }
}
