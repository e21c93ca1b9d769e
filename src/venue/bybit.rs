//! Bybit v5 public streams (spot and linear).
//!
//! Connections go to `<base>/v5/public/spot` or `/v5/public/linear` and subscribe with
//! `{"op":"subscribe","req_id":"N","args":["orderbook.50.BTCUSDT",…]}` (spot: at most 10 args
//! per request); the venue answers `{"success":true,…,"req_id":"N","op":"subscribe"}` or
//! `success:false` with `ret_msg` saying why. Data: `{"topic":…,"type":"snapshot"|"delta",
//! "ts":…,"data":…}`. Keep-alive: the client sends `{"op":"ping"}` every 20 s; the venue
//! answers with `"op":"ping"` and `"ret_msg":"pong"`.

use super::depth::{emit_sides, Side};
use super::{
    first_level, one_level, Frame, ParseError, Route, Seq, StreamDef, StreamKey, StreamKind, Venue,
};
use crate::json::{unescaped_eq, until_quote, Layout, Object, Reader, Value};
use crate::tick::{DepthChunk, TickData};

/// Validates `orderbook.{1|50|200|1000}.SYMBOL`, `publicTrade.SYMBOL` or `tickers.SYMBOL`.
pub fn parse_stream(venue: Venue, name: &str) -> Result<StreamDef, String> {
    let (channel, symbol) = name.rsplit_once('.').ok_or_else(|| {
        format!("stream '{name}' is not '<topic>.<SYMBOL>' (e.g. 'orderbook.50.BTCUSDT')")
    })?;
    if symbol.is_empty()
        || !symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "stream '{name}': '{symbol}' is not a Bybit symbol (upper case, e.g. 'BTCUSDT')"
        ));
    }
    let kind = match channel {
        "orderbook.1" => StreamKind::BookTicker,
        // Orderbook page: "Linear & inverse: Level 1 data, push frequency: 10ms; Level 50
        // data, push frequency: 20ms; Level 200 data, push frequency: 100ms; Level 1000 data,
        // push frequency: 200ms"; spot the same depths (200 and 1000 at 200ms).
        "orderbook.50" => StreamKind::OrderBook { levels: 50 },
        "orderbook.200" => StreamKind::OrderBook { levels: 200 },
        "orderbook.1000" => StreamKind::OrderBook { levels: 1000 },
        "publicTrade" => StreamKind::AggTrade,
        "tickers" => StreamKind::Ticker,
        other => {
            return Err(format!(
                "stream '{name}': unsupported topic '{other}' for {venue} (supported: \
                 orderbook.1, orderbook.50, orderbook.200, orderbook.1000, publicTrade, tickers)"
            ))
        }
    };
    Ok(StreamDef::new(
        name.to_string(),
        channel.to_string(),
        kind,
        symbol.to_string(),
        Route::Root,
    ))
}

/// `{"op":"subscribe","req_id":"N","args":["a","b"]}`
pub fn subscribe_request<'a>(id: u64, streams: impl Iterator<Item = &'a str>) -> String {
    let mut out = format!(r#"{{"op":"subscribe","req_id":"{id}","args":["#);
    for (i, s) in streams.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
    out.push_str("]}");
    out
}

/// Splits a frame into data, an ack, an error, a pong or something unknown.
pub fn classify(text: &str) -> Result<Frame<'_>, ParseError> {
    if let Some(frame) = data_as_sent(text) {
        return Ok(frame);
    }
    classify_general(text)
}

