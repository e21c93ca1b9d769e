//! Venues defined in config (`[[venues]]`): a [`VenueSpec`] compiled into a [`Defined`], which
//! is a [`Codec`] like any other. Its pointers are parsed once; a message is read in one
//! descent that records where each named value lies ([`Pointers::locate`]), then the values
//! are converted where they lie. Nothing is allocated per message.
//!
//! A data message names its stream one of two ways: by its whole name (`data.stream`, e.g.
//! Paradex's `params.channel` = `bbo.BTC-USD-PERP`, written like `stream_name`), or by its
//! channel (`data.channel`, e.g. Hyperliquid's `channel` = `bbo`) with the symbol read in the
//! update through the channel's `symbol` pointer (stream names are then `<channel>:<symbol>`,
//! as OKX's are).

mod compile;
pub mod spec;

use std::sync::Mutex;
use std::time::Duration;

use self::spec::{TimeUnit, VenueSpec};
use super::codec::{Codec, Custom};
use super::sbe::{self, Event};
use super::{Frame, ParseError, Route, Seq, SeqRule, StreamDef, StreamKey, StreamKind, Venue};
use crate::json::{unescaped_eq, Pointers, Reader, Span};
use crate::tick::TickData;

/// A value a condition compares with.
#[derive(Clone, Debug, PartialEq)]
enum Literal {
    /// A string, compared with the message's string (escapes decoded).
    Str(String),
    /// A number or a boolean, compared with the value's text.
    Raw(String),
}

/// "The value at envelope pointer `at` is present (not null), or equals `equals`."
#[derive(Clone, Debug, PartialEq)]
struct Cond {
    at: u8,
    equals: Option<Literal>,
}

/// How stream names are written: the text before the first of `{channel}` and `{symbol}`,
/// between them, and after; and which comes first (Vest writes `BTC-PERP@depth`).
#[derive(Clone, Debug, PartialEq)]
struct Naming {
    before: String,
    between: String,
    after: String,
    symbol_first: bool,
}

impl Naming {
    fn parse(t: &str) -> Result<Naming, String> {
        let bad = || {
            format!("'{t}' must hold {{channel}} and {{symbol}} once each, with text between them")
        };
        let (c, s) = (t.find("{channel}"), t.find("{symbol}"));
        let (Some(c), Some(s)) = (c, s) else {
            return Err(bad());
        };
        let symbol_first = s < c;
        let (first, second) = match symbol_first {
            true => ("{symbol}", "{channel}"),
            false => ("{channel}", "{symbol}"),
        };
        let (before, rest) = t.split_once(first).ok_or_else(bad)?;
        let (between, after) = rest.split_once(second).ok_or_else(bad)?;
        if [before, between, after]
            .iter()
            .any(|p| p.contains("{channel}") || p.contains("{symbol}"))
            || between.is_empty()
        {
            return Err(bad());
        }
        Ok(Naming {
            before: before.into(),
            between: between.into(),
            after: after.into(),
            symbol_first,
        })
    }

    /// The text around and between channel and symbol (the non-empty parts).
    fn parts(&self) -> impl Iterator<Item = &str> {
        [&self.before, &self.between, &self.after]
            .into_iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    /// `{channel}:{symbol}`: names match the engine's channel-and-symbol keys.
    fn is_pair(&self) -> bool {
        !self.symbol_first && self.before.is_empty() && self.between == ":" && self.after.is_empty()
    }

    fn name(&self, channel: &str, symbol: &str) -> String {
        let (first, second) = match self.symbol_first {
            true => (symbol, channel),
            false => (channel, symbol),
        };
        format!(
            "{}{first}{}{second}{}",
            self.before, self.between, self.after
        )
    }
}

/// A request template.
#[derive(Clone, Debug, PartialEq)]
struct Template {
    text: String,
    /// It takes `{streams}`, a list.
    several: bool,
}

impl Template {
    fn parse(text: &str, naming: &Naming) -> Result<Template, String> {
        let several = text.contains("{streams}");
        let one = ["{stream}", "{channel}", "{symbol}"]
            .iter()
            .any(|p| text.contains(p));
        if several == one {
            return Err(format!(
                "'{text}' must name the streams one way: {{streams}} (a list), or {{stream}} \
                 / {{channel}} / {{symbol}} (one stream a request)"
            ));
        }
        let t = Template {
            text: text.into(),
            several,
        };
        let sample = naming.name("ch", "SYM");
        let rendered = t.render(7, &mut [sample.as_str()].into_iter(), naming);
        serde_json::from_str::<serde_json::Value>(&rendered)
            .map_err(|e| format!("'{text}' does not give JSON ({rendered}): {e}"))?;
        Ok(t)
    }

