//! Binance spot and USD-M futures: combined streams.
//!
//! Connections go to `<base><route path>/stream` and subscribe with
//! `{"method":"SUBSCRIBE","params":[…],"id":N}`; the venue answers `{"result":null,"id":N}` or an
//! error object. Data arrives wrapped: `{"stream":"<streamName>","data":<rawPayload>}`.

use super::depth::{emit_sides, Side};
use super::{Frame, ParseError, Route, Seq, StreamDef, StreamKey, StreamKind, Venue};
use crate::json::{Layout, Object, Reader, Value};
use crate::tick::{DepthChunk, TickData};

/// Validates `<symbol>@<kind>[@<speed>]` and finds its route.
pub fn parse_stream(venue: Venue, name: &str) -> Result<StreamDef, String> {
    let mut parts = name.split('@');
    let symbol = parts.next().unwrap_or_default();
    let kind_name = parts.next().ok_or_else(|| {
        format!("stream '{name}' has no '@<kind>' (expected e.g. 'btcusdt@bookTicker')")
    })?;
    let speed = parts.next();
    if parts.next().is_some() {
        return Err(format!("stream '{name}' has too many '@' parts"));
    }
    if symbol.is_empty() || !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "stream '{name}': '{symbol}' is not a symbol (letters and digits, e.g. 'btcusdt')"
        ));
    }
    if symbol.bytes().any(|b| b.is_ascii_uppercase()) {
        // "All symbols for streams are lowercase."
        return Err(format!(
            "stream '{name}': Binance stream symbols are lower case; write '{}@{kind_name}{}'",
            symbol.to_ascii_lowercase(),
            speed.map(|s| format!("@{s}")).unwrap_or_default()
        ));
    }
    let kind = match (kind_name, speed) {
        ("bookTicker", None) => StreamKind::BookTicker,
        ("aggTrade", None) => StreamKind::AggTrade,
        ("trade", None) => StreamKind::Trade,
        ("depth", None) => StreamKind::Depth {
            interval_ms: default_depth_ms(venue),
        },
        // USD-M's unthrottled diff depth: an event per book change.
        ("depth", Some("0ms")) if venue == Venue::BinanceUsdm => {
            StreamKind::Depth { interval_ms: 0 }
        }
        ("depth", Some(speed)) => StreamKind::Depth {
            interval_ms: parse_speed(name, speed, &DEPTH_SPEEDS)?,
        },
        // "Top <levels> bids and asks, pushed every second. Valid <levels> are 5, 10, or 20."
        ("depth5" | "depth10" | "depth20", speed) => StreamKind::PartialDepth {
            levels: kind_name[5..].parse().unwrap_or(5),
            interval_ms: match speed {
                None => default_depth_ms(venue),
                Some(speed) => parse_speed(name, speed, &DEPTH_SPEEDS)?,
            },
        },
        (k, None) if k.starts_with("kline_") => StreamKind::Kline {
            interval_s: kline_interval(name, &k["kline_".len()..])?,
        },
        ("markPrice", _) if venue == Venue::BinanceSpot => {
            return Err(format!(
                "stream '{name}': markPrice exists on binance-usdm, not on spot"
            ))
        }
        ("markPrice", None) => StreamKind::MarkPrice { interval_ms: 3000 },
        ("markPrice", Some(speed)) => StreamKind::MarkPrice {
            interval_ms: parse_speed(name, speed, &["1s"])?,
        },
        (other, _) => {
            let mut supported = String::from(
                "bookTicker, aggTrade, trade, kline_<interval>, depth, depth5, depth10, \
                 depth20 (each also @100ms, @250ms, @500ms or @1000ms)",
            );
            if venue == Venue::BinanceUsdm {
                supported.push_str(", depth@0ms, markPrice, markPrice@1s");
            }
            let what = if speed.is_some() && KINDS.contains(&other) {
                format!("'{other}@{}'", speed.unwrap_or_default())
            } else {
                format!("kind '{other}'")
            };
            return Err(format!(
                "stream '{name}': unsupported stream {what} for {venue} (supported: {supported}; \
                 kline intervals: {})",
                KLINE_INTERVALS.map(|(i, _)| i).join(", ")
            ));
        }
    };
    // Base URL Split: "Public (high-frequency public market data)" carries bookTicker and
    // depth; "Market (regular market data)" carries aggTrade, markPrice, klines, tickers.
    // "Connections that do not include a routed path … will only receive data from the Public
    // endpoint."
    let route = match (venue, kind) {
        (
            Venue::BinanceUsdm,
            StreamKind::BookTicker | StreamKind::Depth { .. } | StreamKind::PartialDepth { .. },
        ) => Route::Public,
        (Venue::BinanceUsdm, _) => Route::Market,
        _ => Route::Root,
    };
    Ok(StreamDef::new(
        name.to_string(),
        name.split_once('@').map_or("", |(_, c)| c).to_string(),
        kind,
        symbol.to_ascii_uppercase(),
        route,
    ))
}

