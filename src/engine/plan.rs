//! What the engine will run, worked out from a validated config before any thread starts:
//! one feed per connection route of each configured feed (Binance USD-M's `/public` and
//! `/market` are two), symbols interned across venues, one attempt budget per venue host, one
//! TLS config per configured feed, and which thread (driver) runs which feeds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use log::warn;
use tungstenite::protocol::WebSocketConfig;

use crate::config::{AccountSpec, Config, Endpoint, FeedSpec, StrategyPlace, WaitMode};
use crate::feed::limiter::ConnectGate;
use crate::feed::params::{FeedParams, Target};
use crate::strategy::{FeedInfo, Universe};
use crate::tick::SymbolId;
use crate::venue::{Route, Venue};

/// The engine could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// One thread that runs feeds: its name, pinning, wait mode and the feeds (by id).
#[derive(Debug)]
pub(crate) struct DriverPlan {
    pub name: String,
    pub core: Option<usize>,
    pub wait: WaitMode,
    pub feeds: Vec<usize>,
}

impl DriverPlan {
    /// The name of the driver's thread.
    pub fn thread_name(&self) -> String {
        format!("feed-{}", self.name)
    }
}

/// A thread the engine starts that can be pinned or spin: a driver (`feed-<name>`) or the
/// strategy thread. Helper threads (resolver, snapshots, capture) neither spin nor pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ThreadNeed {
    /// The thread's name.
    pub name: String,
    /// The core it is pinned to.
    pub core: Option<usize>,
    /// Whether it busy-polls.
    pub spin: bool,
}

/// The threads `config` starts that can pin or spin, as the engine would start them.
pub(crate) fn threads(config: &Config) -> Result<Vec<ThreadNeed>, StartError> {
    Ok(thread_needs(config, &plan(config)?.drivers))
}

fn thread_needs(config: &Config, drivers: &[DriverPlan]) -> Vec<ThreadNeed> {
    let mut out: Vec<ThreadNeed> = drivers
        .iter()
        .map(|d| ThreadNeed {
            name: d.thread_name(),
            core: d.core,
            spin: d.wait == WaitMode::Spin,
        })
        .collect();
    if config.engine.strategy == StrategyPlace::Thread {
        out.push(ThreadNeed {
            name: "strategy".into(),
            core: config.engine.strategy_core,
            spin: config.engine.strategy_wait() == WaitMode::Spin,
        });
    }
    out
}

/// Everything the engine starts.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Every feed, by id.
    pub params: Vec<FeedParams>,
    /// The threads that run the feeds.
    pub drivers: Vec<DriverPlan>,
    /// What a reload plans further feeds with; its universe names the ids, for the strategy.
    pub planner: Planner,
    /// The configured feed or account each feed comes from, by feed id.
    pub owners: Vec<String>,
}

/// Works out the feeds and their threads.
pub(crate) fn plan(config: &Config) -> Result<Plan, StartError> {
    let mut planner = Planner::new(config);
    let mut params = Vec::new();
    // The configured feed each feed (one per connection route) comes from.
    let mut owners = Vec::new();
    for (spec_index, spec) in config.feeds.iter().enumerate() {
        for p in planner.feed(spec)? {
            owners.push(spec_index);
            params.push(p);
        }
    }
    let mut names: Vec<String> = owners
        .iter()
        .map(|&o| config.feeds[o].name.clone())
        .collect();
    for spec in &config.accounts {
        params.push(planner.account(spec)?);
        names.push(spec.params.name.clone());
    }
    let drivers = group(config, &params, &owners);
    warn_oversubscription(config, &drivers);
    Ok(Plan {
        params,
        drivers,
        planner,
        owners: names,
    })
}

/// What planning keeps between feeds, so that a feed added by a reload gets the next id, the
/// same symbol ids and the same host budgets as the feeds already running.
#[derive(Debug)]
pub(crate) struct Planner {
    /// Feeds and symbols planned so far.
    pub universe: Universe,
    intern: HashMap<String, SymbolId>,
    /// One attempt budget per venue host, shared by every feed that connects there.
    gates: HashMap<String, Arc<ConnectGate>>,
    connect_limit: Option<u32>,
    connect_window_ms: Option<u64>,
}

impl Planner {
    /// Nothing planned yet, with `config`'s attempt budgets.
    pub(crate) fn new(config: &Config) -> Planner {
        Planner {
            universe: Universe::default(),
            intern: HashMap::new(),
            gates: HashMap::new(),
            connect_limit: config.engine.connect_limit,
            connect_window_ms: config.engine.connect_window_ms,
        }
    }

