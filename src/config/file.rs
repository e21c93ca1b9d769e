//! The configuration file as written: every table and field, with its documented default.
//! Parsing fills in the defaults; [`super::validate`] checks the values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a thread waits for work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitMode {
    /// Sleep in the kernel until readiness or the next deadline (poll with a timeout).
    #[default]
    Block,
    /// Busy-poll: lowest latency, burns a core.
    Spin,
}

/// What a feed does when the strategy's channel is full. Every drop is counted either way; the
/// feed thread never blocks on the strategy. Health events are never dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Drop the oldest queued tick to make room: the strategy keeps the freshest data.
    #[default]
    DropOldest,
    /// Drop the new tick.
    DropNewest,
}

/// Randomisation of backoff delays, so many clients do not retry in lock-step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// The computed delay exactly.
    None,
    /// Uniform in `[0, delay]`.
    Full,
    /// Uniform in `[delay/2, delay]`.
    #[default]
    Equal,
}

/// Where the strategy runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyPlace {
    /// On a thread of its own, fed by every feed's channels.
    #[default]
    Thread,
    /// On the thread that reads the sockets: every feed on one driver, the strategy called in
    /// place with each tick and health event.
    Inline,
}

/// `[[drivers]]`: a thread that runs the connections of several feeds on one poll. Feeds name
/// it with `driver = "<name>"`; a feed that names none runs on a thread of its own (one per
/// connection route).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Unique name (thread `feed-<name>`).
    pub name: String,
    /// Core to pin the thread to. Default: not pinned.
    #[serde(default)]
    pub core: Option<usize>,
    /// `block` (default) or `spin` (the thread busy-polls its sockets).
    #[serde(default)]
    pub wait: WaitMode,
}

/// `[engine]`: process-wide settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the strategy runs: `thread` (its own thread, fed by every feed's channels) or
    /// `inline` (called on the thread that reads the sockets: no channel and no hop; every feed
    /// must then be on one driver). Default `thread`.
    pub strategy: StrategyPlace,
    /// Capacity of each feed's channel to the strategy, in messages (`strategy = "thread"`).
    /// Default 2048: 20 ms of a feed delivering 100 000 ticks a second while the strategy is
    /// busy (with `drop_oldest` it then keeps the freshest), and about 0.5 MiB per feed (a slot
    /// takes ~232 bytes, allocated up front). Raise it for a strategy that pauses longer. At
    /// most [`crate::config::MAX_CHANNEL_CAPACITY`] (1 048 576 slots, ~232 MiB per feed).
    pub channel_capacity: usize,
    /// Full-channel policy. Default `drop_oldest`.
    pub on_full: FullPolicy,
    /// Core to pin the strategy thread to. Default: not pinned.
    pub strategy_core: Option<usize>,
    /// How the strategy thread waits for ticks: `spin` (lowest latency, a core to itself) or
    /// `block` (for laptops and shared machines). Default: `spin` when `strategy_core` pins it,
    /// `block` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy_wait: Option<WaitMode>,
    /// Interval of the status line printed by `run` and `demo`, ms; 0 turns it off. Default
    /// 1000.
    pub status_interval_ms: u64,
    /// Connection attempts allowed per venue host in any `connect_window_ms`, shared by all
    /// feeds of that host. Default: the venue's (Binance 300 per 5 minutes, Bybit 500 per 5
    /// minutes, OKX 3 per second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_limit: Option<u32>,
    /// The window of `connect_limit`, ms. Default: the venue's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_window_ms: Option<u64>,
}

impl EngineConfig {
    /// How the strategy thread waits, the default resolved.
    pub fn strategy_wait(&self) -> WaitMode {
        match (self.strategy_wait, self.strategy_core) {
            (Some(w), _) => w,
            (None, Some(_)) => WaitMode::Spin,
            (None, None) => WaitMode::Block,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            strategy: StrategyPlace::Thread,
            channel_capacity: 2048,
            on_full: FullPolicy::DropOldest,
            strategy_core: None,
            strategy_wait: None,
            status_interval_ms: 1000,
            connect_limit: None,
            connect_window_ms: None,
        }
    }
}

