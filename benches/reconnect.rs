//! Reconnect after a clean close, through the simulator, against the floor measured in the same
//! run: a bare TCP connect + TLS handshake + WebSocket upgrade.
//!
//! Mode: loopback, the simulator speaking Binance (one `bookTicker` stream, a quote every
//! 100 µs); the engine's feed thread blocking in mio, the strategy thread blocking, nothing
//! pinned. Plain `ws://`, then `wss://` (TLS 1.3, rustls on both sides).
//!
//! Each cycle lets data flow for `--settle-ms` (20), then has the simulator close the
//! connection (Close frame 1000, then TCP close), and waits for the feed to be back:
//! - reconnect: loss detected (`Health::Disconnected`) → first data on the new connection;
//! - gap: last data before the loss → first data after.
//!
//! The engine's `[reconnect] at_once_after_ms` is set to 10 so every cycle's session counts as
//! a streaming one (the default asks for 1 s) and `connect_limit` is raised: this is loopback,
//! not a venue's budget.
//!
//! `cargo bench --bench reconnect` (about 20 s); `-- --cycles N` (default 200 per transport);
//! `-- --venue hyperliquid` or `-- --venue paradex`: the same through a venue defined in config
//! (`configs/venues/<name>.toml`), the simulator speaking it from the same definition.

mod common;

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{histogram, us, Args};
use crossbeam_channel::{unbounded, Receiver, Sender};
use hdrhistogram::Histogram;
use wsfeed::clock;
use wsfeed::config::Config;
use wsfeed::engine::Engine;
use wsfeed::sim::{Fault, Sim, SimConfig, SimVenue};
use wsfeed::strategy::Strategy;
use wsfeed::tick::{FeedId, Health, Tick};

/// What the strategy reports to the bench thread.
enum Seen {
    /// The feed lost its connection at `at_ns`; its last data came at `last_data_ns`.
    Lost { at_ns: u64, last_data_ns: u64 },
    /// First data after a loss.
    Back { recv_ns: u64 },
}

struct Watch {
    tx: Sender<Seen>,
    last_data_ns: u64,
    waiting: bool,
}

impl Strategy for Watch {
    fn on_tick(&mut self, tick: &Tick) {
        if self.waiting {
            self.waiting = false;
            let _ = self.tx.send(Seen::Back {
                recv_ns: tick.recv_ns,
            });
        }
        self.last_data_ns = tick.recv_ns;
    }
    fn on_health(&mut self, _: FeedId, at_ns: u64, event: &Health) {
        if let Health::Disconnected { .. } = event {
            self.waiting = true;
            let _ = self.tx.send(Seen::Lost {
                at_ns,
                last_data_ns: self.last_data_ns,
            });
        }
    }
}

struct Run {
    reconnect: Histogram<u64>,
    gap: Histogram<u64>,
    floor: Histogram<u64>,
    failed: usize,
}

/// The venue under test: Binance spot, or a shipped definition.
struct Under {
    /// `venue = …` and, for a definition, the config line that loads it.
    venue: String,
    venue_files: String,
    stream: String,
    sim_venue: SimVenue,
    venue_symbols: Vec<String>,
    /// The URL path the feed connects to.
    path: String,
}

impl Under {
    /// The path the bare handshake upgrades on.
    fn floor_path(&self) -> &str {
        match self.sim_venue {
            SimVenue::Binance => "/stream",
            _ => &self.path,
        }
    }

    /// Output files' suffix: none for Binance (the files as before), `-<venue>` else.
    fn tag(&self) -> String {
        match self.sim_venue {
            SimVenue::Binance => String::new(),
            _ => format!("-{}", self.venue),
        }
    }

