//! Configuration: defaults < TOML file < environment < command-line flags.
//!
//! The file is parsed into a mirror of [`Config`] whose fields are all optional and which refuses
//! unknown keys, so a typo in a studio's config file is an error that names the key instead of a
//! setting that silently does nothing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

impl Mode {
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

/// Where guest comments go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestComments {
    Broadcast,
    AdminsOnly,
    Off,
}

/// A token bucket: `rate` tokens every `per`, holding at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub rate: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Bucket {
    const fn new(rate: u32, per_ms: u64, burst: u32) -> Bucket {
        Bucket { rate, per: Duration::from_millis(per_ms), burst }
    }
}

#[derive(Clone, Debug)]
pub struct EventLimits {
    pub join: Bucket,
    pub like: Bucket,
    pub comment: Bucket,
    pub other: Bucket,
    pub admin: Bucket,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_sockets_per_session: usize,
    pub connect_per_ip: Bucket,
    pub http_per_ip: Bucket,
    pub login_per_ip: Bucket,
    pub abuse_disconnect_after: u32,
    pub abuse_window: Duration,
    pub max_payload_bytes: u64,
    pub max_http_body_bytes: u64,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub connect_timeout: Duration,
    pub no_room_timeout: Duration,
    /// Unsent bytes one socket may have before it is shed as a slow consumer.
    pub outgoing_queue_bytes: usize,
    /// Unsent bytes of all sockets together; past it the largest queues are shed.
    pub outgoing_total_bytes: usize,
    /// A request head must be complete within this of connect or of the previous response.
    pub header_read_timeout: Duration,
    /// IPv6 clients are grouped by this prefix length for every per-IP limit.
    pub ipv6_prefix: u8,
    /// New guest sessions from `POST /api/gallery/{slug}/access`, per IP.
    pub gallery_access_per_ip: Bucket,
    /// Wrong access codes per IP.
    pub access_code_failures_per_ip: Bucket,
    /// Wrong access codes per event (all IPs together).
    pub access_code_failures_per_event: Bucket,
    /// argon2 password checks running at once; more are refused with 503 at once.
    pub login_concurrency: usize,
    pub events: EventLimits,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// `None` until resolved: in development a generated one is filled in by `auth::resolve_secret`.
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
    fn default() -> Config {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 3001,
            mode: Mode::Development,
            data_dir: PathBuf::from("./data"),
            allowed_origins: vec!["http://localhost:3000".into()],
            trusted_proxies: vec!["127.0.0.1/8".parse().expect("literal"), "::1/128".parse().expect("literal")],
            secret: None,
            guest_session_validation: true,
            token_ttl: Duration::from_secs(24 * 3600),
            guest_session_ttl: Duration::from_secs(30 * 24 * 3600),
            limits: Limits {
                max_connections: 50_000,
                max_connections_per_ip: 256,
                max_sockets_per_session: 8,
                connect_per_ip: Bucket::new(20, 1000, 60),
                http_per_ip: Bucket::new(20, 1000, 40),
                login_per_ip: Bucket::new(5, 60_000, 5),
                abuse_disconnect_after: 50,
                abuse_window: Duration::from_secs(60),
                max_payload_bytes: 100_000,
                max_http_body_bytes: 65_536,
                ping_interval: Duration::from_secs(25),
                ping_timeout: Duration::from_secs(20),
                connect_timeout: Duration::from_secs(10),
                no_room_timeout: Duration::from_secs(60),
                outgoing_queue_bytes: 1 << 20,
                outgoing_total_bytes: 256 << 20,
                header_read_timeout: Duration::from_secs(10),
                ipv6_prefix: 64,
                gallery_access_per_ip: Bucket::new(300, 3_600_000, 100),
                access_code_failures_per_ip: Bucket::new(20, 600_000, 20),
                access_code_failures_per_event: Bucket::new(1000, 3_600_000, 1000),
                login_concurrency: 2,
                events: EventLimits {
                    join: Bucket::new(5, 10_000, 5),
                    like: Bucket::new(10, 1000, 20),
                    comment: Bucket::new(3, 5000, 3),
                    other: Bucket::new(20, 1000, 40),
                    admin: Bucket::new(200, 1000, 400),
                },
            },
            idle_evict: Duration::from_secs(3600),
            retention_days: 0,
            snapshot_max_photos: 5000,
            max_likes_per_identity: 2000,
            max_photos_per_event: 100_000,
            public_origin: None,
            guest_comments: GuestComments::Broadcast,
            metrics_token: None,
            log_json: false,
            group_commit: true,
            cache_mb: 8,
            commit_queue: 4096,
            commit_queue_wait: Duration::from_millis(250),
        }
    }
}

