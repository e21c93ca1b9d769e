//! `wsfeed::sim`: an embedded exchange simulator speaking Binance, Bybit v5
//! or OKX v5.
//!
//! One simulator speaks one venue's protocol ([`SimConfig::venue`]) on
//! `127.0.0.1` (or [`SimConfig::bind`]), over `ws://` or over `wss://` with a
//! certificate authority generated at start. It is used by the demo
//! (`wsfeed demo`), by integration tests, by benches and standalone by the
//! `wsfeed-sim` binary. `tests/fixtures/README.md` lists every message format
//! with the venue documentation it follows, and `tests/fixtures/` holds the
//! documentation's own example messages the tests compare against.
//!
//! # Architecture
//!
//! * **Acceptor thread** — waits (mio) on a non-blocking listener bound to
//!   `127.0.0.1:0` (by default), accepts as soon as a connection arrives and
//!   spawns one thread per accepted TCP connection. [`Fault::Refuse`] really
//!   closes the listening socket and re-binds the same port (with
//!   `SO_REUSEADDR`) when the period ends.
//! * **Generator thread** — one deterministic synthetic market (random walk
//!   from [`SimConfig::seed`]) with a real order book per symbol (price →
//!   quantity per side, 30 to 50 levels). Each book change is one update id;
//!   depth messages carry the final quantity of every level changed since the
//!   previous one, so a snapshot plus the following diffs rebuilds the book
//!   exactly. Every event is rendered once in the venue's format and
//!   broadcast to every connection through a bounded crossbeam channel, so
//!   all connections see the same sequence numbers at about the same time,
//!   exactly like the real venue.
//!   With [`SimConfig::shared`] the price path is not the simulator's own
//!   but a [`SharedMarket`]'s (see "Several venues, one market" below).
//! * **Connection threads** — non-blocking socket. The request head is read
//!   first: a plain HTTP request (no `Upgrade: websocket`) gets one REST
//!   response and `Connection: close`; an upgrade goes on to the WebSocket
//!   handshake. The thread then waits up to 1 ms on its event channel, writes
//!   the events the client is subscribed to, flushes, then reads whatever the
//!   client sent (requests, venue pings, WebSocket pings/pongs, close) and
//!   applies scripted faults. A data message becomes ground truth when it is
//!   handed to the WebSocket for writing, before anything can reach the
//!   kernel, so [`Sim::sent`] never misses a message a client may already have
//!   read (it is a superset: after an abrupt end the last few recorded
//!   messages may never have arrived).
//!
//! # Binance ([`SimVenue::Binance`], the default)
//!
//! Upgrade paths: `/stream`, `/ws`, `/public/stream`, `/public/ws`,
//! `/market/stream`, `/market/ws`, optionally with `?streams=a/b/c` (the
//! `/ws/<name>/<name>` raw form is accepted too). Other paths get HTTP 404; a
//! pre-subscription naming an unknown stream gets HTTP 400. Data frames on
//! `/stream` paths are wrapped as `{"stream":"<name>","data":<payload>}`, on
//! `/ws` paths the bare payload is sent.
//!
//! Supported streams (lowercase symbol): `<s>@bookTicker`, `<s>@aggTrade`,
//! `<s>@depth@100ms` (and `<s>@depth`), `<s>@markPrice` (and
//! `<s>@markPrice@1s`). Payloads use the USD-M futures field sets.
//!
//! With [`SimConfig::usdm_routing`] the simulator emulates the USD-M "Base
//! URL split": `bookTicker`/`depth` are *public* streams, `aggTrade`/
//! `markPrice` are *market* streams. A `/public/...` connection only delivers
//! public streams, `/market/...` only market streams, and the unrouted
//! `/stream` and `/ws` only public streams. Subscribing on the wrong route is
//! acknowledged with `{"result":null,"id":N}` but never delivers — the venue's
//! silent failure the engine must detect.
//!
//! REST on the same port: `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (spot)
//! and `GET /fapi/v1/depth?symbol=BTCUSDT&limit=N` (USD-M, adds `E`, `T`)
//! return the live book, consistent with the depth diffs (see the REST
//! module for limits and errors).
//!
//! # Bybit v5 ([`SimVenue::BybitSpot`], [`SimVenue::BybitLinear`])
//!
//! Path `/v5/public/spot` or `/v5/public/linear`. Requests
//! `{"op":"subscribe"|"unsubscribe","req_id":"…","args":[topics]}` and
//! `{"op":"ping","req_id":"…"}`; replies
//! `{"success":…,"ret_msg":…,"conn_id":…,"req_id":…,"op":…}`. Topics
//! `orderbook.1.<S>` (snapshots only), `orderbook.50.<S>` (a snapshot when
//! subscribed, then deltas; `u` consecutive per topic, `seq` the cross
//! sequence), `publicTrade.<S>`, `tickers.<S>` (linear: snapshot then deltas
//! with mark/index/funding; spot: snapshots). Spot rejects more than 10 args
//! per request (`"args size >10"`); an unknown topic fails the whole request
//! (`"error:handler not found,topic:<t>"`), as does a topic already
//! subscribed.
//!
//! # OKX v5 ([`SimVenue::Okx`])
//!
//! Path `/ws/v5/public`. Requests `{"id":"…","op":"subscribe"|"unsubscribe",
//! "args":[{"channel":…,"instId":…}]}` and the text `ping` (→ `pong`); one
//! `{"event":"subscribe","arg":…,"connId":…}` per argument, or
//! `{"event":"error","code":"60018",…}` for an argument that does not exist.
//! Channels `bbo-tbt`, `books` (snapshot with `prevSeqId` -1, then updates
//! chained by `prevSeqId`; `checksum` 0 unless [`SimConfig::okx_checksum`]),
//! `trades`, `mark-price`, `funding-rate` (swaps). A configured symbol
//! `BTCUSDT` is served as `BTC-USDT-SWAP` and `BTC-USDT` (same market).
//! Subscribing again to a channel starts it afresh with a new snapshot.
//!
//! Bybit and OKX connections that send no text frame for
//! [`SimConfig::idle_timeout`] are closed.
//!
//! # Several venues, one market
//!
//! Independent simulators run independent random walks that drift hundreds
//! of basis points apart. For a cross-venue view (arbitrage), start several
//! simulators — one per venue — on one [`SharedMarket`]
//! ([`SimConfig::shared`], or [`start_group`]): each quotes the shared price
//! with its own small mean-reverting offset (a few bp), a lag of a few
//! milliseconds and jittered update times, and now and then one venue is
//! dislocated by 10–40 bp for a fraction of a second (see
//! [`SharedMarketParams`]). Two venues' mids are never further apart than
//! [`SharedMarket::max_divergence_bps`]. Only the price path is shared: each
//! simulator keeps its own books, update ids, sequence numbers, trades and
//! ground truth.
//!
//! # Ground truth and faults
//!
//! [`Sim::sent`] returns every data message that may have reached a client
//! (connection, stream, the venue's sequence number as sent, its chain link,
//! kind, event time) in send order; messages withheld by [`Fault::DropNext`],
//! [`Fault::Mute`] or [`BookFault::SkipSeq`] and the frames of
//! [`Fault::Oversized`], [`Fault::Binary`], [`Fault::UnknownMessage`] and
//! [`Fault::Malformed`] are never recorded. [`SimConfig::max_conn_age`] cuts
//! connections like the venue's 24-hour limit. [`Sim::inject`] and
//! [`Sim::inject_on`] apply scripted [`Fault`]s, [`Sim::inject_book`] and
//! [`Sim::inject_book_on`] order book [`BookFault`]s; [`Sim::snapshot`] and
//! [`Sim::wait_until`] observe connections and counters without sleeping.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsfeed::sim::{Fault, Sim, SimConfig};
//!
//! let sim = Sim::start(SimConfig { tls: false, ..SimConfig::default() })?;
//! let url = format!("{}/public/stream?streams=btcusdt@bookTicker", sim.base_url());
//! // ... connect a client to `url` ...
//! assert!(sim.wait_until(Duration::from_secs(2), |s| s.connections.len() == 1));
//! sim.inject(Fault::Close { code: 1001 });
//! # Ok::<(), std::io::Error>(())
//! ```