    /// The request for `streams` (one unless the template takes a list).
    fn render(&self, id: u64, streams: &mut dyn Iterator<Item = &str>, naming: &Naming) -> String {
        let t = self.text.replace("{id}", &id.to_string());
        if self.several {
            let list: Vec<String> = streams.map(|s| format!("\"{s}\"")).collect();
            return t.replace("{streams}", &format!("[{}]", list.join(",")));
        }
        let stream = streams.next().unwrap_or_default();
        let (channel, symbol) = naming.split(stream).unwrap_or((stream, ""));
        t.replace("{stream}", stream)
            .replace("{channel}", channel)
            .replace("{symbol}", symbol)
    }
}

impl Naming {
    /// A stream name's channel and symbol.
    fn split<'s>(&self, name: &'s str) -> Option<(&'s str, &'s str)> {
        let inner = name
            .strip_prefix(self.before.as_str())?
            .strip_suffix(self.after.as_str())?;
        let (first, second) = inner.split_once(self.between.as_str())?;
        let (channel, symbol) = match self.symbol_first {
            true => (second, first),
            false => (first, second),
        };
        (!channel.is_empty() && !symbol.is_empty()).then_some((channel, symbol))
    }
}

/// Where a channel's tick fields are: indices into its update tree.
#[derive(Clone, Debug, PartialEq)]
enum Fields {
    Quote {
        bid_price: u8,
        bid_size: u8,
        ask_price: u8,
        ask_size: u8,
    },
    Trade {
        price: u8,
        size: u8,
        side: u8,
        buy: String,
        sell: String,
    },
}

/// One channel compiled.
#[derive(Clone, Debug, PartialEq)]
struct Channel {
    name: String,
    kind: StreamKind,
    /// Envelope index of the payload.
    payload: u8,
    several: bool,
    /// Envelope index of the (first) update's symbol, when data names only the channel.
    envelope_symbol: Option<u8>,
    /// The update's fields, one tree.
    update: Pointers,
    fields: Fields,
    sequence: Option<u8>,
    time: Option<u8>,
    time_unit: TimeUnit,
    seq: SeqRule,
    silence: Duration,
}

/// A venue defined in config, compiled.
#[derive(Debug)]
pub struct Defined {
    spec: VenueSpec,
    naming: Naming,
    subscribe: Template,
    envelope: Pointers,
    data_when: Vec<Cond>,
    data_stream: Option<u8>,
    data_channel: Option<u8>,
    ack_when: Vec<Cond>,
    ack_id: Option<u8>,
    ack_stream: Option<u8>,
    ack_channel: Option<u8>,
    ack_symbol: Option<u8>,
    err_when: Vec<Cond>,
    err_id: Option<u8>,
    err_code: Option<u8>,
    err_msg: Option<u8>,
    pong_when: Vec<Cond>,
    ping_when: Vec<Cond>,
    ping_reply: Option<String>,
    ping_text: Option<String>,
    keepalive: Option<Duration>,
    channels: Vec<Channel>,
    /// With `binary = "paradex-sbe"`: the character between channel and symbol.
    binary: Option<u8>,
}

/// Definitions compiled so far: the same text twice is the same venue (one object).
static LOADED: Mutex<Vec<&'static Defined>> = Mutex::new(Vec::new());

impl Defined {
    /// Compiles `spec` (or finds it compiled already) and gives its venue. The definition
    /// lives for the rest of the process.
    pub fn load(spec: &VenueSpec) -> Result<Venue, String> {
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = loaded.iter().find(|d| d.spec == *spec) {
            return Ok(Venue::Custom(Custom(*d)));
        }
        if super::codec::registered(&spec.name).is_some() {
            return Err(format!(
                "venue '{}': a venue of that name is registered by the program",
                spec.name
            ));
        }
        let d: &'static Defined = Box::leak(Box::new(Defined::compile(spec)?));
        loaded.push(d);
        Ok(Venue::Custom(Custom(d)))
    }

