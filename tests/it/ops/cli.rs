//! The command line: admin users, token, check, export/import and the data-directory lock. The
//! login endpoint that admin users use is in `admin::login`.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::cli::{bin, run, text};
use crate::support::{Http, SECRET, Server, Sock};

#[test]
fn admin_user_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = run(&["admin", "add", "alice", "--password-stdin"], d, "correct horse\n");
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["admin", "add", "alice", "--password-stdin"], d, "another one\n");
    assert!(!o.status.success() && text(&o).contains("already exists"));
    let o = run(&["admin", "add", "bob", "--password-stdin"], d, "short\n");
    assert!(!o.status.success() && text(&o).contains("8-1024"), "{}", text(&o));
    let o = run(&["admin", "add", "bad name", "--password-stdin"], d, "long enough pw\n");
    assert!(!o.status.success() && text(&o).contains("username"));
    let o = run(&["admin", "list"], d, "");
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(listed.starts_with("alice\tADMIN\t"), "{listed}");
    assert!(!listed.contains("correct horse") && !listed.contains("argon2"));
    assert!(run(&["admin", "passwd", "alice", "--password-stdin"], d, "battery staple\n").status.success());
    assert!(!run(&["admin", "passwd", "nobody", "--password-stdin"], d, "battery staple\n").status.success());
    // The store holds an argon2id PHC string, never the password.
    let export = String::from_utf8_lossy(&run(&["export"], d, "").stdout).to_string();
    assert!(export.contains("$argon2id$") && !export.contains("battery staple"));
    assert!(run(&["admin", "remove", "alice"], d, "").status.success());
    assert!(!run(&["admin", "remove", "alice"], d, "").status.success());
    assert_eq!(String::from_utf8_lossy(&run(&["admin", "list"], d, "").stdout), "");
    assert!(bin().args(["admin", "--help"]).output().unwrap().status.success());
}

#[test]
fn token_command_signs_with_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["token", "--user", "web-app", "--role", "ADMIN", "--ttl", "1h"])
        .env("NEXTAUTH_SECRET", SECRET)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let tok = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let t = hafi_realtime::Tokens::new(SECRET).unwrap();
    assert_eq!(t.verify(&tok), Some(hafi_realtime::Identity::Admin { user_id: "web-app".into() }));
    let bad = bin().args(["token", "--user", "x", "--role", "ADMIN", "--ttl", "forever"]).output().unwrap();
    assert!(!bad.status.success());
}

#[test]
fn check_reports_and_production_refusals_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin().arg("check").arg("--data-dir").arg(dir.path()).env("NEXTAUTH_SECRET", SECRET).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("would start:          yes") && !out.contains(SECRET), "{out}");
    let strong = "k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH";
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "NEXTAUTH_SECRET is required"),
        (&[("NEXTAUTH_SECRET", "tooshort")], "too short"),
        (&[("NEXTAUTH_SECRET", "changeme-changeme-changeme-changeme")], "placeholder"),
        (&[("NEXTAUTH_SECRET", strong), ("ALLOWED_ORIGINS", "*")], "ALLOWED_ORIGINS"),
        (
            &[("NEXTAUTH_SECRET", strong), ("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")],
            "guest session validation",
        ),
    ];
    for (env, msg) in cases {
        let mut c = bin();
        c.args(["serve", "--port", "0", "--host", "127.0.0.1", "--data-dir"])
            .arg(dir.path())
            .env("NODE_ENV", "production");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(msg), "{env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        assert!(!err.contains(strong));
    }
    // Unknown config keys are named.
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[limits]\nmax_conections = 5\n").unwrap();
    let o = bin().arg("check").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("max_conections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_data_directory_and_export_import_round_trip() {
    let mut server = Server::start();
    let http = Http::new(&server);
    http.create_event("moved", Some("o1")).await;
    let g = http.guest_session("moved").await;
    let mut s = Sock::guest(&server.url, &g, "moved").await;
    s.join("moved").await;
    s.emit("photo:like", json!({"eventSlug": "moved", "photo_id": "p9"})).await;
    s.expect("photo:like", 3000).await;

    // A second process on the same data directory refuses with a clear message.
    let o = run(&["export"], server.data_dir(), "");
    assert!(!o.status.success());
    assert!(text(&o).contains("in use by another hafi-realtime process"), "{}", text(&o));
    s.close().await;
    assert_eq!(server.stop(), Some(0));

    let o = run(&["admin", "add", "carol", "--password-stdin"], server.data_dir(), "carol's password\n");
    assert!(o.status.success());
    let dump = run(&["export"], server.data_dir(), "");
    assert!(dump.status.success());
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    let kinds: Vec<String> =
        dump.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].as_str().unwrap().to_string()).collect();
    for k in ["meta", "event", "session", "admin", "room", "room_guest", "like_count", "liker"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in export");
    }

    let fresh = tempfile::tempdir().unwrap();
    let o = run(&["import"], fresh.path(), &dump);
    assert!(o.status.success(), "{}", text(&o));
    let again = run(&["export"], fresh.path(), "");
    let strip =
        |s: &str| s.lines().filter(|l| !l.contains("\"kind\":\"meta\"")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(strip(&dump), strip(&String::from_utf8_lossy(&again.stdout)));
    // A non-empty directory is refused unless forced.
    let o = run(&["import"], fresh.path(), &dump);
    assert!(!o.status.success() && text(&o).contains("--force"));
    assert!(run(&["import", "--force"], fresh.path(), &dump).status.success());
    // Garbage is refused with the line number.
    let empty = tempfile::tempdir().unwrap();
    let o = run(&["import"], empty.path(), "{\"kind\":\"nope\"}\n");
    assert!(!o.status.success() && text(&o).contains("line 1"));
}

