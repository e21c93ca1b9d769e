//! What a test can observe of a running simulator: connection ids, the
//! ground truth of every data message sent ([`SentRecord`]), each
//! connection's state ([`ConnInfo`]) and the counters ([`SimSnapshot`]).

use std::fmt;
use std::time::Instant;

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
    /// Binance `kline`.
    Candle,
}

/// Ground truth of one data message the simulator handed to a client's
/// WebSocket for writing (see `Sim::sent`).
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
    /// `Sim::sent` when recording is on).
    pub messages_sent: u64,
    /// True while a `Fault::Stall` is in progress.
    pub stalled: bool,
    /// Data messages withheld on this connection by `Fault::DropNext` and
    /// `BookFault::SkipSeq`.
    pub withheld: u64,
    /// Streams muted on this connection by `Fault::Mute` (normalised
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
    /// `Fault::Reject`, `Fault::Http429`, `Fault::Http503`, and 404, 400).
    pub upgrades_rejected: u64,
    /// Faults applied: one per listener fault injected, one per connection a
    /// connection fault was applied to.
    pub faults_injected: u64,
    /// Pongs received that matched a `Fault::ServerPing` or
    /// `Fault::PingFlood` payload.
    pub pongs_received: u64,
    /// Pings sent because of `Fault::ServerPing` and `Fault::PingFlood`.
    pub pings_sent: u64,
    /// Data messages handed to the WebSocket, all connections together.
    pub messages_sent: u64,
    /// Subscriptions asked for (Binance `SUBSCRIBE` and streams named in the
    /// upgrade URL, Bybit and OKX `"op":"subscribe"`; valid or not, ignored
    /// ones included).
    pub subscribe_requests: u64,
    /// Of those, Binance upgrade URLs that named streams.
    pub url_subscriptions: u64,
    /// Subscriptions silently ignored because of `Fault::IgnoreSubscribe`.
    pub subscribes_ignored: u64,
    /// Data messages withheld by `Fault::DropNext` and
    /// `BookFault::SkipSeq`, all connections together (never recorded in
    /// `Sim::sent`).
    pub withheld: u64,
    /// Connections closed because they reached `SimConfig::max_conn_age`.
    pub age_closes: u64,
    /// Bybit / OKX connections closed after `SimConfig::idle_timeout`
    /// without a client text frame.
    pub idle_closes: u64,
    /// Application-level pings answered: Bybit `{"op":"ping"}`, OKX `ping`.
    pub venue_pings: u64,
    /// Plain HTTP requests answered (REST depth snapshots and errors).
    pub rest_requests: u64,
    /// When each plain HTTP request arrived, in order.
    pub rest_request_times: Vec<Instant>,
    /// REST depth snapshots served stale by `BookFault::SnapshotStale`.
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
