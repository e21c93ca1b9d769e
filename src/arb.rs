//! Cross-venue arbitrage monitor: for each instrument, the best bid on one venue against the
//! best ask on another, net of both venues' taker fees. It reports opportunities (edge, size,
//! how long they lasted) and stands a feed down on any sign that its prices cannot be trusted.
//!
//! Prices come from quote ticks: `bookTicker` / `orderbook.1` / `bbo-tbt`, and the top of a
//! local order book (sent only while the book is valid). A feed stands down on `Disconnected`,
//! `CircuitOpen`, `Failed`, a stale stream, or an invalid book, and is used again after
//! `Recovered`/`Connected`, `StreamResumed` and `BookResynced`. Standing down drops the feed's
//! quotes and ends its open opportunities.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::strategy::{Strategy, Universe};
use crate::tick::{FeedId, Health, SymbolId, Tick, TickData};
use crate::venue::Venue;

/// Fees and thresholds.
#[derive(Clone, Debug)]
pub struct ArbConfig {
    /// Taker fee per venue, basis points.
    pub taker_fee_bps: HashMap<Venue, f64>,
    /// Smallest edge net of fees that counts, basis points.
    pub min_edge_bps: f64,
    /// A quote older than this is not compared, ns.
    pub max_quote_age_ns: u64,
}

impl ArbConfig {
    /// The defaults overridden by the config's `[arbitrage]`; `defined` are the venues the
    /// config defines (whose fees it may set).
    pub fn from_config(c: &crate::config::ArbitrageConfig, defined: &[Venue]) -> ArbConfig {
        let mut cfg = ArbConfig::default();
        for (name, fee) in &c.taker_fee_bps {
            if let Some(v) = crate::venue::defined::find(defined, name) {
                cfg.taker_fee_bps.insert(v, *fee);
            }
        }
        cfg.min_edge_bps = c.min_edge_bps;
        cfg.max_quote_age_ns = c.max_quote_age_ms.saturating_mul(1_000_000);
        cfg
    }
}

