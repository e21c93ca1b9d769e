//! Synthetic market: a deterministic random walk per symbol and the central
//! generator thread that turns it into Binance USD-M payloads.
//!
//! There is exactly one [`Market`] per simulator. Every event is serialised
//! once and broadcast (as an `Arc<Event>`) to every live connection, so all
//! connections see the same per-symbol sequence numbers at about the same time.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, TrySendError};

use super::Inner;

/// Smallest interval the generator accepts; smaller configured values are
/// clamped so that a zero interval cannot spin the generator forever.
const MIN_INTERVAL: Duration = Duration::from_micros(100);
/// Upper bound on events of one kind/symbol generated in one catch-up round.
const MAX_CATCH_UP: u32 = 64;
/// Longest the generator sleeps before re-checking for shutdown.
const MAX_IDLE: Duration = Duration::from_millis(50);

/// The kind of a market event (one per supported stream family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `<s>@bookTicker`
    BookTicker,
    /// `<s>@aggTrade`
    AggTrade,
    /// `<s>@depth@100ms` / `<s>@depth`
    Depth,
    /// `<s>@markPrice` / `<s>@markPrice@1s`
    MarkPrice,
}

impl Kind {
    /// Whether the stream belongs to the USD-M "public" route (else "market").
    pub(crate) fn is_public(self) -> bool {
        matches!(self, Kind::BookTicker | Kind::Depth)
    }
}

/// One generated market event, serialised once for all connections.
#[derive(Debug)]
pub(crate) struct Event {
    /// Index into the configured symbols.
    pub sym: usize,
    /// Stream family.
    pub kind: Kind,
    /// Ground-truth sequence number (`u`, `a`, `u`, `E` depending on kind).
    pub seq: u64,
    /// The payload's `E` field.
    pub event_time_ms: u64,
    /// The unwrapped JSON payload.
    pub payload: String,
}

/// splitmix64: tiny, fast, deterministic; good enough for a synthetic market.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `[lo, hi]`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Per-symbol book and id state.
#[derive(Debug)]
struct SymState {
    name: String,
    /// Price decimals; prices are integers in units of `10^-decimals`.
    decimals: u32,
    /// Tick size in price units.
    tick: i64,
    /// Mid price in price units (random walk).
    mid: f64,
    bid: i64,
    ask: i64,
    /// Quantities in units of 0.001.
    bid_qty: u64,
    ask_qty: u64,
    update_id: u64,
    last_depth_u: u64,
    agg_id: u64,
    trade_id: u64,
    funding: f64,
}

/// Formats an integer amount of `10^-decimals` units as a fixed-point string.
fn fixed(units: i64, decimals: u32) -> String {
    let scale = 10i64.pow(decimals);
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let scale_u = scale.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{abs}");
    }
    format!(
        "{sign}{}.{:0width$}",
        abs / scale_u,
        abs % scale_u,
        width = decimals as usize
    )
}

fn qty(units: u64) -> String {
    fixed(units as i64, 3)
}

/// Real Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The deterministic synthetic market of all configured symbols.
#[derive(Debug)]
pub(crate) struct Market {
    syms: Vec<SymState>,
    rng: Rng,
}

impl Market {
    /// Builds the initial state of every symbol from `seed`.
    pub(crate) fn new(symbols: &[String], seed: u64) -> Market {
        let mut rng = Rng(seed ^ 0x005E_ED0F_F33D);
        let syms = symbols
            .iter()
            .map(|name| {
                let upper = name.to_ascii_uppercase();
                let (base_price, decimals, tick) = if upper.starts_with("BTC") {
                    (60_000.0, 2, 10)
                } else if upper.starts_with("ETH") {
                    (3_000.0, 2, 1)
                } else if upper.starts_with("SOL") {
                    (150.0, 3, 10)
                } else {
                    (100.0, 4, 10)
                };
                let scale = 10f64.powi(decimals as i32);
                let mid = base_price * scale * (1.0 + (rng.unit() - 0.5) * 0.01);
                let update_id = rng.range(1_000_000_000, 9_000_000_000);
                let mut s = SymState {
                    name: upper,
                    decimals,
                    tick,
                    mid,
                    bid: 0,
                    ask: 0,
                    bid_qty: 0,
                    ask_qty: 0,
                    update_id,
                    last_depth_u: update_id,
                    agg_id: rng.range(100_000_000, 900_000_000),
                    trade_id: rng.range(1_000_000_000, 5_000_000_000),
                    funding: 0.0001,
                };
                Self::reprice(&mut s, &mut rng);
                s
            })
            .collect();
        Market { syms, rng }
    }

    /// Number of symbols.
    pub(crate) fn len(&self) -> usize {
        self.syms.len()
    }

    fn reprice(s: &mut SymState, rng: &mut Rng) {
        let tick = s.tick as f64;
        let bid = ((s.mid - tick / 2.0) / tick).floor() as i64 * s.tick;
        let spread_ticks = 1 + rng.range(0, 2) as i64;
        s.bid = bid.max(s.tick);
        s.ask = s.bid + spread_ticks * s.tick;
        s.bid_qty = rng.range(1, 50_000);
        s.ask_qty = rng.range(1, 50_000);
    }