mod base;
mod conn;
mod format;
mod market;
mod render;
pub mod replay;
mod rest;
mod rng;
mod shared;
mod symbol;
mod tls;
mod venue;

pub use self::shared::{SharedMarket, SharedMarketParams};

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use socket2::{Domain, Protocol, Socket, Type};

use self::base::lock;
use self::market::{Event, Market};
use self::symbol::SymInfo;

/// The longest the acceptor waits for a connection before it looks at shutdown and at the end
/// of a refusal period again. A connection wakes it at once.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// Upper bound between two re-evaluations of a [`Sim::wait_until`] predicate.
const WAIT_TICK: Duration = Duration::from_millis(50);

/// Configuration of a [`Sim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Serve `wss://` with a CA generated at start when true, plain `ws://` otherwise.
    pub tls: bool,
    /// Symbols, uppercase (e.g. `"BTCUSDT"`): Binance streams use them
    /// lowercase, Bybit as they are, OKX as `BTC-USDT-SWAP` and `BTC-USDT`
    /// (the longest known quote currency — USDT, USDC, USD, BTC, … — split
    /// off; a symbol without one is served as `<SYM>-SWAP` and `<SYM>`).
    pub symbols: Vec<String>,
    /// How often each symbol's book changes (one `bookTicker` / Bybit
    /// `orderbook.1` / OKX `bbo-tbt` message per change).
    pub book_interval: Duration,
    /// Trade cadence per symbol (`aggTrade`, `publicTrade`, `trades`).
    pub trade_interval: Duration,
    /// Depth diff cadence (Binance `@depth@100ms`, Bybit `orderbook.50`
    /// deltas, OKX `books` updates). A diff is only sent when the book
    /// changed since the previous one.
    pub depth_interval: Duration,
    /// `markPrice` (Bybit `tickers`, OKX `mark-price` and `funding-rate`)
    /// cadence per symbol.
    pub mark_price_interval: Duration,
    /// Like Binance's 24-hour cut: a connection older than this (counted from
    /// its upgrade) gets a Close frame with code 1001 and reason
    /// `"max connection age"` and is then closed (counted in
    /// [`SimSnapshot::age_closes`]). `None` (the default): no limit.
    pub max_conn_age: Option<Duration>,
    /// Emulate the USD-M Base URL split (public / market routes).
    pub usdm_routing: bool,
    /// Keep ground truth of every data message sent (see [`Sim::sent`]).
    pub record: bool,
    /// Seed of the deterministic synthetic market.
    pub seed: u64,
    /// Address the listener binds (default `127.0.0.1`). A TLS certificate is
    /// valid for it as well as for `localhost` / `127.0.0.1`.
    pub bind: IpAddr,
    /// Port the listener binds; 0 (the default) picks a free one.
    pub port: u16,
    /// The venue whose protocol this simulator speaks (one per simulator;
    /// default [`SimVenue::Binance`], the original behaviour).
    pub venue: SimVenue,
    /// Bybit and OKX only: a connection whose client sends no text frame (no
    /// request and no venue ping — WebSocket Ping/Pong frames do not count)
    /// for this long gets a Close frame (1001, `"idle timeout"`) and is
    /// closed, counted in [`SimSnapshot::idle_closes`]. `None`: never.
    /// Default 30 s (OKX's limit; Bybit cuts after about 10 minutes without
    /// a ping). Binance connections ignore it.
    pub idle_timeout: Option<Duration>,
    /// OKX only: compute the `books` checksum as OKX documents it (CRC32 of
    /// the best 25 bids and asks interleaved, signed 32-bit). When false (the
    /// default) every message carries `"checksum":0`, as OKX production does
    /// since 23 June 2026.
    pub okx_checksum: bool,
    /// Quote this [`SharedMarket`] instead of an independent market: the
    /// books follow the shared price path (with this venue's own small
    /// offset, lag, timing jitter and occasional dislocation) while ids,
    /// books, trades and ground truth stay this simulator's own; `seed` still
    /// drives the book details. Every configured symbol must be in the shared
    /// market ([`Sim::start`] fails with `InvalidInput` otherwise). `None`
    /// (the default): an independent random walk from `seed`, as always. See
    /// also [`start_group`].
    pub shared: Option<SharedMarket>,
}

