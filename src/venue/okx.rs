//! OKX v5 public channels.
//!
//! Connections go to `<base>/ws/v5/public` and subscribe with
//! `{"id":"N","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT-SWAP"},…]}`; the
//! venue answers each argument with `{"id":"N","event":"subscribe","arg":{…},"connId":…}` or
//! `{"id":"N","event":"error","code":"60018","msg":…}`. Data: `{"arg":{"channel","instId"},
//! "action":"snapshot"|"update","data":[…]}`. Keep-alive: the client sends the text `ping` and
//! gets `pong`; a connection quiet for 30 s is cut.
//!
//! Streams are configured as `<channel>:<instId>`, e.g. `books:BTC-USDT-SWAP`.

use super::depth::{emit_sides, first_level, Side};
use super::{one_level, Frame, ParseError, Route, Seq, StreamDef, StreamKey, StreamKind};
use crate::json::{unescaped_eq, until_quote, Layout, Object, Reader, Value};
use crate::tick::{DepthChunk, TickData};

/// Validates `<channel>:<instId>`.
pub fn parse_stream(name: &str) -> Result<StreamDef, String> {
    let (channel, inst) = name.split_once(':').ok_or_else(|| {
        format!("stream '{name}' is not '<channel>:<instId>' (e.g. 'books:BTC-USDT-SWAP')")
    })?;
    if inst.is_empty()
        || !inst
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "stream '{name}': '{inst}' is not an OKX instrument id (e.g. 'BTC-USDT-SWAP')"
        ));
    }
    let kind = match channel {
        "bbo-tbt" => StreamKind::BookTicker,
        // Order book channel: "books: 400 depth levels … pushed every 100 ms";
        // "books-l2-tbt: 400 depth levels … pushed tick by tick"; "books50-l2-tbt: 50 depth
        // levels … tick by tick" (snapshot then updates, as `books`); "books5: 5 depth levels,
        // … a snapshot … every 100 ms when there are changes".
        "books" | "books-l2-tbt" => StreamKind::OrderBook { levels: 400 },
        "books50-l2-tbt" => StreamKind::OrderBook { levels: 50 },
        "books5" => StreamKind::PartialDepth {
            levels: 5,
            interval_ms: 100,
        },
        "trades" => StreamKind::AggTrade,
        "funding-rate" => StreamKind::Funding,
        // "Data will be pushed every 200 ms when there are changes in the markPrice, or every
        // 10 seconds when there is no change."
        "mark-price" => StreamKind::MarkPrice {
            interval_ms: 10_000,
        },
        other => {
            return Err(format!(
                "stream '{name}': unsupported channel '{other}' \
                 (supported: bbo-tbt, books5, books, books-l2-tbt, books50-l2-tbt, trades, \
                 funding-rate, mark-price)"
            ))
        }
    };
    Ok(StreamDef::new(
        name.to_string(),
        channel.to_string(),
        kind,
        inst.to_string(),
        Route::Root,
    ))
}

/// `{"id":"N","op":"subscribe","args":[{"channel":"c","instId":"i"},…]}`
pub fn subscribe_request<'a>(id: u64, streams: impl Iterator<Item = &'a str>) -> String {
    let mut out = format!(r#"{{"id":"{id}","op":"subscribe","args":["#);
    for (i, s) in streams.enumerate() {
        let (channel, inst) = s.split_once(':').unwrap_or((s, ""));
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"channel":""#);
        out.push_str(channel);
        out.push_str(r#"","instId":""#);
        out.push_str(inst);
        out.push_str(r#""}"#);
    }
    out.push_str("]}");
    out
}

/// `{"channel":…,"instId":…}`
fn arg_key(arg: &str) -> Result<StreamKey<'_>, ParseError> {
    let mut obj = Object::new(arg)?;
    let (mut channel, mut inst) = (None, None);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "channel" => channel = v.as_str(),
            "instId" => inst = v.as_str(),
            _ => {}
        }
    }
    Ok(StreamKey::pair(
        channel.ok_or(ParseError::Field("channel"))?,
        inst.ok_or(ParseError::Field("instId"))?,
    ))
}

/// Splits a frame into data, an ack, an error, a pong or something unknown.
pub fn classify(text: &str) -> Result<Frame<'_>, ParseError> {
    if text == "pong" {
        return Ok(Frame::Pong);
    }
    if let Some(frame) = data_as_sent(text) {
        return Ok(frame);
    }
    classify_general(text)
}

