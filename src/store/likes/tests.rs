use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::store::codec::{FORMAT_KEY, FORMAT_VERSION, decode, key_part, key2, key3, prefix};
use crate::store::{Flush, StoreOptions};

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}
fn photo(s: &str) -> PhotoId {
    PhotoId::parse(s).unwrap()
}
fn liker(s: &str) -> LikerKey {
    LikerKey::from_stored(s.into())
}

async fn like(st: &Store, s: &Slug, p: &str, l: &str, caps: LikeCaps) -> Result<LikeOutcome, StoreError> {
    st.toggle(s, &photo(p), &liker(l), true, caps).await
}

fn is_limit(r: Result<LikeOutcome, StoreError>, which: LikeLimit) -> bool {
    matches!(r, Err(StoreError::LikeLimit(l)) if l == which)
}

/// Everything derived, recomputed from the counts and likers on disk by brute force, next to
/// what the like book answers, before and after the book rebuilt the event from disk.
fn assert_derived_match(st: &Store, s: &Slug) {
    let t = st.t().unwrap();
    let p = prefix(s.as_str());
    let mut counts: Vec<(PhotoId, PhotoLikes)> = Vec::new();
    for item in t.counts.scan_prefix(&p) {
        let (k, v) = item.unwrap();
        counts.push((photo(&key_part(&k, 1).unwrap()), decode(&v).unwrap()));
    }
    let total: u128 = counts.iter().map(|(_, c)| u128::from(c.count)).sum();
    let mut by_count: Vec<(PhotoId, u64)> =
        counts.iter().filter(|(_, c)| c.count > 0).map(|(p, c)| (p.clone(), c.count)).collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut by_time: Vec<(i64, PhotoId, u64)> =
        counts.iter().map(|(p, c)| (c.updated_ms, p.clone(), c.count)).collect();
    by_time.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let recent: Vec<(PhotoId, u64)> = by_time.into_iter().map(|(_, p, c)| (p, c)).collect();
    let mut tallies = std::collections::BTreeMap::<String, u64>::new();
    for item in t.liked_by.scan_prefix(&p) {
        *tallies.entry(key_part(&item.unwrap().0, 1).unwrap()).or_default() += 1;
    }
    for rebuilt in [false, true] {
        if rebuilt {
            t.book().forget(s);
        }
        let total = u64::try_from(total).unwrap();
        assert_eq!(st.room_like_summary(s, usize::MAX).unwrap(), (total, by_count.clone()), "rebuilt: {rebuilt}");
        let top5: Vec<_> = by_count.iter().take(5).cloned().collect();
        assert_eq!(st.room_like_summary(s, 5).unwrap().1, top5);
        assert_eq!(st.room_likes(s, usize::MAX).unwrap(), recent, "rebuilt: {rebuilt}");
        assert_eq!(st.with_event(s, |ev| ev.photos()).unwrap(), counts.len() as u64);
        for (l, n) in &tallies {
            let held = st.with_event(s, |ev| ev.tally(&liker(l))).unwrap();
            assert!(held.is_none_or(|h| h == *n), "tally of {l}: {held:?}, on disk {n}");
        }
    }
}

#[tokio::test]
async fn likes_are_idempotent_per_identity() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    let (s, p) = (slug("w"), photo("p1"));
    let (a, b) = (liker("a"), liker("b"));
    assert_eq!(st.like(&s, &p, &a).await.unwrap(), LikeOutcome { changed: true, count: 1 });
    assert_eq!(st.like(&s, &p, &a).await.unwrap(), LikeOutcome { changed: false, count: 1 });
    assert_eq!(st.like(&s, &p, &b).await.unwrap(), LikeOutcome { changed: true, count: 2 });
    assert_eq!(st.unlike(&s, &p, &a).await.unwrap(), LikeOutcome { changed: true, count: 1 });
    assert_eq!(st.unlike(&s, &p, &a).await.unwrap(), LikeOutcome { changed: false, count: 1 });
    assert_eq!(st.liked_by(&s, &b, 10).unwrap(), vec![p.clone()]);
    assert!(st.liked_by(&s, &a, 10).unwrap().is_empty());
    st.set_like_count(&s, &p, 40).await.unwrap();
    assert_eq!(st.room_likes(&s, 10).unwrap(), vec![(p.clone(), 40)]);
    assert_eq!(st.room_like_summary(&s, 0).unwrap(), (40, vec![]));
    assert_derived_match(&st, &s);
}

