//! From the file as written to a validated [`Config`]: every value checked, every default
//! resolved, every error naming the file and the field. Nothing starts on a bad config.

use std::path::Path;

use super::accounts;
use super::file::{extra_ca, DriverConfig, FileConfig, ReconnectConfig, StrategyPlace, WaitMode};
use super::spec::{AccountSpec, Config, ConfigError, DriverSpec, FeedSpec};
use super::venue_url;
use crate::venue::{defined, StreamDef, Venue};

impl Config {
    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            message: format!("cannot read the file: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, dir).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses and validates TOML text (`venue_files` relative to the working directory).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("."))
    }

    fn parse(text: &str, dir: &Path) -> Result<Config, ConfigError> {
        let mut file: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            message: e.to_string().trim_end().to_string(),
        })?;
        // The definitions themselves go into the config (and so into a session's manifest,
        // which replay and audit read), not the names of their files.
        for f in std::mem::take(&mut file.venue_files) {
            let at = dir.join(&f);
            let text = std::fs::read_to_string(&at)
                .map_err(|e| err(format!("venue_files: cannot read '{}': {e}", at.display())))?;
            let spec = toml::from_str(&text).map_err(|e| {
                err(format!(
                    "venue_files: '{}': {}",
                    at.display(),
                    e.to_string().trim_end()
                ))
            })?;
            file.venues.push(spec);
        }
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
        let inline = self.engine.strategy == StrategyPlace::Inline;
        if inline && (self.engine.strategy_core.is_some() || self.engine.strategy_wait.is_some()) {
            return Err(err(
                "engine.strategy_core and engine.strategy_wait describe the strategy's own thread, \
                 which strategy = \"inline\" does not have: the strategy runs on the driver \
                 thread, so set core and wait on the [[drivers]] entry (or on the feeds)"
                    .into(),
            ));
        }
        if !inline {
            let pinned = self.engine.strategy_core.is_some();
            self.engine.strategy_wait.get_or_insert(if pinned {
                WaitMode::Spin
            } else {
                WaitMode::Block
            });
        }
        let effective = serde_json::to_value(&self).unwrap_or(serde_json::Value::Null);
        let defined = defined::load_all(&self.venues).map_err(err)?;
        let find = |name: &str| defined::find(&defined, name);
        let e = &self.engine;
        if e.connect_limit == Some(0) || e.connect_window_ms == Some(0) {
            return Err(err(
                "engine.connect_limit and engine.connect_window_ms must be at least 1".into(),
            ));
        }
        if let Some(n) = &self.sink.nats {
            n.validate().map_err(err)?;
        }
        if let Some(c) = &self.capture {
            if c.dir.as_os_str().is_empty() {
                return Err(err("capture.dir is empty".into()));
            }
        }
        for (venue, fee) in &self.arbitrage.taker_fee_bps {
            if find(venue).is_none() {
                return Err(err(format!(
                    "arbitrage.taker_fee_bps names '{venue}', which is not a venue (known: {})",
                    defined::names(&defined)
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
        if e.channel_capacity > MAX_CHANNEL_CAPACITY {
            return Err(err(format!(
                "engine.channel_capacity = {} is above the limit of {MAX_CHANNEL_CAPACITY}: each \
                 slot takes ~{CHANNEL_SLOT_BYTES} bytes, allocated up front for every feed, so \
                 this would take {} per feed (the limit: {} per feed)",
                e.channel_capacity,
                bytes(e.channel_capacity),
                bytes(MAX_CHANNEL_CAPACITY)
            )));
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
        if let Some(n) = &self.sink.nats {
            check_core("sink.nats.core".into(), n.core)?;
        }
        self.reconnect.validate("reconnect")?;
        if self.feeds.is_empty() && (self.accounts.is_empty() || inline) {
            return Err(err(match self.accounts.is_empty() {
                true => "no [[feeds]] or [[accounts]]: configure at least one".into(),
                false => "strategy = \"inline\" runs on a feed's thread: configure at least one \
                          [[feeds]], or run the strategy on its own thread"
                    .into(),
            }));
        }
        let mut feeds = Vec::with_capacity(self.feeds.len());
        for (i, f) in self.feeds.into_iter().enumerate() {
            let at = format!("feeds[{i}]");
            check_name(&at, &f.name)?;
            let at = format!("{at} ('{}')", f.name);
            if feeds.iter().any(|s: &FeedSpec| s.name == f.name) {
                return Err(err(format!("{at}.name is used by another feed")));
            }
            let venue = find(&f.venue).ok_or_else(|| {
                err(format!(
                    "{at}.venue '{}' is unknown (known: {})",
                    f.venue,
                    defined::names(&defined)
                ))
            })?;
            let url = f.url.as_deref().unwrap_or(venue.default_base_url());
            let endpoint =
                venue_url::parse(venue, url).map_err(|m| err(format!("{at}.url: {m}")))?;
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
                if venue == Venue::Okx {
                    venue_url::check_okx_inst(s).map_err(|m| err(format!("{at}.streams: {m}")))?;
                }
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
                .map(|s| s.silence.as_millis() as u64)
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
            // Offsets into a message are 32-bit where fields are located in place.
            if f.max_message_bytes >= 1 << 32 {
                return Err(err(format!(
                    "{at}.max_message_bytes ({}) must be below 4 GiB",
                    f.max_message_bytes
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
            let extra_ca_pem =
                extra_ca(&f.ca_pem, &f.ca_file).map_err(|m| err(format!("{at}.{m}")))?;
            let standby = match (f.standby, &f.standby_url) {
                (false, Some(_)) => {
                    return Err(err(format!(
                        "{at}.standby_url is set but standby is false; set standby = true"
                    )))
                }
                (false, None) => None,
                (true, None) => Some(endpoint.clone()),
                (true, Some(u)) => Some(
                    venue_url::parse(venue, u)
                        .map_err(|m| err(format!("{at}.standby_url: {m}")))?,
                ),
            };
            let rest_base = match (&f.rest_url, &f.url) {
                (Some(r), _) if venue.default_rest_url().is_none() => {
                    return Err(err(format!(
                        "{at}.rest_url is set, but {venue} takes no REST snapshots (its books \
                         start from snapshots on the WebSocket); remove it"
                    )))
                }
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
                driver: f.driver,
                required: f.required,
            });
        }
        let drivers = place_feeds(inline, self.drivers, &mut feeds, &check_core)?;
        let mut accounts: Vec<AccountSpec> = Vec::with_capacity(self.accounts.len());
        for (i, a) in self.accounts.into_iter().enumerate() {
            let taken: Vec<&str> = feeds
                .iter()
                .map(|f| f.name.as_str())
                .chain(accounts.iter().map(|a| a.params.name.as_str()))
                .collect();
            check_name(&format!("accounts[{i}]"), &a.name)?;
            let mut spec = accounts::validate(i, a, self.reconnect, &taken)?;
            if inline {
                // The strategy's thread is the one driver every feed is on.
                spec.driver = feeds[0].driver.clone();
            }
            if let Some(d) = &spec.driver {
                if !drivers.iter().any(|s| &s.name == d) {
                    return Err(err(format!(
                        "accounts[{i}] ('{}').driver '{d}' is not a [[drivers]] entry (known: {})",
                        spec.params.name,
                        list(drivers.iter().map(|d| d.name.as_str()))
                    )));
                }
            }
            accounts.push(spec);
        }
        Ok(Config {
            engine: self.engine,
            feeds,
            drivers,
            capture: self.capture,
            metrics: self.metrics,
            arbitrage: self.arbitrage,
            accounts,
            nats: self.sink.nats,
            effective,
            venues: defined,
        })
    }
}

/// Checks the `[[drivers]]` and which feeds name them. With the strategy inline, every feed must
/// be on one driver: when none names one, they all go on one named `inline`, whose core and wait
/// are the feeds' (which must then agree).
fn place_feeds(
    inline: bool,
    drivers: Vec<DriverConfig>,
    feeds: &mut [FeedSpec],
    check_core: &dyn Fn(String, Option<usize>) -> Result<(), ConfigError>,
) -> Result<Vec<DriverSpec>, ConfigError> {
    let mut specs: Vec<DriverSpec> = Vec::with_capacity(drivers.len());
    for (i, d) in drivers.into_iter().enumerate() {
        let at = format!("drivers[{i}]");
        check_name(&at, &d.name)?;
        if specs.iter().any(|s| s.name == d.name) {
            return Err(err(format!(
                "{at}.name '{}' is used by another driver",
                d.name
            )));
        }
        check_core(format!("{at} ('{}').core", d.name), d.core)?;
        if !feeds
            .iter()
            .any(|f| f.driver.as_deref() == Some(d.name.as_str()))
        {
            return Err(err(format!(
                "{at} ('{}') runs no feed: name it in a feed's driver, or remove it",
                d.name
            )));
        }
        specs.push(DriverSpec {
            name: d.name,
            core: d.core,
            wait: d.wait,
        });
    }
    for f in feeds.iter() {
        let Some(name) = &f.driver else { continue };
        let at = format!("feed '{}'", f.name);
        if !specs.iter().any(|d| &d.name == name) {
            return Err(err(format!(
                "{at}.driver '{name}' is not a [[drivers]] entry (known: {})",
                list(specs.iter().map(|d| d.name.as_str()))
            )));
        }
        if f.core.is_some() || f.wait == WaitMode::Spin {
            return Err(err(format!(
                "{at} is on driver '{name}': its core and wait are the driver's; set them in \
                 [[drivers]]"
            )));
        }
    }
    if !inline {
        return Ok(specs);
    }
    let named: Vec<&str> = feeds.iter().filter_map(|f| f.driver.as_deref()).collect();
    if named.is_empty() {
        let (core, wait) = (feeds[0].core, feeds[0].wait);
        if let Some(f) = feeds.iter().find(|f| (f.core, f.wait) != (core, wait)) {
            return Err(err(format!(
                "strategy = \"inline\" runs every feed on one thread, but feeds '{}' and '{}' \
                 ask for different cores or wait modes: give them the same, or define the \
                 thread in [[drivers]]",
                feeds[0].name, f.name
            )));
        }
        for f in feeds.iter_mut() {
            f.driver = Some(INLINE_DRIVER.to_string());
        }
        specs.push(DriverSpec {
            name: INLINE_DRIVER.to_string(),
            core,
            wait,
        });
        return Ok(specs);
    }
    let first = named[0];
    if let Some(f) = feeds.iter().find(|f| f.driver.as_deref() != Some(first)) {
        return Err(err(format!(
            "strategy = \"inline\" runs the strategy on one driver's thread, so every feed must \
             be on it: feed '{}' is on {}, feed '{}' on driver '{first}'",
            f.name,
            f.driver
                .as_deref()
                .map_or("a thread of its own".to_string(), |d| format!(
                    "driver '{d}'"
                )),
            feeds
                .iter()
                .find(|g| g.driver.as_deref() == Some(first))
                .map_or("", |g| g.name.as_str()),
        )));
    }
    Ok(specs)
}

/// The largest `engine.channel_capacity`: 2^20 slots, ~230 MiB per feed.
pub const MAX_CHANNEL_CAPACITY: usize = 1 << 20;

/// What one slot of a feed's tick channel takes, allocated up front: the tick, its sequence
/// number and the channel's stamp, rounded up (checked against the real size in the tests).
pub const CHANNEL_SLOT_BYTES: usize = 232;

/// The memory `capacity` slots of a tick channel take, in MiB or GiB.
fn bytes(capacity: usize) -> String {
    let b = capacity as f64 * CHANNEL_SLOT_BYTES as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}

impl super::file::CaptureConfig {
    /// Creates the capture folder (and its parents) when missing, so a folder that cannot be
    /// made is a config error before anything starts.
    pub fn create_dir(&self) -> Result<(), ConfigError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            err(format!(
                "capture.dir '{}' cannot be created: {e}",
                self.dir.display()
            ))
        })?;
        if !self.dir.is_dir() {
            return Err(err(format!(
                "capture.dir '{}' is not a folder",
                self.dir.display()
            )));
        }
        Ok(())
    }
}

/// The driver every feed is on when the strategy runs inline and no `[[drivers]]` is given.
pub(crate) const INLINE_DRIVER: &str = "inline";

/// Feed and driver names: non-empty letters, digits, `-` or `_` (they name threads and files).
fn check_name(at: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(err(format!(
            "{at}.name '{name}' must be non-empty letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

/// `a, b, c`, or `none`.
fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