    /// The definition as written.
    pub fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    /// The definition of a venue that has one.
    pub fn of(venue: Venue) -> Option<&'static Defined> {
        let codec = venue.custom()?;
        let loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        loaded
            .iter()
            .find(|d| std::ptr::addr_eq(**d as *const Defined, codec as *const dyn Codec))
            .copied()
    }

    /// Whether the message at `found` meets every condition (none: never).
    fn holds(&self, conds: &[Cond], src: &str, found: &[Span]) -> bool {
        !conds.is_empty()
            && conds.iter().all(|c| {
                let Some(text) = found[usize::from(c.at)].text(src) else {
                    return false;
                };
                match &c.equals {
                    None => text != "null",
                    Some(Literal::Raw(raw)) => text == raw,
                    Some(Literal::Str(want)) => text
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .is_some_and(|raw| unescaped_eq(raw, want)),
                }
            })
    }

    fn channel_by_kind(&self, kind: StreamKind) -> Option<&Channel> {
        self.channels.iter().find(|c| c.kind == kind)
    }
}

/// Compiles every definition of a config; two of one name are an error.
pub fn load_all(specs: &[VenueSpec]) -> Result<Vec<Venue>, String> {
    let mut out: Vec<Venue> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        if out.iter().any(|v| v.name() == spec.name) {
            return Err(format!(
                "venues[{i}]: venue '{}' is defined twice",
                spec.name
            ));
        }
        out.push(Defined::load(spec)?);
    }
    Ok(out)
}

/// The venue named `name`: one of `defined`, else a built-in or registered one.
pub fn find(defined: &[Venue], name: &str) -> Option<Venue> {
    defined
        .iter()
        .copied()
        .find(|v| v.name() == name)
        .or_else(|| Venue::from_name(name))
}

/// Every venue name [`find`] knows, for errors.
pub fn names(defined: &[Venue]) -> String {
    let mut names = Venue::known_names();
    for v in defined {
        names.push_str(", ");
        names.push_str(v.name());
    }
    names
}

/// The venues an effective config defines (a session manifest's `config`).
pub fn in_config(config: &serde_json::Value) -> Result<Vec<Venue>, String> {
    let Some(list) = config["venues"].as_array() else {
        return Ok(Vec::new());
    };
    let specs: Vec<VenueSpec> = list
        .iter()
        .map(|v| serde_json::from_value(v.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the manifest's venue definitions: {e}"))?;
    load_all(&specs)
}

/// A string's raw contents at `at`, if it is a string.
fn string_at<'a>(src: &'a str, found: &[Span], at: Option<u8>) -> Option<&'a str> {
    let text = found[usize::from(at?)].text(src)?;
    Reader::new(text).str().ok().flatten()
}

/// An unsigned integer (a number or a string holding one) at `at`.
fn uint_at(src: &str, found: &[Span], at: Option<u8>) -> Option<u64> {
    let text = found[usize::from(at?)].text(src)?;
    Reader::new(text).uint().ok().flatten()
}

impl Codec for Defined {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn default_base_url(&self) -> &str {
        &self.spec.url
    }

    fn parse_stream(&self, name: &str) -> Result<StreamDef, String> {
        let Some((channel, symbol)) = self.naming.split(name) else {
            return Err(format!(
                "stream '{name}': {} streams are named '{}'",
                self.spec.name,
                self.naming.name("<channel>", "<symbol>")
            ));
        };
        let Some(c) = self.channels.iter().find(|c| c.name == channel) else {
            return Err(format!(
                "stream '{name}': {} has no channel '{channel}' (it has: {})",
                self.spec.name,
                self.channels
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if !symbol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "stream '{name}': symbol '{symbol}' may hold only letters, digits and - _ ."
            ));
        }
        let mut def = StreamDef::new(
            name.to_string(),
            channel.to_string(),
            c.kind,
            symbol.to_string(),
            Route::Root,
        );
        def.seq = c.seq;
        def.silence = c.silence;
        Ok(def)
    }

