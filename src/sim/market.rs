//! Synthetic market: a deterministic random walk per symbol driving a real
//! order book (price → quantity per side), each change rendered once into
//! the venue's message (an [`Event`]).
//!
//! There is exactly one [`Market`] per simulator, shared behind
//! `Inner::market`: the generator thread (`generator.rs`) changes it on
//! schedule and broadcasts its events, connections read it for subscription
//! snapshots and the REST depth endpoint.
//!
//! # The book
//!
//! Each book change (one update id) moves the mid price, sets new best levels
//! (removing levels that would cross them), changes one to three deeper
//! levels, and keeps each side between 30 and [`MAX_LEVELS`] levels (levels
//! trimmed off the far end are removed, i.e. sent with quantity 0). Every
//! changed level goes into the symbol's pending diff; a depth event (at
//! `depth_interval`) sends the pending diff — final quantity per changed
//! price — and applies it to the *emitted* book, the state as of the last
//! depth event. So the live book equals the emitted book plus the pending
//! diff, a snapshot plus the following diffs rebuilds the book exactly, and a
//! diff can be applied twice without harm (absolute quantities).
//!
//! # Shared markets
//!
//! With [`SimConfig::shared`](super::config::SimConfig::shared) the market holds a [`VenueView`] of the
//! shared market: the generator synchronises it to the current time before
//! each round, each book change puts the mid at the view's price (instead of
//! a random-walk step), the mark price's index is the shared price, and book
//! changes are jittered in time. Everything else — books, ids, trades — is
//! this market's own, from its own seed mixed with the view's slot. Without a
//! view nothing differs from an unshared simulator.

use std::sync::Arc;
use std::time::Instant;

use tungstenite::Bytes;

use super::base::Kind;
use super::book::{Book, Levels};
use super::candle::{self, Candle};
use super::config::SimVenue;
use super::defined;
use super::render::{self, BookMsg, MarkMsg, TradeMsg};
use super::rng::{mix, seeded, Draw};
use super::shared::VenueView;
use super::symbol::{price_format, SymInfo};

/// Most levels per side of a book.
pub(crate) const MAX_LEVELS: usize = 50;
/// Fewest levels per side (refilled at the far end).
const MIN_LEVELS: usize = 30;
/// Levels per side at start.
const INIT_LEVELS: usize = 40;

/// One generated market event, serialised once for all connections.
#[derive(Debug)]
pub(crate) struct Event {
    /// Generation number: increases by one per event, all symbols together.
    pub gen: u64,
    /// Index into the configured symbols.
    pub sym: usize,
    /// Stream family.
    pub kind: Kind,
    /// Ground-truth sequence number (see [`SentRecord::seq`](super::observe::SentRecord::seq)).
    pub seq: u64,
    /// The link to the previous message the payload carries, if any
    /// (Binance `pu`, OKX `prevSeqId`).
    pub prev_seq: Option<u64>,
    /// The payload's event time (ms).
    pub event_time_ms: u64,
    /// The unwrapped payload (for OKX: on the swap instrument).
    pub payload: String,
    /// OKX only: the same message on the spot instrument (`None` when the
    /// channel has no spot form).
    pub spot_payload: Option<String>,
    /// A venue that sends market data as binary frames: the frame sent
    /// instead of `payload` (which keeps the message's JSON form).
    pub binary: Option<Bytes>,
    /// Book channels: the message before rendering, for faulty variants.
    pub book: Option<Box<BookMsg>>,
}

/// Per-symbol book and id state.
#[derive(Debug)]
struct SymState {
    /// Tick size in price units.
    tick: i64,
    /// Mid price in price units (random walk).
    mid: f64,
    /// The live book.
    book: Book,
    /// Changes since the last depth event (a diff: 0 = removed).
    pending: Book,
    /// The book as of the last depth event.
    emitted: Book,
    /// The book before the first change, and its update id
    /// (`BookFault::SnapshotStale`).
    initial: Book,
    initial_id: u64,
    /// Book changes so far (Binance `u`, OKX `seqId`, Bybit `seq`).
    update_id: u64,
    /// `update_id` at the last depth event (OKX `prevSeqId` of the next one).
    last_depth_u: u64,
    /// Bybit topic update ids.
    ob1_u: u64,
    ob50_u: u64,
    agg_id: u64,
    trade_id: u64,
    /// The minute's candle (Binance `kline_1m`).
    candle: Candle,
    funding: f64,
    mark: f64,
    index: f64,
    last_price: i64,
    open_price: i64,
    high: i64,
    low: i64,
    volume: u64,
    turnover: f64,
    open_interest: f64,
    up: bool,
}

