//! The real binary on a loopback port (`--port 0`) with a temporary data directory, started and
//! stopped as a child process. Self-contained (std and `tempfile` only) so that the benchmarks
//! that start the server include this same file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SECRET: &str = "test-secret-k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH";

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    config: Option<PathBuf>,
    extra_env: Vec<(String, String)>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(None, &[])
    }

    /// Starts with a TOML config (written to the data dir's parent) and extra environment.
    pub fn start_with(config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
        Server::start_in(None, config_toml, env)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"));
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(&self.data_dir)
            .env("NEXTAUTH_SECRET", SECRET)
            .env("RUST_LOG", std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("NODE_ENV")
            .env_remove("HAFI_ENV")
            .env_remove("HAFI_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = listening_url(&line) {
                    let _ = tx.send(url);
                }
            }
        });
        self.url = rx.recv_timeout(Duration::from_secs(20)).expect("server did not report its address");
        self.child = Some(child);
    }

    /// Starts with the data directory at `data_dir` (e.g. on a filesystem the test mounted).
    pub fn start_at(data_dir: PathBuf, config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
        Server::start_in(Some(data_dir), config_toml, env)
    }

    /// The data directory is `data_dir`, or `data` in a new temporary directory that also holds
    /// the config file.
    fn start_in(data_dir: Option<PathBuf>, config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = data_dir.unwrap_or_else(|| tmp.path().join("data"));
        let config = config_toml.map(|text| {
            let p = tmp.path().join("config.toml");
            std::fs::write(&p, text).expect("write config");
            p
        });
        let mut s = Server {
            child: None,
            url: String::new(),
            data_dir,
            _tmp: Some(tmp),
            config,
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        s.spawn();
        s
    }

    /// SIGTERM, then wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        for _ in 0..200 {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok().and_then(|s| s.code())
    }

    /// Waits up to `timeout` for the server to exit by itself; its exit code, or `None` if it is
    /// still running (or was killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGKILL: no chance to flush.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (gracefully) and starts again on the same data directory.
    pub fn restart(&mut self) {
        assert_eq!(self.stop(), Some(0), "server did not exit cleanly");
        self.spawn();
    }

    /// Starts again after `stop` (for provisioning the data directory in between).
    pub fn restart_after_stop(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The address of the "listening on http://ADDR" line, plain or inside a JSON log line.
pub fn listening_url(line: &str) -> Option<String> {
    const MARK: &str = "listening on http://";
    let at = line.find(MARK)? + MARK.len();
    let addr: String = line[at..].chars().take_while(|c| *c != '"' && !c.is_whitespace()).collect();
    (!addr.is_empty()).then(|| format!("http://{addr}"))
}
