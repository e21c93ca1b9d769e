//! Throughput of the NATS sink (`[sink.nats]`): events handed to it as fast as a strategy could,
//! published to a real `nats-server -js` (Debian's; started here on 127.0.0.1, a free port and a
//! temporary store) and acknowledged by JetStream. Reports stored and acknowledged events a
//! second for a few `max_in_flight` settings, and what the strategy side paid per hand-over.
//!
//! `cargo bench --bench nats [-- --events N]` (default 200 000 per setting; under a minute).
//! Needs `nats-server` on the PATH or in /usr/sbin.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use wsfeed::config::NatsConfig;
use wsfeed::nats::sink::NatsSink;
use wsfeed::nats::{Event, NatsStats, Tap};
use wsfeed::strategy::{FeedInfo, Universe};
use wsfeed::tick::{SymbolId, Tick, TickData};
use wsfeed::venue::Venue;

/// The server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(store: &std::path::Path) -> (Server, String) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let binary = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            eprintln!("nats-server is not installed (apt-get install nats-server)");
            std::process::exit(2)
        });
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, format!("nats://127.0.0.1:{port}"))
}

fn universe() -> Universe {
    Universe {
        feeds: vec![FeedInfo {
            name: "bench".into(),
            venue: Venue::BinanceUsdm,
            url: "ws://127.0.0.1:1".into(),
            streams: vec![Venue::BinanceUsdm
                .parse_stream("btcusdt@bookTicker")
                .expect("a stream")],
        }],
        symbols: vec!["BTCUSDT".into()],
    }
}

fn tick(n: u64) -> Event {
    Event::Tick(Tick {
        feed: 0,
        stream: 0,
        symbol: SymbolId(0),
        seq: n,
        event_time_ms: 1_700_000_000_000 + n,
        recv_ns: wsfeed::clock::now_ns(),
        data: TickData::quote((100_000.5, 1.25), (100_001.0, 0.75)),
    })
}

/// Hands `events` over at once (the buffer holds them all), then waits for every ack.
fn run(url: &str, stream: &str, in_flight: usize, events: u64) {
    let mut config = NatsConfig::new(url);
    config.stream = stream.into();
    config.subject_prefix = stream.to_lowercase();
    config.buffer = events as usize;
    config.max_in_flight = in_flight;
    let stats = Arc::new(NatsStats::default());
    let (sink, tap): (NatsSink, Tap) =
        NatsSink::start(&config, &universe(), stats.clone()).expect("the sink starts");
    // One event through first: the connection and the stream are set up before the clock runs.
    tap.send(tick(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.acked.load(Relaxed) < 1 {
        assert!(Instant::now() < deadline, "the sink never stored a message");
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    for n in 1..=events {
        tap.send(tick(n));
    }
    let handed = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(40);
    while stats.acked.load(Relaxed) < events + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    drop(tap);
    let s = sink.finish();
    let stored = s.acked - 1;
    println!(
        "max_in_flight {in_flight:>5}: {stored} of {events} stored and acknowledged in {:.2} s = \
         {:>7.0} msgs/s | hand-over {:.0} ns/event on the strategy side | dropped {} | not \
         acknowledged {}",
        took.as_secs_f64(),
        stored as f64 / took.as_secs_f64(),
        handed.as_nanos() as f64 / events as f64,
        s.dropped,
        s.not_acked
    );
}

fn main() {
    let args = Args::from_env();
    let events: u64 = args.get("events", 200_000);
    let store = std::env::temp_dir().join(format!("wsfeed-nats-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let (server, url) = start_server(&store);
    wsfeed::clock::init();
    println!("NATS sink throughput, {events} bookTicker events per setting, JetStream file store");
    for (i, in_flight) in [256usize, 1024, 4096].into_iter().enumerate() {
        run(&url, &format!("BENCH{i}"), in_flight, events);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&store);
}
