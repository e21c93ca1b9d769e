//! The slice-then-scan parsers as they were before the in-place reader (e633365), kept
//! verbatim as the reference: the parsers must give the same ticks on every message the old
//! ones took, and refuse every message they refused (see `equivalence.rs`).

mod equivalence;
mod traffic;

use super::{first_level, ParseError, Seq, StreamKind};
use crate::json::{Array, Object, Value};
use crate::tick::{DepthChunk, Level, TickData, DEPTH_CHUNK_LEVELS};

/// `bybit::parse_data` and its helpers as they were.
pub(super) mod old_bybit {
    use super::*;

    /// Parses one data frame (the whole frame: `type` and `ts` sit beside `data`) of a stream of
    /// `kind`.
    pub fn parse_data(
        kind: StreamKind,
        frame: &str,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let mut obj = Object::new(frame)?;
        let (mut snapshot, mut ts, mut data) = (false, 0, None);
        while let Some((key, v)) = obj.next_field()? {
            match key {
                "type" => snapshot = v.as_str() == Some("snapshot"),
                "ts" => ts = v.as_u64().unwrap_or(0),
                "data" => data = Some(v),
                _ => {}
            }
        }
        let data = match data {
            Some(Value::Object(d) | Value::Array(d)) => d,
            _ => return Err(ParseError::Field("data")),
        };
        match kind {
            StreamKind::BookTicker => top_of_book(data, ts, emit),
            StreamKind::OrderBook { .. } => order_book(data, snapshot, ts, emit),
            StreamKind::AggTrade => trades(data, emit),
            StreamKind::Ticker => ticker(data, ts, emit),
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

    /// `orderbook.50`: a snapshot, then deltas whose `u` goes up by one each. A snapshot names no
    /// predecessor (it replaces the book; `u` = 1 is one sent after a restart of the venue's
    /// service).
    fn order_book(
        data: &str,
        snapshot: bool,
        ts: u64,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let f = book_fields(data)?;
        let snapshot = snapshot || f.update_id == 1;
        let seq = Seq {
            id: f.update_id,
            prev: if snapshot {
                None
            } else {
                f.update_id.checked_sub(1)
            },
        };
        let head = DepthChunk {
            first_update_id: f.update_id,
            final_update_id: f.update_id,
            prev_final_update_id: f.update_id.saturating_sub(1),
            snapshot,
            ..DepthChunk::EMPTY
        };
        emit_depth(head, seq, ts, [(f.bids, "b"), (f.asks, "a")], emit)
    }

    /// `publicTrade`: `[{"T","s","S":"Buy"|"Sell","v","p","i","BT","seq"}]`, oldest first. The
    /// message is numbered by its first trade's `seq` (the cross sequence), or its time.
    fn trades(data: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
        let mut list = Array::new(data)?;
        while let Some(item) = list.next_value()? {
            let Value::Object(t) = item else {
                return Err(ParseError::Field("data"));
            };
            let mut obj = Object::new(t)?;
            let (mut time, mut side, mut qty, mut price, mut seq) = (None, None, None, None, None);
            while let Some((key, v)) = obj.next_field()? {
                match key {
                    "T" => time = v.as_u64(),
                    "S" => side = v.as_str(),
                    "v" => qty = v.as_f64(),
                    "p" => price = v.as_f64(),
                    "seq" => seq = v.as_u64(),
                    _ => {}
                }
            }
            let time = time.ok_or(ParseError::Field("T"))?;
            let seq = Seq {
                id: seq.unwrap_or(time),
                prev: None,
            };
            let tick = TickData::Trade {
                price: price.ok_or(ParseError::Field("p"))?,
                qty: qty.ok_or(ParseError::Field("v"))?,
                // The taker sold into a bid: the buyer was the maker.
                buyer_is_maker: side.ok_or(ParseError::Field("S"))? == "Sell",
            };
            emit(seq, time, tick);
        }
        Ok(())
    }

    /// `tickers` (linear): mark and index price, funding rate, next funding time. A delta carries
    /// only the fields that changed: the others are NaN (0 for the time).
    fn ticker(
        data: &str,
        ts: u64,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let mut obj = Object::new(data)?;
        let (mut mark, mut index, mut funding, mut next) = (None, None, None, None);
        while let Some((key, v)) = obj.next_field()? {
            match key {
                "markPrice" => mark = v.as_f64(),
                "indexPrice" => index = v.as_f64(),
                "fundingRate" => funding = v.as_f64(),
                "nextFundingTime" => next = v.as_u64(),
                _ => {}
            }
        }
        let tick = TickData::Mark {
            mark: mark.unwrap_or(f64::NAN),
            index: index.unwrap_or(f64::NAN),
            funding_rate: funding.unwrap_or(f64::NAN),
            next_funding_ms: next.unwrap_or(0),
        };
        // Numbered by the frame's time: both connections see the same update with the same `ts`.
        emit(Seq { id: ts, prev: None }, ts, tick);
        Ok(())
    }
}

/// `okx::parse_data` and its helpers as they were.
pub(super) mod old_okx {
    use super::*;

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
}

/// `binance::parse_data`'s depth as it was.
pub(super) mod old_binance {
    use super::*;

    fn req<T>(v: Option<T>, field: &'static str) -> Result<T, ParseError> {
        v.ok_or(ParseError::Field(field))
    }

    pub fn depth(data: &str, emit: &mut impl FnMut(Seq, u64, TickData)) -> Result<(), ParseError> {
        let mut obj = Object::new(data)?;
        let (mut first, mut last, mut prev, mut e_time) = (None, None, None, 0);
        let (mut bids, mut asks) = (None, None);
        while let Some(key) = obj.key()? {
            match key {
                "U" => first = Some(obj.uint()?),
                "u" => last = Some(obj.uint()?),
                "pu" => prev = Some(obj.uint()?),
                "E" => e_time = obj.uint()?,
                "b" => bids = Some(obj.value()?),
                "a" => asks = Some(obj.value()?),
                _ => obj.skip()?,
            }
        }
        let first = req(first, "U")?;
        let last = req(last, "u")?;
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
        emit_depth(head, seq, e_time, [(bids, "b"), (asks, "a")], emit)
    }
}

/// Digits after the decimal point of a number as written.
fn decimals(v: Option<Value<'_>>) -> u8 {
    match v {
        Some(Value::Str(s) | Value::Num(s)) => s
            .split_once('.')
            .map_or(0, |(_, frac)| frac.len().min(18) as u8),
        _ => 0,
    }
}

/// Cuts an event's bid and ask levels into [`DepthChunk`]s, emitting each as it fills and the
/// last one marked `last`. Each level is an array whose first two values are price and size
/// (OKX's extra values are ignored). `head` carries the event's ids, flags and checksum.
pub(crate) fn emit_depth(
    head: DepthChunk,
    seq: Seq,
    e_time: u64,
    sides: [(Option<Value<'_>>, &'static str); 2],
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    let mut chunk = head;
    for (side, (value, field)) in sides.into_iter().enumerate() {
        let levels = match value {
            Some(Value::Array(levels)) => levels,
            // A side the event does not touch.
            None => continue,
            Some(_) => return Err(ParseError::Field(field)),
        };
        let mut levels = Array::new(levels)?;
        while let Some(level) = levels.next_value()? {
            let Value::Array(pair) = level else {
                return Err(ParseError::Field(field));
            };
            let mut pair = Array::new(pair)?;
            let (price, qty) = (pair.next_value()?, pair.next_value()?);
            if chunk.checksum != 0 {
                chunk.price_dp = chunk.price_dp.max(decimals(price));
                chunk.qty_dp = chunk.qty_dp.max(decimals(qty));
            }
            let price = price.and_then(Value::as_f64);
            let qty = qty.and_then(Value::as_f64);
            let (Some(price), Some(qty)) = (price, qty) else {
                return Err(ParseError::Field(field));
            };
            let used = (chunk.n_bids + chunk.n_asks) as usize;
            if used == DEPTH_CHUNK_LEVELS {
                emit(seq, e_time, TickData::Depth(chunk));
                chunk.part += 1;
                chunk.n_bids = 0;
                chunk.n_asks = 0;
            }
            let used = (chunk.n_bids + chunk.n_asks) as usize;
            chunk.levels[used] = Level { price, qty };
            if side == 0 {
                chunk.n_bids += 1;
            } else {
                chunk.n_asks += 1;
            }
        }
    }
    chunk.last = true;
    emit(seq, e_time, TickData::Depth(chunk));
    Ok(())
}