    fn new(name: &str) -> Under {
        let (stream, symbol) = match name {
            "binance-spot" => {
                return Under {
                    venue: name.into(),
                    venue_files: String::new(),
                    stream: "btcusdt@bookTicker".into(),
                    sim_venue: SimVenue::Binance,
                    venue_symbols: Vec::new(),
                    path: String::new(),
                }
            }
            "hyperliquid" => ("bbo:BTC", "BTC"),
            "paradex" => ("bbo.BTC-USD-PERP", "BTC-USD-PERP"),
            other => {
                eprintln!("--venue: '{other}' is not binance-spot, hyperliquid or paradex");
                std::process::exit(2);
            }
        };
        let file = format!("configs/venues/{name}.toml");
        let sim_venue = SimVenue::Defined(common::shipped(name));
        Under {
            venue: name.into(),
            venue_files: format!("venue_files = [\"{file}\"]\n"),
            stream: stream.into(),
            path: sim_venue.ws_path().unwrap_or("").into(),
            sim_venue,
            venue_symbols: vec![symbol.into()],
        }
    }
}

fn sim(tls: bool, under: &Under) -> Sim {
    Sim::start(SimConfig {
        tls,
        venue: under.sim_venue,
        venue_symbols: under.venue_symbols.clone(),
        usdm_routing: false,
        symbols: vec!["BTCUSDT".into()],
        book_interval: Duration::from_micros(100),
        trade_interval: Duration::from_secs(3600),
        depth_interval: Duration::from_secs(3600),
        mark_price_interval: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

/// TCP connect + TLS handshake (when `tls`) + WebSocket upgrade, blocking, once.
fn handshake(sim: &Sim, tls: Option<&Arc<rustls::ClientConfig>>, path: &str) -> Duration {
    let url = format!("{}{path}", sim.base_url());
    let t0 = Instant::now();
    let sock = TcpStream::connect(("127.0.0.1", sim.port())).expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    match tls {
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let conn = rustls::ClientConnection::new(cfg.clone(), name).expect("tls");
            let stream = rustls::StreamOwned::new(conn, sock);
            let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("upgrade");
            let took = t0.elapsed();
            drop(ws);
            took
        }
        None => {
            let (ws, _) = tungstenite::client::client(url.as_str(), sock).expect("upgrade");
            let took = t0.elapsed();
            drop(ws);
            took
        }
    }
}

fn wait_lost_and_back(rx: &Receiver<Seen>) -> Option<(u64, u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lost = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Seen::Lost {
                at_ns,
                last_data_ns,
            }) => lost = Some((at_ns, last_data_ns)),
            Ok(Seen::Back { recv_ns }) => {
                if let Some((at, last)) = lost {
                    return Some((at, last, recv_ns));
                }
            }
            Err(_) => return None,
        }
    }
    None
}

fn run(tls: bool, cycles: usize, settle: Duration, under: &Under) -> Run {
    let sim = sim(tls, under);
    let ca = sim.ca_pem();
    let toml = format!(
        "{}[engine]\nconnect_limit = 1000000\nconnect_window_ms = 1000\n\
         [reconnect]\nat_once_after_ms = 10\nstale_after_ms = 60000\npong_timeout_ms = 10000\n\
         [[feeds]]\nname = \"rc\"\nvenue = \"{}\"\nurl = \"{}{}\"\n\
         streams = [\"{}\"]\n",
        under.venue_files,
        under.venue,
        sim.base_url(),
        under.path,
        under.stream
    );
    let mut config = Config::from_toml(&toml).expect("bench config");
    config.feeds[0].extra_ca_pem = ca.clone();
    let (tx, rx) = unbounded();
    let engine = Engine::start(
        config,
        Watch {
            tx,
            last_data_ns: 0,
            waiting: true,
        },
    )
    .expect("engine starts");
    // The first connection's first data.
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Seen::Back { .. }) => {}
        _ => panic!("no data within 10 s"),
    }
    let (mut reconnect, mut gap) = (histogram(), histogram());
    let mut failed = 0;
    for _ in 0..cycles {
        std::thread::sleep(settle);
        sim.inject(Fault::Close { code: 1000 });
        match wait_lost_and_back(&rx) {
            Some((lost_at, last_data, back)) => {
                reconnect.saturating_record(back.saturating_sub(lost_at).max(1));
                gap.saturating_record(back.saturating_sub(last_data).max(1));
            }
            None => failed += 1,
        }
    }
    let summary = engine.stop().0;
    let recovered = summary.feeds[0].reconnects;
    // The floor, on the same simulator, between the engine's runs.
    let cfg = tls.then(|| wsfeed::net::tls_config(ca.as_deref()).expect("tls config"));
    let mut floor = histogram();
    for _ in 0..cycles {
        floor
            .saturating_record(handshake(&sim, cfg.as_ref(), under.floor_path()).as_nanos() as u64);
    }
    sim.shutdown();
    if recovered < reconnect.len() {
        eprintln!("note: the engine counted {recovered} reconnects");
    }
    Run {
        reconnect,
        gap,
        floor,
        failed,
    }
}

