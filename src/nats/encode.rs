//! Subjects and payloads of the NATS sink (docs/NATS.md): pure, no I/O, run on the sink thread.
//!
//! Subjects: `<prefix>.<venue>.<symbol>.<channel>` for ticks (`wsfeed.binance-spot.BTCUSDT.
//! bookTicker`), `<prefix>.health.<feed>` for health events. A token keeps its name with `.`,
//! `*`, `>` and white space (which NATS gives meaning) written as `_`: Bybit's `orderbook.50` is
//! `orderbook_50`.
//!
//! Payload: one JSON object per message, version 1 (`"v":1`), fields in a fixed order; numbers
//! as JSON numbers (a value the venue left out, NaN, is `null`); times in Unix ns or ms.

use std::fmt::Write as _;

use crate::clock;
use crate::strategy::Universe;
use crate::tick::{DisconnectReason, Health, HealthMsg, Tick, TickData};

/// The payload format's version, `"v"` in every message.
pub const VERSION: u32 = 1;

/// A subject token: `name` with the characters NATS reserves (`.`, `*`, `>`, white space)
/// written as `_`; an empty name is `_`.
pub fn token(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    name.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// Every subject of a run, worked out once at start from the engine's universe.
#[derive(Clone, Debug)]
pub struct Subjects {
    /// By feed, then stream index.
    ticks: Vec<Vec<String>>,
    /// By feed.
    health: Vec<String>,
    /// `<prefix>.>`: what the stream captures.
    pub wildcard: String,
}

impl Subjects {
    /// The subjects of `universe` under `prefix`.
    pub fn new(prefix: &str, universe: &Universe) -> Subjects {
        let ticks = universe
            .feeds
            .iter()
            .map(|f| {
                f.streams
                    .iter()
                    .map(|s| {
                        format!(
                            "{prefix}.{}.{}.{}",
                            token(f.venue.name()),
                            token(&s.symbol),
                            token(s.channel_name())
                        )
                    })
                    .collect()
            })
            .collect();
        let health = universe
            .feeds
            .iter()
            .map(|f| format!("{prefix}.health.{}", token(&f.name)))
            .collect();
        Subjects {
            ticks,
            health,
            wildcard: format!("{prefix}.>"),
        }
    }

    /// The subject of a tick of `feed`'s stream `stream`.
    pub fn tick(&self, feed: u16, stream: u16) -> Option<&str> {
        self.ticks
            .get(usize::from(feed))?
            .get(usize::from(stream))
            .map(String::as_str)
    }

    /// The subject of `feed`'s health events.
    pub fn health(&self, feed: u16) -> Option<&str> {
        self.health.get(usize::from(feed)).map(String::as_str)
    }
}

/// Writes a JSON number, or `null` for NaN and infinities.
fn num(out: &mut String, x: f64) {
    if x.is_finite() {
        // Debug keeps the point (`3.0`) and writes exponents as JSON does (`1e-7`).
        let _ = write!(out, "{x:?}");
    } else {
        out.push_str("null");
    }
}

/// Writes a JSON string (names from the config: quotes and control characters escaped).
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `,"key":` then the string.
fn field_str(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, ",\"{key}\":");
    string(out, value);
}

/// Writes `,"key":` then the number.
fn field_num(out: &mut String, key: &str, value: f64) {
    let _ = write!(out, ",\"{key}\":");
    num(out, value);
}

fn levels(out: &mut String, key: &str, levels: &[crate::tick::Level]) {
    let _ = write!(out, ",\"{key}\":[");
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        num(out, l.price);
        out.push(',');
        num(out, l.qty);
        out.push(']');
    }
    out.push(']');
}