    /// The attempt budget of `e`'s host.
    fn gate(&mut self, e: &Endpoint, venue: crate::venue::Venue) -> Arc<ConnectGate> {
        let host = format!("{}:{}", e.host, e.port);
        let (limit, window) = venue.connect_limit();
        let (limit, window) = (
            self.connect_limit.unwrap_or(limit),
            self.connect_window_ms.map_or(window, Duration::from_millis),
        );
        self.gates
            .entry(host.clone())
            .or_insert_with(|| Arc::new(ConnectGate::new(host, limit, window)))
            .clone()
    }

    /// One id per instrument across venues: OKX BTC-USDT-SWAP is BTCUSDT.
    fn symbol(&mut self, venue: Venue, venue_symbol: &str) -> SymbolId {
        let name = venue.instrument(venue_symbol);
        let symbols = &mut self.universe.symbols;
        *self.intern.entry(name.clone()).or_insert_with(|| {
            symbols.push(name);
            SymbolId(symbols.len() as u16 - 1)
        })
    }

    /// The feeds of configured feed `spec`: one per connection route, with the next ids.
    pub(crate) fn feed(&mut self, spec: &FeedSpec) -> Result<Vec<FeedParams>, StartError> {
        let wants_tls = spec.endpoint.tls || spec.standby.as_ref().is_some_and(|e| e.tls);
        let tls = if wants_tls {
            Some(
                crate::net::tls_config(spec.extra_ca_pem.as_deref())
                    .map_err(|e| StartError(format!("feed '{}': {e}", spec.name)))?,
            )
        } else {
            None
        };
        let mut routes: Vec<Route> = spec.streams.iter().map(|s| s.route).collect();
        routes.sort();
        routes.dedup();
        let mut out = Vec::with_capacity(routes.len());
        for &route in &routes {
            let idx: Vec<usize> = (0..spec.streams.len())
                .filter(|&i| spec.streams[i].route == route)
                .collect();
            let name = if routes.len() == 1 {
                spec.name.clone()
            } else {
                format!("{}-{}", spec.name, route.name())
            };
            let streams: Vec<_> = idx.iter().map(|&i| spec.streams[i].clone()).collect();
            let syms = streams
                .iter()
                .map(|s| self.symbol(spec.venue, &s.symbol))
                .collect();
            let path = spec.venue.endpoint_path(route);
            let mut targets = vec![Target {
                endpoint: spec.endpoint.clone(),
                url: spec.endpoint.url(path),
                gate: self.gate(&spec.endpoint, spec.venue),
            }];
            if let Some(standby) = &spec.standby {
                targets.push(Target {
                    endpoint: standby.clone(),
                    url: standby.url(path),
                    gate: self.gate(standby, spec.venue),
                });
            }
            let id = self.universe.feeds.len() as u16;
            self.universe.feeds.push(FeedInfo {
                name: name.clone(),
                venue: spec.venue,
                url: spec.endpoint.url(path),
                streams: streams.clone(),
            });
            out.push(FeedParams {
                id,
                required: spec.required,
                name,
                venue: spec.venue,
                targets,
                streams,
                symbols: syms,
                silence: idx
                    .iter()
                    .map(|&i| Duration::from_millis(spec.silence_ms[i]))
                    .collect(),
                reconnect: spec.reconnect,
                max_connection_age: max_age(spec.reconnect.max_connection_age_ms),
                reorder_window: Duration::from_millis(spec.reorder_window_ms),
                recv_buffer: spec.recv_buffer_bytes,
                ws_config: WebSocketConfig::default()
                    .read_buffer_size(READ_CHUNK)
                    .max_message_size(Some(spec.max_message_bytes))
                    .max_frame_size(Some(spec.max_frame_bytes)),
                tls: tls.clone(),
                capture: None,
                rest_base: spec.rest_base.clone(),
                account: None,
            });
        }
        Ok(out)
    }

    /// The feed of account `spec`: on its private endpoint, with no streams, the next id.
    pub(crate) fn account(&mut self, spec: &AccountSpec) -> Result<FeedParams, StartError> {
        let a = &spec.params;
        let https = a
            .rest_base
            .as_deref()
            .is_some_and(|r| r.starts_with("https://"));
        let tls = if spec.endpoint.tls || https {
            Some(
                crate::net::tls_config(spec.extra_ca_pem.as_deref())
                    .map_err(|e| StartError(format!("account '{}': {e}", a.name)))?,
            )
        } else {
            None
        };
        let url = spec.endpoint.url(a.protocol.path());
        let id = self.universe.feeds.len() as u16;
        self.universe.feeds.push(FeedInfo {
            name: a.name.clone(),
            venue: a.venue,
            url: url.clone(),
            streams: Vec::new(),
        });
        Ok(FeedParams {
            id,
            required: spec.required,
            name: a.name.clone(),
            venue: a.venue,
            targets: vec![Target {
                endpoint: spec.endpoint.clone(),
                url,
                gate: self.gate(&spec.endpoint, a.venue),
            }],
            streams: Vec::new(),
            symbols: Vec::new(),
            silence: Vec::new(),
            reconnect: spec.reconnect,
            max_connection_age: max_age(spec.reconnect.max_connection_age_ms),
            reorder_window: Duration::ZERO,
            recv_buffer: None,
            ws_config: WebSocketConfig::default(),
            tls,
            capture: None,
            rest_base: None,
            account: Some(a.clone()),
        })
    }
}

