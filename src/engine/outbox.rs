//! One socket's unsent frames: bounded in bytes, with state updates conflated.
//!
//! A frame is an Engine.IO text packet (`42[...]`, `2`, ...) held as [`Utf8Bytes`], so a
//! broadcast's one encoded frame is shared by every recipient's queue: pushing it costs a
//! reference count, not a copy.
//!
//! Some frames are *state* (a room's guest count, a photo's like count): only the latest one
//! matters. Such a frame carries a key; pushing it drops the older frame with the same key that
//! is still waiting, and the new one goes to the tail. So state never adds up in a slow reader's
//! queue, and a newer state never overtakes frames pushed before it (it is sent where the newest
//! push put it). The dropped frame stays as an empty slot until it reaches the head, which makes
//! the drop O(1) however long the queue is.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What makes two state frames the same state (`"p:<slug>"`, `"l:<slug>/<photo>"`, ...). Shared
/// by every recipient of a broadcast, like the frame.
pub type StateKey = Arc<str>;

struct Item {
    /// `None` once a newer frame with the same key replaced it.
    frame: Option<Utf8Bytes>,
    key: Option<StateKey>,
}

/// Bytes charged per frame beyond its text: the queue slot and the websocket or polling framing.
/// Keeps a flood of tiny frames from looking free.
pub const FRAME_OVERHEAD: usize = 16;

#[derive(Default)]
pub struct Outbox {
    items: VecDeque<Item>,
    /// Sequence number of `items[0]`.
    head: u64,
    /// Bytes of the frames waiting (replaced ones not counted).
    bytes: usize,
    /// Where the waiting frame of each key is (its sequence number). Empty, and unallocated, for
    /// a socket that has no state frame waiting.
    keyed: HashMap<StateKey, u64>,
}

fn cost(frame: &Utf8Bytes) -> usize {
    frame.len() + FRAME_OVERHEAD
}

impl Outbox {
    /// Appends `frame`; with a `key`, replaces the waiting frame of that key. Returns the bytes
    /// waiting afterwards.
    pub fn push(&mut self, frame: Utf8Bytes, key: Option<&StateKey>) -> usize {
        let seq = self.head + self.items.len() as u64;
        if let Some(k) = key
            && let Some(old) = self.keyed.insert(k.clone(), seq)
            && let Some(item) = old.checked_sub(self.head).and_then(|i| self.items.get_mut(i as usize))
            && let Some(f) = item.frame.take()
        {
            self.bytes -= cost(&f);
        }
        self.bytes += cost(&frame);
        self.items.push_back(Item { frame: Some(frame), key: key.cloned() });
        self.bytes
    }

    /// Takes the oldest waiting frame.
    pub fn pop(&mut self) -> Option<Utf8Bytes> {
        loop {
            let item = self.items.pop_front()?;
            let seq = self.head;
            self.head += 1;
            if let Some(k) = &item.key
                && self.keyed.get(k) == Some(&seq)
            {
                self.keyed.remove(k);
            }
            if let Some(f) = item.frame {
                self.bytes -= cost(&f);
                return Some(f);
            }
        }
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Gives the buffers back once everything went out: an idle socket holds no queue memory.
    pub fn release_if_empty(&mut self) {
        if self.bytes == 0 {
            self.head += self.items.len() as u64;
            self.items = VecDeque::new();
            self.keyed = HashMap::new();
        }
    }

    /// Drops everything (the socket is gone); returns the bytes dropped.
    pub fn clear(&mut self) -> usize {
        let n = self.bytes;
        self.bytes = 0;
        self.release_if_empty();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_string())
    }

    fn drain(o: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| o.pop()).map(|f| f.to_string()).collect()
    }

    #[test]
    fn state_replaces_the_waiting_one_and_goes_to_the_tail() {
        let mut o = Outbox::default();
        let room: StateKey = Arc::from("p:wedding");
        o.push(f("count 1"), Some(&room));
        o.push(f("comment a"), None);
        o.push(f("count 2"), Some(&room));
        o.push(f("comment b"), None);
        o.push(f("count 3"), Some(&room));
        assert_eq!(
            o.bytes(),
            ["comment a", "comment b", "count 3"].iter().map(|s| s.len() + FRAME_OVERHEAD).sum::<usize>()
        );
        assert_eq!(drain(&mut o), ["comment a", "comment b", "count 3"]);
        assert!(o.is_empty());
        // Once sent, a state frame is not replaced any more: the next one is simply queued.
        o.push(f("count 4"), Some(&room));
        assert_eq!(o.pop().map(|f| f.to_string()), Some("count 4".into()));
        o.push(f("count 5"), Some(&room));
        assert_eq!(drain(&mut o), ["count 5"]);
    }

    #[test]
    fn release_frees_buffers_and_keeps_sequence_numbers_right() {
        let mut o = Outbox::default();
        let k: StateKey = Arc::from("l:x/1");
        for i in 0..100 {
            o.push(f(&format!("m{i}")), None);
        }
        drain(&mut o);
        o.release_if_empty();
        assert_eq!(o.items.capacity(), 0);
        o.push(f("a"), Some(&k));
        o.push(f("b"), Some(&k));
        assert_eq!(drain(&mut o), ["b"]);
    }

    proptest! {
        /// Against a plain model: frames come out in push order, minus every keyed frame that a
        /// later frame with its key replaced while it waited; the byte count always matches.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..4, proptest::option::of(0u8..3)), 0..200)) {
            let keys: Vec<StateKey> = (0..3).map(|i| Arc::from(format!("k{i}"))).collect();
            let mut o = Outbox::default();
            let mut model: Vec<(String, Option<u8>)> = Vec::new();
            for (n, (op, key)) in ops.into_iter().enumerate() {
                if op == 0 {
                    let got = o.pop().map(|f| f.to_string());
                    let want = if model.is_empty() { None } else { Some(model.remove(0).0) };
                    prop_assert_eq!(got, want);
                } else {
                    let text = format!("f{n}");
                    if let Some(k) = key {
                        model.retain(|(_, mk)| *mk != Some(k));
                    }
                    o.push(f(&text), key.map(|k| &keys[k as usize]));
                    model.push((text, key));
                }
                let want: usize = model.iter().map(|(t, _)| t.len() + FRAME_OVERHEAD).sum();
                prop_assert_eq!(o.bytes(), want);
            }
        }
    }
}
