//! What the endpoints read.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::metrics::FeedStats;

/// What the endpoints read: every feed's live counters, the strategy's tick latency, the start.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Every feed's counters, by feed id.
    pub stats: Vec<Arc<FeedStats>>,
    /// The strategy's tick latency (venue frame read → `on_tick` returned), ns.
    pub latency: Arc<Mutex<Histogram<u64>>>,
    /// When the engine started.
    pub started: Instant,
    /// The NATS sink's counters, when `[sink.nats]` is set.
    pub nats: Option<Arc<crate::nats::NatsStats>>,
}
