//! Venues beyond the built-in ones: a [`Codec`] says everything the engine needs to know about a
//! JSON-over-WebSocket venue (its stream names, subscribe message, keep-alive and parser), and
//! [`Venue::Custom`] carries one. A venue defined in config ([`super::defined`]) is one
//! implementation; a library user may write another in Rust and [`register`] it, after which a
//! config names it like any built-in venue.
//!
//! A codec lives for the whole process (`&'static`): venue handles are `Copy` and cross threads
//! freely, and parsing through one costs one indirect call per frame.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;
use std::time::Duration;

use super::{Frame, ParseError, Seq, StreamDef, StreamKind, Venue};
use crate::tick::TickData;

/// A venue's protocol, implemented in Rust or compiled from a `[[venues]]` definition.
///
/// Only the parsing methods are on the hot path ([`Codec::classify`], [`Codec::parse_data`]):
/// they must not allocate. The engine gives a custom venue every feature that needs no venue
/// knowledge: reconnect and backoff, liveness and silence, capture, gaps by sequence, health,
/// standby, rotation, metrics. REST depth snapshots, URL subscriptions and private streams are
/// built-in venues' only.
pub trait Codec: Send + Sync + 'static {
    /// The config name (`venue = "…"`), unique among venues.
    fn name(&self) -> &str;

    /// The production URL used when a feed gives none (with its path: the engine adds none).
    fn default_base_url(&self) -> &str;

    /// Validates a stream name as configured and describes it. A stream's
    /// [`StreamDef::kind`] is what [`Codec::parse_data`] is later called with.
    fn parse_stream(&self, name: &str) -> Result<StreamDef, String>;

    /// The text of one subscribe request for `streams` (their names as configured; at most
    /// [`Codec::max_streams_per_request`] of them); `id` is the request id an ack echoes.
    fn subscribe_request(&self, id: u64, streams: &mut dyn Iterator<Item = &str>) -> String;

    /// Splits a frame into data or control; must not allocate.
    fn classify<'a>(&self, text: &'a str) -> Result<Frame<'a>, ParseError>;

    /// Parses the payload of a data frame of a stream of `kind`, calling
    /// `emit(seq, event_time_ms, data)` for each tick it holds; must not allocate.
    fn parse_data(
        &self,
        kind: StreamKind,
        data: &str,
        emit: &mut dyn FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError>;

    /// Splits a binary frame into data ([`Frame::Binary`]) or anything else; must not
    /// allocate. A venue that sends no binary data keeps the default: every binary frame is
    /// unknown (counted, logged, passed over).
    fn classify_binary<'a>(&self, frame: &'a [u8]) -> Result<Frame<'a>, ParseError> {
        let _ = frame;
        Ok(Frame::Unknown)
    }

    /// Parses a binary data frame (the `data` of a [`Frame::Binary`]) of a stream of `kind`, as
    /// [`Codec::parse_data`] parses text; must not allocate.
    fn parse_binary(
        &self,
        kind: StreamKind,
        frame: &[u8],
        emit: &mut dyn FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let _ = (kind, frame, emit);
        Err(ParseError::Field("binary data"))
    }

    /// Connection attempts the venue allows one IP: (attempts, window).
    fn connect_limit(&self) -> (u32, Duration) {
        (5, Duration::from_secs(1))
    }

    /// Most streams one subscribe request may name.
    fn max_streams_per_request(&self) -> usize {
        1
    }

    /// Most streams one connection may carry.
    fn max_streams_per_connection(&self) -> usize {
        100
    }

    /// Time between a connection's subscribe requests (the venue's limit on messages it takes).
    fn request_spacing(&self) -> Duration {
        Duration::from_millis(200)
    }

    /// The application-level ping, when the venue wants one instead of WebSocket pings.
    fn ping_text(&self) -> Option<&str> {
        None
    }

    /// How often the keep-alive ping must go out whatever the traffic.
    fn keepalive(&self) -> Option<Duration> {
        None
    }

    /// The instrument `symbol` is, named the same on every venue: the engine gives one symbol
    /// id to the same instrument on several venues, and the arbitrage monitor compares them.
    fn instrument(&self, symbol: &str) -> String {
        super::canonical_symbol(symbol)
    }

    /// The answer to the venue's own application-level ping ([`Frame::ServerPing`]).
    fn ping_reply(&self) -> Option<&str> {
        None
    }
}

/// A venue's codec: the same codec object of the same name is the same venue (a definition
/// loaded twice with the same text is one object); hashed and ordered by name.
#[derive(Clone, Copy)]
pub struct Custom(pub(crate) &'static dyn Codec);

impl Custom {
    /// The codec.
    pub fn codec(self) -> &'static dyn Codec {
        self.0
    }

    /// The venue's name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl PartialEq for Custom {
    fn eq(&self, other: &Self) -> bool {
        // Zero-sized codecs share an address: the name tells them apart.
        std::ptr::addr_eq(self.0, other.0) && self.name() == other.name()
    }
}

impl Eq for Custom {}

impl Hash for Custom {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.name().hash(h);
    }
}

impl PartialOrd for Custom {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Custom {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let addr = |c: &Self| (c.0 as *const dyn Codec).cast::<()>() as usize;
        (self.name(), addr(self)).cmp(&(other.name(), addr(other)))
    }
}

impl fmt::Debug for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Custom({})", self.name())
    }
}

/// Codecs registered by the process, found by name.
static REGISTRY: RwLock<Vec<Custom>> = RwLock::new(Vec::new());

/// Makes `codec` a venue a config can name, for the rest of the process. Refused when its name
/// is empty, a built-in venue's or already registered; registering the same codec object twice
/// is not an error.
pub fn register(codec: &'static dyn Codec) -> Result<Venue, String> {
    let name = codec.name();
    super::check_venue_name(name)?;
    if Venue::ALL.iter().any(|v| v.name() == name) {
        return Err(format!(
            "venue '{name}' is built in; a custom venue needs another name"
        ));
    }
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = reg.iter().find(|c| c.name() == name) {
        // One codec registered twice is the same venue; another codec of that name is not
        // (compared with its vtable: two zero-sized codecs share an address).
        #[allow(ambiguous_wide_pointer_comparisons)] // the vtable is what tells the types apart
        if std::ptr::eq(old.0, codec) {
            return Ok(Venue::Custom(*old));
        }
        return Err(format!("a venue named '{name}' is already registered"));
    }
    reg.push(Custom(codec));
    Ok(Venue::Custom(Custom(codec)))
}

/// The registered codec named `name`.
pub(crate) fn registered(name: &str) -> Option<Venue> {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    reg.iter()
        .find(|c| c.name() == name)
        .map(|&c| Venue::Custom(c))
}

/// The names of the registered codecs, for listing in errors.
pub(crate) fn registered_names() -> Vec<&'static str> {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    reg.iter().map(|c| c.name()).collect()
}
