//! Micro-benchmarks of the hot path's pieces. Mode: single thread, not pinned, no I/O.
//!
//! `cargo bench --bench micro` (about 20 s). Messages are the examples of Binance's API docs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wsfeed::config::ReconnectConfig;
use wsfeed::feed::backoff::{Backoff, XorShift};
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
        let mut rng = XorShift::new(1);
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
    targets = parsers, decisions
}
criterion_main!(benches);
