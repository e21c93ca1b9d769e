//! What a supervisor sees: `/metrics` scraped during a fault run and parsed as Prometheus text
//! (and checked by `promtool` when it is installed), its counters against the session manifest;
//! `/healthz` going to 503 while a required feed is down and back to 200; `run` exiting
//! non-zero once every required feed has stopped for good, and 0 when only an optional one did.
//!
//! Every wait has a deadline; nothing here is a timing claim.

mod util;

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use util::*;
use wsfeed::config::{CaptureConfig, MetricsConfig};
use wsfeed::sim::Fault;
use wsfeed::tick::Health;

const BOOK: &str = "btcusdt@bookTicker";
const TRADES: &str = "btcusdt@aggTrade";

/// `GET path` on `addr`: status code and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("endpoint accepts");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("endpoint answers");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_string())
}

fn listen_anywhere() -> Option<MetricsConfig> {
    Some(MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
    })
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsfeed-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The value of counter `name` (`_total` included) with every label in `want`.
fn counter(scrape: &prometheus_parse::Scrape, name: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && want.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        })
        .sum()
}

/// Runs `promtool check metrics` on `text` when promtool is installed (`.ci/run` installs it
/// and sets `WSFEED_REQUIRE_PROMTOOL`, so CI never skips this).
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("WSFEED_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here but cannot run: {e}"
            );
            eprintln!("promtool not installed: scrape checked by the parser only");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("promtool: {}", String::from_utf8_lossy(&out.stdout));
    // promtool exits 0 when the text parses; lint findings (naming advice) print but pass.
    assert!(
        out.status.success(),
        "promtool check metrics failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_scraped_during_faults_agree_with_the_manifest() {
    let sim = sim(false, false);
    let dir = scratch("metrics");
    let (engine, probe) = start_with(
        vec![feed("spot", "binance-spot", &sim, &[BOOK, TRADES])],
        fast_reconnect(),
        |f| {
            f.metrics = listen_anywhere();
            f.capture = Some(CaptureConfig { dir: dir.clone() });
        },
    );
    probe.wait("first connection", |s| {
        has_health(s, |h| *h == Health::Connected { conn: 1 })
    });
    // Three outages: two resets and a clean close, each recovered before the next.
    let faults = [Fault::Reset, Fault::Close { code: 1001 }, Fault::Reset];
    for (i, f) in faults.iter().enumerate() {
        probe.wait_more_ticks(5);
        sim.inject(f.clone());
        probe.wait("recovery", |s| {
            count_health(s, |h| matches!(h, Health::Recovered { .. })) > i
        });
    }
    let addr = engine.metrics_addr().expect("metrics endpoint is up");
    let (code, text) = get(addr, "/metrics");
    assert_eq!(code, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the scrape parses as Prometheus text");
    promtool_check(&text);
    let spot = [("feed", "spot")];
    let reset = counter(
        &scrape,
        "wsfeed_reconnects_total",
        &[("feed", "spot"), ("reason", "reset")],
    );
    let closed = counter(
        &scrape,
        "wsfeed_reconnects_total",
        &[("feed", "spot"), ("reason", "close_frame")],
    );
    assert_eq!((reset, closed), (2.0, 1.0), "reconnects by reason");
    let scraped_messages = counter(&scrape, "wsfeed_messages_total", &spot);
    assert!(scraped_messages > 0.0);
    assert_eq!(
        counter(
            &scrape,
            "wsfeed_feed_state",
            &[("feed", "spot"), ("state", "streaming")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &scrape,
            "wsfeed_connection_state",
            &[
                ("feed", "spot"),
                ("role", "primary"),
                ("state", "streaming")
            ]
        ),
        1.0
    );
    let session = engine.session_dir().expect("capture is on").to_path_buf();
    let stats = engine.stats()[0].clone();
    let (summary, _) = engine.stop();
    assert!(!summary.failed);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(session.join("session_manifest.json")).unwrap())
            .unwrap();
    let m = &manifest["feeds"][0];
    let n = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("manifest has {k}")) as f64;
    assert_eq!(
        counter(&scrape, "wsfeed_reconnects_total", &spot),
        n("total_reconnects")
    );
    assert_eq!(
        counter(&scrape, "wsfeed_disconnects_total", &spot),
        n("disconnects")
    );
    assert_eq!(
        counter(&scrape, "wsfeed_attempts_total", &spot),
        n("attempts")
    );
    let gaps = m["connection_gaps"].as_array().unwrap();
    assert_eq!(
        counter(&scrape, "wsfeed_gaps_total", &spot),
        gaps.len() as f64
    );
    let by_reason = gaps.iter().fold(HashMap::new(), |mut acc, g| {
        *acc.entry(g["reason"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
        acc
    });
    assert_eq!(
        by_reason.get("connection reset by peer"),
        Some(&2),
        "{by_reason:?}"
    );
    assert!(scraped_messages <= n("messages"));
    // The reconnect histogram holds one sample per recovered outage.
    let reconnect_count = scrape
        .samples
        .iter()
        .find(|s| s.metric == "wsfeed_reconnect_seconds" && s.labels.get("feed") == Some("spot"))
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(b) => b.iter().map(|c| c.count).fold(0.0, f64::max),
            _ => panic!("wsfeed_reconnect_seconds is a histogram"),
        })
        .expect("reconnect histogram scraped");
    assert_eq!(reconnect_count, 3.0);
    assert_eq!(stats.reconnects.load(Ordering::Relaxed), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn healthz_is_503_while_a_required_feed_is_down_and_200_again_after() {
    let sim = sim(false, false);
    let (engine, probe) = start_with(
        vec![feed("spot", "binance-spot", &sim, &[BOOK])],
        fast_reconnect(),
        |f| f.metrics = listen_anywhere(),
    );
    probe.wait("first connection", |s| {
        has_health(s, |h| *h == Health::Connected { conn: 1 })
    });
    let addr = engine.metrics_addr().unwrap();
    eventually("healthz 200 once streaming", || {
        get(addr, "/healthz").0 == 200
    });
    let (_, status) = get(addr, "/status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    assert_eq!(status["feeds"][0]["feed"], "spot");
    assert_eq!(status["feeds"][0]["never_connected"], false);

    // The venue goes away for a while: new connects are refused, the live one is reset.
    sim.inject(Fault::Refuse {
        duration: Duration::from_millis(1500),
    });
    sim.inject(Fault::Reset);
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let (code, body) = get(addr, "/healthz");
        if code == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "healthz never said 503");
        std::thread::sleep(Duration::from_millis(5));
    };
    let body: serde_json::Value = serde_json::from_str(&body).expect("healthz body is JSON");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["not_ok"][0]["feed"], "spot", "{body}");
    assert_ne!(body["not_ok"][0]["state"], "streaming", "{body}");
    eventually("healthz 200 after recovery", || {
        get(addr, "/healthz").0 == 200
    });
    assert_eq!(get(addr, "/nowhere").0, 404);
    engine.stop();
}