/// A data frame exactly as Bybit writes it, `{"topic":"…"`, then fields whose values are
/// plain strings or integers (`type`, `ts`, `cs`), then `"data":`, is data of that topic: the
/// general path below says the same once it reaches `data`. Anything else (other order,
/// whitespace, escapes, other values) takes the general path.
#[inline]
pub(super) fn data_as_sent(text: &str) -> Option<Frame<'_>> {
    let (topic, mut rest) = until_quote(text.strip_prefix(r#"{"topic":""#)?)?;
    loop {
        if rest.starts_with(r#","data":"#) {
            return Some(Frame::Data {
                stream: StreamKey::name(topic),
                data: text,
            });
        }
        let (key, after) = until_quote(rest.strip_prefix(",\"")?)?;
        if key == "topic" || key == "data" {
            return None;
        }
        let after = after.strip_prefix(':')?;
        rest = match after.strip_prefix('"') {
            Some(s) => until_quote(s)?.1,
            None => {
                let n = after.bytes().take_while(u8::is_ascii_digit).count();
                (n > 0).then(|| &after[n..])?
            }
        };
    }
}

/// The head of a data frame as Bybit writes it (as [`data_as_sent`] takes it, `type` a string
/// and `ts` at most 19 digits): whether `type` is `snapshot`, `ts`, and where the `,` before
/// `"data"` is.
#[inline(always)]
fn head_as_sent(frame: &str) -> Option<(bool, u64, usize)> {
    let (_, mut rest) = until_quote(frame.strip_prefix(r#"{"topic":""#)?)?;
    let (mut snapshot, mut ts) = (false, 0);
    loop {
        if rest.starts_with(r#","data":"#) {
            return Some((snapshot, ts, frame.len() - rest.len()));
        }
        let (key, after) = until_quote(rest.strip_prefix(",\"")?)?;
        let after = after.strip_prefix(':')?;
        if matches!(key, "topic" | "data") {
            return None;
        }
        rest = match after.strip_prefix('"') {
            Some(s) => {
                let (value, tail) = until_quote(s)?;
                match key {
                    "type" => snapshot = value == "snapshot",
                    "ts" => return None,
                    _ => {}
                }
                tail
            }
            None => {
                let n = after.bytes().take_while(u8::is_ascii_digit).count();
                match key {
                    _ if n == 0 || n > 19 => return None,
                    "type" => return None,
                    "ts" => ts = after[..n].parse().ok()?,
                    _ => {}
                }
                &after[n..]
            }
        };
    }
}

/// [`classify`] of a frame not as Bybit writes its data.
pub(super) fn classify_general(text: &str) -> Result<Frame<'_>, ParseError> {
    let mut obj = Object::new(text)?;
    let (mut topic, mut data) = (None, None);
    let (mut success, mut op, mut ret_msg, mut req_id) = (None, None, None, None);
    while let Some(key) = obj.key()? {
        match key {
            // Data follows `topic` in every push: the parser reads the frame, `data`
            // included, so it is not scanned here too.
            "data" if topic.is_some() => {
                return Ok(Frame::Data {
                    stream: StreamKey::name(topic.unwrap_or_default()),
                    data: text,
                });
            }
            "topic" => topic = obj.value()?.as_str(),
            "data" => data = Some(obj.value()?),
            "success" => success = obj.value()?.as_bool(),
            "op" => op = obj.value()?.as_str(),
            "ret_msg" => ret_msg = obj.value()?.as_str(),
            "req_id" => req_id = obj.value()?.as_str(),
            _ => obj.skip()?,
        }
    }
    if let (Some(topic), Some(_)) = (topic, data) {
        // The payload's meaning depends on `type` and `ts`, outside `data`: the parser gets
        // the whole frame.
        return Ok(Frame::Data {
            stream: StreamKey::name(topic),
            data: text,
        });
    }
    let id = req_id.and_then(|r| r.parse().ok());
    let op_is = |name| op.is_some_and(|op| unescaped_eq(op, name));
    if op_is("ping") || op_is("pong") {
        return Ok(Frame::Pong);
    }
    match (op, success) {
        // Without `req_id` (optional in the request, and not always echoed) a subscribe
        // success still answers one: the oldest.
        (Some(_), Some(true)) => match id {
            Some(id) => Ok(Frame::Ack {
                id: Some(id),
                stream: None,
            }),
            None if op_is("subscribe") => Ok(Frame::Ack {
                id: None,
                stream: None,
            }),
            None => Ok(Frame::Unknown),
        },
        (Some(_), Some(false)) => Ok(Frame::Error {
            id,
            code: -1,
            msg: ret_msg.unwrap_or(""),
        }),
        _ => Ok(Frame::Unknown),
    }
}

/// Parses one data frame (the whole frame: `type` and `ts` sit beside `data`) of a stream of
/// `kind`. The frame is read once, in place: `data`'s contents go to a fixed buffer as they are
/// read and are emitted once the whole frame is read (`type` and `ts` may follow `data`, and a
/// field sent twice counts as sent last).
pub fn parse_data(
    kind: StreamKind,
    frame: &str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    match kind {
        // The general path of `orderbook.1` (whose as-sent form has a fast path of its own).
        StreamKind::BookTicker => parse_sliced(kind, frame, emit),
        _ => parse_in_place(kind, frame, emit),
    }
}

/// [`parse_data`] of the kinds read in place.
fn parse_in_place(
    kind: StreamKind,
    frame: &str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    // The buffers live here, each built only for its kind: a payload holding them by value
    // would be moved whole (kilobytes for a book) whatever it holds.
    let (mut book_buf, mut trades_buf);
    let mut payload = match kind {
        StreamKind::OrderBook { .. } => {
            book_buf = BookData::new();
            Payload::Book(&mut book_buf)
        }
        StreamKind::AggTrade => {
            trades_buf = Trades::default();
            Payload::Trades(&mut trades_buf)
        }
        StreamKind::Ticker => Payload::Ticker([None; 3], None),
        _ => Payload::Other,
    };
    // A head as Bybit writes it is read in one go; the fields go on from `data`.
    let (mut r, mut top, mut snapshot, mut ts) = match head_as_sent(frame) {
        Some((snapshot, ts, at)) => {
            let (r, top) = Reader::within_object(frame, at);
            (r, top, snapshot, ts)
        }
        None => {
            let mut r = Reader::new(frame);
            let top = r.object()?;
            (r, top, false, 0)
        }
    };
    let mut data = None;
    while let Some(key) = r.key(&mut top)? {
        match key {
            "type" => snapshot = r.str()?.is_some_and(|t| unescaped_eq(t, "snapshot")),
            "ts" => ts = r.uint()?.unwrap_or(0),
            // Read in place; what it does not accept refuses the frame unless another `data`
            // follows.
            "data" => data = Some(r.attempt(|r| payload.read(r))?),
            _ => r.skip()?,
        }
    }
    r.end()?;
    data.ok_or(ParseError::Field("data"))??;
    payload.emit(snapshot, ts, emit)
}
/// `data` of a frame, as far as read; what a kind read in place keeps until the frame ends.
enum Payload<'a, 'b> {
    /// `orderbook.50`.
    Book(&'b mut BookData<'a>),
    /// `publicTrade`.
    Trades(&'b mut Trades<'a>),
    /// `tickers`: mark, index and funding rate; next funding time.
    Ticker([Option<f64>; 3], Option<u64>),
    /// A kind Bybit does not send.
    Other,
}

/// `orderbook` data: `{"s","b":[[p,q]],"a":[[p,q]],"u","seq"}`.
struct BookData<'a> {
    bids: Side<'a>,
    asks: Side<'a>,
    update_id: Option<u64>,
}

impl BookData<'_> {
    fn new() -> Self {
        BookData {
            bids: Side::new("b"),
            asks: Side::new("a"),
            update_id: None,
        }
    }
}