    fn subscribe_request(&self, id: u64, streams: &mut dyn Iterator<Item = &str>) -> String {
        self.subscribe.render(id, streams, &self.naming)
    }

    fn classify<'a>(&self, text: &'a str) -> Result<Frame<'a>, ParseError> {
        let mut found = [Span::NONE; Pointers::MAX];
        self.envelope.locate(text, &mut found)?;
        let found = &found[..];
        if self.holds(&self.err_when, text, found) {
            let code = self
                .err_code
                .and_then(|at| found[usize::from(at)].text(text))
                .and_then(|t| Reader::new(t).int().ok().flatten())
                .unwrap_or(0);
            return Ok(Frame::Error {
                id: uint_at(text, found, self.err_id),
                code,
                msg: string_at(text, found, self.err_msg).unwrap_or(""),
            });
        }
        if self.holds(&self.ack_when, text, found) {
            let stream = match (self.ack_stream, self.ack_channel) {
                (Some(_), _) => string_at(text, found, self.ack_stream).map(StreamKey::name),
                (None, Some(_)) => string_at(text, found, self.ack_channel)
                    .zip(string_at(text, found, self.ack_symbol))
                    .map(|(topic, inst)| StreamKey::pair(topic, inst)),
                (None, None) => None,
            };
            return Ok(Frame::Ack {
                id: uint_at(text, found, self.ack_id),
                stream,
            });
        }
        if self.holds(&self.pong_when, text, found) {
            return Ok(Frame::Pong);
        }
        if self.holds(&self.ping_when, text, found) {
            return Ok(Frame::ServerPing);
        }
        if !self.data_when.is_empty() && !self.holds(&self.data_when, text, found) {
            return Ok(Frame::Unknown);
        }
        if let Some(name) = string_at(text, found, self.data_stream) {
            let channel = self.naming.split(name).map(|(channel, _)| channel);
            let Some(c) = channel.and_then(|ch| self.channels.iter().find(|c| c.name == ch)) else {
                return Ok(Frame::Unknown);
            };
            let Some(data) = found[usize::from(c.payload)].text(text) else {
                return Err(ParseError::Field("payload"));
            };
            return Ok(Frame::Data {
                stream: StreamKey::name(name),
                data,
            });
        }
        if let Some(topic) = string_at(text, found, self.data_channel) {
            let Some(c) = self.channels.iter().find(|c| unescaped_eq(topic, &c.name)) else {
                return Ok(Frame::Unknown);
            };
            let Some(data) = found[usize::from(c.payload)].text(text) else {
                return Err(ParseError::Field("payload"));
            };
            let Some(inst) = string_at(text, found, c.envelope_symbol) else {
                if c.several
                    && data
                        .strip_prefix('[')
                        .is_some_and(|r| r.trim_start().starts_with(']'))
                {
                    // An empty list of updates: nothing to deliver.
                    return Ok(Frame::Unknown);
                }
                return Err(ParseError::Field("symbol"));
            };
            return Ok(Frame::Data {
                stream: StreamKey::pair(topic, inst),
                data,
            });
        }
        Ok(Frame::Unknown)
    }

    fn parse_data(
        &self,
        kind: StreamKind,
        data: &str,
        emit: &mut dyn FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let Some(c) = self.channel_by_kind(kind) else {
            return Err(ParseError::Field("channel"));
        };
        if !c.several {
            let mut found = [Span::NONE; Pointers::MAX];
            c.update.locate(data, &mut found)?;
            let (tick, seq_no, time) = c.read(data, &found)?;
            emit(c.numbering(seq_no, seq_no, time), time, tick);
            return Ok(());
        }
        // Several updates: the message is numbered by its first and last, so its ticks go
        // out once all are read (held here; a longer list is read a second time).
        let mut held = [(
            TickData::Trade {
                price: 0.0,
                qty: 0.0,
                buyer_is_maker: false,
            },
            0u64,
        ); HELD];
        let mut n = 0;
        let mut bounds: Option<(Option<u64>, Option<u64>, u64)> = None;
        c.each_update(data, &mut |found| {
            let (tick, seq_no, time) = c.read(data, found)?;
            // Venues list updates oldest or newest first: the message covers the lowest to
            // the highest id.
            let b = bounds.get_or_insert((seq_no, seq_no, time));
            b.0 = b.0.min(seq_no);
            b.1 = b.1.max(seq_no);
            if let Some(slot) = held.get_mut(n) {
                *slot = (tick, time);
            }
            n += 1;
            Ok(())
        })?;
        let Some((first, last, time)) = bounds else {
            return Ok(());
        };
        let seq = c.numbering(first, last, time);
        if n <= HELD {
            for &(tick, time) in &held[..n] {
                emit(seq, time, tick);
            }
            return Ok(());
        }
        c.each_update(data, &mut |found| {
            let (tick, _, time) = c.read(data, found)?;
            emit(seq, time, tick);
            Ok(())
        })
    }

    fn classify_binary<'a>(&self, frame: &'a [u8]) -> Result<Frame<'a>, ParseError> {
        let Some(sep) = self.binary else {
            return Ok(Frame::Unknown);
        };
        let (topic, inst) = match sbe::decode(frame)? {
            Event::Bbo { market, .. } => ("bbo", market),
            Event::Trade { market, .. } => ("trades", market),
            // Any frame proves the connection alive: nothing more to do.
            Event::Heartbeat => return Ok(Frame::Pong),
            Event::Other(_) => return Ok(Frame::Unknown),
        };
        if !self.channels.iter().any(|c| c.name == topic) {
            return Ok(Frame::Unknown);
        }
        Ok(Frame::Binary {
            stream: StreamKey {
                topic,
                inst,
                sep,
                escapes: false,
            },
            data: frame,
        })
    }

    fn parse_binary(
        &self,
        kind: StreamKind,
        frame: &[u8],
        emit: &mut dyn FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let Some(c) = self.channel_by_kind(kind).filter(|_| self.binary.is_some()) else {
            return Err(ParseError::Field("channel"));
        };
        let (tick, seq_no, time_us) = match (sbe::decode(frame)?, &c.fields) {
            (
                Event::Bbo {
                    timestamp_us,
                    seq_no,
                    bid,
                    ask,
                    ..
                },
                Fields::Quote { .. },
            ) => {
                let empty = (f64::NAN, 0.0);
                let quote = TickData::quote(bid.unwrap_or(empty), ask.unwrap_or(empty));
                (quote, seq_no, timestamp_us)
            }
            (
                Event::Trade {
                    seq_no,
                    taker_buy,
                    price,
                    size,
                    created_at_us,
                    ..
                },
                Fields::Trade { .. },
            ) => {
                let trade = TickData::Trade {
                    price,
                    qty: size,
                    buyer_is_maker: !taker_buy,
                };
                (trade, seq_no, created_at_us)
            }
            _ => return Err(ParseError::Field("SBE templateId")),
        };
        // The channel's numbering, as for its JSON form: its sequence rule when it has one.
        let seq_no = match c.sequence {
            Some(_) => Some(u64::try_from(seq_no).map_err(|_| ParseError::Field("seq_no"))?),
            None => None,
        };
        let time = u64::try_from(time_us).unwrap_or(0) / 1_000;
        emit(c.numbering(seq_no, seq_no, time), time, tick);
        Ok(())
    }

    fn connect_limit(&self) -> (u32, Duration) {
        (
            self.spec.connect_limit,
            Duration::from_millis(self.spec.connect_window_ms),
        )
    }

    fn max_streams_per_request(&self) -> usize {
        match self.subscribe.several {
            true => self.spec.max_streams_per_request,
            false => 1,
        }
    }

    fn max_streams_per_connection(&self) -> usize {
        self.spec.max_streams_per_connection
    }

    fn request_spacing(&self) -> Duration {
        Duration::from_millis(self.spec.request_spacing_ms)
    }

    fn ping_text(&self) -> Option<&str> {
        self.ping_text.as_deref()
    }

    fn keepalive(&self) -> Option<Duration> {
        self.keepalive
    }

    fn ping_reply(&self) -> Option<&str> {
        self.ping_reply.as_deref()
    }

    fn instrument(&self, symbol: &str) -> String {
        let named = match &self.spec.instrument {
            Some(t) => t.replace("{symbol}", symbol),
            None => symbol.to_string(),
        };
        super::canonical_symbol(&named)
    }
}