/// `[reconnect]`: backoff, circuit breaker, liveness and handshake limits.
///
/// The defaults serve the 5 s reconnect target: the first retry goes out within 100 ms, no
/// single wait (backoff or circuit cooldown) exceeds 5 s, and a silent connection is declared
/// dead 3.5 s after its last frame.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// Delay before the first retry, ms. Default 100.
    pub initial_delay_ms: u64,
    /// Cap on the backoff delay, ms. Default 3000.
    pub max_delay_ms: u64,
    /// Growth of the delay per consecutive failure (>= 1). Default 2.0.
    pub backoff_multiplier: f64,
    /// Jitter: `none`, `full` or `equal`. Default `equal`.
    pub jitter: Jitter,
    /// Consecutive failures that open the circuit breaker. Default 10.
    pub max_consecutive_failures: u32,
    /// Wait once the breaker is open, ms. Default 5000.
    pub circuit_breaker_cooldown_ms: u64,
    /// No frame for this long → send a ping, ms. Default 2000.
    pub stale_after_ms: u64,
    /// No frame this long after the ping → the connection is dead, ms. Default 1500.
    pub pong_timeout_ms: u64,
    /// TCP connect limit, ms. Default 3000.
    pub connect_timeout_ms: u64,
    /// TLS + WebSocket upgrade limit, ms. Default 5000.
    pub handshake_timeout_ms: u64,
    /// Subscription acknowledgement limit, ms. Default 2000.
    pub ack_timeout_ms: u64,
    /// Replace a connection (open the new one, switch when it streams, close the old) once it
    /// is this old, ms; 0 never. Default 86100000: five minutes before Binance's 24-hour cut.
    pub max_connection_age_ms: u64,
    /// Send the venue's keep-alive ping at least this often whatever the traffic, ms; 0 never.
    /// Default: the venue's rule (Bybit and OKX every 20 s; Binance none: it pings us).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_ms: Option<u64>,
    /// A connection that streamed at least this long and then dropped (a clean close, a reset,
    /// the daily cut) is replaced at once, without backoff, ms. Shorter sessions back off, so a
    /// venue that drops every connection early is not hammered. Default 1000.
    pub at_once_after_ms: u64,
    /// A feed with no live connection for this long (since its last one was lost, or since
    /// start when it never connected) stops for good, so a supervisor sees the process fail
    /// (`run` exits non-zero once every required feed has), ms; 0 never. Default 0: retry
    /// for as long as the process runs.
    pub give_up_after_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_delay_ms: 100,
            max_delay_ms: 3000,
            backoff_multiplier: 2.0,
            jitter: Jitter::Equal,
            max_consecutive_failures: 10,
            circuit_breaker_cooldown_ms: 5000,
            stale_after_ms: 2000,
            pong_timeout_ms: 1500,
            connect_timeout_ms: 3000,
            handshake_timeout_ms: 5000,
            ack_timeout_ms: 2000,
            max_connection_age_ms: 86_100_000,
            keepalive_ms: None,
            at_once_after_ms: 1000,
            give_up_after_ms: 0,
        }
    }
}

/// Per-feed overrides of `[reconnect]`; unset fields keep the global value.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // Each field overrides the `ReconnectConfig` field of the same name.
pub struct ReconnectOverride {
    pub initial_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
    pub backoff_multiplier: Option<f64>,
    pub jitter: Option<Jitter>,
    pub max_consecutive_failures: Option<u32>,
    pub circuit_breaker_cooldown_ms: Option<u64>,
    pub stale_after_ms: Option<u64>,
    pub pong_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub ack_timeout_ms: Option<u64>,
    pub max_connection_age_ms: Option<u64>,
    pub keepalive_ms: Option<u64>,
    pub at_once_after_ms: Option<u64>,
    pub give_up_after_ms: Option<u64>,
}

impl ReconnectOverride {
    pub(crate) fn apply(&self, base: ReconnectConfig) -> ReconnectConfig {
        ReconnectConfig {
            initial_delay_ms: self.initial_delay_ms.unwrap_or(base.initial_delay_ms),
            max_delay_ms: self.max_delay_ms.unwrap_or(base.max_delay_ms),
            backoff_multiplier: self.backoff_multiplier.unwrap_or(base.backoff_multiplier),
            jitter: self.jitter.unwrap_or(base.jitter),
            max_consecutive_failures: self
                .max_consecutive_failures
                .unwrap_or(base.max_consecutive_failures),
            circuit_breaker_cooldown_ms: self
                .circuit_breaker_cooldown_ms
                .unwrap_or(base.circuit_breaker_cooldown_ms),
            stale_after_ms: self.stale_after_ms.unwrap_or(base.stale_after_ms),
            pong_timeout_ms: self.pong_timeout_ms.unwrap_or(base.pong_timeout_ms),
            connect_timeout_ms: self.connect_timeout_ms.unwrap_or(base.connect_timeout_ms),
            handshake_timeout_ms: self
                .handshake_timeout_ms
                .unwrap_or(base.handshake_timeout_ms),
            ack_timeout_ms: self.ack_timeout_ms.unwrap_or(base.ack_timeout_ms),
            max_connection_age_ms: self
                .max_connection_age_ms
                .unwrap_or(base.max_connection_age_ms),
            keepalive_ms: self.keepalive_ms.or(base.keepalive_ms),
            at_once_after_ms: self.at_once_after_ms.unwrap_or(base.at_once_after_ms),
            give_up_after_ms: self.give_up_after_ms.unwrap_or(base.give_up_after_ms),
        }
    }
}

