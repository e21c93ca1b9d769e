//! The in-place parsers against the old slice-then-scan ones (kept in `super`): on the
//! documented messages, on longer ones (more than 64 levels a side, several items, checksums),
//! on rewrites of each (fields shuffled, unknown fields of every shape, fields sent twice,
//! whitespace anywhere) and on tens of thousands of corrupted variants (bytes changed, dropped
//! or added, truncations, stretches copied elsewhere): either both give the same ticks or both
//! refuse.

use super::{old_binance, old_bybit, old_okx};
use crate::tick::TickData;
use crate::venue::{binance, bybit, okx, ParseError, Seq, StreamKind};

/// Which parser pair a message is for.
#[derive(Clone, Copy, Debug)]
enum Pair {
    Bybit,
    Okx,
    BinanceDepth,
}

type Sink<'s> = &'s mut dyn FnMut(Seq, u64, TickData);

/// The ticks as text (NaN equals NaN), or `None` when refused.
fn run(f: impl FnOnce(Sink<'_>) -> Result<(), ParseError>) -> Option<String> {
    let mut out = String::new();
    let r = f(&mut |s, t, d| out.push_str(&format!("{s:?} {t} {d:?}\n")));
    r.ok().map(|_| out)
}

fn old(pair: Pair, kind: StreamKind, text: &str) -> Option<String> {
    run(|mut e| match pair {
        Pair::Bybit => old_bybit::parse_data(kind, text, &mut e),
        Pair::Okx => old_okx::parse_data(kind, text, &mut e),
        Pair::BinanceDepth => old_binance::depth(text, &mut e),
    })
}

fn new(pair: Pair, kind: StreamKind, text: &str) -> Option<String> {
    run(|mut e| match pair {
        Pair::Bybit => bybit::parse_data(kind, text, &mut e),
        Pair::Okx => okx::parse_data(kind, text, &mut e),
        Pair::BinanceDepth => binance::parse_data(kind, text, &mut e),
    })
}

/// Both agree on `text`; returns whether they accepted it. OKX's as-sent classifier, where
/// it takes a frame, agrees with the general one.
fn check(pair: Pair, kind: StreamKind, text: &str) -> bool {
    if let (Pair::Okx, Some(fast)) = (pair, okx::data_as_sent(text)) {
        assert_eq!(Ok(fast), okx::classify_general(text), "{text}");
    }
    if let (Pair::Bybit, Some(fast)) = (pair, bybit::data_as_sent(text)) {
        assert_eq!(Ok(fast), bybit::classify_general(text), "{text}");
    }
    let (a, b) = (old(pair, kind, text), new(pair, kind, text));
    assert_eq!(a, b, "{pair:?} {kind:?} differ on:\n{text}");
    a.is_some()
}

fn fixture(path: &str) -> String {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `n` levels, prices and sizes with varied digits after the point.
fn levels(n: usize, okx: bool) -> String {
    let mut out = String::from("[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let price = format!("{}.{}", 8000 + i, "5".repeat(i % 5));
        let size = format!("{}.{}", i % 7, "25".repeat(i % 3));
        if okx {
            out.push_str(&format!(r#"["{price}","{size}","0","{}"]"#, i % 4));
        } else {
            out.push_str(&format!(r#"["{price}","{size}"]"#));
        }
    }
    out.push(']');
    out
}

/// The messages compared: documented ones, pretty and compact, and longer ones.
fn messages() -> Vec<(Pair, StreamKind, String)> {
    let book50 = StreamKind::OrderBook { levels: 50 };
    let books = StreamKind::OrderBook { levels: 400 };
    let mut out = vec![];
    for (file, kind) in [
        ("bybit/orderbook_50_snapshot.json", book50),
        ("bybit/orderbook_50_delta.json", book50),
        ("bybit/public_trade.json", StreamKind::AggTrade),
        ("bybit/tickers_linear.json", StreamKind::Ticker),
        ("bybit/tickers_spot.json", StreamKind::Ticker),
    ] {
        out.push((Pair::Bybit, kind, fixture(file)));
    }
    for (file, kind) in [
        ("okx/books_snapshot.json", books),
        ("okx/books_update.json", books),
        ("okx/trades.json", StreamKind::AggTrade),
        (
            "okx/mark_price.json",
            StreamKind::MarkPrice { interval_ms: 0 },
        ),
        ("okx/funding_rate.json", StreamKind::Funding),
        ("okx/bbo_tbt.json", StreamKind::BookTicker),
    ] {
        out.push((Pair::Okx, kind, fixture(file)));
    }
    let top = r#"{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],"u":18521288,"seq":7961638724},"cts":1672304484976}"#;
    out.push((Pair::Bybit, StreamKind::BookTicker, top.to_string()));
    let depth = StreamKind::Depth { interval_ms: 100 };
    let binance = r#"{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"],["0.0023","5"]],"a":[["0.0026","100"],["0.0027","7"]]}"#;
    out.push((Pair::BinanceDepth, depth, binance.to_string()));
    // Longer: more than 64 levels a side, several items, checksums.
    out.push((
        Pair::Bybit,
        book50,
        format!(
            r#"{{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1672304484978,"data":{{"s":"BTCUSDT","b":{},"a":{},"u":18521289,"seq":7961638725}},"cts":1672304484976}}"#,
            levels(70, false),
            levels(3, false)
        ),
    ));
    let trade = |i: usize| {
        format!(
            r#"{{"T":{},"s":"BTCUSDT","S":"{}","v":"0.00{i}","p":"16578.{i}","L":"PlusTick","i":"id{i}","BT":false,"seq":{}}}"#,
            1672304486865u64 + i as u64,
            if i % 2 == 0 { "Buy" } else { "Sell" },
            1000 + i
        )
    };
    let trades: Vec<String> = (0..12).map(trade).collect();
    out.push((
        Pair::Bybit,
        StreamKind::AggTrade,
        format!(
            r#"{{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{}]}}"#,
            trades.join(",")
        ),
    ));
    let book_item = |asks: usize, bids: usize, checksum: i64, seq: u64| {
        format!(
            r#"{{"asks":{},"bids":{},"ts":"1597026383085","checksum":{checksum},"prevSeqId":{},"seqId":{seq}}}"#,
            levels(asks, true),
            levels(bids, true),
            seq - 1
        )
    };
    out.push((
        Pair::Okx,
        books,
        format!(
            r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"update","data":[{},{}]}}"#,
            book_item(100, 80, -855196043, 123456),
            book_item(2, 0, 7, 123457)
        ),
    ));
    let okx_trade = |i: usize| {
        format!(
            r#"{{"instId":"BTC-USDT","tradeId":"{}","px":"42219.{i}","sz":"0.1206","side":"{}","ts":"16300488978{i:02}","count":"3"}}"#,
            130639474 + i,
            if i % 3 == 0 { "sell" } else { "buy" }
        )
    };
    let okx_trades: Vec<String> = (0..12).map(okx_trade).collect();
    out.push((
        Pair::Okx,
        StreamKind::AggTrade,
        format!(
            r#"{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{}]}}"#,
            okx_trades.join(",")
        ),
    ));
    out.push((
        Pair::BinanceDepth,
        depth,
        format!(
            r#"{{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":{},"a":{}}}"#,
            levels(70, false),
            levels(66, false)
        ),
    ));
    out
}

/// Unknown values of every shape.
const JUNK: [&str; 16] = [
    r#""x""#,
    r#""a\"b]}""#,
    r#""[{""#,
    r#""""#,
    "-1.5e3",
    "0",
    "12345678901234567890123",
    "-9223372036854775809",
    "true",
    "false",
    "null",
    "{}",
    "[]",
    r#"{"k":[1,{"z":"]"}],"n":null}"#,
    r#"[[1,2],["3"],{}]"#,
    "0.000000000000000000000000001",
];

fn ws(rng: &mut fastrand::Rng) -> &'static str {
    match rng.u8(..10) {
        0 => " ",
        1 => "\n  ",
        2 => "\t",
        3 => "\r\n",
        _ => "",
    }
}

/// `v` written again: fields shuffled, unknown and repeated fields added, whitespace anywhere.
fn rewrite(v: &serde_json::Value, rng: &mut fastrand::Rng, out: &mut String) {
    use serde_json::Value as V;
    out.push_str(ws(rng));
    match v {
        V::Object(map) => {
            let mut fields: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| {
                    let mut s = String::new();
                    rewrite(v, rng, &mut s);
                    (k.clone(), s)
                })
                .collect();
            rng.shuffle(&mut fields);
            for _ in 0..rng.usize(..3) {
                let junk = JUNK[rng.usize(..JUNK.len())].to_string();
                let at = rng.usize(..=fields.len());
                // An unknown key, or a known one sent twice (the later one counts).
                let key = if rng.bool() || fields.is_empty() {
                    format!("zz{}", rng.u8(..))
                } else {
                    fields[rng.usize(at.min(fields.len() - 1)..fields.len())]
                        .0
                        .clone()
                };
                fields.insert(at, (key, junk));
            }
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(ws(rng));
                    out.push(',');
                }
                out.push_str(ws(rng));
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(ws(rng));
                out.push(':');
                out.push_str(v);
            }
            out.push_str(ws(rng));
            out.push('}');
        }
        V::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                rewrite(item, rng, out);
                out.push_str(ws(rng));
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
    out.push_str(ws(rng));
}

/// `text` with one to three corruptions.
fn corrupt(text: &str, rng: &mut fastrand::Rng) -> Option<String> {
    const BYTES: &[u8] = b"{}[],:\"\\0123456789.-+eE tnulfax";
    let mut b = text.as_bytes().to_vec();
    for _ in 0..rng.usize(1..=3) {
        if b.is_empty() {
            break;
        }
        let at = rng.usize(..b.len());
        let byte = BYTES[rng.usize(..BYTES.len())];
        match rng.u8(..5) {
            0 => b[at] = byte,
            1 => {
                b.remove(at);
            }
            2 => b.insert(at, byte),
            3 => b.truncate(at),
            _ => {
                let len = rng.usize(1..=b.len().min(12));
                let from = rng.usize(..=b.len() - len);
                let piece = b[from..from + len].to_vec();
                let to = rng.usize(..=b.len());
                b.splice(to..to, piece);
            }
        }
    }
    String::from_utf8(b).ok()
}

#[test]
fn documented_and_longer_messages_parse_the_same() {
    for (pair, kind, text) in messages() {
        assert!(check(pair, kind, &text), "{pair:?} refused:\n{text}");
        let compact = crate::json::compact(&text);
        assert!(check(pair, kind, &compact), "{pair:?} refused:\n{compact}");
        match pair {
            Pair::Okx => assert!(okx::data_as_sent(&compact).is_some(), "{compact}"),
            Pair::Bybit => assert!(bybit::data_as_sent(&compact).is_some(), "{compact}"),
            Pair::BinanceDepth => {}
        }
    }
}

#[test]
fn rewritten_messages_parse_the_same() {
    let mut rng = fastrand::Rng::with_seed(12);
    for (pair, kind, text) in messages() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for _ in 0..60 {
            let mut out = String::new();
            rewrite(&v, &mut rng, &mut out);
            check(pair, kind, &out);
        }
    }
}

#[test]
fn corrupted_messages_parse_the_same() {
    let mut rng = fastrand::Rng::with_seed(4);
    let (mut total, mut accepted) = (0, 0);
    for (pair, kind, text) in messages() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut bases = vec![crate::json::compact(&text)];
        for _ in 0..4 {
            let mut out = String::new();
            rewrite(&v, &mut rng, &mut out);
            bases.push(out);
        }
        for base in &bases {
            for _ in 0..500 {
                if let Some(bad) = corrupt(base, &mut rng) {
                    total += 1;
                    accepted += usize::from(check(pair, kind, &bad));
                }
            }
        }
    }
    assert!(total > 30_000, "{total}");
    // Many corruptions land where they change nothing or only a value.
    assert!(accepted > total / 20, "{accepted} of {total}");
}
