//! The NATS sink (`[sink.nats]`) against a real `nats-server` (Debian's package) that each test
//! starts with JetStream on 127.0.0.1, a free port and a store folder of its own, and stops at
//! the end. Without `nats-server` the tests that need it say so and skip, unless
//! `WSFEED_REQUIRE_NATS=1` (as `.ci/run` sets), where they fail saying what is missing.
//!
//! The follower is `examples/nats_follow.rs`, run as a process of its own.

mod util;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::{fast_reconnect, feed, sim, start_with, tick_count, Seen, WAIT};
use wsfeed::config::{MetricsConfig, NatsConfig};
use wsfeed::nats::NatsStats;

const BOOK: &str = "btcusdt@bookTicker";
const TRADES: &str = "btcusdt@aggTrade";

/// Where `nats-server` is, or `None` (with a note, or a failure under `WSFEED_REQUIRE_NATS=1`).
fn nats_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("WSFEED_REQUIRE_NATS").as_deref() == Ok("1") {
            panic!(
                "nats-server is not installed and WSFEED_REQUIRE_NATS=1: install Debian's \
                 nats-server package (apt-get install nats-server)"
            );
        }
        eprintln!("note: nats-server is not installed; skipping (apt-get install nats-server)");
    }
    found
}

/// A free port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A folder of this test's own, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsfeed-nats-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

/// A running `nats-server -js`, stopped (SIGTERM, then SIGKILL after a deadline) on drop.
struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    fn start(binary: PathBuf, store: PathBuf) -> NatsServer {
        let mut s = NatsServer {
            binary,
            child: None,
            port: free_port(),
            store,
        };
        s.restart();
        s
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and store) and waits until it accepts.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.store.with_extension("log")).expect("a log file");
        let child = Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            // The server writes INFO first on every connection once it accepts clients.
            if let Ok(mut conn) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut first = [0u8; 4];
                if conn.read_exact(&mut first).is_ok() && &first == b"INFO" {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server exited ({status}); its log: {}",
                    std::fs::read_to_string(self.store.with_extension("log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server gracefully (SIGTERM: it syncs its store), within a deadline.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not stop within {WAIT:?} of SIGTERM");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `pred` holds on the sink's counters; panics naming `what` after [`WAIT`].
fn wait_stats(stats: &NatsStats, what: &str, pred: impl Fn(&NatsStats) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred(stats) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; sink: {}",
            stats.summary()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The follower example's binary, built when missing (`cargo test --test nats` alone builds
/// no example).
fn follower() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join("nats_follow");
    if !bin.is_file() {
        let target = profile_dir.parent().expect("the target folder");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", "nats_follow", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example nats_follow failed");
    }
    bin
}

/// One line the follower printed: stream sequence, subject, payload.
#[derive(Debug)]
struct Line {
    seq: u64,
    subject: String,
    payload: serde_json::Value,
}

/// Runs the follower with `args` until it exits (bounded by [`WAIT`]) and reads its lines.
fn follow(url: &str, args: &[&str]) -> Vec<Line> {
    let mut child = Command::new(follower())
        .args(["--url", url])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the follower starts");
    let stdout = child.stdout.take().expect("its stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| l.expect("a line"))
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the follower's status") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the follower did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "the follower failed: {status}");
    reader
        .join()
        .expect("the reader")
        .iter()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (seq, subject, payload) = (parts.next(), parts.next(), parts.next());
            Line {
                seq: seq.and_then(|s| s.parse().ok()).expect("a sequence"),
                subject: subject.expect("a subject").to_string(),
                payload: serde_json::from_str(payload.expect("a payload")).expect("JSON"),
            }
        })
        .collect()
}

fn sink(url: String, tweak: impl FnOnce(&mut NatsConfig)) -> NatsConfig {
    let mut c = NatsConfig::new(url);
    c.ack_timeout_ms = 1000;
    c.drain_timeout_ms = 15_000;
    tweak(&mut c);
    c
}

