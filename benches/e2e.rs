//! End to end, in one run: the simulator's replay mode → client → consumer, for wsfeed and for
//! the async design most bots use, on the same server and the same messages.
//!
//! Mode (printed with the results):
//! - transport: `ws://` on 127.0.0.1, one Binance USD-M `bookTicker` stream (~190-byte frames);
//! - wsfeed: the real engine (`Engine::start`), the feed thread blocking in mio (not pinned),
//!   the strategy thread spinning, pinned to the last core (`--strategy-wait block` and
//!   `--no-pin` change that);
//! - async: tokio + tokio-tungstenite + `serde_json::Value` + a bounded tokio mpsc channel to a
//!   consumer task, on the multi-thread runtime (2 workers) and on the current-thread runtime;
//! - for reference, wsfeed again with the feed thread busy-polling its socket (`wait = "spin"`).
//!
//! Options: `--rate`, `--seconds`, `--max-messages`, `--strategy-wait block`, `--no-pin`,
//! `--feed-wait spin`, `--feed-core N`, `--server-core N` (pins the sending thread), `--only
//! NAME` (one design), `--out DIR`.
//!
//! Per design: a warm-up, then `--rate` (10 000) messages a second for `--seconds` (3), then
//! `--max-messages` (1 000 000) as fast as the socket takes them. Latency is venue send (just
//! before the server's `write`) → the consumer's code (`Strategy::on_tick`, the consumer task).
//! CPU per message is the paced phase's CPU time of the design's threads over its messages.
//!
//! `cargo bench --bench e2e` (about 30 s). Writes `target/wsfeed-bench/e2e-*.csv` (percentile
//! spectra for `tools/plot_latency.py`) and `e2e-summary.md`.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{histogram, thread_cpu_ns, us, Args};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use wsfeed::clock;
use wsfeed::config::Config;
use wsfeed::engine::Engine;
use wsfeed::sim::replay::{Replay, FIRST_ID, STREAM};
use wsfeed::strategy::Strategy;
use wsfeed::tick::{FeedId, Health, Tick};

const WARMUP: usize = 2_000;

/// Counts and times what reaches the consumer.
struct Meter {
    replay: Arc<Replay>,
    paced_end: usize,
    paced: Histogram<u64>,
    max: Histogram<u64>,
    max_n: u64,
    max_last_ns: u64,
    seen: Arc<AtomicU64>,
    /// wsfeed only, paced run: venue send → the feed thread's frame read.
    to_read: Histogram<u64>,
}

impl Meter {
    fn new(replay: Arc<Replay>, paced_end: usize) -> Meter {
        Meter {
            replay,
            paced_end,
            paced: histogram(),
            max: histogram(),
            max_n: 0,
            max_last_ns: 0,
            seen: Arc::new(AtomicU64::new(0)),
            to_read: histogram(),
        }
    }

    #[inline]
    fn on(&mut self, id: u64) {
        let now = clock::now_ns();
        let k = id.wrapping_sub(FIRST_ID) as usize;
        let sent = self.replay.sent_ns(k);
        let lat = now.saturating_sub(sent).max(1);
        if k >= self.paced_end {
            self.max.saturating_record(lat);
            self.max_n += 1;
            self.max_last_ns = now;
        } else if k >= WARMUP {
            self.paced.saturating_record(lat);
        }
        self.seen.fetch_add(1, Ordering::Release);
    }
}

/// wsfeed's side: the strategy measures.
struct Probe(Meter);

impl Strategy for Probe {
    fn on_tick(&mut self, tick: &Tick) {
        let k = tick.seq.wrapping_sub(FIRST_ID) as usize;
        if (WARMUP..self.0.paced_end).contains(&k) {
            let sent = self.0.replay.sent_ns(k);
            self.0
                .to_read
                .saturating_record(tick.recv_ns.saturating_sub(sent).max(1));
        }
        self.0.on(tick.seq);
    }
    fn on_health(&mut self, _: FeedId, _: u64, _: &Health) {}
}