fn row(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        h.len(),
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.max()),
        if h.max() <= 5_000_000_000 {
            "yes"
        } else {
            "NO"
        }
    )
}

fn main() {
    let args = Args::from_env();
    let cycles = args.get("cycles", 200usize);
    let settle = Duration::from_millis(args.get("settle-ms", 20u64));
    let out = common::out_dir(&args);
    // RUST_LOG=debug shows each step of a reconnect, with µs timestamps.
    let _ = env_logger::builder().format_timestamp_micros().try_init();
    clock::init();
    let under = Under::new(&args.get("venue", String::from("binance-spot")));
    let mode = format!(
        "loopback; simulator ({}, top of book every 100 µs) closes the connection cleanly \
         (1000); engine feed thread blocking in mio, strategy blocking, nothing pinned",
        under.venue
    );
    println!("reconnect: {mode}");
    let mut report = format!(
        "Reconnect after a clean close, {cycles} cycles per transport (µs). Mode: {mode}.\n\n\
         | measure | n | p50 | p99 | max | within 5 s |\n|---|---:|---:|---:|---:|:---:|\n"
    );
    let mut targets = String::from("\nTargets (TLS, first data included):\n");
    for tls in [false, true] {
        let name = if tls { "wss" } else { "ws" };
        let r = run(tls, cycles, settle, &under);
        report.push_str(&row(
            &format!("{name}: reconnect (loss → first data)"),
            &r.reconnect,
        ));
        report.push('\n');
        report.push_str(&row(
            &format!("{name}: gap (last data → first data)"),
            &r.gap,
        ));
        report.push('\n');
        report.push_str(&row(
            &format!(
                "{name}: floor (TCP + {}WebSocket upgrade)",
                if tls { "TLS + " } else { "" }
            ),
            &r.floor,
        ));
        report.push('\n');
        if r.failed > 0 {
            report.push_str(&format!(
                "| {name}: cycles without recovery in 10 s | {} | | | | NO |\n",
                r.failed
            ));
        }
        common::write_percentiles(
            &out,
            &format!("reconnect-{name}{}", under.tag()),
            &r.reconnect,
        );
        if tls {
            let (p50, p99) = (
                r.reconnect.value_at_quantile(0.5),
                r.reconnect.value_at_quantile(0.99),
            );
            let check = |ok: bool| if ok { "met" } else { "NOT met" };
            targets.push_str(&format!(
                "- p50 ≤ 1 ms: {} µs, {}\n- p99 ≤ 3 ms: {} µs, {}\n- over the floor at p50: +{} µs ({:.1}× the bare handshake)\n",
                us(p50),
                check(p50 <= 1_000_000),
                us(p99),
                check(p99 <= 3_000_000),
                us(p50.saturating_sub(r.floor.value_at_quantile(0.5))),
                p50 as f64 / r.floor.value_at_quantile(0.5).max(1) as f64,
            ));
        }
    }
    report.push_str(&targets);
    println!("\n{report}");
    let path = out.join(format!("reconnect{}-summary.md", under.tag()));
    match std::fs::write(&path, &report) {
        Ok(()) => println!("written: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