/// One `[[feeds]]` table as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Unique name, used for the thread name (`feed-<name>`), logs and reports.
    pub name: String,
    /// `binance-spot` or `binance-usdm`.
    pub venue: String,
    /// Base URL override, e.g. `wss://127.0.0.1:9443` or `ws://127.0.0.1:9001`. Default: the
    /// venue's production URL. The venue's documented path (`/v5/public/linear`,
    /// `/ws/v5/public`, Binance `/ws` or `/stream`) is taken off; another market's path or a
    /// stream name is a config error.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM file with extra CA certificates to trust besides the webpki roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust, given in-process rather than by file (the embedded
    /// simulator uses this). Not read from TOML.
    #[serde(skip)]
    pub ca_pem: Option<String>,
    /// The venue's own stream names, e.g. `["btcusdt@bookTicker", "ethusdt@aggTrade"]`.
    pub streams: Vec<String>,
    /// Keep a hot standby: a second live connection with the same subscriptions, deduplicated
    /// by the venue's sequence numbers. Default false.
    #[serde(default)]
    pub standby: bool,
    /// Base URL of the standby connection, checked like `url`. Default: the feed's `url`.
    #[serde(default)]
    pub standby_url: Option<String>,
    /// Binance: base URL of the REST depth snapshots that local books start from, e.g.
    /// `https://api.binance.com`. Default: the venue's, or, when `url` is set, the same host
    /// over http(s). Bybit and OKX take none (a config error).
    #[serde(default)]
    pub rest_url: Option<String>,
    /// While two connections carry the feed (standby, rotation), how long a depth or trade
    /// update that skips ids waits for the other connection's copy of the skipped ones, ms.
    /// 0 reports the skip at once. Default 20.
    #[serde(default = "default_reorder_window")]
    pub reorder_window_ms: u64,
    /// The process is healthy only while this feed streams, and `run` exits with an error when
    /// every required feed has failed for good. Default true.
    #[serde(default = "yes")]
    pub required: bool,
    /// The `[[drivers]]` entry whose thread runs this feed's connections. Default: a thread of
    /// its own.
    #[serde(default)]
    pub driver: Option<String>,
    /// Core to pin the feed thread(s) to. Default: not pinned. (On a shared driver, the
    /// driver's.)
    #[serde(default)]
    pub core: Option<usize>,
    /// `block` (default) or `spin`.
    #[serde(default)]
    pub wait: WaitMode,
    /// Socket receive buffer, bytes. Default: the kernel's.
    #[serde(default)]
    pub recv_buffer_bytes: Option<usize>,
    /// Largest WebSocket message accepted, bytes. Default 4 MiB.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Largest WebSocket frame accepted, bytes. Default 1 MiB.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Per-stream silence limit overrides, ms: `{ "btcusdt@markPrice" = 10000 }`.
    #[serde(default)]
    pub stream_silence_ms: BTreeMap<String, u64>,
    /// Overrides of `[reconnect]` for this feed.
    #[serde(default)]
    pub reconnect: Option<ReconnectOverride>,
}

fn yes() -> bool {
    true
}
fn default_reorder_window() -> u64 {
    20
}
fn default_max_message() -> usize {
    4 << 20
}
fn default_max_frame() -> usize {
    1 << 20
}

/// `[arbitrage]`: the arbitrage strategy of `demo` and `run`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArbitrageConfig {
    /// Taker fee per venue, basis points, e.g. `{ okx = 5.0, "bybit-linear" = 5.5 }`. Venues
    /// not named keep their published base-tier fee.
    pub taker_fee_bps: BTreeMap<String, f64>,
    /// Smallest edge net of fees that counts as an opportunity, bps. Default 0.
    pub min_edge_bps: f64,
    /// Quotes older than this are not compared, ms. Default 1000.
    pub max_quote_age_ms: u64,
}

impl Default for ArbitrageConfig {
    fn default() -> Self {
        ArbitrageConfig {
            taker_fee_bps: BTreeMap::new(),
            min_edge_bps: 0.0,
            max_quote_age_ms: 1000,
        }
    }
}

/// `[capture]`: JSONL capture and the session manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Folder under which each run writes its session folder; made at start when missing
    /// ([`CaptureConfig::create_dir`]), and one that cannot be made is a config error.
    pub dir: PathBuf,
}

