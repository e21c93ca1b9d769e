//! Builds the threads from a validated config, wires the channels, and shuts down in order.
//!
//! One feed thread per connection: a configured feed whose streams span venue routes (Binance
//! USD-M `/public` and `/market`) becomes one connection per route, each with its own reconnect
//! state, named `<feed>-<route>`. All feeds send to one strategy thread. Shutdown sets a flag
//! and wakes every feed's poll; feeds close their sockets and drop their senders; the strategy
//! thread drains what was sent and returns the strategy.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded};
use hdrhistogram::Histogram;
use log::warn;
use mio::Waker;
use tungstenite::protocol::WebSocketConfig;

use crate::capture::{Capture, CaptureFeed};
use crate::config::{Config, Endpoint, WaitMode};
use crate::feed::core::FeedCore;
use crate::feed::driver::{Connector, Driver, Helpers};
use crate::feed::limiter::ConnectGate;
use crate::feed::params::{FeedParams, Target};
use crate::feed::sink::{ChannelSink, Outbox};
use crate::helper::Helper;
use crate::metrics::{micros_histogram, nanos_histogram, percentiles, FeedStats, RECONNECT_TARGET};
use crate::strategy::{self, FeedInfo, Lane, Strategy, Universe};
use crate::summary::{FeedSummary, Summary};
use crate::tick::SymbolId;
use crate::venue::Route;

/// The engine could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

struct FeedThread {
    handle: JoinHandle<()>,
    waker: Arc<Waker>,
}

/// A running engine.
pub struct Engine<S: Strategy> {
    feeds: Vec<FeedThread>,
    stats: Vec<Arc<FeedStats>>,
    strategy: Option<JoinHandle<S>>,
    shutdown: Arc<AtomicBool>,
    latency: Arc<Mutex<Histogram<u64>>>,
    universe: Universe,
    started: Instant,
    capture: Option<Capture>,
    helpers: Vec<Helper>,
}

impl<S: Strategy> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("feeds", &self.universe.feeds.len())
            .finish()
    }
}

impl<S: Strategy> Engine<S> {
    /// Starts every feed thread and the strategy thread.
    pub fn start(config: Config, strategy: S) -> Result<Engine<S>, StartError> {
        crate::clock::init();
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut symbols: Vec<String> = Vec::new();
        let mut intern = HashMap::new();
        let mut universe = Universe::default();
        let mut params = Vec::new();
        // One attempt budget per venue host, shared by every feed that connects there.
        let mut gates: HashMap<String, Arc<ConnectGate>> = HashMap::new();
        let mut gate = |e: &Endpoint, venue: crate::venue::Venue| {
            let host = format!("{}:{}", e.host, e.port);
            let (limit, window) = venue.connect_limit();
            gates
                .entry(host.clone())
                .or_insert_with(|| {
                    Arc::new(ConnectGate::new(
                        host,
                        config.engine.connect_limit.unwrap_or(limit),
                        config
                            .engine
                            .connect_window_ms
                            .map_or(window, Duration::from_millis),
                    ))
                })
                .clone()
        };
        for spec in &config.feeds {
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
                    .map(|s| {
                        // One id per instrument across venues: OKX BTC-USDT-SWAP is BTCUSDT.
                        let name = crate::venue::canonical_symbol(&s.symbol);
                        *intern.entry(name.clone()).or_insert_with(|| {
                            symbols.push(name);
                            SymbolId(symbols.len() as u16 - 1)
                        })
                    })
                    .collect();
                let path = spec.venue.endpoint_path(route);
                let mut targets = vec![Target {
                    endpoint: spec.endpoint.clone(),
                    url: spec.endpoint.url(path),
                    gate: gate(&spec.endpoint, spec.venue),
                }];
                if let Some(standby) = &spec.standby {
                    targets.push(Target {
                        endpoint: standby.clone(),
                        url: standby.url(path),
                        gate: gate(standby, spec.venue),
                    });
                }
                universe.feeds.push(FeedInfo {
                    name: name.clone(),
                    venue: spec.venue,
                    url: spec.endpoint.url(path),
                    streams: streams.clone(),
                });
                params.push(FeedParams {
                    id: params.len() as u16,
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
                    max_connection_age: match spec.reconnect.max_connection_age_ms {
                        0 => None,
                        ms => Some(Duration::from_millis(ms)),
                    },
                    reorder_window: Duration::from_millis(spec.reorder_window_ms),
                    wait: spec.wait,
                    core: spec.core,
                    recv_buffer: spec.recv_buffer_bytes,
                    ws_config: WebSocketConfig::default()
                        .read_buffer_size(READ_CHUNK)
                        .max_message_size(Some(spec.max_message_bytes))
                        .max_frame_size(Some(spec.max_frame_bytes)),
                    tls: tls.clone(),
                    capture: None,
                    rest_base: spec.rest_base.clone(),
                });
            }
        }
        universe.symbols = symbols;
        warn_oversubscription(&config, &params);

