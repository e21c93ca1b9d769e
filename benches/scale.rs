//! What scale costs: resident memory, threads and CPU per message of the engine with 50
//! connections × 20 streams against the simulator, and the memory of one more idle feed.
//!
//! Mode: `ws://` on 127.0.0.1, the simulator in a process of its own (`wsfeed-sim`, Binance
//! spot), so this process's resident memory and threads are the engine's; every engine thread
//! blocking (no spinning thread), nothing pinned. Three runs, each on a fresh
//! engine (memory is returned between them, so each run is measured from the same base):
//! - `idle`: 1 feed, then 50 feeds × 20 bookTicker streams of symbols that barely move (a book
//!   change every 30 s): resident memory per added feed, from the difference;
//! - `threads`: 50 feeds × 20 streams (10 symbols × `@bookTicker` and `@aggTrade`) of a busy
//!   market, each feed on a thread of its own, the strategy on its own thread;
//! - `shared-inline`: the same 50 feeds on one driver, the strategy inline on it: one thread.
//!
//! Reports per run: resident memory of the process over what it held before the engine started,
//! threads, messages a second, and CPU per message of the engine's threads (`feed-*`,
//! `strategy`). `cargo bench
//! --bench scale` (about 40 s); `--seconds N` sets each measured window (default 5).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{thread_cpu_ns, Args};
use wsfeed::config::{FeedConfig, FileConfig, StrategyPlace};
use wsfeed::demo::resident_bytes;
use wsfeed::engine::Engine;
use wsfeed::metrics::FeedState;
use wsfeed::strategy::Strategy;
use wsfeed::tick::{FeedId, Health, Tick};

const FEEDS: usize = 50;
const STREAMS_PER_FEED: usize = 20;

/// Counts what it is given.
struct Count(Arc<AtomicU64>);

impl Strategy for Count {
    fn on_tick(&mut self, _: &Tick) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn on_health(&mut self, _: FeedId, _: u64, _: &Health) {}
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i:03}USDT")).collect()
}

/// The simulator in a process of its own; it stops when this value is dropped (its stdin
/// closes).
struct SimProcess {
    child: Child,
    url: String,
}