/// What most bots hand their strategy: a parsed quote.
#[derive(Clone, Copy, Debug)]
struct Quote {
    u: u64,
    bid: f64,
    bid_qty: f64,
    ask: f64,
    ask_qty: f64,
}

async fn async_reader(url: String, tx: tokio::sync::mpsc::Sender<Quote>) {
    use tokio_tungstenite::tungstenite::Message;
    let (ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("async client: cannot connect to {url}: {e}");
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let subscribe = format!(r#"{{"method":"SUBSCRIBE","params":["{STREAM}"],"id":1}}"#);
    if sink.send(Message::text(subscribe)).await.is_err() {
        return;
    }
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(_) => continue,
            Err(_) => break,
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        let data = &v["data"];
        let Some(u) = data["u"].as_u64() else {
            continue;
        };
        let num = |k: &str| {
            data[k]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let quote = Quote {
            u,
            bid: num("b"),
            bid_qty: num("B"),
            ask: num("a"),
            ask_qty: num("A"),
        };
        if tx.send(quote).await.is_err() {
            break;
        }
    }
}

async fn async_consumer(mut rx: tokio::sync::mpsc::Receiver<Quote>, mut meter: Meter) -> Meter {
    while let Some(q) = rx.recv().await {
        black_box((q.bid, q.bid_qty, q.ask, q.ask_qty));
        meter.on(q.u);
    }
    meter
}

#[derive(Clone, Copy, PartialEq)]
enum Design {
    Wsfeed,
    /// The same engine with the feed thread busy-polling its socket too.
    WsfeedSpin,
    AsyncMulti,
    AsyncCurrent,
}

impl Design {
    fn name(self) -> &'static str {
        match self {
            Design::Wsfeed => "wsfeed",
            Design::WsfeedSpin => "wsfeed-feed-spinning",
            Design::AsyncMulti => "async-multi-thread",
            Design::AsyncCurrent => "async-current-thread",
        }
    }
    /// Threads whose CPU time counts as the design's.
    fn threads(self) -> &'static [&'static str] {
        match self {
            Design::Wsfeed | Design::WsfeedSpin => &["feed-bench", "strategy"],
            Design::AsyncMulti => &["async-mt", "async-main"],
            Design::AsyncCurrent => &["async-ct"],
        }
    }
}

struct Opts {
    rate: u32,
    seconds: f64,
    max_messages: usize,
    strategy_spin: bool,
    feed_wait: String,
    feed_core: Option<usize>,
    pin: bool,
}

struct Outcome {
    design: Design,
    paced: Histogram<u64>,
    max: Histogram<u64>,
    paced_rate: f64,
    cpu_ns_per_msg: f64,
    feed_cpu_ns_per_msg: f64,
    max_rate: f64,
    max_sent: usize,
    max_delivered: u64,
    /// CPU time of the design's first thread (wsfeed: the feed thread) per message at the
    /// maximum rate.
    max_cpu_ns_per_msg: f64,
}

/// A running client of one design.
enum Client {
    Wsfeed(Box<Engine<Probe>>),
    Async(std::thread::JoinHandle<Meter>),
}

