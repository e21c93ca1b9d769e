//! Shared helpers for integration tests: an engine on the embedded simulator, a recording
//! strategy whose events can be awaited with a deadline, and a ground-truth delivery check.
#![allow(dead_code)] // Each test file uses a different subset.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wsfeed::auth::{Credentials, Secret};
use wsfeed::config::{AccountConfig, FeedConfig, FileConfig, ReconnectConfig};
use wsfeed::engine::Engine;
use wsfeed::sim::{ConnId, SentRecord, Sim, SimAccount, SimConfig, SimSnapshot};
use wsfeed::strategy::{Strategy, Universe};
use wsfeed::tick::{FeedId, Health, Tick};
use wsfeed::venue::defined::spec::VenueSpec;
use wsfeed::venue::defined::Defined;
use wsfeed::venue::Venue;

/// A fresh, empty scratch folder for test `test` of `suite`.
pub fn scratch(suite: &str, test: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("wsfeed-{suite}-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// `wsfeed COMMAND ARGS…`: exit code, stdout, stderr.
pub fn wsfeed<S: AsRef<std::ffi::OsStr>>(command: &str, args: &[S]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsfeed"))
        .arg(command)
        .args(args)
        .output()
        .expect("wsfeed runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wsfeed` running in the background, its output collected as it comes.
pub struct Background {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    /// Stderr as it is read, in chunks; `log` holds what was taken of it so far.
    stderr: std::sync::mpsc::Receiver<String>,
    log: String,
}

/// Starts `wsfeed args…` with `env` set, stdin closed, output collected.
pub fn background(args: &[&str], env: &[(&str, &str)]) -> Background {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsfeed"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let (etx, stderr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
            if n == 0 || etx.send(chunk).is_err() {
                break;
            }
        }
    });
    let (tx, stdout) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    Background {
        child,
        stdout,
        stderr,
        log: String::new(),
    }
}

impl Background {
    /// Waits until its stderr holds `what`; past [`WAIT`] the test fails showing the log.
    pub fn wait_for(&mut self, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log.contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no '{what}' in:\n{}", self.log);
            match self.stderr.recv_timeout(left) {
                Ok(chunk) => self.log.push_str(&chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => panic!("wsfeed ended before '{what}':\n{}", self.log),
            }
        }
    }

    /// Its stderr taken so far (by [`Background::wait_for`]).
    pub fn log(&self) -> &str {
        &self.log
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the end (stdout closes when the process exits): its exit code, stdout and
    /// stderr. Past `deadline` it is killed and the test fails.
    pub fn finish(mut self, deadline: Duration) -> (Option<i32>, String, String) {
        let Ok(stdout) = self.stdout.recv_timeout(deadline) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("wsfeed still ran after {deadline:?}");
        };
        let status = self.child.wait().expect("the binary exits");
        // The process is gone: its stderr closes once read to the end.
        let mut stderr = self.log;
        stderr.extend(self.stderr.iter());
        (status.code(), stdout, stderr)
    }
}

/// Upper bound for any single wait in a test: generous, because CI machines are shared.
pub const WAIT: Duration = Duration::from_secs(20);

/// What the strategy saw, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Tick {
        feed: FeedId,
        stream: String,
        seq: u64,
    },
    Health {
        feed: FeedId,
        event: Health,
    },
    /// An account event.
    Account(Box<wsfeed::account::AccountMsg>),
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    changed: Condvar,
}

/// A strategy that records everything; tests wait on what it saw.
pub struct Recorder {
    shared: Arc<Shared>,
    universe: Universe,
    /// Blocks `on_tick` while true (a stalled strategy).
    pub stall: Arc<(Mutex<bool>, Condvar)>,
}

/// The test's handle on the recorder.
#[derive(Clone)]
pub struct Probe {
    shared: Arc<Shared>,
    /// Set to stall the strategy; clear (and notify) to release it.
    pub stall: Arc<(Mutex<bool>, Condvar)>,
}

pub fn recorder() -> (Recorder, Probe) {
    let shared = Arc::new(Shared::default());
    let stall = Arc::new((Mutex::new(false), Condvar::new()));
    (
        Recorder {
            shared: shared.clone(),
            universe: Universe::default(),
            stall: stall.clone(),
        },
        Probe { shared, stall },
    )
}

impl Strategy for Recorder {
    fn on_start(&mut self, universe: &Universe) {
        self.universe = universe.clone();
    }
    fn on_tick(&mut self, tick: &Tick) {
        {
            let (lock, cv) = &*self.stall;
            let mut stalled = lock.lock().unwrap();
            while *stalled {
                stalled = cv.wait(stalled).unwrap();
            }
        }
        let stream = self.universe.feeds[tick.feed as usize].streams[tick.stream as usize]
            .name
            .clone();
        self.push(Seen::Tick {
            feed: tick.feed,
            stream,
            seq: tick.seq,
        });
    }
    fn on_health(&mut self, feed: FeedId, _at_ns: u64, event: &Health) {
        self.push(Seen::Health {
            feed,
            event: *event,
        });
    }
    fn on_universe(&mut self, universe: &Universe) {
        self.universe = universe.clone();
    }
    fn on_account(&mut self, msg: &wsfeed::account::AccountMsg) {
        self.push(Seen::Account(Box::new(*msg)));
    }
}