impl SimProcess {
    fn start(symbols: &[String], book_ms: u64, trade_ms: u64) -> SimProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsfeed-sim"))
            .args(["--listen", "127.0.0.1:0", "--symbols", &symbols.join(",")])
            .args([
                "--book-ms",
                &book_ms.to_string(),
                "--trade-ms",
                &trade_ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("wsfeed-sim starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("wsfeed-sim prints its url");
        let url = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("wsfeed-sim printed {line:?}"))
            .to_string();
        SimProcess { child, url }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `n` feeds on `sim`, feed `f` carrying `streams(f)`; on one shared driver when `shared`.
fn config(
    sim: &SimProcess,
    n: usize,
    streams: impl Fn(usize) -> Vec<String>,
    shared: bool,
) -> FileConfig {
    let mut file: FileConfig = toml::from_str(
        "[reconnect]\nstale_after_ms = 60000\npong_timeout_ms = 10000\n\
         [engine]\nstatus_interval_ms = 1000\n",
    )
    .expect("config parses");
    file.feeds = (0..n)
        .map(|f| {
            let list: Vec<String> = streams(f).iter().map(|s| format!("\"{s}\"")).collect();
            let mut toml = format!(
                "name = \"f{f}\"\nvenue = \"binance-spot\"\nurl = \"{}\"\nstreams = [{}]\n",
                sim.url,
                list.join(",")
            );
            if shared {
                toml.push_str("driver = \"all\"\n");
            }
            toml::from_str::<FeedConfig>(&toml).expect("feed table parses")
        })
        .collect();
    if shared {
        file.drivers = vec![toml::from_str("name = \"all\"").expect("driver table parses")];
        file.engine.strategy = StrategyPlace::Inline;
    }
    file
}

/// A started engine.
struct Running {
    engine: Engine<Count>,
}

fn start(file: FileConfig) -> Running {
    let config = file.validate().expect("valid config");
    let engine = Engine::start(config, Count(Arc::new(AtomicU64::new(0)))).expect("engine starts");
    Running { engine }
}

/// Waits until every feed streams (every stream acknowledged), at most 30 s.
fn wait_streaming(r: &Running) {
    let end = Instant::now() + Duration::from_secs(30);
    while !r
        .engine
        .stats()
        .iter()
        .all(|s| s.state() == FeedState::Streaming)
    {
        assert!(Instant::now() < end, "feeds did not all stream within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of the process now, after a moment for the allocator to settle.
fn rss() -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    resident_bytes().unwrap_or(0)
}

struct Figures {
    threads: usize,
    rate: f64,
    cpu_ns_per_msg: f64,
}

/// Streams for `seconds` and measures.
fn measure(r: &Running, seconds: f64) -> Figures {
    let msgs = || -> u64 {
        r.engine
            .stats()
            .iter()
            .map(|s| s.messages.load(Ordering::Relaxed))
            .sum()
    };
    let (m0, cpu0, t0) = (
        msgs(),
        thread_cpu_ns(&["feed-", "strategy"]),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (m1, cpu1, dt) = (msgs(), thread_cpu_ns(&["feed-", "strategy"]), t0.elapsed());
    let n = (m1 - m0).max(1);
    Figures {
        threads: threads(),
        rate: n as f64 / dt.as_secs_f64(),
        cpu_ns_per_msg: (cpu1 - cpu0) as f64 / n as f64,
    }
}

/// One measured run, in this (fresh) process: prints a `RESULT` line for the parent.
fn phase(name: &str, seconds: f64) {
    let (symbols, book_ms, trade_ms, feeds, shared) = match name {
        // Quiet symbols: a book change every 30 s, no trades.
        "idle-1" => (
            symbols(FEEDS * STREAMS_PER_FEED),
            30_000,
            3_600_000,
            1,
            false,
        ),
        "idle-50" => (
            symbols(FEEDS * STREAMS_PER_FEED),
            30_000,
            3_600_000,
            FEEDS,
            false,
        ),
        "threads" => (
            symbols(FEEDS * STREAMS_PER_FEED / 2),
            100,
            250,
            FEEDS,
            false,
        ),
        "shared-inline" => (symbols(FEEDS * STREAMS_PER_FEED / 2), 100, 250, FEEDS, true),
        other => panic!("unknown phase {other}"),
    };
    let idle = name.starts_with("idle");
    let streams = |f: usize| -> Vec<String> {
        if idle {
            symbols[f * STREAMS_PER_FEED..(f + 1) * STREAMS_PER_FEED]
                .iter()
                .map(|s| format!("{}@bookTicker", s.to_lowercase()))
                .collect()
        } else {
            symbols[f * STREAMS_PER_FEED / 2..(f + 1) * STREAMS_PER_FEED / 2]
                .iter()
                .flat_map(|s| {
                    let s = s.to_lowercase();
                    [format!("{s}@bookTicker"), format!("{s}@aggTrade")]
                })
                .collect()
        }
    };
    let venue = SimProcess::start(&symbols, book_ms, trade_ms);
    let before = rss();
    let r = start(config(&venue, feeds, streams, shared));
    wait_streaming(&r);
    let f = measure(&r, if idle { 1.0 } else { seconds });
    let after = rss();
    r.engine.stop();
    drop(venue);
    println!(
        "RESULT {name} {before} {after} {} {:.0} {:.0}",
        f.threads, f.rate, f.cpu_ns_per_msg
    );
}

/// A phase's figures, as its process printed them.
struct Row {
    before: u64,
    after: u64,
    threads: usize,
    rate: f64,
    cpu_ns: f64,
}

/// Runs `name` in a fresh process of this bench.
fn run_phase(name: &str, seconds: f64) -> Row {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["--phase", name, "--seconds", &seconds.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("phase runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("phase {name} printed no RESULT:\n{text}"));
    let v: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| v[i].parse::<f64>().expect("number");
    Row {
        before: num(1) as u64,
        after: num(2) as u64,
        threads: num(3) as usize,
        rate: num(4),
        cpu_ns: num(5),
    }
}

fn main() {
    let args = Args::from_env();
    let seconds: f64 = args.get("seconds", 5.0);
    wsfeed::clock::init();
    if let Some(name) = args.opt::<String>("phase") {
        phase(&name, seconds);
        return;
    }
    println!(
        "scale: ws:// on 127.0.0.1, {} cores; the simulator in a process of its own (wsfeed-sim, Binance spot); \
         every engine thread blocking, nothing pinned; {FEEDS} feeds × {STREAMS_PER_FEED} streams; each run in a fresh process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let one = run_phase("idle-1", seconds);
    let many = run_phase("idle-50", seconds);
    let grown = |r: &Row| r.after.saturating_sub(r.before);
    let per_feed = grown(&many).saturating_sub(grown(&one)) as f64 / (FEEDS - 1) as f64;
    println!(
        "idle: 1 feed +{:.1} MiB, {FEEDS} feeds +{:.1} MiB ({} threads): each added idle feed (20 streams) {:.0} KiB, {}",
        mib(grown(&one)),
        mib(grown(&many)),
        many.threads,
        per_feed / 1024.0,
        if per_feed <= 1024.0 * 1024.0 { "≤ 1 MiB: met" } else { "> 1 MiB: NOT met" }
    );
    let mut table = format!(
        "| run | feeds × streams | msg/s | CPU/msg (µs) | engine resident (MiB) | threads (process) |\n\
         |---|---|---:|---:|---:|---:|\n\
         | idle, a thread per feed | {FEEDS} × {STREAMS_PER_FEED} | – | – | {:.1} ({:.0} KiB per feed) | {} |\n",
        mib(grown(&many)),
        per_feed / 1024.0,
        many.threads
    );
    for (name, label) in [
        ("threads", "busy, a thread per feed"),
        ("shared-inline", "busy, one driver, strategy inline"),
    ] {
        let r = run_phase(name, seconds);
        table.push_str(&format!(
            "| {label} | {FEEDS} × {STREAMS_PER_FEED} | {:.0} | {:.2} | {:.1} | {} |\n",
            r.rate,
            r.cpu_ns / 1000.0,
            mib(grown(&r)),
            r.threads
        ));
    }
    println!("\n{table}");
}