/// Trades kept while the frame is read; a longer list is read again.
const TRADES_KEPT: usize = 8;

/// `publicTrade` data: the first trades, their count, and where the list starts.
struct Trades<'a> {
    kept: [Trade; TRADES_KEPT],
    n: usize,
    start: Option<Reader<'a>>,
}

impl Default for Trades<'_> {
    fn default() -> Self {
        Trades {
            kept: [Trade::default(); TRADES_KEPT],
            n: 0,
            start: None,
        }
    }
}

/// One trade of a `publicTrade` list.
#[derive(Clone, Copy, Default)]
struct Trade {
    id: u64,
    time: u64,
    price: f64,
    qty: f64,
    buyer_is_maker: bool,
}

impl<'a> Payload<'a, '_> {
    /// Reads `data` in place, replacing what an earlier `data` held.
    fn read(&mut self, r: &mut Reader<'a>) -> Result<(), ParseError> {
        match self {
            Payload::Book(book) => {
                book.bids.clear();
                book.asks.clear();
                book.update_id = None;
                if r.peek() != Some(b'{') {
                    return Err(ParseError::Field("data"));
                }
                let mut obj = r.object()?;
                while let Some(key) = r.key(&mut obj)? {
                    match key {
                        "b" => book.bids.read(r)?,
                        "a" => book.asks.read(r)?,
                        "u" => book.update_id = r.uint()?,
                        _ => r.skip()?,
                    }
                }
            }
            Payload::Trades(trades) => {
                trades.start = Some(*r);
                trades.n = 0;
                let (kept, n) = (&mut trades.kept, &mut trades.n);
                read_trades(r, &mut |t| {
                    if *n < TRADES_KEPT {
                        kept[*n] = t;
                    }
                    *n += 1;
                })?;
            }
            Payload::Ticker(prices, next) => {
                (*prices, *next) = ([None; 3], None);
                if r.peek() != Some(b'{') {
                    return Err(ParseError::Field("data"));
                }
                let mut obj = r.object()?;
                while let Some(key) = r.key(&mut obj)? {
                    match key {
                        "markPrice" => prices[0] = r.decimal()?,
                        "indexPrice" => prices[1] = r.decimal()?,
                        "fundingRate" => prices[2] = r.decimal()?,
                        "nextFundingTime" => *next = r.uint()?,
                        _ => r.skip()?,
                    }
                }
            }
            Payload::Other => {
                r.skip()?;
                return Err(ParseError::Field("kind"));
            }
        }
        Ok(())
    }

    /// Emits the ticks of the `data` read, now that `type` and `ts` are known.
    fn emit(
        &self,
        snapshot: bool,
        ts: u64,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        match self {
            // `orderbook.50`: a snapshot, then deltas whose `u` goes up by one each. A snapshot
            // names no predecessor (it replaces the book; `u` = 1 is one sent after a restart
            // of the venue's service).
            Payload::Book(book) => {
                let id = book.update_id.ok_or(ParseError::Field("u"))?;
                let snapshot = snapshot || id == 1;
                let seq = Seq {
                    id,
                    prev: if snapshot { None } else { id.checked_sub(1) },
                };
                let head = DepthChunk {
                    first_update_id: id,
                    final_update_id: id,
                    prev_final_update_id: id.saturating_sub(1),
                    snapshot,
                    ..DepthChunk::EMPTY
                };
                emit_sides(head, seq, ts, [&book.bids, &book.asks], emit)
            }
            Payload::Trades(trades) => {
                let mut emit_one = |t: Trade| {
                    let tick = TickData::Trade {
                        price: t.price,
                        qty: t.qty,
                        buyer_is_maker: t.buyer_is_maker,
                    };
                    emit(
                        Seq {
                            id: t.id,
                            prev: None,
                        },
                        t.time,
                        tick,
                    );
                };
                match trades.start {
                    Some(mut r) if trades.n > TRADES_KEPT => read_trades(&mut r, &mut emit_one),
                    _ => {
                        trades.kept[..trades.n].iter().for_each(|&t| emit_one(t));
                        Ok(())
                    }
                }
            }
            // `tickers` (linear): a delta carries only the fields that changed: the others are
            // NaN (0 for the time). Numbered by the frame's time: both connections see the same
            // update with the same `ts`.
            Payload::Ticker([mark, index, funding], next) => {
                let tick = TickData::Mark {
                    mark: mark.unwrap_or(f64::NAN),
                    index: index.unwrap_or(f64::NAN),
                    funding_rate: funding.unwrap_or(f64::NAN),
                    next_funding_ms: next.unwrap_or(0),
                };
                emit(Seq { id: ts, prev: None }, ts, tick);
                Ok(())
            }
            Payload::Other => Err(ParseError::Field("kind")),
        }
    }
}

