//! Behaviour of the engine that goes beyond "recover from a fault": USD-M route splitting,
//! silent-but-subscribed streams, rejected subscriptions, permanent failures, the circuit
//! breaker, a slow strategy, prompt shutdown in every state, and the binary's config checks.
//!
//! Every wait has a deadline (`Probe::wait`, `Sim::wait_until`, `eventually`). Time bounds here
//! are either lower bounds the engine must honour, or generous liveness bounds (marked as such);
//! none is a performance claim.

mod util;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use util::*;
use wsfeed::config::{FeedConfig, FullPolicy, ReconnectConfig};
use wsfeed::engine::Engine;
use wsfeed::metrics::FeedState;
use wsfeed::sim::Fault;
use wsfeed::summary::Summary;
use wsfeed::tick::{DisconnectReason, Health};

fn connected(n: u32) -> impl Fn(&[Seen]) -> bool {
    move |s| has_health(s, |h| *h == Health::Connected { conn: n })
}

/// Stops the engine, asserting it took less than [`STOP_BOUND`] (a liveness bound with room for
/// a noisy machine; the design target is under 1 s).
fn stop_within_bound(engine: Engine<Recorder>, what: &str) -> Summary {
    let t = Instant::now();
    let (summary, _) = engine.stop();
    let took = t.elapsed();
    assert!(took < STOP_BOUND, "{what} took {took:?}");
    summary
}

