//! A venue defined in config ([`SimVenue::Defined`](super::config::SimVenue::Defined)),
//! spoken from its definition alone: its path, its stream names, and its data
//! messages built by setting each of the definition's pointers (no code for
//! any particular venue). The requests (and stream names as requested) are
//! `defined_proto.rs`.
//!
//! Numbering, per stream, from the market's own counters: a quote channel's
//! `+1` number is the symbol's book update id (one per book change, so one
//! per message); `increasing` is `n + n / 4` of it (strictly increasing, a
//! hole after every fourth); `none` sends no number. A trade channel numbers
//! its messages by the symbol's trade count (one per trade message), or,
//! with `several`, each update by its own trade id (a message of trades
//! `first..=last`, consecutive across messages). Prices and sizes are strings,
//! as the venues send them; times are in the channel's unit.

use std::io;
use std::time::Duration;

use serde_json::Value;

use super::base::Kind;
use super::config::{SimConfig, SimVenue};
use super::format::{fixed, qty};
use super::jsonset::{literal, set, set_absent};
use super::render::{self, BookMsg, TradeMsg};
use super::symbol::SymInfo;
use crate::venue::defined::spec::{
    BinaryFormat, ChannelSpec, SeqSpec, TickKind, TimeUnit, VenueSpec, When,
};
use crate::venue::defined::Defined;
use crate::venue::{sbe, Venue};

/// A data message of a defined venue, and its numbering as recorded in
/// ground truth (see [`SentRecord`](super::observe::SentRecord)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    /// The message.
    pub payload: String,
    /// The last sequence number it carries (`none`: the simulator's own
    /// message number).
    pub seq: u64,
    /// `+1`: the number before its first; else `None`.
    pub prev_seq: Option<u64>,
    /// With the definition's `binary`: the message as the binary frame the
    /// venue sends instead (`payload` is its JSON form).
    pub binary: Option<Vec<u8>>,
}

/// A book message as `venue` sends it (`spot`: OKX's spot instrument), with its numbering:
/// a defined venue's from its definition (`None` without a quote channel), a built-in venue's
/// rendered.
pub(crate) fn book_wire(venue: SimVenue, s: &SymInfo, m: &BookMsg, spot: bool) -> Option<Wire> {
    match venue {
        SimVenue::Defined(v) => quote(v, s, m),
        _ => Some(Wire {
            payload: render::book(venue, s, m, spot),
            seq: m.last_id,
            prev_seq: m.prev_id,
            binary: None,
        }),
    }
}

/// A trade message as `venue` sends it, as [`book_wire`] does a book message.
pub(crate) fn trade_wire(venue: SimVenue, s: &SymInfo, t: &TradeMsg) -> Option<Wire> {
    match venue {
        SimVenue::Defined(v) => trade(v, s, t),
        _ => Some(Wire {
            payload: render::trade(venue, s, t, false),
            seq: t.id,
            prev_seq: None,
            binary: None,
        }),
    }
}

/// The definition of `venue` (checked when the simulator starts).
pub(crate) fn spec(venue: Venue) -> &'static VenueSpec {
    Defined::of(venue)
        .expect("a defined venue (checked at start)")
        .spec()
}

/// Why `venue` cannot be simulated, if it cannot.
pub(crate) fn check(venue: Venue) -> Result<(), String> {
    if Defined::of(venue).is_none() {
        return Err(format!(
            "venue '{}' has no [[venues]] definition the simulator could speak",
            venue.name()
        ));
    }
    Ok(())
}

/// Each configured symbol's names, with its name on a defined venue
/// ([`SimConfig::venue_symbols`]); refuses what a defined venue cannot serve.
pub(crate) fn symbols(cfg: &SimConfig) -> io::Result<Vec<SymInfo>> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let mut info: Vec<SymInfo> = cfg.symbols.iter().map(|s| SymInfo::of(s)).collect();
    let SimVenue::Defined(venue) = cfg.venue else {
        return Ok(info);
    };
    check(venue).map_err(bad)?;
    if !cfg.accounts.is_empty() {
        return Err(bad(format!(
            "venue '{}': a defined venue has no private streams (accounts)",
            venue.name()
        )));
    }
    if !cfg.venue_symbols.is_empty() {
        if cfg.venue_symbols.len() != info.len() {
            return Err(bad(format!(
                "venue_symbols names {} symbols; symbols lists {}",
                cfg.venue_symbols.len(),
                info.len()
            )));
        }
        for (s, name) in info.iter_mut().zip(&cfg.venue_symbols) {
            if name.is_empty() || name.contains(['"', '\\']) {
                return Err(bad(format!(
                    "venue symbol '{name}' is empty or holds a quote"
                )));
            }
            s.venue = name.clone();
        }
    }
    Ok(info)
}

