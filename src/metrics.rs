//! `/metrics` in the Prometheus text format.
//!
//! Counters live in the process-wide registry of the `prometheus` crate; gauges that describe
//! current state (connections, rooms, table sizes) are read from the state at scrape time, so
//! they cannot drift from what they describe.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub events_received: IntCounterVec,
    pub events_refused: IntCounterVec,
    pub connections_refused: IntCounterVec,
    pub http_refused: IntCounterVec,
    pub deliveries: IntCounter,
    pub flush_seconds: Histogram,
    pub rooms_evicted: IntCounter,
    pub sessions_expired: IntCounter,
    pub rooms_deleted: IntCounter,
    connections: IntGaugeVec,
    tcp_connections: IntGauge,
    rooms_in_memory: IntGauge,
    guests_online: IntGauge,
    breaker_open: IntGauge,
    table_keys: IntGaugeVec,
    uptime: Gauge,
    build_info: GaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("metric definition");
    r.register(Box::new(c.clone())).expect("metric registration");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric definition");
    r.register(Box::new(c.clone())).expect("metric registration");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definition");
    r.register(Box::new(g.clone())).expect("metric registration");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("metric definition");
    r.register(Box::new(g.clone())).expect("metric registration");
    g
}

/// The process's metrics (one server per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let flush_seconds = Histogram::with_opts(
        HistogramOpts::new("hafi_storage_flush_seconds", "Time of one storage flush (group commit)")
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0]),
    )
    .expect("metric definition");
    r.register(Box::new(flush_seconds.clone())).expect("metric registration");
    let uptime = Gauge::new("hafi_uptime_seconds", "Seconds since the server started").expect("metric definition");
    r.register(Box::new(uptime.clone())).expect("metric registration");
    let build_info =
        GaugeVec::new(Opts::new("hafi_build_info", "Build information"), &["version"]).expect("metric definition");
    r.register(Box::new(build_info.clone())).expect("metric registration");
    Metrics {
        events_received: counter_vec(&r, "hafi_events_received_total", "Socket.IO events received, by name", "event"),
        events_refused: counter_vec(&r, "hafi_events_refused_total", "Socket.IO events refused, by reason", "reason"),
        connections_refused: counter_vec(
            &r,
            "hafi_connections_refused_total",
            "Connections refused, by reason",
            "reason",
        ),
        http_refused: counter_vec(
            &r,
            "hafi_http_refused_total",
            "HTTP API requests refused by a limit, by reason",
            "reason",
        ),
        deliveries: counter(&r, "hafi_broadcast_deliveries_total", "Messages delivered to sockets by broadcasts"),
        rooms_evicted: counter(&r, "hafi_rooms_evicted_total", "Idle rooms evicted from memory by the janitor"),
        sessions_expired: counter(&r, "hafi_sessions_expired_total", "Expired guest sessions removed by the janitor"),
        rooms_deleted: counter(&r, "hafi_rooms_deleted_total", "Rooms deleted from disk after the retention period"),
        connections: gauge_vec(&r, "hafi_connections", "Connected Socket.IO clients, by transport", "transport"),
        tcp_connections: gauge(&r, "hafi_tcp_connections", "Open TCP connections"),
        rooms_in_memory: gauge(&r, "hafi_rooms_in_memory", "Event rooms held in memory"),
        guests_online: gauge(&r, "hafi_guests_online", "Distinct guests in rooms (a guest in two rooms counts twice)"),
        breaker_open: gauge(&r, "hafi_storage_breaker_open", "1 while the storage circuit breaker is open"),
        table_keys: gauge_vec(&r, "hafi_table_keys", "Keys held by per-IP, per-session and per-room tables", "table"),
        uptime,
        build_info,
        flush_seconds,
        registry: r,
    }
});

/// Which family a refusal is counted in.
#[derive(Clone, Copy, Debug)]
pub enum Refusal {
    Connection,
    Event,
    Http,
}

/// Adds one to the counter of a refusal. Limits call it through `limits::refuse`, which logs the
/// refusal too; the store's commit queue calls it directly for likes that waited too long, whose
/// "Server busy" replies are recorded again where they are sent.
pub(crate) fn count_refusal(kind: Refusal, reason: &str) {
    let m = &*METRICS;
    match kind {
        Refusal::Connection => m.connections_refused.with_label_values(&[reason]).inc(),
        Refusal::Event => m.events_refused.with_label_values(&[reason]).inc(),
        Refusal::Http => m.http_refused.with_label_values(&[reason]).inc(),
    }
}

/// Counts an event by name. The caller passes `"unknown"` for a name outside the protocol's,
/// so clients cannot grow the series.
pub fn received(event: &str) {
    METRICS.events_received.with_label_values(&[event]).inc();
}

/// What `/metrics` shows of the server's state, read by its caller: this module records and
/// renders, and knows nothing of the state it is about.
#[derive(Debug, Default)]
pub struct Gauges {
    pub websocket: usize,
    pub polling: usize,
    pub tcp_connections: usize,
    pub rooms_in_memory: usize,
    pub guests_online: usize,
    pub breaker_open: bool,
    pub uptime_s: f64,
    /// Keys of each per-key table, by table name.
    pub tables: Vec<(&'static str, usize)>,
}

/// Renders the registry with the gauges set from `g`.
pub fn render(g: &Gauges) -> String {
    let m = &*METRICS;
    m.connections.with_label_values(&["websocket"]).set(g.websocket as i64);
    m.connections.with_label_values(&["polling"]).set(g.polling as i64);
    m.tcp_connections.set(g.tcp_connections as i64);
    m.rooms_in_memory.set(g.rooms_in_memory as i64);
    m.guests_online.set(g.guests_online as i64);
    m.breaker_open.set(i64::from(g.breaker_open));
    for (table, n) in &g.tables {
        m.table_keys.with_label_values(&[table]).set(*n as i64);
    }
    m.uptime.set(g.uptime_s);
    m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
