//! Builds the threads from a validated config, wires the channels, and shuts down in order.
//!
//! What runs is worked out first (`plan.rs`): one feed per connection route of each configured
//! feed (Binance USD-M `/public` and `/market` are two), and which thread (driver) runs which
//! feeds — a thread per feed unless feeds share a `[[drivers]]` entry. With `strategy =
//! "thread"` every driver sends to one strategy thread over per-feed channels; with `strategy =
//! "inline"` the one driver calls the strategy in place. Shutdown sets a flag and wakes every
//! driver's poll; drivers close their sockets and drop their senders (or hand the inline
//! strategy back); the strategy thread drains what was sent and returns the strategy.

mod plan;
mod reload;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, unbounded, Sender};
use hdrhistogram::Histogram;
use log::warn;
use mio::Waker;

use self::plan::DriverPlan;
pub use self::plan::StartError;
pub(crate) use self::plan::{oversubscription, spinners, threads, ThreadNeed};
pub use self::status::STATUS_WIDTH;
use self::status::{ConnView, FeedView};
use crate::capture::{Capture, CaptureFeed, CaptureMsg};
use crate::config::{Config, StrategyPlace};
use crate::feed::core::FeedCore;
use crate::feed::driver::{Connector, Driver, Helpers};
use crate::feed::params::FeedParams;
use crate::feed::sink::{ChannelSink, Outbox, Sink};
use crate::helper::Helper;
use crate::metrics::{micros_histogram, nanos_histogram, FeedStats};
use crate::nats::{self, NatsStats, Tapped};
use crate::ops::{health, Endpoint, Observed};
use crate::strategy::{self, Inline, Lane, Strategy, Universe};
use crate::summary::{FeedSummary, Summary};

/// A driver's thread: it hands the strategy back when the strategy ran on it.
struct DriverThread<S> {
    handle: JoinHandle<Option<S>>,
    waker: Arc<Waker>,
    /// Stops this driver alone (a reload) or with the others (the engine's stop).
    stop: Arc<AtomicBool>,
    /// The ids of the feeds it runs.
    feeds: Vec<usize>,
}

/// Starts a driver thread named `feed-<plan.name>` hosting `hosted` (feed ids' counters in
/// `stats`), with `sink`; `finish` turns the sink back into the strategy, when it holds one.
fn spawn_driver<S: Strategy, K: Sink + Send + 'static>(
    plan: DriverPlan,
    sink: K,
    hosted: Vec<FeedParams>,
    stats: &[Arc<FeedStats>],
    helpers: &Helpers,
    finish: impl FnOnce(K) -> Option<S> + Send + 'static,
) -> Result<DriverThread<S>, StartError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut driver, waker) = Driver::new(
        plan.name.clone(),
        sink,
        helpers.clone(),
        plan.wait,
        plan.core,
        stop.clone(),
    )
    .map_err(|e| StartError(format!("cannot create a poller: {e}")))?;
    for p in hosted {
        let connector = Connector {
            tls: p.tls.clone(),
            ws_config: p.ws_config,
            recv_buffer: p.recv_buffer,
        };
        let st = stats[usize::from(p.id)].clone();
        let lane = driver.next_lane();
        driver.add(FeedCore::new(p, st, lane), connector);
    }
    let handle = std::thread::Builder::new()
        .name(plan.thread_name())
        .spawn(move || finish(driver.run()))
        .map_err(|e| StartError(format!("cannot spawn a feed thread: {e}")))?;
    Ok(DriverThread {
        handle,
        waker,
        stop,
        feeds: plan.feeds,
    })
}

/// A running engine.
pub struct Engine<S: Strategy> {
    threads: Vec<DriverThread<S>>,
    stats: Vec<Arc<FeedStats>>,
    /// The same counters, as the metrics endpoint reads them (a reload adds to both).
    observed: Arc<RwLock<Vec<Arc<FeedStats>>>>,
    /// The config running now (what a reload compares a new one with).
    config: Config,
    /// What a reload plans added feeds with.
    planner: plan::Planner,
    /// The configured feed or account each feed comes from, by feed id.
    owners: Vec<String>,
    /// A reload's new lanes to the strategy thread (`None`: inline, or stopped).
    control: Option<Sender<strategy::Control>>,
    /// The helper threads' handles, for drivers a reload starts.
    handles: Option<Helpers>,
    /// The capture thread's channel, for feeds a reload adds.
    capture_tx: Option<Sender<CaptureMsg>>,
    strategy: Option<JoinHandle<S>>,
    shutdown: Arc<AtomicBool>,
    latency: Arc<Mutex<Histogram<u64>>>,
    started: Instant,
    capture: Option<Capture>,
    helpers: Vec<Helper>,
    endpoint: Option<Endpoint>,
    nats: Option<nats::Running>,
}

impl<S: Strategy> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("feeds", &self.planner.universe.feeds.len())
            .finish()
    }
}