/// `wsfeed run` on a config of its own against the simulator; waits at most `limit` for it
/// to exit and returns the exit code and what it printed.
fn run_binary(config: &str, seconds: u32, until_exit: Duration) -> (Option<i32>, String) {
    let dir = scratch("run");
    let path = dir.join("wsfeed.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsfeed"))
        .args(["run", "--config"])
        .arg(&path)
        .args(["--seconds", &seconds.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wsfeed runs");
    let deadline = Instant::now() + until_exit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    for l in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        out.push_str(&l.unwrap_or_default());
        out.push('\n');
    }
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut out));
    let _ = std::fs::remove_dir_all(&dir);
    (status.code(), out)
}

/// A port nothing listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("ws://127.0.0.1:{port}")
}

const GIVE_UP: &str = "[reconnect]\ninitial_delay_ms = 20\nmax_delay_ms = 100\n\
                       give_up_after_ms = 1500\nconnect_timeout_ms = 500\n";

#[test]
fn run_exits_non_zero_once_every_required_feed_has_failed_for_good() {
    let sim = sim(false, false);
    // One feed whose venue is killed after it connects, one that never connects.
    let config = format!(
        "{GIVE_UP}[[feeds]]\nname = \"spot\"\nvenue = \"binance-spot\"\nurl = \"{}\"\nstreams = [\"{BOOK}\"]\n\
         [[feeds]]\nname = \"nowhere\"\nvenue = \"binance-spot\"\nurl = \"{}\"\nstreams = [\"{BOOK}\"]\n",
        sim.base_url(),
        dead_url()
    );
    let killer = std::thread::spawn(move || {
        let up = sim.wait_until(WAIT, |s| !s.connections.is_empty());
        sim.shutdown();
        up
    });
    // Bounded by the run's own --seconds (120) far above what the give-up rule needs.
    let (code, out) = run_binary(&config, 120, Duration::from_secs(60));
    assert!(
        killer.join().unwrap(),
        "wsfeed never connected to the simulator"
    );
    assert_eq!(code, Some(1), "exit status once every feed failed:\n{out}");
    assert!(
        out.contains("FAILED: every required feed stopped for good"),
        "{out}"
    );
    assert!(
        out.contains("never connected"),
        "the dead feed is flagged:\n{out}"
    );
    assert!(
        out.contains("no connection for"),
        "the give-up reason is named:\n{out}"
    );
}

