//! The strategy side: the [`Strategy`] trait, the strategy thread's loop, and the demo strategy.
//!
//! The strategy thread drains every feed's channel in order, so a feed's health events arrive
//! interleaved with its ticks exactly as the feed saw them: a strategy that stands down on
//! `Disconnected`/`Stale` never acts on data from a connection it was told is broken.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, TryRecvError};
use hdrhistogram::Histogram;

use crate::clock;
use crate::config::WaitMode;
use crate::metrics::nanos_histogram;
use crate::tick::{FeedId, FeedMsg, Health, SymbolId, Tick, TickData};
use crate::venue::{StreamDef, Venue};

/// What the engine runs: names of feeds, streams and symbols behind the ids in ticks.
#[derive(Clone, Debug, Default)]
pub struct Universe {
    /// Indexed by [`FeedId`].
    pub feeds: Vec<FeedInfo>,
    /// Indexed by [`SymbolId`].
    pub symbols: Vec<String>,
}

/// One feed (one connection's worth of streams).
#[derive(Clone, Debug)]
pub struct FeedInfo {
    /// Name.
    pub name: String,
    /// Venue.
    pub venue: Venue,
    /// URL.
    pub url: String,
    /// Streams, indexed by `Tick::stream`.
    pub streams: Vec<StreamDef>,
}

impl Universe {
    /// The symbol's name.
    pub fn symbol(&self, id: SymbolId) -> &str {
        self.symbols.get(id.0 as usize).map_or("?", String::as_str)
    }
    /// The feed's name.
    pub fn feed(&self, id: FeedId) -> &str {
        self.feeds.get(id as usize).map_or("?", |f| f.name.as_str())
    }
}

/// A trading strategy, run on the strategy thread.
pub trait Strategy: Send + 'static {
    /// Called once before any tick.
    fn on_start(&mut self, _universe: &Universe) {}
    /// A market-data update.
    fn on_tick(&mut self, tick: &Tick);
    /// A feed-health event of `feed`, at monotonic `at_ns`.
    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health);
    /// Lines for the end-of-run summary.
    fn report(&self) -> String {
        String::new()
    }
}

/// How often the thread-local latency histogram is merged into the shared one.
const MERGE_EVERY: Duration = Duration::from_millis(250);

/// The strategy thread's loop: runs until every feed's channel is closed and drained.
pub fn run<S: Strategy>(
    mut strategy: S,
    universe: &Universe,
    receivers: Vec<Receiver<FeedMsg>>,
    wait: WaitMode,
    shutdown: Arc<AtomicBool>,
    latency: Arc<Mutex<Histogram<u64>>>,
) -> S {
    strategy.on_start(universe);
    let mut local = nanos_histogram();
    let mut last_merge = Instant::now();
    let mut open: Vec<bool> = vec![true; receivers.len()];
    let mut handled: u64 = 0;
    let dispatch = |strategy: &mut S, local: &mut Histogram<u64>, msg: FeedMsg| match msg {
        FeedMsg::Tick(t) => {
            local.saturating_record(clock::now_ns().saturating_sub(t.recv_ns).max(1));
            strategy.on_tick(&t);
        }
        FeedMsg::Health { feed, at_ns, event } => strategy.on_health(feed, at_ns, &event),
    };
    while open.iter().any(|o| *o) {
        let mut got = false;
        for (i, rx) in receivers.iter().enumerate() {
            if !open[i] {
                continue;
            }
            // Drain in bursts so one busy feed cannot starve the others.
            for _ in 0..256 {
                match rx.try_recv() {
                    Ok(msg) => {
                        got = true;
                        handled += 1;
                        dispatch(&mut strategy, &mut local, msg);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open[i] = false;
                        break;
                    }
                }
            }
        }
        if (!got || handled % 4096 == 0) && last_merge.elapsed() >= MERGE_EVERY {
            merge(&latency, &mut local);
            last_merge = Instant::now();
        }
        if got {
            continue;
        }
        match wait {
            WaitMode::Spin => {
                if shutdown.load(Ordering::Relaxed) {
                    // Feeds are stopping; keep draining without burning the core.
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            WaitMode::Block => {
                let mut sel = Select::new();
                let mut any = false;
                for (i, rx) in receivers.iter().enumerate() {
                    if open[i] {
                        sel.recv(rx);
                        any = true;
                    }
                }
                if any {
                    // Wakes as soon as any channel has a message or closes; the timeout
                    // only bounds how stale the merged latency histogram can get.
                    let _ = sel.ready_timeout(MERGE_EVERY);
                }
            }
        }
    }
    merge(&latency, &mut local);
    strategy
}

fn merge(shared: &Mutex<Histogram<u64>>, local: &mut Histogram<u64>) {
    if local.is_empty() {
        return;
    }
    if let Ok(mut h) = shared.lock() {
        let _ = h.add(&*local);
    }
    local.reset();
}

// ----- demo strategy -------------------------------------------------------------------------

/// Taker fee assumed on each leg when judging a cross, in basis points.
const DEMO_TAKER_FEE_BPS: f64 = 2.0;
/// Quotes older than this are not compared.
const QUOTE_MAX_AGE_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, Default)]
struct Quote {
    bid: f64,
    ask: f64,
    at_ns: u64,
}

#[derive(Clone, Debug, Default)]
struct FeedHealth {
    up: bool,
    failed: bool,
    stale_streams: u32,
    down_since_ns: Option<u64>,
    down_total_ns: u64,
}

