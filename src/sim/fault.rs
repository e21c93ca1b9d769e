//! Scripted faults: the public [`Fault`] and [`BookFault`], and what each
//! does to a connection, decided without I/O (the serve loop carries it out).

use std::time::Duration;

use super::base::Kind;
use super::config::{SimConfig, SimVenue};
use super::format::json_str;
#[cfg(doc)]
use super::observe::{ConnInfo, SentRecord, SimSnapshot};
use super::protocol::Session;
use super::render::BookMsg;
use super::symbol::SymInfo;
use super::{binance, bybit, okx};

/// A scripted fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send a WebSocket Close frame with that code (reason `"sim close"`),
    /// wait briefly for the client's reply, then close TCP.
    Close {
        /// Close code.
        code: u16,
    },
    /// Abrupt TCP reset: `SO_LINGER` 0 and drop (RST), no close frame.
    Reset,
    /// Half-open: stop sending and reading (client pings go unanswered) for
    /// `duration`, then drop the socket silently (FIN, no close frame).
    Stall {
        /// How long the connection stays silent.
        duration: Duration,
    },
    /// Listener-level: close the listening socket so new connects get
    /// ECONNREFUSED, re-bind the same port when the period ends.
    Refuse {
        /// How long connects are refused.
        duration: Duration,
    },
    /// The next `count` upgrade requests get `429 Too Many Requests` with
    /// `Retry-After: <retry_after_s>`.
    Http429 {
        /// Number of upgrades to reject.
        count: u32,
        /// Value of the `Retry-After` header, in seconds.
        retry_after_s: u32,
    },
    /// The next `count` upgrade requests get `503 Service Unavailable`.
    Http503 {
        /// Number of upgrades to reject.
        count: u32,
    },
    /// One text frame that is not valid JSON (not recorded in `sent`).
    Malformed,
    /// A WebSocket Ping with a distinct payload; a matching Pong counts in
    /// `pongs_received`; no matching pong within 5 s closes with code 1008.
    ServerPing,
    /// Listener-level: the next `count` upgrade requests get HTTP `status`
    /// (e.g. 418 IP ban, 401, 403, 429, 503), with a `Retry-After` header when
    /// `retry_after_s` is given. Statuses outside 200–599 are sent as 500.
    /// Scripted rejections queue up in injection order. [`Fault::Http429`]
    /// and [`Fault::Http503`] are shorthands for this.
    Reject {
        /// HTTP status of the rejection.
        status: u16,
        /// Number of upgrades to reject.
        count: u32,
        /// Value of the `Retry-After` header in seconds; no header when `None`.
        retry_after_s: Option<u32>,
    },
    /// One text frame of `bytes` bytes (at least the envelope's own size,
    /// at most 64 MiB) that is valid JSON: on combined-stream paths
    /// `{"stream":"<first subscribed stream>","data":{"e":"padding","pad":"xx…"}}`
    /// (a delivering stream preferred; `<first symbol>@bookTicker` when
    /// nothing is subscribed), on raw `/ws` paths just the `data` object. Not
    /// recorded in `sent`.
    Oversized {
        /// Size of the frame's payload in bytes.
        bytes: usize,
    },
    /// One binary frame of 4 bytes (`DE AD BE EF`); not recorded in `sent`.
    Binary,
    /// One valid JSON text frame that is neither data, nor an ack, nor an
    /// error: `{"event":"mystery","x":1}`; not recorded in `sent`.
    UnknownMessage,
    /// `count` (at most 10 000) WebSocket Pings back to back, each with a
    /// distinct payload. Counted like [`Fault::ServerPing`] (`pings_sent`,
    /// `pongs_received`), with the same rule: each ping not answered by a
    /// matching Pong within the pong timeout closes the connection with 1008,
    /// so the client must answer all of them.
    PingFlood {
        /// Number of pings.
        count: u32,
    },
    /// The connection silently withholds the next `count` data messages it
    /// would have delivered (all its streams together, in delivery order; a
    /// muted stream's messages do not count): a within-connection sequence
    /// gap. Withheld messages are not recorded in `sent`; they are counted in
    /// [`SimSnapshot::withheld`] and [`ConnInfo::withheld`]. Injected again
    /// before the previous count is used up, the counts add up.
    DropNext {
        /// Number of data messages to withhold.
        count: u32,
    },
    /// Listener-level (acts on whichever connections subscribe next): the
    /// next `count` subscriptions — `SUBSCRIBE` requests, valid or not, and
    /// Binance pre-subscriptions in the upgrade URL — are silently ignored:
    /// no ack, no error, nothing subscribed. A connection whose URL
    /// subscription was ignored also leaves its first request unanswered (the
    /// client's check of what it is subscribed to), as a venue whose
    /// subscriptions are stuck would. Counted in
    /// [`SimSnapshot::subscribes_ignored`]. Injected again, the counts add up.
    IgnoreSubscribe {
        /// Number of `SUBSCRIBE` requests to ignore.
        count: u32,
    },
    /// On this connection, stop delivering the named stream (symbol case is
    /// ignored; otherwise the name must match the subscribed one, e.g.
    /// `"btcusdt@depth@100ms"`) until the connection ends, also if it is
    /// subscribed again. Other streams, acks and pings are unaffected; the
    /// stream stays listed in [`ConnInfo::streams`] and is listed in
    /// [`ConnInfo::muted`]. Muted messages are not recorded in `sent`.
    Mute {
        /// Stream name.
        stream: String,
    },
}