        let latency = Arc::new(Mutex::new(nanos_histogram()));
        let mut receivers = Vec::new();
        let mut feeds = Vec::new();
        let stats: Vec<Arc<FeedStats>> = params.iter().map(feed_stats).collect();
        // Blocking work runs on helper threads, never on a feed thread: host names are resolved
        // on one, and Binance depth streams build their books from REST snapshots fetched on
        // another (a slow snapshot must not delay a reconnect's lookup).
        let mut helpers = Vec::new();
        let mut handles = Helpers::default();
        let needs_dns = params.iter().any(|p| {
            p.targets
                .iter()
                .any(|t| t.endpoint.host.parse::<std::net::IpAddr>().is_err())
        });
        if needs_dns {
            let h = Helper::start("resolver")
                .map_err(|e| StartError(format!("cannot start the resolver thread: {e}")))?;
            handles.resolver = Some(h.handle());
            helpers.push(h);
        }
        for p in &mut params {
            let depth = p
                .streams
                .iter()
                .any(|s| matches!(s.kind, crate::venue::StreamKind::Depth { .. }));
            if !depth {
                p.rest_base = None;
            }
        }
        if params.iter().any(|p| p.rest_base.is_some()) {
            let h = Helper::start("snapshots")
                .map_err(|e| StartError(format!("cannot start the snapshot thread: {e}")))?;
            handles.snapshots = Some(h.handle());
            helpers.push(h);
        }
        let capture = match &config.capture {
            Some(c) => {
                let feeds = params
                    .iter()
                    .zip(&stats)
                    .map(|(p, st)| CaptureFeed {
                        venue: p.venue.name().to_string(),
                        streams: p.streams.clone(),
                        stats: st.clone(),
                    })
                    .collect();
                let (capture, tx) = Capture::start(&c.dir, feeds, config.effective.clone())
                    .map_err(|e| StartError(format!("capture: {e}")))?;
                for p in &mut params {
                    p.capture = Some(tx.clone());
                }
                Some(capture)
            }
            None => None,
        };
        for (p, st) in params.into_iter().zip(&stats) {
            let (ticks, ticks_rx) = bounded(config.engine.channel_capacity);
            let (health, health_rx) = unbounded();
            receivers.push(Lane::new(ticks_rx.clone(), health_rx));
            let sink = ChannelSink::new(vec![Outbox::new(
                ticks,
                ticks_rx,
                health,
                config.engine.on_full,
                st.clone(),
            )]);
            let thread_name = format!("feed-{}", p.name);
            let (mut driver, waker) = Driver::new(
                p.name.clone(),
                sink,
                handles.clone(),
                p.wait,
                p.core,
                shutdown.clone(),
            )
            .map_err(|e| StartError(format!("cannot create a poller: {e}")))?;
            let connector = Connector {
                tls: p.tls.clone(),
                ws_config: p.ws_config,
                recv_buffer: p.recv_buffer,
            };
            let lane = driver.next_lane();
            driver.add(FeedCore::new(p, st.clone(), lane), connector);
            let handle = std::thread::Builder::new()
                .name(thread_name)
                .spawn(move || driver.run())
                .map_err(|e| StartError(format!("cannot spawn a feed thread: {e}")))?;
            feeds.push(FeedThread { handle, waker });
        }
        drop(handles);
        let (wait, core) = (config.engine.strategy_wait(), config.engine.strategy_core);
        let (sd, lat, uni) = (shutdown.clone(), latency.clone(), universe.clone());
        let strategy = std::thread::Builder::new()
            .name("strategy".into())
            .spawn(move || {
                if let Some(id) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                        warn!("strategy thread: could not pin to core {id}");
                    }
                }
                strategy::run(strategy, &uni, receivers, wait, sd, lat)
            })
            .map_err(|e| StartError(format!("cannot spawn the strategy thread: {e}")))?;
        Ok(Engine {
            feeds,
            stats,
            strategy: Some(strategy),
            shutdown,
            latency,
            universe,
            started: Instant::now(),
            capture,
            helpers,
        })
    }

    /// The capture's session folder, when capture is on.
    pub fn session_dir(&self) -> Option<&std::path::Path> {
        self.capture.as_ref().map(|c| c.dir.as_path())
    }

    /// Names behind the ids.
    pub fn universe(&self) -> &Universe {
        &self.universe
    }

    /// Live counters of every feed, indexed by feed id.
    pub fn stats(&self) -> &[Arc<FeedStats>] {
        &self.stats
    }

    /// One status line: message rate since `prev`, each feed's state and reconnects.
    pub fn status_line(&self, prev: &mut StatusMark) -> String {
        let now = Instant::now();
        let msgs: u64 = self
            .stats
            .iter()
            .map(|s| s.messages.load(Ordering::Relaxed))
            .sum();
        let dt = now.duration_since(prev.at).as_secs_f64().max(1e-3);
        let rate = (msgs - prev.messages) as f64 / dt;
        *prev = StatusMark {
            at: now,
            messages: msgs,
        };
        let mut line = format!(
            "[{:>5.1}s] {:>7.0} msg/s |",
            now.duration_since(self.started).as_secs_f64(),
            rate
        );
        for s in &self.stats {
            let _ = write!(line, " {} {}", s.name, s.state().name());
            if s.slot_count() > 1 || s.standby_url.is_some() {
                let slots: Vec<String> = s.slots[..s.slot_count()]
                    .iter()
                    .map(|c| {
                        format!(
                            "{}#{}:{}",
                            c.role().name(),
                            c.conn.load(Ordering::Relaxed),
                            c.state().name()
                        )
                    })
                    .collect();
                let _ = write!(line, " [{}]", slots.join(" "));
            }
            let _ = write!(line, " r{}", s.reconnects.load(Ordering::Relaxed));
            let dropped = s.dropped.load(Ordering::Relaxed);
            if dropped > 0 {
                let _ = write!(line, " drops {dropped}");
            }
            line.push_str(" |");
        }
        line.pop();
        line
    }

    /// Reconnect-time, gap and tick-latency percentiles so far, on one line.
    pub fn percentile_line(&self) -> String {
        let (_, reconnect_us, gap_us, misses) = self.reconnect_histograms();
        let latency = self.latency_snapshot();
        format!(
            "reconnect {} (over {}s target: {misses}) | gap {} | tick latency {}",
            percentiles(&reconnect_us, 1000),
            RECONNECT_TARGET.as_secs(),
            percentiles(&gap_us, 1000),
            percentiles(&latency, 1)
        )
    }

    /// The strategy thread's tick latency so far (merged every 250 ms), ns.
    fn latency_snapshot(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| nanos_histogram())
    }

    /// All feeds' detection, reconnect and gap histograms merged, and the count of target
    /// misses.
    fn reconnect_histograms(&self) -> (Histogram<u64>, Histogram<u64>, Histogram<u64>, u64) {
        let mut detect_us = micros_histogram();
        let mut reconnect_us = micros_histogram();
        let mut gap_us = micros_histogram();
        let mut misses = 0;
        for s in &self.stats {
            if let Ok(h) = s.histograms.lock() {
                let _ = detect_us.add(&h.detect_us);
                let _ = reconnect_us.add(&h.reconnect_us);
                let _ = gap_us.add(&h.gap_us);
                misses += h.target_misses;
            }
        }
        (detect_us, reconnect_us, gap_us, misses)
    }

    /// Stops every thread (each within a second, in any state), then reports.
    pub fn stop(mut self) -> (Summary, S) {
        self.shutdown.store(true, Ordering::Release);
        for f in &self.feeds {
            let _ = f.waker.wake();
        }
        for f in self.feeds.drain(..) {
            if f.handle.join().is_err() {
                warn!("a feed thread panicked");
            }
        }
        let strategy = self
            .strategy
            .take()
            .map(|h| h.join().expect("strategy thread panicked"))
            .expect("the strategy thread runs until stop");
        // Every feed (every capture sender) is gone: the capture drains, syncs and writes the
        // final manifest.
        let capture = self.capture.take().map(Capture::finish);
        for h in self.helpers.drain(..) {
            h.finish();
        }
        let (detect_us, reconnect_us, gap_us, target_misses) = self.reconnect_histograms();
        let tick_latency_ns = self.latency_snapshot();
        let summary = Summary {
            ran_for: self.started.elapsed(),
            capture,
            detect_us,
            feeds: self.stats.iter().map(|s| FeedSummary::of(s)).collect(),
            reconnect_us,
            gap_us,
            target_misses,
            tick_latency_ns,
            strategy_report: strategy.report(),
        };
        (summary, strategy)
    }
}