/// [`classify`] of a frame not as OKX writes its data.
pub(super) fn classify_general(text: &str) -> Result<Frame<'_>, ParseError> {
    let mut obj = Object::new(text)?;
    let (mut arg, mut data, mut event) = (None, false, None);
    let (mut id, mut code, mut msg) = (None, None, None);
    while let Some(key) = obj.key()? {
        match key {
            // Data follows `arg` in every push: the parser reads the frame, `data` included,
            // so it is not scanned here too.
            "data" if event.is_none() => match arg {
                Some(arg) => {
                    return Ok(Frame::Data {
                        stream: arg_key(arg)?,
                        data: text,
                    })
                }
                None => {
                    data = true;
                    obj.skip()?;
                }
            },
            "arg" => {
                if let Value::Object(a) = obj.value()? {
                    arg = Some(a);
                }
            }
            "data" => {
                data = true;
                obj.skip()?;
            }
            "event" => event = obj.value()?.as_str(),
            "id" => id = obj.value()?.as_u64(),
            "code" => code = obj.value()?.as_i64(),
            "msg" => msg = obj.value()?.as_str(),
            _ => obj.skip()?,
        }
    }
    let event_is = |name| event.is_some_and(|e| unescaped_eq(e, name));
    match (event, arg) {
        (None, Some(arg)) if data => Ok(Frame::Data {
            stream: arg_key(arg)?,
            // `action` sits beside `data`: the parser gets the whole frame.
            data: text,
        }),
        // `id` is optional in the request and echoed only when sent: without it, the ack
        // names its stream.
        (Some(_), Some(arg)) if event_is("subscribe") => Ok(Frame::Ack {
            id,
            stream: Some(arg_key(arg)?),
        }),
        (Some(_), _) if event_is("error") => Ok(Frame::Error {
            id,
            code: code.unwrap_or(-1),
            msg: msg.unwrap_or(""),
        }),
        _ => Ok(Frame::Unknown),
    }
}

/// A data frame exactly as OKX writes it, `{"arg":{"channel":"…","instId":"…"},"data":…` or
/// with `"action":"…",` before `data`, is data of that stream: the general path below says the
/// same once it reaches `data`, without scanning `arg` twice. Anything else (other order,
/// whitespace, escapes) takes the general path.
#[inline]
pub(super) fn data_as_sent(text: &str) -> Option<Frame<'_>> {
    let (topic, inst, _, _) = head_as_sent(text)?;
    Some(Frame::Data {
        stream: StreamKey::pair(topic, inst),
        data: text,
    })
}