/// What [`Channel::each_update`] calls with each update: where its fields lie in the payload.
type UpdateFn<'f> = dyn FnMut(&[Span]) -> Result<(), ParseError> + 'f;

/// Updates of one message held until its numbering is known.
const HELD: usize = 16;

impl Channel {
    /// Calls `f` with each update of a payload that is an array of them.
    fn each_update(&self, data: &str, f: &mut UpdateFn<'_>) -> Result<(), ParseError> {
        let mut r = Reader::new(data);
        let mut s = r.array()?;
        let mut found = [Span::NONE; Pointers::MAX];
        while r.element(&mut s)? {
            self.update.locate_in(&mut r, &mut found)?;
            f(&found)?;
        }
        r.end()?;
        Ok(())
    }

    /// The event time, ms (0 when the update has none).
    fn time_ms(&self, src: &str, found: &[Span]) -> u64 {
        let Some(text) = self.time.and_then(|t| found[usize::from(t)].text(src)) else {
            return 0;
        };
        if self.time_unit == TimeUnit::S {
            let s = Reader::new(text).decimal().ok().flatten().unwrap_or(0.0);
            return (s * 1000.0).max(0.0) as u64;
        }
        let n = Reader::new(text).uint().ok().flatten().unwrap_or(0);
        match self.time_unit {
            TimeUnit::S | TimeUnit::Ms => n,
            TimeUnit::Us => n / 1_000,
            TimeUnit::Ns => n / 1_000_000,
        }
    }

