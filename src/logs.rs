//! Log output: the tracing subscriber, and the few lines written around it (the reason the
//! process stops, the line that says where it listens), which keep the chosen format too.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether logs are JSON lines. Set from `LOG_FORMAT` before the configuration is read (so a
/// refusal to load it follows the format too), then from the configuration.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Follows `LOG_FORMAT` until [`init`] is called with the configured format.
pub fn follow_env() {
    JSON_LOGS
        .store(std::env::var("LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json")), Ordering::Relaxed);
}

/// Installs the tracing subscriber (`RUST_LOG` filters, `info` unless set), on stderr.
pub fn init(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    JSON_LOGS.store(json, Ordering::Relaxed);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    if json {
        // A panic's default report is several plain lines; machine-read logs get one object.
        std::panic::set_hook(Box::new(|info| eprintln!("{}", json_line("ERROR", &format!("panic: {info}")))));
    }
}

/// A line in the shape of the JSON log format's, for what is written without going through the
/// log filter.
fn json_line(level: &str, message: &str) -> String {
    serde_json::json!({
        "timestamp": crate::clock::iso_now(),
        "level": level,
        "fields": { "message": message },
        "target": "hafi_realtime",
    })
    .to_string()
}

/// Why the process stops, as one line on stderr (one JSON object with `LOG_FORMAT=json`).
pub fn fatal(message: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        eprintln!("{}", json_line("ERROR", message));
    } else {
        eprintln!("hafi-realtime: {message}");
    }
}

/// A line on stdout that no log filter hides, for scripts and tests to wait for; in the JSON
/// format it is the `fields.message` of an `INFO` line.
pub fn announce(message: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        println!("{}", json_line("INFO", message));
    } else {
        println!("{message}");
    }
}
