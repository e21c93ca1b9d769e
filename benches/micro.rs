//! Micro-benchmarks of the hot path's pieces. Mode: single thread, not pinned, no I/O, except
//! `hop/*`: two threads, not pinned, both spinning or both blocking (stated in the name).
//!
//! `cargo bench --bench micro` (about 40 s). Messages are the examples of each venue's API
//! docs (`tests/fixtures/`, compacted as the venues send them).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wsfeed::config::ReconnectConfig;
use wsfeed::feed::backoff::Backoff;
use wsfeed::feed::liveness::Liveness;
use wsfeed::venue::{Frame, StreamKind, Venue};

const BOOK_TICKER: &str = r#"{"stream":"bnbusdt@bookTicker","data":{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
const AGG_TRADE: &str = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}}"#;
const DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"],["0.0023","5"]],"a":[["0.0026","100"],["0.0027","7"]]}}"#;
const MARK: &str = r#"{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}}"#;

/// Frame text → ticks, as the feed thread does it (classify, then parse the payload).
fn parse(text: &str, kind: StreamKind) -> u64 {
    let venue = Venue::BinanceUsdm;
    let mut sum = 0u64;
    if let Ok(Frame::Data { data, .. }) = venue.classify(text) {
        let _ = venue.parse_data(kind, data, &mut |seq, _, _| sum += seq.id);
    }
    sum
}

/// A documented example message from `tests/fixtures/`, compacted as the venue sends it: the
/// whitespace between tokens removed, fields in their documented order.
fn fixture(path: &str) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("tests/fixtures/{path}: {e}"));
    let out = wsfeed::json::compact(&text);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "{path}: {out}"
    );
    out
}

/// Frame → ticks through the venue's classifier and parser; returns ticks emitted.
fn parse_frame(venue: Venue, text: &str, kind: StreamKind) -> u64 {
    let mut n = 0u64;
    if let Ok(Frame::Data { data, .. }) = venue.classify(text) {
        let _ = venue.parse_data(kind, data, &mut |_, _, _| n += 1);
    }
    n
}

fn venue_parsers(c: &mut Criterion) {
    // Bybit's documented orderbook.1 push (no fixture file: the docs show it inline).
    let bybit_top = r#"{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],"u":18521288,"seq":7961638724},"cts":1672304484976}"#;
    let cases: [(Venue, &str, &str, String); 8] = [
        (
            Venue::BybitLinear,
            "orderbook.1",
            "orderbook.1.BTCUSDT",
            bybit_top.to_string(),
        ),
        (
            Venue::BybitLinear,
            "orderbook.50_delta",
            "orderbook.50.BTCUSDT",
            fixture("bybit/orderbook_50_delta.json"),
        ),
        (
            Venue::BybitLinear,
            "publicTrade",
            "publicTrade.BTCUSDT",
            fixture("bybit/public_trade.json"),
        ),
        (
            Venue::BybitLinear,
            "tickers",
            "tickers.BTCUSDT",
            fixture("bybit/tickers_linear.json"),
        ),
        (
            Venue::Okx,
            "bbo-tbt",
            "bbo-tbt:BCH-USDT-SWAP",
            fixture("okx/bbo_tbt.json"),
        ),
        (
            Venue::Okx,
            "books_update",
            "books:BTC-USDT",
            fixture("okx/books_update.json"),
        ),
        (
            Venue::Okx,
            "trades",
            "trades:BTC-USDT",
            fixture("okx/trades.json"),
        ),
        (
            Venue::Okx,
            "mark-price",
            "mark-price:BTC-USDT-SWAP",
            fixture("okx/mark_price.json"),
        ),
    ];
    for (venue, name, stream, text) in &cases {
        let kind = venue
            .parse_stream(stream)
            .unwrap_or_else(|e| panic!("{stream}: {e}"))
            .kind;
        assert!(parse_frame(*venue, text, kind) > 0, "{name} parses: {text}");
        let mut g = c.benchmark_group(format!("parse/{}", venue.name()));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| parse_frame(*venue, black_box(text), kind))
        });
        g.finish();
    }
}

/// One tick's hop between two threads over a bounded crossbeam channel, as feed → strategy:
/// a round trip (there and back) per iteration, so the figure is two hops.
fn channel_hop(c: &mut Criterion) {
    use crossbeam_channel::{bounded, TryRecvError};
    let mut g = c.benchmark_group("hop");
    for spin in [false, true] {
        let (to_tx, to_rx) = bounded::<u64>(1024);
        let (back_tx, back_rx) = bounded::<u64>(1024);
        let echo = std::thread::spawn(move || loop {
            let v = if spin {
                match to_rx.try_recv() {
                    Ok(v) => v,
                    Err(TryRecvError::Empty) => {
                        std::hint::spin_loop();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match to_rx.recv() {
                    Ok(v) => v,
                    Err(_) => return,
                }
            };
            if back_tx.send(v).is_err() {
                return;
            }
        });
        let name = if spin {
            "round_trip_spinning"
        } else {
            "round_trip_blocking"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                to_tx.send(1).unwrap();
                if spin {
                    loop {
                        match back_rx.try_recv() {
                            Ok(v) => break v,
                            Err(_) => std::hint::spin_loop(),
                        }
                    }
                } else {
                    back_rx.recv().unwrap()
                }
            })
        });
        drop(to_tx);
        echo.join().unwrap();
    }
    g.finish();
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse/binance");
    g.throughput(Throughput::Elements(1));
    for (name, text, kind) in [
        ("bookTicker", BOOK_TICKER, StreamKind::BookTicker),
        ("aggTrade", AGG_TRADE, StreamKind::AggTrade),
        ("depth", DEPTH, StreamKind::Depth { interval_ms: 100 }),
        (
            "markPrice",
            MARK,
            StreamKind::MarkPrice { interval_ms: 1000 },
        ),
    ] {
        assert!(parse(text, kind) > 0, "{name} parses");
        g.bench_function(name, |b| b.iter(|| parse(black_box(text), kind)));
    }
    // The DOM parse most bots do, for comparison.
    g.bench_function("bookTicker_serde_json_value", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(BOOK_TICKER)).unwrap();
            v["data"]["u"].as_u64()
        })
    });
    g.finish();
}

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    let cfg = ReconnectConfig::default();
    g.bench_function("backoff_on_failure", |b| {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut backoff = Backoff::new(cfg);
        b.iter(|| {
            let d = backoff.on_failure(&mut rng);
            if backoff.failures() > 5 {
                backoff.on_productive();
            }
            d
        })
    });
    g.bench_function("liveness_on_frame_and_poll", |b| {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, Duration::from_secs(2), Duration::from_millis(1500));
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let now = t0 + Duration::from_micros(i);
            l.on_frame(now);
            l.poll(black_box(now))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = parsers, venue_parsers, decisions, channel_hop
}
criterion_main!(benches);