fn start_client(design: Design, opts: &Opts, url: &str, meter: Meter) -> Client {
    match design {
        Design::Wsfeed | Design::WsfeedSpin => {
            let cores = core_affinity::get_core_ids().unwrap_or_default();
            let core = match (opts.pin, cores.last()) {
                (true, Some(c)) => format!("strategy_core = {}\n", c.id),
                _ => String::new(),
            };
            let wait = if opts.strategy_spin { "spin" } else { "block" };
            let feed_core = match opts.feed_core {
                Some(c) => format!("core = {c}\n"),
                None => String::new(),
            };
            let toml = format!(
                "[engine]\nstrategy_wait = \"{wait}\"\n{core}\
                 [reconnect]\nstale_after_ms = 60000\npong_timeout_ms = 10000\n\
                 [[feeds]]\nname = \"bench\"\nvenue = \"binance-usdm\"\nurl = \"{url}\"\n\
                 streams = [\"{STREAM}\"]\nwait = \"{feed_wait}\"\n{feed_core}",
                feed_wait = if design == Design::WsfeedSpin {
                    "spin"
                } else {
                    opts.feed_wait.as_str()
                }
            );
            let config = Config::from_toml(&toml).expect("bench config");
            Client::Wsfeed(Box::new(
                Engine::start(config, Probe(meter)).expect("engine starts"),
            ))
        }
        Design::AsyncMulti | Design::AsyncCurrent => {
            let multi = design == Design::AsyncMulti;
            let url = format!("{url}/stream");
            let thread = if multi { "async-main" } else { "async-ct" };
            let handle = std::thread::Builder::new()
                .name(thread.into())
                .spawn(move || {
                    let rt = if multi {
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .thread_name("async-mt")
                            .enable_all()
                            .build()
                    } else {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                    }
                    .expect("tokio runtime");
                    rt.block_on(async move {
                        let (tx, rx) = tokio::sync::mpsc::channel(65_536);
                        let reader = tokio::spawn(async_reader(url, tx));
                        let consumer = tokio::spawn(async_consumer(rx, meter));
                        let _ = reader.await;
                        consumer.await.expect("consumer task")
                    })
                })
                .expect("spawn async client");
            Client::Async(handle)
        }
    }
}

fn stop_client(client: Client, replay: Arc<Replay>) -> Meter {
    match client {
        Client::Wsfeed(engine) => {
            let (_, probe) = engine.stop();
            drop(replay);
            probe.0
        }
        Client::Async(handle) => {
            // The server's close ends the reader, then the consumer.
            replay.close_connections();
            handle.join().expect("async client thread")
        }
    }
}

