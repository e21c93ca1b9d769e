//! The configuration of a simulator ([`SimConfig`]) and the venue whose
//! protocol it speaks ([`SimVenue`]).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[cfg(doc)]
use super::observe::SimSnapshot;
use super::private::account::SimAccount;
use super::shared::SharedMarket;
use crate::venue::defined::Defined;
use crate::venue::Venue;

/// Configuration of a `Sim`.
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
    /// Keep ground truth of every data message sent (see `Sim::sent`).
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
    /// market (`Sim::start` fails with `InvalidInput` otherwise). `None`
    /// (the default): an independent random walk from `seed`, as always. See
    /// also `start_group`.
    pub shared: Option<SharedMarket>,
    /// Simulated accounts served on the venue's private endpoints (see
    /// "Private streams" in the module documentation). Empty (the default):
    /// the private endpoints do not exist (answered as any path the
    /// simulator does not serve).
    pub accounts: Vec<SimAccount>,
    /// How long a Binance listen key lives without a keep-alive (`PUT`);
    /// default 60 minutes, as on Binance.
    pub listen_key_validity: Duration,
    /// How often each account's order flow takes a step (a new order, a
    /// fill, a cancel, a deposit, …; each step is one to four account
    /// messages). Default 1 s; tests use a few milliseconds.
    pub account_event_interval: Duration,
    /// A defined venue ([`SimVenue::Defined`]) only: each symbol's name on
    /// the venue, one per entry of `symbols`, in order (e.g. `symbols =
    /// ["BTCUSDT"]` served as `["BTC-USD-PERP"]` on Paradex or `["BTC"]` on
    /// Hyperliquid). Empty (the default): the symbols' own names.
    pub venue_symbols: Vec<String>,
    /// A defined venue whose definition has `server_ping` only: how often
    /// each connection gets that ping (default 5 s). Replies are counted in
    /// `SimSnapshot::pongs_received`; a connection that leaves
    /// five of them unanswered is closed with 1008.
    pub server_ping_interval: Duration,
}

/// Server pings of a defined venue a connection may leave unanswered before
/// it is closed.
pub(crate) const MAX_UNANSWERED_PINGS: u32 = 5;

/// The protocol a `Sim` speaks. See `tests/fixtures/README.md` for every
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
    /// A venue defined in config (`[[venues]]`, see
    /// `crate::venue::defined`), spoken from its definition alone: the
    /// upgrade path of its URL (and `/`), its subscribe template, acks,
    /// errors, pongs, server pings and data messages (see "Venues defined in
    /// config" in the module documentation). Symbols are named as
    /// [`SimConfig::venue_symbols`] says.
    Defined(Venue),
}

impl SimVenue {
    /// Short name: `binance`, `bybit-spot`, `bybit-linear`, `okx`.
    pub fn name(self) -> &'static str {
        match self {
            SimVenue::Binance => "binance",
            SimVenue::BybitSpot => "bybit-spot",
            SimVenue::BybitLinear => "bybit-linear",
            SimVenue::Okx => "okx",
            SimVenue::Defined(v) => v.name(),
        }
    }

    /// Parses [`SimVenue::name`] of a built-in venue.
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

    /// The WebSocket path of a Bybit / OKX / defined-venue simulator (Binance
    /// has several): a defined venue's is its URL's path (`/` without one).
    pub fn ws_path(self) -> Option<&'static str> {
        match self {
            SimVenue::Binance => None,
            SimVenue::BybitSpot => Some("/v5/public/spot"),
            SimVenue::BybitLinear => Some("/v5/public/linear"),
            SimVenue::Okx => Some("/ws/v5/public"),
            SimVenue::Defined(v) => Some(Defined::of(v).map_or("/", |d| url_path(&d.spec().url))),
        }
    }

    /// Whether an upgrade on `path` reaches the public WebSocket of a Bybit /
    /// OKX / defined-venue simulator (a defined venue's also on `/`).
    pub(crate) fn serves_path(self, path: &str) -> bool {
        self.ws_path() == Some(path) || (matches!(self, SimVenue::Defined(_)) && path == "/")
    }

    /// Bybit spot or linear.
    pub(crate) fn is_bybit(self) -> bool {
        matches!(self, SimVenue::BybitSpot | SimVenue::BybitLinear)
    }
}

/// The path of a WebSocket URL (`/` when it has none), without its query.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    rest.find('/').map_or("/", |i| &rest[i..])
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
            accounts: Vec::new(),
            listen_key_validity: Duration::from_secs(60 * 60),
            account_event_interval: Duration::from_secs(1),
            venue_symbols: Vec::new(),
            server_ping_interval: Duration::from_secs(5),
        }
    }
}
