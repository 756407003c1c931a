//! Runs the `socket.io-client` suite in `tests/js` (node's test runner) against the real binary.
//! It installs the suite's npm packages from the lockfile when they are missing, and fails —
//! never skips — when node or npm cannot run.

use std::path::Path;
use std::process::Command;

#[test]
fn socket_io_client_suite() {
    let _heavy = crate::support::heavy_blocking();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/socket.io-client").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is required for the socket.io-client tests");
        assert!(st.success(), "npm ci failed in tests/js");
    }
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=2"])
        .current_dir(&dir)
        .env("HAFI_BIN", env!("CARGO_BIN_EXE_hafi-realtime"))
        .output()
        .expect("node is required for the socket.io-client tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "socket.io-client suite failed");
    assert!(stdout.contains("# pass") && !stdout.contains("# pass 0"), "the suite ran no test");
}
