//! wsfeed: a low-latency, self-healing crypto market-data feed engine.
//!
//! One OS thread per exchange connection runs a synchronous WebSocket loop (tungstenite over
//! rustls, sockets through socket2 and mio) with its reconnect state inline; parsed ticks and
//! feed-health events go over bounded crossbeam channels to one strategy thread. See
//! `docs/ARCHITECTURE.md` for the design and `README.md` for use.

#![warn(missing_docs)]

pub mod arb;
pub mod audit;
pub mod book;
pub mod capture;
pub mod clock;
pub mod config;
pub mod demo;
pub mod engine;
pub mod feed;
pub mod helper;
pub mod json;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod rest;
pub mod sim;
pub mod strategy;
pub mod summary;
pub mod tick;
pub mod venue;

pub use config::Config;
pub use engine::Engine;
pub use strategy::{Strategy, Universe};
pub use tick::{DisconnectReason, FeedId, Health, HealthMsg, SymbolId, Tick, TickData};