/// The protocol a [`Sim`] speaks. See `tests/fixtures/README.md` for every
/// message format and its documentation page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SimVenue {
    /// Binance combined streams (spot and USD-M flavours, see
    /// [`SimConfig::usdm_routing`]) plus the REST depth snapshot
    /// (`/api/v3/depth`, `/fapi/v1/depth`) on the same port.
    #[default]
    Binance,
    /// Bybit v5 public spot: path `/v5/public/spot`.
    BybitSpot,
    /// Bybit v5 public linear (USDT perpetuals): path `/v5/public/linear`.
    BybitLinear,
    /// OKX v5 public: path `/ws/v5/public`.
    Okx,
}

impl SimVenue {
    /// Short name: `binance`, `bybit-spot`, `bybit-linear`, `okx`.
    pub fn name(self) -> &'static str {
        match self {
            SimVenue::Binance => "binance",
            SimVenue::BybitSpot => "bybit-spot",
            SimVenue::BybitLinear => "bybit-linear",
            SimVenue::Okx => "okx",
        }
    }

    /// Parses [`SimVenue::name`].
    pub fn from_name(name: &str) -> Option<SimVenue> {
        [
            SimVenue::Binance,
            SimVenue::BybitSpot,
            SimVenue::BybitLinear,
            SimVenue::Okx,
        ]
        .into_iter()
        .find(|v| v.name() == name)
    }

    /// The WebSocket path of a Bybit / OKX simulator (Binance has several).
    pub fn ws_path(self) -> Option<&'static str> {
        match self {
            SimVenue::Binance => None,
            SimVenue::BybitSpot => Some("/v5/public/spot"),
            SimVenue::BybitLinear => Some("/v5/public/linear"),
            SimVenue::Okx => Some("/ws/v5/public"),
        }
    }

    /// Bybit spot or linear.
    pub(crate) fn is_bybit(self) -> bool {
        matches!(self, SimVenue::BybitSpot | SimVenue::BybitLinear)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tls: true,
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
            book_interval: Duration::from_millis(5),
            trade_interval: Duration::from_millis(20),
            depth_interval: Duration::from_millis(100),
            mark_price_interval: Duration::from_secs(1),
            max_conn_age: None,
            usdm_routing: true,
            record: true,
            seed: 0x00C0_FFEE,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            venue: SimVenue::Binance,
            idle_timeout: Some(Duration::from_secs(30)),
            okx_checksum: false,
            shared: None,
        }
    }
}