/// `publicTrade`: `[{"T","s","S":"Buy"|"Sell","v","p","i","BT","seq"}]`, oldest first, each
/// trade handed to `f`. The message is numbered by its first trade's `seq` (the cross
/// sequence), or its time.
fn read_trades(r: &mut Reader<'_>, f: &mut impl FnMut(Trade)) -> Result<(), ParseError> {
    if r.peek() != Some(b'[') {
        return Err(ParseError::Field("data"));
    }
    let mut list = r.array()?;
    while r.element(&mut list)? {
        if r.peek() != Some(b'{') {
            return Err(ParseError::Field("data"));
        }
        let mut obj = r.object()?;
        let (mut time, mut side, mut qty, mut price, mut seq) = (None, None, None, None, None);
        while let Some(key) = r.key(&mut obj)? {
            match key {
                "T" => time = r.uint()?,
                "S" => side = r.str()?,
                "v" => qty = r.decimal()?,
                "p" => price = r.decimal()?,
                "seq" => seq = r.uint()?,
                _ => r.skip()?,
            }
        }
        let time = time.ok_or(ParseError::Field("T"))?;
        f(Trade {
            id: seq.unwrap_or(time),
            time,
            price: price.ok_or(ParseError::Field("p"))?,
            qty: qty.ok_or(ParseError::Field("v"))?,
            // The taker sold into a bid: the buyer was the maker.
            buyer_is_maker: unescaped_eq(side.ok_or(ParseError::Field("S"))?, "Sell"),
        });
    }
    Ok(())
}