/// Stream kinds (the part after the symbol, before a speed) Binance streams are read as.
const KINDS: [&str; 8] = [
    "bookTicker",
    "aggTrade",
    "trade",
    "depth",
    "depth5",
    "depth10",
    "depth20",
    "markPrice",
];

/// "Kline/Candlestick chart intervals": name and seconds (a month counted as 31 days: only the
/// silence limit and reports use the length).
const KLINE_INTERVALS: [(&str, u32); 16] = [
    ("1s", 1),
    ("1m", 60),
    ("3m", 180),
    ("5m", 300),
    ("15m", 900),
    ("30m", 1800),
    ("1h", 3600),
    ("2h", 7200),
    ("4h", 14_400),
    ("6h", 21_600),
    ("8h", 28_800),
    ("12h", 43_200),
    ("1d", 86_400),
    ("3d", 259_200),
    ("1w", 604_800),
    ("1M", 2_678_400),
];

fn kline_interval(name: &str, interval: &str) -> Result<u32, String> {
    KLINE_INTERVALS
        .iter()
        .find(|(i, _)| *i == interval)
        .map(|&(_, s)| s)
        .ok_or_else(|| {
            format!(
                "stream '{name}': kline interval '{interval}' is not one of {}",
                KLINE_INTERVALS.map(|(i, _)| i).join(", ")
            )
        })
}

/// The diff and partial depth update speed without a suffix: spot 1000 ms, USD-M 250 ms.
fn default_depth_ms(venue: Venue) -> u32 {
    if venue == Venue::BinanceSpot {
        1000
    } else {
        250
    }
}

/// Speeds a depth stream name may carry (spot documents 1000ms and 100ms, USD-M 250ms, 500ms
/// and 100ms; either venue's are accepted on both, as before).
const DEPTH_SPEEDS: [&str; 4] = ["100ms", "250ms", "500ms", "1000ms"];

fn parse_speed(name: &str, speed: &str, allowed: &[&str]) -> Result<u32, String> {
    if !allowed.contains(&speed) {
        return Err(format!(
            "stream '{name}': update speed '{speed}' is not one of {}",
            allowed.join(", ")
        ));
    }
    let ms = if let Some(s) = speed.strip_suffix("ms") {
        s.parse().ok()
    } else {
        speed
            .strip_suffix('s')
            .and_then(|s| s.parse::<u32>().ok())
            .map(|s| s * 1000)
    };
    ms.ok_or_else(|| format!("stream '{name}': bad update speed '{speed}'"))
}

/// `{"method":"SUBSCRIBE","params":["a","b"],"id":N}`
pub fn subscribe_request<'a>(id: u64, streams: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from(r#"{"method":"SUBSCRIBE","params":["#);
    for (i, s) in streams.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
    out.push_str(r#"],"id":"#);
    out.push_str(&id.to_string());
    out.push('}');
    out
}

