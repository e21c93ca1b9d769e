//! Venues are data plus a codec: URLs, stream names and their routes, the subscribe message,
//! and a parser from frame text to ticks and control messages. The session loop in
//! [`crate::feed`] is the same for every venue.

pub mod binance;

use std::fmt;
use std::time::Duration;

use crate::json::JsonError;
use crate::tick::TickData;

/// A venue the engine can connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Venue {
    /// Binance spot (`binance-spot`).
    BinanceSpot,
    /// Binance USD-M futures (`binance-usdm`).
    BinanceUsdm,
}

impl Venue {
    /// Every venue, for listing in errors.
    pub const ALL: [Venue; 2] = [Venue::BinanceSpot, Venue::BinanceUsdm];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "binance-spot",
            Venue::BinanceUsdm => "binance-usdm",
        }
    }

    /// Looks a venue up by its config name.
    pub fn from_name(name: &str) -> Option<Venue> {
        Venue::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The production base URL used when a feed gives none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "wss://stream.binance.com:9443",
            Venue::BinanceUsdm => "wss://fstream.binance.com",
        }
    }

    /// Validates a stream name as the venue spells it and describes it.
    pub fn parse_stream(self, name: &str) -> Result<StreamDef, String> {
        binance::parse_stream(self, name)
    }

    /// The URL path (after the base) a connection carrying `route` streams uses.
    pub fn endpoint_path(self, route: Route) -> &'static str {
        match route {
            Route::Root => "/stream",
            Route::Public => "/public/stream",
            Route::Market => "/market/stream",
        }
    }

    /// The text of a subscribe request for `streams`.
    pub fn subscribe_request<'a>(self, id: u64, streams: impl Iterator<Item = &'a str>) -> String {
        binance::subscribe_request(id, streams)
    }

    /// Most streams one connection may carry.
    pub fn max_streams_per_connection(self) -> usize {
        // Binance: "A single connection can listen to a maximum of 1024 streams" (spot),
        // "… a maximum of 200 streams" (USD-M futures).
        match self {
            Venue::BinanceSpot => 1024,
            Venue::BinanceUsdm => 200,
        }
    }

    /// Splits a frame into data or control.
    #[inline]
    pub fn classify(self, text: &str) -> Result<Frame<'_>, ParseError> {
        binance::classify(text)
    }

    /// Parses a data payload of a stream of `kind`, calling `emit(seq, event_time_ms, data)` for
    /// each tick it holds (depth updates with many levels give several, all with the same
    /// [`Seq`], and the sequence fields are read before the first call).
    #[inline]
    pub fn parse_data(
        self,
        kind: StreamKind,
        data: &str,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        binance::parse_data(kind, data, emit)
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which endpoint of the venue a stream lives on. Binance USD-M split its WebSocket base URL into
/// routed paths: a connection without the right route silently receives nothing for the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// The venue has one endpoint (spot).
    Root,
    /// USD-M high-frequency public data: `@bookTicker`, `@depth…`.
    Public,
    /// USD-M regular market data: `@aggTrade`, `@markPrice`, klines, tickers.
    Market,
}

impl Route {
    /// Name used in feed names and logs.
    pub fn name(self) -> &'static str {
        match self {
            Route::Root => "root",
            Route::Public => "public",
            Route::Market => "market",
        }
    }
}

/// What a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Best bid/offer on every change.
    BookTicker,
    /// Aggregated trades.
    AggTrade,
    /// Diff depth updates every `interval_ms`.
    Depth {
        /// Update speed, ms.
        interval_ms: u32,
    },
    /// Mark price and funding every `interval_ms`.
    MarkPrice {
        /// Update speed, ms.
        interval_ms: u32,
    },
}

