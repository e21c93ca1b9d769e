//! A two-venue spread watcher: per instrument, the best bid on one venue against the best ask on
//! the other, in basis points before fees, printed at most once a second per instrument. A
//! venue's quotes are dropped the moment its feed says they cannot be trusted (disconnected,
//! stale, failed) and used again once it has recovered, so a spread is never computed from a
//! dead connection's last quote.
//!
//! ```sh
//! cargo run --release --example spread                              # configs/spread.toml
//! cargo run --release --example spread -- configs/spread.toml 60    # config, seconds
//! ```
//!
//! `tests/examples.rs` runs [`start`] against the embedded simulator.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wsfeed::engine::StartError;
use wsfeed::venue::Venue;
use wsfeed::{Config, Engine, FeedId, Health, Strategy, SymbolId, Tick, TickData, Universe};

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The best spread of `symbol` across two venues: buying at `buy_on`'s ask and selling at
    /// `sell_on`'s bid earns `bps` basis points before fees (negative: it costs that much).
    Spread {
        symbol: String,
        buy_on: String,
        sell_on: String,
        bps: f64,
    },
    /// A feed's quotes can no longer be trusted; they are not used until it is `Up`.
    Down { feed: String, why: String },
    /// The feed delivers again.
    Up { feed: String },
}

/// A quote: bid, ask and when it was read (monotonic ns).
#[derive(Clone, Copy, Debug)]
struct Quote {
    bid: f64,
    ask: f64,
    recv_ns: u64,
}

/// The strategy: the latest quote of each feed and instrument, compared across venues.
#[allow(missing_debug_implementations)] // holds the caller's closure
pub struct SpreadWatcher<F> {
    out: F,
    /// Names and venues of the feeds, by [`FeedId`].
    feeds: Vec<(String, Venue)>,
    symbols: Vec<String>,
    quotes: HashMap<(FeedId, SymbolId), Quote>,
    /// Feeds whose quotes are not trusted now.
    down: Vec<bool>,
    /// Quotes older than this are not compared.
    max_age_ns: u64,
}

impl<F: FnMut(Event) + Send + 'static> SpreadWatcher<F> {
    /// A watcher that hands each event to `out`, ignoring quotes older than `max_age`.
    pub fn new(max_age: Duration, out: F) -> Self {
        SpreadWatcher {
            out,
            feeds: Vec::new(),
            symbols: Vec::new(),
            quotes: HashMap::new(),
            down: Vec::new(),
            max_age_ns: max_age.as_nanos() as u64,
        }
    }

    fn set_down(&mut self, feed: FeedId, why: String) {
        let i = feed as usize;
        if !self.down[i] {
            self.down[i] = true;
            self.quotes.retain(|(f, _), _| *f != feed);
            (self.out)(Event::Down {
                feed: self.feeds[i].0.clone(),
                why,
            });
        }
    }

    fn set_up(&mut self, feed: FeedId) {
        let i = feed as usize;
        if self.down[i] {
            self.down[i] = false;
            (self.out)(Event::Up {
                feed: self.feeds[i].0.clone(),
            });
        }
    }
}

impl<F: FnMut(Event) + Send + 'static> Strategy for SpreadWatcher<F> {
    fn on_start(&mut self, universe: &Universe) {
        self.feeds = universe
            .feeds
            .iter()
            .map(|f| (f.name.clone(), f.venue))
            .collect();
        self.symbols = universe.symbols.clone();
        self.down = vec![false; self.feeds.len()];
    }

    fn on_tick(&mut self, tick: &Tick) {
        let TickData::Quote { bid, ask, .. } = tick.data else {
            return;
        };
        if self.down[tick.feed as usize] {
            return;
        }
        let mine = Quote {
            bid,
            ask,
            recv_ns: tick.recv_ns,
        };
        self.quotes.insert((tick.feed, tick.symbol), mine);
        let venue = self.feeds[tick.feed as usize].1;
        // The best of buying here and selling there, or the other way round, over every other
        // venue with a fresh quote of the same instrument.
        let mut best: Option<(FeedId, FeedId, f64)> = None;
        for (&(feed, symbol), other) in &self.quotes {
            if symbol != tick.symbol
                || self.feeds[feed as usize].1 == venue
                || tick.recv_ns.saturating_sub(other.recv_ns) > self.max_age_ns
            {
                continue;
            }
            for (buy, sell, bps) in [
                (tick.feed, feed, (other.bid - mine.ask) / mine.ask * 1e4),
                (feed, tick.feed, (mine.bid - other.ask) / other.ask * 1e4),
            ] {
                if best.is_none_or(|(_, _, b)| bps > b) {
                    best = Some((buy, sell, bps));
                }
            }
        }
        if let Some((buy, sell, bps)) = best {
            (self.out)(Event::Spread {
                symbol: self.symbols[tick.symbol.0 as usize].clone(),
                buy_on: self.feeds[buy as usize].0.clone(),
                sell_on: self.feeds[sell as usize].0.clone(),
                bps,
            });
        }
    }

    fn on_health(&mut self, feed: FeedId, _at_ns: u64, event: &Health) {
        match event {
            Health::Disconnected { reason, .. } => self.set_down(feed, reason.to_string()),
            Health::Failed { reason } => self.set_down(feed, format!("failed: {reason}")),
            Health::Stale { silent_ms, .. } => {
                self.set_down(feed, format!("a stream silent for {silent_ms} ms"))
            }
            Health::Recovered { .. } | Health::StreamResumed { .. } => self.set_up(feed),
            _ => {}
        }
    }
}

/// Starts the engine of `config` with a spread watcher that hands its events to `out`.
pub fn start<F: FnMut(Event) + Send + 'static>(
    config: Config,
    out: F,
) -> Result<Engine<SpreadWatcher<F>>, StartError> {
    Engine::start(config, SpreadWatcher::new(Duration::from_secs(1), out))
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let (config, seconds) = match common::args("configs/spread.toml") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut last_print: HashMap<String, Instant> = HashMap::new();
    let engine = match start(config, move |event| match event {
        Event::Spread {
            symbol,
            buy_on,
            sell_on,
            bps,
        } => {
            let due = last_print
                .get(&symbol)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                println!("{symbol}: buy on {buy_on}, sell on {sell_on}: {bps:+.2} bps before fees");
                last_print.insert(symbol, Instant::now());
            }
        }
        Event::Down { feed, why } => println!("{feed}: quotes not used ({why})"),
        Event::Up { feed } => println!("{feed}: quotes used again"),
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    common::until_stopped(seconds, || std::thread::sleep(Duration::from_millis(100)));
    let (summary, _) = engine.stop();
    println!("{summary}");
    std::process::ExitCode::SUCCESS
}