/// The head of a data frame as OKX writes it, `{"arg":{"channel":"…","instId":"…"}`, maybe
/// `,"action":"…"`, then `,"data":`: the channel, the instrument, whether the action is
/// `snapshot`, and where the `,` before `"data"` is.
#[inline(always)]
fn head_as_sent(text: &str) -> Option<(&str, &str, bool, usize)> {
    let rest = text.strip_prefix(r#"{"arg":{"channel":""#)?;
    let (topic, rest) = until_quote(rest)?;
    let (inst, rest) = until_quote(rest.strip_prefix(r#","instId":""#)?)?;
    let rest = rest.strip_prefix('}')?;
    let (snapshot, rest) = match rest.strip_prefix(r#","action":""#) {
        Some(action) => {
            let (action, rest) = until_quote(action)?;
            (action == "snapshot", rest)
        }
        None => (false, rest),
    };
    let at = text.len() - rest.len();
    rest.starts_with(r#","data":"#)
        .then_some((topic, inst, snapshot, at))
}

/// Parses one data frame of a stream of `kind`: `{"arg":…,"action":…,"data":[…]}`. The frame
/// is read once, in place: the first item of `data` goes to a fixed buffer as it is read and
/// is emitted once the whole frame is read (`action` may follow `data`, and a field sent twice
/// counts as sent last); a `data` of several items is read again then.
pub fn parse_data(
    kind: StreamKind,
    frame: &str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    // The book buffer lives here, built only for books: a payload holding it by value would
    // be moved whole (kilobytes) even when it holds none.
    let mut book_buf;
    let mut payload = Payload {
        kind,
        book: match kind {
            StreamKind::OrderBook { .. } | StreamKind::PartialDepth { .. } => {
                book_buf = BookItem::new();
                Some(&mut book_buf)
            }
            _ => None,
        },
        tick: None,
        items: 0,
        start: None,
    };
    // A head as OKX writes it is read in one go; the fields go on from `data`.
    let (mut r, mut top, mut snapshot) = match head_as_sent(frame) {
        Some((_, _, snapshot, at)) => {
            let (r, top) = Reader::within_object(frame, at);
            (r, top, snapshot)
        }
        None => {
            let mut r = Reader::new(frame);
            let top = r.object()?;
            (r, top, false)
        }
    };
    let mut data = None;
    while let Some(key) = r.key(&mut top)? {
        match key {
            "action" => snapshot = r.str()?.is_some_and(|a| unescaped_eq(a, "snapshot")),
            // Read in place; what it does not accept refuses the frame unless another `data`
            // follows.
            "data" => data = Some(r.attempt(|r| payload.read(r))?),
            _ => r.skip()?,
        }
    }
    r.end()?;
    data.ok_or(ParseError::Field("data"))??;
    payload.emit(snapshot, emit)
}

/// `data` as far as read: its first item's book or tick, how many items it held, and where it
/// starts (to read it again when it held several).
struct Payload<'a, 'b> {
    kind: StreamKind,
    book: Option<&'b mut BookItem<'a>>,
    tick: Option<(Seq, u64, Small)>,
    items: usize,
    start: Option<Reader<'a>>,
}

impl<'a> Payload<'a, '_> {
    /// Reads `data` in place, replacing what an earlier `data` held.
    fn read(&mut self, r: &mut Reader<'a>) -> Result<(), ParseError> {
        self.start = Some(*r);
        self.items = 0;
        let (kind, book, tick, items) =
            (self.kind, &mut self.book, &mut self.tick, &mut self.items);
        read_items(r, &mut |r| {
            *items += 1;
            match book {
                Some(book) => book.read(r),
                None => {
                    *tick = Some(tick_item(kind, r)?);
                    Ok(())
                }
            }
        })
    }

    /// Emits the ticks of the `data` read, now that `action` is known.
    fn emit(
        &self,
        snapshot: bool,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        match (self.items, &self.book, &self.tick, self.start) {
            (0, ..) => Ok(()),
            (1, Some(book), ..) => book.emit(snapshot, self.kind, emit),
            (1, None, Some((seq, ts, tick)), _) => {
                emit(*seq, *ts, tick.tick());
                Ok(())
            }
            (_, _, _, Some(mut r)) => read_items(&mut r, &mut |r| match self.book {
                Some(_) => {
                    let mut book = BookItem::new();
                    book.read(r)?;
                    book.emit(snapshot, self.kind, emit)
                }
                None => {
                    let (seq, ts, tick) = tick_item(self.kind, r)?;
                    emit(seq, ts, tick.tick());
                    Ok(())
                }
            }),
            _ => Err(ParseError::Field("data")),
        }
    }
}

/// Reads `[{…},…]` in place, handing `f` the reader at each item.
#[inline(always)]
fn read_items<'a>(
    r: &mut Reader<'a>,
    f: &mut impl FnMut(&mut Reader<'a>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    if r.peek() != Some(b'[') {
        return Err(ParseError::Field("data"));
    }
    let mut items = r.array()?;
    while r.element(&mut items)? {
        if r.peek() != Some(b'{') {
            return Err(ParseError::Field("data"));
        }
        f(r)?;
    }
    Ok(())
}

/// `books`: `{"asks":[[px,sz,"0",n]],"bids":[…],"ts","checksum","prevSeqId","seqId"}`. An
/// update names its predecessor `prevSeqId`; a snapshot (`prevSeqId` -1) replaces the book.
struct BookItem<'a> {
    asks: Side<'a>,
    bids: Side<'a>,
    ts: u64,
    checksum: i64,
    seq_id: Option<u64>,
    prev: Option<i64>,
}

impl<'a> BookItem<'a> {
    fn new() -> Self {
        BookItem {
            asks: Side::new("asks"),
            bids: Side::new("bids"),
            ts: 0,
            checksum: 0,
            seq_id: None,
            prev: None,
        }
    }

    fn read(&mut self, r: &mut Reader<'a>) -> Result<(), ParseError> {
        self.asks.clear();
        self.bids.clear();
        (self.ts, self.checksum, self.seq_id, self.prev) = (0, 0, None, None);
        let mut obj = r.object()?;
        while let Some(key) = r.key(&mut obj)? {
            match key {
                "asks" => self.asks.read(r)?,
                "bids" => self.bids.read(r)?,
                "ts" => self.ts = r.uint()?.unwrap_or(0),
                "checksum" => self.checksum = r.int()?.unwrap_or(0),
                "seqId" => self.seq_id = r.uint()?,
                "prevSeqId" => self.prev = r.int()?,
                _ => r.skip()?,
            }
        }
        Ok(())
    }

    fn emit(
        &self,
        snapshot: bool,
        kind: StreamKind,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let partial = matches!(kind, StreamKind::PartialDepth { .. });
        let prev = self.prev.and_then(|p| u64::try_from(p).ok());
        // `books5` snapshots name no predecessor; recorded ones without `seqId` are numbered
        // by their time.
        let id = match self.seq_id {
            Some(id) => id,
            None if partial && self.ts > 0 => self.ts,
            None => return Err(ParseError::Field("seqId")),
        };
        let snapshot = snapshot || partial;
        let snapshot = snapshot || prev.is_none();
        let seq = Seq {
            id,
            prev: if snapshot { None } else { prev },
        };
        let head = DepthChunk {
            first_update_id: prev.map_or(id, |p| p + 1),
            final_update_id: id,
            prev_final_update_id: prev.unwrap_or(0),
            snapshot,
            checksum: self.checksum as i32,
            ..DepthChunk::EMPTY
        };
        emit_sides(head, seq, self.ts, [&self.bids, &self.asks], emit)
    }
}

/// An item's tick, kept small until emitted (a [`TickData`] is the size of a depth chunk, and
/// moves as one).
#[derive(Clone, Copy)]
enum Small {
    Quote((f64, f64), (f64, f64)),
    Trade {
        price: f64,
        qty: f64,
        buyer_is_maker: bool,
    },
    Mark {
        mark: f64,
        index: f64,
        funding_rate: f64,
        next_funding_ms: u64,
    },
}

impl Small {
    #[inline(always)]
    fn tick(self) -> TickData {
        match self {
            Small::Quote(bid, ask) => TickData::quote(bid, ask),
            Small::Trade {
                price,
                qty,
                buyer_is_maker,
            } => TickData::Trade {
                price,
                qty,
                buyer_is_maker,
            },
            Small::Mark {
                mark,
                index,
                funding_rate,
                next_funding_ms,
            } => TickData::Mark {
                mark,
                index,
                funding_rate,
                next_funding_ms,
            },
        }
    }
}

/// One item of the kinds with a tick an item.
fn tick_item(kind: StreamKind, r: &mut Reader<'_>) -> Result<(Seq, u64, Small), ParseError> {
    match kind {
        StreamKind::BookTicker => bbo(r),
        StreamKind::AggTrade => trade(r),
        StreamKind::Funding => funding(r),
        StreamKind::MarkPrice { .. } => mark(r),
        _ => Err(ParseError::Field("kind")),
    }
}

/// `bbo-tbt` exactly as OKX writes it (one level a side), read literal by literal; `None`
/// sends anything else to the general parser.
#[inline]
pub(super) fn bbo_as_sent(frame: &str) -> Option<(Seq, u64, TickData)> {
    let mut m = Layout::new(frame);
    m.lit(r#"{"arg":{"channel":"bbo-tbt","instId":"#)?;
    m.str()?;
    m.lit(r#"},"data":[{"asks":"#)?;
    let ask = one_level(&mut m)?;
    m.lit(r#","bids":"#)?;
    let bid = one_level(&mut m)?;
    m.lit(r#","ts":"#)?;
    let ts = m.uint()?;
    m.lit(r#","seqId":"#)?;
    let id = m.uint()?;
    m.lit("}]}")?;
    m.end()?;
    Some((Seq { id, prev: None }, ts, TickData::quote(bid, ask)))
}

/// `bbo-tbt`: `{"asks":[[px,sz,"0",n]],"bids":[…],"ts","seqId"}`.
fn bbo(r: &mut Reader<'_>) -> Result<(Seq, u64, Small), ParseError> {
    let mut obj = r.object()?;
    let (mut asks, mut bids, mut ts, mut seq_id) = (None, None, 0, None);
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "asks" => asks = Some(first_level(r)?),
            "bids" => bids = Some(first_level(r)?),
            "ts" => ts = r.uint()?.unwrap_or(0),
            "seqId" => seq_id = r.uint()?,
            _ => r.skip()?,
        }
    }
    let none = Ok((f64::NAN, 0.0));
    let quote = Small::Quote(bids.unwrap_or(none)?, asks.unwrap_or(none)?);
    let seq = Seq {
        id: seq_id.unwrap_or(ts),
        prev: None,
    };
    Ok((seq, ts, quote))
}

/// `trades`: `{"instId","tradeId","px","sz","side","ts","count"}`.
fn trade(r: &mut Reader<'_>) -> Result<(Seq, u64, Small), ParseError> {
    let mut obj = r.object()?;
    let (mut id, mut px, mut sz, mut side, mut ts) = (None, None, None, None, 0);
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "tradeId" => id = r.uint()?,
            "px" => px = r.decimal()?,
            "sz" => sz = r.decimal()?,
            "side" => side = r.str()?,
            "ts" => ts = r.uint()?.unwrap_or(0),
            _ => r.skip()?,
        }
    }
    // OKX trade ids increase but aggregate (`count`): not a chain.
    let seq = Seq {
        id: id.ok_or(ParseError::Field("tradeId"))?,
        prev: None,
    };
    let tick = Small::Trade {
        price: px.ok_or(ParseError::Field("px"))?,
        qty: sz.ok_or(ParseError::Field("sz"))?,
        // `side` is the taker's: a taker sell hits a resting buyer.
        buyer_is_maker: unescaped_eq(side.ok_or(ParseError::Field("side"))?, "sell"),
    };
    Ok((seq, ts, tick))
}

/// `funding-rate`: `{"fundingRate","fundingTime","nextFundingTime","ts",…}`.
fn funding(r: &mut Reader<'_>) -> Result<(Seq, u64, Small), ParseError> {
    let mut obj = r.object()?;
    let (mut rate, mut time, mut ts) = (None, None, 0);
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "fundingRate" => rate = r.decimal()?,
            "fundingTime" => time = r.uint()?,
            "ts" => ts = r.uint()?.unwrap_or(0),
            _ => r.skip()?,
        }
    }
    let tick = Small::Mark {
        mark: f64::NAN,
        index: f64::NAN,
        funding_rate: rate.ok_or(ParseError::Field("fundingRate"))?,
        next_funding_ms: time.unwrap_or(0),
    };
    // Numbered by its time; without one, by nothing (delivered as it comes).
    let seq = match ts {
        0 => Seq::UNNUMBERED,
        ts => Seq { id: ts, prev: None },
    };
    Ok((seq, ts, tick))
}

/// `mark-price`: `{"instType","instId","markPx","ts"}`.
fn mark(r: &mut Reader<'_>) -> Result<(Seq, u64, Small), ParseError> {
    let mut obj = r.object()?;
    let (mut px, mut ts) = (None, None);
    while let Some(key) = r.key(&mut obj)? {
        match key {
            "markPx" => px = r.decimal()?,
            "ts" => ts = r.uint()?,
            _ => r.skip()?,
        }
    }
    let ts = ts.ok_or(ParseError::Field("ts"))?;
    let tick = Small::Mark {
        mark: px.ok_or(ParseError::Field("markPx"))?,
        index: f64::NAN,
        funding_rate: f64::NAN,
        next_funding_ms: 0,
    };
    Ok((Seq { id: ts, prev: None }, ts, tick))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented bbo-tbt as OKX sends it takes the as-sent path; pretty-printed it takes
    /// the general one; both give the same tick. A second level or an empty side falls back.
    #[test]
    fn bbo_as_sent_and_otherwise_parse_the_same() {
        let pretty = fixture("bbo_tbt.json");
        let sent = crate::json::compact(&pretty);
        assert!(bbo_as_sent(&pretty).is_none());
        let fast = bbo_as_sent(&sent).expect("as sent");
        let mut general = vec![];
        parse_data(StreamKind::BookTicker, &pretty, &mut |s, ts, t| {
            general.push((s, ts, t))
        })
        .unwrap();
        assert_eq!(general, vec![fast]);
        assert_eq!(
            fast.2,
            TickData::Quote {
                bid: 111.05,
                bid_qty: 57745.0,
                ask: 111.06,
                ask_qty: 55154.0
            }
        );
        for other in [
            sent.replace(r#""asks":[["111.06","55154","0","2"]]"#, r#""asks":[]"#),
            sent.replace(
                r#"["111.06","55154","0","2"]"#,
                r#"["111.06","55154","0","2"],["111.07","1","0","1"]"#,
            ),
        ] {
            assert!(bbo_as_sent(&other).is_none(), "{other}");
            let mut n = 0;
            parse_data(StreamKind::BookTicker, &other, &mut |_, _, _| n += 1).unwrap();
            assert_eq!(n, 1, "{other}");
        }
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/okx/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn ticks(name: &str, kind: StreamKind) -> (String, Vec<(Seq, TickData)>) {
        let text = fixture(name);
        let Frame::Data { stream, data } = classify(&text).unwrap() else {
            panic!("{name}: not data");
        };
        let mut out = vec![];
        parse_data(kind, data, &mut |s, _, t| out.push((s, t))).unwrap();
        (format!("{}:{}", stream.topic, stream.inst), out)
    }

    #[test]
    fn stream_names_are_validated_and_keys_match_them() {
        let d = parse_stream("books:BTC-USDT-SWAP").unwrap();
        assert_eq!(
            (d.kind, d.symbol.as_str(), d.channel.as_str()),
            (
                StreamKind::OrderBook { levels: 400 },
                "BTC-USDT-SWAP",
                "books"
            )
        );
        let key = StreamKey::pair("books", "BTC-USDT-SWAP");
        assert!(key.matches("books:BTC-USDT-SWAP"));
        assert!(!key.matches("books:BTC-USDT"));
        assert!(!key.matches("bbo-tbt:BTC-USDT-SWAP"));
        for bad in ["books", "books:btc-usdt", "books10:BTC-USDT", ":BTC-USDT"] {
            assert!(parse_stream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscribe_request_matches_the_docs_shape() {
        let req = subscribe_request(3, ["books:BTC-USDT", "trades:BTC-USDT-SWAP"].into_iter());
        let v: serde_json::Value = serde_json::from_str(&req).unwrap();
        assert_eq!(v["op"], "subscribe");
        assert_eq!(v["id"], "3");
        assert_eq!(v["args"][0]["channel"], "books");
        assert_eq!(v["args"][1]["instId"], "BTC-USDT-SWAP");
    }

    #[test]
    fn control_frames_from_the_docs() {
        assert_eq!(classify("pong").unwrap(), Frame::Pong);
        assert!(matches!(
            classify(&fixture("subscribe_event.json")).unwrap(),
            Frame::Ack {
                id: Some(1512),
                stream: Some(StreamKey { topic: "books", .. })
            }
        ));
        assert!(matches!(
            classify(&fixture("error_event.json")).unwrap(),
            Frame::Error { code: 60012, .. }
        ));
    }

    #[test]
    fn books_snapshot_and_update_from_the_docs() {
        let (stream, snap) = ticks("books_snapshot.json", StreamKind::OrderBook { levels: 400 });
        assert!(stream.starts_with("books:"), "{stream}");
        assert!(snap
            .iter()
            .all(|(s, t)| s.prev.is_none() && matches!(t, TickData::Depth(d) if d.snapshot)));
        let (_, update) = ticks("books_update.json", StreamKind::OrderBook { levels: 400 });
        let (seq, TickData::Depth(d)) = update[0] else {
            panic!("not depth")
        };
        assert!(seq.prev.is_some_and(|p| p < seq.id), "{seq:?}");
        assert!(!d.snapshot);
        assert_eq!(d.prev_final_update_id, seq.prev.unwrap());
    }

    #[test]
    fn bbo_trades_funding_and_mark_from_the_docs() {
        let (_, bbo) = ticks("bbo_tbt.json", StreamKind::BookTicker);
        assert!(matches!(bbo[0].1, TickData::Quote { bid, ask, .. } if bid > 0.0 && ask >= bid));
        let (_, trades) = ticks("trades.json", StreamKind::AggTrade);
        assert!(matches!(trades[0].1, TickData::Trade { price, .. } if price > 0.0));
        let (_, funding) = ticks("funding_rate.json", StreamKind::Funding);
        assert!(
            matches!(funding[0].1, TickData::Mark { funding_rate, .. } if funding_rate.is_finite())
        );
        let (_, mark) = ticks(
            "mark_price.json",
            StreamKind::MarkPrice {
                interval_ms: 10_000,
            },
        );
        assert!(matches!(mark[0].1, TickData::Mark { mark, .. } if mark > 0.0));
    }
}
