//! Binance's per-trade streams, built from the simulated trades: `<s>@trade` (one message a
//! trade, ids consecutive) and `<s>@kline_1m` (the minute's candle after each trade; when a
//! trade opens a new minute, the previous candle goes out once more, closed). Formats of the
//! "Trade Streams" and "Kline/Candlestick Streams" pages (spot; USD-M adds `"X":"MARKET"` to a
//! trade and otherwise the same).

use super::format::{fixed, qty};
use super::symbol::SymInfo;

/// One minute's candle so far (prices in price units, quantities in 1/1000).
#[derive(Debug, Clone, Default)]
pub(crate) struct Candle {
    /// Minute start, Unix ms (0: no trade yet).
    pub start_ms: u64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: u64,
    /// Quote volume.
    pub quote: f64,
    pub first: u64,
    pub last: u64,
    pub trades: u64,
}

/// A minute, in ms.
const MINUTE_MS: u64 = 60_000;

impl Candle {
    /// Adds the trades `first..=last` at `price`, `qty` in all, at `ms`: the previous candle,
    /// now closed, when they open a new minute.
    pub(crate) fn add(
        &mut self,
        ms: u64,
        price: i64,
        qty: u64,
        (first, last): (u64, u64),
        decimals: u32,
    ) -> Option<Candle> {
        let start = ms / MINUTE_MS * MINUTE_MS;
        let closed = (self.start_ms != start).then(|| {
            std::mem::replace(
                self,
                Candle {
                    start_ms: start,
                    open: price,
                    high: price,
                    low: price,
                    first,
                    ..Candle::default()
                },
            )
        });
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.volume += qty;
        self.quote += price as f64 / 10f64.powi(decimals as i32) * qty as f64 / 1000.0;
        self.last = last;
        self.trades += last + 1 - first;
        closed.filter(|c| c.start_ms != 0)
    }
}

/// `{"e":"trade","E":…,"s":…,"t":…,"p":…,"q":…,"T":…,"m":…,"M":true}`
pub(crate) fn binance_trade(
    s: &SymInfo,
    id: u64,
    (price, q): (i64, u64),
    buyer_is_maker: bool,
    (e_ms, t_ms): (u64, u64),
) -> String {
    format!(
        r#"{{"e":"trade","E":{e_ms},"s":"{}","t":{id},"p":"{}","q":"{}","T":{t_ms},"m":{buyer_is_maker},"M":true}}"#,
        s.name,
        fixed(price, s.decimals),
        qty(q),
    )
}

/// `{"e":"kline","E":…,"s":…,"k":{"t","T","s","i":"1m","f","L","o","c","h","l","v","n","x",
/// "q","V","Q","B"}}` (taker buy volumes and `B`, which the venue says to ignore, as 0).
pub(crate) fn binance_kline(s: &SymInfo, c: &Candle, closed: bool, e_ms: u64) -> String {
    let d = s.decimals;
    format!(
        r#"{{"e":"kline","E":{e_ms},"s":"{n}","k":{{"t":{},"T":{},"s":"{n}","i":"1m","f":{},"L":{},"o":"{}","c":"{}","h":"{}","l":"{}","v":"{}","n":{},"x":{closed},"q":"{:.8}","V":"0.000","Q":"0.00000000","B":"0"}}}}"#,
        c.start_ms,
        c.start_ms + MINUTE_MS - 1,
        c.first,
        c.last,
        fixed(c.open, d),
        fixed(c.close, d),
        fixed(c.high, d),
        fixed(c.low, d),
        qty(c.volume),
        c.trades,
        c.quote,
        n = s.name,
    )
}