/// Values given on the command line; `None` means "not given".
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
}

/// Parses `300ms`, `10s`, `5m`, `1h`, `30d`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw = String::deserialize(d)?;
    parse_duration(&raw)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {raw:?} (use 300ms, 10s, 5m, 1h or 30d)")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBucket {
    rate: u32,
    #[serde(deserialize_with = "de_duration")]
    per: Option<Duration>,
    burst: u32,
}

impl FileBucket {
    fn into_bucket(self, name: &str) -> Result<Bucket, ConfigError> {
        let per = self.per.unwrap_or(Duration::from_secs(1));
        if self.rate == 0 || self.burst == 0 || per.is_zero() {
            return Err(invalid(name, "rate, per and burst must be above zero"));
        }
        Ok(Bucket { rate: self.rate, per, burst: self.burst })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    rooms: FileRooms,
    #[serde(default)]
    metrics: FileMetrics,
    #[serde(default)]
    storage: FileStorage,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    group_commit: Option<bool>,
    cache_mb: Option<u32>,
    commit_queue: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    commit_queue_wait: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    host: Option<String>,
    port: Option<u16>,
    env: Option<String>,
    data_dir: Option<PathBuf>,
    allowed_origins: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    log_format: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    secret: Option<String>,
    guest_session_validation: Option<bool>,
    #[serde(default, deserialize_with = "de_duration")]
    token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    guest_session_ttl: Option<Duration>,
    public_origin: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_sockets_per_session: Option<usize>,
    connect_per_ip: Option<FileBucket>,
    http_per_ip: Option<FileBucket>,
    login_per_ip: Option<FileBucket>,
    abuse_disconnect_after: Option<u32>,
    #[serde(default, deserialize_with = "de_duration")]
    abuse_window: Option<Duration>,
    max_payload_bytes: Option<u64>,
    max_http_body_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_duration")]
    ping_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    ping_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    no_room_timeout: Option<Duration>,
    /// The count of packets that earlier releases took; refused with a pointer to its successor.
    outgoing_queue: Option<serde::de::IgnoredAny>,
    outgoing_queue_bytes: Option<usize>,
    outgoing_total_bytes: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    header_read_timeout: Option<Duration>,
    ipv6_prefix: Option<u8>,
    gallery_access_per_ip: Option<FileBucket>,
    access_code_failures_per_ip: Option<FileBucket>,
    access_code_failures_per_event: Option<FileBucket>,
    login_concurrency: Option<usize>,
    #[serde(default)]
    events: FileEventLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileEventLimits {
    join: Option<FileBucket>,
    like: Option<FileBucket>,
    comment: Option<FileBucket>,
    other: Option<FileBucket>,
    admin: Option<FileBucket>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileRooms {
    #[serde(default, deserialize_with = "de_duration")]
    idle_evict: Option<Duration>,
    retention_days: Option<u32>,
    snapshot_max_photos: Option<usize>,
    max_likes_per_identity: Option<usize>,
    max_photos_per_event: Option<usize>,
    guest_comments: Option<GuestComments>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    token: Option<String>,
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn set_bucket(slot: &mut Bucket, v: Option<FileBucket>, name: &str) -> Result<(), ConfigError> {
    if let Some(b) = v {
        *slot = b.into_bucket(name)?;
    }
    Ok(())
}

fn parse_host(name: &str, raw: &str) -> Result<IpAddr, ConfigError> {
    let raw = raw.trim();
    if raw == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    raw.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| invalid(name, format!("{raw:?} is not an IP address")))
}

fn parse_proxies(name: &str, items: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(name, format!("{s:?} is not an address or CIDR range")))
        })
        .collect()
}

/// An origin as browsers send it: `scheme://host[:port]`, no path.
fn parse_origin(name: &str, raw: &str) -> Result<String, ConfigError> {
    let o = raw.trim().trim_end_matches('/');
    let rest = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(o.to_ascii_lowercase()),
        _ => Err(invalid(name, format!("{raw:?} is not an origin like https://live.example.com"))),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn parse_bool(name: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(invalid(name, format!("{other:?} is not a boolean"))),
    }
}

