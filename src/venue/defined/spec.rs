//! A venue definition as written (`[[venues]]` in a config, or a file of its own that a config
//! names with `file = "…"`): every field, with its documented default. Compiling it
//! ([`super::Defined::compile`]) checks the values and names the venue and the field of every
//! mistake.

use serde::{Deserialize, Serialize};

/// `[[venues]]`: a JSON-over-WebSocket venue described without code.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VenueSpec {
    /// The name feeds give as `venue` (a-z, 0-9, '-').
    pub name: String,
    /// Where the definition was checked (the venue's documentation), for the reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
    /// The production WebSocket URL, path included: a feed without `url` connects here.
    pub url: String,
    /// How a stream is named, in configs and (with `data.stream`) on the wire: `{channel}`
    /// and `{symbol}` substituted. Default `{channel}:{symbol}`.
    #[serde(default = "default_stream_name")]
    pub stream_name: String,
    /// The subscribe request: `{id}` is the request id (a number), `{stream}` the stream's
    /// name, `{channel}` and `{symbol}` its parts; or `{streams}`, a JSON array of names, for
    /// a venue that takes several streams in one request.
    pub subscribe: String,
    /// The unsubscribe request, the same placeholders (the simulator answers it; the engine
    /// drops connections rather than unsubscribing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<String>,
    /// Most streams one request names, with `{streams}` (default 10).
    #[serde(default = "default_per_request")]
    pub max_streams_per_request: usize,
    /// Most streams one connection carries (default 100).
    #[serde(default = "default_per_connection")]
    pub max_streams_per_connection: usize,
    /// Time between a connection's subscribe requests, ms (default 200: five requests a second).
    #[serde(default = "default_request_spacing")]
    pub request_spacing_ms: u64,
    /// Connection attempts the venue allows one IP in `connect_window_ms` (default 5).
    #[serde(default = "default_connect_limit")]
    pub connect_limit: u32,
    /// The window of `connect_limit`, ms (default 1000).
    #[serde(default = "default_connect_window")]
    pub connect_window_ms: u64,
    /// The instrument a symbol is across venues (symbol ids, arbitrage): `{symbol}`
    /// substituted, then made canonical like built-in venues' symbols (dashes and a `-SWAP` /
    /// `-PERP` suffix dropped: `BTC-USD-PERP` is `BTCUSD`). Default `{symbol}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<String>,
    /// How a data message looks and names its stream.
    pub data: DataSpec,
    /// How the venue acknowledges a subscription.
    pub ack: AckSpec,
    /// How the venue reports an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSpec>,
    /// The keep-alive the client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<KeepaliveSpec>,
    /// An application-level ping the venue sends, and the client's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ping: Option<ServerPingSpec>,
    /// The channels, at least one.
    pub channels: Vec<ChannelSpec>,
    /// Market data the venue sends in binary frames, read by the engine's decoder of that
    /// encoding (the channels' pointers then describe the JSON form the venue documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinaryFormat>,
}

/// A binary encoding of market data the engine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum BinaryFormat {
    /// Paradex's SBE, schema 1 ([`crate::venue::sbe`]): channels `bbo` (quote) and `trades`
    /// (trade).
    #[serde(rename = "paradex-sbe")]
    ParadexSbe,
}

fn default_stream_name() -> String {
    "{channel}:{symbol}".into()
}
fn default_per_request() -> usize {
    10
}
fn default_per_connection() -> usize {
    100
}
fn default_request_spacing() -> u64 {
    200
}
fn default_connect_limit() -> u32 {
    5
}
fn default_connect_window() -> u64 {
    1000
}

/// One condition on a message: the value at `pointer` is present (not null), or equals
/// `equals`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// A JSON pointer (RFC 6901) from the message's root.
    pub pointer: String,
    /// The value it must have: a string, a number or a boolean. Absent: present and not null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<toml::Value>,
}

/// One condition or several (all must hold).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum When {
    /// One condition.
    One(MatchSpec),
    /// Several, all of which must hold.
    All(Vec<MatchSpec>),
}

impl When {
    /// The conditions.
    pub fn all(&self) -> &[MatchSpec] {
        match self {
            When::One(m) => std::slice::from_ref(m),
            When::All(v) => v,
        }
    }
}

/// `[venues.data]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// What makes a message data (besides naming a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// Pointer to the stream's name as `stream_name` writes it (`bbo.BTC-USD-PERP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Or: pointer to the channel's name, the symbol then read through the channel's `symbol`
    /// pointer (`stream_name` must be `{channel}:{symbol}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// `[venues.ack]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AckSpec {
    /// What makes a message an ack.
    pub when: When,
    /// Pointer to the request id it echoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Pointer to the stream's name it acknowledges (as `stream_name` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Or pointers to the channel and the symbol it acknowledges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// With `channel`: the symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
}

/// `[venues.error]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    /// What makes a message an error.
    pub when: When,
    /// Pointer to the request id it echoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Pointer to the error code (a number or a string holding one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Pointer to the error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `[venues.keepalive]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveSpec {
    /// The application-level ping's text; absent: a WebSocket ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How often it goes out whatever the traffic, ms.
    pub interval_ms: u64,
    /// What the venue's answer looks like (so it is not an unknown message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pong: Option<When>,
}

/// `[venues.server_ping]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPingSpec {
    /// What the venue's ping looks like.
    pub when: When,
    /// The text the client answers with.
    pub reply: String,
}

/// What a channel's ticks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TickKind {
    /// Best bid and offer.
    Quote,
    /// Trades.
    Trade,
}

/// How a channel's messages are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum SeqSpec {
    /// Each message's number is the previous one's plus one: a jump is a gap.
    #[serde(rename = "+1")]
    PlusOne,
    /// Numbers only increase, with holes in normal operation: a jump counts only across an
    /// outage.
    #[serde(rename = "increasing")]
    Increasing,
    /// No number: messages are told apart by their time.
    #[serde(rename = "none")]
    None,
}

/// The unit of a time field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds (a fraction allowed).
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

/// `[[venues.channels]]`: one channel and where its fields are.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// The channel's name, as stream names and the wire write it.
    pub name: String,
    /// `quote` or `trade`.
    pub tick: TickKind,
    /// Pointer from the message's root to the update, or to the array of updates.
    pub payload: String,
    /// The payload is an array of updates, each read with the pointers below.
    #[serde(default)]
    pub several: bool,
    /// Pointers from an update to its fields. The symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Quote: best bid price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_price: Option<String>,
    /// Quote: size at the best bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_size: Option<String>,
    /// Quote: best ask price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_price: Option<String>,
    /// Quote: size at the best ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_size: Option<String>,
    /// Trade: price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Trade: size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Trade: the aggressor's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// Trade: the value of `side` when the buyer took liquidity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy: Option<String>,
    /// Trade: the value of `side` when the seller did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sell: Option<String>,
    /// Trade: its id (informational: captured, not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
    /// The sequence number (a number or a string holding one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// How the sequence numbers go: `+1`, `increasing` or `none` (no `sequence`).
    pub sequence_rule: SeqSpec,
    /// The event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Its unit: `s`, `ms`, `us` or `ns` (default `ms`).
    #[serde(default = "default_time_unit")]
    pub time_unit: TimeUnit,
    /// How long a stream of this channel may be silent before it counts as stale, ms (default
    /// 10 s for quotes, 30 s for trades).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_ms: Option<u64>,
}

fn default_time_unit() -> TimeUnit {
    TimeUnit::Ms
}