impl Fault {
    /// Whether the fault acts on the listener / upgrade rather than on a
    /// live connection.
    pub fn is_listener_fault(&self) -> bool {
        matches!(
            self,
            Fault::Refuse { .. }
                | Fault::Http429 { .. }
                | Fault::Http503 { .. }
                | Fault::Reject { .. }
                | Fault::IgnoreSubscribe { .. }
        )
    }
}

/// Order book faults, injected with `Sim::inject_book` /
/// `Sim::inject_book_on`. Each is deterministic and bounded: it acts on
/// exactly one message (or one REST response); injected again before it was
/// used, the counts add up. "Book messages" are the order book channels'
/// messages the generator produces — Binance `bookTicker` and depth, Bybit
/// `orderbook.1` and `orderbook.50` deltas, OKX `bbo-tbt` and `books`
/// updates — never the snapshot sent when a channel is subscribed.
///
/// (Kept out of [`Fault`] so that exhaustive matches on [`Fault`] elsewhere
/// keep compiling.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookFault {
    /// The next book message on the connection is withheld (not recorded in
    /// `Sim::sent`, counted in [`SimSnapshot::withheld`] and
    /// [`ConnInfo::withheld`]), leaving a gap in the venue's numbering.
    SkipSeq,
    /// The next book message that carries a chain gets a broken one; its
    /// data stays true. Binance depth: `U` and `pu` one higher (as if update
    /// `U` had been skipped). Bybit `orderbook.*`: `u` 1000 higher for that
    /// message only. OKX `books`: `prevSeqId` one less than the previous
    /// message's `seqId`. ([`SentRecord`] shows the values as sent.)
    BreakChain,
    /// The next book message crosses the book: a depth message gets an extra
    /// bid (quantity 1.000) at the true best ask price; a top-of-book message
    /// shows the bid price equal to the ask price. The rest stays true (an
    /// OKX checksum stays the true book's).
    CrossBook,
    /// OKX only: the next `books` update carries a wrong non-zero checksum
    /// (with [`SimConfig::okx_checksum`] off, a non-zero one where OKX sends
    /// 0). No effect on other venues.
    BadChecksum,
    /// Listener-level, Binance: the next REST depth snapshot (on any
    /// connection) is the book as it was before the simulator's first change,
    /// with that `lastUpdateId` — older than the `U` of any diff a client can
    /// have buffered. Counted in [`SimSnapshot::stale_snapshots_served`].
    SnapshotStale,
}

