//! Running as a service: systemd readiness over `NOTIFY_SOCKET`, the unit file checked by
//! `systemd-analyze`, and JSON logs that parse line by line (stdout and stderr alike) and carry
//! no secret.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Http, SECRET, Server, Sock};
use serde_json::{Value, json};

/// A port the server may bind after this returns. It is below the kernel's ephemeral range: a
/// port from that range, released here for the server, could be taken in between as the local
/// port of any connection the tests running beside this one open.
fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let below = ephemeral_from.saturating_sub(10_000).max(1024)..ephemeral_from;
    let start = std::process::id() as usize % below.len().max(1);
    below
        .clone()
        .cycle()
        .skip(start)
        .take(below.len())
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

#[test]
fn notify_socket_gets_ready_once_the_port_accepts_and_stopping_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&sock_path).unwrap();
    listener.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("NEXTAUTH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = listener.recv(&mut buf).expect("no readiness notification");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    // Ready means ready: the port takes a connection and answers right away.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("port not accepting at READY=1");
    use std::io::Write;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let n = listener.recv(&mut buf).expect("no STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(Instant::now() < deadline, "not stopped within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `systemd-analyze verify` of a unit from `systemd/` (as `instance`, for a template), with its
/// ExecStart pointed at the binary under test (verify wants it to exist); returns the exposure
/// level `systemd-analyze security` gives it.
fn verify_unit(file: &str, instance: &str) -> f64 {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(file)).unwrap();
    for key in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=hafi-realtime",
        "EnvironmentFile=",
        "Restart=on-failure",
        "LimitNOFILE=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(key), "{file} lacks {key}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(file),
        unit.replace("/usr/local/bin/hafi-realtime", env!("CARGO_BIN_EXE_hafi-realtime")),
    )
    .unwrap();
    let path = dir.path().join(instance);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is required (Debian package systemd)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "warnings: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("Overall exposure level")).expect("exposure line");
    println!("{line}");
    line.split(':').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn unit_file_passes_systemd_analyze() {
    let level = verify_unit("hafi-realtime.service", "hafi-realtime.service");
    assert!(level < 2.0, "exposure {level}");
}

/// One instance per studio: its own settings file, port and data directory, and the same
/// hardening as the single unit.
#[test]
fn template_unit_passes_systemd_analyze_for_a_studio() {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/hafi-realtime@.service")).unwrap();
    for key in [
        "EnvironmentFile=/etc/hafi-realtime/%i.env",
        "StateDirectory=hafi-realtime/%i",
        "Environment=DATA_DIR=/var/lib/hafi-realtime/%i",
    ] {
        assert!(unit.contains(key), "template lacks {key}");
    }
    let level = verify_unit("hafi-realtime@.service", "hafi-realtime@studio-a.service");
    assert!(level < 2.0, "exposure {level}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_hafi-realtime");
    let mut add = Command::new(bin)
        .args(["admin", "add", "erin", "--password-stdin", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"erin's very secret password\n").unwrap();
    assert!(add.wait().unwrap().success());

    let mut child = Command::new(bin)
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(&data)
        .env("NEXTAUTH_SECRET", SECRET)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = crate::support::listening_url(&line).expect("listening line");
    let http = Http::with_base(&url);
    // A login, a failed login, a refused socket with a bad token, a valid token in use.
    let (_, ok) = http
        .call(
            "POST",
            "/api/admin/login",
            None,
            Some(json!({"username": "erin", "password": "erin's very secret password"})),
        )
        .await;
    let token = ok["token"].as_str().unwrap().to_string();
    http.call("POST", "/api/admin/login", None, Some(json!({"username": "erin", "password": "wrong guess 123"}))).await;
    let mut bad = Sock::connect(&url, json!({"token": "eyJhbGciOiJIUzI1NiJ9.forged.token"})).await;
    bad.expect(crate::support::CONNECT_ERROR, 3000).await;
    let s = Sock::with_token(&url, &token).await;
    s.close().await;
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    let mut n = 0;
    for l in logs.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        n += 1;
    }
    assert!(n >= 3, "too few log lines: {logs}");
    assert!(logs.contains("hafi-realtime starting"), "no start line");
    assert!(logs.contains("login refused") || logs.contains("bad_credentials"), "no refusal line: {logs}");
    for secret in [SECRET, "erin's very secret password", "wrong guess 123", token.as_str(), "forged.token"] {
        assert!(!logs.contains(secret), "a secret is in the logs: {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_makes_every_line_json_on_stdout_and_stderr() {
    // The harness finds the address inside a JSON line.
    let harnessed = Server::start_with(None, &[("LOG_FORMAT", "json")]);
    assert_eq!(Http::new(&harnessed).call("GET", "/health", None, None).await.0, 200);
    drop(harnessed);

    let dir = tempfile::tempdir().unwrap();
    // Development mode without a secret: the generated-secret warning is one of the lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"))
        .env_remove("NEXTAUTH_SECRET")
        .env_remove("NODE_ENV")
        .env_remove("HAFI_ENV")
        .env_remove("HAFI_CONFIG")
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(&'static str, String)>();
    let readers = [
        ("stdout", Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>),
        ("stderr", Box::new(child.stderr.take().unwrap())),
    ]
    .into_iter()
    .map(|(name, pipe)| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send((name, line));
            }
        })
    })
    .collect::<Vec<_>>();
    drop(tx);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (name, line) = rx.recv_timeout(left).expect("no listening line within 20 s");
        let url = crate::support::listening_url(&line).filter(|_| name == "stdout");
        lines.push((name, line));
        if let Some(url) = url {
            break url;
        }
    };
    // Some traffic that logs: a refused login, a 404, a refused socket.
    let http = Http::with_base(&url);
    assert_eq!(
        http.call("POST", "/api/admin/login", None, Some(json!({"username": "nobody", "password": "nope nope"})))
            .await
            .0,
        401
    );
    assert_eq!(http.call("GET", "/nope", None, None).await.0, 404);
    let mut refused = Sock::connect(&url, json!({})).await;
    refused.expect(crate::support::CONNECT_ERROR, 3000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let mut exited = None;
    for _ in 0..200 {
        if let Some(st) = child.try_wait().unwrap() {
            exited = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.is_some_and(|s| s.success()), "no clean exit: {exited:?}");
    for r in readers {
        r.join().unwrap();
    }
    lines.extend(rx.try_iter());
    let mut per_stream = std::collections::HashMap::new();
    for (name, line) in &lines {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} line is not JSON ({e}): {line}"));
        assert!(v.is_object() && v["level"].is_string() && v["timestamp"].is_string(), "{name}: {line}");
        *per_stream.entry(*name).or_insert(0) += 1;
    }
    assert!(per_stream.get("stderr").is_some_and(|n| *n >= 3), "too few log lines: {lines:?}");
    let listening = lines.iter().find(|(n, l)| *n == "stdout" && l.contains("listening on")).expect("listening line");
    let v: Value = serde_json::from_str(&listening.1).unwrap();
    assert_eq!(v["fields"]["message"], format!("listening on {url}"));
    assert!(lines.iter().any(|(_, l)| l.contains("development mode")), "no dev-secret line: {lines:?}");
}