/// Splits a frame into data, an ack, an error, or something unknown.
pub fn classify(text: &str) -> Result<Frame<'_>, ParseError> {
    if let Some(frame) = combined_data(text) {
        return Ok(frame);
    }
    let mut obj = Object::new(text)?;
    let mut stream = None;
    let mut data = None;
    let mut id = None;
    let mut has_result = false;
    let mut error: Option<Value<'_>> = None;
    let mut code = None;
    let mut msg = None;
    while let Some((key, value)) = obj.next_field()? {
        match key {
            "stream" => stream = value.as_str(),
            "data" => {
                if let Value::Object(d) = value {
                    data = Some(d);
                }
                // Data comes after the stream name on Binance: stop scanning early.
                if stream.is_some() {
                    break;
                }
            }
            "id" => id = value.as_u64(),
            "result" => has_result = true,
            "error" => error = Some(value),
            "code" => code = value.as_i64(),
            "msg" => msg = value.as_str(),
            _ => {}
        }
    }
    if let (Some(stream), Some(data)) = (stream, data) {
        return Ok(Frame::Data {
            stream: StreamKey::name(stream),
            data,
        });
    }
    // Errors come as {"error":{"code":2,"msg":"…"},"id":1} or, in older servers, flat
    // {"code":2,"msg":"…","id":1}.
    if let Some(Value::Object(e)) = error {
        let mut inner = Object::new(e)?;
        while let Some((key, value)) = inner.next_field()? {
            match key {
                "code" => code = value.as_i64(),
                "msg" => msg = value.as_str(),
                _ => {}
            }
        }
    }
    if error.is_some() || (code.is_some() && msg.is_some()) {
        return Ok(Frame::Error {
            id,
            code: code.unwrap_or(-1),
            msg: msg.unwrap_or(""),
        });
    }
    match (has_result, id) {
        (true, Some(id)) => Ok(Frame::Ack {
            id: Some(id),
            stream: None,
        }),
        _ => Ok(Frame::Unknown),
    }
}

