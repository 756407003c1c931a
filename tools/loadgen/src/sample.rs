//! Readings from `/proc`: the server's CPU time and RSS (by `--server-pid`), the load
//! generator's own CPU, the whole machine's busy time, and the clock helpers that let shard
//! processes agree on one start time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CLK_TCK: f64 = 100.0;

/// utime + stime of a process (all its threads), in seconds.
pub fn proc_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / CLK_TCK)
}

/// VmRSS of a process, in KiB.
pub fn proc_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

pub fn self_cpu() -> f64 {
    proc_cpu("self").unwrap_or(0.0)
}

/// Soft limit of open files of this process.
pub fn nofile_soft() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// Busy CPU time of the whole machine (all cores; user, nice, system, irq, softirq, steal), in
/// seconds: with the server's and the load generator's CPU it shows what else ran meanwhile.
pub fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    (get(0) + get(1) + get(2) + get(5) + get(6) + get(7)) as f64 / CLK_TCK
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSample {
    pub cpu: f64,
    pub rss_kib: u64,
    pub at: Option<Instant>,
    machine: f64,
}

/// Percent of one core that the whole machine was busy between two samples.
pub fn machine_pct(a: &ServerSample, b: &ServerSample) -> f64 {
    let secs = b.at.zip(a.at).map(|(b, a)| b.duration_since(a).as_secs_f64()).unwrap_or(f64::NAN);
    round((b.machine - a.machine) / secs * 100.0, 1)
}

pub struct Server {
    pub pid: Option<String>,
}

impl Server {
    pub fn sample(&self) -> ServerSample {
        match &self.pid {
            Some(p) => ServerSample {
                cpu: proc_cpu(p).unwrap_or(f64::NAN),
                rss_kib: proc_rss_kib(p).unwrap_or(0),
                at: Some(Instant::now()),
                machine: machine_busy(),
            },
            None => ServerSample { cpu: f64::NAN, rss_kib: 0, at: Some(Instant::now()), machine: machine_busy() },
        }
    }
}

pub fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn instant_at_epoch_ms(ms: u64) -> Instant {
    let now = epoch_ms();
    if ms >= now {
        Instant::now() + Duration::from_millis(ms - now)
    } else {
        Instant::now() - Duration::from_millis(now - ms)
    }
}

pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// The 1, 5 and 15 minute load averages: what else the machine was doing around a run.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