/// Writes tick `t`, the sink's message number `n`, into `out` (cleared first).
pub fn tick(out: &mut String, universe: &Universe, n: u64, t: &Tick) {
    out.clear();
    let feed = universe.feeds.get(usize::from(t.feed));
    let def = feed.and_then(|f| f.streams.get(usize::from(t.stream)));
    let _ = write!(out, "{{\"v\":{VERSION},\"n\":{n},\"type\":\"tick\"");
    field_str(out, "venue", feed.map_or("?", |f| f.venue.name()));
    field_str(out, "feed", feed.map_or("?", |f| f.name.as_str()));
    field_str(out, "symbol", def.map_or("?", |d| d.symbol.as_str()));
    field_str(out, "channel", def.map_or("?", |d| d.channel_name()));
    field_str(out, "stream", def.map_or("?", |d| d.name.as_str()));
    let _ = write!(
        out,
        ",\"seq\":{},\"event_ms\":{},\"recv_ns\":{}",
        t.seq,
        t.event_time_ms,
        clock::mono_to_unix_ns(t.recv_ns)
    );
    match &t.data {
        TickData::Quote {
            bid,
            bid_qty,
            ask,
            ask_qty,
        } => {
            out.push_str(",\"kind\":\"quote\"");
            field_num(out, "bid", *bid);
            field_num(out, "bid_qty", *bid_qty);
            field_num(out, "ask", *ask);
            field_num(out, "ask_qty", *ask_qty);
        }
        TickData::Trade {
            price,
            qty,
            buyer_is_maker,
        } => {
            out.push_str(",\"kind\":\"trade\"");
            field_num(out, "price", *price);
            field_num(out, "qty", *qty);
            let _ = write!(out, ",\"buyer_is_maker\":{buyer_is_maker}");
        }
        TickData::Depth(c) => {
            let _ = write!(
                out,
                ",\"kind\":\"depth\",\"first_id\":{},\"final_id\":{},\"prev_final_id\":{},\
                 \"part\":{},\"last\":{},\"snapshot\":{}",
                c.first_update_id,
                c.final_update_id,
                c.prev_final_update_id,
                c.part,
                c.last,
                c.snapshot
            );
            levels(out, "bids", c.bids());
            levels(out, "asks", c.asks());
        }
        TickData::Mark {
            mark,
            index,
            funding_rate,
            next_funding_ms,
        } => {
            out.push_str(",\"kind\":\"mark\"");
            field_num(out, "mark", *mark);
            field_num(out, "index", *index);
            field_num(out, "funding_rate", *funding_rate);
            let _ = write!(out, ",\"next_funding_ms\":{next_funding_ms}");
        }
        TickData::Candle {
            open,
            high,
            low,
            close,
            volume,
            start_ms,
            close_ms,
            closed,
        } => {
            out.push_str(",\"kind\":\"candle\"");
            field_num(out, "open", *open);
            field_num(out, "high", *high);
            field_num(out, "low", *low);
            field_num(out, "close", *close);
            field_num(out, "volume", *volume);
            let _ = write!(
                out,
                ",\"start_ms\":{start_ms},\"close_ms\":{close_ms},\"closed\":{closed}"
            );
        }
    }
    out.push('}');
}

/// The name of a health event in the payload's `"event"`.
pub fn health_name(h: &Health) -> &'static str {
    match h {
        Health::Connected { .. } => "connected",
        Health::Disconnected { .. } => "disconnected",
        Health::ConnectionLost { .. } => "connection_lost",
        Health::Rotated { .. } => "rotated",
        Health::Gap { .. } => "gap",
        Health::BookInvalid { .. } => "book_invalid",
        Health::BookResynced { .. } => "book_resynced",
        Health::Recovered { .. } => "recovered",
        Health::Stale { .. } => "stale",
        Health::StreamResumed { .. } => "stream_resumed",
        Health::SubscriptionRejected { .. } => "subscription_rejected",
        Health::CircuitOpen { .. } => "circuit_open",
        Health::Failed { .. } => "failed",
    }
}

/// Writes `,"reason":"<kind>"` and, for HTTP statuses and close frames, the code.
fn reason(out: &mut String, r: DisconnectReason) {
    field_str(out, "reason", DisconnectReason::KINDS[r.kind()]);
    match r {
        DisconnectReason::Http { status, .. } => {
            let _ = write!(out, ",\"status\":{status}");
        }
        DisconnectReason::CloseFrame { code } => {
            let _ = write!(out, ",\"close_code\":{code}");
        }
        _ => {}
    }
}