/// A feed table pointing at an arbitrary URL (no simulator behind it).
fn feed_at(name: &str, url: &str, streams: &[&str]) -> FeedConfig {
    let toml = format!(
        "name = \"{name}\"\nvenue = \"binance-spot\"\nurl = \"{url}\"\nstreams = [{}]\n",
        streams
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    toml::from_str(&toml).expect("feed table parses")
}

// ----- routing and per-stream silence ----------------------------------------------------------

#[test]
fn usdm_feed_splits_into_public_and_market_connections() {
    let sim = sim(true, true);
    let (engine, probe) = start(
        vec![feed(
            "usdm",
            "binance-usdm",
            &sim,
            &["btcusdt@bookTicker", "btcusdt@markPrice@1s"],
        )],
        fast_reconnect(),
    );
    let names: Vec<String> = engine
        .universe()
        .feeds
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert_eq!(names, ["usdm-public", "usdm-market"]);
    let (public, market) = (0u16, 1u16);
    probe.wait("both connections up", |s| {
        has_health_of(s, public, |h| *h == Health::Connected { conn: 1 })
            && has_health_of(s, market, |h| *h == Health::Connected { conn: 1 })
    });
    probe.wait("ticks from both routes", |s| {
        ticks_of(s, public, "btcusdt@bookTicker") >= 10
            && ticks_of(s, market, "btcusdt@markPrice@1s") >= 1
    });
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    sim.shutdown();

    assert_eq!(
        snap.connections.len(),
        2,
        "one connection per route: {snap:?}"
    );
    let on = |path: &str| {
        snap.connections
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no connection on {path}: {snap:?}"))
    };
    assert_eq!(on("/public/stream").streams, ["btcusdt@bookTicker"]);
    assert_eq!(on("/market/stream").streams, ["btcusdt@markPrice@1s"]);
    // Each stream only on its own route: nothing crossed over.
    let seen = probe.seen();
    assert_eq!(ticks_of(&seen, public, "btcusdt@markPrice@1s"), 0);
    assert_eq!(ticks_of(&seen, market, "btcusdt@bookTicker"), 0);
    assert!(
        summary.feeds.iter().all(|f| f.stale_events == 0),
        "{summary}"
    );
}

#[test]
fn acked_but_silent_stream_is_reported_stale_without_dropping_the_connection() {
    // A spot feed connects to the unrouted `/stream`; a routing venue acks aggTrade there but
    // never delivers it.
    let sim = sim(false, true);
    let mut f = feed(
        "spot",
        "binance-spot",
        &sim,
        &["btcusdt@bookTicker", "btcusdt@aggTrade"],
    );
    f.stream_silence_ms.insert("btcusdt@aggTrade".into(), 400);
    let (engine, probe) = start(vec![f], fast_reconnect());
    let agg = stream_index(engine.universe(), 0, "btcusdt@aggTrade");
    let book = stream_index(engine.universe(), 0, "btcusdt@bookTicker");
    probe.wait("connected", connected(1));
    probe.wait("aggTrade stale", |s| {
        has_health(
            s,
            |h| matches!(h, Health::Stale { stream, .. } if *stream == agg),
        )
    });
    // The connection is fine: bookTicker keeps flowing after the stale report.
    probe.wait_more_ticks(50);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    let sent = sim.sent();
    sim.shutdown();

    let seen = probe.seen();
    let health: Vec<Health> = health_of(&seen).into_iter().map(|(_, h)| h).collect();
    let silent_ms = health
        .iter()
        .find_map(|h| match h {
            Health::Stale { stream, silent_ms } if *stream == agg => Some(*silent_ms),
            _ => None,
        })
        .unwrap();
    // A lower bound the engine must honour: not stale before its limit.
    assert!(silent_ms >= 400, "stale after only {silent_ms} ms");
    assert!(
        !health
            .iter()
            .any(|h| matches!(h, Health::Stale { stream, .. } if *stream == book)),
        "bookTicker flows, it is not stale: {health:?}"
    );
    assert!(
        !health
            .iter()
            .any(|h| matches!(h, Health::Disconnected { .. })),
        "a silent stream is no reason to drop the connection: {health:?}"
    );
    assert!(ticks_of(&seen, 0, "btcusdt@bookTicker") >= 50);
    assert_eq!(ticks_of(&seen, 0, "btcusdt@aggTrade"), 0);
    // Ground truth: the venue accepted the subscription but sent nothing for it.
    assert_eq!(snap.connections.len(), 1);
    assert!(snap.connections[0]
        .streams
        .contains(&"btcusdt@aggTrade".to_string()));
    assert!(!sent.iter().any(|r| r.stream == "btcusdt@aggTrade"));
    let s = &summary.feeds[0];
    assert!(s.stale_events >= 1, "{summary}");
    assert_eq!(s.disconnects, 0, "{summary}");
}

// ----- rejected subscriptions and permanent failures -------------------------------------------

#[test]
fn rejected_stream_is_reported_and_not_retried_after_reconnect() {
    // The simulator lists BTCUSDT and ETHUSDT only: it answers a SUBSCRIBE naming xrpusdt with
    // an error.
    let sim = sim(false, false);
    let (engine, probe) = start(
        vec![feed(
            "spot",
            "binance-spot",
            &sim,
            &["btcusdt@bookTicker", "xrpusdt@bookTicker"],
        )],
        fast_reconnect(),
    );
    let xrp = stream_index(engine.universe(), 0, "xrpusdt@bookTicker");
    probe.wait("connected", connected(1));
    probe.wait_more_ticks(20);
    let seen = probe.seen();
    let rejected = position_of(
        &seen,
        |h| matches!(h, Health::SubscriptionRejected { stream, .. } if *stream == xrp),
    )
    .expect("xrp rejected");
    let conn1 = position_of(&seen, |h| *h == Health::Connected { conn: 1 }).unwrap();
    assert!(rejected < conn1, "rejection reported before Connected");
    assert!(
        seen.iter()
            .filter_map(|s| match s {
                Seen::Tick { stream, .. } => Some(stream.as_str()),
                _ => None,
            })
            .all(|s| s == "btcusdt@bookTicker"),
        "only btc ticks"
    );
    let requests_before = sim.snapshot().subscribe_requests;

    sim.inject(Fault::Close { code: 1000 });
    probe.wait("second connection", connected(2));
    probe.wait_more_ticks(20);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    sim.shutdown();

    let last = snap.connections.last().expect("a second connection");
    assert_eq!(last.id.0, 2, "{snap:?}");
    assert_eq!(last.streams, ["btcusdt@bookTicker"]);
    // The sim would also refuse xrp on the new connection, so its stream list alone cannot
    // show a retry; the request count does: exactly one SUBSCRIBE (btc) on connection 2.
    assert_eq!(
        snap.subscribe_requests,
        requests_before + 1,
        "the rejected stream was asked for again"
    );
    let seen = probe.seen();
    assert_eq!(
        count_health(&seen, |h| matches!(h, Health::SubscriptionRejected { .. })),
        1
    );
    assert_eq!(summary.feeds[0].rejected_streams, 1, "{summary}");
}

#[test]
fn every_stream_rejected_fails_the_feed_for_good() {
    let sim = sim(false, false);
    let (engine, probe) = start(
        vec![feed(
            "spot",
            "binance-spot",
            &sim,
            &["xrpusdt@bookTicker", "adausdt@bookTicker"],
        )],
        fast_reconnect(),
    );
    probe.wait("failed", |s| {
        has_health(s, |h| {
            *h == Health::Failed {
                reason: DisconnectReason::AllStreamsRejected,
            }
        })
    });
    eventually("state Failed", || {
        engine.stats()[0].state() == FeedState::Failed
    });
    // Negative check, bounded in time: for 500 ms after the failure (more than the 20-200 ms
    // backoff a retry would use) the venue sees no second connection.
    assert!(
        !sim.wait_until(Duration::from_millis(500), |s| s.connections.len() > 1),
        "a failed feed reconnected"
    );
    assert_eq!(sim.snapshot().connections.len(), 1);
    assert_eq!(engine.stats()[0].attempts.load(Ordering::Relaxed), 1);
    let (summary, _) = engine.stop();
    sim.shutdown();

    let seen = probe.seen();
    assert_eq!(
        count_health(&seen, |h| matches!(h, Health::SubscriptionRejected { .. })),
        2
    );
    assert!(!has_health(&seen, |h| matches!(
        h,
        Health::Connected { .. }
    )));
    let s = &summary.feeds[0];
    assert_eq!(s.rejected_streams, 2, "{summary}");
    assert!(s.failure.is_some(), "{summary}");
    // The report must still say the feed failed (not merely "stopped").
    assert_eq!(s.state, FeedState::Failed, "{summary}");
}

#[test]
fn untrusted_certificate_fails_once_and_is_not_retried() {
    let sim = sim(true, false);
    let mut f = feed("spot", "binance-spot", &sim, &["btcusdt@bookTicker"]);
    f.ca_pem = None; // the simulator's generated CA is not trusted
    let (engine, probe) = start(vec![f], fast_reconnect());
    probe.wait("failed", |s| {
        has_health(s, |h| {
            *h == Health::Failed {
                reason: DisconnectReason::BadCertificate,
            }
        })
    });
    // Negative check, bounded in time: no further attempt within 300 ms (a retry would come
    // after a 20-200 ms backoff). The TLS handshake fails before any WebSocket upgrade, so the
    // simulator never registers a connection either.
    assert!(!sim.wait_until(Duration::from_millis(300), |s| !s.connections.is_empty()));
    assert_eq!(engine.stats()[0].attempts.load(Ordering::Relaxed), 1);
    let (summary, _) = engine.stop();
    sim.shutdown();

    let s = &summary.feeds[0];
    let failure = s.failure.as_deref().unwrap_or_default();
    assert!(failure.contains("certificate"), "failure: {failure:?}");
    assert_eq!((s.messages, s.disconnects, s.reconnects), (0, 0, 0));
    assert_eq!(
        count_health(&probe.seen(), |h| matches!(h, Health::Failed { .. })),
        1
    );
}

// ----- circuit breaker ---------------------------------------------------------------------------

#[test]
fn circuit_breaker_opens_after_consecutive_failures_then_recovers() {
    let sim = sim(false, false);
    let (engine, probe) = start(
        vec![feed("spot", "binance-spot", &sim, &["btcusdt@bookTicker"])],
        ReconnectConfig {
            max_consecutive_failures: 3,
            circuit_breaker_cooldown_ms: 300,
            ..fast_reconnect()
        },
    );
    probe.wait("connected", connected(1));
    probe.wait_more_ticks(10);
    sim.inject(Fault::Refuse {
        duration: Duration::from_secs(2),
    });
    sim.inject(Fault::Reset);
    probe.wait("circuit open", |s| {
        has_health(s, |h| matches!(h, Health::CircuitOpen { .. }))
    });
    probe.wait("recovered", |s| {
        has_health(s, |h| matches!(h, Health::Recovered { .. }))
    });
    let (summary, _) = engine.stop();
    sim.shutdown();

    let seen = probe.seen();
    let first_open = seen
        .iter()
        .find_map(|s| match s {
            Seen::Health {
                event: e @ Health::CircuitOpen { .. },
                ..
            } => Some(*e),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        first_open,
        Health::CircuitOpen {
            failures: 3,
            cooldown_ms: 300
        }
    );
    let open = position_of(&seen, |h| matches!(h, Health::CircuitOpen { .. })).unwrap();
    let recovered = position_of(&seen, |h| matches!(h, Health::Recovered { .. })).unwrap();
    assert!(open < recovered);
    assert!(summary.feeds[0].circuit_trips >= 1, "{summary}");
    assert_eq!(summary.feeds[0].reconnects, 1, "{summary}");
}

// ----- slow strategy -----------------------------------------------------------------------------

/// Stalls the strategy on a 64-slot channel, checks the feed keeps reading (never blocks on the
/// strategy), drops ticks, and still delivers the health events of a reconnect made while the
/// channel was full.
fn slow_strategy(policy: FullPolicy) {
    let sim = sim(false, false);
    let (engine, probe) = start_with(
        vec![feed(
            "spot",
            "binance-spot",
            &sim,
            &["btcusdt@bookTicker", "ethusdt@bookTicker"],
        )],
        fast_reconnect(),
        |f| {
            f.engine.channel_capacity = 64;
            f.engine.on_full = policy;
        },
    );
    let stats = engine.stats()[0].clone();
    let messages = || stats.messages.load(Ordering::Relaxed);
    probe.wait("connected", connected(1));
    probe.wait_more_ticks(20);

    probe.set_stalled(true);
    // The strategy is blocked in `on_tick`; a feed that waited for channel room would stop
    // reading after ~65 messages.
    let base = messages();
    eventually("the feed reads past a full channel", || {
        messages() >= base + 300
    });
    assert!(stats.dropped.load(Ordering::Relaxed) > 0, "ticks dropped");

    // A reconnect while the channel is full; then let the data roll through the full channel
    // long enough that its health events reach the front of the queue several times over.
    sim.inject(Fault::Close { code: 1000 });
    eventually("reconnected while stalled", || {
        stats.reconnects.load(Ordering::Relaxed) >= 1
    });
    let after = messages();
    eventually("data on the new connection", || messages() >= after + 300);
    assert!(
        !has_health(&probe.seen(), |h| matches!(h, Health::Disconnected { .. })),
        "the strategy was stalled and cannot have seen the outage yet"
    );

    let released_at = messages();
    let seen_before = probe.tick_count();
    probe.set_stalled(false);
    // FIFO: once 200 more ticks (> capacity + the one in hand) were handled, everything that
    // was queued at release time has been handled too.
    probe.wait("strategy catches up", |s| {
        tick_count(s) >= seen_before + 200
    });
    let seen = probe.seen();
    let (summary, _) = engine.stop();
    // Ground truth of the second connection (the two never overlap, so their seqs are disjoint).
    let sent_on_2: HashSet<(String, u64)> = sim
        .sent()
        .into_iter()
        .filter(|r| r.conn.0 == 2)
        .map(|r| (r.stream, r.seq))
        .collect();
    sim.shutdown();

    let health: Vec<Health> = health_of(&seen).into_iter().map(|(_, h)| h).collect();
    let d1 = position_of(&seen, |h| {
        *h == Health::Disconnected {
            conn: 1,
            reason: DisconnectReason::CloseFrame { code: 1000 },
        }
    });
    let c2 = position_of(&seen, |h| *h == Health::Connected { conn: 2 });
    assert!(
        d1.is_some(),
        "Disconnected sent while the channel was full was lost: {health:?}"
    );
    assert!(
        c2.is_some(),
        "Connected{{conn: 2}} sent while the channel was full was lost: {health:?}"
    );
    assert!(d1 < c2, "out of order: {health:?}");
    // Health events travel in order with the feed's ticks (`tick::Health`): nothing from the
    // new connection reaches the strategy before the old connection's Disconnected.
    let early = seen[..d1.unwrap()]
        .iter()
        .filter(|s| matches!(s, Seen::Tick { stream, seq, .. } if sent_on_2.contains(&(stream.clone(), *seq))))
        .count();
    assert_eq!(
        early, 0,
        "{early} ticks of connection 2 delivered before Disconnected{{conn: 1}}"
    );
    let s = &summary.feeds[0];
    assert!(s.dropped > 0, "{summary}");
    assert!(
        s.messages > released_at,
        "messages kept counting after release: {summary}"
    );
}

#[test]
fn stalled_strategy_drop_oldest_never_blocks_the_feed_nor_loses_health() {
    slow_strategy(FullPolicy::DropOldest);
}

#[test]
fn stalled_strategy_drop_newest_never_blocks_the_feed_nor_loses_health() {
    slow_strategy(FullPolicy::DropNewest);
}

// ----- shutdown ----------------------------------------------------------------------------------

/// Liveness bound on `Engine::stop`: the design target is < 1 s in any state; 3 s is this
/// test's margin for a loaded machine. Not a performance claim.
const STOP_BOUND: Duration = Duration::from_secs(3);

#[test]
fn stop_is_prompt_mid_backoff_and_mid_handshake() {
    // (a) Mid-backoff: nothing listens on the port, and the backoff is 2.5-5 s. The port is
    // bound but not listening (connects are refused), and stays reserved for the whole test so
    // that no simulator of a concurrent test can be given it.
    let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    closed
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let closed_port = closed.local_addr().unwrap().as_socket().unwrap().port();
    let (engine, _probe) = start(
        vec![feed_at(
            "closed",
            &format!("ws://127.0.0.1:{closed_port}"),
            &["btcusdt@bookTicker"],
        )],
        ReconnectConfig {
            initial_delay_ms: 5000,
            max_delay_ms: 5000,
            ..fast_reconnect()
        },
    );
    eventually("backoff", || {
        engine.stats()[0].state() == FeedState::Backoff
    });
    let summary = stop_within_bound(engine, "stop mid-backoff");
    assert_eq!(summary.feeds[0].state, FeedState::Stopped);

    // (b) Mid-handshake: a TCP listener that accepts and never answers the TLS ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The accepted socket is returned by the thread and so stays open until it is joined.
    let acceptor = std::thread::spawn(move || listener.accept().map(|(sock, _)| sock));
    let (engine, _probe) = start(
        vec![feed_at(
            "mute",
            &format!("wss://127.0.0.1:{port}"),
            &["btcusdt@bookTicker"],
        )],
        ReconnectConfig {
            handshake_timeout_ms: 60_000,
            ..fast_reconnect()
        },
    );
    eventually("handshaking", || {
        engine.stats()[0].state() == FeedState::Handshaking
    });
    let summary = stop_within_bound(engine, "stop mid-handshake");
    assert_eq!(summary.feeds[0].state, FeedState::Stopped);
    let _sock = acceptor.join().unwrap().expect("the engine connected");
}

// ----- the binary --------------------------------------------------------------------------------

struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "wsfeed-behaviour-{}-{nanos}-{tag}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wsfeed(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsfeed"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_refuses_typos_in_the_config_and_unknown_arguments() {
    const FEED: &str = "[[feeds]]\nname = \"spot\"\nvenue = \"binance-spot\"\n\
                        url = \"ws://127.0.0.1:1\"\nstreams = [\"btcusdt@bookTicker\"]\n";
    for (tag, text, field) in [
        (
            "feed-typo",
            format!("{FEED}strems = [\"ethusdt@bookTicker\"]\n"),
            "strems",
        ),
        (
            "reconnect-typo",
            format!("[reconnect]\nintial_delay_ms = 50\n\n{FEED}"),
            "intial_delay_ms",
        ),
    ] {
        let file = TempFile::new(tag, &text);
        let path = file.0.to_str().unwrap();
        let (code, stderr) = wsfeed(&["run", "--config", path, "--seconds", "1"]);
        assert_eq!(code, Some(2), "{tag}: stderr: {stderr}");
        let name = file.0.file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(name), "{tag}: the file is named: {stderr}");
        assert!(
            stderr.contains(field),
            "{tag}: the field is named: {stderr}"
        );
    }
    let (code, stderr) = wsfeed(&["demo", "--frobnicate"]);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stderr.contains("--frobnicate"), "{stderr}");
}