#[test]
fn data_directory_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&["admin", "list"], dir.path(), "").status.success());
    {
        // What a later release would have written.
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("meta").unwrap().insert("format_version", &[9u8]).unwrap();
        db.flush().unwrap();
    }
    // sled lets go of the directory's lock from a background thread after the drop above, so
    // the first check may still find it held.
    let mut o = run(&["check"], dir.path(), "");
    for _ in 0..50 {
        if !text(&o).contains("in use by another") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        o = run(&["check"], dir.path(), "");
    }
    assert!(!o.status.success());
    assert!(text(&o).contains("newer hafi-realtime (format 9"), "{}", text(&o));
    let o = bin()
        .args(["serve", "--port", "0", "--host", "127.0.0.1", "--data-dir"])
        .arg(dir.path())
        .env("NEXTAUTH_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("newer hafi-realtime"));
}

fn token_lifetime(token: &str) -> u64 {
    let middle = token.trim().split('.').nth(1).expect("three parts");
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(middle).expect("base64"))
            .expect("json");
    claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat")
}

#[test]
fn token_command_uses_the_configured_ttl_unless_given() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[auth]\ntoken_ttl = \"2h\"\n").unwrap();
    let mint = |extra: &[&str], config: bool| {
        let mut c = bin();
        c.args(["token", "--user", "web-app", "--role", "ADMIN", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("NEXTAUTH_SECRET", SECRET);
        if config {
            c.arg("--config").arg(&cfg);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(token_lifetime(&mint(&[], true)), 2 * 3600);
    assert_eq!(token_lifetime(&mint(&["--ttl", "1h"], true)), 3600);
    assert_eq!(token_lifetime(&mint(&[], false)), 24 * 3600);
}

#[test]
fn check_warns_in_production_when_public_origin_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let strong = "k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH";
    let check = |env: &str, config: Option<&str>| {
        let mut c = bin();
        c.arg("check")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("NEXTAUTH_SECRET", strong)
            .env("NODE_ENV", env);
        if let Some(text) = config {
            let p = dir.path().join("c.toml");
            std::fs::write(&p, text).unwrap();
            c.arg("--config").arg(p);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let warning = |out: &str| out.lines().any(|l| l.starts_with("warning:") && l.contains("public_origin"));
    let prod = check("production", None);
    assert!(warning(&prod), "{prod}");
    let set = check("production", Some("[auth]\npublic_origin = \"https://live.example-studio.com\"\n"));
    assert!(!warning(&set), "{set}");
    assert!(set.contains("https://live.example-studio.com"), "{set}");
    let dev = check("development", None);
    assert!(!warning(&dev), "{dev}");
}