/// A stream's name as the definition writes it.
pub(crate) fn stream_name(spec: &VenueSpec, channel: &str, symbol: &str) -> String {
    spec.stream_name
        .replace("{channel}", channel)
        .replace("{symbol}", symbol)
}

/// The simulator's kind of a channel's ticks.
pub(crate) fn kind_of(tick: TickKind) -> Kind {
    match tick {
        TickKind::Quote => Kind::BookTicker,
        TickKind::Trade => Kind::AggTrade,
    }
}

/// The name of the channel of the simulator's `kind` (empty without one).
pub(crate) fn channel_name(spec: &VenueSpec, kind: Kind) -> &str {
    spec.channels
        .iter()
        .find(|c| kind_of(c.tick) == kind)
        .map_or("", |c| c.name.as_str())
}

/// How long a connection of `venue` may send nothing before it is closed: a
/// venue whose client sends a keep-alive message closes after `idle` or two
/// of its intervals, whichever is longer; one whose client sends nothing
/// (WebSocket pings) never.
pub(crate) fn idle_limit(venue: Venue, idle: Option<Duration>) -> Option<Duration> {
    let k = spec(venue).keepalive.as_ref()?;
    k.message.as_ref()?;
    Some(idle?.max(Duration::from_millis(k.interval_ms) * 2))
}

/// The channel of a tick kind.
fn channel(spec: &VenueSpec, tick: TickKind) -> Option<&ChannelSpec> {
    spec.channels.iter().find(|c| c.tick == tick)
}

/// Sets the conditions of `when` on `root`: each `equals` value, and `true`
/// where a condition asks only for presence and nothing is there yet.
pub(crate) fn meet(root: &mut Value, when: &When) {
    for m in when.all() {
        match &m.equals {
            Some(v) => set(root, &m.pointer, literal(v)),
            None => set_absent(root, &m.pointer, Value::Bool(true)),
        }
    }
}

/// A channel's number for the message (or update) the market counts as `n`.
fn number(rule: SeqSpec, n: u64) -> Option<u64> {
    match rule {
        SeqSpec::PlusOne => Some(n),
        SeqSpec::Increasing => Some(n + n / 4),
        SeqSpec::None => None,
    }
}

/// An event time (Unix ms) in `unit`.
fn time_in(unit: TimeUnit, ms: u64) -> Value {
    match unit {
        TimeUnit::S => Value::from(ms as f64 / 1000.0),
        TimeUnit::Ms => Value::from(ms),
        TimeUnit::Us => Value::from(ms * 1_000),
        TimeUnit::Ns => Value::from(ms * 1_000_000),
    }
}

/// Sets a pointer of the channel, if the definition has it.
fn put(update: &mut Value, pointer: &Option<String>, value: Value) {
    if let Some(p) = pointer {
        set(update, p, value);
    }
}

/// The update's symbol, number and time.
fn common(c: &ChannelSpec, update: &mut Value, s: &SymInfo, n: u64, ms: u64) {
    put(update, &c.symbol, Value::from(s.venue.as_str()));
    if let Some(seq) = number(c.sequence_rule, n) {
        put(update, &c.sequence, Value::from(seq));
    }
    put(update, &c.time, time_in(c.time_unit, ms));
}

/// The whole message: the updates at the channel's payload, the stream named
/// as the definition's data envelope says, its conditions met.
fn envelope(spec: &VenueSpec, c: &ChannelSpec, s: &SymInfo, updates: Vec<Value>) -> String {
    let mut root = Value::Null;
    let payload = match c.several {
        true => Value::Array(updates),
        false => updates.into_iter().next().unwrap_or(Value::Null),
    };
    set(&mut root, &c.payload, payload);
    if let Some(p) = &spec.data.stream {
        set(
            &mut root,
            p,
            Value::from(stream_name(spec, &c.name, &s.venue)),
        );
    }
    if let Some(p) = &spec.data.channel {
        set(&mut root, p, Value::from(c.name.as_str()));
    }
    if let Some(w) = &spec.data.when {
        meet(&mut root, w);
    }
    root.to_string()
}