impl Config {
    /// Loads the whole configuration. `env` reads one variable (the process environment in
    /// production, a map in tests).
    pub fn load(over: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let file = over.config_file.clone().or_else(|| env("HAFI_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            c.apply_file(&path)?;
        }
        c.apply_env(env)?;
        if let Some(h) = &over.host {
            c.host = parse_host("--host", h)?;
        }
        set(&mut c.port, over.port);
        set(&mut c.data_dir, over.data_dir.clone());
        c.validate()?;
        Ok(c)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let f: FileConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        if let Some(h) = f.server.host {
            self.host = parse_host("server.host", &h)?;
        }
        set(&mut self.port, f.server.port);
        if let Some(e) = f.server.env {
            self.mode = Mode::parse(&e);
        }
        set(&mut self.data_dir, f.server.data_dir);
        set(
            &mut self.allowed_origins,
            f.server.allowed_origins.map(|v| v.iter().map(|s| s.trim().to_string()).collect()),
        );
        if let Some(p) = f.server.trusted_proxies {
            self.trusted_proxies = parse_proxies("server.trusted_proxies", &p)?;
        }
        if let Some(fmt) = f.server.log_format {
            self.log_json = fmt.eq_ignore_ascii_case("json");
        }
        set(&mut self.secret, f.auth.secret.map(Some));
        set(&mut self.guest_session_validation, f.auth.guest_session_validation);
        set(&mut self.token_ttl, f.auth.token_ttl);
        set(&mut self.guest_session_ttl, f.auth.guest_session_ttl);
        let l = &mut self.limits;
        let fl = f.limits;
        set(&mut l.max_connections, fl.max_connections);
        set(&mut l.max_connections_per_ip, fl.max_connections_per_ip);
        set(&mut l.max_sockets_per_session, fl.max_sockets_per_session);
        set_bucket(&mut l.connect_per_ip, fl.connect_per_ip, "limits.connect_per_ip")?;
        set_bucket(&mut l.http_per_ip, fl.http_per_ip, "limits.http_per_ip")?;
        set_bucket(&mut l.login_per_ip, fl.login_per_ip, "limits.login_per_ip")?;
        set(&mut l.abuse_disconnect_after, fl.abuse_disconnect_after);
        set(&mut l.abuse_window, fl.abuse_window);
        set(&mut l.max_payload_bytes, fl.max_payload_bytes);
        set(&mut l.max_http_body_bytes, fl.max_http_body_bytes);
        set(&mut l.ping_interval, fl.ping_interval);
        set(&mut l.ping_timeout, fl.ping_timeout);
        set(&mut l.connect_timeout, fl.connect_timeout);
        set(&mut l.no_room_timeout, fl.no_room_timeout);
        if fl.outgoing_queue.is_some() {
            return Err(invalid(
                "limits.outgoing_queue",
                "was replaced by limits.outgoing_queue_bytes (unsent bytes per socket, default 1048576)",
            ));
        }
        set(&mut l.outgoing_queue_bytes, fl.outgoing_queue_bytes);
        set(&mut l.outgoing_total_bytes, fl.outgoing_total_bytes);
        set(&mut l.header_read_timeout, fl.header_read_timeout);
        set(&mut l.ipv6_prefix, fl.ipv6_prefix);
        set_bucket(&mut l.gallery_access_per_ip, fl.gallery_access_per_ip, "limits.gallery_access_per_ip")?;
        set_bucket(
            &mut l.access_code_failures_per_ip,
            fl.access_code_failures_per_ip,
            "limits.access_code_failures_per_ip",
        )?;
        set_bucket(
            &mut l.access_code_failures_per_event,
            fl.access_code_failures_per_event,
            "limits.access_code_failures_per_event",
        )?;
        set(&mut l.login_concurrency, fl.login_concurrency);
        let e = &mut l.events;
        set_bucket(&mut e.join, fl.events.join, "limits.events.join")?;
        set_bucket(&mut e.like, fl.events.like, "limits.events.like")?;
        set_bucket(&mut e.comment, fl.events.comment, "limits.events.comment")?;
        set_bucket(&mut e.other, fl.events.other, "limits.events.other")?;
        set_bucket(&mut e.admin, fl.events.admin, "limits.events.admin")?;
        set(&mut self.idle_evict, f.rooms.idle_evict);
        set(&mut self.retention_days, f.rooms.retention_days);
        set(&mut self.snapshot_max_photos, f.rooms.snapshot_max_photos);
        set(&mut self.max_likes_per_identity, f.rooms.max_likes_per_identity);
        set(&mut self.max_photos_per_event, f.rooms.max_photos_per_event);
        if let Some(o) = f.auth.public_origin {
            self.public_origin = Some(parse_origin("auth.public_origin", &o)?);
        }
        set(&mut self.guest_comments, f.rooms.guest_comments);
        set(&mut self.metrics_token, f.metrics.token.map(Some));
        set(&mut self.group_commit, f.storage.group_commit);
        set(&mut self.cache_mb, f.storage.cache_mb);
        set(&mut self.commit_queue, f.storage.commit_queue);
        set(&mut self.commit_queue_wait, f.storage.commit_queue_wait);
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("SOCKET_HOST") {
            self.host = parse_host("SOCKET_HOST", &v)?;
        }
        if let Some(v) = get("SOCKET_PORT") {
            self.port = v.trim().parse().map_err(|_| invalid("SOCKET_PORT", format!("{v:?} is not a port")))?;
        }
        // HAFI_ENV is an alias of NODE_ENV that wins when both are set.
        if let Some(v) = get("HAFI_ENV").or_else(|| get("NODE_ENV")) {
            self.mode = Mode::parse(&v);
        }
        if let Some(v) = get("NEXTAUTH_SECRET") {
            self.secret = Some(v);
        }
        if let Some(v) = get("ALLOWED_ORIGINS") {
            self.allowed_origins = split_list(&v);
        }
        if let Some(v) = get("DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("TRUSTED_PROXIES") {
            self.trusted_proxies = parse_proxies("TRUSTED_PROXIES", &split_list(&v))?;
        }
        if let Some(v) = get("SOCKET_GUEST_SESSION_VALIDATION_DISABLED") {
            self.guest_session_validation = !parse_bool("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", &v)?;
        }
        if let Some(v) = get("MAX_CONNECTIONS") {
            self.limits.max_connections =
                v.trim().parse().map_err(|_| invalid("MAX_CONNECTIONS", format!("{v:?} is not a number")))?;
        }
        if let Some(v) = get("MAX_CONNECTIONS_PER_IP") {
            self.limits.max_connections_per_ip =
                v.trim().parse().map_err(|_| invalid("MAX_CONNECTIONS_PER_IP", format!("{v:?} is not a number")))?;
        }
        if let Some(v) = get("METRICS_TOKEN") {
            self.metrics_token = Some(v);
        }
        if let Some(v) = get("LOG_FORMAT") {
            self.log_json = v.trim().eq_ignore_ascii_case("json");
        }
        Ok(())
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
        if self.snapshot_max_photos == 0 {
            return Err(invalid("rooms.snapshot_max_photos", "must be above zero"));
        }
        if self.max_likes_per_identity == 0 {
            return Err(invalid("rooms.max_likes_per_identity", "must be above zero"));
        }
        if self.max_photos_per_event == 0 {
            return Err(invalid("rooms.max_photos_per_event", "must be above zero"));
        }
        if !(1..=128).contains(&l.ipv6_prefix) {
            return Err(invalid("limits.ipv6_prefix", "must be between 1 and 128"));
        }
        if l.login_concurrency == 0 {
            return Err(invalid("limits.login_concurrency", "must be above zero"));
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

/// Secrets copied from examples and tutorials, or with almost no variety in them.
fn is_placeholder(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    const WORDS: [&str; 8] =
        ["changeme", "change-me", "change_me", "your-secret", "your_secret", "placeholder", "example", "replace"];
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    WORDS.iter().any(|w| lower.contains(w)) || distinct.len() < 8 || lower.starts_with("secret")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], file: Option<&str>, over: Overrides) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut over = over;
        if let Some(text) = file {
            let p = dir.path().join("c.toml");
            std::fs::write(&p, text).unwrap();
            over.config_file = Some(p);
        }
        Config::load(&over, &|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&[], None, Overrides::default()).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.mode, Mode::Development);
        assert_eq!(c.limits.events.like, Bucket::new(10, 1000, 20));
        assert_eq!(c.limits.max_connections_per_ip, 256);
    }

