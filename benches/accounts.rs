//! An account's private stream back after losing its credential or its connection, per venue,
//! through the simulator: from the fault to the account streaming again (logged in and
//! subscribed: `Health::Connected`).
//!
//! - Binance USD-M: the simulator expires the listen key (`listenKeyExpired`): the engine asks
//!   for a new key over REST and connects with it.
//! - Binance spot (WebSocket API), Bybit, OKX: the simulator resets the private connection
//!   (TCP RST): the engine reconnects, logs in (signed), subscribes.
//!
//! Mode: loopback, plain `ws://`, the account's feed thread blocking in mio, the strategy
//! thread blocking, nothing pinned; the simulator's account takes an order-flow step every
//! 5 ms. `[reconnect] at_once_after_ms = 10`, so every cycle's connection counts as a streaming
//! one, and `connect_limit` is raised (loopback, not a venue's budget).
//!
//! `cargo bench --bench accounts` (about 10 s); `-- --cycles N` (default 100 per venue).

mod common;

use std::time::{Duration, Instant};

use common::{histogram, us, Args};
use crossbeam_channel::{unbounded, Receiver, Sender};
use hdrhistogram::Histogram;
use wsfeed::auth::{Credentials, Secret};
use wsfeed::clock;
use wsfeed::config::{AccountConfig, FileConfig};
use wsfeed::engine::Engine;
use wsfeed::sim::{Fault, Sim, SimAccount, SimConfig, SimVenue};
use wsfeed::strategy::Strategy;
use wsfeed::tick::{FeedId, Health, Tick};

/// Connected at this instant (monotonic ns).
struct Watch(Sender<u64>);

impl Strategy for Watch {
    fn on_tick(&mut self, _: &Tick) {}
    fn on_health(&mut self, _: FeedId, at_ns: u64, event: &Health) {
        if let Health::Connected { .. } = event {
            let _ = self.0.send(at_ns);
        }
    }
}

fn engine(sim: &Sim, venue: &str) -> (Engine<Watch>, Receiver<u64>) {
    let mut file: FileConfig = toml::from_str(
        "[engine]\nconnect_limit = 1000000\nconnect_window_ms = 1000\n\
         [reconnect]\nat_once_after_ms = 10\nstale_after_ms = 60000\npong_timeout_ms = 10000\n",
    )
    .expect("bench config");
    let passphrase = if venue == "okx" {
        "passphrase_env = \"UNUSED\"\n"
    } else {
        ""
    };
    let mut a: AccountConfig = toml::from_str(&format!(
        "name = \"bench\"\nvenue = \"{venue}\"\nurl = \"{}\"\nkey_env = \"UNUSED\"\n\
         secret_env = \"UNUSED\"\n{passphrase}",
        sim.base_url()
    ))
    .expect("account table");
    let s = SimAccount::named("bench");
    a.credentials = Some(Credentials {
        key: Secret::new(s.api_key),
        secret: Secret::new(s.secret),
        passphrase: s.passphrase.map(Secret::new),
    });
    file.accounts.push(a);
    let (tx, rx) = unbounded();
    let engine = Engine::start(file.validate().expect("valid"), Watch(tx)).expect("starts");
    (engine, rx)
}

fn run(venue: &str, sim_venue: SimVenue, path: &str, cycles: usize) -> (Histogram<u64>, usize) {
    let sim = Sim::start(SimConfig {
        venue: sim_venue,
        tls: false,
        symbols: vec!["BTCUSDT".into()],
        accounts: vec![SimAccount::named("bench")],
        account_event_interval: Duration::from_millis(5),
        record: false,
        ..SimConfig::default()
    })
    .expect("simulator starts");
    let (engine, rx) = engine(&sim, venue);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("first login");
    let mut back = histogram();
    let mut failed = 0;
    for _ in 0..cycles {
        // Let the account stream (and earn its at-once reconnect).
        std::thread::sleep(Duration::from_millis(20));
        let t0 = clock::now_ns();
        if venue == "binance-usdm" {
            sim.expire_listen_key("bench");
        } else {
            let conn = sim
                .snapshot()
                .open_connections()
                .find(|c| c.path.starts_with(path))
                .map(|c| c.id);
            match conn {
                Some(id) => sim.inject_on(id, Fault::Reset),
                None => {
                    failed += 1;
                    continue;
                }
            }
        }
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(at) => back.saturating_record(at.saturating_sub(t0).max(1)),
            Err(_) => failed += 1,
        }
    }
    engine.stop();
    sim.shutdown();
    (back, failed)
}

fn main() {
    let args = Args::from_env();
    let cycles: usize = args.get("cycles", 100);
    clock::init();
    let started = Instant::now();
    println!("account back after losing its credential or connection, {cycles} cycles per venue");
    println!("| venue | fault | cycles | p50 µs | p90 µs | p99 µs | max µs | failed |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (venue, sim_venue, path, fault) in [
        (
            "binance-usdm",
            SimVenue::Binance,
            "/private/ws",
            "listen key expired",
        ),
        (
            "binance-spot",
            SimVenue::Binance,
            "/ws-api/v3",
            "connection reset",
        ),
        (
            "bybit-linear",
            SimVenue::BybitLinear,
            "/v5/private",
            "connection reset",
        ),
        ("okx", SimVenue::Okx, "/ws/v5/private", "connection reset"),
    ] {
        let (h, failed) = run(venue, sim_venue, path, cycles);
        println!(
            "| {venue} | {fault} | {} | {} | {} | {} | {} | {failed} |",
            h.len(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.9)),
            us(h.value_at_quantile(0.99)),
            us(h.max()),
        );
    }
    println!("took {:.1} s", started.elapsed().as_secs_f64());
}
