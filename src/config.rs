//! Configuration: TOML → typed structs → a validated [`Config`].
//!
//! Every field has a documented default. Unknown fields, wrong types and impossible values are
//! errors that name the file and the field; nothing starts on a bad config.
//!
//! ```toml
//! [engine]                      # optional
//! channel_capacity = 65536
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// `[engine]`: process-wide settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Capacity of each feed's channel to the strategy, in messages. Default 65536.
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
    /// Interval of the status line printed by `run` and `demo`, ms. Default 1000.
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
            channel_capacity: 65536,
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
}

impl ReconnectOverride {
    fn apply(&self, base: ReconnectConfig) -> ReconnectConfig {
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
    /// venue's production URL.
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
    /// Base URL of the standby connection. Default: the feed's `url`.
    #[serde(default)]
    pub standby_url: Option<String>,
    /// Binance: base URL of the REST depth snapshots that local books start from, e.g.
    /// `https://api.binance.com`. Default: the venue's, or, when `url` is set, the same host
    /// over http(s).
    #[serde(default)]
    pub rest_url: Option<String>,
    /// While two connections carry the feed (standby, rotation), how long a depth or trade
    /// update that skips ids waits for the other connection's copy of the skipped ones, ms.
    /// 0 reports the skip at once. Default 20.
    #[serde(default = "default_reorder_window")]
    pub reorder_window_ms: u64,
    /// Core to pin the feed thread(s) to. Default: not pinned.
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
    /// Folder under which each run writes its session folder.
    pub dir: PathBuf,
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
    /// `[arbitrage]`.
    #[serde(default)]
    pub arbitrage: ArbitrageConfig,
    /// `[reconnect]`.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// `[[feeds]]`.
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
}

/// A parsed `ws://` or `wss://` base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `wss`.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix before the venue's own path, without a trailing `/` (often empty).
    pub base_path: String,
}

impl Endpoint {
    /// Parses `ws[s]://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(format!("'{url}' must start with ws:// or wss://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains('?') || path.contains('#') {
            return Err(format!("'{url}': a base URL takes no query or fragment"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{url}': unclosed '[' in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("'{url}': port '{p}' is not a number in 1..65535"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The full URL of `path` on this endpoint.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}{}{path}", self.port, self.base_path)
    }
}

/// A validated feed.
#[derive(Clone, Debug)]
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
    /// See [`FeedConfig::reorder_window_ms`].
    pub reorder_window_ms: u64,
    /// Base URL of REST depth snapshots (Binance).
    pub rest_base: Option<String>,
}

/// A validated configuration, ready for [`crate::engine::Engine::start`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `[engine]`.
    pub engine: EngineConfig,
    /// The feeds.
    pub feeds: Vec<FeedSpec>,
    /// `[capture]`.
    pub capture: Option<CaptureConfig>,
    /// `[arbitrage]`.
    pub arbitrage: ArbitrageConfig,
    /// The whole configuration with every default filled in, for the session manifest.
    pub effective: serde_json::Value,
}

impl Config {
    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::from_toml(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            message: e.to_string().trim_end().to_string(),
        })?;
        file.validate()
    }
}

fn err(message: String) -> ConfigError {
    ConfigError {
        file: None,
        message,
    }
}