/// Identifier of a simulator-side WebSocket connection: 1, 2, 3, … in the
/// order the WebSocket upgrades complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// What a data message was (see [`SentRecord::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SentKind {
    /// Top of book: Binance `bookTicker`, Bybit `orderbook.1`, OKX `bbo-tbt`.
    Quote,
    /// A full book snapshot: Bybit `orderbook.50` `snapshot`, OKX `books`
    /// `snapshot` (sent when the channel is subscribed).
    BookSnapshot,
    /// A book diff: Binance `depthUpdate`, Bybit `orderbook.50` `delta`, OKX
    /// `books` `update`.
    BookUpdate,
    /// Binance `aggTrade`, Bybit `publicTrade`, OKX `trades`.
    Trade,
    /// Binance `markPriceUpdate`, Bybit `tickers`, OKX `mark-price`.
    Mark,
    /// OKX `funding-rate`.
    Funding,
}

/// Ground truth of one data message the simulator handed to a client's
/// WebSocket for writing (see [`Sim::sent`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentRecord {
    /// Connection it was sent on.
    pub conn: ConnId,
    /// Stream name as subscribed: Binance `"btcusdt@bookTicker"`, Bybit the
    /// topic `"orderbook.50.BTCUSDT"`, OKX `"<channel>:<instId>"`, e.g.
    /// `"books:BTC-USDT-SWAP"`.
    pub stream: String,
    /// The venue's sequence number as sent: Binance `u` (bookTicker, depth),
    /// `a` (aggTrade), `E` (markPrice); Bybit `u` (orderbook), trade number
    /// (publicTrade; linear shows it as a UUID), `cs` (tickers); OKX `seqId`
    /// (books, bbo-tbt), `tradeId` (trades), `ts` (mark-price, funding-rate).
    pub seq: u64,
    /// The link to the previous message the payload carries, as sent:
    /// Binance depth `pu`, OKX books `prevSeqId` (`None` for a snapshot's -1);
    /// `None` for every other message.
    pub prev_seq: Option<u64>,
    /// What the message was.
    pub kind: SentKind,
    /// The payload's event time (Unix ms; Binance `E`, Bybit/OKX `ts`).
    pub event_time_ms: u64,
}

/// State of one simulator-side connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Connection id.
    pub id: ConnId,
    /// Upgrade path without query, e.g. `"/market/stream"`.
    pub path: String,
    /// Currently subscribed streams, in subscription order (including
    /// wrong-route streams that never deliver).
    pub streams: Vec<String>,
    /// False once the connection has been closed by either side.
    pub open: bool,
    /// Data messages handed to the WebSocket on this connection (recorded in
    /// [`Sim::sent`] when recording is on).
    pub messages_sent: u64,
    /// True while a [`Fault::Stall`] is in progress.
    pub stalled: bool,
    /// Data messages withheld on this connection by [`Fault::DropNext`] and
    /// [`BookFault::SkipSeq`].
    pub withheld: u64,
    /// Streams muted on this connection by [`Fault::Mute`] (normalised
    /// names, in the order they were muted).
    pub muted: Vec<String>,
}