#[tokio::test]
async fn keys_do_not_bleed_between_rooms_with_shared_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    let a = liker("g");
    st.like(&slug("ab"), &photo("1"), &a).await.unwrap();
    st.like(&slug("a"), &photo("b"), &a).await.unwrap();
    assert_eq!(st.room_likes(&slug("a"), 10).unwrap(), vec![(photo("b"), 1)]);
    assert_eq!(st.room_like_summary(&slug("a"), 10).unwrap(), (1, vec![(photo("b"), 1)]));
    assert_eq!(st.liked_by(&slug("a"), &a, 10).unwrap(), vec![photo("b")]);
}

#[tokio::test]
async fn snapshot_is_newest_first_ties_by_photo_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    let s = slug("w");
    for i in 0..5 {
        st.set_like_count(&s, &photo(&format!("p{i}")), i).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(st.room_likes(&s, 2).unwrap(), vec![(photo("p4"), 4), (photo("p3"), 3)]);
    assert_eq!(st.room_likes(&s, 10).unwrap().len(), 5);
    assert!(st.room_likes(&s, 0).unwrap().is_empty());
    // A change moves a photo to the front.
    st.set_like_count(&s, &photo("p0"), 9).await.unwrap();
    assert_eq!(st.room_likes(&s, 1).unwrap(), vec![(photo("p0"), 9)]);
    // Equal change times: smaller photo id first, whatever the order of writing; times before
    // 1970 and far ahead sort too.
    let t = slug("t");
    for (p, ms) in [("b", 50), ("c", 50), ("a", 50), ("old", -5), ("new", i64::MAX)] {
        st.import_count(&t, &photo(p), &PhotoLikes { count: 1, updated_ms: ms }).unwrap();
    }
    let order: Vec<String> = st.room_likes(&t, 10).unwrap().into_iter().map(|(p, _)| p.as_str().to_string()).collect();
    assert_eq!(order, ["new", "a", "b", "c", "old"]);
    assert_derived_match(&st, &t);
}

#[tokio::test]
async fn identity_cap_refuses_new_photos_only() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    let s = slug("w");
    let caps = LikeCaps { per_identity: 3, per_event: 100 };
    for p in ["p1", "p2", "p3"] {
        assert!(like(&st, &s, p, "g", caps).await.unwrap().changed);
    }
    assert!(is_limit(like(&st, &s, "p4", "g", caps).await, LikeLimit::PerIdentity));
    // Nothing of the refused like was stored.
    assert!(st.t().unwrap().counts.get(key2("w", "p4")).unwrap().is_none());
    // Re-liking a photo already liked at the cap is the usual no-op, not a refusal.
    assert_eq!(like(&st, &s, "p2", "g", caps).await.unwrap(), LikeOutcome { changed: false, count: 1 });
    // Someone else is not limited by g's likes.
    assert!(like(&st, &s, "p4", "h", caps).await.unwrap().changed);
    // An unlike makes room again.
    assert_eq!(st.unlike(&s, &photo("p1"), &liker("g")).await.unwrap(), LikeOutcome { changed: true, count: 0 });
    assert_eq!(like(&st, &s, "p4", "g", caps).await.unwrap(), LikeOutcome { changed: true, count: 2 });
    // The cap is per event.
    assert!(like(&st, &slug("other"), "p9", "g", caps).await.unwrap().changed);
    assert_derived_match(&st, &s);
}

#[tokio::test]
async fn event_cap_refuses_new_photo_ids_and_unlikes_still_work_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    let s = slug("w");
    let wide = LikeCaps { per_identity: 100, per_event: 100 };
    for p in ["p1", "p2", "p3", "p4"] {
        like(&st, &s, p, "a", wide).await.unwrap();
    }
    // Data written under a wider cap stays; with a lower one new ids are refused.
    let caps = LikeCaps { per_identity: 100, per_event: 3 };
    assert!(is_limit(like(&st, &s, "p5", "b", caps).await, LikeLimit::PerEvent));
    // Known photos can still be liked.
    assert_eq!(like(&st, &s, "p1", "b", caps).await.unwrap(), LikeOutcome { changed: true, count: 2 });
    // Admin-set counts are the web app's truth and are not refused; they count as photos.
    st.set_like_count(&s, &photo("p6"), 7).await.unwrap();
    assert_eq!(st.room_like_summary(&s, 1).unwrap(), (12, vec![(photo("p6"), 7)]));
    // Unlikes always work, and a photo unliked to zero keeps its record (it still counts).
    for p in ["p1", "p2", "p3", "p4"] {
        assert!(st.unlike(&s, &photo(p), &liker("a")).await.unwrap().changed);
    }
    assert!(is_limit(like(&st, &s, "p5", "b", caps).await, LikeLimit::PerEvent));
    assert_derived_match(&st, &s);
}

