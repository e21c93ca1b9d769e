//! wsfeed: a low-latency, self-healing crypto market-data feed engine.
//!
//! One OS thread per exchange connection (or one shared driver thread) runs a synchronous
//! WebSocket loop (tungstenite over rustls, sockets through socket2 and mio) with its reconnect
//! state inline; parsed ticks and feed-health events go over bounded crossbeam channels to one
//! strategy thread, or straight into the strategy on the driver thread (`strategy = "inline"`).
//! See `docs/ARCHITECTURE.md` for the design and `README.md` for use.
//!
//! # Embedding it in a bot
//!
//! Write a [`Strategy`], load a [`Config`] (a TOML file, see `configs/`), and start an
//! [`Engine`] with both. The engine runs until [`Engine::stop`], which joins every thread and
//! hands back the run's [`summary::Summary`] and your strategy.
//!
//! ```no_run
//! use wsfeed::{Config, Engine, FeedId, Health, Strategy, Tick, TickData};
//!
//! struct Bot {
//!     healthy: bool,
//! }
//!
//! impl Strategy for Bot {
//!     fn on_tick(&mut self, tick: &Tick) {
//!         if let TickData::Quote { bid, ask, .. } = tick.data {
//!             if self.healthy && ask > bid {
//!                 // decide; hand orders to another thread, do no I/O here
//!             }
//!         }
//!     }
//!
//!     fn on_health(&mut self, _feed: FeedId, _at_ns: u64, event: &Health) {
//!         match event {
//!             Health::Disconnected { .. } | Health::Stale { .. } => self.healthy = false,
//!             Health::Recovered { .. } | Health::StreamResumed { .. } => self.healthy = true,
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let config = Config::load("configs/binance-usdm.toml".as_ref())?;
//! let engine = Engine::start(config, Bot { healthy: true })?;
//! // … your bot's own work, until it is time to stop …
//! let (summary, _bot) = engine.stop();
//! println!("{summary}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - Ticks ([`Tick`]) are `Copy` and carry interned ids; [`Universe`] (given to
//!   [`Strategy::on_start`]) names the feeds, streams and symbols behind them.
//! - Health events ([`Health`]) arrive in order with the ticks of the same feed: a strategy that
//!   stands down on `Disconnected` or `Stale` never acts on data from a broken connection.
//! - A [`Config`] can also be built in code: fill a [`config::FileConfig`] and call
//!   [`config::FileConfig::validate`].
//! - The cargo feature `sim` (on by default) adds the exchange simulator (`wsfeed::sim`) and the demo;
//!   a bot builds without them: `wsfeed = { …, default-features = false }`.
//! - `examples/sniper.rs` (one venue, pinned, inline) and `examples/spread.rs` (two venues) are
//!   complete programs.

#![deny(missing_docs)]

pub mod account;
pub mod arb;
pub mod audit;
pub mod auth;
pub mod book;
pub mod capture;
pub mod clock;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod engine;
pub mod feed;
pub mod helper;
pub mod host;
pub mod json;
pub mod metrics;
pub mod nats;
pub mod net;
pub mod ops;
pub mod raw;
pub mod replay;
pub mod report;
pub mod rest;
#[cfg(feature = "sim")]
pub mod sim;
pub mod strategy;
pub mod summary;
pub mod tick;
pub mod venue;

pub use config::Config;
pub use engine::Engine;
pub use strategy::{Strategy, Universe};
pub use tick::{DisconnectReason, FeedId, Health, HealthMsg, SymbolId, Tick, TickData};

/// The README's Rust snippets, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
