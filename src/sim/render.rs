//! Wire formats of the three built-in venues (a venue defined in config is
//! built from its definition in `defined.rs`): every data message the simulator sends
//! is built here from plain values, so that the generator (once per event)
//! and a connection (subscription snapshots, fault variants) render the same
//! bytes. `tests/fixtures/README.md` documents each format and the
//! documentation page it follows.

use std::fmt::Write as _;

use super::base::Kind;
use super::book::Levels;
use super::config::SimVenue;
use super::format::{fixed, qty};
use super::rng::mix;
use super::symbol::SymInfo;

/// Number of orders shown at a level (OKX's fourth field): deterministic in
/// the quantity, 0 for a removed level.
fn orders_at(q: u64) -> u64 {
    if q == 0 {
        0
    } else {
        1 + q % 7
    }
}

// ---------------------------------------------------------------------------
// Order book messages

/// One order book message before rendering: a top-of-book quote
/// ([`Kind::BookTicker`]: Binance `bookTicker`, Bybit `orderbook.1`, OKX
/// `bbo-tbt`) or a depth message ([`Kind::Depth`]: Binance diff depth, Bybit
/// `orderbook.50`, OKX `books`). Kept with the event so that a connection can
/// render a faulty variant of exactly this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BookMsg {
    /// `BookTicker` or `Depth`.
    pub kind: Kind,
    /// Full snapshot (Bybit `type:"snapshot"`, OKX `action:"snapshot"`).
    pub snapshot: bool,
    /// Binance `U` (first update id of a diff).
    pub first_id: u64,
    /// Binance `u`, Bybit `u`, OKX `seqId`.
    pub last_id: u64,
    /// Binance `pu`, OKX `prevSeqId` (`None` renders OKX's `-1`).
    pub prev_id: Option<u64>,
    /// Bybit `seq` / `cs` (the market's cross sequence).
    pub cross_seq: u64,
    /// Event / push time (ms).
    pub ts_ms: u64,
    /// Transaction / matching engine time (ms): Binance `T`, Bybit `cts`.
    pub t_ms: u64,
    /// Bid levels, best first (quantity 0 removes a level in a diff).
    pub bids: Levels,
    /// Ask levels, best first.
    pub asks: Levels,
    /// OKX `checksum`.
    pub checksum: i32,
    /// The true best ask after this message (for `BookFault::CrossBook`).
    pub best_ask: Option<i64>,
}

fn levels2(out: &mut String, levels: &[(i64, u64)], decimals: u32) {
    out.push('[');
    for (i, &(p, q)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"["{}","{}"]"#, fixed(p, decimals), qty(q));
    }
    out.push(']');
}

fn levels4(out: &mut String, levels: &[(i64, u64)], decimals: u32) {
    out.push('[');
    for (i, &(p, q)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"["{}","{}","0","{}"]"#,
            fixed(p, decimals),
            qty(q),
            orders_at(q)
        );
    }
    out.push(']');
}