/// The counters of a feed about to start.
fn feed_stats(p: &FeedParams) -> Arc<FeedStats> {
    let mut st = FeedStats::new(p.name.clone(), p.targets[0].url.clone());
    st.venue = p.venue.name().to_string();
    st.streams = p.streams.iter().map(|s| s.name.clone()).collect();
    st.standby_url = p.targets.get(1).map(|t| t.url.clone());
    Arc::new(st)
}

/// Where the previous status line left off.
#[derive(Clone, Copy, Debug)]
pub struct StatusMark {
    at: Instant,
    messages: u64,
}

impl Default for StatusMark {
    fn default() -> Self {
        StatusMark {
            at: Instant::now(),
            messages: 0,
        }
    }
}

/// How much tungstenite reads per `read` call. It zero-fills that much of its buffer before
/// every call (the default, 128 KiB, cost several µs per message here); a socket read of 8 KiB
/// still carries ~40 bookTicker frames when the feed is behind.
const READ_CHUNK: usize = 8 * 1024;

/// Spinning threads beyond the number of cores send tails to the scheduler tick.
fn warn_oversubscription(config: &Config, feeds: &[FeedParams]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut spinners: Vec<(String, Option<usize>)> = feeds
        .iter()
        .filter(|f| f.wait == WaitMode::Spin)
        .map(|f| (format!("feed '{}'", f.name), f.core))
        .collect();
    if config.engine.strategy_wait() == WaitMode::Spin {
        spinners.push(("the strategy".into(), config.engine.strategy_core));
    }
    if let Some(warning) = oversubscription(&spinners, cores) {
        warn!("{warning}");
    }
}

/// What is wrong with these spinning threads (name, pinned core) on `cores` cores, if anything:
/// more of them than cores, or two pinned to one core. Either way they take turns at the
/// scheduler's pace, and latency tails reach its tick (milliseconds).
fn oversubscription(spinners: &[(String, Option<usize>)], cores: usize) -> Option<String> {
    if spinners.len() > cores {
        let names: Vec<&str> = spinners.iter().map(|(n, _)| n.as_str()).collect();
        return Some(format!(
            "{} spinning threads ({}) on {cores} cores: more than there are cores to pin them to,              so they preempt each other and latency tails reach the scheduler tick; set wait =              \"block\" on some feeds or strategy_wait = \"block\"",
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