/// The fast path for what nearly every frame is, `{"stream":"<name>","data":{…}}` exactly as
/// Binance writes it: the payload is the rest of the frame without its closing brace, found
/// without scanning it. Its parser scans it, and rejects it unless it is one whole object.
/// Anything else (other field order, whitespace, escapes) takes the general path.
#[inline]
fn combined_data(text: &str) -> Option<Frame<'_>> {
    let rest = text.strip_prefix(r#"{"stream":""#)?;
    let q = memchr::memchr2(b'"', b'\\', rest.as_bytes())?;
    let (name, rest) = rest.split_at(q);
    let data = rest.strip_prefix(r#"","data":"#)?.strip_suffix('}')?;
    (data.starts_with('{') && data.ends_with('}')).then_some(Frame::Data {
        stream: StreamKey::name(name),
        data,
    })
}

/// Parses one payload of a stream of `kind`.
pub fn parse_data(
    kind: StreamKind,
    data: &str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    match kind {
        StreamKind::BookTicker => book_ticker(data, emit),
        StreamKind::AggTrade => trade(data, "a", emit),
        StreamKind::Trade => trade(data, "t", emit),
        StreamKind::Depth { .. } => depth(data, false, emit),
        StreamKind::PartialDepth { .. } => depth(data, true, emit),
        StreamKind::MarkPrice { .. } => mark_price(data, emit),
        StreamKind::Kline { .. } => kline(data, emit),
        _ => Err(ParseError::Field("kind")),
    }
}

fn req<T>(v: Option<T>, field: &'static str) -> Result<T, ParseError> {
    v.ok_or(ParseError::Field(field))
}

/// USD-M: `{"e":"bookTicker","u":…,"E":…,"T":…,"s":…,"b":…,"B":…,"a":…,"A":…}`;
/// spot sends the same without `e`, `E` and `T`.
fn book_ticker(data: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut obj = Object::new(data)?;
    let (mut u, mut e_time, mut b, mut bq, mut a, mut aq) = (None, 0, None, None, None, None);
    while let Some(key) = obj.key()? {
        match key {
            "u" => u = Some(obj.uint()?),
            "E" => e_time = obj.uint()?,
            "b" => b = Some(obj.decimal()?),
            "B" => bq = Some(obj.decimal()?),
            "a" => a = Some(obj.decimal()?),
            "A" => aq = Some(obj.decimal()?),
            _ => obj.skip()?,
        }
    }
    let tick = TickData::Quote {
        bid: req(b, "b")?,
        bid_qty: req(bq, "B")?,
        ask: req(a, "a")?,
        ask_qty: req(aq, "A")?,
    };
    let seq = Seq {
        id: req(u, "u")?,
        prev: None,
    };
    emit(seq, e_time, tick);
    Ok(())
}

/// bookTicker as Binance writes it, read literal by literal: compact, one-letter keys, in
/// whatever order the venue puts them. The documented USD-M order is `e`, `u`, `E`, `T`, `s`,
/// `b`, `B`, `a`, `A`; recorded USD-M frames (2021 to 2024) put `T` and `E` last; spot sends
/// `u`, `s`, `b`, `B`, `a`, `A`. Each key at most once; `None` (anything else: whitespace, an
/// unknown or repeated key, another `e`, a value of another type) sends the frame to the
/// general parser.
#[inline]
pub(super) fn book_ticker_as_sent(data: &str) -> Option<(Seq, u64, TickData)> {
    let mut m = Layout::new(data);
    m.lit("{")?;
    let (mut u, mut e_time) = (0, 0);
    let [mut bid, mut bid_qty, mut ask, mut ask_qty] = [0.0; 4];
    // One bit a key seen: u E T s e b B a A.
    let mut seen = 0u16;
    loop {
        let bit = match m.short_key()? {
            b'u' => {
                u = m.uint()?;
                1
            }
            b'E' => {
                e_time = m.uint()?;
                2
            }
            b'T' => {
                m.uint()?;
                4
            }
            b's' => {
                m.str()?;
                8
            }
            b'e' => {
                (m.str()? == "bookTicker").then_some(())?;
                16
            }
            b'b' => {
                bid = m.decimal()?;
                32
            }
            b'B' => {
                bid_qty = m.decimal()?;
                64
            }
            b'a' => {
                ask = m.decimal()?;
                128
            }
            b'A' => {
                ask_qty = m.decimal()?;
                256
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        if m.lit(",").is_none() {
            break;
        }
    }
    m.lit("}")?;
    m.end()?;
    // `u` and the four values are required, as the general parser requires them.
    (seen & (1 | 32 | 64 | 128 | 256) == 1 | 32 | 64 | 128 | 256).then(|| {
        (
            Seq { id: u, prev: None },
            e_time,
            TickData::quote((bid, bid_qty), (ask, ask_qty)),
        )
    })
}

/// `{"e":"aggTrade","E":…,"s":…,"a":…,"p":…,"q":…,"f":…,"l":…,"T":…,"m":…}` (`id_key` `a`)
/// or `{"e":"trade","E":…,"s":…,"t":…,"p":…,"q":…,"T":…,"m":…}` (`id_key` `t`; USD-M adds
/// `"X":"MARKET"`). Aggregate trade ids and trade ids are each consecutive per symbol, two
/// sequences of their own.
fn trade(
    data: &str,
    id_key: &'static str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let mut obj = Object::new(data)?;
    let (mut id, mut e_time, mut p, mut q, mut m) = (None, 0, None, None, None);
    while let Some(key) = obj.key()? {
        match key {
            k if k == id_key => id = Some(obj.uint()?),
            "E" => e_time = obj.uint()?,
            "p" => p = Some(obj.decimal()?),
            "q" => q = Some(obj.decimal()?),
            "m" => m = obj.value()?.as_bool(),
            _ => obj.skip()?,
        }
    }
    let tick = TickData::Trade {
        price: req(p, "p")?,
        qty: req(q, "q")?,
        buyer_is_maker: req(m, "m")?,
    };
    let id = req(id, id_key)?;
    let seq = Seq {
        id,
        prev: id.checked_sub(1),
    };
    emit(seq, e_time, tick);
    Ok(())
}

/// `{"e":"kline","E":…,"s":…,"k":{"t","T","s","i","f","L","o","c","h","l","v","n","x",…}}`:
/// the candle so far, numbered by the event time (the venue numbers nothing else here).
fn kline(data: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut r = Reader::new(data);
    let mut obj = r.object()?;
    let mut e_time = None;
    let mut candle = None;
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "E" => e_time = r.uint()?,
            "k" => candle = Some(candle_fields(&mut r)?),
            _ => r.skip()?,
        }
    }
    r.end()?;
    let e_time = req(e_time, "E")?;
    emit(
        Seq {
            id: e_time,
            prev: None,
        },
        e_time,
        req(candle, "k")??,
    );
    Ok(())
}

/// The `k` object of a kline event.
fn candle_fields(r: &mut Reader<'_>) -> Result<Result<TickData, ParseError>, ParseError> {
    if r.peek() != Some(b'{') {
        r.skip()?;
        return Ok(Err(ParseError::Field("k")));
    }
    let mut obj = r.object()?;
    let (mut t, mut t_end, mut x) = (None, None, None);
    let [mut o, mut h, mut l, mut c, mut v] = [None; 5];
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "t" => t = r.uint()?,
            "T" => t_end = r.uint()?,
            "o" => o = r.decimal()?,
            "h" => h = r.decimal()?,
            "l" => l = r.decimal()?,
            "c" => c = r.decimal()?,
            "v" => v = r.decimal()?,
            "x" => x = r.bool()?,
            _ => r.skip()?,
        }
    }
    let candle = || {
        Ok(TickData::Candle {
            open: req(o, "o")?,
            high: req(h, "h")?,
            low: req(l, "l")?,
            close: req(c, "c")?,
            volume: req(v, "v")?,
            start_ms: req(t, "t")?,
            close_ms: req(t_end, "T")?,
            closed: req(x, "x")?,
        })
    };
    Ok(candle())
}

