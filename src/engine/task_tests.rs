//! The size of a session's task: it lives as long as its connection, so every byte of it is
//! paid once per connected phone (BENCHMARKS.md, "Per-connection cost after the layout work").

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use super::super::{Engine, Ext, Handler, Incoming, Limits, Reason, Session, Step};
use super::*;

struct Nobody;

impl Handler for Nobody {
    fn connect(&self, _: &Arc<Session>, _: Option<&RawValue>, _: &Head) -> Result<(), String> {
        Err("no".into())
    }
    fn event(&self, _: &Arc<Session>, ev: Incoming) -> Step {
        Step::Blocked(ev)
    }
    fn disconnect(&self, _: &Arc<Session>, _: Ext, _: Reason) {}
}

fn session() -> Arc<Session> {
    let limits = Limits {
        ping_interval: Duration::from_secs(25),
        ping_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(45),
        max_payload: 100_000,
        queue_bytes: 1 << 20,
        total_bytes: 1 << 28,
    };
    Session::new(&Engine::new(limits, Arc::new(Nobody)), Head::empty(false))
}

#[tokio::test]
async fn a_session_task_does_not_carry_a_packets_handling() {
    let s = session();
    let mut r =
        Reader { pipeline: FuturesOrdered::new(), attachments: None, awaiting_pong: false, beat: Instant::now() };
    let handling = std::mem::size_of_val(&on_packet(&s, &mut r, EioPacket::Noop));
    let task = std::mem::size_of_val(&run(s.clone(), None));
    // 856 B on rustc 1.95 (x86_64), with a packet's handling (816 B) boxed; inlined at any one
    // of its three call sites, the task grows past 1,400 B.
    assert!(task <= 1024, "the session task is {task} B: is a packet's handling ({handling} B) inlined again?");
}