impl StreamKind {
    /// Channel name as used in reports (and, later, capture paths).
    pub fn channel(self) -> &'static str {
        match self {
            StreamKind::BookTicker => "bookTicker",
            StreamKind::AggTrade => "aggTrade",
            StreamKind::Depth { .. } => "depth",
            StreamKind::MarkPrice { .. } => "markPrice",
        }
    }

    /// How long the stream may be silent, while its connection lives, before it counts as stale.
    ///
    /// Streams with a documented update speed get ten periods (at least 2 s); event-driven
    /// streams get a bound that a liquid symbol never reaches. Overridable per stream with
    /// `stream_silence_ms`.
    pub fn default_silence_limit(self) -> Duration {
        match self {
            StreamKind::BookTicker => Duration::from_secs(10),
            StreamKind::AggTrade => Duration::from_secs(30),
            StreamKind::Depth { interval_ms } | StreamKind::MarkPrice { interval_ms } => {
                Duration::from_millis(u64::from(interval_ms) * 10).max(Duration::from_secs(2))
            }
        }
    }
}

/// How a stream's messages are numbered, which decides what a jump in the numbers means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqRule {
    /// Each message names its predecessor (Binance depth `U`/`pu`, aggregate trade ids): a
    /// message whose predecessor is not the last one seen proves updates were missed, on one
    /// connection or across a reconnect.
    Chained,
    /// Increasing ids with holes in normal operation (Binance `bookTicker` carries the book's
    /// update id, which also moves on changes below the top of the book). A jump only counts
    /// across an outage: it names the ids not observed while no connection was live.
    Ids,
    /// No sequence: the number is the event time. Used to drop duplicates only.
    Time,
}

/// The numbering of one message: its id and, for [`SeqRule::Chained`] streams, the id of the
/// message before it (`U - 1` on Binance spot depth, `pu` on USD-M depth, `a - 1` for trades).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seq {
    /// This message's id (the last update id it covers).
    pub id: u64,
    /// The id of the message that precedes it, when the venue chains them.
    pub prev: Option<u64>,
}

impl StreamKind {
    /// How this kind's messages are numbered.
    pub fn seq_rule(self) -> SeqRule {
        match self {
            StreamKind::BookTicker => SeqRule::Ids,
            StreamKind::AggTrade | StreamKind::Depth { .. } => SeqRule::Chained,
            StreamKind::MarkPrice { .. } => SeqRule::Time,
        }
    }
}

/// A validated stream of a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDef {
    /// The name as sent to the venue, e.g. `btcusdt@bookTicker`.
    pub name: String,
    /// What it carries.
    pub kind: StreamKind,
    /// The venue symbol, upper case, e.g. `BTCUSDT`.
    pub symbol: String,
    /// The endpoint it lives on.
    pub route: Route,
}

impl StreamDef {
    /// The channel as the venue names it, for capture paths: the stream name after the symbol
    /// (`bookTicker`, `depth@100ms`, `markPrice@1s`).
    pub fn channel_name(&self) -> &str {
        self.name
            .split_once('@')
            .map_or(self.name.as_str(), |(_, c)| c)
    }
}

/// A frame, classified.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Frame<'a> {
    /// Market data of `stream`; `data` is the payload object's text.
    Data {
        /// Stream name as the venue echoes it.
        stream: &'a str,
        /// Payload text.
        data: &'a str,
    },
    /// A request with this id succeeded.
    Ack {
        /// Request id.
        id: u64,
    },
    /// A request failed (or, with no id, the venue reports a general error).
    Error {
        /// Request id, when the venue echoed it.
        id: Option<u64>,
        /// The venue's error code.
        code: i64,
        /// The venue's message.
        msg: &'a str,
    },
    /// A well-formed message the engine does not know.
    Unknown,
}

/// Why a frame could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not well-formed JSON.
    Json(JsonError),
    /// A field the message kind requires is missing or has the wrong type.
    Field(&'static str),
}

impl From<JsonError> for ParseError {
    fn from(e: JsonError) -> Self {
        ParseError::Json(e)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Json(e) => e.fmt(f),
            ParseError::Field(name) => write!(f, "field '{name}' missing or of the wrong type"),
        }
    }
}

impl std::error::Error for ParseError {}