/// A copy of the simulator's observable state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSnapshot {
    /// Every WebSocket connection ever upgraded, in id order (closed ones
    /// stay listed with `open == false`).
    pub connections: Vec<ConnInfo>,
    /// Upgrade requests answered with an HTTP error (scripted ones from
    /// [`Fault::Reject`], [`Fault::Http429`], [`Fault::Http503`], and 404, 400).
    pub upgrades_rejected: u64,
    /// Faults applied: one per listener fault injected, one per connection a
    /// connection fault was applied to.
    pub faults_injected: u64,
    /// Pongs received that matched a [`Fault::ServerPing`] or
    /// [`Fault::PingFlood`] payload.
    pub pongs_received: u64,
    /// Pings sent because of [`Fault::ServerPing`] and [`Fault::PingFlood`].
    pub pings_sent: u64,
    /// Data messages handed to the WebSocket, all connections together.
    pub messages_sent: u64,
    /// Subscribe requests received (Binance `SUBSCRIBE`, Bybit and OKX
    /// `"op":"subscribe"`; valid or not, ignored ones included).
    pub subscribe_requests: u64,
    /// `SUBSCRIBE` requests silently ignored because of
    /// [`Fault::IgnoreSubscribe`].
    pub subscribes_ignored: u64,
    /// Data messages withheld by [`Fault::DropNext`] and
    /// [`BookFault::SkipSeq`], all connections together (never recorded in
    /// [`Sim::sent`]).
    pub withheld: u64,
    /// Connections closed because they reached [`SimConfig::max_conn_age`].
    pub age_closes: u64,
    /// Bybit / OKX connections closed after [`SimConfig::idle_timeout`]
    /// without a client text frame.
    pub idle_closes: u64,
    /// Application-level pings answered: Bybit `{"op":"ping"}`, OKX `ping`.
    pub venue_pings: u64,
    /// Plain HTTP requests answered (REST depth snapshots and errors).
    pub rest_requests: u64,
    /// REST depth snapshots served stale by [`BookFault::SnapshotStale`].
    pub stale_snapshots_served: u64,
    /// When each TCP connection was accepted, in accept order (upgraded or
    /// not, REST requests included; refused connects never get here). Lets a
    /// test check a client's connect rate.
    pub accepts: Vec<Instant>,
}

impl SimSnapshot {
    /// The connection with that id, if any.
    pub fn conn(&self, id: ConnId) -> Option<&ConnInfo> {
        self.connections.iter().find(|c| c.id == id)
    }

    /// Connections that are still open.
    pub fn open_connections(&self) -> impl Iterator<Item = &ConnInfo> {
        self.connections.iter().filter(|c| c.open)
    }
}

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
    /// Listener-level (acts on whichever connections receive the next
    /// `SUBSCRIBE` requests): the next `count` `SUBSCRIBE` requests, valid or
    /// not, are silently ignored: no ack, no error, nothing subscribed.
    /// Counted in [`SimSnapshot::subscribes_ignored`]; pre-subscriptions in
    /// the upgrade URL are unaffected. Injected again, the counts add up.
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

/// Order book faults, injected with [`Sim::inject_book`] /
/// [`Sim::inject_book_on`]. Each is deterministic and bounded: it acts on
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
    /// [`Sim::sent`], counted in [`SimSnapshot::withheld`] and
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
// Shared state

/// A scripted HTTP rejection of upcoming upgrades.
#[derive(Debug, Clone)]
pub(crate) struct Reject {
    pub status: u16,
    pub retry_after_s: Option<u32>,
    pub remaining: u32,
}

/// Registry entry of a live or closed connection.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    pub info: ConnInfo,
    pub faults: Sender<Injected>,
}

/// Mutable state guarded by `Inner::state`.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Bumped on every notified change (lets `wait_until` avoid lost wake-ups).
    pub generation: u64,
    pub conns: BTreeMap<ConnId, ConnEntry>,
    pub next_conn_id: u64,
    pub counters: SimSnapshot,
    pub rejects: VecDeque<Reject>,
    pub refuse_until: Option<Instant>,
    /// `SUBSCRIBE` requests still to ignore ([`Fault::IgnoreSubscribe`]).
    pub ignore_subscribes: u64,
    /// REST snapshots still to serve stale ([`BookFault::SnapshotStale`]).
    pub stale_snapshots: u64,
}

/// A connection's event channel, fed by the generator.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub id: ConnId,
    pub tx: Sender<Arc<Event>>,
}

/// Everything the simulator threads share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub cfg: SimConfig,
    /// Names of each configured symbol on every venue.
    pub info: Arc<Vec<SymInfo>>,
    /// The synthetic market (generator, snapshots, REST).
    pub market: Mutex<Market>,
    pub port: u16,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub shutdown: AtomicBool,
    pub state: Mutex<State>,
    pub changed: Condvar,
    pub sent: Mutex<Vec<SentRecord>>,
    pub subscribers: Mutex<Vec<Subscriber>>,
    pub listener: Mutex<Option<TcpListener>>,
    pub conn_threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Mutates the state and wakes every `wait_until`.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = lock(&self.state);
        let r = f(&mut st);
        st.generation = st.generation.wrapping_add(1);
        drop(st);
        self.changed.notify_all();
        r
    }

    /// Mutates the state without waking anyone (counters that are only
    /// observed through the periodic re-evaluation).
    pub(crate) fn update_quiet<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }
}