impl<S: Strategy> Engine<S> {
    /// Starts every feed thread and the strategy thread.
    pub fn start(config: Config, strategy: S) -> Result<Engine<S>, StartError> {
        crate::clock::init();
        let shutdown = Arc::new(AtomicBool::new(false));
        let plan::Plan {
            mut params,
            drivers,
            planner,
            owners,
        } = plan::plan(&config)?;
        let universe = &planner.universe;

        let latency = Arc::new(Mutex::new(nanos_histogram()));
        let stats: Vec<Arc<FeedStats>> = params.iter().map(feed_stats).collect();
        let observed = Arc::new(RwLock::new(stats.clone()));
        let nats_stats = Arc::new(NatsStats::default());
        // The endpoint first: an address that cannot be bound fails the start before any thread
        // runs.
        let started = Instant::now();
        let endpoint = match &config.metrics {
            Some(m) => {
                let observed = Observed {
                    nats: config.nats.as_ref().map(|_| nats_stats.clone()),
                    stats: observed.clone(),
                    latency: latency.clone(),
                    started,
                };
                Some(
                    Endpoint::start(m.listen, observed)
                        .map_err(|e| StartError(format!("metrics endpoint: {e}")))?,
                )
            }
            None => None,
        };
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
        let listen_keys = params
            .iter()
            .any(|p| p.account.as_ref().is_some_and(|a| a.rest_base.is_some()));
        if listen_keys || params.iter().any(|p| p.rest_base.is_some()) {
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
                        symbols: p.symbols.clone(),
                        rest_books: p.rest_base.is_some(),
                    })
                    .collect();
                let (capture, tx) =
                    Capture::start(&c.dir, feeds, config.effective.clone(), latency.clone())
                        .map_err(|e| StartError(format!("capture: {e}")))?;
                for p in &mut params {
                    p.capture = Some(tx.clone());
                }
                Some((capture, tx))
            }
            None => None,
        };
        let (capture, capture_tx) = match capture {
            Some((c, tx)) => (Some(c), Some(tx)),
            None => (None, None),
        };
        // The NATS sink's thread, fed by the strategy side (`Tapped`), never by a feed thread.
        let (nats, mut tap) = nats::start(config.nats.as_ref(), universe, nats_stats)
            .map_err(|e| StartError(format!("cannot spawn the NATS sink thread: {e}")))?;
        // Each driver's thread, with its sink: the channels to the strategy thread, or the
        // strategy itself.
        let mut params: Vec<Option<FeedParams>> = params.into_iter().map(Some).collect();
        let mut lanes: Vec<Option<Lane>> = (0..params.len()).map(|_| None).collect();
        let mut strategy = Some(strategy);
        let inline = config.engine.strategy == StrategyPlace::Inline;
        if inline {
            if let Some(s) = strategy.as_mut() {
                s.on_start(universe);
            }
        }
        let mut threads = Vec::with_capacity(drivers.len());
        for plan in drivers {
            let hosted: Vec<FeedParams> = plan
                .feeds
                .iter()
                .filter_map(|&id| params[id].take())
                .collect();
            let thread = if inline {
                let Some(s) = strategy.take() else {
                    return Err(StartError("the inline strategy runs on one driver".into()));
                };
                let sink = Inline::new(Tapped::new(s, tap.take()), latency.clone());
                spawn_driver(plan, sink, hosted, &stats, &handles, |sink| {
                    Some(sink.finish().into_inner())
                })?
            } else {
                let outboxes = hosted
                    .iter()
                    .map(|p| {
                        let (outbox, lane) = channels(&config, stats[usize::from(p.id)].clone());
                        lanes[usize::from(p.id)] = Some(lane);
                        outbox
                    })
                    .collect();
                let sink = ChannelSink::new(outboxes);
                spawn_driver(plan, sink, hosted, &stats, &handles, |_| None)?
            };
            threads.push(thread);
        }
        let (control_tx, control_rx) = unbounded();
        let strategy = match strategy {
            None => None,
            Some(strategy) => {
                let receivers: Vec<Lane> = lanes.into_iter().flatten().collect();
                let (wait, core) = (config.engine.strategy_wait(), config.engine.strategy_core);
                let (sd, lat, uni) = (shutdown.clone(), latency.clone(), universe.clone());
                let strategy = Tapped::new(strategy, tap.take());
                let handle = std::thread::Builder::new()
                    .name("strategy".into())
                    .spawn(move || {
                        crate::helper::pin_current_thread(core, "strategy thread");
                        strategy::run(strategy, &uni, receivers, wait, sd, lat, control_rx)
                            .into_inner()
                    })
                    .map_err(|e| StartError(format!("cannot spawn the strategy thread: {e}")))?;
                Some(handle)
            }
        };
        Ok(Engine {
            control: strategy.is_some().then_some(control_tx),
            threads,
            stats,
            observed,
            config,
            planner,
            owners,
            handles: Some(handles),
            capture_tx,
            strategy,
            shutdown,
            latency,
            started,
            capture,
            helpers,
            endpoint,
            nats,
        })
    }

    /// The capture's session folder, when capture is on.
    pub fn session_dir(&self) -> Option<&std::path::Path> {
        self.capture.as_ref().map(|c| c.dir.as_path())
    }

    /// Names behind the ids.
    pub fn universe(&self) -> &Universe {
        &self.planner.universe
    }

    /// Where `/metrics`, `/healthz` and `/status` are served, when `[metrics]` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.endpoint.as_ref().map(Endpoint::addr)
    }

    /// The NATS sink's live counters, when `[sink.nats]` is set.
    pub fn nats_stats(&self) -> Option<Arc<NatsStats>> {
        self.nats.as_ref().map(nats::Running::stats)
    }

    /// Whether every required feed (every feed, when none is marked) has stopped for good: the
    /// process has nothing left to run for, and `run` exits with an error.
    pub fn failed(&self) -> bool {
        health::all_failed(&self.stats)
    }

    /// Live counters of every feed, indexed by feed id.
    pub fn stats(&self) -> &[Arc<FeedStats>] {
        &self.stats
    }

    /// The status text: message rate since `prev`, how many feeds (and connections of feeds
    /// with a standby) are streaming, reconnects and drops, in at most
    /// [`STATUS_WIDTH`] columns; and, only while a feed or connection is not streaming, a second
    /// line naming each with its state.
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
        let feeds: Vec<FeedView<'_>> = self
            .stats
            .iter()
            .filter(|s| !s.is_retired())
            .map(|s| FeedView {
                name: &s.name,
                state: s.state(),
                reconnects: s.reconnects.load(Ordering::Relaxed),
                dropped: s.dropped.load(Ordering::Relaxed),
                conns: if s.slot_count() > 1 || s.standby_url.is_some() {
                    s.slots[..s.slot_count()]
                        .iter()
                        .map(|c| ConnView {
                            role: c.role(),
                            number: c.conn.load(Ordering::Relaxed),
                            state: c.state(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        status::format(now.duration_since(self.started), rate, &feeds)
    }

    /// Reconnect-time, gap and tick-latency percentiles so far, on one line of at most
    /// [`STATUS_WIDTH`] columns (count, p50 and p99; the summary has the rest).
    pub fn percentile_line(&self) -> String {
        let (_, reconnect_us, gap_us, misses) = self.reconnect_histograms();
        status::percentile_line(&reconnect_us, &gap_us, misses, &self.latency_snapshot())
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
                h.add_to(&mut detect_us, &mut reconnect_us, &mut gap_us);
                misses += h.target_misses;
            }
        }
        (detect_us, reconnect_us, gap_us, misses)
    }

    /// Stops every thread (each within a second, in any state), then reports.
    pub fn stop(mut self) -> (Summary, S) {
        // Dropping the endpoint stops its thread.
        drop(self.endpoint.take());
        self.shutdown.store(true, Ordering::Release);
        for t in &self.threads {
            t.stop.store(true, Ordering::Release);
            let _ = t.waker.wake();
        }
        let mut inline = None;
        for t in self.threads.drain(..) {
            match t.handle.join() {
                Ok(Some(strategy)) => inline = Some(strategy),
                Ok(None) => {}
                Err(_) => warn!("a feed thread panicked"),
            }
        }
        // No reload can add a lane now: the strategy thread ends once the lanes are drained.
        drop(self.control.take());
        drop(self.handles.take());
        drop(self.capture_tx.take());
        let strategy = match self.strategy.take() {
            Some(h) => h.join().expect("strategy thread panicked"),
            None => inline.expect("the inline strategy's driver thread panicked"),
        };
        // The strategy (and its tap) is gone: the NATS sink publishes what it holds and ends.
        let nats = self.nats.take().map(nats::Running::finish);
        // Every feed (every capture sender) is gone: the capture drains, syncs and writes the
        // final manifest.
        let capture = self.capture.take().map(Capture::finish);
        for h in self.helpers.drain(..) {
            h.finish();
        }
        let (detect_us, reconnect_us, gap_us, target_misses) = self.reconnect_histograms();
        let tick_latency_ns = self.latency_snapshot();
        let summary = Summary {
            failed: self.failed(),
            ran_for: self.started.elapsed(),
            capture,
            detect_us,
            feeds: self.stats.iter().map(|s| FeedSummary::of(s)).collect(),
            reconnect_us,
            gap_us,
            target_misses,
            tick_latency_ns,
            strategy_report: strategy.report(),
            nats,
        };
        (summary, strategy)
    }
}

/// A feed's channels to the strategy thread: its outbox (the driver's end) and its lane.
fn channels(config: &Config, stats: Arc<FeedStats>) -> (Outbox, Lane) {
    let (ticks, ticks_rx) = bounded(config.engine.channel_capacity);
    let (health, health_rx) = unbounded();
    let lane = Lane::new(ticks_rx.clone(), health_rx);
    let outbox = Outbox::new(ticks, ticks_rx, health, config.engine.on_full, stats);
    (outbox, lane)
}

/// The counters of a feed about to start.
fn feed_stats(p: &FeedParams) -> Arc<FeedStats> {
    let mut st = FeedStats::new(p.name.clone(), p.targets[0].url.clone());
    st.venue = p.venue.name().to_string();
    st.streams = p.streams.iter().map(|s| s.name.clone()).collect();
    st.standby_url = p.targets.get(1).map(|t| t.url.clone());
    st.required = p.required;
    st.is_account = p.account.is_some();
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