impl Recorder {
    fn push(&self, s: Seen) {
        self.shared.seen.lock().unwrap().push(s);
        self.shared.changed.notify_all();
    }
}

impl Probe {
    /// Waits until `pred` holds over everything seen so far; panics with `what` on timeout.
    pub fn wait(&self, what: &str, pred: impl Fn(&[Seen]) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut seen = self.shared.seen.lock().unwrap();
        while !pred(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for: {what}\nseen health: {:?}",
                health_of(&seen)
            );
            seen = self
                .shared
                .changed
                .wait_timeout(seen, left.min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Health events so far.
    pub fn health(&self) -> Vec<(FeedId, Health)> {
        health_of(&self.shared.seen.lock().unwrap())
    }

    /// Number of ticks seen so far.
    pub fn tick_count(&self) -> usize {
        tick_count(&self.shared.seen.lock().unwrap())
    }

    /// Waits for `n` more ticks than now.
    pub fn wait_more_ticks(&self, n: usize) {
        let base = self.tick_count();
        self.wait(&format!("{n} more ticks"), |s| tick_count(s) >= base + n);
    }

    pub fn set_stalled(&self, on: bool) {
        let (lock, cv) = &*self.stall;
        *lock.lock().unwrap() = on;
        cv.notify_all();
    }
}

pub fn tick_count(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Tick { .. }))
        .count()
}

pub fn health_of(seen: &[Seen]) -> Vec<(FeedId, Health)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Health { feed, event } => Some((*feed, *event)),
            _ => None,
        })
        .collect()
}

/// True when some health event matches.
pub fn has_health(seen: &[Seen], pred: impl Fn(&Health) -> bool) -> bool {
    seen.iter()
        .any(|s| matches!(s, Seen::Health { event, .. } if pred(event)))
}

pub fn count_health(seen: &[Seen], pred: impl Fn(&Health) -> bool) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Health { event, .. } if pred(event)))
        .count()
}