/// `[metrics]`: the Prometheus and health endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `/metrics`, `/healthz` and `/status` on, e.g. `127.0.0.1:9464`.
    pub listen: std::net::SocketAddr,
}

/// The whole file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[engine]`.
    #[serde(default)]
    pub engine: EngineConfig,
    /// `[capture]`; no capture when absent.
    #[serde(default)]
    pub capture: Option<CaptureConfig>,
    /// `[metrics]`; no endpoint when absent.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[arbitrage]`.
    #[serde(default)]
    pub arbitrage: ArbitrageConfig,
    /// `[sink]` (`[sink.nats]`); no sink when absent.
    #[serde(default)]
    pub sink: super::nats::SinkConfig,
    /// `[reconnect]`.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// `[[drivers]]`.
    #[serde(default)]
    pub drivers: Vec<DriverConfig>,
    /// `[[feeds]]`.
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
    /// `[[accounts]]`: private (user-data) streams.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Files holding one venue definition each (a `[[venues]]` table's fields at the top
    /// level), relative to the config file. Read into `venues` when the config is loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub venue_files: Vec<PathBuf>,
    /// `[[venues]]`: venues defined here, which feeds name like built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub venues: Vec<crate::venue::defined::spec::VenueSpec>,
}

/// One `[[accounts]]` table as written: an account's private stream. Its secrets are read from
/// the environment variables it names, never from the file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Unique name among feeds and accounts (thread `feed-<name>`, logs, reports).
    pub name: String,
    /// `binance-usdm`, `binance-spot`, `bybit-linear`, `bybit-spot` or `okx`.
    pub venue: String,
    /// Base URL override of the private WebSocket, e.g. `wss://127.0.0.1:9443`. Default: the
    /// venue's (`wss://fstream.binance.com`, `wss://ws-api.binance.com:443`,
    /// `wss://stream.bybit.com`, `wss://ws.okx.com:8443`). The private path may be included.
    #[serde(default)]
    pub url: Option<String>,
    /// Binance USD-M: base URL of the listen-key REST calls. Default: the venue's, or, when `url`
    /// is set, the same host over http(s).
    #[serde(default)]
    pub rest_url: Option<String>,
    /// PEM file with extra CA certificates to trust.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// CA certificates (PEM) given in-process (the demo's simulator). Not read from TOML.
    #[serde(skip)]
    pub ca_pem: Option<String>,
    /// Environment variable holding the API key.
    pub key_env: String,
    /// Environment variable holding the API secret.
    pub secret_env: String,
    /// OKX: environment variable holding the passphrase.
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// Binance spot: `hmac` (the default: `userDataStream.subscribe.signature`) or `ed25519`
    /// (`secret_env` holds the Ed25519 private key, PKCS#8 PEM or base64 DER: `session.logon`,
    /// then `userDataStream.subscribe`).
    #[serde(default)]
    pub key_type: KeyType,
    /// Credentials given in-process instead of by environment (the demo's simulated accounts).
    /// Not read from TOML, never written anywhere.
    #[serde(skip)]
    pub credentials: Option<crate::auth::Credentials>,
    /// Which events the strategy gets: any of `orders`, `balances`, `positions`. Default all.
    #[serde(default = "all_account_events")]
    pub events: Vec<String>,
    /// The process is healthy only while this account streams. Default true.
    #[serde(default = "yes")]
    pub required: bool,
    /// Binance USD-M: how often the listen key is kept alive, ms (the key is valid for 60
    /// minutes). Default 1,800,000 (30 minutes).
    #[serde(default = "default_listen_key_keepalive")]
    pub listen_key_keepalive_ms: u64,
    /// The `[[drivers]]` entry whose thread runs this account's connections. Default: a thread
    /// of its own (with `strategy = "inline"`, the strategy's driver).
    #[serde(default)]
    pub driver: Option<String>,
    /// Overrides of `[reconnect]` for this account.
    #[serde(default)]
    pub reconnect: Option<ReconnectOverride>,
}

/// How an account's requests are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// HMAC-SHA256 with the API secret.
    #[default]
    Hmac,
    /// Ed25519 with a private key (Binance spot's WebSocket API `session.logon`).
    Ed25519,
}

fn all_account_events() -> Vec<String> {
    ["orders", "balances", "positions"]
        .map(String::from)
        .to_vec()
}

fn default_listen_key_keepalive() -> u64 {
    30 * 60 * 1000
}

/// Extra CA certificates (PEM) given in-process, or read from `ca_file`; the error names the
/// field and the file.
pub(super) fn extra_ca(
    pem: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, String> {
    match (pem, file) {
        (Some(pem), _) => Ok(Some(pem.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| format!("ca_file '{}': {e}", path.display())),
        (None, None) => Ok(None),
    }
}
