//! A validated configuration: what [`crate::engine::Engine::start`] takes, and the error a
//! bad file gets.

use std::fmt;
use std::path::PathBuf;

use super::endpoint::Endpoint;
use super::file::{
    ArbitrageConfig, CaptureConfig, EngineConfig, MetricsConfig, ReconnectConfig, WaitMode,
};
use crate::venue::{StreamDef, Venue};

/// A config that failed to load or validate.
#[derive(Debug)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub file: Option<PathBuf>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "config error in {}: {}", file.display(), self.message),
            None => write!(f, "config error: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A validated account.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSpec {
    /// Where its private WebSocket is (without the private path).
    pub endpoint: Endpoint,
    /// Extra trusted CA certificates, PEM.
    pub extra_ca_pem: Option<String>,
    /// Reconnect settings.
    pub reconnect: ReconnectConfig,
    /// Whether the process needs it (health, exit status).
    pub required: bool,
    /// The `[[drivers]]` entry that runs it, if any.
    pub driver: Option<String>,
    /// Name, venue, protocol, credentials, events, listen-key settings.
    pub params: std::sync::Arc<crate::account::AccountParams>,
}

/// A validated feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedSpec {
    /// Unique name.
    pub name: String,
    /// Venue.
    pub venue: Venue,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Extra trusted CA certificates, PEM, from `ca_file` or given in-process.
    pub extra_ca_pem: Option<String>,
    /// Streams, validated and routed.
    pub streams: Vec<StreamDef>,
    /// Silence limit per stream, ms (same order as `streams`).
    pub silence_ms: Vec<u64>,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Wait mode.
    pub wait: WaitMode,
    /// Socket receive buffer.
    pub recv_buffer_bytes: Option<usize>,
    /// WebSocket message limit.
    pub max_message_bytes: usize,
    /// WebSocket frame limit.
    pub max_frame_bytes: usize,
    /// Effective reconnect settings.
    pub reconnect: ReconnectConfig,
    /// Where the hot standby connects, when the feed keeps one.
    pub standby: Option<Endpoint>,
    /// See [`crate::config::FeedConfig::reorder_window_ms`].
    pub reorder_window_ms: u64,
    /// Base URL of REST depth snapshots (Binance).
    pub rest_base: Option<String>,
    /// The driver whose thread runs it; `None`: a thread of its own per connection route.
    pub driver: Option<String>,
    /// Health and the exit status depend on it.
    pub required: bool,
}

/// A validated driver: a thread that runs the connections of the feeds that name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverSpec {
    /// Unique name.
    pub name: String,
    /// Core to pin the thread to.
    pub core: Option<usize>,
    /// Block or spin.
    pub wait: WaitMode,
}

/// A validated configuration, ready for [`crate::engine::Engine::start`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `[engine]`.
    pub engine: EngineConfig,
    /// The feeds.
    pub feeds: Vec<FeedSpec>,
    /// The shared drivers (and, with `strategy = "inline"`, the one every feed is on).
    pub drivers: Vec<DriverSpec>,
    /// `[capture]`.
    pub capture: Option<CaptureConfig>,
    /// `[metrics]`.
    pub metrics: Option<MetricsConfig>,
    /// `[arbitrage]`.
    pub arbitrage: ArbitrageConfig,
    /// `[[accounts]]`.
    pub accounts: Vec<AccountSpec>,
    /// `[sink.nats]`.
    pub nats: Option<super::nats::NatsConfig>,
    /// The whole configuration with every default filled in, for the session manifest.
    pub effective: serde_json::Value,
    /// The venues `[[venues]]` defines.
    pub venues: Vec<Venue>,
}
