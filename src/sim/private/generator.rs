//! The accounts thread: every `SimConfig::account_event_interval` each
//! account's order flow takes one step, and its events go to the
//! connections listening to it; listen keys whose validity ended expire.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::sim::base::now_ms;
use crate::sim::state::Inner;

use super::orders::Flow;

/// Runs until `stop` disconnects or says so.
pub(crate) fn run_accounts(inner: Arc<Inner>, stop: Receiver<()>) {
    let cfg = &inner.cfg;
    let mut flows: Vec<Flow> = (0..inner.private.accounts.len())
        .map(|a| Flow::new(a, cfg.venue, cfg.seed, &inner.info))
        .collect();
    let every = cfg.account_event_interval;
    let mut next = Instant::now() + every;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if inner.is_shutdown() {
            return;
        }
        let now = Instant::now();
        next += every;
        if next < now {
            next = now + every;
        }
        inner.private.expire_due(now);
        let time_ms = now_ms();
        let events: Vec<_> = flows
            .iter_mut()
            .flat_map(|f| f.step(&inner.info, time_ms))
            .map(Arc::new)
            .collect();
        inner.private.publish(&events);
    }
}