    /// One book change: random-walk step, new best bid/ask, update id + 1.
    pub(crate) fn book_change(&mut self, i: usize, e_ms: u64) -> Event {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        let step = (rng.unit() - 0.5) * 2.0 * 0.00005;
        s.mid = (s.mid * (1.0 + step)).max(s.tick as f64 * 10.0);
        Self::reprice(s, rng);
        s.update_id += 1;
        let t_ms = e_ms.saturating_sub(rng.range(0, 2));
        let payload = format!(
            r#"{{"e":"bookTicker","u":{},"E":{},"T":{},"s":"{}","b":"{}","B":"{}","a":"{}","A":"{}"}}"#,
            s.update_id,
            e_ms,
            t_ms,
            s.name,
            fixed(s.bid, s.decimals),
            qty(s.bid_qty),
            fixed(s.ask, s.decimals),
            qty(s.ask_qty),
        );
        Event {
            sym: i,
            kind: Kind::BookTicker,
            seq: s.update_id,
            event_time_ms: e_ms,
            payload,
        }
    }

    /// One aggregate trade at the current best bid or ask.
    pub(crate) fn trade(&mut self, i: usize, e_ms: u64) -> Event {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        let buyer_is_maker = rng.chance(0.5);
        let price = if buyer_is_maker { s.bid } else { s.ask };
        let n = rng.range(1, 3);
        let first = s.trade_id + 1;
        let last = s.trade_id + n;
        s.trade_id = last;
        s.agg_id += 1;
        let t_ms = e_ms.saturating_sub(rng.range(0, 2));
        let payload = format!(
            r#"{{"e":"aggTrade","E":{},"s":"{}","a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{},"m":{}}}"#,
            e_ms,
            s.name,
            s.agg_id,
            fixed(price, s.decimals),
            qty(rng.range(1, 5_000)),
            first,
            last,
            t_ms,
            buyer_is_maker,
        );
        Event {
            sym: i,
            kind: Kind::AggTrade,
            seq: s.agg_id,
            event_time_ms: e_ms,
            payload,
        }
    }

    /// A depth diff covering every book change since the previous one, or
    /// `None` if the book has not changed since.
    pub(crate) fn depth(&mut self, i: usize, e_ms: u64) -> Option<Event> {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        if s.update_id == s.last_depth_u {
            return None;
        }
        let pu = s.last_depth_u;
        let first = pu + 1;
        let last = s.update_id;
        s.last_depth_u = last;
        let mut side = |best: i64, best_qty: u64, dir: i64| {
            let levels = rng.range(1, 5);
            let mut out = String::from("[");
            let mut price = best;
            for lvl in 0..levels {
                let q = if lvl == 0 {
                    best_qty
                } else if rng.chance(0.15) {
                    0
                } else {
                    rng.range(1, 80_000)
                };
                if lvl > 0 {
                    out.push(',');
                }
                let _ = write!(out, r#"["{}","{}"]"#, fixed(price, s.decimals), qty(q));
                price += dir * s.tick * (1 + rng.range(0, 3) as i64);
                if price <= 0 {
                    break;
                }
            }
            out.push(']');
            out
        };
        let bids = side(s.bid, s.bid_qty, -1);
        let asks = side(s.ask, s.ask_qty, 1);
        let t_ms = e_ms.saturating_sub(1);
        let payload = format!(
            r#"{{"e":"depthUpdate","E":{},"T":{},"s":"{}","U":{},"u":{},"pu":{},"b":{},"a":{}}}"#,
            e_ms, t_ms, s.name, first, last, pu, bids, asks,
        );
        Some(Event {
            sym: i,
            kind: Kind::Depth,
            seq: last,
            event_time_ms: e_ms,
            payload,
        })
    }

    /// A mark price update.
    pub(crate) fn mark(&mut self, i: usize, e_ms: u64) -> Event {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        let scale = 10f64.powi(s.decimals as i32);
        let mark = s.mid / scale;
        let index = mark * (1.0 + (rng.unit() - 0.5) * 0.0004);
        let settle = (mark + index) / 2.0;
        s.funding = (s.funding + (rng.unit() - 0.5) * 0.00002).clamp(-0.0075, 0.0075);
        const EIGHT_H: u64 = 8 * 3600 * 1000;
        let next_funding = (e_ms / EIGHT_H + 1) * EIGHT_H;
        let payload = format!(
            r#"{{"e":"markPriceUpdate","E":{},"s":"{}","p":"{:.8}","i":"{:.8}","P":"{:.8}","r":"{:.8}","T":{}}}"#,
            e_ms, s.name, mark, index, settle, s.funding, next_funding,
        );
        Event {
            sym: i,
            kind: Kind::MarkPrice,
            seq: e_ms,
            event_time_ms: e_ms,
            payload,
        }
    }
}

/// Schedule of one event kind for one symbol.
#[derive(Debug)]
struct Timer {
    next: Instant,
    every: Duration,
}

impl Timer {
    fn new(start: Instant, every: Duration, sym: usize, n_syms: usize) -> Timer {
        let every = every.max(MIN_INTERVAL);
        // Stagger symbols so they do not all fire in the same instant.
        let offset = every.mul_f64(sym as f64 / n_syms.max(1) as f64);
        Timer {
            next: start + every + offset,
            every,
        }
    }