/// Demo strategy: watches every symbol's spread on each feed and, where a symbol trades on
/// several feeds, whether one feed's bid crosses another's ask by more than two taker fees.
/// It stands down (compares nothing) on a feed that is disconnected, stale or failed.
#[derive(Debug, Default)]
pub struct SpreadMonitor {
    universe: Universe,
    /// (feed, symbol) → latest quote.
    quotes: HashMap<(FeedId, SymbolId), Quote>,
    health: Vec<FeedHealth>,
    /// Per symbol: sum of spreads in bps and count.
    spread_bps: HashMap<SymbolId, (f64, u64)>,
    crosses: u64,
    best_edge_bps: f64,
    trades: u64,
    marks: u64,
    depth_chunks: u64,
    ticks_ignored: u64,
    health_events: u64,
}

impl SpreadMonitor {
    /// A fresh monitor.
    pub fn new() -> Self {
        SpreadMonitor::default()
    }

    fn usable(&self, feed: FeedId) -> bool {
        self.health
            .get(feed as usize)
            .is_some_and(|h| h.up && !h.failed && h.stale_streams == 0)
    }

    fn check_crosses(&mut self, feed: FeedId, symbol: SymbolId, q: Quote) {
        for (&(other, sym), o) in &self.quotes {
            if sym != symbol || other == feed || q.at_ns.saturating_sub(o.at_ns) > QUOTE_MAX_AGE_NS
            {
                continue;
            }
            if !self
                .health
                .get(other as usize)
                .is_some_and(|h| h.up && h.stale_streams == 0)
            {
                continue;
            }
            for (bid, ask) in [(q.bid, o.ask), (o.bid, q.ask)] {
                let edge_bps = (bid - ask) / ask * 1e4 - 2.0 * DEMO_TAKER_FEE_BPS;
                if edge_bps > 0.0 {
                    self.crosses += 1;
                    self.best_edge_bps = self.best_edge_bps.max(edge_bps);
                }
            }
        }
    }
}

impl Strategy for SpreadMonitor {
    fn on_start(&mut self, universe: &Universe) {
        self.universe = universe.clone();
        self.health = vec![FeedHealth::default(); universe.feeds.len()];
    }

    fn on_tick(&mut self, tick: &Tick) {
        if !self.usable(tick.feed) {
            self.ticks_ignored += 1;
            return;
        }
        match tick.data {
            TickData::Quote { bid, ask, .. } if bid > 0.0 && ask > 0.0 => {
                let q = Quote {
                    bid,
                    ask,
                    at_ns: tick.recv_ns,
                };
                let e = self.spread_bps.entry(tick.symbol).or_default();
                e.0 += (ask - bid) / ((ask + bid) / 2.0) * 1e4;
                e.1 += 1;
                self.quotes.insert((tick.feed, tick.symbol), q);
                self.check_crosses(tick.feed, tick.symbol, q);
            }
            TickData::Quote { .. } => {}
            TickData::Trade { .. } => self.trades += 1,
            TickData::Mark { .. } => self.marks += 1,
            TickData::Depth(_) => self.depth_chunks += 1,
        }
    }

    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health) {
        self.health_events += 1;
        let Some(h) = self.health.get_mut(feed as usize) else {
            return;
        };
        match *event {
            Health::Connected { .. } | Health::Recovered { .. } => {
                h.up = true;
                h.stale_streams = 0;
                if let Some(since) = h.down_since_ns.take() {
                    h.down_total_ns += at_ns.saturating_sub(since);
                }
            }
            Health::Disconnected { .. } | Health::CircuitOpen { .. } => {
                h.up = false;
                h.down_since_ns.get_or_insert(at_ns);
                // Quotes from the lost connection must not be compared again.
                self.quotes.retain(|(f, _), _| *f != feed);
            }
            Health::Failed { .. } => {
                h.up = false;
                h.failed = true;
                h.down_since_ns.get_or_insert(at_ns);
                self.quotes.retain(|(f, _), _| *f != feed);
            }
            Health::Stale { .. } => h.stale_streams += 1,
            Health::StreamResumed { .. } => h.stale_streams = h.stale_streams.saturating_sub(1),
            Health::SubscriptionRejected { .. } => {}
        }
    }

    fn report(&self) -> String {
        let mut out = String::new();
        let mut symbols: Vec<_> = self.spread_bps.iter().collect();
        symbols.sort_by_key(|(s, _)| **s);
        for (sym, (sum, n)) in symbols {
            let _ = writeln!(
                out,
                "{:<10} mean spread {:.2} bps over {} quotes",
                self.universe.symbol(*sym),
                sum / *n as f64,
                n
            );
        }
        let _ = writeln!(
            out,
            "cross-feed crosses net of 2×{DEMO_TAKER_FEE_BPS} bps fees: {} (best edge {:.2} bps)",
            self.crosses, self.best_edge_bps
        );
        let _ = writeln!(
            out,
            "trades {} | mark prices {} | depth chunks {} | health events {} | ticks ignored while standing down {}",
            self.trades, self.marks, self.depth_chunks, self.health_events, self.ticks_ignored
        );
        for (i, h) in self.health.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<18} stood down {:.2}s{}",
                self.universe.feed(i as FeedId),
                h.down_total_ns as f64 / 1e9,
                if h.failed { " (failed)" } else { "" }
            );
        }
        out.trim_end().to_string()
    }
}
