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
use crate::tick::{FeedId, Health, HealthMsg, Sequenced, SymbolId, Tick, TickData};
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

/// One feed's two channels, merged back into the order the feed produced its messages.
///
/// Correctness rests on one property: the feed sends in program order, so once a message with
/// number `n` is visible on either channel, every message numbered below `n` is visible too (or
/// was a tick dropped by the full-channel policy). Each step therefore tops up one pending
/// message per channel, re-checks health after taking a tick (an older event may have become
/// visible meanwhile), and hands out the lower number.
#[derive(Debug)]
pub struct Lane {
    ticks: Receiver<Sequenced<Tick>>,
    health: Receiver<Sequenced<HealthMsg>>,
    tick: Option<Sequenced<Tick>>,
    event: Option<Sequenced<HealthMsg>>,
    ticks_open: bool,
    health_open: bool,
}

/// The next message of a lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// A tick.
    Tick(Tick),
    /// A health event.
    Health(HealthMsg),
}

fn pull<T>(rx: &Receiver<T>, open: &mut bool) -> Option<T> {
    match rx.try_recv() {
        Ok(m) => Some(m),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => {
            *open = false;
            None
        }
    }
}

impl Lane {
    /// A lane over a feed's tick and health channels.
    pub fn new(ticks: Receiver<Sequenced<Tick>>, health: Receiver<Sequenced<HealthMsg>>) -> Self {
        Lane {
            ticks,
            health,
            tick: None,
            event: None,
            ticks_open: true,
            health_open: true,
        }
    }

    /// True once both channels are closed and drained.
    pub fn finished(&self) -> bool {
        !self.ticks_open && !self.health_open && self.tick.is_none() && self.event.is_none()
    }

    /// The next message in the feed's order, if one is there.
    #[inline]
    pub fn pop(&mut self) -> Option<Next> {
        if self.event.is_none() {
            self.event = pull(&self.health, &mut self.health_open);
        }
        if self.tick.is_none() {
            self.tick = pull(&self.ticks, &mut self.ticks_open);
            if self.tick.is_some() && self.event.is_none() {
                self.event = pull(&self.health, &mut self.health_open);
            }
        }
        let event_first = match (&self.tick, &self.event) {
            (Some(t), Some(e)) => e.seq < t.seq,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => return None,
        };
        if event_first {
            self.event.take().map(|e| Next::Health(e.msg))
        } else {
            self.tick.take().map(|t| Next::Tick(t.msg))
        }
    }

    fn register<'a>(&'a self, sel: &mut Select<'a>) {
        if self.ticks_open {
            sel.recv(&self.ticks);
        }
        if self.health_open {
            sel.recv(&self.health);
        }
    }
}

/// The strategy thread's loop: runs until every feed's channels are closed and drained.
pub fn run<S: Strategy>(
    mut strategy: S,
    universe: &Universe,
    mut lanes: Vec<Lane>,
    wait: WaitMode,
    shutdown: Arc<AtomicBool>,
    latency: Arc<Mutex<Histogram<u64>>>,
) -> S {
    strategy.on_start(universe);
    let mut local = nanos_histogram();
    let mut last_merge = Instant::now();
    let mut handled: u64 = 0;
    while lanes.iter().any(|l| !l.finished()) {
        let mut got = false;
        for lane in &mut lanes {
            // Drain in bursts so one busy feed cannot starve the others.
            for _ in 0..256 {
                match lane.pop() {
                    Some(Next::Tick(t)) => {
                        local.saturating_record(clock::now_ns().saturating_sub(t.recv_ns).max(1));
                        strategy.on_tick(&t);
                    }
                    Some(Next::Health(h)) => strategy.on_health(h.feed, h.at_ns, &h.event),
                    None => break,
                }
                got = true;
                handled += 1;
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
                for lane in &lanes {
                    lane.register(&mut sel);
                }
                // Wakes as soon as any channel has a message or closes; the timeout only
                // bounds how stale the merged latency histogram can get.
                let _ = sel.ready_timeout(MERGE_EVERY);
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
    gap_events: u64,
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
            // A standby carried the feed, or a replacement overlapped: nothing was missed.
            Health::ConnectionLost { .. } | Health::Rotated { .. } => {}
            Health::Gap { .. } => self.gap_events += 1,
            // Book ticks stop while a book is invalid, and resume once it is rebuilt.
            Health::BookInvalid { .. } | Health::BookResynced { .. } => {}
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
            "trades {} | mark prices {} | depth chunks {} | health events {} (missed-update gaps {}) | ticks ignored while standing down {}",
            self.trades,
            self.marks,
            self.depth_chunks,
            self.health_events,
            self.gap_events,
            self.ticks_ignored
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

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded};

    fn tick(n: u64) -> Tick {
        Tick {
            feed: 0,
            stream: 0,
            symbol: SymbolId(0),
            seq: n,
            event_time_ms: 0,
            recv_ns: 0,
            data: TickData::Trade {
                price: 1.0,
                qty: 1.0,
                buyer_is_maker: false,
            },
        }
    }

    fn event(conn: u32) -> HealthMsg {
        HealthMsg {
            feed: 0,
            at_ns: 0,
            event: Health::Connected { conn },
        }
    }

    #[test]
    fn lane_restores_the_feed_order_across_both_channels() {
        let (tt, tr) = bounded(16);
        let (ht, hr) = unbounded();
        // The feed's order: t0 H1 t2 t3 H4 H5 t7 (t6 was dropped on a full channel).
        for (seq, m) in [
            (0, None),
            (1, Some(1)),
            (2, None),
            (3, None),
            (4, Some(4)),
            (5, Some(5)),
            (7, None),
        ] {
            match m {
                Some(c) => ht.send(Sequenced { seq, msg: event(c) }).unwrap(),
                None => tt
                    .send(Sequenced {
                        seq,
                        msg: tick(seq),
                    })
                    .unwrap(),
            }
        }
        drop((tt, ht));
        let mut lane = Lane::new(tr, hr);
        let mut order = vec![];
        while let Some(n) = lane.pop() {
            order.push(match n {
                Next::Tick(t) => format!("t{}", t.seq),
                Next::Health(h) => match h.event {
                    Health::Connected { conn } => format!("H{conn}"),
                    _ => unreachable!(),
                },
            });
        }
        assert_eq!(order, ["t0", "H1", "t2", "t3", "H4", "H5", "t7"]);
        assert!(lane.finished());
    }
}
