//! `hafi-loadgen`: a bounded load generator for hafi-realtime (and any Socket.IO 4 server with the
//! events of SPEC §4), speaking Engine.IO 4 / Socket.IO 5 over raw websockets.
//!
//! Scenarios (subcommands), one module each: `idle` and `storm` (`hold.rs`: held connections),
//! `fanout`, `churn`, `fill`, `likes` (a like storm, open loop), and, with no server, `floor` (the
//! machine's own cost of fan-out) and `disk` (in `likes.rs`: the disk's write + fdatasync rate).
//! Every scenario has a connection count and a hard deadline (`--duration`), prints progress on
//! stderr and one JSON line with all figures on stdout. Connections are spread over the source
//! addresses 127.0.0.1..127.0.0.N (`client.rs`), and `idle` / `storm` split themselves into child
//! processes (re-exec with `--shard`) when the connection count exceeds what one process may
//! open. The server's CPU and RSS are read from `/proc/<--server-pid>` (`sample.rs`); the load
//! generator's own CPU is reported beside it.
//!
//! Only loopback targets are accepted.

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

use crate::cli::{Cli, Scenario};
use crate::sample::{instant_at_epoch_ms, round, self_cpu};

mod churn;
mod cli;
mod client;
mod fanout;
mod fill;
mod floor;
mod hist;
mod hold;
mod likes;
mod polling;
mod sample;
mod tally;

fn main() {
    let cli = Cli::parse();
    let scn = cli.scenario.clone();
    let Some(c) = scn.common().cloned() else {
        match &scn {
            Scenario::Floor(a) => println!("{}", floor::floor(a)),
            Scenario::Disk(a) => println!("{}", likes::disk(a)),
            _ => {}
        }
        std::process::exit(0);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(c.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let deadline = match c.deadline_ms {
        Some(ms) => instant_at_epoch_ms(ms),
        None => Instant::now() + Duration::from_secs_f64(c.duration),
    };
    let t0 = Instant::now();
    let mut out = rt.block_on(async {
        match &scn {
            Scenario::Idle(_) | Scenario::Storm(_) => hold::run(&scn, deadline).await,
            Scenario::Fanout(a) => fanout::fanout(a, deadline).await,
            Scenario::Churn(a) => churn::churn(a, deadline).await,
            Scenario::Fill(a) => fill::fill(a, deadline).await,
            Scenario::Likes(a) => likes::likes(a, deadline).await,
            Scenario::Floor(_) | Scenario::Disk(_) => Value::Null,
        }
    });
    if c.shard.is_none() {
        out["wall_s"] = json!(round(t0.elapsed().as_secs_f64(), 2));
        out["deadline_hit"] = json!(Instant::now() >= deadline);
        out["loadgen_threads"] = json!(c.threads);
        if out.get("loadgen").is_some() && out["loadgen"].get("cpu_s").is_none() {
            out["loadgen"]["cpu_s"] = json!(round(self_cpu(), 3));
        }
    }
    println!("{out}");
    // Exit at once: held connections are closed by the kernel.
    std::process::exit(0);
}
