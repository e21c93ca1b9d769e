//! Configuration: TOML → typed structs → a validated [`Config`].
//!
//! Every field has a documented default. Unknown fields, wrong types and impossible values are
//! errors that name the file and the field; nothing starts on a bad config.
//!
//! ```toml
//! [engine]                      # optional
//! strategy = "thread"          # or "inline"
//! channel_capacity = 2048
//! on_full = "drop_oldest"       # or "drop_newest"
//!
//! [reconnect]                   # defaults for every feed
//! initial_delay_ms = 100
//!
//! [[feeds]]
//! name = "usdm"
//! venue = "binance-usdm"
//! streams = ["btcusdt@bookTicker", "btcusdt@markPrice"]
//! reconnect = { max_delay_ms = 2000 }   # per-feed overrides
//! ```
//!
//! | file | owns |
//! | --- | --- |
//! | `file.rs` | the file as written: every table and field, with its default |
//! | `endpoint.rs` | a parsed `ws://`/`wss://` base URL |
//! | `spec.rs` | the validated result: [`Config`], [`FeedSpec`], [`ConfigError`] |
//! | `validate.rs` | from the first to the second, every error naming the field |
//! | `accounts.rs` | `[[accounts]]`: venue, URLs, credentials from the environment, events |
//! | `nats.rs` | `[sink.nats]`, as written and as checked |
//! | `venue_url.rs` | a feed URL and OKX instrument ids checked against the venue's documented forms |

mod accounts;
mod endpoint;
mod file;
mod nats;
mod spec;
mod validate;
mod venue_url;

pub use self::endpoint::Endpoint;
pub use self::file::{
    AccountConfig, ArbitrageConfig, CaptureConfig, DriverConfig, EngineConfig, FeedConfig,
    FileConfig, FullPolicy, Jitter, KeyType, MetricsConfig, ReconnectConfig, ReconnectOverride,
    StrategyPlace, WaitMode,
};
pub use self::nats::{NatsConfig, SinkConfig, MAX_NATS_BUFFER};
pub use self::spec::{AccountSpec, Config, ConfigError, DriverSpec, FeedSpec};
pub use self::validate::{CHANNEL_SLOT_BYTES, MAX_CHANNEL_CAPACITY};

#[cfg(test)]
mod tests;
