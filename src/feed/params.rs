//! What a feed is made of, built by the engine from a validated config.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use rustls::ClientConfig;
use tungstenite::protocol::WebSocketConfig;

use super::limiter::ConnectGate;
use crate::account::AccountParams;
use crate::capture::CaptureMsg;
use crate::config::{Endpoint, ReconnectConfig};
use crate::tick::{FeedId, SymbolId};
use crate::venue::{StreamDef, Venue};

/// Where a slot connects, and the attempt budget of that host.
#[derive(Debug)]
pub struct Target {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The full URL of this connection's route.
    pub url: String,
    /// Attempt budget shared with every feed connecting to the same host.
    pub gate: Arc<ConnectGate>,
}

/// Everything a feed needs.
#[derive(Debug)]
pub struct FeedParams {
    /// Index of this feed.
    pub id: FeedId,
    /// Whether the process needs this feed (see [`crate::config::FeedSpec`]'s `required`).
    pub required: bool,
    /// Name (thread `feed-<name>`).
    pub name: String,
    /// Venue codec.
    pub venue: Venue,
    /// Where to connect: the primary, then the standby when the feed keeps one.
    pub targets: Vec<Target>,
    /// Streams this feed carries.
    pub streams: Vec<StreamDef>,
    /// Interned symbol of each stream.
    pub symbols: Vec<SymbolId>,
    /// Silence limit of each stream.
    pub silence: Vec<Duration>,
    /// Backoff, breaker, liveness and limits.
    pub reconnect: ReconnectConfig,
    /// Replace a connection before it is this old (the venue cuts older ones).
    pub max_connection_age: Option<Duration>,
    /// How long a chained message that skips ids waits for another connection to bring the
    /// skipped ones (only while another connection carries the feed).
    pub reorder_window: Duration,
    /// Socket receive buffer.
    pub recv_buffer: Option<usize>,
    /// WebSocket limits.
    pub ws_config: WebSocketConfig,
    /// TLS client config, when a target is `wss://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// The capture thread's channel, when capture is on.
    pub capture: Option<Sender<CaptureMsg>>,
    /// Binance: base URL of REST depth snapshots, when depth streams keep local books built
    /// from them.
    pub rest_base: Option<String>,
    /// An account's private stream (`None`: a market feed). An account has no streams: its
    /// events go to the strategy as [`crate::account::AccountEvent`]s.
    pub account: Option<Arc<AccountParams>>,
}
