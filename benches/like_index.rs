//! Cost of the two like reads that grow with an event's size: the join snapshot
//! (`room_likes(slug, 5000)`) and the admin feed's summary (`room_like_summary(slug, 5)`),
//! on one room with many liked photos. Uses only the public store API, so the same file runs
//! against any release that has these two methods.
//!
//! `cargo bench --bench like_index` (env: BENCH_PHOTOS, default 50000; BENCH_RUNS, default 21).
//! Prints one JSON line per figure.

use std::time::{Duration, Instant};

use hafi_realtime::Store;
use hafi_realtime::{LikerKey, PhotoId, Slug};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Likers per room: each likes `photos / LIKERS` photos, well under any per-identity cap.
const LIKERS: usize = 100;
/// Likes in flight at once, so group commit shares flushes between them.
const WRITERS: usize = 256;
/// Every `SET_EVERY`-th photo also gets an admin-set count, so the top photos are distinct.
const SET_EVERY: usize = 97;

fn photo(i: usize) -> PhotoId {
    PhotoId::parse(&format!("photo-{i:06}")).expect("photo id")
}

async fn fill(store: &Store, slug: &Slug, photos: usize) -> u64 {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, slug) = (store.clone(), slug.clone());
        tasks.push(tokio::spawn(async move {
            let mut sum = 0u64;
            for i in (w..photos).step_by(WRITERS) {
                let liker = LikerKey::from_stored(format!("guest-{}", i % LIKERS));
                store.like(&slug, &photo(i), &liker).await.expect("like");
                sum += 1;
                if i % SET_EVERY == 0 {
                    let count = 1000 + i as u64;
                    store.set_like_count(&slug, &photo(i), count).await.expect("set count");
                    sum += count - 1;
                }
            }
            sum
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    total
}

fn median_ms(mut runs: Vec<Duration>) -> (f64, f64, f64) {
    runs.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    (ms(&runs[runs.len() / 2]), ms(&runs[0]), ms(&runs[runs.len() - 1]))
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T, check: impl Fn(&T)) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = f();
            let took = t.elapsed();
            check(&out);
            took
        })
        .collect()
}

fn report(figure: &str, photos: usize, arg: usize, runs: Vec<Duration>) {
    let n = runs.len();
    let (median, min, max) = median_ms(runs);
    println!(
        "{{\"bench\":\"like_index\",\"figure\":\"{figure}\",\"photos\":{photos},\"arg\":{arg},\"runs\":{n},\"median_ms\":{median:.3},\"min_ms\":{min:.3},\"max_ms\":{max:.3}}}"
    );
}

fn main() {
    let photos = env_num("BENCH_PHOTOS", 50_000);
    let runs = env_num("BENCH_RUNS", 21).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let slug = Slug::parse("bench-room").expect("slug");
    rt.block_on(async {
        let store = Store::open(&dir.path().join("data")).expect("open store");
        let started = Instant::now();
        let expected_total = fill(&store, &slug, photos).await;
        eprintln!("filled {photos} photos in {:.1} s", started.elapsed().as_secs_f64());
        store.flush_now().expect("flush");

        let snapshot = 5000.min(photos);
        let t = time(runs, || store.room_likes(&slug, 5000).expect("room_likes"), |v| assert_eq!(v.len(), snapshot));
        report("room_likes", photos, 5000, t);

        let top = photos.min(5);
        let t = time(
            runs,
            || store.room_like_summary(&slug, 5).expect("room_like_summary"),
            |(total, best)| {
                assert_eq!(*total, expected_total);
                assert_eq!(best.len(), top);
            },
        );
        report("room_like_summary", photos, 5, t);
    });
}
