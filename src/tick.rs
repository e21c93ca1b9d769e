//! What the feed threads hand to the strategy thread: ticks and feed-health events.
//!
//! Everything here is `Copy` and allocation-free, so a feed thread can build and send it on the
//! hot path. Symbols are interned into [`SymbolId`]s at start-up; streams are indices into their
//! feed's stream list (see [`crate::strategy::Universe`] for the names).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Index of a feed (one connection's worth of streams) in the engine's feed list.
pub type FeedId = u16;

/// Interned symbol (the venue symbol, upper case, e.g. `BTCUSDT`). The same symbol on two venues
/// gets the same id, so cross-venue strategies compare ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolId(pub u16);

/// Levels carried by one depth chunk. A depth update with more levels is split into several
/// chunks with the same update ids (`part` counts up, `last` marks the final one).
pub const DEPTH_CHUNK_LEVELS: usize = 8;

/// One price level: price and quantity (quantity 0 removes the level).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Price.
    pub price: f64,
    /// Quantity at that price; 0 means the level is gone.
    pub qty: f64,
}

/// A slice of a depth-update event (Binance `depthUpdate`, Bybit `orderbook`, OKX `books`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthChunk {
    /// First book update id in the event (`U`).
    pub first_update_id: u64,
    /// Last book update id in the event (`u`).
    pub final_update_id: u64,
    /// `u` of the previous event on this stream (`pu`, USD-M only; 0 where the venue omits it).
    pub prev_final_update_id: u64,
    /// Number of bid levels at the front of `levels`.
    pub n_bids: u8,
    /// Number of ask levels following the bids.
    pub n_asks: u8,
    /// Chunk number within the event, from 0.
    pub part: u8,
    /// True on the event's final chunk.
    pub last: bool,
    /// The event is a full snapshot that replaces the book (Bybit and OKX `snapshot`).
    pub snapshot: bool,
    /// OKX's CRC32 of the top 25 levels after this event (0: none; OKX sends 0 since June 2026).
    pub checksum: i32,
    /// Most decimals of a price and of a size as the venue wrote them in this chunk (filled
    /// only when `checksum` is non-zero: the checksum is over the venue's strings).
    pub price_dp: u8,
    /// See `price_dp`.
    pub qty_dp: u8,
    /// Bids (`levels[..n_bids]`) then asks (`levels[n_bids..n_bids + n_asks]`).
    pub levels: [Level; DEPTH_CHUNK_LEVELS],
}

impl TickData {
    /// A quote from the best bid and the best ask, each (price, quantity).
    #[inline]
    pub fn quote((bid, bid_qty): (f64, f64), (ask, ask_qty): (f64, f64)) -> TickData {
        TickData::Quote {
            bid,
            bid_qty,
            ask,
            ask_qty,
        }
    }
}

impl DepthChunk {
    /// A chunk with no ids and no levels, to fill in.
    pub const EMPTY: DepthChunk = DepthChunk {
        first_update_id: 0,
        final_update_id: 0,
        prev_final_update_id: 0,
        n_bids: 0,
        n_asks: 0,
        part: 0,
        last: false,
        snapshot: false,
        checksum: 0,
        price_dp: 0,
        qty_dp: 0,
        levels: [Level {
            price: 0.0,
            qty: 0.0,
        }; DEPTH_CHUNK_LEVELS],
    };

    /// The bid levels of this chunk.
    pub fn bids(&self) -> &[Level] {
        &self.levels[..self.n_bids as usize]
    }
    /// The ask levels of this chunk.
    pub fn asks(&self) -> &[Level] {
        &self.levels[self.n_bids as usize..(self.n_bids + self.n_asks) as usize]
    }
}