/// The deterministic synthetic market of all configured symbols.
#[derive(Debug)]
pub(crate) struct Market {
    venue: SimVenue,
    okx_checksum: bool,
    info: Arc<Vec<SymInfo>>,
    syms: Vec<SymState>,
    rng: fastrand::Rng,
    gen: u64,
    /// The shared market this one quotes, if any.
    view: Option<VenueView>,
}

/// A Bybit / OKX subscription snapshot: the payload to send and its ground
/// truth.
#[derive(Debug, Clone)]
pub(crate) struct Snap {
    /// `gen` of the last event generated before the snapshot: the
    /// subscription delivers only later events.
    pub gen: u64,
    pub payload: String,
    pub seq: u64,
    pub prev_seq: Option<u64>,
    pub event_time_ms: u64,
    /// A full book snapshot (as opposed to a quote or ticker).
    pub full_book: bool,
}

impl Market {
    /// Builds the initial state of every symbol from `seed`.
    pub(crate) fn new(
        info: Arc<Vec<SymInfo>>,
        seed: u64,
        venue: SimVenue,
        okx_checksum: bool,
    ) -> Market {
        Market::build(info, seed, venue, okx_checksum, None)
    }

    /// Like [`Market::new`], quoting a shared market through `view` (already
    /// synchronised): the books start around the view's prices and the
    /// randomness comes from `seed` mixed with the view's slot.
    pub(crate) fn with_view(
        info: Arc<Vec<SymInfo>>,
        seed: u64,
        venue: SimVenue,
        okx_checksum: bool,
        view: VenueView,
    ) -> Market {
        Market::build(info, seed, venue, okx_checksum, Some(view))
    }