fn bind_listener(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn run_acceptor(inner: Arc<Inner>) {
    use std::os::fd::AsRawFd;
    let mut accepted = Vec::new();
    // Readiness of the listening socket, so a connection is accepted as soon as it arrives.
    let mut poll = mio::Poll::new().ok();
    let mut events = mio::Events::with_capacity(4);
    let mut watched = None;
    while !inner.is_shutdown() {
        {
            let mut guard = lock(&inner.listener);
            if guard.is_none() {
                let refusing = lock(&inner.state)
                    .refuse_until
                    .is_some_and(|until| Instant::now() < until);
                if !refusing {
                    if let Ok(l) = bind_listener(inner.cfg.bind, inner.port) {
                        *guard = Some(l);
                        inner.update(|st| st.refuse_until = None);
                    }
                }
            }
            if let Some(listener) = guard.as_ref() {
                let fd = listener.as_raw_fd();
                if watched != Some(fd) {
                    // A new listener (after a refusal); the closed one left epoll by itself.
                    let registry = poll.as_ref().map(mio::Poll::registry);
                    let source = &mut mio::unix::SourceFd(&fd);
                    let ok = registry.is_some_and(|r| {
                        r.register(source, mio::Token(0), mio::Interest::READABLE)
                            .or_else(|_| {
                                r.reregister(source, mio::Token(0), mio::Interest::READABLE)
                            })
                            .is_ok()
                    });
                    watched = ok.then_some(fd);
                }
                while accepted.len() < 64 {
                    match listener.accept() {
                        Ok((tcp, _)) => accepted.push((tcp, Instant::now())),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            } else {
                watched = None;
            }
        }
        if accepted.is_empty() {
            match (&mut poll, watched) {
                (Some(p), Some(_)) => {
                    let _ = p.poll(&mut events, Some(ACCEPT_POLL));
                }
                _ => thread::sleep(Duration::from_millis(2)),
            }
            continue;
        }
        // Recorded before any connection thread runs, so an accept is always
        // visible by the time its client can see a response.
        inner.update(|st| {
            st.counters
                .accepts
                .extend(accepted.iter().map(|&(_, at)| at))
        });
        let mut threads = lock(&inner.conn_threads);
        threads.retain(|h| !h.is_finished());
        for (tcp, _) in accepted.drain(..) {
            let inner2 = Arc::clone(&inner);
            let spawned = thread::Builder::new()
                .name("sim-conn".into())
                .spawn(move || conn::run(inner2, tcp));
            if let Ok(h) = spawned {
                threads.push(h);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Public handle

/// Starts one simulator per configuration, all quoting `shared` (each
/// configuration's [`SimConfig::shared`] is replaced by it), in order: the
/// first joins the shared market in slot 0, the next in slot 1, and so on.
/// Typically one configuration per venue, on ports of their own. On the first
/// failure the simulators already started are shut down and the error is
/// returned.
///
/// ```no_run
/// use wsfeed::sim::{start_group, SharedMarket, SimConfig, SimVenue};
///
/// let shared = SharedMarket::new(["BTCUSDT"], 7);
/// let sims = start_group(
///     [SimVenue::Binance, SimVenue::BybitLinear, SimVenue::Okx]
///         .into_iter()
///         .map(|venue| SimConfig {
///             venue,
///             symbols: vec!["BTCUSDT".into()],
///             ..SimConfig::default()
///         })
///         .collect(),
///     shared,
/// )?;
/// assert_eq!(sims.len(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn start_group(configs: Vec<SimConfig>, shared: SharedMarket) -> io::Result<Vec<Sim>> {
    configs
        .into_iter()
        .map(|cfg| {
            Sim::start(SimConfig {
                shared: Some(shared.clone()),
                ..cfg
            })
        })
        .collect()
}

/// A running simulator. Stops (joining all its threads) on [`Sim::shutdown`]
/// or when dropped.
pub struct Sim {
    inner: Arc<Inner>,
    ca_pem: Option<String>,
    stop_tx: Option<Sender<()>>,
    acceptor: Option<JoinHandle<()>>,
    generator: Option<JoinHandle<()>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("port", &self.inner.port)
            .field("tls", &self.inner.tls.is_some())
            .field("symbols", &self.inner.cfg.symbols)
            .field("running", &!self.inner.is_shutdown())
            .finish()
    }
}

impl Sim {
    /// Starts the simulator on `cfg.bind:cfg.port` (`127.0.0.1:0` by default;
    /// generating the CA first when `cfg.tls`). Symbols are normalised to
    /// uppercase. With [`SimConfig::shared`] the simulator joins that market
    /// (taking its next slot); a configured symbol the shared market does not
    /// have fails with `InvalidInput`.
    pub fn start(mut cfg: SimConfig) -> io::Result<Sim> {
        for s in &mut cfg.symbols {
            *s = s.trim().to_ascii_uppercase();
        }
        cfg.symbols.retain(|s| !s.is_empty());
        cfg.symbols.dedup();
        let info: Arc<Vec<SymInfo>> =
            Arc::new(cfg.symbols.iter().map(|s| SymInfo::of(s)).collect());
        let tls = if cfg.tls {
            Some(tls::generate(cfg.bind)?)
        } else {
            None
        };
        let listener = bind_listener(cfg.bind, cfg.port)?;
        let port = listener.local_addr()?.port();
        // Joined last, so that a simulator failing to start takes no slot.
        let market = match &cfg.shared {
            None => Market::new(Arc::clone(&info), cfg.seed, cfg.venue, cfg.okx_checksum),
            Some(shared) => {
                Market::with_view(Arc::clone(&info), cfg.seed, cfg.venue, cfg.okx_checksum, {
                    let mut view = shared.join(&cfg.symbols)?;
                    view.sync(Instant::now());
                    view
                })
            }
        };
        let inner = Arc::new(Inner {
            cfg,
            info,
            market: Mutex::new(market),
            port,
            tls: tls.as_ref().map(|t| Arc::clone(&t.server_config)),
            shutdown: AtomicBool::new(false),
            state: Mutex::new(State {
                next_conn_id: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            sent: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            listener: Mutex::new(Some(listener)),
            conn_threads: Mutex::new(Vec::new()),
        });
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let mut sim = Sim {
            inner: Arc::clone(&inner),
            ca_pem: tls.map(|t| t.ca_pem),
            stop_tx: Some(stop_tx),
            acceptor: None,
            generator: None,
        };
        let gen_inner = Arc::clone(&inner);
        sim.generator = Some(
            thread::Builder::new()
                .name("sim-generator".into())
                .spawn(move || market::run_generator(gen_inner, stop_rx))?,
        );
        let acc_inner = Arc::clone(&inner);
        sim.acceptor = Some(
            thread::Builder::new()
                .name("sim-acceptor".into())
                .spawn(move || run_acceptor(acc_inner))?,
        );
        Ok(sim)
    }

    /// The listening port (on [`SimConfig::bind`]).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// `"wss://localhost:PORT"` with TLS (the certificate is valid for DNS
    /// name `localhost`, IP `127.0.0.1` and the bind IP), `"ws://127.0.0.1:PORT"`
    /// without. When bound to another specific IP, that IP is the host
    /// (`"wss://10.1.2.2:PORT"`, `"ws://[fd00::2]:PORT"`).
    pub fn base_url(&self) -> String {
        let ip = self.inner.cfg.bind;
        let scheme = if self.inner.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip.is_unspecified() {
            let host = if self.inner.tls.is_some() {
                "localhost"
            } else {
                "127.0.0.1"
            };
            format!("{scheme}://{host}:{}", self.inner.port)
        } else {
            format!("{scheme}://{}", SocketAddr::new(ip, self.inner.port))
        }
    }

    /// PEM of the generated CA certificate (`None` without TLS).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Writes the CA certificate PEM to `path`. Fails with
    /// `ErrorKind::NotFound` when the simulator runs without TLS.
    pub fn write_ca_file(&self, path: &Path) -> io::Result<()> {
        match &self.ca_pem {
            Some(pem) => std::fs::write(path, pem),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "sim runs without TLS: no CA certificate",
            )),
        }
    }

    /// The effective configuration (symbols normalised to uppercase).
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// Applies a fault. Listener faults (`Refuse`, `Reject`, `Http429`,
    /// `Http503`, `IgnoreSubscribe`; see [`Fault::is_listener_fault`]) act on
    /// the listener / upcoming upgrades / upcoming `SUBSCRIBE` requests and
    /// take effect before this returns;
    /// connection faults go to every connection open at this moment (a
    /// connection accepted afterwards is unaffected) and are applied by each
    /// connection's thread within about a millisecond.
    pub fn inject(&self, fault: Fault) {
        if fault.is_listener_fault() {
            self.inject_listener(fault);
            return;
        }
        let st = lock(&self.inner.state);
        for entry in st.conns.values().filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Std(fault.clone()));
        }
    }

    /// Applies a connection fault to one connection (no-op if it is closed or
    /// unknown). A listener fault given here acts on the listener as with
    /// [`Sim::inject`].
    pub fn inject_on(&self, conn: ConnId, fault: Fault) {
        if fault.is_listener_fault() {
            self.inject_listener(fault);
            return;
        }
        let st = lock(&self.inner.state);
        if let Some(entry) = st.conns.get(&conn).filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Std(fault));
        }
    }

    /// Applies a [`BookFault`] to every connection open at this moment
    /// ([`BookFault::SnapshotStale`]: to the next REST snapshot, before this
    /// returns). Counted like [`Sim::inject`].
    pub fn inject_book(&self, fault: BookFault) {
        if fault.is_listener_fault() {
            self.inject_book_listener();
            return;
        }
        let st = lock(&self.inner.state);
        for entry in st.conns.values().filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Book(fault));
        }
    }

    /// Applies a [`BookFault`] to one connection (no-op if it is closed or
    /// unknown; [`BookFault::SnapshotStale`] acts on the next REST snapshot).
    pub fn inject_book_on(&self, conn: ConnId, fault: BookFault) {
        if fault.is_listener_fault() {
            self.inject_book_listener();
            return;
        }
        let st = lock(&self.inner.state);
        if let Some(entry) = st.conns.get(&conn).filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Book(fault));
        }
    }

    fn inject_book_listener(&self) {
        self.inner.update(|st| {
            st.stale_snapshots += 1;
            st.counters.faults_injected += 1;
        });
    }

    fn inject_listener(&self, fault: Fault) {
        match fault {
            Fault::Refuse { duration } => {
                // Lock order: listener, then state (as in the acceptor). The
                // deadline is set before the socket is closed so the acceptor
                // cannot re-bind in between.
                let mut listener = lock(&self.inner.listener);
                self.inner.update(|st| {
                    let until = Instant::now() + duration;
                    st.refuse_until = Some(st.refuse_until.map_or(until, |u| u.max(until)));
                    st.counters.faults_injected += 1;
                });
                drop(listener.take());
            }
            Fault::Http429 {
                count,
                retry_after_s,
            } => self.push_reject(429, Some(retry_after_s), count),
            Fault::Http503 { count } => self.push_reject(503, None, count),
            Fault::Reject {
                status,
                count,
                retry_after_s,
            } => self.push_reject(status, retry_after_s, count),
            Fault::IgnoreSubscribe { count } => self.inner.update(|st| {
                st.ignore_subscribes = st.ignore_subscribes.saturating_add(u64::from(count));
                st.counters.faults_injected += 1;
            }),
            _ => {}
        }
    }

    fn push_reject(&self, status: u16, retry_after_s: Option<u32>, count: u32) {
        let status = if (200..=599).contains(&status) {
            status
        } else {
            500
        };
        self.inner.update(|st| {
            if count > 0 {
                st.rejects.push_back(Reject {
                    status,
                    retry_after_s,
                    remaining: count,
                });
            }
            st.counters.faults_injected += 1;
        });
    }

    /// A copy of the current state (connections and counters).
    pub fn snapshot(&self) -> SimSnapshot {
        snapshot_of(&lock(&self.inner.state))
    }

    /// Waits until `pred` holds for the current snapshot, re-evaluating on
    /// every state change (connection opened/closed, subscribe, fault
    /// applied, pong received) and at least every 50 ms. Returns false on
    /// timeout. `pred` runs without any simulator lock held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&SimSnapshot) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (snap, generation) = {
                let st = lock(&self.inner.state);
                (snapshot_of(&st), st.generation)
            };
            if pred(&snap) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(WAIT_TICK);
            let st = lock(&self.inner.state);
            if st.generation == generation {
                let _ = self
                    .inner
                    .changed
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// Ground truth: every data message that may have reached the client; after
    /// an abrupt end (reset) the last few may not have. In send order.
    ///
    /// A message is recorded when it is handed to the WebSocket for writing,
    /// before any byte of it can reach the kernel, so this is a superset of
    /// what any client received at any moment: on a clean close it equals what
    /// the client read; after [`Fault::Reset`], [`Fault::Stall`], a failed
    /// write or a shutdown, the last few recorded messages may never have
    /// arrived. Messages withheld by [`Fault::DropNext`] or [`Fault::Mute`] and
    /// the non-data frames of faults are never recorded. Empty when
    /// [`SimConfig::record`] is false.
    pub fn sent(&self) -> Vec<SentRecord> {
        lock(&self.inner.sent).clone()
    }

    /// Ground truth restricted to one connection, in send order.
    pub fn sent_on(&self, conn: ConnId) -> Vec<SentRecord> {
        lock(&self.inner.sent)
            .iter()
            .filter(|r| r.conn == conn)
            .cloned()
            .collect()
    }

    /// Forgets the ground truth recorded so far (e.g. between bench rounds).
    pub fn clear_sent(&self) {
        lock(&self.inner.sent).clear();
    }

    /// Stops the listener, the generator and every connection thread, and
    /// joins them (well under a second). Also done on drop.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.inner.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        drop(self.stop_tx.take());
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        if let Some(h) = self.generator.take() {
            let _ = h.join();
        }
        let handles = std::mem::take(&mut *lock(&self.inner.conn_threads));
        for h in handles {
            let _ = h.join();
        }
        drop(lock(&self.inner.listener).take());
        lock(&self.inner.subscribers).clear();
        self.inner.update(|_| {});
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn snapshot_of(st: &State) -> SimSnapshot {
    SimSnapshot {
        connections: st.conns.values().map(|e| e.info.clone()).collect(),
        ..st.counters.clone()
    }
}