impl ReconnectConfig {
    /// Checks the values can work; `at` names the table in errors.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let r = self;
        if r.initial_delay_ms == 0 {
            return Err(err(format!("{at}.initial_delay_ms must be at least 1")));
        }
        if r.max_delay_ms < r.initial_delay_ms {
            return Err(err(format!(
                "{at}.max_delay_ms ({}) is below {at}.initial_delay_ms ({})",
                r.max_delay_ms, r.initial_delay_ms
            )));
        }
        if !(r.backoff_multiplier >= 1.0 && r.backoff_multiplier <= 100.0) {
            return Err(err(format!(
                "{at}.backoff_multiplier ({}) must be between 1 and 100",
                r.backoff_multiplier
            )));
        }
        if r.max_consecutive_failures == 0 {
            return Err(err(format!(
                "{at}.max_consecutive_failures must be at least 1"
            )));
        }
        for (name, v) in [
            ("stale_after_ms", r.stale_after_ms),
            ("pong_timeout_ms", r.pong_timeout_ms),
            ("connect_timeout_ms", r.connect_timeout_ms),
            ("handshake_timeout_ms", r.handshake_timeout_ms),
            ("ack_timeout_ms", r.ack_timeout_ms),
        ] {
            if v == 0 {
                return Err(err(format!("{at}.{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

impl FileConfig {
    /// Validates everything and resolves defaults.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        let pinned = self.engine.strategy_core.is_some();
        self.engine.strategy_wait.get_or_insert(if pinned {
            WaitMode::Spin
        } else {
            WaitMode::Block
        });
        let effective = serde_json::to_value(&self).unwrap_or(serde_json::Value::Null);
        let e = &self.engine;
        if e.connect_limit == Some(0) || e.connect_window_ms == Some(0) {
            return Err(err(
                "engine.connect_limit and engine.connect_window_ms must be at least 1".into(),
            ));
        }
        if let Some(c) = &self.capture {
            if c.dir.as_os_str().is_empty() {
                return Err(err("capture.dir is empty".into()));
            }
        }
        for (venue, fee) in &self.arbitrage.taker_fee_bps {
            if Venue::from_name(venue).is_none() {
                return Err(err(format!(
                    "arbitrage.taker_fee_bps names '{venue}', which is not a venue (known: {})",
                    Venue::ALL.map(Venue::name).join(", ")
                )));
            }
            if !(0.0..=1000.0).contains(fee) {
                return Err(err(format!(
                    "arbitrage.taker_fee_bps.{venue} = {fee}: must be between 0 and 1000 bps"
                )));
            }
        }
        if e.channel_capacity == 0 {
            return Err(err("engine.channel_capacity must be at least 1".into()));
        }
        if e.status_interval_ms == 0 {
            return Err(err("engine.status_interval_ms must be at least 1".into()));
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let check_core = |at: String, core: Option<usize>| match core {
            Some(c) if !cores.iter().any(|id| id.id == c) => Err(err(format!(
                "{at} = {c}: no such core (this machine has cores {})",
                cores
                    .iter()
                    .map(|c| c.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Ok(()),
        };
        check_core("engine.strategy_core".into(), e.strategy_core)?;
        self.reconnect.validate("reconnect")?;
        if self.feeds.is_empty() {
            return Err(err("no [[feeds]]: configure at least one feed".into()));
        }
        let mut feeds = Vec::with_capacity(self.feeds.len());
        for (i, f) in self.feeds.into_iter().enumerate() {
            let at = format!("feeds[{i}]");
            if f.name.is_empty()
                || !f
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(format!(
                    "{at}.name '{}' must be non-empty letters, digits, '-' or '_'",
                    f.name
                )));
            }
            let at = format!("{at} ('{}')", f.name);
            if feeds.iter().any(|s: &FeedSpec| s.name == f.name) {
                return Err(err(format!("{at}.name is used by another feed")));
            }
            let venue = Venue::from_name(&f.venue).ok_or_else(|| {
                err(format!(
                    "{at}.venue '{}' is unknown (known: {})",
                    f.venue,
                    Venue::ALL.map(Venue::name).join(", ")
                ))
            })?;
            let url = f.url.as_deref().unwrap_or(venue.default_base_url());
            let endpoint = Endpoint::parse(url).map_err(|m| err(format!("{at}.url: {m}")))?;
            if f.streams.is_empty() {
                return Err(err(format!(
                    "{at}.streams is empty: list at least one stream"
                )));
            }
            let mut streams: Vec<StreamDef> = Vec::with_capacity(f.streams.len());
            for s in &f.streams {
                let def = venue
                    .parse_stream(s)
                    .map_err(|m| err(format!("{at}.streams: {m}")))?;
                if streams.iter().any(|d| d.name == def.name) {
                    return Err(err(format!("{at}.streams lists '{s}' twice")));
                }
                streams.push(def);
            }
            for route in streams.iter().map(|s| s.route) {
                let n = streams.iter().filter(|s| s.route == route).count();
                if n > venue.max_streams_per_connection() {
                    return Err(err(format!(
                        "{at}.streams: {n} streams on one {} connection; {venue} allows {}",
                        route.name(),
                        venue.max_streams_per_connection()
                    )));
                }
            }
            let mut silence_ms: Vec<u64> = streams
                .iter()
                .map(|s| s.kind.default_silence_limit().as_millis() as u64)
                .collect();
            for (name, ms) in &f.stream_silence_ms {
                let i = streams
                    .iter()
                    .position(|s| &s.name == name)
                    .ok_or_else(|| {
                        err(format!(
                            "{at}.stream_silence_ms names '{name}', which is not in streams"
                        ))
                    })?;
                if *ms == 0 {
                    return Err(err(format!(
                        "{at}.stream_silence_ms.'{name}' must be at least 1"
                    )));
                }
                silence_ms[i] = *ms;
            }
            check_core(format!("{at}.core"), f.core)?;
            if f.max_frame_bytes < 1024 || f.max_message_bytes < f.max_frame_bytes {
                return Err(err(format!(
                    "{at}: max_frame_bytes ({}) must be >= 1024 and <= max_message_bytes ({})",
                    f.max_frame_bytes, f.max_message_bytes
                )));
            }
            if f.recv_buffer_bytes == Some(0) {
                return Err(err(format!("{at}.recv_buffer_bytes must be at least 1")));
            }
            let reconnect = match &f.reconnect {
                Some(o) => o.apply(self.reconnect),
                None => self.reconnect,
            };
            reconnect.validate(&format!("{at}.reconnect"))?;
            let extra_ca_pem = match (&f.ca_pem, &f.ca_file) {
                (Some(pem), _) => Some(pem.clone()),
                (None, Some(path)) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| err(format!("{at}.ca_file '{}': {e}", path.display())))?,
                ),
                (None, None) => None,
            };
            let standby = match (f.standby, &f.standby_url) {
                (false, Some(_)) => {
                    return Err(err(format!(
                        "{at}.standby_url is set but standby is false; set standby = true"
                    )))
                }
                (false, None) => None,
                (true, None) => Some(endpoint.clone()),
                (true, Some(u)) => {
                    Some(Endpoint::parse(u).map_err(|m| err(format!("{at}.standby_url: {m}")))?)
                }
            };
            let rest_base = match (&f.rest_url, &f.url) {
                (Some(r), _) => {
                    if !(r.starts_with("https://") || r.starts_with("http://")) {
                        return Err(err(format!(
                            "{at}.rest_url '{r}' must start with https:// or http://"
                        )));
                    }
                    Some(r.trim_end_matches('/').to_string())
                }
                (None, Some(_)) if venue.default_rest_url().is_some() => Some(format!(
                    "{}://{}:{}{}",
                    if endpoint.tls { "https" } else { "http" },
                    endpoint.host,
                    endpoint.port,
                    endpoint.base_path
                )),
                (None, _) => venue.default_rest_url().map(String::from),
            };
            if extra_ca_pem.is_some() && !endpoint.tls {
                log::warn!("{at}: ca_file is set but the url is ws:// (no TLS); it is unused");
            }
            feeds.push(FeedSpec {
                name: f.name,
                venue,
                endpoint,
                extra_ca_pem,
                streams,
                silence_ms,
                core: f.core,
                wait: f.wait,
                recv_buffer_bytes: f.recv_buffer_bytes,
                max_message_bytes: f.max_message_bytes,
                max_frame_bytes: f.max_frame_bytes,
                reconnect,
                standby,
                reorder_window_ms: f.reorder_window_ms,
                rest_base,
            });
        }
        Ok(Config {
            engine: self.engine,
            feeds,
            capture: self.capture,
            arbitrage: self.arbitrage,
            effective,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[feeds]]
name = "usdm"
venue = "binance-usdm"
streams = ["btcusdt@bookTicker", "btcusdt@markPrice"]
"#;

    fn error_of(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let c = Config::from_toml(MINIMAL).unwrap();
        let f = &c.feeds[0];
        assert_eq!(
            f.endpoint,
            Endpoint::parse("wss://fstream.binance.com").unwrap()
        );
        assert_eq!(f.reconnect, ReconnectConfig::default());
        assert_eq!(c.engine.on_full, FullPolicy::DropOldest);
        assert_eq!(f.silence_ms, vec![10_000, 30_000]);
    }

    #[test]
    fn default_waits_meet_the_five_second_target() {
        let r = ReconnectConfig::default();
        assert!(r.initial_delay_ms <= 100);
        assert!(r.max_delay_ms <= 5000 && r.circuit_breaker_cooldown_ms <= 5000);
        assert!(r.stale_after_ms + r.pong_timeout_ms < 5000);
    }

    #[test]
    fn per_feed_overrides_apply() {
        let c = Config::from_toml(&format!(
            "[reconnect]\ninitial_delay_ms = 50\n{MINIMAL}reconnect = {{ max_delay_ms = 700 }}\n"
        ))
        .unwrap();
        let r = c.feeds[0].reconnect;
        assert_eq!((r.initial_delay_ms, r.max_delay_ms), (50, 700));
    }

    #[test]
    fn every_shipped_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 7, "{n} configs");
    }

    #[test]
    fn standby_capture_and_attempt_budget() {
        let c = Config::from_toml(&format!(
            "[capture]\ndir = \"/tmp/x\"\n{MINIMAL}standby = true\nstandby_url = \"wss://fstream2.example:443\"\n"
        ))
        .unwrap();
        assert_eq!(c.capture.unwrap().dir, PathBuf::from("/tmp/x"));
        let standby = c.feeds[0].standby.as_ref().unwrap();
        assert_eq!(standby.host, "fstream2.example");
        assert_eq!(c.feeds[0].reconnect.max_connection_age_ms, 86_100_000);
        assert_eq!(c.effective["feeds"][0]["standby"], true);
        let plain = Config::from_toml(&format!("{MINIMAL}standby = true\n")).unwrap();
        assert_eq!(
            plain.feeds[0].standby.as_ref(),
            Some(&plain.feeds[0].endpoint)
        );
        for (text, needle) in [
            (
                format!("{MINIMAL}standby_url = \"wss://a.example\"\n"),
                "standby_url is set but standby is false",
            ),
            (
                format!("{MINIMAL}standby = true\nstandby_url = \"http://a\"\n"),
                "standby_url",
            ),
            (
                format!("[capture]\ndir = \"\"\n{MINIMAL}"),
                "capture.dir is empty",
            ),
            (
                format!("[engine]\nconnect_limit = 0\n{MINIMAL}"),
                "engine.connect_limit",
            ),
            (
                format!("[arbitrage]\ntaker_fee_bps = {{ kraken = 5.0 }}\n{MINIMAL}"),
                "'kraken', which is not a venue",
            ),
        ] {
            let e = error_of(&text);
            assert!(e.contains(needle), "{text:?} → {e}");
        }
    }

    #[test]
    fn typos_and_bad_values_name_the_field() {
        let e = error_of(&format!("[reconnect]\nintial_delay_ms = 5\n{MINIMAL}"));
        assert!(e.contains("intial_delay_ms"), "{e}");
        let e = error_of(&format!("{MINIMAL}strems = []\n"));
        assert!(e.contains("strems"), "{e}");
        let e = error_of(&format!(
            "[reconnect]\ninitial_delay_ms = \"fast\"\n{MINIMAL}"
        ));
        assert!(e.contains("initial_delay_ms"), "{e}");
        let e = error_of(&format!("[reconnect]\nmax_delay_ms = 10\n{MINIMAL}"));
        assert!(e.contains("reconnect.max_delay_ms (10)"), "{e}");
        let e = error_of(&format!("[reconnect]\nbackoff_multiplier = 0.5\n{MINIMAL}"));
        assert!(e.contains("backoff_multiplier"), "{e}");
        let e = error_of(&MINIMAL.replace("binance-usdm", "binance-moon"));
        assert!(e.contains("venue 'binance-moon'"), "{e}");
        let e = error_of(&MINIMAL.replace(r#"["btcusdt@bookTicker", "btcusdt@markPrice"]"#, "[]"));
        assert!(e.contains("streams is empty"), "{e}");
        let e = error_of(&format!("{MINIMAL}core = 4096\n"));
        assert!(e.contains("core = 4096"), "{e}");
        let e = error_of(&format!("{MINIMAL}url = \"http://x\"\n"));
        assert!(e.contains(".url"), "{e}");
        let e = error_of(&format!(
            "{MINIMAL}stream_silence_ms = {{ \"ethusdt@aggTrade\" = 5 }}\n"
        ));
        assert!(e.contains("ethusdt@aggTrade"), "{e}");
        let e = error_of(&format!("{MINIMAL}[[feeds]]\nname = \"usdm\"\nvenue = \"binance-spot\"\nstreams = [\"btcusdt@aggTrade\"]\n"));
        assert!(e.contains("used by another feed"), "{e}");
        assert!(error_of("").contains("no [[feeds]]"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("wsfeed-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("typo.toml");
        std::fs::write(&path, format!("{MINIMAL}pong_timout_ms = 5\n")).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("typo.toml") && e.contains("pong_timout_ms"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("wss://127.0.0.1:9443").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.base_path.as_str()),
            (true, "127.0.0.1", 9443, "")
        );
        let e = Endpoint::parse("ws://[::1]/prefix/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("::1", 80, "/prefix")
        );
        assert_eq!(e.url("/stream"), "ws://[::1]:80/prefix/stream");
        for bad in [
            "http://x",
            "wss://",
            "wss://h:0",
            "wss://h:99999",
            "ws://h/p?q=1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
