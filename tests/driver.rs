//! The feed driver against the simulator: on its own, a resolver that hangs costs only the
//! connection that waits for it (its attempts time out while the standby on the same thread
//! streams), and one driver hosts several feeds, each in its own lane of one sink; through the
//! engine, feeds that share a `[[drivers]]` entry run on one thread, and an inline strategy is
//! called on the thread that reads every feed, health events in order with the ticks.
//!
//! Every wait has a deadline; no sleep stands in for an event.

mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use util::{eventually, fast_reconnect, sim, WAIT};
use wsfeed::config::{Endpoint, ReconnectConfig, WaitMode};
use wsfeed::feed::core::FeedCore;
use wsfeed::feed::driver::{Connector, Driver, Helpers};
use wsfeed::feed::limiter::ConnectGate;
use wsfeed::feed::params::{FeedParams, Target};
use wsfeed::feed::sink::Sink;
use wsfeed::helper::Helper;
use wsfeed::metrics::{FeedState, FeedStats, SlotRole};
use wsfeed::sim::Sim;
use wsfeed::tick::{DisconnectReason, Health, HealthMsg, SymbolId, Tick};
use wsfeed::venue::Venue;

/// What the driver's feeds handed over, by lane.
#[derive(Default)]
struct Seen {
    ticks: Vec<(usize, Tick)>,
    health: Vec<(usize, Health)>,
}

#[derive(Clone, Default)]
struct Shared(Arc<(Mutex<Seen>, Condvar)>);

impl Shared {
    fn wait(&self, what: &str, pred: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + WAIT;
        let (lock, cv) = &*self.0;
        let mut seen = lock.lock().unwrap();
        while !pred(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for: {what}");
            seen = cv.wait_timeout(seen, left).unwrap().0;
        }
    }
}

impl Sink for Shared {
    fn tick(&mut self, lane: usize, tick: Tick) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().ticks.push((lane, tick));
        cv.notify_all();
    }
    fn health(&mut self, lane: usize, msg: HealthMsg) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().health.push((lane, msg.event));
        cv.notify_all();
    }
    fn account(&mut self, _lane: usize, _msg: wsfeed::account::AccountMsg) {
        unreachable!("these feeds are market feeds");
    }
}

fn target(url: &str, path: &str) -> Target {
    let endpoint = Endpoint::parse(url).unwrap();
    Target {
        url: endpoint.url(path),
        gate: Arc::new(ConnectGate::new(url.into(), 1000, Duration::from_secs(1))),
        endpoint,
    }
}

fn params(
    id: u16,
    targets: Vec<Target>,
    streams: &[&str],
    reconnect: ReconnectConfig,
) -> FeedParams {
    let venue = Venue::BinanceSpot;
    let streams: Vec<_> = streams
        .iter()
        .map(|s| venue.parse_stream(s).unwrap())
        .collect();
    let n = streams.len();
    FeedParams {
        id,
        required: true,
        name: format!("feed{id}"),
        venue,
        targets,
        streams,
        symbols: vec![SymbolId(0); n],
        silence: vec![Duration::from_secs(10); n],
        reconnect,
        max_connection_age: None,
        reorder_window: Duration::from_millis(20),
        recv_buffer: None,
        ws_config: Default::default(),
        tls: None,
        capture: None,
        rest_base: None,
        account: None,
    }
}

/// A driver running on its own thread until dropped.
struct Running {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        // A failed test leaves a driver that may be stuck (that is what it found) behind.
        if let Some(t) = self.thread.take().filter(|_| !std::thread::panicking()) {
            t.join().expect("driver thread");
        }
    }
}

fn run(feeds: Vec<FeedParams>, helpers: Helpers, sink: Shared) -> (Running, Vec<Arc<FeedStats>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut driver, waker) = Driver::new(
        "test".into(),
        sink,
        helpers,
        WaitMode::Block,
        None,
        stop.clone(),
    )
    .unwrap();
    let mut stats = Vec::new();
    for p in feeds {
        let st = Arc::new(FeedStats::new(p.name.clone(), p.targets[0].url.clone()));
        let lane = driver.next_lane();
        let connector = Connector {
            tls: None,
            ws_config: Default::default(),
            recv_buffer: None,
        };
        driver.add(FeedCore::new(p, st.clone(), lane), connector);
        stats.push(st);
    }
    let thread = std::thread::Builder::new()
        .name("feed-test".into())
        .spawn(move || {
            driver.run();
        })
        .unwrap();
    let running = Running {
        stop,
        waker,
        thread: Some(thread),
    };
    (running, stats)
}

fn plain_sim() -> Sim {
    sim(false, false)
}

