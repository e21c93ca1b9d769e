//! A venue the engine does not know, added from Rust: Vest's codec ([`codec::Vest`]) is
//! registered with [`wsfeed::venue::register`], and a config then names `venue = "vest"` like
//! any built-in venue. Every engine feature that needs no venue knowledge comes with it:
//! reconnect with backoff, liveness and silence, health events, capture, gaps, standby,
//! rotation, metrics. It prints each top of book as it changes.
//!
//! ```sh
//! cargo run --release --example vest                                   # examples/vest/vest.toml
//! cargo run --release --example vest -- examples/vest/vest.toml 60     # config, seconds
//! ```
//!
//! `tests/custom_codec.rs` reads Vest's documented messages through this codec and runs it
//! against the embedded simulator.

pub mod codec;
#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use wsfeed::{Engine, Health, Strategy, Tick, TickData, Universe};

/// Prints quotes and health.
#[derive(Debug, Default)]
struct Print {
    symbols: Vec<String>,
}

impl Strategy for Print {
    fn on_start(&mut self, universe: &Universe) {
        self.symbols = universe.symbols.clone();
    }

    fn on_tick(&mut self, tick: &Tick) {
        if let TickData::Quote { bid, ask, .. } = tick.data {
            println!("{} {bid} / {ask}", self.symbols[usize::from(tick.symbol.0)]);
        }
    }

    fn on_health(&mut self, feed: wsfeed::FeedId, _at_ns: u64, event: &Health) {
        println!("feed {feed}: {event:?}");
    }
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Before the config is read: it names the venue.
    if let Err(e) = wsfeed::venue::register(&codec::VEST) {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
    let (config, seconds) = match common::args("examples/vest/vest.toml") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let engine = match Engine::start(config, Print::default()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    common::until_stopped(seconds, || std::thread::sleep(Duration::from_millis(100)));
    engine.stop();
    std::process::ExitCode::SUCCESS
}