impl Default for ArbConfig {
    fn default() -> Self {
        // Base-tier taker fees as published: Binance spot 0.1 %, USD-M 0.05 %, Bybit spot
        // 0.1 %, linear 0.055 %, OKX 0.05 % (swap; spot is 0.1 %).
        let taker_fee_bps = HashMap::from([
            (Venue::BinanceSpot, 10.0),
            (Venue::BinanceUsdm, 5.0),
            (Venue::BybitSpot, 10.0),
            (Venue::BybitLinear, 5.5),
            (Venue::Okx, 5.0),
        ]);
        ArbConfig {
            taker_fee_bps,
            min_edge_bps: 0.0,
            max_quote_age_ns: 1_000_000_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Quote {
    bid: f64,
    bid_qty: f64,
    ask: f64,
    ask_qty: f64,
    at_ns: u64,
}

/// An opportunity being watched: buy on `buy`, sell on `sell`.
#[derive(Clone, Copy, Debug)]
struct Open {
    since_ns: u64,
    best_edge_bps: f64,
    best_size: f64,
}

/// Totals of one (instrument, buy feed, sell feed).
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    count: u64,
    ended_by_stand_down: u64,
    total_ns: u64,
    max_ns: u64,
    best_edge_bps: f64,
    sum_edge_bps: f64,
    total_size: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct FeedState {
    /// Prices may be used.
    up: bool,
    stale_streams: u32,
    invalid_books: u32,
    failed: bool,
    stand_downs: u64,
    down_since_ns: Option<u64>,
    down_ns: u64,
}

impl FeedState {
    fn usable(&self) -> bool {
        self.up && self.stale_streams == 0 && self.invalid_books == 0 && !self.failed
    }
}

/// The monitor.
#[derive(Debug, Default)]
pub struct ArbMonitor {
    cfg: ArbConfig,
    universe: Universe,
    feeds: Vec<FeedState>,
    quotes: HashMap<(SymbolId, FeedId), Quote>,
    open: HashMap<(SymbolId, FeedId, FeedId), Open>,
    totals: HashMap<(SymbolId, FeedId, FeedId), Totals>,
    quotes_seen: u64,
    quotes_ignored: u64,
}

impl ArbMonitor {
    /// A monitor with these fees.
    pub fn new(cfg: ArbConfig) -> Self {
        ArbMonitor {
            cfg,
            ..ArbMonitor::default()
        }
    }

    fn fee(&self, feed: FeedId) -> f64 {
        let venue = self.universe.feeds[feed as usize].venue;
        self.cfg.taker_fee_bps.get(&venue).copied().unwrap_or(10.0)
    }

    /// Compares the new quote of `feed` with every other usable feed's quote of the symbol.
    fn compare(&mut self, symbol: SymbolId, feed: FeedId, q: Quote) {
        let others: Vec<(FeedId, Quote)> = self
            .quotes
            .iter()
            .filter(|((s, f), o)| {
                *s == symbol
                    && *f != feed
                    && q.at_ns.saturating_sub(o.at_ns) <= self.cfg.max_quote_age_ns
            })
            .map(|((_, f), o)| (*f, *o))
            .collect();
        for (other, o) in others {
            // Sell here at our bid, buy there at its ask; and the other way round.
            for (buy, sell, ask, ask_qty, bid, bid_qty) in [
                (other, feed, o.ask, o.ask_qty, q.bid, q.bid_qty),
                (feed, other, q.ask, q.ask_qty, o.bid, o.bid_qty),
            ] {
                let key = (symbol, buy, sell);
                let edge = (bid - ask) / ask * 1e4 - self.fee(buy) - self.fee(sell);
                if edge > self.cfg.min_edge_bps && ask > 0.0 {
                    let size = ask_qty.min(bid_qty);
                    let e = self.open.entry(key).or_insert(Open {
                        since_ns: q.at_ns,
                        best_edge_bps: edge,
                        best_size: size,
                    });
                    e.best_edge_bps = e.best_edge_bps.max(edge);
                    e.best_size = e.best_size.max(size);
                } else {
                    self.close(key, q.at_ns, false);
                }
            }
        }
    }

    fn close(&mut self, key: (SymbolId, FeedId, FeedId), at_ns: u64, stand_down: bool) {
        let Some(open) = self.open.remove(&key) else {
            return;
        };
        let lasted = at_ns.saturating_sub(open.since_ns);
        let t = self.totals.entry(key).or_default();
        t.count += 1;
        t.ended_by_stand_down += u64::from(stand_down);
        t.total_ns += lasted;
        t.max_ns = t.max_ns.max(lasted);
        t.best_edge_bps = t.best_edge_bps.max(open.best_edge_bps);
        t.sum_edge_bps += open.best_edge_bps;
        t.total_size += open.best_size;
    }

    /// The feed's prices can no longer be trusted: forget them, end its opportunities.
    fn stand_down(&mut self, feed: FeedId, at_ns: u64) {
        self.quotes.retain(|(_, f), _| *f != feed);
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|(_, b, s)| *b == feed || *s == feed)
            .copied()
            .collect();
        for k in keys {
            self.close(k, at_ns, true);
        }
    }
}

impl Strategy for ArbMonitor {
    fn on_start(&mut self, universe: &Universe) {
        self.universe = universe.clone();
        self.feeds = vec![FeedState::default(); universe.feeds.len()];
    }

    fn on_universe(&mut self, universe: &Universe) {
        self.universe = universe.clone();
        self.feeds
            .resize(universe.feeds.len(), FeedState::default());
    }

    fn on_tick(&mut self, tick: &Tick) {
        let TickData::Quote {
            bid,
            bid_qty,
            ask,
            ask_qty,
        } = tick.data
        else {
            return;
        };
        self.quotes_seen += 1;
        let priced = bid > 0.0 && ask > 0.0;
        if !(priced && self.feeds[tick.feed as usize].usable()) {
            self.quotes_ignored += 1;
            return;
        }
        let q = Quote {
            bid,
            bid_qty,
            ask,
            ask_qty,
            at_ns: tick.recv_ns,
        };
        self.quotes.insert((tick.symbol, tick.feed), q);
        self.compare(tick.symbol, tick.feed, q);
    }

    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health) {
        let Some(was) = self.feeds.get(feed as usize).map(FeedState::usable) else {
            return;
        };
        let h = &mut self.feeds[feed as usize];
        match *event {
            Health::Connected { .. } | Health::Recovered { .. } => h.up = true,
            Health::Disconnected { .. } | Health::CircuitOpen { .. } => {
                h.up = false;
                // The reconnect brings fresh snapshots and streams.
                h.stale_streams = 0;
                h.invalid_books = 0;
            }
            Health::Failed { .. } => h.failed = true,
            Health::Stale { .. } => h.stale_streams += 1,
            Health::StreamResumed { .. } => h.stale_streams = h.stale_streams.saturating_sub(1),
            Health::BookInvalid { .. } => h.invalid_books += 1,
            Health::BookResynced { .. } => h.invalid_books = h.invalid_books.saturating_sub(1),
            Health::ConnectionLost { .. }
            | Health::Rotated { .. }
            | Health::Gap { .. }
            | Health::SubscriptionRejected { .. } => {}
        }
        let now = h.usable();
        if was && !now {
            h.stand_downs += 1;
            h.down_since_ns = Some(at_ns);
            self.stand_down(feed, at_ns);
        } else if !was && now {
            if let Some(since) = h.down_since_ns.take() {
                h.down_ns += at_ns.saturating_sub(since);
            }
        }
    }

    fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "arbitrage: best bid vs best ask across venues, net of taker fees (bps: {})",
            self.universe
                .feeds
                .iter()
                .map(|f| f.venue)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|v| format!(
                    "{v} {}",
                    self.cfg.taker_fee_bps.get(&v).copied().unwrap_or(10.0)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut keys: Vec<_> = self.totals.keys().copied().collect();
        keys.sort();
        if keys.is_empty() {
            let _ = writeln!(out, "  no opportunities");
        }
        for key in keys {
            let t = self.totals[&key];
            let (symbol, buy, sell) = key;
            let _ = writeln!(
                out,
                "  {:<9} buy {:<14} sell {:<14} {:>5} opportunities | edge mean {:.2} max {:.2} bps | lasted mean {:.1} ms max {:.1} ms | size {:.3} | {} ended by a stand-down",
                self.universe.symbol(symbol),
                self.universe.feed(buy),
                self.universe.feed(sell),
                t.count,
                t.sum_edge_bps / t.count as f64,
                t.best_edge_bps,
                t.total_ns as f64 / t.count as f64 / 1e6,
                t.max_ns as f64 / 1e6,
                t.total_size,
                t.ended_by_stand_down,
            );
        }
        // Market feeds only: an account's private stream carries no quotes.
        let market = |i: usize| !self.universe.feeds[i].streams.is_empty();
        for (i, h) in self.feeds.iter().enumerate().filter(|(i, _)| market(*i)) {
            let _ = writeln!(
                out,
                "  {:<18} stood down {} times, {:.2} s in all{}",
                self.universe.feed(i as FeedId),
                h.stand_downs,
                h.down_ns as f64 / 1e9,
                if h.failed { " (failed)" } else { "" }
            );
        }
        let _ = write!(
            out,
            "  quotes {} | ignored while standing down {} | still open at the end {}",
            self.quotes_seen,
            self.quotes_ignored,
            self.open.len()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::FeedInfo;

    fn universe() -> Universe {
        let feed = |name: &str, venue| FeedInfo {
            name: name.into(),
            venue,
            url: String::new(),
            streams: Vec::new(),
        };
        Universe {
            feeds: vec![feed("a", Venue::Okx), feed("b", Venue::BybitLinear)],
            symbols: vec!["BTCUSDT".into()],
        }
    }

    fn quote(feed: FeedId, bid: f64, ask: f64, at_ms: u64) -> Tick {
        Tick {
            feed,
            stream: 0,
            symbol: SymbolId(0),
            seq: 0,
            event_time_ms: 0,
            recv_ns: at_ms * 1_000_000,
            data: TickData::Quote {
                bid,
                bid_qty: 2.0,
                ask,
                ask_qty: 1.0,
            },
        }
    }

    #[test]
    fn an_opportunity_is_net_of_fees_and_timed() {
        let mut m = ArbMonitor::new(ArbConfig::default());
        m.on_start(&universe());
        m.on_health(0, 0, &Health::Connected { conn: 1 });
        m.on_health(1, 0, &Health::Connected { conn: 1 });
        m.on_tick(&quote(0, 100.00, 100.01, 1));
        // 5 bps gross across: less than 5 + 5.5 bps of fees.
        m.on_tick(&quote(1, 100.06, 100.07, 2));
        assert!(m.open.is_empty());
        // 20 bps gross: an opportunity (buy on a at 100.01, sell on b at 100.21).
        m.on_tick(&quote(1, 100.21, 100.22, 3));
        assert_eq!(m.open.len(), 1);
        m.on_tick(&quote(1, 100.02, 100.03, 10));
        let t = m.totals[&(SymbolId(0), 0, 1)];
        assert_eq!(t.count, 1);
        assert_eq!(t.max_ns, 7_000_000, "lasted from 3 ms to 10 ms");
        assert!((t.best_edge_bps - (20.0 / 100.01 * 100.0 - 10.5)).abs() < 0.05);
        assert_eq!(t.total_size, 1.0);
    }

    #[test]
    fn a_broken_feed_stands_down_and_ends_its_opportunities() {
        let mut m = ArbMonitor::new(ArbConfig::default());
        m.on_start(&universe());
        m.on_health(0, 0, &Health::Connected { conn: 1 });
        m.on_health(1, 0, &Health::Connected { conn: 1 });
        m.on_tick(&quote(0, 100.00, 100.01, 1));
        m.on_tick(&quote(1, 100.30, 100.31, 2));
        assert_eq!(m.open.len(), 1);
        m.on_health(
            1,
            5_000_000,
            &Health::BookInvalid {
                stream: 0,
                fault: crate::tick::BookFault::Gap,
            },
        );
        assert!(m.open.is_empty());
        assert_eq!(m.totals[&(SymbolId(0), 0, 1)].ended_by_stand_down, 1);
        // Its quotes are not used while it stands down.
        m.on_tick(&quote(1, 100.30, 100.31, 6));
        assert!(m.open.is_empty());
        m.on_health(1, 9_000_000, &Health::BookResynced { stream: 0 });
        m.on_tick(&quote(1, 100.30, 100.31, 10));
        assert_eq!(m.open.len(), 1);
        assert_eq!(m.feeds[1].stand_downs, 1);
        assert_eq!(m.feeds[1].down_ns, 4_000_000);
    }
}