#[test]
fn a_resolver_that_hangs_costs_only_the_connection_waiting_for_it() {
    let sim = plain_sim();
    let hung = Arc::new((Mutex::new(0u32), Condvar::new()));
    let asked = hung.clone();
    let resolver = Helper::start("resolver").unwrap();
    let helpers = Helpers {
        resolver: Some(resolver.handle()),
        // Counts the question, then never answers.
        resolve: Arc::new(
            move |_host: &str, _port: u16| -> Result<SocketAddr, DisconnectReason> {
                let (count, cv) = &*asked;
                *count.lock().unwrap() += 1;
                cv.notify_all();
                loop {
                    std::thread::park();
                }
            },
        ),
        ..Helpers::default()
    };
    let reconnect = ReconnectConfig {
        connect_timeout_ms: 300,
        ..fast_reconnect()
    };
    let port = sim.port();
    let feed = params(
        0,
        vec![
            target(&format!("ws://venue.invalid:{port}"), "/stream"),
            target(&sim.base_url(), "/stream"),
        ],
        &["btcusdt@bookTicker"],
        reconnect,
    );
    let sink = Shared::default();
    let (running, stats) = run(vec![feed], helpers, sink.clone());
    // The standby (on 127.0.0.1) streams while the primary waits on the resolver, which it
    // asked once: its attempts time out and back off, on the same thread.
    sink.wait("the standby streams", |s| s.ticks.len() >= 50);
    let st = &stats[0];
    eventually("the primary's attempts go on", || {
        st.attempts.load(Ordering::Relaxed) >= 4
    });
    let before = sink.0 .0.lock().unwrap().ticks.len();
    sink.wait("ticks still flowing", |s| s.ticks.len() >= before + 50);
    assert_eq!(*hung.0.lock().unwrap(), 1, "one question, waited for");
    let roles: Vec<(SlotRole, FeedState)> = st.slots[..st.slot_count()]
        .iter()
        .map(|s| (s.role(), s.state()))
        .collect();
    assert_eq!(roles[1], (SlotRole::Standby, FeedState::Streaming));
    assert_ne!(roles[0].1, FeedState::Streaming, "{roles:?}");
    let health = sink.0 .0.lock().unwrap().health.clone();
    assert_eq!(
        health.first(),
        Some(&(0, Health::Connected { conn: 1 })),
        "{health:?}"
    );
    drop(running);
    resolver.finish();
    sim.shutdown();
}

#[test]
fn one_driver_hosts_several_feeds_each_in_its_own_lane() {
    let (a, b) = (plain_sim(), plain_sim());
    let feeds = vec![
        params(
            0,
            vec![target(&a.base_url(), "/stream")],
            &["btcusdt@bookTicker"],
            fast_reconnect(),
        ),
        params(
            1,
            vec![target(&b.base_url(), "/stream")],
            &["ethusdt@aggTrade", "ethusdt@bookTicker"],
            fast_reconnect(),
        ),
    ];
    let sink = Shared::default();
    let (running, stats) = run(feeds, Helpers::default(), sink.clone());
    sink.wait("both feeds stream", |s| {
        let lane = |n: usize| s.ticks.iter().filter(|(l, _)| *l == n).count();
        lane(0) >= 20 && lane(1) >= 20
    });
    let seen = sink.0 .0.lock().unwrap();
    assert!(seen
        .ticks
        .iter()
        .all(|(lane, t)| usize::from(t.feed) == *lane));
    assert!(seen.health.contains(&(0, Health::Connected { conn: 1 })));
    assert!(seen.health.contains(&(1, Health::Connected { conn: 1 })));
    drop(seen);
    // A fault on one feed's venue is that feed's alone.
    b.inject(wsfeed::sim::Fault::Close { code: 1001 });
    sink.wait("feed 1 recovers", |s| {
        s.health
            .iter()
            .any(|(l, h)| *l == 1 && matches!(h, Health::Recovered { .. }))
    });
    let seen = sink.0 .0.lock().unwrap();
    assert!(
        !seen
            .health
            .iter()
            .any(|(l, h)| *l == 0
                && matches!(h, Health::Disconnected { .. } | Health::Recovered { .. })),
        "{:?}",
        seen.health
    );
    assert_eq!(stats[0].state(), FeedState::Streaming);
    drop(seen);
    drop(running);
    a.shutdown();
    b.shutdown();
}

/// A strategy that notes which threads called it, around the tests' recorder.
struct OnThreads {
    inner: util::Recorder,
    threads: ThreadNames,
}

impl wsfeed::strategy::Strategy for OnThreads {
    fn on_start(&mut self, universe: &wsfeed::strategy::Universe) {
        self.inner.on_start(universe);
    }
    fn on_tick(&mut self, tick: &Tick) {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.threads.lock().unwrap().insert(name);
        self.inner.on_tick(tick);
    }
    fn on_health(&mut self, feed: u16, at_ns: u64, event: &Health) {
        self.inner.on_health(feed, at_ns, event);
    }
}