/// How a message of numbers `first..=last` is recorded.
fn recorded(c: &ChannelSpec, first: u64, last: u64, payload: String) -> Wire {
    let seq = number(c.sequence_rule, last).unwrap_or(last);
    let prev_seq = match c.sequence_rule {
        SeqSpec::PlusOne => first.checked_sub(1),
        _ => None,
    };
    Wire {
        payload,
        seq,
        prev_seq,
        binary: None,
    }
}

/// A top-of-book message (`None` for a depth message, which a defined venue
/// does not have, or without a quote channel).
pub(crate) fn quote(venue: Venue, s: &SymInfo, m: &BookMsg) -> Option<Wire> {
    let spec = spec(venue);
    let c = channel(spec, TickKind::Quote).filter(|_| m.kind == Kind::BookTicker)?;
    let mut u = Value::Null;
    let d = s.decimals;
    let mut level = |px: &Option<String>, sz: &Option<String>, l: Option<&(i64, u64)>| match l {
        Some(&(p, q)) => {
            put(&mut u, px, Value::from(fixed(p, d)));
            put(&mut u, sz, Value::from(qty(q)));
        }
        None => put(&mut u, px, Value::Null),
    };
    level(&c.bid_price, &c.bid_size, m.bids.first());
    level(&c.ask_price, &c.ask_size, m.asks.first());
    common(c, &mut u, s, m.last_id, m.ts_ms);
    let text = envelope(spec, c, s, vec![u]);
    let mut w = recorded(c, m.last_id, m.last_id, text);
    if spec.binary == Some(BinaryFormat::ParadexSbe) {
        let side =
            |l: Option<&(i64, u64)>| l.map(|&(p, q)| (mantissa(p, d), mantissa(q as i64, 3)));
        w.binary = Some(sbe::encode_bbo(
            micros(m.ts_ms),
            w.seq as i64,
            side(m.bids.first()),
            side(m.asks.first()),
            &s.venue,
        ));
    }
    Some(w)
}

/// A trade message: one update numbered `t.id`, or with `several` one update
/// per trade `t.first..=t.last` (the quantity split among them).
pub(crate) fn trade(venue: Venue, s: &SymInfo, t: &TradeMsg) -> Option<Wire> {
    let spec = spec(venue);
    let c = channel(spec, TickKind::Trade)?;
    let (first, last) = match c.several {
        true => (t.first, t.last),
        false => (t.id, t.id),
    };
    let n = last + 1 - first;
    let updates = (first..=last)
        .map(|id| {
            let mut u = Value::Null;
            put(&mut u, &c.price, Value::from(fixed(t.price, s.decimals)));
            put(&mut u, &c.size, Value::from(qty((t.qty / n).max(1))));
            let side = if t.taker_buy { &c.buy } else { &c.sell };
            put(
                &mut u,
                &c.side,
                Value::from(side.clone().unwrap_or_default()),
            );
            put(&mut u, &c.trade_id, Value::from(id.to_string()));
            common(c, &mut u, s, id, t.ts_ms);
            u
        })
        .collect();
    let text = envelope(spec, c, s, updates);
    let mut w = recorded(c, first, last, text);
    if spec.binary == Some(BinaryFormat::ParadexSbe) {
        // One trade a frame (`several` is not Paradex's).
        w.binary = Some(sbe::encode_trade(
            micros(t.ts_ms),
            w.seq as i64,
            t.id as i64,
            t.taker_buy,
            mantissa(t.price, s.decimals),
            mantissa(t.qty as i64, 3),
            micros(t.ts_ms),
            &s.venue,
        ));
    }
    Some(w)
}

/// `units` of `decimals` places as a mantissa of SBE's eight (places past eight dropped).
fn mantissa(units: i64, decimals: u32) -> i64 {
    match decimals <= sbe::DECIMALS {
        true => units * 10i64.pow(sbe::DECIMALS - decimals),
        false => units / 10i64.pow(decimals - sbe::DECIMALS),
    }
}

/// Unix ms as µs.
fn micros(ms: u64) -> i64 {
    (ms * 1_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times() {
        assert_eq!(number(SeqSpec::PlusOne, 7), Some(7));
        let inc: Vec<u64> = (1..=9)
            .filter_map(|n| number(SeqSpec::Increasing, n))
            .collect();
        assert_eq!(inc, [1, 2, 3, 5, 6, 7, 8, 10, 11]);
        assert_eq!(number(SeqSpec::None, 7), None);
        assert_eq!(time_in(TimeUnit::Us, 2), Value::from(2000));
        assert_eq!(time_in(TimeUnit::S, 1500), Value::from(1.5));
    }
}
