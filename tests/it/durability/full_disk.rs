//! A real full disk: the data directory on a 16 MiB tmpfs that fills up during likes and is
//! emptied again. The breaker opens, nothing acknowledged is lost, and the same process recovers
//! by itself (sled keeps the I/O error sticky, so the store reopens its database), still holding
//! the data directory against a second process; when the reopen itself fails, the server tells
//! its clients and exits non-zero. Mounting needs root; without it the tests say so and skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Http, Server, Sock};
use futures_util::FutureExt;
use rust_socketio::Payload;
use serde_json::{Value, json};

const SLUG: &str = "disk";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?
            .success();
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros until the filesystem is full.
fn fill(path: &Path) {
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=1M", "count=64"])
        .output();
}

/// Likes `photo` and waits for the acknowledgement; `None` when none came within 5 s.
async fn like(sock: &Sock, photo: &str) -> Option<Value> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let sent = sock
        .client
        .emit_with_ack(
            "photo:like",
            json!({"eventSlug": SLUG, "photo_id": photo}),
            Duration::from_secs(5),
            move |p: Payload, _| {
                #[allow(deprecated)]
                let v = match p {
                    Payload::Text(mut v) if !v.is_empty() => v.swap_remove(0),
                    Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                // The acknowledgement's arguments arrive as one array.
                let v = match v {
                    Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                    other => other,
                };
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(v);
                }
                async {}.boxed()
            },
        )
        .await;
    if sent.is_err() {
        return None;
    }
    tokio::time::timeout(Duration::from_secs(6), rx).await.ok().and_then(Result::ok)
}

/// A 16 MiB tmpfs, or `None` (and a line saying why the test skips) without root.
fn small_disk() -> Option<Tmpfs> {
    if !is_root() {
        eprintln!("SKIPPED full_disk: mounting a tmpfs needs root (CI runs as root)");
        return None;
    }
    let fs = Tmpfs::mount("16m");
    if fs.is_none() {
        eprintln!("SKIPPED full_disk: `mount -t tmpfs` failed although running as root");
    }
    fs
}

async fn health(http: &Http) -> u16 {
    http.call("GET", "/health", None, None).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_recovers_in_the_same_process_without_losing_acknowledged_likes() {
    let Some(fs) = small_disk() else { return };
    let data: PathBuf = fs.path().join("data");
    let filler = fs.path().join("filler");
    // Likes at test speed; everything else at its default.
    let config = "[limits.events]\nlike = { rate = 200, per = \"1s\", burst = 200 }\n";
    let env = [("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")];
    let mut server = Server::start_at(data.clone(), Some(config), &env);
    let http = Http::new(&server);
    let mut guest = Sock::guest(&server.url, "disk-guest", SLUG).await;
    guest.join(SLUG).await;

    let mut acked: Vec<String> = Vec::new();
    let mut n = 0;
    for _ in 0..10 {
        let photo = format!("p{n}");
        n += 1;
        let ack = like(&guest, &photo).await.expect("ack before the disk fills");
        assert_eq!(ack["ok"], true, "{ack}");
        acked.push(photo);
    }

    // Fill the disk, then keep liking until the breaker opens.
    fill(&filler);
    let started = Instant::now();
    let mut refused = 0;
    while health(&http).await != 503 {
        assert!(started.elapsed() < Duration::from_secs(60), "breaker never opened; {refused} likes refused");
        let photo = format!("p{n}");
        n += 1;
        match like(&guest, &photo).await {
            Some(ack) if ack["ok"] == true => acked.push(photo),
            Some(ack) => {
                assert_eq!(ack["error"], "Service temporarily unavailable", "{ack}");
                refused += 1;
            }
            None => refused += 1,
        }
    }
    assert!(refused > 0, "the full disk refused nothing");

    // Space comes back: the same process takes likes again within a breaker period and a trial.
    std::fs::remove_file(&filler).expect("remove filler");
    let freed = Instant::now();
    loop {
        assert!(freed.elapsed() < Duration::from_secs(45), "no recovery within 45 s of freeing space");
        let photo = format!("p{n}");
        n += 1;
        if let Some(ack) = like(&guest, &photo).await
            && ack["ok"] == true
        {
            acked.push(photo);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(health(&http).await, 200, "/health after recovery");
    eprintln!("recovered {:.1} s after space came back", freed.elapsed().as_secs_f64());

    // The reopen kept the directory locked: a second process is refused.
    let second = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"))
        .args(["admin", "list", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run second");
    assert!(!second.status.success(), "a second process opened the data directory during the run");
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use"), "{}", String::from_utf8_lossy(&second.stderr));

    // After kill -9 and a restart, every acknowledged like is there.
    guest.close().await;
    server.kill9();
    server.restart_after_stop();
    let mut again = Sock::guest(&server.url, "disk-guest", SLUG).await;
    let snap = again.join(SLUG).await;
    let liked: Vec<&str> = snap["likedByMe"].as_array().expect("likedByMe").iter().filter_map(Value::as_str).collect();
    for photo in &acked {
        assert!(liked.contains(&photo.as_str()), "acknowledged like of {photo} lost; stored: {liked:?}");
        assert_eq!(snap["likes"][photo], 1, "count of {photo}");
    }
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reopen_disconnects_clients_and_exits_non_zero() {
    let Some(fs) = small_disk() else { return };
    let data: PathBuf = fs.path().join("data");
    let filler = fs.path().join("filler");
    let config = "[limits.events]\nlike = { rate = 200, per = \"1s\", burst = 200 }\n";
    let mut server =
        Server::start_at(data.clone(), Some(config), &[("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]);
    let http = Http::new(&server);
    let mut guest = Sock::guest(&server.url, "lost-guest", SLUG).await;
    guest.join(SLUG).await;
    assert_eq!(like(&guest, "first").await.expect("ack")["ok"], true);
    // A second client on a raw websocket that answers pings: its TCP connection must end when
    // the server gives up.
    let (raw, _) =
        crate::support::raw::sio_ws(&server, &json!({"guestSessionId": "lost-raw", "eventSlug": SLUG})).await;
    let raw = crate::support::raw::Reader::spawn(raw);

    fill(&filler);
    let started = Instant::now();
    let mut n = 0;
    while health(&http).await != 503 {
        assert!(started.elapsed() < Duration::from_secs(60), "breaker never opened");
        let _ = like(&guest, &format!("q{n}")).await;
        n += 1;
    }
    assert!(!raw.closed.load(std::sync::atomic::Ordering::Acquire), "a failing disk alone closed a client");
    // The database file is taken away and a directory put in its place: the space comes back,
    // the probe write succeeds, and the reopen cannot succeed.
    let db_file = data.join("db").join("db");
    std::fs::rename(&db_file, data.join("db").join("db.moved")).expect("move the database file");
    std::fs::create_dir(&db_file).expect("directory in its place");
    std::fs::remove_file(&filler).expect("remove filler");

    // Keep writing so the breaker's trial comes; the process must then leave by itself.
    let waiting = Instant::now();
    let code = loop {
        assert!(waiting.elapsed() < Duration::from_secs(50), "the server did not exit after its reopen failed");
        if let Some(code) = server.wait_exit(Duration::from_millis(500)) {
            break code;
        }
        let _ = guest.client.emit("photo:like", json!({"eventSlug": SLUG, "photo_id": format!("r{n}")})).await;
        n += 1;
    };
    assert_ne!(code, 0, "exit code after losing storage");
    let exited = Instant::now();
    while !raw.closed.load(std::sync::atomic::Ordering::Acquire) {
        assert!(exited.elapsed() < Duration::from_secs(10), "the raw client's connection is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