/// Writes the stream a health event concerns: its index and name.
fn stream(out: &mut String, universe: &Universe, feed: u16, stream: u16) {
    let name = universe
        .feeds
        .get(usize::from(feed))
        .and_then(|f| f.streams.get(usize::from(stream)))
        .map_or("?", |d| d.name.as_str());
    field_str(out, "stream", name);
}

/// Writes health event `h`, the sink's message number `n`, into `out` (cleared first).
pub fn health(out: &mut String, universe: &Universe, n: u64, h: &HealthMsg) {
    out.clear();
    let feed = universe.feeds.get(usize::from(h.feed));
    let _ = write!(out, "{{\"v\":{VERSION},\"n\":{n},\"type\":\"health\"");
    field_str(out, "venue", feed.map_or("?", |f| f.venue.name()));
    field_str(out, "feed", feed.map_or("?", |f| f.name.as_str()));
    let _ = write!(out, ",\"at_ns\":{}", clock::mono_to_unix_ns(h.at_ns));
    field_str(out, "event", health_name(&h.event));
    match h.event {
        Health::Connected { conn } => {
            let _ = write!(out, ",\"conn\":{conn}");
        }
        Health::Disconnected { conn, reason: r } | Health::ConnectionLost { conn, reason: r } => {
            let _ = write!(out, ",\"conn\":{conn}");
            reason(out, r);
        }
        Health::Rotated { old, new } => {
            let _ = write!(out, ",\"old\":{old},\"new\":{new}");
        }
        Health::Gap {
            stream: s,
            from_seq,
            to_seq,
        } => {
            stream(out, universe, h.feed, s);
            let _ = write!(out, ",\"from_seq\":{from_seq},\"to_seq\":{to_seq}");
        }
        Health::BookInvalid { stream: s, fault } => {
            stream(out, universe, h.feed, s);
            field_str(out, "fault", &fault.to_string());
        }
        Health::BookResynced { stream: s } => stream(out, universe, h.feed, s),
        Health::Recovered {
            gap_ms,
            reconnect_ms,
            attempts,
        } => {
            let _ = write!(
                out,
                ",\"gap_ms\":{gap_ms},\"reconnect_ms\":{reconnect_ms},\"attempts\":{attempts}"
            );
        }
        Health::Stale {
            stream: s,
            silent_ms,
        }
        | Health::StreamResumed {
            stream: s,
            silent_ms,
        } => {
            stream(out, universe, h.feed, s);
            let _ = write!(out, ",\"silent_ms\":{silent_ms}");
        }
        Health::SubscriptionRejected { stream: s, code } => {
            stream(out, universe, h.feed, s);
            let _ = write!(out, ",\"code\":{code}");
        }
        Health::CircuitOpen {
            failures,
            cooldown_ms,
        } => {
            let _ = write!(
                out,
                ",\"failures\":{failures},\"cooldown_ms\":{cooldown_ms}"
            );
        }
        Health::Failed { reason: r } => reason(out, r),
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::FeedInfo;
    use crate::tick::{DepthChunk, Level, SymbolId};
    use crate::venue::Venue;

    fn universe() -> Universe {
        let streams = ["btcusdt@bookTicker", "btcusdt@depth@100ms"]
            .iter()
            .map(|s| Venue::BinanceSpot.parse_stream(s).expect("a valid stream"))
            .collect();
        Universe {
            feeds: vec![FeedInfo {
                name: "spot main".into(),
                venue: Venue::BinanceSpot,
                url: "ws://127.0.0.1:1".into(),
                streams,
            }],
            symbols: vec!["BTCUSDT".into()],
        }
    }

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    #[test]
    fn subjects_name_venue_symbol_and_channel_with_reserved_characters_replaced() {
        let s = Subjects::new("wsfeed", &universe());
        assert_eq!(s.tick(0, 0), Some("wsfeed.binance-spot.BTCUSDT.bookTicker"));
        assert_eq!(
            s.tick(0, 1),
            Some("wsfeed.binance-spot.BTCUSDT.depth@100ms")
        );
        assert_eq!(s.health(0), Some("wsfeed.health.spot_main"));
        assert_eq!((s.tick(0, 2), s.tick(1, 0)), (None, None));
        assert_eq!(token("orderbook.50"), "orderbook_50");
        assert_eq!(token("a*b>c"), "a_b_c");
        assert_eq!(s.wildcard, "wsfeed.>");
    }

    #[test]
    fn a_quote_carries_its_venue_sequence_and_times() {
        let t = Tick {
            feed: 0,
            stream: 0,
            symbol: SymbolId(0),
            seq: 42,
            event_time_ms: 1_700_000_000_000,
            recv_ns: 5,
            data: TickData::quote((100.5, 2.0), (101.0, f64::NAN)),
        };
        let mut out = String::new();
        tick(&mut out, &universe(), 7, &t);
        let v = parse(&out);
        assert_eq!(v["v"], 1);
        assert_eq!(v["n"], 7);
        assert_eq!(v["type"], "tick");
        assert_eq!(v["venue"], "binance-spot");
        assert_eq!(v["symbol"], "BTCUSDT");
        assert_eq!(v["channel"], "bookTicker");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["event_ms"], 1_700_000_000_000u64);
        assert_eq!(v["recv_ns"], clock::mono_to_unix_ns(5));
        assert_eq!(v["kind"], "quote");
        assert_eq!(v["bid"], 100.5);
        assert!(v["ask_qty"].is_null());
    }

    #[test]
    fn a_depth_chunk_lists_its_levels() {
        let mut c = DepthChunk::EMPTY;
        c.first_update_id = 10;
        c.final_update_id = 12;
        c.n_bids = 1;
        c.n_asks = 2;
        c.last = true;
        c.levels[0] = Level {
            price: 1.5,
            qty: 3.0,
        };
        c.levels[1] = Level {
            price: 2.0,
            qty: 0.0,
        };
        c.levels[2] = Level {
            price: 2.5,
            qty: 1.0,
        };
        let t = Tick {
            feed: 0,
            stream: 1,
            symbol: SymbolId(0),
            seq: 12,
            event_time_ms: 1,
            recv_ns: 1,
            data: TickData::Depth(c),
        };
        let mut out = String::new();
        tick(&mut out, &universe(), 1, &t);
        let v = parse(&out);
        assert_eq!(v["kind"], "depth");
        assert_eq!(v["channel"], "depth@100ms");
        assert_eq!(v["bids"], serde_json::json!([[1.5, 3.0]]));
        assert_eq!(v["asks"], serde_json::json!([[2.0, 0.0], [2.5, 1.0]]));
        assert_eq!(v["last"], true);
    }

    #[test]
    fn health_events_name_their_event_and_stream() {
        let mut out = String::new();
        let msg = |event| HealthMsg {
            feed: 0,
            at_ns: 3,
            event,
        };
        health(
            &mut out,
            &universe(),
            9,
            &msg(Health::Disconnected {
                conn: 2,
                reason: DisconnectReason::CloseFrame { code: 1001 },
            }),
        );
        let v = parse(&out);
        assert_eq!(v["type"], "health");
        assert_eq!(v["feed"], "spot main");
        assert_eq!(v["event"], "disconnected");
        assert_eq!(v["reason"], "close_frame");
        assert_eq!(v["close_code"], 1001);
        assert_eq!(v["at_ns"], clock::mono_to_unix_ns(3));
        health(
            &mut out,
            &universe(),
            10,
            &msg(Health::Gap {
                stream: 1,
                from_seq: 5,
                to_seq: 6,
            }),
        );
        let v = parse(&out);
        assert_eq!(v["stream"], "btcusdt@depth@100ms");
        assert_eq!(
            (v["from_seq"].as_u64(), v["to_seq"].as_u64()),
            (Some(5), Some(6))
        );
    }
}
