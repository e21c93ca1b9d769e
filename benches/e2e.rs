//! End to end, in one run: the simulator's replay mode → client → consumer, for wsfeed in each
//! of its modes and for the async design most bots use, on the same server and the same messages.
//!
//! Modes (printed with the results):
//! - transport: `ws://` on 127.0.0.1, one Binance USD-M `bookTicker` stream (~190-byte frames);
//! - `wsfeed`, the default: the real engine (`Engine::start`), the feed thread blocking in mio
//!   (not pinned), the strategy thread spinning, pinned to the last core (`--strategy-wait
//!   block` and `--no-pin` change that);
//! - `wsfeed-inline`: `strategy = "inline"`, the strategy called on the thread that reads,
//!   which blocks in mio, pinned to the last core;
//! - `wsfeed-inline-spinning`: the same thread busy-polling its socket;
//! - `wsfeed-shared-4-feeds-inline`: four feeds (four connections to the stream) on one driver,
//!   blocking, the strategy inline: every message arrives four times;
//! - async: tokio + tokio-tungstenite + `serde_json::Value` + a bounded tokio mpsc channel to a
//!   consumer task, on the multi-thread runtime (2 workers) and on the current-thread runtime;
//! - for reference, the default with the feed thread busy-polling its socket too.
//!
//! Options: `--rate`, `--seconds`, `--max-messages`, `--strategy-wait block`, `--no-pin`,
//! `--feed-wait spin`, `--feed-core N`, `--server-core N` (pins the sending thread), `--only
//! NAME[,NAME…]` (some designs), `--out DIR`, `--nats URL` (wsfeed's designs also publish every
//! tick to NATS JetStream through `[sink.nats]`, to compare the strategy path with and without).
//!
//! Per design: a warm-up, then `--rate` (10 000) messages a second for `--seconds` (3), then
//! `--max-messages` (1 000 000) as fast as the socket takes them. Latency is venue send (just
//! before the server's `write`) → the consumer's code (`Strategy::on_tick`, the consumer task);
//! wsfeed also reports its own part, frame read → `on_tick`. CPU per tick is the paced phase's
//! CPU time of the design's threads over its ticks.
//!
//! `cargo bench --bench e2e` (about 50 s). Writes `target/wsfeed-bench/e2e-*.csv` (percentile
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
    /// wsfeed only, paced run: the engine's own part, frame read → `on_tick`.
    engine: Histogram<u64>,
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
            engine: histogram(),
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
            let now = clock::now_ns();
            self.0
                .engine
                .saturating_record(now.saturating_sub(tick.recv_ns).max(1));
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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Design {
    /// The default: the feed thread blocking in mio, the strategy on its own thread.
    Wsfeed,
    AsyncMulti,
    AsyncCurrent,
    /// The strategy inline on the thread that reads, which blocks in mio.
    Inline,
    /// The strategy inline on the thread that reads, which busy-polls its socket.
    InlineSpin,
    /// Four feeds (four connections to the same stream) on one driver, the strategy inline.
    Shared4,
    /// The default with the feed thread busy-polling its socket too (for reference).
    WsfeedSpin,
}

impl Design {
    const ALL: [Design; 7] = [
        Design::Wsfeed,
        Design::AsyncMulti,
        Design::AsyncCurrent,
        Design::Inline,
        Design::InlineSpin,
        Design::Shared4,
        Design::WsfeedSpin,
    ];

    fn name(self) -> &'static str {
        match self {
            Design::Wsfeed => "wsfeed",
            Design::AsyncMulti => "async-multi-thread",
            Design::AsyncCurrent => "async-current-thread",
            Design::Inline => "wsfeed-inline",
            Design::InlineSpin => "wsfeed-inline-spinning",
            Design::Shared4 => "wsfeed-shared-4-feeds-inline",
            Design::WsfeedSpin => "wsfeed-feed-spinning",
        }
    }

    /// Threads whose CPU time counts as the design's; the first is the one that reads.
    fn threads(self) -> &'static [&'static str] {
        match self {
            Design::Wsfeed | Design::WsfeedSpin => &["feed-bench", "strategy"],
            Design::Inline | Design::InlineSpin | Design::Shared4 => &["feed-bench"],
            Design::AsyncMulti => &["async-mt", "async-main"],
            Design::AsyncCurrent => &["async-ct"],
        }
    }

    fn is_async(self) -> bool {
        matches!(self, Design::AsyncMulti | Design::AsyncCurrent)
    }

    /// Connections (feeds) the design opens to the stream: each message reaches it that often.
    fn copies(self) -> usize {
        if self == Design::Shared4 {
            4
        } else {
            1
        }
    }

    /// Whether the strategy runs on its own thread (which spins unless told to block).
    fn strategy_thread(self) -> bool {
        matches!(self, Design::Wsfeed | Design::WsfeedSpin)
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
    /// `--nats URL`: wsfeed's designs also publish to NATS (`[sink.nats]`).
    nats: Option<String>,
}