/// The market data of a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TickData {
    /// Best bid and offer (Binance `bookTicker`).
    Quote {
        /// Best bid price.
        bid: f64,
        /// Quantity at the best bid.
        bid_qty: f64,
        /// Best ask price.
        ask: f64,
        /// Quantity at the best ask.
        ask_qty: f64,
    },
    /// A trade (Binance `aggTrade`).
    Trade {
        /// Price.
        price: f64,
        /// Quantity.
        qty: f64,
        /// True when the buyer was the maker (the aggressor sold).
        buyer_is_maker: bool,
    },
    /// Part of a depth update.
    Depth(DepthChunk),
    /// Mark price and funding (Binance `markPriceUpdate`).
    Mark {
        /// Mark price.
        mark: f64,
        /// Index price.
        index: f64,
        /// Current funding rate (fraction, e.g. 0.0001 = 1 bp).
        funding_rate: f64,
        /// Next funding time, Unix ms.
        next_funding_ms: u64,
    },
    /// A candlestick as it forms (Binance `kline`): every update of the same candle has the
    /// same `start_ms`; the last one has `closed` set.
    Candle {
        /// First trade price of the candle.
        open: f64,
        /// Highest trade price so far.
        high: f64,
        /// Lowest trade price so far.
        low: f64,
        /// Last trade price so far.
        close: f64,
        /// Base-asset volume so far.
        volume: f64,
        /// Candle start time, Unix ms.
        start_ms: u64,
        /// Candle close time, Unix ms (the last millisecond it covers).
        close_ms: u64,
        /// True when the candle is final.
        closed: bool,
    },
}

/// One parsed market-data update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// Feed that received it.
    pub feed: FeedId,
    /// Index of the stream within that feed.
    pub stream: u16,
    /// Interned symbol.
    pub symbol: SymbolId,
    /// The venue's sequence number for this stream: bookTicker `u`, aggTrade `a`, depth `u`,
    /// markPrice event time.
    pub seq: u64,
    /// Venue event time, Unix ms.
    pub event_time_ms: u64,
    /// Monotonic receive time ([`crate::clock::now_ns`]) taken when the frame was read.
    pub recv_ns: u64,
    /// The update itself.
    pub data: TickData,
}