impl BookFault {
    /// Whether the fault acts on the listener (the next REST request).
    pub fn is_listener_fault(self) -> bool {
        matches!(self, BookFault::SnapshotStale)
    }
}

/// A fault on its way to a connection thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Injected {
    Std(Fault),
    Book(BookFault),
}

// ---------------------------------------------------------------------------
// What a fault does to a connection (carried out by the serve loop)

/// Payload of the malformed frame sent by [`Fault::Malformed`].
const MALFORMED: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":12"#;
/// Payload of the frame sent by [`Fault::UnknownMessage`].
const UNKNOWN_MESSAGE: &str = r#"{"event":"mystery","x":1}"#;
/// Payload of the frame sent by [`Fault::Binary`].
const BINARY: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];
/// Largest frame [`Fault::Oversized`] builds.
const MAX_OVERSIZED: usize = 64 << 20;
/// Most pings one [`Fault::PingFlood`] sends.
const MAX_PING_FLOOD: u32 = 10_000;
/// [`BookFault::BreakChain`] on Bybit: how far `u` jumps.
const BYBIT_U_JUMP: u64 = 1000;

/// How a connection fault ends its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Close frame with that code and reason, then close TCP.
    Close(u16, &'static str),
    /// Abrupt reset.
    Reset,
    /// Half-open stall for that long, then a silent drop.
    Stall(Duration),
}

/// What a connection fault does to its connection, decided without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// End the connection.
    End(Cut),
    /// Send one text frame that is not data (never recorded).
    Text(String),
    /// Send one binary frame.
    Binary(&'static [u8]),
    /// Send that many server pings, each awaiting its pong.
    Pings(u32),
    /// Withhold the next data messages ([`Fault::DropNext`]).
    Withhold(u64),
    /// Mute that stream (its normalised name) from now on ([`Fault::Mute`]).
    Mute(String),
    /// A listener fault: it never reaches a connection.
    None,
}

/// What `fault` does on a connection with session `session` (the venue's
/// stream names normalised with `cfg` and `info`).
pub(crate) fn action(fault: Fault, session: &Session, cfg: &SimConfig, info: &[SymInfo]) -> Action {
    match fault {
        Fault::Close { code } => Action::End(Cut::Close(code, "sim close")),
        Fault::Reset => Action::End(Cut::Reset),
        Fault::Stall { duration } => Action::End(Cut::Stall(duration)),
        Fault::Malformed => Action::Text(MALFORMED.to_string()),
        Fault::ServerPing => Action::Pings(1),
        Fault::PingFlood { count } => Action::Pings(count.min(MAX_PING_FLOOD)),
        Fault::Oversized { bytes } => Action::Text(padding_frame(bytes, session, &cfg.symbols)),
        Fault::Binary => Action::Binary(&BINARY),
        Fault::UnknownMessage => Action::Text(UNKNOWN_MESSAGE.to_string()),
        Fault::DropNext { count } => Action::Withhold(u64::from(count)),
        Fault::Mute { stream } => Action::Mute(match session.venue {
            SimVenue::Binance => binance::normalise(&cfg.symbols, &stream),
            SimVenue::BybitSpot | SimVenue::BybitLinear => bybit::normalise(info, &stream),
            SimVenue::Okx => okx::normalise(info, &stream),
            SimVenue::Defined(_) => stream,
        }),
        // Listener faults never reach a connection.
        Fault::Refuse { .. }
        | Fault::Http429 { .. }
        | Fault::Http503 { .. }
        | Fault::Reject { .. }
        | Fault::IgnoreSubscribe { .. } => Action::None,
    }
}