struct Outcome {
    design: Design,
    paced: Histogram<u64>,
    max: Histogram<u64>,
    /// wsfeed: frame read → `on_tick`, paced run.
    engine: Histogram<u64>,
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

/// The engine's config for `design`: its feeds on the replay server at `url`.
fn wsfeed_toml(design: Design, opts: &Opts, url: &str) -> String {
    let last_core = core_affinity::get_core_ids()
        .unwrap_or_default()
        .last()
        .map(|c| c.id);
    let pin = |key: &str| match (opts.pin, last_core) {
        (true, Some(c)) => format!("{key} = {c}\n"),
        _ => String::new(),
    };
    let feed = |name: &str, extra: &str| {
        format!(
            "[[feeds]]\nname = \"{name}\"\nvenue = \"binance-usdm\"\nurl = \"{url}\"\n\
             streams = [\"{STREAM}\"]\n{extra}"
        )
    };
    let sink = opts.nats.as_ref().map_or(String::new(), |url| {
        // The sink thread goes on the first core, away from the pinned strategy (the last).
        format!("[sink.nats]\nurl = \"{url}\"\ncore = 0\n")
    });
    let quiet = format!("{sink}[reconnect]\nstale_after_ms = 60000\npong_timeout_ms = 10000\n");
    if design.strategy_thread() {
        let wait = if opts.strategy_spin { "spin" } else { "block" };
        let feed_wait = if design == Design::WsfeedSpin {
            "spin"
        } else {
            opts.feed_wait.as_str()
        };
        let feed_core = match opts.feed_core {
            Some(c) => format!("core = {c}\n"),
            None => String::new(),
        };
        return format!(
            "[engine]\nstrategy_wait = \"{wait}\"\n{}{quiet}{}",
            pin("strategy_core"),
            feed("bench", &format!("wait = \"{feed_wait}\"\n{feed_core}"))
        );
    }
    // Inline: every feed on the one driver "bench", pinned where the strategy thread would be.
    let wait = if design == Design::InlineSpin {
        "spin"
    } else {
        "block"
    };
    let feeds: String = (0..design.copies())
        .map(|i| feed(&format!("bench{i}"), "driver = \"bench\"\n"))
        .collect();
    format!(
        "[engine]\nstrategy = \"inline\"\n{quiet}[[drivers]]\nname = \"bench\"\nwait = \"{wait}\"\n{}{feeds}",
        pin("core")
    )
}

fn start_client(design: Design, opts: &Opts, url: &str, meter: Meter) -> Client {
    match design {
        Design::Wsfeed
        | Design::WsfeedSpin
        | Design::Inline
        | Design::InlineSpin
        | Design::Shared4 => {
            let config = Config::from_toml(&wsfeed_toml(design, opts, url)).expect("bench config");
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
            let (summary, probe) = engine.stop();
            if let Some(n) = summary.nats {
                println!("  {n}");
            }
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
    let copies = design.copies() as u64;
    let replay = Arc::new(Replay::start(total).expect("replay server"));
    let meter = Meter::new(replay.clone(), paced_end);
    let seen = meter.seen.clone();
    let client = start_client(design, opts, &replay.url(), meter);
    assert!(
        replay.wait_subscribed(design.copies(), Duration::from_secs(10)),
        "{} did not subscribe within 10 s",
        design.name()
    );
    let quiet = Duration::from_millis(500);
    let limit = Duration::from_secs(20);
    // Warm-up at the paced rate: connections, caches and the branch predictor settle.
    replay.send(0, WARMUP, Some(opts.rate)).expect("send");
    wait_seen(&seen, WARMUP as u64 * copies, quiet, limit);
    // Paced.
    let cpu0 = thread_cpu_ns(design.threads());
    let feed0 = thread_cpu_ns(&design.threads()[..1]);
    let report = replay.send(WARMUP, paced, Some(opts.rate)).expect("send");
    wait_seen(&seen, paced_end as u64 * copies, quiet, limit);
    let cpu = thread_cpu_ns(design.threads()) - cpu0;
    let feed_cpu = thread_cpu_ns(&design.threads()[..1]) - feed0;
    // As fast as it goes.
    let feed_max0 = thread_cpu_ns(&design.threads()[..1]);
    let before_max = seen.load(Ordering::Acquire);
    replay
        .send(paced_end, opts.max_messages, None)
        .expect("send");
    let after = wait_seen(&seen, total as u64 * copies, quiet, limit);
    let feed_max_cpu = thread_cpu_ns(&design.threads()[..1]) - feed_max0;
    let max_first_sent = replay.sent_ns(paced_end);
    let meter = stop_client(client, replay);
    let max_delivered = after - before_max;
    if !meter.to_read.is_empty() {
        println!(
            "  {:<30} of which venue send → frame read: p50 {} µs p99 {} µs; frame read → on_tick: p50 {} µs p99 {} µs",
            design.name(),
            us(meter.to_read.value_at_quantile(0.5)),
            us(meter.to_read.value_at_quantile(0.99)),
            us(meter.engine.value_at_quantile(0.5)),
            us(meter.engine.value_at_quantile(0.99)),
        );
    }
    let span = meter.max_last_ns.saturating_sub(max_first_sent).max(1);
    let ticks = (paced as u64 * copies).max(1) as f64;
    Outcome {
        design,
        paced: meter.paced,
        max: meter.max,
        engine: meter.engine,
        paced_rate: paced as f64 / report.elapsed.as_secs_f64(),
        cpu_ns_per_msg: cpu as f64 / ticks,
        feed_cpu_ns_per_msg: feed_cpu as f64 / ticks,
        max_rate: meter.max_n as f64 / (span as f64 / 1e9),
        max_sent: opts.max_messages * design.copies(),
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
        nats: args.opt("nats"),
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
         wsfeed-inline: the strategy called on the thread that reads, which blocks in mio ({pin}); \
         wsfeed-inline-spinning: the same thread busy-polling its socket; \
         wsfeed-shared-4-feeds-inline: four feeds (four connections to the stream) on that one blocking thread, each message delivered four times; \
         async: tokio + tokio-tungstenite + serde_json::Value + tokio mpsc (65 536) to a consumer task; \
         wsfeed-feed-spinning: the default with the feed thread busy-polling too (for reference)",
        if opts.strategy_spin { "spinning" } else { "blocking" },
    );
    println!("e2e: {mode}");
    let mut results = Vec::new();
    let only = args.get("only", String::new());
    for design in Design::ALL {
        if !only.is_empty() && !only.split(',').any(|o| o == design.name()) {
            continue;
        }
        let o = run(design, &opts);
        println!(
            "  {:<30} paced {} ticks at {:.0} msg/s: p50 {} µs p99 {} µs; max rate {:.0} ticks/s ({} of {} delivered)",
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
    let report = report(&results, &opts, &mode);
    println!("\n{report}");
    let path = out.join("e2e-summary.md");
    if let Err(e) = std::fs::write(&path, &report) {
        eprintln!("cannot write {}: {e}", path.display());
    } else {
        println!("written: {} and e2e-*.csv beside it", path.display());
    }
}

/// The table, the ratios and the targets, as Markdown.
fn report(results: &[Outcome], opts: &Opts, mode: &str) -> String {
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p);
    let mut out = format!(
        "Latency, venue send → consumer code, at {} msg/s for {} s (µs); CPU per tick in the paced run; maximum rate through one connection (the shared driver: four).\n\
         Mode: {mode}.\n\n\
         | design | p50 | p99 | p99.9 | max | frame read → on_tick p50 / p99 | CPU/tick (µs) | max rate (ticks/s) | max-rate p50 / p99 (µs) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        opts.rate, opts.seconds
    );
    for o in results {
        let engine = if o.engine.is_empty() {
            "–".to_string()
        } else {
            format!("{} / {}", us(q(&o.engine, 0.5)), us(q(&o.engine, 0.99)))
        };
        let cpu = if o.design.strategy_thread() && opts.strategy_spin {
            format!(
                "{} (reading thread; the strategy spins)",
                us(o.feed_cpu_ns_per_msg as u64)
            )
        } else {
            us(o.cpu_ns_per_msg as u64)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {engine} | {cpu} | {:.0} | {} / {} |\n",
            o.design.name(),
            us(q(&o.paced, 0.5)),
            us(q(&o.paced, 0.99)),
            us(q(&o.paced, 0.999)),
            us(o.paced.max()),
            o.max_rate,
            us(q(&o.max, 0.5)),
            us(q(&o.max, 0.99)),
        ));
    }
    let asyncs: Vec<&Outcome> = results.iter().filter(|o| o.design.is_async()).collect();
    if asyncs.is_empty() {
        return out;
    }
    let best = |p: f64| asyncs.iter().map(|o| q(&o.paced, p)).min().unwrap_or(0);
    let best_rate = asyncs.iter().map(|o| o.max_rate).fold(0.0, f64::max);
    let default = results.iter().find(|o| o.design == Design::Wsfeed);
    out.push_str("\nRatios, each wsfeed design against the best async row (design ÷ async; lower latency is better, higher rate is better) and against the default mode:\n");
    for o in results.iter().filter(|o| !o.design.is_async()) {
        let (p50, p99) = (q(&o.paced, 0.5), q(&o.paced, 0.99));
        out.push_str(&format!(
            "- {}: p50 {:.2}×, p99 {:.2}×, max rate {:.1}× the best async",
            o.design.name(),
            ratio(p50, best(0.5)),
            ratio(p99, best(0.99)),
            o.max_rate / best_rate.max(1.0),
        ));
        if let Some(d) = default.filter(|d| d.design != o.design) {
            out.push_str(&format!(
                "; p50 {:.2}×, p99 {:.2}×, max rate {:.1}× the default",
                ratio(p50, q(&d.paced, 0.5)),
                ratio(p99, q(&d.paced, 0.99)),
                o.max_rate / d.max_rate.max(1.0),
            ));
        }
        out.push('\n');
    }
    let check = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut targets = String::from("\nTargets (as ratios in this run):\n");
    if let Some(s) = results.iter().find(|o| o.design == Design::InlineSpin) {
        let (p50, p99) = (q(&s.paced, 0.5), q(&s.paced, 0.99));
        targets.push_str(&format!(
            "- inline spinning p50 ≤ 0.5× the best async: {:.2}×, {}\n\
             - inline spinning p99 ≤ 0.25× the best async: {:.2}×, {}\n",
            ratio(p50, best(0.5)),
            check(2 * p50 <= best(0.5)),
            ratio(p99, best(0.99)),
            check(4 * p99 <= best(0.99)),
        ));
    }
    for o in results
        .iter()
        .filter(|o| matches!(o.design, Design::Inline | Design::InlineSpin))
    {
        targets.push_str(&format!(
            "- {} max rate ≥ 2× the best async: {:.1}×, {}; ≥ 2 000 000 msg/s: {:.0}, {} (the reading thread used {:.0} ns of CPU per message at that rate)\n",
            o.design.name(),
            o.max_rate / best_rate.max(1.0),
            check(o.max_rate >= 2.0 * best_rate),
            o.max_rate,
            check(o.max_rate >= 2_000_000.0),
            o.max_cpu_ns_per_msg,
        ));
    }
    for o in results.iter().filter(|o| !o.engine.is_empty()) {
        let p50 = q(&o.engine, 0.5);
        targets.push_str(&format!(
            "- {}: the engine's own part (frame read → on_tick) p50 ≤ 1 µs: {} µs, {}\n",
            o.design.name(),
            us(p50),
            check(p50 <= 1_000),
        ));
    }
    out.push_str(&targets);
    out
}