/// Why a connection ended or could not be made. Travels into logs, gap records, metrics and
/// health events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisconnectReason {
    /// Host name did not resolve.
    Resolve,
    /// TCP connect did not finish within `connect_timeout_ms`.
    ConnectTimeout,
    /// TCP connect refused (nothing listening).
    ConnectRefused,
    /// TLS and WebSocket handshakes did not finish within `handshake_timeout_ms`.
    HandshakeTimeout,
    /// The server's certificate was rejected. Permanent.
    BadCertificate,
    /// Any other TLS failure.
    Tls,
    /// The upgrade was answered with this HTTP status instead of 101.
    Http {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` in seconds, when the server sent one.
        retry_after_s: Option<u32>,
    },
    /// The server sent a WebSocket Close frame with this code.
    CloseFrame {
        /// Close code (1000 normal, 1001 going away, 1008 policy, 1013 try again later, …).
        code: u16,
    },
    /// The TCP connection ended without a Close frame.
    Eof,
    /// Connection reset by peer.
    Reset,
    /// Another socket error.
    Io(#[serde(with = "io_kind")] std::io::ErrorKind),
    /// No frame for `stale_after_ms`, then no answer to our ping within `pong_timeout_ms`.
    PongTimeout,
    /// Subscriptions were not acknowledged within `ack_timeout_ms`.
    AckTimeout,
    /// A frame or message exceeded the configured size limit.
    TooLarge,
    /// The server broke the WebSocket protocol.
    Protocol,
    /// The venue rejected every stream of the feed. Permanent.
    AllStreamsRejected,
    /// The engine is shutting down.
    Shutdown,
    /// An account's private stream: the venue refused its credentials (key, signature,
    /// passphrase, IP whitelist, permissions), with its code. Permanent for that account.
    CredentialsRejected {
        /// The venue's error code (0 when it gives none).
        code: i64,
    },
    /// An account's private stream ended with its credential: a listen key expired, or the
    /// subscription was terminated. A new key or login and a new connection follow at once.
    UserStreamExpired,
}

/// `std::io::ErrorKind` in a capture: its name (`ConnectionReset`); a name this build does
/// not know reads back as `Other` (a reason's kind never changes a replayed decision).
mod io_kind {
    use std::io::ErrorKind;

    use serde::{Deserialize, Deserializer, Serializer};

    const KNOWN: [ErrorKind; 16] = [
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::ConnectionRefused,
        ErrorKind::ConnectionReset,
        ErrorKind::ConnectionAborted,
        ErrorKind::NotConnected,
        ErrorKind::AddrInUse,
        ErrorKind::AddrNotAvailable,
        ErrorKind::BrokenPipe,
        ErrorKind::AlreadyExists,
        ErrorKind::WouldBlock,
        ErrorKind::InvalidInput,
        ErrorKind::InvalidData,
        ErrorKind::TimedOut,
        ErrorKind::Interrupted,
        ErrorKind::UnexpectedEof,
    ];

    pub(super) fn serialize<S: Serializer>(k: &ErrorKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{k:?}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorKind, D::Error> {
        let name = String::deserialize(d)?;
        Ok(KNOWN
            .into_iter()
            .find(|k| format!("{k:?}") == name)
            .unwrap_or(ErrorKind::Other))
    }
}

impl DisconnectReason {
    /// Short names of the kinds of reason, indexed by [`DisconnectReason::kind`]: the label
    /// values of per-reason counters.
    pub const KINDS: [&'static str; 19] = [
        "resolve",
        "connect_timeout",
        "connect_refused",
        "handshake_timeout",
        "bad_certificate",
        "tls",
        "http",
        "close_frame",
        "eof",
        "reset",
        "io",
        "pong_timeout",
        "ack_timeout",
        "too_large",
        "protocol",
        "all_streams_rejected",
        "shutdown",
        "credentials_rejected",
        "user_stream_expired",
    ];

    /// This reason's index in [`DisconnectReason::KINDS`] (statuses and codes aside).
    pub fn kind(self) -> usize {
        match self {
            Self::Resolve => 0,
            Self::ConnectTimeout => 1,
            Self::ConnectRefused => 2,
            Self::HandshakeTimeout => 3,
            Self::BadCertificate => 4,
            Self::Tls => 5,
            Self::Http { .. } => 6,
            Self::CloseFrame { .. } => 7,
            Self::Eof => 8,
            Self::Reset => 9,
            Self::Io(_) => 10,
            Self::PongTimeout => 11,
            Self::AckTimeout => 12,
            Self::TooLarge => 13,
            Self::Protocol => 14,
            Self::AllStreamsRejected => 15,
            Self::Shutdown => 16,
            Self::CredentialsRejected { .. } => 17,
            Self::UserStreamExpired => 18,
        }
    }

    /// Retrying cannot help: the feed stops with a clear error instead of retrying forever.
    pub fn is_permanent(self) -> bool {
        match self {
            Self::BadCertificate | Self::AllStreamsRejected | Self::CredentialsRejected { .. } => {
                true
            }
            // 401/403: credentials or region refused; 404: the path does not exist.
            Self::Http { status, .. } => matches!(status, 400 | 401 | 403 | 404),
            _ => false,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Resolve => f.write_str("host name did not resolve"),
            Self::ConnectTimeout => f.write_str("TCP connect timed out"),
            Self::ConnectRefused => f.write_str("connection refused"),
            Self::HandshakeTimeout => f.write_str("TLS/WebSocket handshake timed out"),
            Self::BadCertificate => f.write_str("server certificate rejected"),
            Self::Tls => f.write_str("TLS error"),
            Self::Http {
                status,
                retry_after_s: Some(s),
            } => write!(f, "HTTP {status} on upgrade (Retry-After {s} s)"),
            Self::Http { status, .. } => write!(f, "HTTP {status} on upgrade"),
            Self::CloseFrame { code } => write!(f, "server closed with code {code}"),
            Self::Eof => f.write_str("connection closed without a close frame"),
            Self::Reset => f.write_str("connection reset by peer"),
            Self::Io(kind) => write!(f, "socket error: {kind}"),
            Self::PongTimeout => f.write_str("silent connection: no pong to our ping"),
            Self::AckTimeout => f.write_str("subscription not acknowledged in time"),
            Self::TooLarge => f.write_str("message over the size limit"),
            Self::Protocol => f.write_str("WebSocket protocol violation"),
            Self::AllStreamsRejected => f.write_str("the venue rejected every stream"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::CredentialsRejected { code } => {
                write!(
                    f,
                    "the venue refused the account's credentials (code {code})"
                )
            }
            Self::UserStreamExpired => {
                f.write_str("the private stream's listen key or login expired")
            }
        }
    }
}

/// Why a local order book stopped being trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookFault {
    /// The venue's update ids show an update was missed.
    Gap,
    /// The best bid reached the best ask.
    Crossed,
    /// OKX's checksum did not match the book.
    Checksum,
    /// No connection carried the feed for a while.
    Reconnect,
}

impl fmt::Display for BookFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BookFault::Gap => "missed update",
            BookFault::Crossed => "crossed book",
            BookFault::Checksum => "checksum mismatch",
            BookFault::Reconnect => "connection lost",
        })
    }
}

/// Feed-health events, delivered in order with the ticks of the same feed. Serialized (serde)
/// into a capture's `health.jsonl`, from which `wsfeed replay` reads them back.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Health {
    /// Connection `conn` (1 for the first) is up and its subscriptions are acknowledged.
    Connected {
        /// The feed's connection number.
        conn: u32,
    },
    /// Connection `conn` was lost and no other connection carries the feed: data from this feed
    /// is stale until `Recovered`.
    Disconnected {
        /// The feed's connection number.
        conn: u32,
        /// Why.
        reason: DisconnectReason,
    },
    /// Connection `conn` was lost while another connection of the feed (a hot standby) carries
    /// every stream: nothing is missed; the lost one reconnects.
    ConnectionLost {
        /// The feed's connection number.
        conn: u32,
        /// Why.
        reason: DisconnectReason,
    },
    /// Connection `old` was replaced by `new` before the venue would cut it (its age limit) or
    /// because a stream went silent on it; both overlapped, so nothing was missed.
    Rotated {
        /// The connection closed.
        old: u32,
        /// The connection that carries on.
        new: u32,
    },
    /// The venue's numbering shows that updates `from_seq..=to_seq` of a stream never arrived,
    /// on one connection or across an outage.
    Gap {
        /// Stream index within the feed.
        stream: u16,
        /// First missed id.
        from_seq: u64,
        /// Last missed id.
        to_seq: u64,
    },
    /// The local book of a stream cannot be trusted: no book ticks for it until
    /// `BookResynced`.
    BookInvalid {
        /// Stream index within the feed.
        stream: u16,
        /// Why.
        fault: BookFault,
    },
    /// The book of a stream was rebuilt from a fresh snapshot.
    BookResynced {
        /// Stream index within the feed.
        stream: u16,
    },
    /// First data after an outage arrived.
    Recovered {
        /// Last data before the loss → first data after, ms.
        gap_ms: u64,
        /// Detection of the loss → first data on the new connection, ms.
        reconnect_ms: u64,
        /// Connection attempts it took.
        attempts: u32,
    },
    /// A subscribed stream has been silent past its expected cadence while its connection lives.
    Stale {
        /// Stream index within the feed.
        stream: u16,
        /// How long it has been silent, ms.
        silent_ms: u64,
    },
    /// A stale stream delivered again.
    StreamResumed {
        /// Stream index within the feed.
        stream: u16,
        /// How long it had been silent, ms.
        silent_ms: u64,
    },
    /// The venue rejected a stream; it is not resubscribed.
    SubscriptionRejected {
        /// Stream index within the feed.
        stream: u16,
        /// The venue's error code.
        code: i64,
    },
    /// Too many consecutive failures: waiting `cooldown_ms` before the next try.
    CircuitOpen {
        /// Consecutive failures so far.
        failures: u32,
        /// Cooldown before the next attempt, ms.
        cooldown_ms: u64,
    },
    /// The feed stopped for good.
    Failed {
        /// Why.
        reason: DisconnectReason,
    },
}

/// A health event of a feed, as sent to the strategy thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthMsg {
    /// The feed it concerns.
    pub feed: FeedId,
    /// Monotonic time it happened ([`crate::clock::now_ns`]).
    pub at_ns: u64,
    /// The event.
    pub event: Health,
}

/// A message numbered in the order its feed produced it.
///
/// Ticks and health events travel on separate channels (ticks may be dropped when the strategy
/// falls behind, health events never are); the number lets the strategy thread merge the two
/// back into the feed's order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sequenced<T> {
    /// Position in the feed's output, from 0.
    pub seq: u64,
    /// The message.
    pub msg: T,
}
