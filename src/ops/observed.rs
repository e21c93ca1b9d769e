//! What the endpoints read.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::metrics::FeedStats;

/// What the endpoints read: every feed's live counters, the strategy's tick latency, the start.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Every feed's counters, by feed id; a reload adds feeds (and retires some).
    pub stats: Arc<RwLock<Vec<Arc<FeedStats>>>>,
    /// The strategy's tick latency (venue frame read → `on_tick` returned), ns.
    pub latency: Arc<Mutex<Histogram<u64>>>,
    /// When the engine started.
    pub started: Instant,
    /// The NATS sink's counters, when `[sink.nats]` is set.
    pub nats: Option<Arc<crate::nats::NatsStats>>,
}

impl Observed {
    /// The feeds running now: every feed's counters but those a reload retired.
    pub fn feeds(&self) -> Vec<Arc<FeedStats>> {
        let all = self
            .stats
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter().filter(|s| !s.is_retired()).cloned().collect()
    }
}