/// SIGTERM mid-run: the binary stops, and everything it received is on disk: the manifest is
/// complete, the files hold as many lines as the summary says were captured, and the audit of
/// the session passes.
#[test]
fn sigterm_leaves_a_complete_capture_on_disk() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;

    let root = std::env::temp_dir().join(format!("wsfeed-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsfeed"))
        .args(["demo", "--seconds", "120", "--faults", "none", "--capture"])
        .arg(&root)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Two status lines: data has been flowing for a while.
    let deadline = Instant::now() + WAIT;
    let mut status_lines = 0;
    while status_lines < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("status lines within the deadline");
        if line.contains(" msg/s |") {
            status_lines += 1;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let mut out = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        out.push(line);
    }
    let status = child.wait().expect("the binary exits");
    reader.join().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let capture_line = out
        .iter()
        .find(|l| l.starts_with("capture: "))
        .unwrap_or_else(|| panic!("the summary names the capture: {out:#?}"));
    let lines: u64 = capture_line["capture: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("capture: <lines> lines");
    assert!(lines > 0);
    let sessions: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(session.join("session_manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["complete"], true);
    let mut on_disk = 0u64;
    let mut dirs = vec![session.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(text.ends_with('\n'), "{} ends mid-line", p.display());
                // Messages are in the stream files; the session folder's own files
                // (health.jsonl, snapshots.jsonl) hold what replay needs besides.
                if p.parent() != Some(session.as_path()) {
                    on_disk += text.lines().count() as u64;
                }
            }
        }
    }
    assert_eq!(on_disk, lines, "every captured message is on disk");
    let audit = wsfeed::audit::audit(session).unwrap();
    assert!(audit.ok(), "{audit}");
    std::fs::remove_dir_all(&root).unwrap();
}