    /// One update's tick, sequence number and time.
    fn read(&self, src: &str, found: &[Span]) -> Result<(TickData, Option<u64>, u64), ParseError> {
        let num = |at: u8, name: &'static str| -> Result<f64, ParseError> {
            let text = found[usize::from(at)]
                .text(src)
                .ok_or(ParseError::Field(name))?;
            Reader::new(text).decimal()?.ok_or(ParseError::Field(name))
        };
        // A side the venue leaves out or sends as null is empty.
        let level = |px: u8, sz: u8| -> Result<(f64, f64), ParseError> {
            let absent = |at: u8| match found[usize::from(at)].text(src) {
                None | Some("null") => true,
                Some(_) => false,
            };
            if absent(px) {
                return Ok((f64::NAN, 0.0));
            }
            Ok((num(px, "price")?, num(sz, "size")?))
        };
        let tick = match &self.fields {
            Fields::Quote {
                bid_price,
                bid_size,
                ask_price,
                ask_size,
            } => TickData::quote(level(*bid_price, *bid_size)?, level(*ask_price, *ask_size)?),
            Fields::Trade {
                price,
                size,
                side,
                buy,
                sell,
            } => {
                let side = string_at(src, found, Some(*side)).ok_or(ParseError::Field("side"))?;
                let buyer_is_maker = if unescaped_eq(side, sell) {
                    true
                } else if unescaped_eq(side, buy) {
                    false
                } else {
                    return Err(ParseError::Field("side"));
                };
                TickData::Trade {
                    price: num(*price, "price")?,
                    qty: num(*size, "size")?,
                    buyer_is_maker,
                }
            }
        };
        let seq_no = match self.sequence {
            Some(at) => Some(uint_at(src, found, Some(at)).ok_or(ParseError::Field("sequence"))?),
            None => None,
        };
        Ok((tick, seq_no, self.time_ms(src, found)))
    }

    /// A message's numbering from its first and last sequence numbers and time.
    fn numbering(&self, first: Option<u64>, last: Option<u64>, time_ms: u64) -> Seq {
        match (self.seq, first, last) {
            (SeqRule::Chained, Some(first), Some(last)) => Seq {
                id: last,
                prev: first.checked_sub(1),
            },
            (SeqRule::Ids, _, Some(last)) => Seq {
                id: last,
                prev: None,
            },
            _ if time_ms > 0 => Seq {
                id: time_ms,
                prev: None,
            },
            _ => Seq::UNNUMBERED,
        }
    }
}

#[cfg(test)]
mod tests;
