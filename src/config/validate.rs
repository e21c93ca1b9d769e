//! From the file as written to a validated [`Config`]: every value checked, every default
//! resolved, every error naming the file and the field. Nothing starts on a bad config.

use std::path::Path;

use super::endpoint::Endpoint;
use super::file::{FileConfig, ReconnectConfig, WaitMode};
use super::spec::{Config, ConfigError, FeedSpec};
use crate::venue::{StreamDef, Venue};

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
