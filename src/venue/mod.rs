//! Venues are data plus a codec: URLs, stream names and their routes, the subscribe message,
//! and a parser from frame text to ticks and control messages. The session loop in
//! [`crate::feed`] is the same for every venue.

pub mod binance;
pub mod bybit;
pub mod codec;
pub mod defined;
mod depth;
mod frame;
pub mod okx;
pub mod sbe;

use std::fmt;
use std::time::Duration;

use crate::json::{Array, Value};
use crate::tick::TickData;

pub use codec::{register, Codec, Custom};
pub use frame::{Frame, ParseError, Payload, StreamKey};

/// A venue the engine can connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Venue {
    /// Binance spot (`binance-spot`).
    BinanceSpot,
    /// Binance USD-M futures (`binance-usdm`).
    BinanceUsdm,
    /// Bybit v5 public spot (`bybit-spot`).
    BybitSpot,
    /// Bybit v5 public linear perpetuals (`bybit-linear`).
    BybitLinear,
    /// OKX v5 public (`okx`).
    Okx,
    /// A venue outside the engine: defined in config (`[[venues]]`) or a [`Codec`] registered
    /// by the program.
    Custom(Custom),
}

impl Venue {
    /// Every built-in venue, for listing in errors.
    pub const ALL: [Venue; 5] = [
        Venue::BinanceSpot,
        Venue::BinanceUsdm,
        Venue::BybitSpot,
        Venue::BybitLinear,
        Venue::Okx,
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "binance-spot",
            Venue::BinanceUsdm => "binance-usdm",
            Venue::BybitSpot => "bybit-spot",
            Venue::BybitLinear => "bybit-linear",
            Venue::Okx => "okx",
            Venue::Custom(c) => c.name(),
        }
    }

    /// Looks a venue up by its config name: a built-in one or a registered [`Codec`]. (Venues
    /// defined in a config are found through [`defined::Defined`], which the config holds.)
    pub fn from_name(name: &str) -> Option<Venue> {
        Venue::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .or_else(|| codec::registered(name))
    }

    /// The names of every venue [`Venue::from_name`] finds, for errors.
    pub fn known_names() -> String {
        let mut names: Vec<&str> = Venue::ALL.iter().map(|v| v.name()).collect();
        names.extend(codec::registered_names());
        names.join(", ")
    }

    /// The instrument `symbol` is, named the same on every venue (symbol ids, arbitrage):
    /// [`canonical_symbol`], or what a custom venue says.
    pub fn instrument(self, symbol: &str) -> String {
        match self {
            Venue::Custom(c) => c.codec().instrument(symbol),
            _ => canonical_symbol(symbol),
        }
    }

    /// The codec of a custom venue.
    #[inline]
    pub fn custom(self) -> Option<&'static dyn Codec> {
        match self {
            Venue::Custom(c) => Some(c.codec()),
            _ => None,
        }
    }

    /// The production base URL used when a feed gives none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "wss://stream.binance.com:9443",
            Venue::BinanceUsdm => "wss://fstream.binance.com",
            Venue::BybitSpot | Venue::BybitLinear => "wss://stream.bybit.com",
            Venue::Okx => "wss://ws.okx.com:8443",
            Venue::Custom(c) => c.codec().default_base_url(),
        }
    }

    /// The REST base URL of the venue's depth snapshots (Binance only: Bybit and OKX send
    /// snapshots on the WebSocket).
    pub fn default_rest_url(self) -> Option<&'static str> {
        match self {
            Venue::BinanceSpot => Some("https://api.binance.com"),
            Venue::BinanceUsdm => Some("https://fapi.binance.com"),
            _ => None,
        }
    }

    /// Path and query of a depth snapshot of `symbol` (Binance).
    pub fn depth_snapshot_path(self, symbol: &str) -> Option<String> {
        match self {
            Venue::BinanceSpot => Some(format!("/api/v3/depth?symbol={symbol}&limit=1000")),
            Venue::BinanceUsdm => Some(format!("/fapi/v1/depth?symbol={symbol}&limit=1000")),
            _ => None,
        }
    }

    /// Whether a REST depth snapshot whose `lastUpdateId` is `snapshot_last` already holds the
    /// diff whose last update id is `diff_last`, so the diff is not applied (Binance's "How to
    /// manage a local order book correctly"). Spot: "Discard any buffered events where
    /// `u <= lastUpdateId`"; USD-M: "Drop any event where `u` is < `lastUpdateId` in the
    /// snapshot". Venues without REST snapshots: never.
    pub fn snapshot_holds(self, diff_last: u64, snapshot_last: u64) -> bool {
        match self {
            Venue::BinanceSpot => diff_last <= snapshot_last,
            Venue::BinanceUsdm => diff_last < snapshot_last,
            _ => false,
        }
    }

    /// Whether the first diff applied after a REST snapshot, starting at update id
    /// `diff_first`, follows on from the snapshot's `snapshot_last` without a hole. Spot: "the
    /// first buffered event should have `U <= lastUpdateId + 1`"; USD-M: "The first processed
    /// event should have `U <= lastUpdateId` AND `u >= lastUpdateId`" (the second half is
    /// [`Venue::snapshot_holds`]). Bybit and OKX chain their WebSocket snapshots
    /// (`prevSeqId`, `u`) like any other update, checked by the sequence tracker.
    pub fn straddles(self, diff_first: u64, snapshot_last: u64) -> bool {
        match self {
            Venue::BinanceSpot => diff_first <= snapshot_last + 1,
            Venue::BinanceUsdm => diff_first <= snapshot_last,
            _ => true,
        }
    }

    /// Validates a stream name as the venue spells it and describes it.
    pub fn parse_stream(self, name: &str) -> Result<StreamDef, String> {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => binance::parse_stream(self, name),
            Venue::BybitSpot | Venue::BybitLinear => bybit::parse_stream(self, name),
            Venue::Okx => okx::parse_stream(name),
            Venue::Custom(c) => c.codec().parse_stream(name),
        }
    }

    /// The URL path (after the base) a connection carrying `route` streams uses.
    pub fn endpoint_path(self, route: Route) -> &'static str {
        match (self, route) {
            (Venue::BybitSpot, _) => "/v5/public/spot",
            (Venue::BybitLinear, _) => "/v5/public/linear",
            (Venue::Okx, _) => "/ws/v5/public",
            // The definition's URL holds its whole path.
            (Venue::Custom(_), _) => "",
            (_, Route::Root) => "/stream",
            (_, Route::Public) => "/public/stream",
            (_, Route::Market) => "/market/stream",
        }
    }

    /// The text of a subscribe request for `streams` (their names as configured).
    pub fn subscribe_request<'a>(
        self,
        id: u64,
        mut streams: impl Iterator<Item = &'a str>,
    ) -> String {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => binance::subscribe_request(id, streams),
            Venue::BybitSpot | Venue::BybitLinear => bybit::subscribe_request(id, streams),
            Venue::Okx => okx::subscribe_request(id, streams),
            Venue::Custom(c) => c.codec().subscribe_request(id, &mut streams),
        }
    }

    /// The URL of a connection that subscribes to `streams` in the URL itself, so data flows
    /// as soon as the upgrade completes, without a subscribe round trip; `None` for venues that
    /// cannot. Binance: "Combined streams are accessed at
    /// `/stream?streams=<streamName1>/<streamName2>/<streamName3>`" (and on USD-M's routed
    /// `/public/stream`, `/market/stream`).
    pub fn url_with_streams<'a>(
        self,
        url: &str,
        mut streams: impl Iterator<Item = &'a str>,
    ) -> Option<String> {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => {
                let mut out = format!("{url}?streams={}", streams.next()?);
                for s in streams {
                    out.push('/');
                    out.push_str(s);
                }
                Some(out)
            }
            _ => None,
        }
    }

    /// The request that asks what a connection is subscribed to, sent to confirm a
    /// subscription made in the URL: Binance `{"method":"LIST_SUBSCRIPTIONS","id":N}`, answered
    /// `{"result":[…],"id":N}`.
    pub fn list_request(self, id: u64) -> Option<String> {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => {
                Some(format!(r#"{{"method":"LIST_SUBSCRIPTIONS","id":{id}}}"#))
            }
            _ => None,
        }
    }

    /// Connection attempts the venue allows one IP: (attempts, window). Binance: 300 per 5
    /// minutes; Bybit: 500 per 5 minutes; OKX: 3 per second.
    pub fn connect_limit(self) -> (u32, Duration) {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => (300, Duration::from_secs(300)),
            Venue::BybitSpot | Venue::BybitLinear => (500, Duration::from_secs(300)),
            Venue::Okx => (3, Duration::from_secs(1)),
            Venue::Custom(c) => c.codec().connect_limit(),
        }
    }

    /// Most streams one subscribe request may name.
    pub fn max_streams_per_request(self) -> usize {
        match self {
            // "Spot can input up to 10 args for each subscription request sent to one
            // connection."
            Venue::BybitSpot => 10,
            Venue::Custom(c) => c.codec().max_streams_per_request(),
            _ => 100,
        }
    }

    /// Time between a connection's subscribe requests: 200 ms on the built-in venues (Binance
    /// takes at most 10 incoming messages a second), what a custom venue says.
    pub fn request_spacing(self) -> Duration {
        match self {
            Venue::Custom(c) => c.codec().request_spacing(),
            _ => Duration::from_millis(200),
        }
    }

    /// Most streams one connection may carry.
    pub fn max_streams_per_connection(self) -> usize {
        // Binance: "A single connection can listen to a maximum of 1024 streams" (spot),
        // "… a maximum of 200 streams" (USD-M futures). Bybit limits the args' total length
        // (21,000 characters) rather than their number; OKX documents no number.
        match self {
            Venue::BinanceSpot => 1024,
            Venue::BinanceUsdm => 200,
            Venue::BybitSpot | Venue::BybitLinear | Venue::Okx => 500,
            Venue::Custom(c) => c.codec().max_streams_per_connection(),
        }
    }

    /// The application-level ping, for venues that want one instead of (or besides) WebSocket
    /// pings: Bybit `{"op":"ping"}`, OKX the text `ping`. Binance answers WebSocket pings.
    pub fn ping_text(self) -> Option<&'static str> {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => None,
            Venue::BybitSpot | Venue::BybitLinear => Some(r#"{"op":"ping"}"#),
            Venue::Okx => Some("ping"),
            Venue::Custom(c) => c.codec().ping_text(),
        }
    }

    /// How often the application-level ping must go out whatever the traffic: Bybit asks for
    /// one every 20 s; OKX cuts a connection that stays quiet for 30 s.
    pub fn keepalive(self) -> Option<Duration> {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => None,
            Venue::BybitSpot | Venue::BybitLinear | Venue::Okx => Some(Duration::from_secs(20)),
            Venue::Custom(c) => c.codec().keepalive(),
        }
    }

    /// The answer to the venue's own application-level ping ([`Frame::ServerPing`]).
    pub fn ping_reply(self) -> Option<&'static str> {
        self.custom().and_then(|c| c.ping_reply())
    }

    /// Splits a frame into data or control.
    #[inline]
    pub fn classify(self, text: &str) -> Result<Frame<'_>, ParseError> {
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => binance::classify(text),
            Venue::BybitSpot | Venue::BybitLinear => bybit::classify(text),
            Venue::Okx => okx::classify(text),
            Venue::Custom(c) => c.codec().classify(text),
        }
    }

    /// Splits a binary frame into data ([`Frame::Binary`]) or anything else. Only a custom
    /// venue's codec reads binary frames; to the built-in venues every one is unknown.
    #[inline]
    pub fn classify_binary(self, frame: &[u8]) -> Result<Frame<'_>, ParseError> {
        match self {
            Venue::Custom(c) => c.codec().classify_binary(frame),
            _ => Ok(Frame::Unknown),
        }
    }

    /// Parses a binary data frame of a stream of `kind`, as [`Venue::parse_data`] parses text.
    #[inline]
    pub fn parse_binary(
        self,
        kind: StreamKind,
        frame: &[u8],
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        match self {
            Venue::Custom(c) => c.codec().parse_binary(kind, frame, emit),
            _ => Err(ParseError::Field("binary data")),
        }
    }

    /// Parses a payload, text or binary ([`Venue::parse_data`], [`Venue::parse_binary`]).
    #[inline]
    pub fn parse_payload(
        self,
        kind: StreamKind,
        payload: Payload<'_>,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        match payload {
            Payload::Text(data) => self.parse_data(kind, data, emit),
            Payload::Binary(frame) => self.parse_binary(kind, frame, emit),
        }
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
        // Top of book exactly as the venue writes it is read literal by literal; anything else
        // (another layout, the other kinds) by the venue's general parser.
        if kind == StreamKind::BookTicker {
            let as_sent = match self {
                Venue::BinanceSpot | Venue::BinanceUsdm => binance::book_ticker_as_sent(data),
                Venue::BybitSpot | Venue::BybitLinear => bybit::top_of_book_as_sent(data),
                Venue::Okx => okx::bbo_as_sent(data),
                Venue::Custom(_) => None,
            };
            if let Some((seq, event_time_ms, quote)) = as_sent {
                emit(seq, event_time_ms, quote);
                return Ok(());
            }
        }
        match self {
            Venue::BinanceSpot | Venue::BinanceUsdm => binance::parse_data(kind, data, emit),
            Venue::BybitSpot | Venue::BybitLinear => bybit::parse_data(kind, data, emit),
            Venue::Okx => okx::parse_data(kind, data, emit),
            Venue::Custom(c) => c.codec().parse_data(kind, data, emit),
        }
    }
}