/// Parses a frame by cutting `data` out and scanning it again: the general path of
/// `orderbook.1`.
fn parse_sliced(
    kind: StreamKind,
    frame: &str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let mut obj = Object::new(frame)?;
    let (mut ts, mut data, mut delta) = (0, None, false);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "ts" => ts = v.as_u64().unwrap_or(0),
            "data" => data = Some(v),
            "type" => delta = v.as_str().is_some_and(|t| unescaped_eq(t, "delta")),
            _ => {}
        }
    }
    if delta && kind == StreamKind::BookTicker {
        // The Orderbook page says level 1 sends snapshots only, but spot and linear sent
        // deltas in 2023: one is handed out as what it is, a change to a one-level book (the
        // feed merges it into the stream's last top). Its `u` is an id, not a chain.
        return parse_in_place(
            StreamKind::OrderBook { levels: 1 },
            frame,
            &mut |s, t, d| {
                emit(
                    Seq {
                        id: s.id,
                        prev: None,
                    },
                    t,
                    d,
                )
            },
        );
    }
    let data = match data {
        Some(Value::Object(d) | Value::Array(d)) => d,
        _ => return Err(ParseError::Field("data")),
    };
    match kind {
        StreamKind::BookTicker => top_of_book(data, ts, emit),
        _ => Err(ParseError::Field("kind")),
    }
}

/// The fields of an `orderbook` payload: `{"s","b":[[p,q]],"a":[[p,q]],"u","seq"}`.
struct BookFields<'a> {
    bids: Option<Value<'a>>,
    asks: Option<Value<'a>>,
    update_id: u64,
}

