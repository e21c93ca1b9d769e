//! What a frame is once classified ([`Frame`]), how it names its stream ([`StreamKey`]), a
//! data message's payload ([`Payload`]) and why a frame did not parse ([`ParseError`]).

use std::fmt;

use crate::json::{unescaped_eq, JsonError};

/// How a data frame names its stream: Binance and Bybit by one name (`topic`); OKX by channel
/// and instrument, matched against the configured `<channel>:<instId>`; a binary frame by
/// channel and symbol, joined by its venue's separator (`bbo.BTC-USD-PERP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamKey<'a> {
    /// Stream name, topic or channel.
    pub topic: &'a str,
    /// OKX instrument id, a symbol; empty when `topic` is the whole name.
    pub inst: &'a str,
    /// What joins `topic` and `inst` in the configured name (`:` for OKX).
    pub sep: u8,
    /// The names are JSON text, which may hold escapes (`\u002d`); a binary frame's are not.
    pub escapes: bool,
}

impl<'a> StreamKey<'a> {
    /// A key that is just a name.
    pub fn name(topic: &'a str) -> StreamKey<'a> {
        StreamKey {
            topic,
            inst: "",
            sep: b':',
            escapes: true,
        }
    }

    /// A key of channel and instrument, configured as `<topic>:<inst>`.
    pub fn pair(topic: &'a str, inst: &'a str) -> StreamKey<'a> {
        StreamKey {
            topic,
            inst,
            sep: b':',
            escapes: true,
        }
    }

    /// Whether this key names the stream configured as `name` (the venue's text decoded: a
    /// name sent with escapes, `BTC\/USDT`, is the name without).
    #[inline]
    pub fn matches(&self, name: &str) -> bool {
        let exact = if self.inst.is_empty() {
            name == self.topic
        } else {
            name.len() == self.topic.len() + 1 + self.inst.len()
                && name.starts_with(self.topic)
                && name.as_bytes()[self.topic.len()] == self.sep
                && name.ends_with(self.inst)
        };
        exact || (self.escapes && self.escaped() && self.matches_decoded(name))
    }

    /// Whether the venue's text holds an escape.
    #[inline]
    fn escaped(&self) -> bool {
        memchr::memchr(b'\\', self.topic.as_bytes()).is_some()
            || memchr::memchr(b'\\', self.inst.as_bytes()).is_some()
    }

    /// [`StreamKey::matches`] with the venue's escapes decoded.
    #[cold]
    fn matches_decoded(&self, name: &str) -> bool {
        if self.inst.is_empty() {
            return unescaped_eq(self.topic, name);
        }
        name.split_once(char::from(self.sep))
            .is_some_and(|(topic, inst)| {
                unescaped_eq(self.topic, topic) && unescaped_eq(self.inst, inst)
            })
    }
}

/// A frame, classified.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Frame<'a> {
    /// Market data of `stream`; `data` is the payload's text (an object, or OKX's and Bybit
    /// trades' array).
    Data {
        /// The stream, as the venue names it.
        stream: StreamKey<'a>,
        /// Payload text.
        data: &'a str,
    },
    /// A request with this id succeeded; OKX acknowledges each stream of a request separately.
    Ack {
        /// Request id; `None` when the venue echoed none (the ack is matched by its content).
        id: Option<u64>,
        /// The stream acknowledged, when the venue names it (OKX).
        stream: Option<StreamKey<'a>>,
    },
    /// The answer to the application-level ping.
    Pong,
    /// The venue's own application-level ping, answered with [`super::Venue::ping_reply`].
    ServerPing,
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
    /// Market data of `stream` in a binary frame ([`super::Codec::classify_binary`]); `data` is
    /// the whole frame, read by [`super::Venue::parse_binary`].
    Binary {
        /// The stream the frame names.
        stream: StreamKey<'a>,
        /// The frame.
        data: &'a [u8],
    },
}

/// A data message's payload: text, or a binary frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Payload<'a> {
    /// The payload's text ([`Frame::Data`]).
    Text(&'a str),
    /// A binary frame ([`Frame::Binary`]).
    Binary(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// Its bytes.
    pub fn bytes(self) -> &'a [u8] {
        match self {
            Payload::Text(t) => t.as_bytes(),
            Payload::Binary(b) => b,
        }
    }
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