    #[test]
    fn precedence_flag_env_file() {
        let file = "[server]\nport = 4000\nhost = \"127.0.0.1\"\n";
        let c = load(&[], Some(file), Overrides::default()).unwrap();
        assert_eq!(c.port, 4000);
        let c = load(&[("SOCKET_PORT", "5000")], Some(file), Overrides::default()).unwrap();
        assert_eq!(c.port, 5000);
        let c =
            load(&[("SOCKET_PORT", "5000")], Some(file), Overrides { port: Some(6000), ..Default::default() }).unwrap();
        assert_eq!(c.port, 6000);
        assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn the_old_packet_count_queue_key_names_its_successor() {
        let err = load(&[], Some("[limits]\noutgoing_queue = 1024\n"), Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("limits.outgoing_queue") && err.contains("outgoing_queue_bytes"), "{err}");
        let c = load(&[], Some("[limits]\noutgoing_queue_bytes = 2097152\n"), Overrides::default()).unwrap();
        assert_eq!((c.limits.outgoing_queue_bytes, c.limits.outgoing_total_bytes), (2 << 20, 256 << 20));
        assert!(load(&[], Some("[limits]\noutgoing_total_bytes = 1000\n"), Overrides::default()).is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load(&[], Some("[limits]\nmax_conections = 3\n"), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn buckets_and_durations() {
        let file = "[limits.events]\nlike = { rate = 2, per = \"500ms\", burst = 3 }\n[rooms]\nidle_evict = \"5m\"\nguest_comments = \"admins-only\"\n";
        let c = load(&[], Some(file), Overrides::default()).unwrap();
        assert_eq!(c.limits.events.like, Bucket::new(2, 500, 3));
        assert_eq!(c.idle_evict, Duration::from_secs(300));
        assert_eq!(c.guest_comments, GuestComments::AdminsOnly);
        assert!(load(&[], Some("[rooms]\nidle_evict = \"5 parsecs\"\n"), Overrides::default()).is_err());
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("10"), None);
        assert!(load(&[], Some("[limits]\nping_interval = \"0s\"\n"), Overrides::default()).is_err());
        assert!(load(&[], Some("[limits]\nheader_read_timeout = \"0s\"\n"), Overrides::default()).is_err());
        assert_eq!(load(&[], Some("[storage]\ncache_mb = 32\n"), Overrides::default()).unwrap().cache_mb, 32);
        let err = load(&[], Some("[storage]\ncache_mb = 0\n"), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("storage.cache_mb"), "{err}");
    }

    #[test]
    fn env_names_compatible_with_node() {
        let c = load(
            &[
                ("NODE_ENV", "production"),
                ("HAFI_ENV", "development"),
                ("ALLOWED_ORIGINS", " https://a.example , https://b.example "),
            ],
            None,
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Development);
        assert_eq!(c.allowed_origins, vec!["https://a.example", "https://b.example"]);
    }

    #[test]
    fn hostile_network_keys() {
        let c = load(&[], None, Overrides::default()).unwrap();
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.ipv6_prefix, 64);
        assert_eq!(c.limits.gallery_access_per_ip, Bucket::new(300, 3_600_000, 100));
        assert_eq!(c.limits.login_concurrency, 2);
        assert_eq!((c.max_likes_per_identity, c.max_photos_per_event), (2000, 100_000));
        let file = "[limits]\nheader_read_timeout = \"3s\"\nipv6_prefix = 48\nlogin_concurrency = 4\naccess_code_failures_per_ip = { rate = 2, per = \"1m\", burst = 2 }\n[rooms]\nmax_likes_per_identity = 7\n[auth]\npublic_origin = \"https://Live.Example.com/\"\n";
        let c = load(&[], Some(file), Overrides::default()).unwrap();
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(3));
        assert_eq!(c.limits.ipv6_prefix, 48);
        assert_eq!(c.limits.login_concurrency, 4);
        assert_eq!(c.limits.access_code_failures_per_ip, Bucket::new(2, 60_000, 2));
        assert_eq!(c.max_likes_per_identity, 7);
        assert_eq!(c.public_origin.as_deref(), Some("https://live.example.com"));
        for bad in [
            "[limits]\nipv6_prefix = 0\n",
            "[limits]\nlogin_concurrency = 0\n",
            "[auth]\npublic_origin = \"live.example.com\"\n",
            "[rooms]\nmax_photos_per_event = 0\n",
        ] {
            assert!(load(&[], Some(bad), Overrides::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn production_rules() {
        let strong = "k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH";
        let prod = |extra: &[(&str, &str)]| {
            let mut env = vec![("NODE_ENV", "production")];
            env.extend_from_slice(extra);
            load(&env, None, Overrides::default()).unwrap().check_production()
        };
        assert!(prod(&[]).is_err());
        assert!(prod(&[("NEXTAUTH_SECRET", "short")]).is_err());
        assert!(prod(&[("NEXTAUTH_SECRET", "changeme-changeme-changeme-changeme-123")]).is_err());
        assert!(prod(&[("NEXTAUTH_SECRET", strong)]).is_ok());
        assert!(prod(&[("NEXTAUTH_SECRET", strong), ("ALLOWED_ORIGINS", "*")]).is_err());
        assert!(prod(&[("NEXTAUTH_SECRET", strong), ("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]).is_err());
    }
}
