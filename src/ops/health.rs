//! Health, from the feeds' live counters: which feeds count, which of them are not fine, and
//! the documents `/healthz` and `/status` answer with.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::observed::Observed;
use crate::metrics::{percentiles, FeedState, FeedStats};

/// The feeds health and the exit status depend on: those marked `required`, or every feed when
/// none is.
pub fn counted(stats: &[Arc<FeedStats>]) -> impl Iterator<Item = &FeedStats> {
    let any_required = stats.iter().any(|s| s.required && !s.is_retired());
    stats
        .iter()
        .map(|s| &**s)
        .filter(move |s| (s.required || !any_required) && !s.is_retired())
}

/// Whether every counted feed has stopped for good (a permanent error, or `give_up_after_ms`
/// without a connection): nothing is left that the process runs for. False without feeds.
pub fn all_failed(stats: &[Arc<FeedStats>]) -> bool {
    let mut any = false;
    for s in counted(stats) {
        any = true;
        if s.state() != FeedState::Failed {
            return false;
        }
    }
    any
}

/// A counted feed that is not streaming fresh data, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Feed name.
    pub feed: String,
    /// Its state.
    pub state: FeedState,
    /// Its streams silent past their limit on a live connection.
    pub stale_streams: u64,
    /// The error that stopped it, when it failed.
    pub failure: Option<String>,
}

/// The counted feeds that are not streaming, or stream with some stream stale. Healthy when
/// empty.
pub fn problems(stats: &[Arc<FeedStats>]) -> Vec<Problem> {
    counted(stats)
        .filter_map(|s| {
            let state = s.state();
            let stale_streams = s.stale_now.load(Relaxed);
            if state == FeedState::Streaming && stale_streams == 0 {
                return None;
            }
            Some(Problem {
                feed: s.name.clone(),
                state,
                stale_streams,
                failure: s.failure.lock().ok().and_then(|f| f.clone()),
            })
        })
        .collect()
}

/// The `/healthz` body for `problems`.
pub fn healthz(problems: &[Problem]) -> Value {
    let not_ok: Vec<Value> = problems
        .iter()
        .map(|p| {
            let mut v = json!({
                "feed": p.feed,
                "state": p.state.name(),
                "stale_streams": p.stale_streams,
            });
            if let Some(f) = &p.failure {
                v["failure"] = json!(f);
            }
            v
        })
        .collect();
    json!({
        "status": if problems.is_empty() { "ok" } else { "unhealthy" },
        "not_ok": not_ok,
    })
}

/// The `/status` body: the status line's content (rate since `since`, each feed's state and
/// connections, reconnects, drops) and the percentiles line's, as JSON.
pub fn status(o: &Observed, since: Option<(Instant, u64)>) -> Value {
    let now = Instant::now();
    let stats = o.feeds();
    let messages: u64 = stats.iter().map(|s| s.messages.load(Relaxed)).sum();
    let (at, before) = since.unwrap_or((o.started, 0));
    let dt = now.duration_since(at).as_secs_f64().max(1e-3);
    let feeds: Vec<Value> = stats
        .iter()
        .map(|s| {
            let slots: Vec<Value> = s.slots[..s.slot_count()]
                .iter()
                .map(|c| {
                    json!({
                        "role": c.role().name(),
                        "conn": c.conn.load(Relaxed),
                        "state": c.state().name(),
                    })
                })
                .collect();
            json!({
                "feed": s.name,
                "venue": s.venue,
                "required": s.required,
                "state": s.state().name(),
                "connections": slots,
                "messages": s.messages.load(Relaxed),
                "reconnects": s.reconnects.load(Relaxed),
                "ticks_dropped": s.dropped.load(Relaxed),
                "stale_streams": s.stale_now.load(Relaxed),
                "never_connected": s.connected.load(Relaxed) == 0,
                "failure": s.failure.lock().ok().and_then(|f| f.clone()),
            })
        })
        .collect();
    let mut reconnect = crate::metrics::micros_histogram();
    for s in &stats {
        if let Ok(h) = s.histograms.lock() {
            if let Some(r) = h.reconnect_us() {
                let _ = reconnect.add(r);
            }
        }
    }
    let latency = o
        .latency
        .lock()
        .map(|h| percentiles(&h, 1))
        .unwrap_or_default();
    json!({
        "uptime_s": now.duration_since(o.started).as_secs_f64(),
        "messages": messages,
        "messages_per_s": (messages.saturating_sub(before)) as f64 / dt,
        "healthy": problems(&stats).is_empty(),
        "feeds": feeds,
        "reconnect": percentiles(&reconnect, 1000),
        "tick_latency": latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(name: &str, required: bool, state: FeedState) -> Arc<FeedStats> {
        let mut s = FeedStats::new(name.into(), "ws://127.0.0.1:1".into());
        s.required = required;
        s.set_state(state);
        Arc::new(s)
    }

    #[test]
    fn healthy_only_while_every_required_feed_streams_fresh() {
        let a = feed("a", true, FeedState::Streaming);
        let b = feed("b", false, FeedState::Backoff);
        let stats = vec![a.clone(), b];
        assert!(problems(&stats).is_empty(), "b is not required");
        a.stale_now.store(1, Relaxed);
        let p = problems(&stats);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].feed.as_str(), p[0].stale_streams), ("a", 1));
        let body = healthz(&p);
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["not_ok"][0]["feed"], "a");
        a.stale_now.store(0, Relaxed);
        a.set_state(FeedState::Backoff);
        assert_eq!(problems(&stats)[0].state, FeedState::Backoff);
        assert_eq!(healthz(&[])["status"], "ok");
    }

    #[test]
    fn failed_when_every_counted_feed_failed() {
        let a = feed("a", true, FeedState::Failed);
        let b = feed("b", false, FeedState::Streaming);
        assert!(
            all_failed(&[a.clone(), b.clone()]),
            "only required feeds count"
        );
        let c = feed("c", true, FeedState::CircuitOpen);
        assert!(!all_failed(&[a.clone(), b, c.clone()]));
        c.set_state(FeedState::Failed);
        assert!(all_failed(&[a, c]));
        // With no feed marked required, every feed counts.
        let x = feed("x", false, FeedState::Failed);
        let y = feed("y", false, FeedState::Streaming);
        assert!(!all_failed(&[x.clone(), y.clone()]));
        y.set_state(FeedState::Failed);
        assert!(all_failed(&[x, y]));
        assert!(!all_failed(&[]));
    }
}