/// Waits until `seen` reaches `n`, or stops growing for `quiet`, or `limit` passes.
fn wait_seen(seen: &AtomicU64, n: u64, quiet: Duration, limit: Duration) -> u64 {
    let start = Instant::now();
    let (mut last, mut since) = (seen.load(Ordering::Acquire), Instant::now());
    loop {
        let now_seen = seen.load(Ordering::Acquire);
        if now_seen >= n || start.elapsed() >= limit {
            return now_seen;
        }
        if now_seen != last {
            (last, since) = (now_seen, Instant::now());
        } else if since.elapsed() >= quiet {
            return now_seen;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn run(design: Design, opts: &Opts) -> Outcome {
    let paced = (f64::from(opts.rate) * opts.seconds) as usize;
    let paced_end = WARMUP + paced;
    let total = paced_end + opts.max_messages;
    let replay = Arc::new(Replay::start(total).expect("replay server"));
    let meter = Meter::new(replay.clone(), paced_end);
    let seen = meter.seen.clone();
    let client = start_client(design, opts, &replay.url(), meter);
    assert!(
        replay.wait_subscribed(1, Duration::from_secs(10)),
        "{} did not subscribe within 10 s",
        design.name()
    );
    let quiet = Duration::from_millis(500);
    let limit = Duration::from_secs(20);
    // Warm-up at the paced rate: connections, caches and the branch predictor settle.
    replay.send(0, WARMUP, Some(opts.rate)).expect("send");
    wait_seen(&seen, WARMUP as u64, quiet, limit);
    // Paced.
    let cpu0 = thread_cpu_ns(design.threads());
    let feed0 = thread_cpu_ns(&design.threads()[..1]);
    let report = replay.send(WARMUP, paced, Some(opts.rate)).expect("send");
    wait_seen(&seen, paced_end as u64, quiet, limit);
    let cpu = thread_cpu_ns(design.threads()) - cpu0;
    let feed_cpu = thread_cpu_ns(&design.threads()[..1]) - feed0;
    // As fast as it goes.
    let feed_max0 = thread_cpu_ns(&design.threads()[..1]);
    let before_max = seen.load(Ordering::Acquire);
    replay
        .send(paced_end, opts.max_messages, None)
        .expect("send");
    let after = wait_seen(&seen, total as u64, quiet, limit);
    let feed_max_cpu = thread_cpu_ns(&design.threads()[..1]) - feed_max0;
    let max_first_sent = replay.sent_ns(paced_end);
    let meter = stop_client(client, replay);
    let max_delivered = after - before_max;
    if !meter.to_read.is_empty() {
        println!(
            "  {:<22} of which venue send → frame read: p50 {} µs p99 {} µs",
            design.name(),
            us(meter.to_read.value_at_quantile(0.5)),
            us(meter.to_read.value_at_quantile(0.99))
        );
    }
    let span = meter.max_last_ns.saturating_sub(max_first_sent).max(1);
    Outcome {
        design,
        paced: meter.paced,
        max: meter.max,
        paced_rate: paced as f64 / report.elapsed.as_secs_f64(),
        cpu_ns_per_msg: cpu as f64 / paced as f64,
        feed_cpu_ns_per_msg: feed_cpu as f64 / paced as f64,
        max_rate: meter.max_n as f64 / (span as f64 / 1e9),
        max_sent: opts.max_messages,
        max_delivered,
        max_cpu_ns_per_msg: feed_max_cpu as f64 / max_delivered.max(1) as f64,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

fn main() {
    let args = Args::from_env();
    let opts = Opts {
        rate: args.get("rate", 10_000u32),
        seconds: args.get("seconds", 3.0f64),
        max_messages: args.get("max-messages", 1_000_000usize),
        strategy_spin: args.get("strategy-wait", "spin".to_string()) == "spin",
        pin: !args.flag("no-pin"),
        feed_wait: args.get("feed-wait", "block".to_string()),
        feed_core: args.opt("feed-core"),
    };
    let out = common::out_dir(&args);
    clock::init();
    // The replay server sends from this thread.
    if let Some(id) = args.opt::<usize>("server-core") {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
    let pin = match (
        opts.pin,
        core_affinity::get_core_ids().and_then(|c| c.last().copied()),
    ) {
        (true, Some(c)) => format!("pinned to core {}", c.id),
        _ => "not pinned".into(),
    };
    let mode = format!(
        "ws:// on 127.0.0.1, {cores} cores; wsfeed: feed thread blocking in mio (not pinned), strategy thread {} ({pin}); \
         async: tokio + tokio-tungstenite + serde_json::Value + tokio mpsc (65 536) to a consumer task; \
         wsfeed-feed-spinning: the feed thread busy-polls its socket too (for reference; the targets are for the first row)",
        if opts.strategy_spin { "spinning" } else { "blocking" },
    );
    println!("e2e: {mode}");
    let mut results = Vec::new();
    let only = args.get("only", String::new());
    for design in [
        Design::Wsfeed,
        Design::AsyncMulti,
        Design::AsyncCurrent,
        Design::WsfeedSpin,
    ] {
        if !only.is_empty() && design.name() != only {
            continue;
        }
        let o = run(design, &opts);
        println!(
            "  {:<22} paced {} msgs at {:.0}/s: p50 {} µs p99 {} µs; max rate {:.0} msg/s ({} of {} delivered)",
            design.name(),
            o.paced.len(),
            o.paced_rate,
            us(o.paced.value_at_quantile(0.5)),
            us(o.paced.value_at_quantile(0.99)),
            o.max_rate,
            o.max_delivered,
            o.max_sent
        );
        common::write_percentiles(&out, &format!("e2e-{}", design.name()), &o.paced);
        results.push(o);
    }

    let mut table = String::new();
    let header = format!(
        "Latency, venue send → consumer code, at {} msg/s for {} s (µs); CPU per message in the paced run; maximum rate through one connection.\n\
         Mode: {mode}.\n\n\
         | design | p50 | p99 | p99.9 | max | CPU/msg (µs) | max rate (msg/s) | max-rate p50 / p99 (µs) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        opts.rate, opts.seconds
    );
    table.push_str(&header);
    for o in &results {
        let q = |h: &Histogram<u64>, p: f64| us(h.value_at_quantile(p));
        let cpu = match o.design {
            Design::Wsfeed | Design::WsfeedSpin if opts.strategy_spin => format!(
                "{} (feed thread; the strategy spins)",
                us(o.feed_cpu_ns_per_msg as u64)
            ),
            _ => us(o.cpu_ns_per_msg as u64),
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} / {} |\n",
            o.design.name(),
            q(&o.paced, 0.5),
            q(&o.paced, 0.99),
            q(&o.paced, 0.999),
            us(o.paced.max()),
            cpu,
            o.max_rate,
            q(&o.max, 0.5),
            q(&o.max, 0.99),
        ));
    }
    if results.len() < 4 {
        return;
    }
    let ws = &results[0];
    let mut ratios = String::from("\nRatios (async ÷ wsfeed, higher is better for wsfeed):\n");
    for o in &results[1..3] {
        ratios.push_str(&format!(
            "- {}: p50 {:.1}×, p99 {:.1}×, p99.9 {:.1}×, max rate {:.1}× (wsfeed ÷ async)\n",
            o.design.name(),
            ratio(
                o.paced.value_at_quantile(0.5),
                ws.paced.value_at_quantile(0.5)
            ),
            ratio(
                o.paced.value_at_quantile(0.99),
                ws.paced.value_at_quantile(0.99)
            ),
            ratio(
                o.paced.value_at_quantile(0.999),
                ws.paced.value_at_quantile(0.999)
            ),
            ws.max_rate / o.max_rate.max(1.0),
        ));
    }
    let best = |q: f64| {
        results[1..3]
            .iter()
            .map(|o| o.paced.value_at_quantile(q))
            .min()
            .unwrap_or(0)
    };
    let check = |ok: bool| if ok { "met" } else { "NOT met" };
    let (p50, p99) = (
        ws.paced.value_at_quantile(0.5),
        ws.paced.value_at_quantile(0.99),
    );
    let multi_p99 = results[1].paced.value_at_quantile(0.99);
    let per_core = 1e9 / ws.max_cpu_ns_per_msg.max(1.0);
    let targets = format!(
        "\nTargets:\n\
         - wsfeed p50 ≤ 7 µs: {} µs, {}\n\
         - wsfeed p99 ≤ 25 µs: {} µs, {}\n\
         - ≥ 2× better than the best async at p50: {:.1}×, {}\n\
         - ≥ 2× better than the best async at p99: {:.1}×, {}\n\
         - ≥ 5× better than async multi-thread at p99: {:.1}×, {}\n\
         - ≥ 2 000 000 msg/s through one feed thread: {:.0}, {} (the feed thread used {:.0} ns of CPU per message at that rate: \
           {:.0} msg/s if it had a core to itself; on this machine it shares one with the sending thread)\n",
        us(p50),
        check(p50 <= 7_000),
        us(p99),
        check(p99 <= 25_000),
        ratio(best(0.5), p50),
        check(best(0.5) >= 2 * p50),
        ratio(best(0.99), p99),
        check(best(0.99) >= 2 * p99),
        ratio(multi_p99, p99),
        check(multi_p99 >= 5 * p99),
        ws.max_rate,
        check(ws.max_rate >= 2_000_000.0),
        ws.max_cpu_ns_per_msg,
        per_core,
    );
    let report = format!("{table}{ratios}{targets}");
    println!("\n{report}");
    let path = out.join("e2e-summary.md");
    if let Err(e) = std::fs::write(&path, &report) {
        eprintln!("cannot write {}: {e}", path.display());
    } else {
        println!("written: {} and e2e-*.csv beside it", path.display());
    }
}