    fn build(
        info: Arc<Vec<SymInfo>>,
        seed: u64,
        venue: SimVenue,
        okx_checksum: bool,
        view: Option<VenueView>,
    ) -> Market {
        let seed = match &view {
            None => seed,
            Some(v) => seed ^ mix(v.seed() ^ mix(u64::from(v.slot()) + 1)),
        };
        let mut rng = seeded(seed ^ 0x005E_ED0F_F33D);
        let syms = info
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (base_price, decimals, tick) = price_format(&s.name);
                let scale = 10f64.powi(decimals as i32);
                let own = base_price * scale * (1.0 + (rng.unit() - 0.5) * 0.01);
                let mid = view.as_ref().map_or(own, |v| v.mid(i) * scale);
                let update_id = rng.range(1_000_000_000, 9_000_000_000);
                let mut book = Book::default();
                let best_bid = ((((mid - tick as f64 / 2.0) / tick as f64).floor() as i64) * tick)
                    .max(tick * (INIT_LEVELS as i64 * 3 + 1));
                let mut p = best_bid;
                for _ in 0..INIT_LEVELS {
                    book.bids.insert(p, rng.range(1, 50_000));
                    p -= tick * rng.range(1, 2) as i64;
                }
                let mut p = best_bid + tick * rng.range(1, 3) as i64;
                for _ in 0..INIT_LEVELS {
                    book.asks.insert(p, rng.range(1, 50_000));
                    p += tick * rng.range(1, 2) as i64;
                }
                let last = best_bid;
                SymState {
                    tick,
                    mid,
                    emitted: book.clone(),
                    initial: book.clone(),
                    book,
                    pending: Book::default(),
                    initial_id: update_id,
                    update_id,
                    last_depth_u: update_id,
                    ob1_u: rng.range(10_000_000, 90_000_000),
                    ob50_u: rng.range(10_000_000, 90_000_000),
                    agg_id: rng.range(100_000_000, 900_000_000),
                    trade_id: rng.range(1_000_000_000, 5_000_000_000),
                    candle: Candle::default(),
                    funding: 0.0001,
                    mark: mid / scale,
                    index: mid / scale,
                    last_price: last,
                    open_price: last,
                    high: last,
                    low: last,
                    volume: 0,
                    turnover: 0.0,
                    open_interest: 50_000.0 + rng.unit() * 10_000.0,
                    up: true,
                }
            })
            .collect();
        Market {
            venue,
            okx_checksum,
            info,
            syms,
            rng,
            gen: 0,
            view,
        }
    }

    /// Shared market only: synchronises the view to `now` (no-op otherwise).
    pub(crate) fn sync_shared(&mut self, now: Instant) {
        if let Some(v) = &mut self.view {
            v.sync(now);
        }
    }

    /// Shared market only: the book-change timing jitter and a seed for it.
    pub(crate) fn jitter(&self) -> Option<(f64, u64)> {
        self.view.as_ref().map(|v| {
            (
                v.timing_jitter(),
                mix(v.seed() ^ mix(0x7133_0000 + u64::from(v.slot()))),
            )
        })
    }

    /// Number of symbols.
    pub(crate) fn len(&self) -> usize {
        self.syms.len()
    }

    /// `gen` of the last event generated.
    pub(crate) fn gen(&self) -> u64 {
        self.gen
    }

    fn next_gen(&mut self) -> u64 {
        self.gen += 1;
        self.gen
    }

    /// The live book of a symbol and its update id.
    #[cfg(test)]
    pub(crate) fn live_book(&self, i: usize) -> (u64, &Book) {
        (self.syms[i].update_id, &self.syms[i].book)
    }

    /// Sets one level (0 removes it), recording the change in the pending diff.
    fn set_level(s: &mut SymState, bid: bool, price: i64, q: u64) {
        let (side, pending) = if bid {
            (&mut s.book.bids, &mut s.pending.bids)
        } else {
            (&mut s.book.asks, &mut s.pending.asks)
        };
        if q == 0 {
            if side.remove(&price).is_none() {
                return;
            }
        } else {
            side.insert(price, q);
        }
        pending.insert(price, q);
    }

    /// One book change: random-walk step, new best levels, a few deeper
    /// changes, trimming and refilling; update id + 1. Returns the
    /// top-of-book event (Binance `bookTicker`, Bybit `orderbook.1`, OKX
    /// `bbo-tbt`).
    pub(crate) fn book_change(&mut self, i: usize, e_ms: u64) -> Event {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        let tick = s.tick;
        let step = (rng.unit() - 0.5) * 2.0 * 0.00005;
        let mid = match &self.view {
            None => s.mid * (1.0 + step),
            Some(v) => v.mid(i) * 10f64.powi(self.info[i].decimals as i32),
        };
        s.mid = mid.max(tick as f64 * (MAX_LEVELS as f64 * 4.0));
        let tb = ((((s.mid - tick as f64 / 2.0) / tick as f64).floor() as i64) * tick)
            .max(tick * (MAX_LEVELS as i64 * 3));
        let ta = tb + tick * rng.range(1, 3) as i64;
        // New best levels; whatever would cross them goes.
        let above: Vec<i64> = s.book.bids.range(tb + 1..).map(|(&p, _)| p).collect();
        for p in above {
            Self::set_level(s, true, p, 0);
        }
        let below: Vec<i64> = s.book.asks.range(..ta).map(|(&p, _)| p).collect();
        for p in below {
            Self::set_level(s, false, p, 0);
        }
        Self::set_level(s, true, tb, rng.range(1, 50_000));
        Self::set_level(s, false, ta, rng.range(1, 50_000));
        // A few changes deeper in the book.
        for _ in 0..rng.range(1, 3) {
            let bid = rng.chance(0.5);
            let k = rng.range(1, 40) as i64;
            let price = if bid { tb - k * tick } else { ta + k * tick };
            let q = if rng.chance(0.3) {
                0
            } else {
                rng.range(1, 80_000)
            };
            Self::set_level(s, bid, price, q);
        }
        // Keep each side between MIN_LEVELS and MAX_LEVELS.
        while s.book.bids.len() > MAX_LEVELS {
            let worst = s.book.bids.keys().next().copied().unwrap_or(0);
            Self::set_level(s, true, worst, 0);
        }
        while s.book.asks.len() > MAX_LEVELS {
            let worst = s.book.asks.keys().next_back().copied().unwrap_or(0);
            Self::set_level(s, false, worst, 0);
        }
        while s.book.bids.len() < MIN_LEVELS {
            let worst = s.book.bids.keys().next().copied().unwrap_or(tb);
            let p = worst - tick * rng.range(1, 2) as i64;
            if p <= 0 {
                break;
            }
            Self::set_level(s, true, p, rng.range(1, 50_000));
        }
        while s.book.asks.len() < MIN_LEVELS {
            let worst = s.book.asks.keys().next_back().copied().unwrap_or(ta);
            Self::set_level(
                s,
                false,
                worst + tick * rng.range(1, 2) as i64,
                rng.range(1, 50_000),
            );
        }
        s.update_id += 1;
        let t_ms = e_ms.saturating_sub(rng.range(0, 2));
        let (bid, ask) = (s.book.best_bid(), s.book.best_ask());
        let last_id = if self.venue.is_bybit() {
            s.ob1_u += 1;
            s.ob1_u
        } else {
            s.update_id
        };
        let msg = BookMsg {
            kind: Kind::BookTicker,
            snapshot: true,
            first_id: last_id,
            last_id,
            prev_id: None,
            cross_seq: s.update_id,
            ts_ms: e_ms,
            t_ms,
            bids: bid.into_iter().collect(),
            asks: ask.into_iter().collect(),
            checksum: 0,
            best_ask: ask.map(|a| a.0),
        };
        self.book_event(i, msg, e_ms)
    }

    fn book_event(&mut self, i: usize, msg: BookMsg, e_ms: u64) -> Event {
        let info = &self.info[i];
        let (payload, seq, prev_seq, binary) =
            match defined::book_wire(self.venue, info, &msg, false) {
                Some(w) => (w.payload, w.seq, w.prev_seq, w.binary.map(Bytes::from)),
                // No such channel on the venue: never delivered.
                None => (String::new(), msg.last_id, None, None),
            };
        let spot_payload =
            (self.venue == SimVenue::Okx).then(|| render::book(self.venue, info, &msg, true));
        Event {
            gen: self.next_gen(),
            sym: i,
            kind: msg.kind,
            seq,
            prev_seq,
            event_time_ms: e_ms,
            payload,
            spot_payload,
            binary,
            book: Some(Box::new(msg)),
        }
    }

    /// A depth event covering every book change since the previous one, or
    /// `None` if the book has not changed since.
    pub(crate) fn depth(&mut self, i: usize, e_ms: u64) -> Option<Event> {
        let s = &mut self.syms[i];
        if s.update_id == s.last_depth_u || s.pending.is_empty() {
            s.last_depth_u = s.update_id;
            return None;
        }
        let pu = s.last_depth_u;
        let first = pu + 1;
        let last = s.update_id;
        s.last_depth_u = last;
        let diff = std::mem::take(&mut s.pending);
        s.emitted.apply(&diff);
        let checksum = if self.okx_checksum {
            let (b, a) = s.emitted.top(25);
            render::okx_checksum(&b, &a, self.info[i].decimals)
        } else {
            0
        };
        let (last_id, prev_id) = if self.venue.is_bybit() {
            s.ob50_u += 1;
            (s.ob50_u, None)
        } else {
            (last, Some(pu))
        };
        let msg = BookMsg {
            kind: Kind::Depth,
            snapshot: false,
            first_id: first,
            last_id,
            prev_id,
            cross_seq: last,
            ts_ms: e_ms,
            t_ms: e_ms.saturating_sub(1),
            bids: diff.bids.iter().rev().map(|(&p, &q)| (p, q)).collect(),
            asks: diff.asks.iter().map(|(&p, &q)| (p, q)).collect(),
            checksum,
            best_ask: s.emitted.best_ask().map(|a| a.0),
        };
        Some(self.book_event(i, msg, e_ms))
    }

    /// A trade ([`Market::trade`]) and, on Binance, what else it shows: a `trade` message for
    /// each trade it aggregates and the 1-minute candle it updates.
    pub(crate) fn trade_events(&mut self, i: usize, e_ms: u64) -> Vec<Event> {
        let (agg, t) = self.trade_and_msg(i, e_ms);
        let mut out = vec![agg];
        if self.venue != SimVenue::Binance {
            return out;
        }
        let info = &self.info[i];
        let n = t.last + 1 - t.first;
        let mut payloads: Vec<(Kind, u64, String)> = (t.first..=t.last)
            .map(|id| {
                let q = (t.qty / n).max(1);
                let times = (t.ts_ms, t.t_ms);
                let text = candle::binance_trade(info, id, (t.price, q), !t.taker_buy, times);
                (Kind::Trade, id, text)
            })
            .collect();
        let s = &mut self.syms[i];
        let range = (t.first, t.last);
        if let Some(closed) = s.candle.add(t.t_ms, t.price, t.qty, range, info.decimals) {
            let text = candle::binance_kline(info, &closed, true, t.ts_ms);
            payloads.push((Kind::Kline, t.ts_ms, text));
        }
        let text = candle::binance_kline(info, &s.candle, false, t.ts_ms);
        payloads.push((Kind::Kline, t.ts_ms, text));
        for (kind, seq, payload) in payloads {
            out.push(Event {
                gen: self.next_gen(),
                sym: i,
                kind,
                seq,
                prev_seq: None,
                event_time_ms: t.ts_ms,
                payload,
                spot_payload: None,
                binary: None,
                book: None,
            });
        }
        out
    }

    /// One trade at the current best bid or ask.
    #[cfg(test)]
    pub(crate) fn trade(&mut self, i: usize, e_ms: u64) -> Event {
        self.trade_and_msg(i, e_ms).0
    }

    /// [`Market::trade`], and the trade before rendering.
    fn trade_and_msg(&mut self, i: usize, e_ms: u64) -> (Event, TradeMsg) {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        let buyer_is_maker = rng.chance(0.5);
        let (bid, ask) = (
            s.book.best_bid().map_or(s.last_price, |b| b.0),
            s.book.best_ask().map_or(s.last_price, |a| a.0),
        );
        let price = if buyer_is_maker { bid } else { ask };
        let n = rng.range(1, 3);
        let first = s.trade_id + 1;
        let last = s.trade_id + n;
        s.trade_id = last;
        s.agg_id += 1;
        let q = rng.range(1, 5_000);
        s.up = price >= s.last_price;
        s.last_price = price;
        s.high = s.high.max(price);
        s.low = s.low.min(price);
        s.volume += q;
        let scale = 10f64.powi(self.info[i].decimals as i32);
        s.turnover += price as f64 / scale * q as f64 / 1000.0;
        let t_ms = e_ms.saturating_sub(rng.range(0, 2));
        // Binance numbers aggregate trades; Bybit and OKX show trade ids
        // (OKX: the last trade id of the aggregation).
        let id = match self.venue {
            SimVenue::Binance | SimVenue::Defined(_) => s.agg_id,
            _ => last,
        };
        let t = TradeMsg {
            id,
            first,
            last,
            price,
            qty: q,
            taker_buy: !buyer_is_maker,
            up: s.up,
            ts_ms: e_ms,
            t_ms,
            cross_seq: s.update_id,
        };
        let info = &self.info[i];
        let (payload, seq, prev_seq, binary) = match defined::trade_wire(self.venue, info, &t) {
            Some(w) => (w.payload, w.seq, w.prev_seq, w.binary.map(Bytes::from)),
            None => (String::new(), id, None, None),
        };
        let spot_payload =
            (self.venue == SimVenue::Okx).then(|| render::trade(self.venue, info, &t, true));
        let event = Event {
            gen: self.next_gen(),
            sym: i,
            kind: Kind::AggTrade,
            seq,
            prev_seq,
            event_time_ms: e_ms,
            payload,
            spot_payload,
            binary,
            book: None,
        };
        (event, t)
    }

    fn mark_msg(&self, i: usize, e_ms: u64) -> MarkMsg {
        let s = &self.syms[i];
        MarkMsg {
            mark: s.mark,
            index: s.index,
            funding: s.funding,
            next_funding_ms: render::next_funding(e_ms),
            ts_ms: e_ms,
            cross_seq: s.update_id,
            best_bid: s.book.best_bid().unwrap_or((0, 0)),
            best_ask: s.book.best_ask().unwrap_or((0, 0)),
            last_price: s.last_price,
            prev_price_24h: s.open_price,
            high: s.high,
            low: s.low,
            volume: s.volume,
            turnover: s.turnover,
            open_interest: s.open_interest,
            up: s.up,
        }
    }

    /// A mark price update: one event (OKX: `mark-price` and `funding-rate`).
    pub(crate) fn mark(&mut self, i: usize, e_ms: u64) -> Vec<Event> {
        let rng = &mut self.rng;
        let s = &mut self.syms[i];
        let scale = 10f64.powi(self.info[i].decimals as i32);
        s.mark = s.mid / scale;
        let noise = (rng.unit() - 0.5) * 0.0004;
        s.index = match &self.view {
            None => s.mark * (1.0 + noise),
            Some(v) => v.index(i),
        };
        s.funding = (s.funding + (rng.unit() - 0.5) * 0.00002).clamp(-0.0075, 0.0075);
        s.open_interest = (s.open_interest * (1.0 + (rng.unit() - 0.5) * 0.001)).max(1.0);
        let m = self.mark_msg(i, e_ms);
        let info = &self.info[i];
        let mut out = Vec::with_capacity(2);
        match self.venue {
            SimVenue::Binance => {
                let payload = render::binance_mark(info, &m);
                out.push((Kind::MarkPrice, e_ms, payload, None));
            }
            SimVenue::BybitSpot | SimVenue::BybitLinear => {
                let payload = render::bybit_ticker(self.venue, info, &m, false);
                out.push((Kind::MarkPrice, m.cross_seq, payload, None));
            }
            SimVenue::Okx => {
                let payload = render::okx_mark(info, &m, false);
                let spot = render::okx_mark(info, &m, true);
                out.push((Kind::MarkPrice, e_ms, payload, Some(spot)));
                out.push((Kind::Funding, e_ms, render::okx_funding(info, &m), None));
            }
            // A defined venue has quotes and trades only.
            SimVenue::Defined(_) => {}
        }
        out.into_iter()
            .map(|(kind, seq, payload, spot_payload)| Event {
                gen: self.next_gen(),
                sym: i,
                kind,
                seq,
                prev_seq: None,
                event_time_ms: e_ms,
                payload,
                spot_payload,
                binary: None,
                book: None,
            })
            .collect()
    }

    // -----------------------------------------------------------------------
    // Snapshots (read by connection threads under the market lock)

    /// The first message of a new Bybit / OKX subscription, if the channel
    /// starts with one: Bybit `orderbook.50` (snapshot of the emitted book),
    /// `orderbook.1` (current top), linear `tickers` (full snapshot); OKX
    /// `books` (snapshot of the emitted book, `prevSeqId` -1) and `bbo-tbt`
    /// (current top). `None` for channels that start with live data.
    pub(crate) fn snapshot(&self, i: usize, kind: Kind, spot: bool, e_ms: u64) -> Option<Snap> {
        let s = &self.syms[i];
        let info = &self.info[i];
        let bybit = self.venue.is_bybit();
        let okx = self.venue == SimVenue::Okx;
        let book_msg = |kind: Kind| -> BookMsg {
            let (book, last_id, prev_id, levels) = match (kind, bybit) {
                (Kind::BookTicker, true) => (&s.book, s.ob1_u, None, 1),
                (Kind::BookTicker, false) => (&s.book, s.update_id, None, 1),
                (_, true) => (&s.emitted, s.ob50_u, None, MAX_LEVELS),
                (_, false) => (&s.emitted, s.last_depth_u, None, 400),
            };
            let (bids, asks) = book.top(levels);
            let checksum = if okx && kind == Kind::Depth && self.okx_checksum {
                render::okx_checksum(&bids, &asks, info.decimals)
            } else {
                0
            };
            BookMsg {
                kind,
                snapshot: true,
                first_id: last_id,
                last_id,
                prev_id,
                cross_seq: if kind == Kind::Depth {
                    s.last_depth_u
                } else {
                    s.update_id
                },
                ts_ms: e_ms,
                t_ms: e_ms.saturating_sub(1),
                best_ask: book.best_ask().map(|a| a.0),
                bids,
                asks,
                checksum,
            }
        };
        match kind {
            Kind::BookTicker | Kind::Depth if bybit || okx => {
                let m = book_msg(kind);
                Some(Snap {
                    gen: self.gen,
                    payload: render::book(self.venue, info, &m, spot),
                    seq: m.last_id,
                    prev_seq: None,
                    event_time_ms: e_ms,
                    full_book: kind == Kind::Depth,
                })
            }
            Kind::MarkPrice if self.venue == SimVenue::BybitLinear => {
                let mut m = self.mark_msg(i, e_ms);
                m.next_funding_ms = render::next_funding(e_ms);
                Some(Snap {
                    gen: self.gen,
                    payload: render::bybit_ticker(self.venue, info, &m, true),
                    seq: m.cross_seq,
                    prev_seq: None,
                    event_time_ms: e_ms,
                    full_book: false,
                })
            }
            _ => None,
        }
    }

    /// Binance REST depth: the best `limit` levels of the live book and its
    /// update id, or with `stale` the book as it was before the first change.
    pub(crate) fn rest_depth(&self, i: usize, limit: usize, stale: bool) -> (u64, Levels, Levels) {
        let s = &self.syms[i];
        let (id, book) = if stale {
            (s.initial_id, &s.initial)
        } else {
            (s.update_id, &s.book)
        };
        let (b, a) = book.top(limit);
        (id, b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market(syms: &[&str], seed: u64, venue: SimVenue) -> Market {
        let info = syms.iter().map(|s| SymInfo::of(s)).collect();
        Market::new(Arc::new(info), seed, venue, true)
    }

    #[test]
    fn market_is_deterministic_and_consistent() {
        let mut a = market(&["BTCUSDT", "XRPUSDT"], 7, SimVenue::Binance);
        let mut b = market(&["BTCUSDT", "XRPUSDT"], 7, SimVenue::Binance);
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
        let m: serde_json::Value = serde_json::from_str(&a.mark(1, 3)[0].payload).expect("json");
        assert_eq!(m["e"], "markPriceUpdate");
        assert_eq!(m["s"], "XRPUSDT");
        assert!(t2.gen > t1.gen && d2.gen > d1.gen);
    }

    #[test]
    fn diffs_rebuild_the_book_and_it_never_crosses() {
        let mut m = market(&["ETHUSDT"], 3, SimVenue::Binance);
        let (id0, start) = m.live_book(0);
        let mut local = start.clone();
        let mut local_id = id0;
        for k in 0..2_000u64 {
            m.book_change(0, k);
            let (_, book) = m.live_book(0);
            let (b, a) = (book.best_bid().expect("bid"), book.best_ask().expect("ask"));
            assert!(b.0 < a.0, "crossed at change {k}");
            assert!(book.bids.len() <= MAX_LEVELS && book.asks.len() <= MAX_LEVELS);
            assert!(book.bids.len() >= MIN_LEVELS && book.asks.len() >= MIN_LEVELS);
            if k % 7 == 0 {
                let ev = m.depth(0, k).expect("changed");
                let msg = ev.book.as_deref().expect("book msg");
                assert_eq!(msg.first_id, local_id + 1);
                let diff = Book {
                    bids: msg.bids.iter().copied().collect(),
                    asks: msg.asks.iter().copied().collect(),
                };
                local.apply(&diff);
                local_id = msg.last_id;
                assert_eq!(&local, m.live_book(0).1, "book after diff {local_id}");
            }
        }
    }
}