/// A small deterministic generator (xorshift64), so a failure replays.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn aggregates_match_a_recount_after_random_changes() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    let rooms = [slug("r"), slug("r-2")];
    let caps = LikeCaps { per_identity: 6, per_event: 12 };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut undone) = (0, 0);
    for _ in 0..600 {
        let s = &rooms[rng.below(2) as usize];
        let p = photo(&format!("p{}", rng.below(16)));
        let l = liker(&format!("g{}", rng.below(5)));
        match rng.below(10) {
            0..=4 => match st.toggle(s, &p, &l, true, caps).await {
                Ok(_) => {}
                Err(StoreError::LikeLimit(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            },
            5..=6 => {
                st.unlike(s, &p, &l).await.unwrap();
            }
            7 => st.set_like_count(s, &p, rng.below(4)).await.unwrap(),
            // What finish_toggle does when a flush fails, in either direction.
            _ => {
                let liked = rng.below(2) == 0;
                if st.apply_like(s, &p, &l, liked, Mode::Capped(caps)).is_ok_and(|o| o.changed) {
                    st.apply_like(s, &p, &l, !liked, Mode::Undo).unwrap();
                    undone += 1;
                }
            }
        }
    }
    assert!(refused > 0 && undone > 0, "the sequence must reach the caps ({refused}) and undo ({undone})");
    for s in &rooms {
        assert_derived_match(&st, s);
    }
}

/// A flush that takes `delay`, then fails while `failing` is set.
struct Faulty {
    inner: Arc<dyn Flush>,
    failing: Arc<AtomicBool>,
    delay: std::time::Duration,
}

impl Flush for Faulty {
    fn flush(&self) -> Result<(), String> {
        std::thread::sleep(self.delay);
        if self.failing.load(Ordering::SeqCst) { Err("injected".into()) } else { self.inner.flush() }
    }
}

/// A store whose flushes take `delay` and fail while the returned flag is set.
fn store_with_faulty_flush(dir: &std::path::Path, delay: std::time::Duration) -> (Store, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let opts = StoreOptions {
        flush_wrapper: Some(Box::new(move |inner| Arc::new(Faulty { inner, failing: f, delay }) as Arc<dyn Flush>)),
        ..StoreOptions::default()
    };
    (Store::open_with(dir, opts).unwrap(), failing)
}

#[tokio::test]
async fn a_like_that_does_not_persist_is_undone_with_its_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let (st, failing) = store_with_faulty_flush(dir.path(), std::time::Duration::ZERO);
    let s = slug("w");
    st.like(&s, &photo("kept"), &liker("a")).await.unwrap();
    failing.store(true, Ordering::SeqCst);
    assert!(st.like(&s, &photo("new"), &liker("a")).await.is_err());
    assert!(st.like(&s, &photo("kept"), &liker("b")).await.is_err());
    assert!(st.unlike(&s, &photo("kept"), &liker("a")).await.is_err());
    failing.store(false, Ordering::SeqCst);
    assert_eq!(st.room_like_summary(&s, 5).unwrap(), (1, vec![(photo("kept"), 1)]));
    assert_eq!(st.room_likes(&s, 5).unwrap(), vec![(photo("kept"), 1)]);
    assert_eq!(st.liked_by(&s, &liker("a"), 5).unwrap(), vec![photo("kept")]);
    assert_derived_match(&st, &s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applied_behind_a_failing_flush_is_taken_back_with_it_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    // The flush takes its time, so the next batch is applied while it runs.
    let (st, failing) = store_with_faulty_flush(dir.path(), std::time::Duration::from_millis(300));
    let (s, kept, caps) = (slug("w"), photo("kept"), LikeCaps::default());
    st.like(&s, &kept, &liker("a")).await.unwrap();
    failing.store(true, Ordering::SeqCst);
    // The first batch is applied and its flush is under way when the second is applied.
    let first = st.stage_toggle(&s, &kept, &liker("b"), true, caps).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let second = st.stage_toggle(&s, &kept, &liker("b"), false, caps).unwrap();
    let third = st.stage_toggle(&s, &kept, &liker("a"), false, caps).unwrap();
    for staged in [first, second, third] {
        assert!(matches!(st.finish_toggle(staged).await, Err(StoreError::Unavailable)));
    }
    failing.store(false, Ordering::SeqCst);
    // Undone oldest first, b's like would have come back: the unlike of b was undone after it.
    assert_eq!(st.room_like_summary(&s, 5).unwrap(), (1, vec![(kept.clone(), 1)]));
    assert_eq!(st.liked_by(&s, &liker("a"), 5).unwrap(), vec![kept.clone()]);
    assert!(st.liked_by(&s, &liker("b"), 5).unwrap().is_empty());
    assert_derived_match(&st, &s);
}

/// Opens `dir`, waiting (bounded) for a previous handle's lock to go.
fn reopen(dir: &std::path::Path) -> Store {
    for _ in 0..100 {
        match Store::open(dir) {
            Err(StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(50)),
            other => return other.unwrap(),
        }
    }
    panic!("the directory stayed locked");
}

#[test]
fn an_older_directory_is_upgraded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (s, other) = (slug("w"), slug("x"));
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Written with the store API, then made to look as format 2 left it: every like also in
    // `likers`, derived trees beside, values of format 1 among them.
    rt().block_on(async {
        let st = Store::open(dir.path()).unwrap();
        for (i, l) in ["a", "b", "c"].iter().enumerate() {
            for p in 0..=i {
                st.like(&s, &photo(&format!("p{p}")), &liker(l)).await.unwrap();
            }
        }
        st.set_like_count(&s, &photo("big"), 50).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        st.set_like_count(&s, &photo("zero"), 0).await.unwrap();
        st.like(&other, &photo("p0"), &liker("a")).await.unwrap();
        let t = st.t().unwrap();
        let likers = t.db.open_tree("likers").unwrap();
        for item in t.liked_by.iter() {
            let k = item.unwrap().0;
            let p: Vec<String> = (0..3).map(|i| key_part(&k, i).unwrap()).collect();
            likers.insert(key3(&p[0], &p[2], &p[1]), &[] as &[u8]).unwrap();
        }
        // A fact only `likers` still holds is kept.
        t.liked_by.remove(key3("w", "c", "p2")).unwrap();
        for name in ["like_rooms", "liker_tallies", "likes_by_count", "likes_by_time"] {
            t.db.open_tree(name).unwrap().insert(b"w", &[1u8, 2] as &[u8]).unwrap();
        }
        let k = key2("w", "p0");
        let mut v = t.counts.get(&k).unwrap().unwrap().to_vec();
        v[0] = 1;
        t.counts.insert(k, v).unwrap();
        t.meta.insert(FORMAT_KEY, &[2]).unwrap();
        st.flush_now().unwrap();
    });
    rt().block_on(async {
        let st = reopen(dir.path());
        assert_eq!(st.format_version().unwrap(), FORMAT_VERSION);
        let names = st.t().unwrap().db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"likers" || n.as_ref() == b"like_rooms"), "old trees dropped");
        assert_eq!(st.liked_by(&s, &liker("c"), 10).unwrap(), vec![photo("p0"), photo("p1"), photo("p2")]);
        assert_eq!(st.room_like_summary(&s, 2).unwrap(), (56, vec![(photo("big"), 50), (photo("p0"), 3)]));
        assert_eq!(st.room_likes(&s, 100).unwrap().len(), 5);
        assert_eq!(st.room_likes(&s, 1).unwrap(), vec![(photo("zero"), 0)]);
        assert_eq!(st.room_like_summary(&other, 5).unwrap(), (1, vec![(photo("p0"), 1)]));
        assert_derived_match(&st, &s);
        assert_derived_match(&st, &other);
        // Caps read the tallies and totals rebuilt from disk: c likes 3 photos, the event has 5.
        let caps = LikeCaps { per_identity: 3, per_event: 5 };
        assert!(is_limit(like(&st, &s, "p9", "c", caps).await, LikeLimit::PerIdentity));
        assert!(is_limit(like(&st, &s, "p9", "d", caps).await, LikeLimit::PerEvent));
        assert!(like(&st, &s, "p2", "d", caps).await.unwrap().changed);
        assert!(st.unlike(&s, &photo("p0"), &liker("c")).await.unwrap().changed);
        assert_derived_match(&st, &s);
    });
}

#[test]
fn a_newer_directory_format_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt().block_on(async {
        let st = Store::open(dir.path()).unwrap();
        st.t().unwrap().meta.insert(FORMAT_KEY, &[FORMAT_VERSION + 1]).unwrap();
        st.flush_now().unwrap();
    });
    rt().block_on(async {
        for _ in 0..100 {
            match Store::open(dir.path()) {
                Err(StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(50)),
                Err(StoreError::TooNew { found }) => return assert_eq!(found, FORMAT_VERSION + 1),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("a newer format was opened"),
            }
        }
        panic!("the directory stayed locked");
    });
}