/// `{"e":"markPriceUpdate","E":…,"s":…,"p":…,"i":…,"P":…,"r":…,"T":…}`. The sequence is the
/// event time: the venue numbers nothing else here.
fn mark_price(data: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut obj = Object::new(data)?;
    let (mut e_time, mut p, mut i, mut r, mut t) = (None, None, None, None, None);
    while let Some(key) = obj.key()? {
        match key {
            "E" => e_time = Some(obj.uint()?),
            "p" => p = Some(obj.decimal()?),
            "i" => i = Some(obj.decimal()?),
            // "" on contracts without funding.
            "r" => r = obj.value()?.as_f64(),
            "T" => t = Some(obj.uint()?),
            _ => obj.skip()?,
        }
    }
    let e_time = req(e_time, "E")?;
    let tick = TickData::Mark {
        mark: req(p, "p")?,
        index: i.unwrap_or(f64::NAN),
        // The funding rate is "" on contracts without funding; NaN says "none".
        funding_rate: r.unwrap_or(f64::NAN),
        next_funding_ms: t.unwrap_or(0),
    };
    let seq = Seq {
        id: e_time,
        prev: None,
    };
    emit(seq, e_time, tick);
    Ok(())
}

/// `{"e":"depthUpdate","E":…,"T":…,"s":…,"U":…,"u":…,"pu":…,"b":[[p,q],…],"a":[[p,q],…]}`.
/// Levels are cut into chunks of [`DEPTH_CHUNK_LEVELS`]; all chunks carry the same ids. A
/// partial book (`snapshot`) is a full snapshot of its levels: USD-M sends it in the same shape,
/// spot as `{"lastUpdateId":…,"bids":[…],"asks":[…]}`.
fn depth(
    data: &str,
    snapshot: bool,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let mut r = Reader::new(data);
    let mut obj = r.object()?;
    let (mut first, mut last, mut prev, mut e_time) = (None, None, None, 0);
    let mut bids = Side::new("b");
    let mut asks = Side::new("a");
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "U" => first = Some(r.uint_strict()?),
            "u" => last = Some(r.uint_strict()?),
            "lastUpdateId" if snapshot => last = Some(r.uint_strict()?),
            "pu" => prev = Some(r.uint_strict()?),
            "E" => e_time = r.uint_strict()?,
            "b" | "bids" => bids.read(&mut r)?,
            "a" | "asks" => asks.read(&mut r)?,
            _ => r.skip_strict()?,
        }
    }
    r.end()?;
    let last = req(last, "u")?;
    if snapshot {
        // A snapshot replaces what came before: it names no predecessor.
        let head = DepthChunk {
            first_update_id: first.unwrap_or(last),
            final_update_id: last,
            snapshot: true,
            ..DepthChunk::EMPTY
        };
        let seq = Seq {
            id: last,
            prev: None,
        };
        return emit_sides(head, seq, e_time, [&bids, &asks], emit);
    }
    let first = req(first, "U")?;
    // USD-M chains events by `pu`; spot's events are contiguous, so the predecessor is `U - 1`.
    let seq = Seq {
        id: last,
        prev: prev.or(first.checked_sub(1)),
    };
    let head = DepthChunk {
        first_update_id: first,
        final_update_id: last,
        prev_final_update_id: prev.unwrap_or(0),
        ..DepthChunk::EMPTY
    };
    emit_sides(head, seq, e_time, [&bids, &asks], emit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::Level;

    fn parse(kind: StreamKind, data: &str) -> Vec<(u64, u64, TickData)> {
        let mut out = vec![];
        parse_data(kind, data, &mut |s, e, t| out.push((s.id, e, t))).unwrap();
        out
    }

    // Payloads below are the examples of Binance's API documentation ("Individual Symbol Book
    // Ticker Streams", "Aggregate Trade Streams", "Diff. Book Depth Streams", "Mark Price
    // Stream"), with the doc's comments removed.

    #[test]
    fn usdm_book_ticker_from_the_docs() {
        let data = r#"{"e":"bookTicker","u":400900217,"E": 1568014460893,"T": 1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        assert_eq!(
            parse(StreamKind::BookTicker, data),
            vec![(
                400900217,
                1568014460893,
                TickData::Quote {
                    bid: 25.3519,
                    bid_qty: 31.21,
                    ask: 25.3652,
                    ask_qty: 40.66
                }
            )]
        );
    }

    #[test]
    fn spot_book_ticker_from_the_docs() {
        let data = r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        let ticks = parse(StreamKind::BookTicker, data);
        assert_eq!(ticks.len(), 1);
        assert_eq!((ticks[0].0, ticks[0].1), (400900217, 0));
    }

    /// The as-sent fast path and the general parser agree on the documented messages, and the
    /// general parser reads any other layout (order, whitespace, an extra field) the same; bad
    /// values are errors either way.
    #[test]
    fn book_tickers_as_sent_and_otherwise_parse_the_same() {
        let usdm = r#"{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        let spot = r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        let quote = TickData::Quote {
            bid: 25.3519,
            bid_qty: 31.21,
            ask: 25.3652,
            ask_qty: 40.66,
        };
        let seq = Seq {
            id: 400900217,
            prev: None,
        };
        assert_eq!(book_ticker_as_sent(usdm), Some((seq, 1568014460893, quote)));
        assert_eq!(book_ticker_as_sent(spot), Some((seq, 0, quote)));
        for (data, e_time) in [
            (usdm, 1568014460893),
            (spot, 0),
            (
                r#"{"u":400900217,"E":1568014460893,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
                1568014460893,
            ),
            (
                r#"{ "u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000" }"#,
                0,
            ),
            (
                r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000","x":[1]}"#,
                0,
            ),
        ] {
            assert_eq!(
                parse(StreamKind::BookTicker, data),
                vec![(400900217, e_time, quote)],
                "{data}"
            );
        }
        for bad in [
            r#"{"u":400900217,"s":"BNBUSDT","b":"25.3x","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
            r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#,
            r#"{"u":-1,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
        ] {
            assert!(book_ticker_as_sent(bad).is_none(), "{bad}");
            assert!(
                parse_data(StreamKind::BookTicker, bad, &mut |_, _, _| {}).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn agg_trade_from_the_docs() {
        let usdm = r#"{"e": "aggTrade","E": 123456789,"s": "BTCUSDT","a": 5933014,"p": "0.001","q": "100","f": 100,"l": 105,"T": 123456785,"m": true}"#;
        assert_eq!(
            parse(StreamKind::AggTrade, usdm),
            vec![(
                5933014,
                123456789,
                TickData::Trade {
                    price: 0.001,
                    qty: 100.0,
                    buyer_is_maker: true
                }
            )]
        );
        let spot = r#"{"e": "aggTrade","E": 1672515782136,"s": "BNBBTC","a": 12345,"p": "0.001","q": "100","f": 100,"l": 105,"T": 1672515782136,"m": true,"M": true}"#;
        assert_eq!(parse(StreamKind::AggTrade, spot)[0].0, 12345);
    }

    #[test]
    fn mark_price_from_the_docs() {
        let data = r#"{"e": "markPriceUpdate","E": 1562305380000,"s": "BTCUSDT","p": "11794.15000000","i": "11784.62659091","P": "11784.25641265","r": "0.00038167","T": 1562306400000}"#;
        assert_eq!(
            parse(StreamKind::MarkPrice { interval_ms: 3000 }, data),
            vec![(
                1562305380000,
                1562305380000,
                TickData::Mark {
                    mark: 11794.15,
                    index: 11784.62659091,
                    funding_rate: 0.00038167,
                    next_funding_ms: 1562306400000
                }
            )]
        );
    }

    #[test]
    fn usdm_depth_from_the_docs() {
        let data = r#"{"e": "depthUpdate","E": 123456789,"T": 123456788,"s": "BTCUSDT","U": 157,"u": 160,"pu": 149,"b": [["0.0024","10"]],"a": [["0.0026","100"]]}"#;
        let ticks = parse(StreamKind::Depth { interval_ms: 100 }, data);
        assert_eq!(ticks.len(), 1);
        let TickData::Depth(d) = ticks[0].2 else {
            panic!("not depth")
        };
        assert_eq!(
            (d.first_update_id, d.final_update_id, d.prev_final_update_id),
            (157, 160, 149)
        );
        assert_eq!(
            d.bids(),
            &[Level {
                price: 0.0024,
                qty: 10.0
            }]
        );
        assert_eq!(
            d.asks(),
            &[Level {
                price: 0.0026,
                qty: 100.0
            }]
        );
        assert!(d.last);
    }

    #[test]
    fn messages_name_their_predecessor_where_the_venue_chains_them() {
        let seqs = |kind: StreamKind, data: &str| {
            let mut out = vec![];
            parse_data(kind, data, &mut |s, _, _| out.push(s)).unwrap();
            out
        };
        let depth = StreamKind::Depth { interval_ms: 100 };
        // USD-M: `pu` is the previous event's `u`, whatever `U` says.
        let usdm =
            r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[],"a":[]}"#;
        let spot = r#"{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,"b":[],"a":[]}"#;
        let chained = |id, prev| Seq {
            id,
            prev: Some(prev),
        };
        assert_eq!(seqs(depth, usdm), vec![chained(160, 149)]);
        assert_eq!(seqs(depth, spot), vec![chained(160, 156)]);
        let trade = r#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":1,"m":true}"#;
        assert_eq!(
            seqs(StreamKind::AggTrade, trade),
            vec![chained(5933014, 5933013)]
        );
        let book =
            r#"{"u":400900217,"s":"BNBUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66"}"#;
        assert_eq!(
            seqs(StreamKind::BookTicker, book),
            vec![Seq {
                id: 400900217,
                prev: None
            }]
        );
    }

    #[test]
    fn long_depth_updates_are_chunked() {
        let levels: Vec<String> = (1..=11).map(|i| format!(r#"["{i}.5","{i}"]"#)).collect();
        let data = format!(
            r#"{{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,"b":[{}],"a":[{}]}}"#,
            levels.join(","),
            levels[..3].join(",")
        );
        let ticks = parse(StreamKind::Depth { interval_ms: 1000 }, &data);
        let chunks: Vec<DepthChunk> = ticks
            .iter()
            .map(|t| match t.2 {
                TickData::Depth(d) => d,
                _ => panic!("not depth"),
            })
            .collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            (chunks[0].n_bids, chunks[0].n_asks, chunks[0].last),
            (8, 0, false)
        );
        assert_eq!(
            (chunks[1].n_bids, chunks[1].n_asks, chunks[1].last),
            (3, 3, true)
        );
        assert_eq!(chunks[1].part, 1);
        assert_eq!(
            chunks[1].bids()[2],
            Level {
                price: 11.5,
                qty: 11.0
            }
        );
        assert_eq!(
            chunks[1].asks()[0],
            Level {
                price: 1.5,
                qty: 1.0
            }
        );
    }

    #[test]
    fn classifies_control_messages() {
        assert_eq!(
            classify(r#"{"result":null,"id":1}"#).unwrap(),
            Frame::Ack {
                id: Some(1),
                stream: None
            }
        );
        assert_eq!(
            classify(r#"{"error":{"code":2,"msg":"Invalid request: unknown stream 'x'"},"id":7}"#)
                .unwrap(),
            Frame::Error {
                id: Some(7),
                code: 2,
                msg: "Invalid request: unknown stream 'x'"
            }
        );
        assert_eq!(
            classify(r#"{"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}"#)
                .unwrap(),
            Frame::Error {
                id: None,
                code: 3,
                msg: "Invalid JSON: expected value at line 1 column 1"
            }
        );
        assert_eq!(
            classify(r#"{"stream":"btcusdt@bookTicker","data":{"u":1}}"#).unwrap(),
            Frame::Data {
                stream: StreamKey::name("btcusdt@bookTicker"),
                data: r#"{"u":1}"#
            }
        );
        assert_eq!(classify(r#"{"hello":"world"}"#).unwrap(), Frame::Unknown);
        assert!(classify(r#"{"stream":"btcusdt@bookTicker","data":{"u":12"#).is_err());
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_data(
            StreamKind::BookTicker,
            r#"{"u":1,"b":"1","B":"1","a":"2"}"#,
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert_eq!(err, ParseError::Field("A"));
    }

    #[test]
    fn stream_names_are_validated_and_routed() {
        let s = parse_stream(Venue::BinanceUsdm, "btcusdt@markPrice@1s").unwrap();
        assert_eq!(
            (s.kind, s.route, s.symbol.as_str()),
            (
                StreamKind::MarkPrice { interval_ms: 1000 },
                Route::Market,
                "BTCUSDT"
            )
        );
        assert_eq!(
            parse_stream(Venue::BinanceUsdm, "btcusdt@bookTicker")
                .unwrap()
                .route,
            Route::Public
        );
        assert_eq!(
            parse_stream(Venue::BinanceUsdm, "btcusdt@depth@100ms")
                .unwrap()
                .route,
            Route::Public
        );
        assert_eq!(
            parse_stream(Venue::BinanceUsdm, "btcusdt@aggTrade")
                .unwrap()
                .route,
            Route::Market
        );
        assert_eq!(
            parse_stream(Venue::BinanceSpot, "btcusdt@aggTrade")
                .unwrap()
                .route,
            Route::Root
        );
        for bad in [
            "btcusdt",
            "BTCUSDT@bookTicker",
            "btcusdt@kline_7m",
            "btcusdt@depth@10ms",
            "@bookTicker",
            "btc-usdt@aggTrade",
        ] {
            assert!(parse_stream(Venue::BinanceUsdm, bad).is_err(), "{bad}");
        }
        assert!(parse_stream(Venue::BinanceSpot, "btcusdt@markPrice").is_err());
        let err = parse_stream(Venue::BinanceUsdm, "BTCUSDT@bookTicker").unwrap_err();
        assert!(err.contains("btcusdt@bookTicker"), "{err}");
    }

    #[test]
    fn subscribe_request_shape() {
        assert_eq!(
            subscribe_request(3, ["btcusdt@aggTrade", "btcusdt@depth"].into_iter()),
            r#"{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":3}"#
        );
    }
}