#[test]
fn a_nats_restart_mid_session_loses_nothing_and_a_follower_resumes_at_the_next_sequence() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = scratch("restart");
    let mut server = NatsServer::start(binary, dir.join("store"));
    let url = server.url();
    let sim = sim(false, false);
    let (engine, probe) = start_with(
        vec![feed("spot", "binance-spot", &sim, &[BOOK, TRADES])],
        fast_reconnect(),
        |f| {
            f.sink.nats = Some(sink(url.clone(), |_| {}));
            f.metrics = Some(MetricsConfig {
                listen: (Ipv4Addr::LOCALHOST, 0).into(),
            });
        },
    );
    let stats: Arc<NatsStats> = engine.nats_stats().expect("the sink runs");
    wait_stats(&stats, "100 events stored", |s| {
        s.acked.load(Relaxed) >= 100
    });

    // NATS goes away mid-session; the feed streams on and the sink holds what it is handed.
    server.stop();
    let acked_before = stats.acked.load(Relaxed);
    probe.wait_more_ticks(300);
    let held = stats.handed.load(Relaxed) - stats.acked.load(Relaxed);
    assert!(
        held >= 250,
        "the sink holds the events handed while NATS was down: {}",
        stats.summary()
    );
    server.restart();
    wait_stats(
        &stats,
        "the sink to reconnect and store what it held",
        |s| s.reconnects.load(Relaxed) >= 1 && s.acked.load(Relaxed) >= acked_before + held,
    );
    probe.wait_more_ticks(100);
    // The metrics endpoint reports the sink.
    let addr = engine.metrics_addr().expect("the endpoint");
    let scrape = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("a scrape")
        .into_string()
        .expect("text");
    let stored: u64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("wsfeed_nats_acked_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wsfeed_nats_acked_total in the scrape");
    assert!(stored >= acked_before + held, "scraped {stored}");
    assert!(scrape.contains("wsfeed_nats_not_acked_total "));
    let (summary, _) = engine.stop();
    let n = summary.nats.expect("the summary has the sink's counters");
    eprintln!("{n}");
    assert!(
        summary.to_string().contains("NATS: "),
        "the summary reports the sink"
    );

    // Everything the strategy saw was handed over and stored once.
    let seen = probe.seen();
    let events = seen.len() as u64;
    assert_eq!(
        n.handed, events,
        "every tick and health event handed over: {n}"
    );
    assert_eq!((n.dropped, n.abandoned), (0, 0), "{n}");
    assert_eq!(n.acked, n.handed, "everything handed was stored: {n}");

    // A follower reads the first half, stops, and resumes at the next stream sequence.
    let state = dir.join("follow.seq");
    let state_arg = state.to_str().expect("a UTF-8 path");
    let half = (events / 2).to_string();
    let first = follow(&url, &["--state", state_arg, "--max", &half]);
    assert_eq!(first.len() as u64, events / 2);
    assert_eq!(
        std::fs::read_to_string(&state)
            .expect("the state file")
            .trim(),
        (events / 2).to_string()
    );
    let rest = follow(&url, &["--state", state_arg, "--idle-ms", "1500"]);
    assert_eq!(
        rest.first().map(|l| l.seq),
        Some(events / 2 + 1),
        "the second run starts right after the first"
    );
    let lines: Vec<Line> = first.into_iter().chain(rest).collect();
    let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=events).collect::<Vec<_>>(),
        "every stream sequence once, in order, across the restart of the follower"
    );

    // The stream holds exactly what the strategy saw: each sink number once, and in the sink's
    // numbering, the strategy's ticks in its order.
    let mut by_n: Vec<&Line> = lines.iter().collect();
    by_n.sort_by_key(|l| l.payload["n"].as_u64());
    let numbers: BTreeSet<u64> = by_n
        .iter()
        .filter_map(|l| l.payload["n"].as_u64())
        .collect();
    assert_eq!(numbers, (1..=events).collect(), "each sink number once");
    let stored_ticks: Vec<(String, u64)> = by_n
        .iter()
        .filter(|l| l.payload["type"] == "tick")
        .map(|l| {
            assert_eq!(
                l.subject,
                format!(
                    "wsfeed.binance-spot.BTCUSDT.{}",
                    l.payload["channel"].as_str().expect("a channel")
                )
            );
            (
                l.payload["stream"].as_str().expect("a stream").to_string(),
                l.payload["seq"].as_u64().expect("a venue sequence"),
            )
        })
        .collect();
    let seen_ticks: Vec<(String, u64)> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Tick { stream, seq, .. } => Some((stream.clone(), *seq)),
            Seen::Health { .. } | Seen::Account(_) => None,
        })
        .collect();
    assert_eq!(stored_ticks.len(), tick_count(&seen));
    assert_eq!(
        stored_ticks, seen_ticks,
        "the stored ticks are the strategy's"
    );
    assert!(
        by_n.iter()
            .any(|l| l.payload["event"] == "connected" && l.subject == "wsfeed.health.spot"),
        "the feed's health events are on wsfeed.health.<feed>"
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_nats_away_a_full_buffer_drops_and_counts_and_the_strategy_never_waits() {
    // Nothing listens on this port: the sink holds `max_in_flight`, the channel `buffer`, and
    // every further event is a counted drop.
    let url = format!("nats://127.0.0.1:{}", free_port());
    let sim = sim(false, false);
    let (engine, probe) = start_with(
        vec![feed("spot", "binance-spot", &sim, &[BOOK])],
        fast_reconnect(),
        |f| {
            f.sink.nats = Some(sink(url, |c| {
                c.buffer = 50;
                c.max_in_flight = 10;
                c.drain_timeout_ms = 200;
            }))
        },
    );
    let stats = engine.nats_stats().expect("the sink runs");
    probe.wait_more_ticks(200);
    wait_stats(&stats, "drops counted", |s| s.dropped.load(Relaxed) > 0);
    let (summary, _) = engine.stop();
    let n = summary.nats.expect("the sink's counters");
    let events = probe.seen().len() as u64;
    assert_eq!(
        n.handed + n.dropped,
        events,
        "every event handed or dropped: {n}"
    );
    assert!(n.handed <= 60, "at most buffer + max_in_flight held: {n}");
    assert_eq!(n.acked, 0, "{n}");
    assert_eq!(
        n.abandoned, n.handed,
        "what was held is abandoned at stop: {n}"
    );
}

/// Creates the stream `WSFEED` over `wsfeed.>` that keeps at most `max` messages and refuses
/// more (`discard: new`), as an operator might have.
fn create_small_stream(url: &str, max: i64) {
    use async_nats::jetstream::{self, stream};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let client = tokio::time::timeout(WAIT, async_nats::connect(url))
            .await
            .expect("connects in time")
            .expect("connects");
        jetstream::new(client)
            .create_stream(stream::Config {
                name: "WSFEED".into(),
                subjects: vec!["wsfeed.>".into()],
                max_messages: max,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .expect("the stream is created");
    });
}

#[test]
fn a_publish_the_server_does_not_store_is_counted_not_acknowledged_and_never_as_stored() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = scratch("refused");
    let mut server = NatsServer::start(binary, dir.join("store"));
    let url = server.url();
    create_small_stream(&url, 40);
    let sim = sim(false, false);
    let (engine, probe) = start_with(
        vec![feed("spot", "binance-spot", &sim, &[BOOK])],
        fast_reconnect(),
        |f| {
            f.sink.nats = Some(sink(url.clone(), |c| {
                c.max_in_flight = 16;
                c.drain_timeout_ms = 300;
            }))
        },
    );
    let stats = engine.nats_stats().expect("the sink runs");
    probe.wait_more_ticks(100);
    wait_stats(&stats, "refusals counted", |s| {
        s.not_acked.load(Relaxed) > 0
    });
    let (summary, _) = engine.stop();
    let n = summary.nats.expect("the sink's counters");
    eprintln!("{n}");
    assert_eq!(
        n.acked, 40,
        "only what the stream took counts as stored: {n}"
    );
    assert_eq!(
        n.handed,
        n.acked + n.abandoned,
        "everything handed was stored or is known not to be: {n}"
    );
    assert!(n.abandoned > 0 && n.not_acked > 0, "{n}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