    /// How many firings are due at `now` (bounded), advancing the schedule.
    fn due(&mut self, now: Instant) -> u32 {
        let mut n = 0;
        while self.next <= now && n < MAX_CATCH_UP {
            self.next += self.every;
            n += 1;
        }
        if self.next <= now {
            // Too far behind (e.g. the machine was suspended): resynchronise.
            self.next = now + self.every;
        }
        n
    }
}

/// The generator thread: advances the market on schedule and broadcasts each
/// event to every registered connection. Exits when `stop` is disconnected
/// (or receives anything).
pub(crate) fn run_generator(inner: Arc<Inner>, stop: Receiver<()>) {
    let cfg = &inner.cfg;
    let mut market = Market::new(&cfg.symbols, cfg.seed);
    let n = market.len();
    let start = Instant::now();
    let mk = |every: Duration| -> Vec<Timer> {
        (0..n).map(|i| Timer::new(start, every, i, n)).collect()
    };
    let mut book = mk(cfg.book_interval);
    let mut trade = mk(cfg.trade_interval);
    let mut depth = mk(cfg.depth_interval);
    let mut mark = mk(cfg.mark_price_interval);
    let mut batch: Vec<Arc<Event>> = Vec::new();

    loop {
        let now = Instant::now();
        let e_ms = now_ms();
        for i in 0..n {
            for _ in 0..book[i].due(now) {
                batch.push(Arc::new(market.book_change(i, e_ms)));
            }
            if depth[i].due(now) > 0 {
                if let Some(ev) = market.depth(i, e_ms) {
                    batch.push(Arc::new(ev));
                }
            }
            for _ in 0..trade[i].due(now) {
                batch.push(Arc::new(market.trade(i, e_ms)));
            }
            if mark[i].due(now) > 0 {
                batch.push(Arc::new(market.mark(i, e_ms)));
            }
        }
        if !batch.is_empty() {
            broadcast(&inner, &batch);
            batch.clear();
        }
        let next = book
            .iter()
            .chain(&trade)
            .chain(&depth)
            .chain(&mark)
            .map(|t| t.next)
            .min()
            .unwrap_or(now + MAX_IDLE);
        let wait = next.saturating_duration_since(Instant::now()).min(MAX_IDLE);
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Sends every event of `batch` to every registered connection. A full
/// channel (a connection not keeping up) drops the event for that connection
/// only; a disconnected one is unregistered.
fn broadcast(inner: &Inner, batch: &[Arc<Event>]) {
    let mut subs = super::lock(&inner.subscribers);
    subs.retain(|sub| {
        for ev in batch {
            match sub.tx.try_send(Arc::clone(ev)) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_formats() {
        assert_eq!(fixed(6_000_010, 2), "60000.10");
        assert_eq!(fixed(5, 3), "0.005");
        assert_eq!(fixed(-1234, 2), "-12.34");
        assert_eq!(fixed(7, 0), "7");
    }

    #[test]
    fn market_is_deterministic_and_consistent() {
        let syms = vec!["BTCUSDT".to_string(), "XRPUSDT".to_string()];
        let mut a = Market::new(&syms, 7);
        let mut b = Market::new(&syms, 7);
        let mut last_u = 0;
        for k in 0..200 {
            let ea = a.book_change(0, 1000 + k);
            let eb = b.book_change(0, 1000 + k);
            assert_eq!(ea.payload, eb.payload);
            assert!(ea.seq > last_u);
            last_u = ea.seq;
            let v: serde_json::Value = serde_json::from_str(&ea.payload).expect("json");
            let bid: f64 = v["b"].as_str().and_then(|s| s.parse().ok()).expect("b");
            let ask: f64 = v["a"].as_str().and_then(|s| s.parse().ok()).expect("a");
            assert!(bid < ask, "{bid} < {ask}");
            assert!(bid > 50_000.0 && ask < 70_000.0);
        }
        let d1 = a.depth(0, 5000).expect("depth");
        assert!(a.depth(0, 5001).is_none(), "no change, no depth event");
        a.book_change(0, 5002);
        let d2 = a.depth(0, 5003).expect("depth");
        let v1: serde_json::Value = serde_json::from_str(&d1.payload).expect("json");
        let v2: serde_json::Value = serde_json::from_str(&d2.payload).expect("json");
        assert_eq!(v2["pu"], v1["u"]);
        assert_eq!(v2["U"].as_u64(), v1["u"].as_u64().map(|u| u + 1));
        let t1 = a.trade(1, 1);
        let t2 = a.trade(1, 2);
        assert_eq!(t2.seq, t1.seq + 1);
        let m: serde_json::Value = serde_json::from_str(&a.mark(1, 3).payload).expect("json");
        assert_eq!(m["e"], "markPriceUpdate");
        assert_eq!(m["s"], "XRPUSDT");
    }
}
