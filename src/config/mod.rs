//! Configuration: defaults < TOML file < environment < command-line flags.
//!
//! `tables` is the file, one type per table, holding the embedded defaults; `overlay` applies the
//! environment and the flags over it; [`Config`] is the result the rest of the server reads.

mod overlay;
mod tables;
mod values;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub use overlay::Overrides;
pub use tables::{Bucket, EventLimits, Limits};
pub use values::parse_duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("{0}")]
    Production(String),
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name: name.to_string(), message: message.into() }
}

/// Development or production; production turns on the refusals of [`Config::check_production`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Mode {
    Development,
    Production,
}

impl Mode {
    /// Anything but `production` is development, as with the Node server's `NODE_ENV`.
    fn parse(raw: &str) -> Mode {
        if raw.trim().eq_ignore_ascii_case("production") { Mode::Production } else { Mode::Development }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Development => "development",
            Mode::Production => "production",
        }
    }
}

impl From<String> for Mode {
    fn from(raw: String) -> Mode {
        Mode::parse(&raw)
    }
}

/// Where guest comments go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestComments {
    Broadcast,
    AdminsOnly,
    Off,
}

/// The effective configuration. Its defaults are those of a file with no keys (see `tables.rs`).
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// `None` when neither the file nor the environment set one; `serve` and `token` then fill in
    /// the development secret kept in the data directory (production refuses to start instead).
    pub secret: Option<String>,
    pub guest_session_validation: bool,
    pub token_ttl: Duration,
    pub guest_session_ttl: Duration,
    pub limits: Limits,
    pub idle_evict: Duration,
    pub retention_days: u32,
    pub snapshot_max_photos: usize,
    /// Distinct photos one identity (guest session or owner) may like per event.
    pub max_likes_per_identity: usize,
    /// Distinct photo ids with a like record per event.
    pub max_photos_per_event: usize,
    /// The server's own origin (`[auth] public_origin`); `None`: judged by the request's `Host`.
    pub public_origin: Option<String>,
    pub guest_comments: GuestComments,
    pub metrics_token: Option<String>,
    pub log_json: bool,
    /// Group commit of durable writes (`[storage] group_commit`); off only to measure it.
    pub group_commit: bool,
    /// Memory sled may keep as its page cache, in MiB (`[storage] cache_mb`).
    pub cache_mb: u32,
    /// Likes and unlikes admitted and not yet answered, at most (`[storage] commit_queue`); one
    /// more is refused "Server busy" at once (SPEC §7).
    pub commit_queue: usize,
    /// The longest a like may wait in that queue before it is applied (`[storage]
    /// commit_queue_wait`); one that waited longer is refused "Server busy" instead.
    pub commit_queue_wait: Duration,
}

impl Default for Config {
    /// The embedded defaults, as a file with no keys gives them.
    fn default() -> Config {
        tables::File::default().resolve().expect("the embedded defaults are valid")
    }
}

