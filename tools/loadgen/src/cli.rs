//! The command line: one subcommand per scenario. [`Common`] holds the options of every scenario
//! that talks to a server; each scenario's own arguments are declared beside its code.

use std::net::Ipv4Addr;

use clap::{Args, Parser, Subcommand};

use crate::{churn, fanout, fill, floor, hold, likes};

#[derive(Parser, Debug)]
#[command(name = "hafi-loadgen", about = "Bounded Socket.IO load generator for hafi-realtime (loopback only)")]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// Hold N idle joined guest connections spread over R rooms.
    Idle(hold::IdleArgs),
    /// G guests in one room; liker connection(s) like distinct photos at R/s.
    Fanout(fanout::FanoutArgs),
    /// C guests connecting and joining at once.
    Storm(hold::StormArgs),
    /// K connect-join-leave cycles over S distinct slugs, with bounded concurrency.
    Churn(churn::ChurnArgs),
    /// G guests connect over W seconds and join one room; presence seen after a settle time.
    Fill(fill::FillArgs),
    /// No server: N loopback readers, one writer thread sending each a 60-byte frame R times a second.
    Floor(floor::FloorArgs),
    /// S sender sockets like distinct photos at R/s in total (open loop); readers in the room.
    Likes(likes::LikesArgs),
    /// No server: the rate of a 4 KB write + fdatasync loop in a directory.
    Disk(likes::DiskArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: Ipv4Addr,
    #[arg(long)]
    pub port: u16,
    /// PID of the server process, to read its CPU time and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Hard deadline for the whole scenario, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Number of source addresses 127.0.0.1..127.0.0.N to spread connections over.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// Tokio worker threads of each load generator process.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Connections per load generator process at most (also capped by its open-file limit).
    #[arg(long, default_value_t = 9000)]
    pub per_process: usize,
    /// Prefix of slugs and guest session ids.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Timeout of one connect + handshake + join, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub conn_timeout: f64,
    #[arg(long, hide = true)]
    pub shard: Option<usize>,
    #[arg(long, hide = true, default_value_t = 1)]
    pub shards: usize,
    #[arg(long, hide = true)]
    pub start_at_ms: Option<u64>,
    #[arg(long, hide = true)]
    pub deadline_ms: Option<u64>,
}

impl Scenario {
    /// The server-facing options; `floor` has no server.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Scenario::Idle(a) => Some(&a.common),
            Scenario::Fanout(a) => Some(&a.common),
            Scenario::Storm(a) => Some(&a.common),
            Scenario::Churn(a) => Some(&a.common),
            Scenario::Fill(a) => Some(&a.common),
            Scenario::Likes(a) => Some(&a.common),
            Scenario::Floor(_) | Scenario::Disk(_) => None,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Idle(_) => "idle",
            Scenario::Fanout(_) => "fanout",
            Scenario::Storm(_) => "storm",
            Scenario::Churn(_) => "churn",
            Scenario::Fill(_) => "fill",
            Scenario::Floor(_) => "floor",
            Scenario::Likes(_) => "likes",
            Scenario::Disk(_) => "disk",
        }
    }
}
