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

use super::{
    emit_depth, first_level, one_level, Frame, ParseError, Route, Seq, StreamDef, StreamKey,
    StreamKind,
};
use crate::json::{Array, Layout, Object, Value};
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
        "books" => StreamKind::OrderBook { levels: 400 },
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
                 (supported: bbo-tbt, books, trades, funding-rate, mark-price)"
            ))
        }
    };
    Ok(StreamDef {
        name: name.to_string(),
        channel: channel.to_string(),
        kind,
        symbol: inst.to_string(),
        route: Route::Root,
    })
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
    Ok(StreamKey {
        topic: channel.ok_or(ParseError::Field("channel"))?,
        inst: inst.ok_or(ParseError::Field("instId"))?,
    })
}

/// Splits a frame into data, an ack, an error, a pong or something unknown.
pub fn classify(text: &str) -> Result<Frame<'_>, ParseError> {
    if text == "pong" {
        return Ok(Frame::Pong);
    }
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
    match (event, arg) {
        (None, Some(arg)) if data => Ok(Frame::Data {
            stream: arg_key(arg)?,
            // `action` sits beside `data`: the parser gets the whole frame.
            data: text,
        }),
        (Some("subscribe"), Some(arg)) => match id {
            Some(id) => Ok(Frame::Ack {
                id,
                stream: Some(arg_key(arg)?),
            }),
            None => Ok(Frame::Unknown),
        },
        (Some("error"), _) => Ok(Frame::Error {
            id,
            code: code.unwrap_or(-1),
            msg: msg.unwrap_or(""),
        }),
        _ => Ok(Frame::Unknown),
    }
}

/// Parses one data frame of a stream of `kind`: `{"arg":…,"action":…,"data":[…]}`.
pub fn parse_data(
    kind: StreamKind,
    frame: &str,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let mut obj = Object::new(frame)?;
    let (mut snapshot, mut data) = (false, None);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "action" => snapshot = v.as_str() == Some("snapshot"),
            "data" => data = Some(v),
            _ => {}
        }
    }
    let Some(Value::Array(data)) = data else {
        return Err(ParseError::Field("data"));
    };
    let mut items = Array::new(data)?;
    while let Some(item) = items.next_value()? {
        let Value::Object(item) = item else {
            return Err(ParseError::Field("data"));
        };
        match kind {
            StreamKind::OrderBook { .. } => book(item, snapshot, emit)?,
            StreamKind::BookTicker => bbo(item, emit)?,
            StreamKind::AggTrade => trade(item, emit)?,
            StreamKind::Funding => funding(item, emit)?,
            StreamKind::MarkPrice { .. } => mark(item, emit)?,
            _ => return Err(ParseError::Field("kind")),
        }
    }
    Ok(())
}

/// `books`: `{"asks":[[px,sz,"0",n]],"bids":[…],"ts","checksum","prevSeqId","seqId"}`. An
/// update names its predecessor `prevSeqId`; a snapshot (`prevSeqId` -1) replaces the book.
fn book(
    item: &str,
    snapshot: bool,
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let mut obj = Object::new(item)?;
    let (mut asks, mut bids, mut ts, mut checksum) = (None, None, 0, 0);
    let (mut seq_id, mut prev) = (None, None);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "asks" => asks = Some(v),
            "bids" => bids = Some(v),
            "ts" => ts = v.as_u64().unwrap_or(0),
            "checksum" => checksum = v.as_i64().unwrap_or(0),
            "seqId" => seq_id = v.as_u64(),
            "prevSeqId" => prev = v.as_i64(),
            _ => {}
        }
    }
    let id = seq_id.ok_or(ParseError::Field("seqId"))?;
    let prev = prev.and_then(|p| u64::try_from(p).ok());
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
        checksum: checksum as i32,
        ..DepthChunk::EMPTY
    };
    emit_depth(head, seq, ts, [(bids, "bids"), (asks, "asks")], emit)
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
fn bbo(item: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut obj = Object::new(item)?;
    let (mut asks, mut bids, mut ts, mut seq_id) = (None, None, 0, None);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "asks" => asks = Some(v),
            "bids" => bids = Some(v),
            "ts" => ts = v.as_u64().unwrap_or(0),
            "seqId" => seq_id = v.as_u64(),
            _ => {}
        }
    }
    let quote = TickData::quote(first_level(bids)?, first_level(asks)?);
    let seq = Seq {
        id: seq_id.unwrap_or(ts),
        prev: None,
    };
    emit(seq, ts, quote);
    Ok(())
}

/// `trades`: `{"instId","tradeId","px","sz","side","ts","count"}`.
fn trade(item: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut obj = Object::new(item)?;
    let (mut id, mut px, mut sz, mut side, mut ts) = (None, None, None, None, 0);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "tradeId" => id = v.as_u64(),
            "px" => px = v.as_f64(),
            "sz" => sz = v.as_f64(),
            "side" => side = v.as_str(),
            "ts" => ts = v.as_u64().unwrap_or(0),
            _ => {}
        }
    }
    // OKX trade ids increase but aggregate (`count`): not a chain.
    let seq = Seq {
        id: id.ok_or(ParseError::Field("tradeId"))?,
        prev: None,
    };
    let tick = TickData::Trade {
        price: px.ok_or(ParseError::Field("px"))?,
        qty: sz.ok_or(ParseError::Field("sz"))?,
        // `side` is the taker's: a taker sell hits a resting buyer.
        buyer_is_maker: side.ok_or(ParseError::Field("side"))? == "sell",
    };
    emit(seq, ts, tick);
    Ok(())
}

/// `funding-rate`: `{"fundingRate","fundingTime","nextFundingTime","ts",…}`.
fn funding(item: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut obj = Object::new(item)?;
    let (mut rate, mut time, mut ts) = (None, None, 0);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "fundingRate" => rate = v.as_f64(),
            "fundingTime" => time = v.as_u64(),
            "ts" => ts = v.as_u64().unwrap_or(0),
            _ => {}
        }
    }
    let tick = TickData::Mark {
        mark: f64::NAN,
        index: f64::NAN,
        funding_rate: rate.ok_or(ParseError::Field("fundingRate"))?,
        next_funding_ms: time.unwrap_or(0),
    };
    emit(Seq { id: ts, prev: None }, ts, tick);
    Ok(())
}

/// `mark-price`: `{"instType","instId","markPx","ts"}`.
fn mark(item: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
    let mut obj = Object::new(item)?;
    let (mut px, mut ts) = (None, None);
    while let Some((key, v)) = obj.next_field()? {
        match key {
            "markPx" => px = v.as_f64(),
            "ts" => ts = v.as_u64(),
            _ => {}
        }
    }
    let ts = ts.ok_or(ParseError::Field("ts"))?;
    let tick = TickData::Mark {
        mark: px.ok_or(ParseError::Field("markPx"))?,
        index: f64::NAN,
        funding_rate: f64::NAN,
        next_funding_ms: 0,
    };
    emit(Seq { id: ts, prev: None }, ts, tick);
    Ok(())
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
        let key = StreamKey {
            topic: "books",
            inst: "BTC-USDT-SWAP",
        };
        assert!(key.matches("books:BTC-USDT-SWAP"));
        assert!(!key.matches("books:BTC-USDT"));
        assert!(!key.matches("bbo-tbt:BTC-USDT-SWAP"));
        for bad in ["books", "books:btc-usdt", "books5:BTC-USDT", ":BTC-USDT"] {
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
                id: 1512,
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
