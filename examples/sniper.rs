//! A sniper on one venue, with its own [`Strategy`], on a pinned core: it watches Binance USD-M
//! BTCUSDT's best quote and trades, and "fires" (here: reports what it would send) when a trade
//! prints through the ask by more than a trigger, but only while it is armed: a fresh quote, and
//! the feed healthy. Any sign that the data cannot be trusted (a lost connection with nothing
//! carrying the feed, a silent stream) disarms it until the feed has recovered; after a gap in
//! the venue's numbering it waits for a fresh quote.
//!
//! The strategy runs inline (configs/sniper.toml): on the driver thread that reads the sockets,
//! pinned to a core and spinning. It does no I/O there: a shot goes over a bounded channel to the
//! main thread, which prints it.
//!
//! ```sh
//! cargo run --release --example sniper                             # configs/sniper.toml
//! cargo run --release --example sniper -- configs/sniper.toml 60   # config, seconds
//! ```

mod common;

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use wsfeed::{Config, Engine, FeedId, Health, Strategy, Tick, TickData};

/// What the sniper would send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shot {
    /// Buy at this ask.
    pub price: f64,
    /// The trade that set it off.
    pub trade_price: f64,
    /// Frame read → decision, ns.
    pub decided_in_ns: u64,
}

/// The strategy.
#[derive(Debug)]
pub struct Sniper {
    /// Fire when a trade prints this far above the ask, in basis points.
    trigger_bps: f64,
    /// A quote older than this is not acted on, ns.
    max_quote_age_ns: u64,
    /// The best ask and when it was read.
    ask: Option<(f64, u64)>,
    /// Feeds whose data cannot be trusted now (by FeedId).
    broken: Vec<bool>,
    shots: Sender<Shot>,
    /// Shots the main thread had no room for.
    lost: u64,
    fired: u64,
}

impl Sniper {
    /// A sniper firing at `trigger_bps`, handing its shots to `shots`.
    pub fn new(trigger_bps: f64, shots: Sender<Shot>) -> Sniper {
        Sniper {
            trigger_bps,
            max_quote_age_ns: 200_000_000,
            ask: None,
            broken: Vec::new(),
            shots,
            lost: 0,
            fired: 0,
        }
    }

    fn armed(&self) -> bool {
        !self.broken.iter().any(|b| *b)
    }
}

impl Strategy for Sniper {
    fn on_start(&mut self, universe: &wsfeed::Universe) {
        self.broken = vec![false; universe.feeds.len()];
    }

    fn on_tick(&mut self, tick: &Tick) {
        match tick.data {
            TickData::Quote { ask, .. } => self.ask = Some((ask, tick.recv_ns)),
            TickData::Trade { price, .. } => {
                let Some((ask, at)) = self.ask else { return };
                let fresh = tick.recv_ns.saturating_sub(at) <= self.max_quote_age_ns;
                if self.armed() && fresh && (price - ask) / ask * 1e4 >= self.trigger_bps {
                    self.fired += 1;
                    let shot = Shot {
                        price: ask,
                        trade_price: price,
                        decided_in_ns: wsfeed::clock::now_ns().saturating_sub(tick.recv_ns),
                    };
                    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                        self.shots.try_send(shot)
                    {
                        self.lost += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_health(&mut self, feed: FeedId, _at_ns: u64, event: &Health) {
        let broken = &mut self.broken[feed as usize];
        match event {
            Health::Disconnected { .. } | Health::Failed { .. } | Health::Stale { .. } => {
                *broken = true;
                self.ask = None;
            }
            // Updates never arrived: wait for a quote from after the hole.
            Health::Gap { .. } => self.ask = None,
            Health::Recovered { .. } | Health::StreamResumed { .. } => *broken = false,
            _ => {}
        }
    }

    fn report(&self) -> String {
        format!(
            "sniper: {} shots ({} not printed: the main thread fell behind)",
            self.fired, self.lost
        )
    }
}

/// Starts the engine of `config` with a sniper; its shots arrive on the receiver.
pub fn start(
    config: Config,
    trigger_bps: f64,
) -> Result<(Engine<Sniper>, Receiver<Shot>), wsfeed::engine::StartError> {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    Ok((Engine::start(config, Sniper::new(trigger_bps, tx))?, rx))
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let (config, seconds) = match common::args("configs/sniper.toml") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (engine, shots) = match start(config, 1.0) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    common::until_stopped(seconds, || {
        if let Ok(s) = shots.recv_timeout(Duration::from_millis(100)) {
            println!(
                "shot: buy at {} (trade at {}), decided {} µs after the frame was read",
                s.price,
                s.trade_price,
                s.decided_in_ns / 1000
            );
        }
    });
    let (summary, sniper) = engine.stop();
    println!("{summary}\n{}", sniper.report());
    std::process::ExitCode::SUCCESS
}
