//! The config file, one type per TOML table. Each table's `Default` holds its keys' embedded
//! defaults (the only place they are written), and each refuses unknown keys, so a typo in a
//! studio's file is an error that names the key instead of a setting that silently does nothing.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{duration, parse_host, parse_origin, parse_proxies, removed_outgoing_queue};
use super::{Config, ConfigError, GuestComments, Mode, invalid};

/// The whole file; a table it leaves out keeps all its defaults.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct File {
    server: Server,
    auth: Auth,
    limits: Limits,
    rooms: Rooms,
    storage: Storage,
    metrics: Metrics,
}

/// `[server]`. The address keys stay strings here so that their errors can name the key.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Server {
    host: String,
    port: u16,
    env: Mode,
    data_dir: PathBuf,
    allowed_origins: Vec<String>,
    trusted_proxies: Vec<String>,
    /// `json` for JSON lines; anything else is the readable format.
    log_format: String,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            host: "0.0.0.0".into(),
            port: 3001,
            env: Mode::Development,
            data_dir: PathBuf::from("./data"),
            allowed_origins: vec!["http://localhost:3000".into()],
            trusted_proxies: vec!["127.0.0.1/8".into(), "::1/128".into()],
            log_format: "pretty".into(),
        }
    }
}

/// `[auth]`
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Auth {
    secret: Option<String>,
    guest_session_validation: bool,
    #[serde(deserialize_with = "duration")]
    token_ttl: Duration,
    #[serde(deserialize_with = "duration")]
    guest_session_ttl: Duration,
    public_origin: Option<String>,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            secret: None,
            guest_session_validation: true,
            token_ttl: Duration::from_secs(24 * 3600),
            guest_session_ttl: Duration::from_secs(30 * 24 * 3600),
            public_origin: None,
        }
    }
}

/// A token bucket: `rate` tokens every `per`, holding at most `burst`. In the file
/// `{ rate = N, per = "1s", burst = N }`, all three written.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub rate: u32,
    #[serde(deserialize_with = "duration")]
    pub per: Duration,
    pub burst: u32,
}

impl Bucket {
    pub(super) const fn new(rate: u32, per_ms: u64, burst: u32) -> Bucket {
        Bucket { rate, per: Duration::from_millis(per_ms), burst }
    }
}

/// `[limits.events]`: per-socket rates of the events a client sends.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLimits {
    pub join: Bucket,
    /// `photo:like` and `photo:unlike`.
    pub like: Bucket,
    pub comment: Bucket,
    pub other: Bucket,
    /// Any event from an admin socket.
    pub admin: Bucket,
}

impl Default for EventLimits {
    fn default() -> EventLimits {
        EventLimits {
            join: Bucket::new(5, 10_000, 5),
            like: Bucket::new(10, 1000, 20),
            comment: Bucket::new(3, 5000, 3),
            other: Bucket::new(20, 1000, 40),
            admin: Bucket::new(200, 1000, 400),
        }
    }
}

/// A key that earlier releases read and that is refused now; it never holds a value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Removed;

/// `[limits]`, as the rest of the server reads it too.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_sockets_per_session: usize,
    pub connect_per_ip: Bucket,
    pub http_per_ip: Bucket,
    pub login_per_ip: Bucket,
    /// Rate-limit hits within `abuse_window` that get a socket disconnected.
    pub abuse_disconnect_after: u32,
    #[serde(deserialize_with = "duration")]
    pub abuse_window: Duration,
    pub max_payload_bytes: u64,
    pub max_http_body_bytes: u64,
    #[serde(deserialize_with = "duration")]
    pub ping_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub ping_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub no_room_timeout: Duration,
    /// Present only to refuse the removed key with a pointer to `outgoing_queue_bytes`.
    #[serde(deserialize_with = "removed_outgoing_queue")]
    outgoing_queue: Removed,
    /// Unsent bytes one socket may have before it is shed as a slow consumer.
    pub outgoing_queue_bytes: usize,
    /// Unsent bytes of all sockets together; past it the largest queues are shed.
    pub outgoing_total_bytes: usize,
    /// A request head must be complete within this of connect or of the previous response.
    #[serde(deserialize_with = "duration")]
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