fn book_fields(data: &str) -> Result<BookFields<'_>, ParseError> {
    let mut obj = Object::new(data)?;
    let (mut bids, mut asks, mut u) = (None, None, None);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "b" => bids = Some(v),
            "a" => asks = Some(v),
            "u" => u = v.as_u64(),
            _ => {}
        }
    }
    Ok(BookFields {
        bids,
        asks,
        update_id: u.ok_or(ParseError::Field("u"))?,
    })
}

/// An `orderbook.1` snapshot exactly as Bybit writes it (`type` and `ts` in either order: spot
/// and linear differ; one level a side), read literal by literal; `None` sends anything else to the
/// general parser.
#[inline]
pub(super) fn top_of_book_as_sent(frame: &str) -> Option<(Seq, u64, TickData)> {
    let mut m = Layout::new(frame);
    m.lit(r#"{"topic":"#)?;
    m.str()?;
    // Snapshots only: a delta is not a whole top of book.
    let ts = if m.lit(r#","type":"snapshot","ts":"#).is_some() {
        m.uint()?
    } else {
        m.lit(r#","ts":"#)?;
        let ts = m.uint()?;
        m.lit(r#","type":"snapshot""#)?;
        ts
    };
    m.lit(r#","data":{"s":"#)?;
    m.str()?;
    m.lit(r#","b":"#)?;
    let bid = one_level(&mut m)?;
    m.lit(r#","a":"#)?;
    let ask = one_level(&mut m)?;
    m.lit(r#","u":"#)?;
    let id = m.uint()?;
    m.lit(r#","seq":"#)?;
    m.uint()?;
    m.lit(r#"},"cts":"#)?;
    m.uint()?;
    m.lit("}")?;
    m.end()?;
    Some((Seq { id, prev: None }, ts, TickData::quote(bid, ask)))
}

/// `orderbook.1`: every message is a snapshot of the best level on each side.
fn top_of_book(
    data: &str,
    ts: u64,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let f = book_fields(data)?;
    let quote = TickData::quote(first_level(f.bids)?, first_level(f.asks)?);
    emit(
        Seq {
            id: f.update_id,
            prev: None,
        },
        ts,
        quote,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// orderbook.1 as Bybit sends it, linear (`type` before `ts`) and spot (after), takes the
    /// as-sent path; with whitespace it takes the general one; both give the same tick.
    #[test]
    fn top_of_book_as_sent_and_otherwise_parse_the_same() {
        let linear = r#"{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],"u":18521288,"seq":7961638724},"cts":1672304484976}"#;
        let spot = linear.replace(
            r#""type":"snapshot","ts":1672304484978"#,
            r#""ts":1672304484978,"type":"snapshot""#,
        );
        let want = (
            Seq {
                id: 18521288,
                prev: None,
            },
            1672304484978,
            TickData::Quote {
                bid: 16493.5,
                bid_qty: 0.006,
                ask: 16611.0,
                ask_qty: 0.029,
            },
        );
        for sent in [linear.to_string(), spot] {
            assert_eq!(top_of_book_as_sent(&sent), Some(want), "{sent}");
            let spaced = sent.replace(',', ", ");
            assert!(top_of_book_as_sent(&spaced).is_none());
            let mut general = vec![];
            parse_data(StreamKind::BookTicker, &spaced, &mut |s, ts, t| {
                general.push((s, ts, t))
            })
            .unwrap();
            assert_eq!(general, vec![want], "{spaced}");
        }
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/bybit/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Classifies a fixture as data and parses it as `kind`.
    fn ticks(name: &str, kind: StreamKind) -> (String, Vec<(Seq, TickData)>) {
        let text = fixture(name);
        let Frame::Data { stream, data } = classify(&text).unwrap() else {
            panic!("{name}: not data");
        };
        let mut out = vec![];
        parse_data(kind, data, &mut |s, _, t| out.push((s, t))).unwrap();
        (stream.topic.to_string(), out)
    }

    #[test]
    fn stream_names_are_validated() {
        let d = parse_stream(Venue::BybitLinear, "orderbook.50.BTCUSDT").unwrap();
        assert_eq!(
            (d.kind, d.symbol.as_str(), d.channel.as_str()),
            (
                StreamKind::OrderBook { levels: 50 },
                "BTCUSDT",
                "orderbook.50"
            )
        );
        assert_eq!(
            parse_stream(Venue::BybitSpot, "orderbook.1.ETHUSDT")
                .unwrap()
                .kind,
            StreamKind::BookTicker
        );
        for bad in [
            "orderbook.25.BTCUSDT",
            "publicTrade.btcusdt",
            "tickers",
            "kline.1.BTCUSDT",
        ] {
            assert!(parse_stream(Venue::BybitSpot, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscribe_request_matches_the_docs_shape() {
        let req = subscribe_request(
            7,
            ["orderbook.1.BTCUSDT", "publicTrade.BTCUSDT"].into_iter(),
        );
        let v: serde_json::Value = serde_json::from_str(&req).unwrap();
        assert_eq!(v["op"], "subscribe");
        assert_eq!(v["req_id"], "7");
        assert_eq!(v["args"][1], "publicTrade.BTCUSDT");
    }

    #[test]
    fn control_frames_from_the_docs() {
        assert_eq!(classify(&fixture("pong_spot.json")).unwrap(), Frame::Pong);
        assert_eq!(classify(&fixture("pong_linear.json")).unwrap(), Frame::Pong);
        assert!(matches!(
            classify(&fixture("subscribe_success_spot.json")).unwrap(),
            Frame::Ack {
                id: Some(10001),
                ..
            }
        ));
        // The text comes as the venue sent it; shown, its escapes are decoded.
        let failure = fixture("subscribe_failure_args_size.json");
        let Frame::Error { msg, .. } = classify(&failure).unwrap() else {
            panic!("not an error")
        };
        assert!(msg.starts_with("args size"));
        assert_eq!(crate::json::Unescaped(msg).to_string(), "args size >10");
    }

    #[test]
    fn order_book_snapshot_and_delta_from_the_docs() {
        let (topic, snap) = ticks(
            "orderbook_50_snapshot.json",
            StreamKind::OrderBook { levels: 50 },
        );
        assert_eq!(topic, "orderbook.50.BTCUSDT");
        let TickData::Depth(first) = snap[0].1 else {
            panic!("not depth")
        };
        assert!(first.n_bids > 0 && first.n_asks > 0 || snap.len() > 1);
        assert!(snap
            .last()
            .is_some_and(|(_, t)| matches!(t, TickData::Depth(d) if d.last)));
        assert!(snap
            .iter()
            .all(|(s, t)| s.prev.is_none() && matches!(t, TickData::Depth(d) if d.snapshot)));
        let (_, delta) = ticks(
            "orderbook_50_delta.json",
            StreamKind::OrderBook { levels: 50 },
        );
        let (seq, TickData::Depth(d)) = delta[0] else {
            panic!("not depth")
        };
        assert_eq!(seq.prev, Some(seq.id - 1), "deltas chain by u - 1");
        assert_eq!(d.final_update_id, seq.id);
        assert!(!d.snapshot);
    }

    #[test]
    fn trades_and_tickers_from_the_docs() {
        let (topic, trades) = ticks("public_trade.json", StreamKind::AggTrade);
        assert_eq!(topic, "publicTrade.BTCUSDT");
        assert!(!trades.is_empty());
        assert!(trades.iter().all(
            |(_, t)| matches!(t, TickData::Trade { price, qty, .. } if *price > 0.0 && *qty > 0.0)
        ));
        let (_, ticker) = ticks("tickers_linear.json", StreamKind::Ticker);
        let TickData::Mark {
            mark,
            funding_rate,
            next_funding_ms,
            ..
        } = ticker[0].1
        else {
            panic!("not a mark")
        };
        assert!(mark > 0.0 && funding_rate.is_finite() && next_funding_ms > 0);
    }
}