/// `max_connection_age_ms` as a limit (0: none).
fn max_age(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// How much tungstenite reads per `read` call. It zero-fills that much of its buffer before
/// every call (the default, 128 KiB, cost several µs per message here); a socket read of 8 KiB
/// still carries ~40 bookTicker frames when the feed is behind.
const READ_CHUNK: usize = 8 * 1024;

/// Which feeds each thread runs: a feed on a named driver shares its thread; any other feed
/// (each route of a configured feed) has a thread of its own, as its own config says.
fn group(config: &Config, params: &[FeedParams], owners: &[usize]) -> Vec<DriverPlan> {
    let mut drivers: Vec<DriverPlan> = config
        .drivers
        .iter()
        .map(|d| DriverPlan {
            name: d.name.clone(),
            core: d.core,
            wait: d.wait,
            feeds: Vec::new(),
        })
        .collect();
    for (id, p) in params.iter().enumerate() {
        // Market feeds come first (`owners`); accounts after, blocking and unpinned unless on a
        // driver.
        let (driver, core, wait) = match owners.get(id) {
            Some(&o) => {
                let spec = &config.feeds[o];
                (&spec.driver, spec.core, spec.wait)
            }
            None => {
                let a = &config.accounts[id - owners.len()];
                (&a.driver, None, WaitMode::Block)
            }
        };
        match driver {
            Some(name) => {
                if let Some(d) = drivers.iter_mut().find(|d| &d.name == name) {
                    d.feeds.push(id);
                }
            }
            None => drivers.push(DriverPlan {
                name: p.name.clone(),
                core,
                wait,
                feeds: vec![id],
            }),
        }
    }
    drivers
}

/// Spinning threads beyond the number of cores send tails to the scheduler tick.
fn warn_oversubscription(config: &Config, drivers: &[DriverPlan]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(warning) = oversubscription(&spinners(&thread_needs(config, drivers)), cores) {
        warn!("{warning}");
    }
}

/// The spinning threads among `threads`: name and pinned core.
pub(crate) fn spinners(threads: &[ThreadNeed]) -> Vec<(String, Option<usize>)> {
    threads
        .iter()
        .filter(|t| t.spin)
        .map(|t| (format!("thread '{}'", t.name), t.core))
        .collect()
}

/// What is wrong with these spinning threads (name, pinned core) on `cores` cores, if anything:
/// more of them than cores, or two pinned to one core. Either way they take turns at the
/// scheduler's pace, and latency tails reach its tick (milliseconds).
pub(crate) fn oversubscription(
    spinners: &[(String, Option<usize>)],
    cores: usize,
) -> Option<String> {
    if spinners.len() > cores {
        let names: Vec<&str> = spinners.iter().map(|(n, _)| n.as_str()).collect();
        return Some(format!(
            "{} spinning threads ({}) on {cores} cores: more than there are cores to pin them \
             to, so they preempt each other and latency tails reach the scheduler tick; set \
             wait = \"block\" on some feeds or strategy_wait = \"block\"",
            spinners.len(),
            names.join(", ")
        ));
    }
    for (i, (a, core)) in spinners.iter().enumerate() {
        let Some(core) = core else { continue };
        if let Some((b, _)) = spinners[i + 1..].iter().find(|(_, c)| *c == Some(*core)) {
            return Some(format!(
                "{a} and {b} both spin pinned to core {core}: they take turns at the scheduler's \
                 pace; pin them to different cores or let one block"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::oversubscription;

    fn spinners(cores: &[Option<usize>]) -> Vec<(String, Option<usize>)> {
        cores
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("t{i}"), *c))
            .collect()
    }

    #[test]
    fn warns_about_more_spinners_than_cores_and_shared_pinned_cores() {
        assert_eq!(oversubscription(&spinners(&[Some(1), None]), 2), None);
        assert_eq!(oversubscription(&spinners(&[Some(0), Some(1)]), 2), None);
        let too_many = oversubscription(&spinners(&[None, None, Some(1)]), 2).unwrap();
        assert!(
            too_many.contains("3 spinning threads (t0, t1, t2) on 2 cores"),
            "{too_many}"
        );
        let shared = oversubscription(&spinners(&[Some(1), None, Some(1)]), 4).unwrap();
        assert!(
            shared.contains("t0 and t2 both spin pinned to core 1"),
            "{shared}"
        );
    }
}