/// Renders a book message in the venue's format (`spot` picks the OKX spot
/// instrument; ignored elsewhere).
pub(crate) fn book(venue: SimVenue, s: &SymInfo, m: &BookMsg, spot: bool) -> String {
    let d = s.decimals;
    let mut out = String::with_capacity(128 + 24 * (m.bids.len() + m.asks.len()));
    match (venue, m.kind) {
        (SimVenue::Binance, Kind::BookTicker) => {
            let (b, bq) = m.bids.first().copied().unwrap_or((0, 0));
            let (a, aq) = m.asks.first().copied().unwrap_or((0, 0));
            let _ = write!(
                out,
                r#"{{"e":"bookTicker","u":{},"E":{},"T":{},"s":"{}","b":"{}","B":"{}","a":"{}","A":"{}"}}"#,
                m.last_id,
                m.ts_ms,
                m.t_ms,
                s.name,
                fixed(b, d),
                qty(bq),
                fixed(a, d),
                qty(aq),
            );
        }
        (SimVenue::Binance, _) => {
            let _ = write!(
                out,
                r#"{{"e":"depthUpdate","E":{},"T":{},"s":"{}","U":{},"u":{},"pu":{},"b":"#,
                m.ts_ms,
                m.t_ms,
                s.name,
                m.first_id,
                m.last_id,
                m.prev_id.unwrap_or(0),
            );
            levels2(&mut out, &m.bids, d);
            out.push_str(r#","a":"#);
            levels2(&mut out, &m.asks, d);
            out.push('}');
        }
        (SimVenue::BybitSpot | SimVenue::BybitLinear, kind) => {
            let depth = if kind == Kind::BookTicker { 1 } else { 50 };
            let ty = if m.snapshot { "snapshot" } else { "delta" };
            // The venue puts `ts` before `type` on spot, after it on linear.
            if venue == SimVenue::BybitSpot {
                let _ = write!(
                    out,
                    r#"{{"topic":"orderbook.{depth}.{}","ts":{},"type":"{ty}","data":{{"s":"{}","b":"#,
                    s.name, m.ts_ms, s.name
                );
            } else {
                let _ = write!(
                    out,
                    r#"{{"topic":"orderbook.{depth}.{}","type":"{ty}","ts":{},"data":{{"s":"{}","b":"#,
                    s.name, m.ts_ms, s.name
                );
            }
            levels2(&mut out, &m.bids, d);
            out.push_str(r#","a":"#);
            levels2(&mut out, &m.asks, d);
            let _ = write!(
                out,
                r#","u":{},"seq":{}}},"cts":{}}}"#,
                m.last_id, m.cross_seq, m.t_ms
            );
        }
        (SimVenue::Okx, Kind::BookTicker) => {
            let _ = write!(
                out,
                r#"{{"arg":{{"channel":"bbo-tbt","instId":"{}"}},"data":[{{"asks":"#,
                s.okx_inst(spot)
            );
            levels4(&mut out, &m.asks, d);
            out.push_str(r#","bids":"#);
            levels4(&mut out, &m.bids, d);
            let _ = write!(out, r#","ts":"{}","seqId":{}}}]}}"#, m.ts_ms, m.last_id);
        }
        (SimVenue::Okx, _) => {
            let action = if m.snapshot { "snapshot" } else { "update" };
            let _ = write!(
                out,
                r#"{{"arg":{{"channel":"books","instId":"{}"}},"action":"{action}","data":[{{"asks":"#,
                s.okx_inst(spot)
            );
            levels4(&mut out, &m.asks, d);
            out.push_str(r#","bids":"#);
            levels4(&mut out, &m.bids, d);
            let prev = m.prev_id.map_or(-1, |p| p as i64);
            let _ = write!(
                out,
                r#","ts":"{}","checksum":{},"prevSeqId":{},"seqId":{}}}]}}"#,
                m.ts_ms, m.checksum, prev, m.last_id
            );
        }
        // Built from its definition by `defined.rs`.
        (SimVenue::Defined(_), _) => {}
    }
    out
}

// ---------------------------------------------------------------------------
// Trades

/// One trade before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TradeMsg {
    /// Binance aggregate trade id, Bybit/OKX trade id.
    pub id: u64,
    /// Binance first / last trade id of the aggregate.
    pub first: u64,
    pub last: u64,
    pub price: i64,
    pub qty: u64,
    /// Taker was the buyer.
    pub taker_buy: bool,
    /// Price moved up with this trade (Bybit `L`).
    pub up: bool,
    pub ts_ms: u64,
    pub t_ms: u64,
    /// Market cross sequence (Bybit `seq`, OKX `seqId`).
    pub cross_seq: u64,
}

/// Bybit linear trade ids are UUIDs; the simulator derives one from the
/// numeric id (spot ids stay numeric strings, as on the venue).
pub(crate) fn uuid_of(n: u64) -> String {
    let h = mix(n ^ 0x7A3D_5EED);
    format!(
        "{:08x}-{:04x}-5{:03x}-9{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h >> 4) & 0xFFF,
        n & 0xFFF,
        n & 0xFFFF_FFFF_FFFF
    )
}

/// Renders a trade message in the venue's format.
pub(crate) fn trade(venue: SimVenue, s: &SymInfo, t: &TradeMsg, spot: bool) -> String {
    let d = s.decimals;
    match venue {
        SimVenue::Binance => format!(
            r#"{{"e":"aggTrade","E":{},"s":"{}","a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{},"m":{}}}"#,
            t.ts_ms,
            s.name,
            t.id,
            fixed(t.price, d),
            qty(t.qty),
            t.first,
            t.last,
            t.t_ms,
            !t.taker_buy,
        ),
        SimVenue::BybitSpot | SimVenue::BybitLinear => {
            let side = if t.taker_buy { "Buy" } else { "Sell" };
            let tick = if venue == SimVenue::BybitLinear {
                if t.up {
                    r#""L":"PlusTick","#
                } else {
                    r#""L":"MinusTick","#
                }
            } else {
                ""
            };
            let id = if venue == SimVenue::BybitLinear {
                uuid_of(t.id)
            } else {
                t.id.to_string()
            };
            format!(
                r#"{{"topic":"publicTrade.{}","type":"snapshot","ts":{},"data":[{{"T":{},"s":"{}","S":"{side}","v":"{}","p":"{}",{tick}"i":"{id}","BT":false,"seq":{}}}]}}"#,
                s.name,
                t.ts_ms,
                t.t_ms,
                s.name,
                qty(t.qty),
                fixed(t.price, d),
                t.cross_seq,
            )
        }
        SimVenue::Okx => {
            let inst = s.okx_inst(spot);
            let side = if t.taker_buy { "buy" } else { "sell" };
            format!(
                r#"{{"arg":{{"channel":"trades","instId":"{inst}"}},"data":[{{"instId":"{inst}","tradeId":"{}","px":"{}","sz":"{}","side":"{side}","ts":"{}","count":"{}","source":"0","seqId":{}}}]}}"#,
                t.id,
                fixed(t.price, d),
                qty(t.qty),
                t.t_ms,
                t.last - t.first + 1,
                t.cross_seq,
            )
        }
        // Built from its definition by `defined.rs`.
        SimVenue::Defined(_) => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Mark price, tickers, funding

/// Mark / index / funding state of a symbol at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MarkMsg {
    pub mark: f64,
    pub index: f64,
    pub funding: f64,
    pub next_funding_ms: u64,
    pub ts_ms: u64,
    /// Bybit `cs`.
    pub cross_seq: u64,
    pub best_bid: (i64, u64),
    pub best_ask: (i64, u64),
    pub last_price: i64,
    pub prev_price_24h: i64,
    pub high: i64,
    pub low: i64,
    /// Quantity units (0.001) traded since start.
    pub volume: u64,
    pub turnover: f64,
    pub open_interest: f64,
    pub up: bool,
}

impl MarkMsg {
    fn pcnt(&self) -> f64 {
        if self.prev_price_24h == 0 {
            0.0
        } else {
            self.last_price as f64 / self.prev_price_24h as f64 - 1.0
        }
    }
}

const EIGHT_H: u64 = 8 * 3600 * 1000;

/// Binance `markPriceUpdate`.
pub(crate) fn binance_mark(s: &SymInfo, m: &MarkMsg) -> String {
    let settle = (m.mark + m.index) / 2.0;
    format!(
        r#"{{"e":"markPriceUpdate","E":{},"s":"{}","p":"{:.8}","i":"{:.8}","P":"{:.8}","r":"{:.8}","T":{}}}"#,
        m.ts_ms, s.name, m.mark, m.index, settle, m.funding, m.next_funding_ms,
    )
}

/// Bybit `tickers.<S>`: a full snapshot (spot always; linear on subscribe) or
/// a linear delta carrying the fields that move.
pub(crate) fn bybit_ticker(venue: SimVenue, s: &SymInfo, m: &MarkMsg, snapshot: bool) -> String {
    let d = s.decimals;
    let px = |v: i64| fixed(v, d);
    if venue == SimVenue::BybitSpot {
        return format!(
            r#"{{"topic":"tickers.{}","ts":{},"type":"snapshot","cs":{},"data":{{"symbol":"{}","lastPrice":"{}","highPrice24h":"{}","lowPrice24h":"{}","prevPrice24h":"{}","volume24h":"{}","turnover24h":"{:.4}","price24hPcnt":"{:.4}","usdIndexPrice":"{:.6}"}}}}"#,
            s.name,
            m.ts_ms,
            m.cross_seq,
            s.name,
            px(m.last_price),
            px(m.high),
            px(m.low),
            px(m.prev_price_24h),
            qty(m.volume),
            m.turnover,
            m.pcnt(),
            m.index,
        );
    }
    let tick = if m.up { "PlusTick" } else { "MinusTick" };
    let mut data = format!(
        r#"{{"symbol":"{}","tickDirection":"{tick}","price24hPcnt":"{:.6}","lastPrice":"{}","#,
        s.name,
        m.pcnt(),
        px(m.last_price)
    );
    if snapshot {
        let _ = write!(
            data,
            r#""prevPrice24h":"{}","highPrice24h":"{}","lowPrice24h":"{}","prevPrice1h":"{}","#,
            px(m.prev_price_24h),
            px(m.high),
            px(m.low),
            px(m.prev_price_24h),
        );
    }
    let _ = write!(
        data,
        r#""markPrice":"{:.2}","indexPrice":"{:.2}","openInterest":"{:.3}","openInterestValue":"{:.2}","turnover24h":"{:.4}","volume24h":"{}","#,
        m.mark,
        m.index,
        m.open_interest,
        m.open_interest * m.mark,
        m.turnover,
        qty(m.volume),
    );
    if snapshot {
        data.push_str(r#""fundingIntervalHour":"8","fundingCap":"0.005","#);
    }
    let _ = write!(
        data,
        r#""nextFundingTime":"{}","fundingRate":"{:.6}","bid1Price":"{}","bid1Size":"{}","ask1Price":"{}","ask1Size":"{}""#,
        m.next_funding_ms,
        m.funding,
        px(m.best_bid.0),
        qty(m.best_bid.1),
        px(m.best_ask.0),
        qty(m.best_ask.1),
    );
    if snapshot {
        data.push_str(r#","preOpenPrice":"","preQty":"","curPreListingPhase":"""#);
    }
    data.push('}');
    let ty = if snapshot { "snapshot" } else { "delta" };
    format!(
        r#"{{"topic":"tickers.{}","type":"{ty}","data":{data},"cs":{},"ts":{}}}"#,
        s.name, m.cross_seq, m.ts_ms
    )
}

/// OKX `mark-price` (instType `SWAP` for the swap, `MARGIN` for the spot
/// instrument).
pub(crate) fn okx_mark(s: &SymInfo, m: &MarkMsg, spot: bool) -> String {
    let inst = s.okx_inst(spot);
    let ty = if spot { "MARGIN" } else { "SWAP" };
    format!(
        r#"{{"arg":{{"channel":"mark-price","instId":"{inst}"}},"data":[{{"instType":"{ty}","instId":"{inst}","markPx":"{:.2}","ts":"{}"}}]}}"#,
        m.mark, m.ts_ms
    )
}

/// OKX `funding-rate` (swaps only).
pub(crate) fn okx_funding(s: &SymInfo, m: &MarkMsg) -> String {
    let inst = &s.okx_swap;
    let premium = (m.mark - m.index) / m.index.max(1e-9);
    format!(
        r#"{{"arg":{{"channel":"funding-rate","instId":"{inst}"}},"data":[{{"formulaType":"withRate","fundingRate":"{:.16}","fundingTime":"{}","impactValue":"","instId":"{inst}","instType":"SWAP","interestRate":"0.0001","method":"current_period","maxFundingRate":"0.0075","minFundingRate":"-0.0075","nextFundingRate":"","nextFundingTime":"{}","premium":"{:.16}","settFundingRate":"{:.16}","settState":"settled","ts":"{}"}}]}}"#,
        m.funding,
        m.next_funding_ms,
        m.next_funding_ms + EIGHT_H,
        premium,
        m.funding,
        m.ts_ms,
    )
}

/// Next 8-hour funding boundary after `ms`.
pub(crate) fn next_funding(ms: u64) -> u64 {
    (ms / EIGHT_H + 1) * EIGHT_H
}

// ---------------------------------------------------------------------------
// Binance REST depth

/// `GET /api/v3/depth` (spot) or `/fapi/v1/depth` (USD-M, adds `E` and `T`).
pub(crate) fn rest_depth(
    s: &SymInfo,
    last_update_id: u64,
    bids: &[(i64, u64)],
    asks: &[(i64, u64)],
    usdm_times: Option<(u64, u64)>,
) -> String {
    let mut out = format!(r#"{{"lastUpdateId":{last_update_id},"#);
    if let Some((e, t)) = usdm_times {
        let _ = write!(out, r#""E":{e},"T":{t},"#);
    }
    out.push_str(r#""bids":"#);
    levels2(&mut out, bids, s.decimals);
    out.push_str(r#","asks":"#);
    levels2(&mut out, asks, s.decimals);
    out.push('}');
    out
}

// ---------------------------------------------------------------------------
// OKX checksum

/// CRC-32 (IEEE, as zlib) of `bytes` as OKX's signed 32-bit integer: OKX
/// documents the checksum as "the CRC32 value (32-bit signed integer)" of the
/// check string.
pub(crate) fn crc32_signed(bytes: &[u8]) -> i32 {
    crc32fast::hash(bytes) as i32
}

/// OKX's check string: the first 25 bids and asks interleaved
/// `bid:size:ask:size:…`, a missing side's levels skipped.
pub(crate) fn okx_check_string(bids: &[(String, String)], asks: &[(String, String)]) -> String {
    let mut out = String::new();
    for i in 0..25 {
        for side in [bids, asks] {
            if let Some((p, q)) = side.get(i) {
                if !out.is_empty() {
                    out.push(':');
                }
                out.push_str(p);
                out.push(':');
                out.push_str(q);
            }
        }
    }
    out
}

/// OKX checksum of a book (levels best first), with the price and size
/// strings exactly as the simulator renders them.
pub(crate) fn okx_checksum(bids: &[(i64, u64)], asks: &[(i64, u64)], decimals: u32) -> i32 {
    let strs = |side: &[(i64, u64)]| -> Vec<(String, String)> {
        side.iter()
            .take(25)
            .map(|&(p, q)| (fixed(p, decimals), qty(q)))
            .collect()
    };
    crc32_signed(okx_check_string(&strs(bids), &strs(asks)).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okx_documented_check_strings_and_crc() {
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let one = okx_check_string(
            &s(&[("3366.1", "7"), ("3366", "6")]),
            &s(&[("3366.8", "9"), ("3368", "8")]),
        );
        assert_eq!(one, "3366.1:7:3366.8:9:3366:6:3368:8");
        let two = okx_check_string(
            &s(&[("3366.1", "7")]),
            &s(&[("3366.8", "9"), ("3368", "8"), ("3372", "8")]),
        );
        assert_eq!(two, "3366.1:7:3366.8:9:3368:8:3372:8");
        // zlib.crc32 of the two documented strings, as signed 32-bit.
        assert_eq!(crc32_signed(one.as_bytes()), -1_881_014_294);
        assert_eq!(crc32_signed(two.as_bytes()), 831_078_360);
        assert_eq!(crc32_signed(b""), 0);
    }

    #[test]
    fn bybit_linear_trade_ids_are_uuids() {
        assert!(uuid_of(7).len() == 36);
    }
}