#[test]
fn run_exits_zero_when_only_an_optional_feed_failed() {
    let sim = sim(false, false);
    let config = format!(
        "{GIVE_UP}[[feeds]]\nname = \"spot\"\nvenue = \"binance-spot\"\nurl = \"{}\"\nstreams = [\"{BOOK}\"]\n\
         [[feeds]]\nname = \"nowhere\"\nrequired = false\nvenue = \"binance-spot\"\nurl = \"{}\"\nstreams = [\"{BOOK}\"]\n",
        sim.base_url(),
        dead_url()
    );
    let (code, out) = run_binary(&config, 4, Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "an optional feed's failure is not the process's:\n{out}"
    );
    assert!(out.contains("never connected"), "{out}");
    assert!(!out.contains("FAILED: every required feed"), "{out}");
}

/// Four feeds of one host whose every upgrade is refused (HTTP 503), each retrying after
/// 10–50 ms, far more often than the host's budget of 6 attempts a second allows: the venue
/// never sees more than 6 connections in any second, the budget is paced (one attempt per
/// T = 1 s / 5 + 1 ms after a burst of 1) instead of spent in a burst and then held, and every
/// feed gets its turn (attempts are booked in the order asked, so none waits more than 4·T:
/// the bound itself is checked on a made-up clock in `feed::limiter`).
#[test]
fn a_reconnect_storm_is_paced_within_the_hosts_budget_and_every_feed_gets_turns() {
    let sim = sim(false, false);
    sim.inject(Fault::Reject {
        status: 503,
        count: 100_000,
        retry_after_s: None,
    });
    let feeds = ["a", "b", "c", "d"]
        .iter()
        .zip(["btcusdt@bookTicker", "ethusdt@bookTicker", BOOK, TRADES])
        .map(|(name, stream)| feed(name, "binance-spot", &sim, &[stream]))
        .collect();
    let reconnect = wsfeed::config::ReconnectConfig {
        initial_delay_ms: 10,
        max_delay_ms: 50,
        max_consecutive_failures: 100_000,
        ..fast_reconnect()
    };
    let (engine, _probe) = start_with(feeds, reconnect, |f| {
        f.engine.connect_limit = Some(6);
        f.engine.connect_window_ms = Some(1000);
    });
    let enough = 24;
    assert!(
        sim.wait_until(WAIT, |s| s.accepts.len() >= enough),
        "the storm never reached {enough} attempts"
    );
    let attempts: Vec<u64> = engine
        .stats()
        .iter()
        .map(|s| s.attempts.load(Ordering::Relaxed))
        .collect();
    let held: u64 = engine
        .stats()
        .iter()
        .map(|s| s.throttled.load(Ordering::Relaxed))
        .sum();
    engine.stop();
    let times = sim.snapshot().accepts;
    for (i, &a) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|&&b| b.duration_since(a) < Duration::from_secs(1))
            .count();
        assert!(within <= 6, "{within} connections within one second");
    }
    // Paced, not spent in a burst: three attempts take at least 2·T = 402 ms (less the
    // simulator's stamping delay); an unpaced budget lets 6 go within a few milliseconds.
    for w in times.windows(3) {
        let span = w[2].duration_since(w[0]);
        assert!(
            span >= Duration::from_millis(100),
            "3 connections within {span:?}"
        );
    }
    assert!(held > 0, "the budget held attempts back");
    let total: u64 = attempts.iter().sum();
    for (name, n) in ["a", "b", "c", "d"].iter().zip(&attempts) {
        assert!(
            *n * 4 + 8 >= total,
            "feed {name} got {n} of {total} attempts: turns are not shared ({attempts:?})"
        );
    }
}

/// An address the endpoint cannot listen on fails the start, naming the address, before any
/// feed runs.
#[test]
fn a_metrics_address_in_use_fails_the_start_clearly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let sim = sim(false, false);
    let mut file: wsfeed::config::FileConfig = toml::from_str("").unwrap();
    file.feeds = vec![feed("spot", "binance-spot", &sim, &[BOOK])];
    file.metrics = Some(MetricsConfig { listen: addr });
    let config = file.validate().expect("valid config");
    let (rec, _probe) = recorder();
    let err = wsfeed::engine::Engine::start(config, rec).expect_err("the address is taken");
    let text = err.to_string();
    assert!(
        text.contains("metrics endpoint") && text.contains(&addr.to_string()),
        "{text}"
    );
    assert!(
        sim.snapshot().accepts.is_empty(),
        "no feed connected before the endpoint failed"
    );
}