/// The [`Fault::Oversized`] frame: valid JSON of exactly
/// `max(bytes, envelope size)` bytes (`bytes` capped at
/// [`MAX_OVERSIZED`]), in the envelope of the first subscribed stream
/// (preferring one that delivers) on combined-stream paths.
fn padding_frame(bytes: usize, session: &Session, symbols: &[String]) -> String {
    let head = if session.wrapped {
        let stream = session
            .subs
            .iter()
            .find(|s| s.delivers && !s.muted)
            .or_else(|| session.subs.first())
            .map(|s| s.name.clone())
            .unwrap_or_else(|| {
                let sym = symbols
                    .first()
                    .map_or("btcusdt".into(), |s| s.to_ascii_lowercase());
                format!("{sym}@bookTicker")
            });
        let stream = json_str(&stream);
        format!(r#"{{"stream":{stream},"data":{{"e":"padding","pad":""#)
    } else {
        r#"{"e":"padding","pad":""#.to_string()
    };
    let tail = if session.wrapped { r#""}}"# } else { r#""}"# };
    let pad = bytes
        .min(MAX_OVERSIZED)
        .saturating_sub(head.len() + tail.len());
    let mut text = String::with_capacity(head.len() + pad + tail.len());
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str(tail);
    text
}

/// Book faults armed on a connection, waiting for their message
/// ([`BookFault`]).
#[derive(Debug, Default)]
pub(crate) struct BookFaults {
    skip: u64,
    break_chain: u64,
    cross: u64,
    bad_checksum: u64,
}

impl BookFaults {
    /// Arms `fault`; false for a listener-level one (never sent to a
    /// connection, not counted).
    pub(crate) fn arm(&mut self, fault: BookFault) -> bool {
        match fault {
            BookFault::SkipSeq => self.skip += 1,
            BookFault::BreakChain => self.break_chain += 1,
            BookFault::CrossBook => self.cross += 1,
            BookFault::BadChecksum => self.bad_checksum += 1,
            BookFault::SnapshotStale => return false,
        }
        true
    }

    /// Whether a book message about to be delivered is withheld
    /// ([`BookFault::SkipSeq`], consumed).
    pub(crate) fn skip(&mut self) -> bool {
        let skip = self.skip > 0;
        if skip {
            self.skip -= 1;
        }
        skip
    }

    /// The faulty variant of a book message, if an armed fault applies to it
    /// (consuming that fault).
    pub(crate) fn faulty(&mut self, venue: SimVenue, msg: &BookMsg) -> Option<BookMsg> {
        let chained = msg.kind == Kind::Depth || (msg.kind == Kind::BookTicker && venue.is_bybit());
        let brk = self.break_chain > 0 && chained;
        let cross = self.cross > 0;
        let bad_cs = self.bad_checksum > 0 && venue == SimVenue::Okx && msg.kind == Kind::Depth;
        if !(brk || cross || bad_cs) {
            return None;
        }
        let mut m = msg.clone();
        if brk {
            self.break_chain -= 1;
            match venue {
                SimVenue::Binance => {
                    m.first_id += 1;
                    m.prev_id = m.prev_id.map(|p| p + 1);
                }
                SimVenue::BybitSpot | SimVenue::BybitLinear => m.last_id += BYBIT_U_JUMP,
                SimVenue::Okx => m.prev_id = m.prev_id.map(|p| p.saturating_sub(1)),
                // No chained channel: never here.
                SimVenue::Defined(_) => {}
            }
        }
        if cross {
            self.cross -= 1;
            match m.kind {
                Kind::Depth => {
                    if let Some(ask) = m.best_ask {
                        m.bids.retain(|&(p, _)| p != ask);
                        m.bids.insert(0, (ask, 1000));
                    }
                }
                _ => {
                    if let Some(&(ask, _)) = m.asks.first() {
                        let q = m.bids.first().map_or(1000, |b| b.1);
                        m.bids = vec![(ask, q)];
                    }
                }
            }
        }
        if bad_cs {
            self.bad_checksum -= 1;
            let wrong = m.checksum ^ 0x0101_0101;
            m.checksum = if wrong == 0 { 1 } else { wrong };
        }
        Some(m)
    }
}