/// A simulator with fast books, TLS on or off.
pub fn sim(tls: bool, usdm_routing: bool) -> Sim {
    Sim::start(SimConfig {
        tls,
        usdm_routing,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        book_interval: Duration::from_millis(5),
        trade_interval: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

/// Fast reconnect settings for tests: small delays, quick liveness.
pub fn fast_reconnect() -> ReconnectConfig {
    ReconnectConfig {
        initial_delay_ms: 20,
        max_delay_ms: 200,
        stale_after_ms: 300,
        pong_timeout_ms: 300,
        connect_timeout_ms: 2000,
        handshake_timeout_ms: 3000,
        ack_timeout_ms: 3000,
        ..ReconnectConfig::default()
    }
}

/// A feed table for `sim` with `streams`.
pub fn feed(name: &str, venue: &str, sim: &Sim, streams: &[&str]) -> FeedConfig {
    let toml = format!(
        "name = \"{name}\"\nvenue = \"{venue}\"\nurl = \"{}\"\nstreams = [{}]\n",
        sim.base_url(),
        streams
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut f: FeedConfig = toml::from_str(&toml).expect("feed table parses");
    f.ca_pem = sim.ca_pem();
    f
}

/// Starts an engine with a recorder over `feeds`.
pub fn start(feeds: Vec<FeedConfig>, reconnect: ReconnectConfig) -> (Engine<Recorder>, Probe) {
    start_with(feeds, reconnect, |_| {})
}

pub fn start_with(
    feeds: Vec<FeedConfig>,
    reconnect: ReconnectConfig,
    tweak: impl FnOnce(&mut FileConfig),
) -> (Engine<Recorder>, Probe) {
    let mut file: FileConfig = toml::from_str("").expect("empty config parses");
    file.reconnect = reconnect;
    file.feeds = feeds;
    tweak(&mut file);
    let config = file.validate().expect("test config is valid");
    let (rec, probe) = recorder();
    (Engine::start(config, rec).expect("engine starts"), probe)
}

/// Checks what the strategy received against what the simulator sent:
/// - nothing received that was not sent, nothing received twice;
/// - on each simulator connection, what arrived is a prefix of what was sent there (messages can
///   only go missing at the tail, in flight when a connection died);
/// - on connections listed in `lossless`, the whole of what was sent arrived.
///
/// Binance depth streams are left out: the strategy gets their local book's view (a REST
/// snapshot, then the diffs after it), checked in `tests/venues.rs`.
pub fn assert_delivery(sent: &[SentRecord], seen: &[Seen], lossless: &[u64]) {
    let mut received: HashSet<(String, u64)> = HashSet::new();
    for s in seen {
        if let Seen::Tick { stream, seq, .. } = s {
            if stream.contains("@depth") {
                continue;
            }
            if !received.insert((stream.clone(), *seq)) {
                panic!("received twice: {stream} {seq}");
            }
        }
    }
    let sent: Vec<&SentRecord> = sent
        .iter()
        .filter(|r| !r.stream.contains("@depth"))
        .collect();
    let sent_set: HashSet<(String, u64)> = sent.iter().map(|r| (r.stream.clone(), r.seq)).collect();
    for r in &received {
        assert!(
            sent_set.contains(r),
            "received something the simulator never sent: {r:?}"
        );
    }
    let mut by_conn: HashMap<u64, Vec<&SentRecord>> = HashMap::new();
    for r in sent {
        by_conn.entry(r.conn.0).or_default().push(r);
    }
    for (conn, records) in by_conn {
        let got: Vec<bool> = records
            .iter()
            .map(|r| received.contains(&(r.stream.clone(), r.seq)))
            .collect();
        let prefix = got.iter().take_while(|g| **g).count();
        assert!(
            got[prefix..].iter().all(|g| !g),
            "connection {conn}: message {} of {} missing but later ones arrived ({:?})",
            prefix,
            records.len(),
            records[prefix]
        );
        if lossless.contains(&conn) {
            assert_eq!(
                prefix,
                records.len(),
                "connection {conn}: lost {} messages",
                records.len() - prefix
            );
        }
    }
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`]. For engine counters and
/// states, which have no change notification.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// True when some health event of feed `feed` matches.
pub fn has_health_of(seen: &[Seen], feed: u16, pred: impl Fn(&Health) -> bool) -> bool {
    seen.iter()
        .any(|s| matches!(s, Seen::Health { feed: f, event } if *f == feed && pred(event)))
}

/// Where the first health event that matches is, among everything seen.
pub fn position_of(seen: &[Seen], pred: impl Fn(&Health) -> bool) -> Option<usize> {
    seen.iter()
        .position(|s| matches!(s, Seen::Health { event, .. } if pred(event)))
}

/// Ticks of `stream` on feed `feed`.
pub fn ticks_of(seen: &[Seen], feed: u16, stream: &str) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Tick { feed: f, stream: n, .. } if *f == feed && n == stream))
        .count()
}

/// Index of `stream` in feed `feed` of the engine's universe.
pub fn stream_index(universe: &Universe, feed: usize, stream: &str) -> u16 {
    universe.feeds[feed]
        .streams
        .iter()
        .position(|s| s.name == stream)
        .unwrap_or_else(|| panic!("{stream} is not in feed {feed}")) as u16
}

/// Asserts that connection `conn` of the simulator subscribed exactly `want`.
pub fn assert_resubscribed(snap: &SimSnapshot, conn: ConnId, want: &[&str]) {
    let info = snap
        .conn(conn)
        .unwrap_or_else(|| panic!("no {conn}: {snap:?}"));
    let mut got = info.streams.clone();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{conn} subscribed everything");
}

/// An `[[accounts]]` table for simulated account `name` on `venue`, at `sim`, its credentials
/// given in-process.
pub fn account(name: &str, venue: &str, sim: &Sim) -> AccountConfig {
    let passphrase = if venue == "okx" {
        "passphrase_env = \"UNUSED\"\n"
    } else {
        ""
    };
    let toml = format!(
        "name = \"{name}\"\nvenue = \"{venue}\"\nurl = \"{}\"\nkey_env = \"UNUSED\"\nsecret_env = \"UNUSED\"\n{passphrase}",
        sim.base_url()
    );
    let mut a: AccountConfig = toml::from_str(&toml).expect("account table parses");
    let sim_account = SimAccount::named(name);
    a.credentials = Some(Credentials {
        key: Secret::new(sim_account.api_key),
        secret: Secret::new(sim_account.secret),
        passphrase: sim_account.passphrase.map(Secret::new),
    });
    a
}

/// The venue definition in file `path` (`configs/venues/…`), as written.
pub fn definition(path: &str) -> VenueSpec {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The venue defined in file `path`, compiled.
pub fn defined_venue(path: &str) -> Venue {
    Defined::load(&definition(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A simulator speaking a defined venue: its URL with the definition's path (the engine adds
/// none).
pub fn defined_url(sim: &Sim) -> String {
    let path = sim
        .config()
        .venue
        .ws_path()
        .expect("a defined venue has a path");
    format!("{}{path}", sim.base_url())
}

/// A feed of the defined venue `venue` on `sim`.
pub fn defined_feed(name: &str, venue: &str, sim: &Sim, streams: &[&str]) -> FeedConfig {
    let mut f = feed(name, venue, sim, streams);
    f.url = Some(defined_url(sim));
    f
}