/// Names of the threads a strategy was called on.
type ThreadNames = Arc<Mutex<std::collections::BTreeSet<String>>>;

/// An engine over two simulators (Binance spot, OKX) with `tweak` applied to its config.
fn engine_of_two(
    tweak: impl FnOnce(&mut wsfeed::config::FileConfig),
) -> (
    wsfeed::engine::Engine<OnThreads>,
    util::Probe,
    ThreadNames,
    [Sim; 2],
) {
    let spot = plain_sim();
    let okx = Sim::start(wsfeed::sim::SimConfig {
        tls: false,
        venue: wsfeed::sim::SimVenue::Okx,
        symbols: vec!["BTCUSDT".into()],
        book_interval: Duration::from_millis(5),
        ..wsfeed::sim::SimConfig::default()
    })
    .unwrap();
    let mut file: wsfeed::config::FileConfig = toml::from_str("").unwrap();
    file.reconnect = fast_reconnect();
    file.feeds = vec![
        util::feed("spot", "binance-spot", &spot, &["btcusdt@bookTicker"]),
        util::feed("okx", "okx", &okx, &["bbo-tbt:BTC-USDT-SWAP"]),
    ];
    tweak(&mut file);
    let config = file.validate().expect("valid config");
    let (inner, probe) = util::recorder();
    let threads = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let strategy = OnThreads {
        inner,
        threads: threads.clone(),
    };
    let engine = wsfeed::engine::Engine::start(config, strategy).expect("engine starts");
    (engine, probe, threads, [spot, okx])
}

/// Threads of this process whose name starts with `prefix` (Linux: /proc/self/task).
fn threads_named(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[test]
fn the_inline_strategy_runs_on_the_thread_that_reads_every_feed() {
    let (engine, probe, threads, [spot, okx]) =
        engine_of_two(|f| f.engine.strategy = wsfeed::config::StrategyPlace::Inline);
    probe.wait("both feeds tick", |s| {
        util::ticks_of(s, 0, "btcusdt@bookTicker") >= 20
            && util::ticks_of(s, 1, "bbo-tbt:BTC-USDT-SWAP") >= 20
    });
    assert_eq!(
        threads.lock().unwrap().iter().collect::<Vec<_>>(),
        ["feed-inline"],
        "every tick on the one reading thread"
    );
    // Health events reach it in order with the ticks: a venue's close, then its recovery.
    spot.inject(wsfeed::sim::Fault::Close { code: 1001 });
    probe.wait("the spot feed recovers", |s| {
        util::has_health_of(s, 0, |h| matches!(h, Health::Recovered { .. }))
    });
    let seen = probe.seen();
    let lost = util::position_of(&seen, |h| matches!(h, Health::Disconnected { .. })).unwrap();
    let back = util::position_of(&seen, |h| matches!(h, Health::Recovered { .. })).unwrap();
    assert!(lost < back);
    let spot_between = seen[lost..back]
        .iter()
        .filter(|s| matches!(s, util::Seen::Tick { feed: 0, .. }))
        .count();
    assert_eq!(spot_between, 0, "no spot tick while it was disconnected");
    let (summary, strategy) = engine.stop();
    assert!(
        !summary.tick_latency_ns.is_empty(),
        "latency recorded inline"
    );
    assert!(
        !strategy.threads.lock().unwrap().is_empty(),
        "the strategy came back"
    );
    spot.shutdown();
    okx.shutdown();
}

#[test]
fn feeds_on_a_shared_driver_run_on_one_thread() {
    let (engine, probe, threads, [spot, okx]) = engine_of_two(|f| {
        f.drivers = vec![toml::from_str("name = \"both\"").unwrap()];
        for feed in &mut f.feeds {
            feed.driver = Some("both".into());
        }
    });
    probe.wait("both feeds tick", |s| {
        util::ticks_of(s, 0, "btcusdt@bookTicker") >= 20
            && util::ticks_of(s, 1, "bbo-tbt:BTC-USDT-SWAP") >= 20
    });
    let feed_threads = threads_named("feed-");
    assert!(
        feed_threads.contains(&"feed-both".to_string()),
        "{feed_threads:?}"
    );
    assert!(
        !feed_threads
            .iter()
            .any(|t| t == "feed-spot" || t == "feed-okx"),
        "no thread of their own: {feed_threads:?}"
    );
    assert_eq!(
        threads.lock().unwrap().iter().collect::<Vec<_>>(),
        ["strategy"],
        "the strategy on its own thread"
    );
    let stats = engine.stats();
    assert!(stats.iter().all(|s| s.state() == FeedState::Streaming));
    engine.stop();
    spot.shutdown();
    okx.shutdown();
}
