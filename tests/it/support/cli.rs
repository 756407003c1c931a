//! The binary's command line, run the way an operator runs it: no environment of the test
//! process leaks in but what a test sets.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The binary with no configuration from the environment: no secret, no mode, warnings only.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hafi-realtime"));
    c.env_remove("NODE_ENV")
        .env_remove("HAFI_ENV")
        .env_remove("HAFI_CONFIG")
        .env_remove("NEXTAUTH_SECRET")
        .env_remove("LOG_FORMAT")
        .env("RUST_LOG", "warn");
    c
}

/// Runs `args` on the data directory `dir` with `stdin`, to the end.
pub fn run(args: &[&str], dir: &std::path::Path, stdin: &str) -> Output {
    run_in(bin(), args, dir, stdin)
}

/// [`run`] with a command the caller prepared (an environment of its own).
pub fn run_in(mut cmd: Command, args: &[&str], dir: &std::path::Path, stdin: &str) -> Output {
    let mut child = cmd
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().expect("wait")
}

/// Standard output and error together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