/// Checks a venue name: 1 to 32 of `a-z`, `0-9` and `-`, starting with a letter (it appears in
/// capture paths, metric labels and NATS subjects).
pub(crate) fn check_venue_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "venue name '{name}' must be 1 to 32 characters of a-z, 0-9 and '-', starting with \
             a letter"
        )),
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
    /// An order book kept by snapshot + deltas (Bybit `orderbook.50`, OKX `books`), chained by
    /// update ids.
    OrderBook {
        /// Levels of the venue's snapshot.
        levels: u16,
    },
    /// Bybit `tickers`: mark and index price, funding (fields a delta omits are NaN).
    Ticker,
    /// OKX `funding-rate`.
    Funding,
    /// Every trade, numbered by its own trade id (Binance `@trade`).
    Trade,
    /// Candlesticks of `interval_s` seconds, pushed while they form (Binance `@kline_<i>`).
    Kline {
        /// Candle length, seconds.
        interval_s: u32,
    },
    /// The top `levels` of the book, each message a full snapshot (Binance `@depth5/10/20`,
    /// OKX `books5`), every `interval_ms`.
    PartialDepth {
        /// Levels a side.
        levels: u16,
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
            StreamKind::OrderBook { .. } => "orderbook",
            StreamKind::Ticker => "tickers",
            StreamKind::Funding => "funding",
            StreamKind::Trade => "trade",
            StreamKind::Kline { .. } => "kline",
            StreamKind::PartialDepth { .. } => "depthPartial",
        }
    }

    /// How long the stream may be silent, while its connection lives, before it counts as stale.
    ///
    /// Streams with a documented update speed get ten periods (at least 2 s); event-driven
    /// streams get a bound that a liquid symbol never reaches. Overridable per stream with
    /// `stream_silence_ms`.
    pub fn default_silence_limit(self) -> Duration {
        match self {
            StreamKind::BookTicker | StreamKind::OrderBook { .. } => Duration::from_secs(10),
            StreamKind::AggTrade | StreamKind::Trade | StreamKind::Ticker => {
                Duration::from_secs(30)
            }
            // Pushed every 1 or 2 s (spot), 250 ms (USD-M) while the candle forms.
            StreamKind::Kline { .. } => Duration::from_secs(30),
            // OKX pushes the funding rate every 30 to 90 s.
            StreamKind::Funding => Duration::from_secs(180),
            StreamKind::Depth { interval_ms }
            | StreamKind::MarkPrice { interval_ms }
            | StreamKind::PartialDepth { interval_ms, .. } => {
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

impl Seq {
    /// The numbering of a message that carries no number (OKX `funding-rate` without `ts`):
    /// it is delivered as it comes, never judged a duplicate of anything.
    pub const UNNUMBERED: Seq = Seq { id: 0, prev: None };

    /// Whether this is [`Seq::UNNUMBERED`].
    #[inline]
    pub fn is_unnumbered(self) -> bool {
        self == Seq::UNNUMBERED
    }
}

impl StreamKind {
    /// How this kind's messages are numbered.
    pub fn seq_rule(self) -> SeqRule {
        match self {
            // A partial book carries the book's update id, which moves on changes below its
            // levels too.
            StreamKind::BookTicker | StreamKind::PartialDepth { .. } => SeqRule::Ids,
            StreamKind::AggTrade
            | StreamKind::Trade
            | StreamKind::Depth { .. }
            | StreamKind::OrderBook { .. } => SeqRule::Chained,
            StreamKind::MarkPrice { .. }
            | StreamKind::Ticker
            | StreamKind::Funding
            | StreamKind::Kline { .. } => SeqRule::Time,
        }
    }
}

/// A validated stream of a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDef {
    /// The name as configured: Binance `btcusdt@bookTicker`, Bybit `orderbook.50.BTCUSDT`, OKX
    /// `books:BTC-USDT-SWAP` (`<channel>:<instId>`).
    pub name: String,
    /// The channel as the venue names it, for capture paths: `bookTicker`, `depth@100ms`,
    /// `orderbook.50`, `books`.
    pub channel: String,
    /// What it carries.
    pub kind: StreamKind,
    /// The venue's symbol as it names it: `BTCUSDT`, `BTC-USDT-SWAP`.
    pub symbol: String,
    /// The endpoint it lives on.
    pub route: Route,
    /// How its messages are numbered.
    pub seq: SeqRule,
    /// How long it may be silent on a live connection before it counts as stale, unless the
    /// feed's `stream_silence_ms` says otherwise.
    pub silence: Duration,
}

/// The instrument behind a venue's symbol, the same on every venue: `BTC-USDT-SWAP` (OKX) and
/// `BTCUSDT` (Binance, Bybit) are both `BTCUSDT`. Spot and perpetual of one pair share it (the
/// arbitrage demo compares them, as the simulated venues quote one market).
pub fn canonical_symbol(symbol: &str) -> String {
    let base = symbol
        .strip_suffix("-SWAP")
        .or_else(|| symbol.strip_suffix("-PERP"))
        .unwrap_or(symbol);
    base.chars().filter(|&c| c != '-').collect()
}

impl StreamDef {
    /// A stream whose numbering and silence limit are its kind's.
    pub fn new(
        name: String,
        channel: String,
        kind: StreamKind,
        symbol: String,
        route: Route,
    ) -> StreamDef {
        StreamDef {
            name,
            channel,
            kind,
            symbol,
            route,
            seq: kind.seq_rule(),
            silence: kind.default_silence_limit(),
        }
    }

    /// The channel as the venue names it, for capture paths: the stream name after the symbol
    /// (`bookTicker`, `depth@100ms`, `markPrice@1s`).
    pub fn channel_name(&self) -> &str {
        self.name
            .split_once('@')
            .map_or(self.name.as_str(), |(_, c)| c)
    }
}

/// The first level of a side: (price, size), or (NaN, 0) when the side is empty.
pub(crate) fn first_level(side: Option<Value<'_>>) -> Result<(f64, f64), ParseError> {
    let Some(Value::Array(levels)) = side else {
        return Ok((f64::NAN, 0.0));
    };
    let mut levels = Array::new(levels)?;
    let Some(Value::Array(level)) = levels.next_value()? else {
        return Ok((f64::NAN, 0.0));
    };
    let mut level = Array::new(level)?;
    let price = level.next_value()?.and_then(Value::as_f64);
    let size = level.next_value()?.and_then(Value::as_f64);
    Ok((price.unwrap_or(f64::NAN), size.unwrap_or(0.0)))
}

/// A side holding exactly one level, `[["price","size",…]]`, read literal by literal (the
/// as-sent fast paths of Bybit `orderbook.1` and OKX `bbo-tbt`; OKX's extra fields are
/// skipped). `None` for anything else: the general parser takes it.
#[inline(always)]
pub(crate) fn one_level(m: &mut crate::json::Layout<'_>) -> Option<(f64, f64)> {
    m.lit("[[")?;
    let price = m.decimal()?;
    m.lit(",")?;
    let size = m.decimal()?;
    while m.lit(",").is_some() {
        m.str()?;
    }
    m.lit("]]")?;
    Some((price, size))
}

#[cfg(test)]
mod tests;