impl Default for Limits {
    fn default() -> Limits {
        Limits {
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
            outgoing_queue: Removed,
            outgoing_queue_bytes: 1 << 20,
            outgoing_total_bytes: 256 << 20,
            header_read_timeout: Duration::from_secs(10),
            ipv6_prefix: 64,
            gallery_access_per_ip: Bucket::new(300, 3_600_000, 100),
            access_code_failures_per_ip: Bucket::new(20, 600_000, 20),
            access_code_failures_per_event: Bucket::new(1000, 3_600_000, 1000),
            login_concurrency: 2,
            events: EventLimits::default(),
        }
    }
}

/// `[rooms]`
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Rooms {
    #[serde(deserialize_with = "duration")]
    idle_evict: Duration,
    retention_days: u32,
    snapshot_max_photos: usize,
    max_likes_per_identity: usize,
    max_photos_per_event: usize,
    /// Also read here, where earlier releases documented it; SPEC §1 places it in `[storage]`.
    guest_comments: Option<GuestComments>,
}

impl Default for Rooms {
    fn default() -> Rooms {
        Rooms {
            idle_evict: Duration::from_secs(3600),
            retention_days: 0,
            snapshot_max_photos: 5000,
            max_likes_per_identity: 2000,
            max_photos_per_event: 100_000,
            guest_comments: None,
        }
    }
}

/// `[storage]`
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Storage {
    group_commit: bool,
    cache_mb: u32,
    commit_queue: usize,
    #[serde(deserialize_with = "duration")]
    commit_queue_wait: Duration,
    /// Where guest comments go (`broadcast` when set in neither table).
    guest_comments: Option<GuestComments>,
}

impl Default for Storage {
    fn default() -> Storage {
        Storage {
            group_commit: true,
            cache_mb: 8,
            commit_queue: 4096,
            commit_queue_wait: Duration::from_millis(250),
            guest_comments: None,
        }
    }
}

/// `[metrics]`
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Metrics {
    token: Option<String>,
}

impl File {
    /// The configuration this file describes, before the environment and the flags.
    pub(super) fn resolve(self) -> Result<Config, ConfigError> {
        let File { server, auth, limits, rooms, storage, metrics } = self;
        let guest_comments = match (storage.guest_comments, rooms.guest_comments) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(
                    "storage.guest_comments",
                    "differs from rooms.guest_comments: set it in one place",
                ));
            }
            (a, b) => a.or(b).unwrap_or(GuestComments::Broadcast),
        };
        Ok(Config {
            host: parse_host("server.host", &server.host)?,
            port: server.port,
            mode: server.env,
            data_dir: server.data_dir,
            allowed_origins: server.allowed_origins.iter().map(|s| s.trim().to_string()).collect(),
            trusted_proxies: parse_proxies("server.trusted_proxies", &server.trusted_proxies)?,
            log_json: server.log_format.eq_ignore_ascii_case("json"),
            secret: auth.secret,
            guest_session_validation: auth.guest_session_validation,
            token_ttl: auth.token_ttl,
            guest_session_ttl: auth.guest_session_ttl,
            public_origin: auth.public_origin.map(|o| parse_origin("auth.public_origin", &o)).transpose()?,
            limits,
            idle_evict: rooms.idle_evict,
            retention_days: rooms.retention_days,
            snapshot_max_photos: rooms.snapshot_max_photos,
            max_likes_per_identity: rooms.max_likes_per_identity,
            max_photos_per_event: rooms.max_photos_per_event,
            guest_comments,
            metrics_token: metrics.token,
            group_commit: storage.group_commit,
            cache_mb: storage.cache_mb,
            commit_queue: storage.commit_queue,
            commit_queue_wait: storage.commit_queue_wait,
        })
    }
}