impl Config {
    /// Loads the whole configuration. `env` reads one variable (the process environment in
    /// production, a map in tests).
    pub fn load(flags: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = match overlay::config_file(flags, env) {
            Some(path) => read_file(&path)?,
            None => tables::File::default(),
        };
        let mut c = file.resolve()?;
        overlay::apply(&mut c, env, flags)?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_connections == 0 || l.max_connections_per_ip == 0 || l.max_sockets_per_session == 0 {
            return Err(invalid("limits", "connection caps must be above zero"));
        }
        if l.max_payload_bytes < 1024
            || l.max_http_body_bytes < 1024
            || (l.outgoing_queue_bytes as u64) < l.max_payload_bytes.min(65536)
        {
            return Err(invalid(
                "limits",
                "byte limits must be at least 1024, and outgoing_queue_bytes at least 64 KiB (or maxPayload)",
            ));
        }
        if l.outgoing_total_bytes < l.outgoing_queue_bytes {
            return Err(invalid("limits.outgoing_total_bytes", "must be at least limits.outgoing_queue_bytes"));
        }
        let e = &l.events;
        for (name, b) in [
            ("limits.connect_per_ip", l.connect_per_ip),
            ("limits.http_per_ip", l.http_per_ip),
            ("limits.login_per_ip", l.login_per_ip),
            ("limits.gallery_access_per_ip", l.gallery_access_per_ip),
            ("limits.access_code_failures_per_ip", l.access_code_failures_per_ip),
            ("limits.access_code_failures_per_event", l.access_code_failures_per_event),
            ("limits.events.join", e.join),
            ("limits.events.like", e.like),
            ("limits.events.comment", e.comment),
            ("limits.events.other", e.other),
            ("limits.events.admin", e.admin),
        ] {
            if b.rate == 0 || b.burst == 0 || b.per.is_zero() {
                return Err(invalid(name, "rate, per and burst must be above zero"));
            }
        }
        for (name, d) in [
            ("limits.ping_interval", l.ping_interval),
            ("limits.ping_timeout", l.ping_timeout),
            ("limits.connect_timeout", l.connect_timeout),
            ("limits.no_room_timeout", l.no_room_timeout),
            ("limits.abuse_window", l.abuse_window),
            ("limits.header_read_timeout", l.header_read_timeout),
            ("rooms.idle_evict", self.idle_evict),
            ("storage.commit_queue_wait", self.commit_queue_wait),
        ] {
            if d.is_zero() {
                return Err(invalid(name, "must be above zero"));
            }
        }
        for (name, n) in [
            ("rooms.snapshot_max_photos", self.snapshot_max_photos),
            ("rooms.max_likes_per_identity", self.max_likes_per_identity),
            ("rooms.max_photos_per_event", self.max_photos_per_event),
            ("limits.login_concurrency", l.login_concurrency),
        ] {
            if n == 0 {
                return Err(invalid(name, "must be above zero"));
            }
        }
        if !(1..=128).contains(&l.ipv6_prefix) {
            return Err(invalid("limits.ipv6_prefix", "must be between 1 and 128"));
        }
        if !(1..=65536).contains(&self.cache_mb) {
            return Err(invalid("storage.cache_mb", "must be between 1 and 65536"));
        }
        if !(1..=1_000_000).contains(&self.commit_queue) {
            return Err(invalid("storage.commit_queue", "must be between 1 and 1000000"));
        }
        Ok(())
    }

    /// The production rules: refuse to start rather than run unsafely.
    pub fn check_production(&self) -> Result<(), ConfigError> {
        if self.mode != Mode::Production {
            return Ok(());
        }
        match self.secret.as_deref() {
            None => return Err(ConfigError::Production("NEXTAUTH_SECRET is required in production".into())),
            Some(s) if s.len() < 32 => {
                return Err(ConfigError::Production(
                    "NEXTAUTH_SECRET is too short: production needs at least 32 bytes".into(),
                ));
            }
            Some(s) if is_placeholder(s) => {
                return Err(ConfigError::Production(
                    "NEXTAUTH_SECRET is a known placeholder: generate a random one".into(),
                ));
            }
            _ => {}
        }
        if self.allowed_origins.iter().any(|o| o.contains('*')) {
            return Err(ConfigError::Production("ALLOWED_ORIGINS must not contain '*' in production".into()));
        }
        if !self.guest_session_validation {
            return Err(ConfigError::Production(
                "guest session validation cannot be disabled in production (SOCKET_GUEST_SESSION_VALIDATION_DISABLED)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<tables::File, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// Secrets copied from examples and tutorials, or with almost no variety in them.
fn is_placeholder(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    const WORDS: [&str; 8] =
        ["changeme", "change-me", "change_me", "your-secret", "your_secret", "placeholder", "example", "replace"];
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    WORDS.iter().any(|w| lower.contains(w)) || distinct.len() < 8 || lower.starts_with("secret")
}

#[cfg(test)]
mod tests;
