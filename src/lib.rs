//! wsfeed: a low-latency, self-healing market-data feed engine.
pub mod sim;
