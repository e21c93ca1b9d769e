//! A [`VenueSpec`] checked and compiled: every pointer parsed once, the message-level ones
//! into one tree and each channel's update fields into another, so reading a message is one
//! descent (two for a channel whose payload is an array of updates).

use std::time::Duration;

use super::spec::{BinaryFormat, ChannelSpec, MatchSpec, SeqSpec, TickKind, VenueSpec, When};
use super::{Channel, Cond, Defined, Fields, Literal, Naming, Template};
use crate::json::{Pointer, Pointers};
use crate::venue::{check_venue_name, SeqRule, StreamKind};

/// Most channels one definition has.
const MAX_CHANNELS: usize = 8;

/// Collects the message-level pointers, each once, handing out their indices.
#[derive(Default)]
struct Envelope {
    pointers: Vec<Pointer>,
}

impl Envelope {
    fn add(&mut self, p: Pointer) -> Result<u8, String> {
        if let Some(i) = self.pointers.iter().position(|q| *q == p) {
            return Ok(i as u8);
        }
        if self.pointers.len() == Pointers::MAX {
            return Err(format!(
                "more than {} distinct message-level pointers",
                Pointers::MAX
            ));
        }
        self.pointers.push(p);
        Ok((self.pointers.len() - 1) as u8)
    }
}

/// Errors name the venue and the field: `venue 'paradex': channels[0] ('bbo').bid_price: …`.
struct At<'a> {
    venue: &'a str,
}

impl At<'_> {
    fn err(&self, field: &str, what: impl std::fmt::Display) -> String {
        format!("venue '{}': {field}: {what}", self.venue)
    }

    fn pointer(&self, field: &str, text: &str) -> Result<Pointer, String> {
        Pointer::parse(text).map_err(|e| self.err(field, e))
    }

    fn when(&self, env: &mut Envelope, field: &str, when: &When) -> Result<Vec<Cond>, String> {
        if when.all().is_empty() {
            return Err(self.err(field, "lists no condition"));
        }
        when.all()
            .iter()
            .enumerate()
            .map(|(i, m)| self.cond(env, &format!("{field}[{i}]"), m))
            .collect()
    }

    fn cond(&self, env: &mut Envelope, field: &str, m: &MatchSpec) -> Result<Cond, String> {
        let at = self.add(env, &format!("{field}.pointer"), &m.pointer)?;
        let equals = match &m.equals {
            None => None,
            Some(toml::Value::String(s)) => Some(Literal::Str(s.clone())),
            Some(
                v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
            ) => Some(Literal::Raw(v.to_string())),
            Some(other) => {
                return Err(self.err(
                    &format!("{field}.equals"),
                    format!(
                        "{} is not a string, a number or a boolean",
                        other.type_str()
                    ),
                ))
            }
        };
        Ok(Cond { at, equals })
    }

    /// The envelope pointer `text` of `field`, checked and added: its index.
    fn add(&self, env: &mut Envelope, field: &str, text: &str) -> Result<u8, String> {
        let p = self.pointer(field, text)?;
        env.add(p).map_err(|e| self.err(field, e))
    }

    /// [`At::add`] of a pointer the definition may leave out.
    fn opt(
        &self,
        env: &mut Envelope,
        field: &str,
        text: &Option<String>,
    ) -> Result<Option<u8>, String> {
        text.as_deref().map(|t| self.add(env, field, t)).transpose()
    }
}

impl Defined {
    /// Checks `spec` and compiles it. Every error names the venue, the field and what is
    /// wrong.
    pub fn compile(spec: &VenueSpec) -> Result<Defined, String> {
        let at = At { venue: &spec.name };
        check_venue_name(&spec.name).map_err(|e| format!("[[venues]] name: {e}"))?;
        if crate::venue::Venue::ALL
            .iter()
            .any(|v| v.name() == spec.name)
        {
            return Err(at.err(
                "name",
                "is a built-in venue; a defined venue needs another name",
            ));
        }
        crate::config::Endpoint::parse(&spec.url).map_err(|e| at.err("url", e))?;
        let naming = Naming::parse(&spec.stream_name).map_err(|e| at.err("stream_name", e))?;
        if spec.max_streams_per_request == 0 || spec.max_streams_per_connection == 0 {
            return Err(at.err(
                "max_streams_per_request / max_streams_per_connection",
                "must be at least 1",
            ));
        }
        if spec.request_spacing_ms > 10_000 {
            return Err(at.err(
                "request_spacing_ms",
                format!("{} is above 10000 ms", spec.request_spacing_ms),
            ));
        }
        if spec.connect_limit == 0 || spec.connect_window_ms == 0 {
            return Err(at.err("connect_limit / connect_window_ms", "must be at least 1"));
        }
        if let Some(t) = &spec.instrument {
            if t.matches("{symbol}").count() != 1 {
                return Err(at.err("instrument", format!("'{t}' must hold {{symbol}} once")));
            }
        }
        let subscribe =
            Template::parse(&spec.subscribe, &naming).map_err(|e| at.err("subscribe", e))?;
        if let Some(u) = &spec.unsubscribe {
            Template::parse(u, &naming).map_err(|e| at.err("unsubscribe", e))?;
        }
        let mut env = Envelope::default();

        let d = &spec.data;
        let data_when = match &d.when {
            Some(w) => at.when(&mut env, "data.when", w)?,
            None => Vec::new(),
        };
        let (data_stream, data_channel) = match (&d.stream, &d.channel) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(at.err(
                    "data",
                    "give exactly one of 'stream' (a pointer to the stream's name) and \
                     'channel' (a pointer to the channel's name, the symbol read in the update)",
                ))
            }
            (s, c) => (
                at.opt(&mut env, "data.stream", s)?,
                at.opt(&mut env, "data.channel", c)?,
            ),
        };
        if data_channel.is_some() && !naming.is_pair() {
            return Err(at.err(
                "stream_name",
                "must be '{channel}:{symbol}' when data names its channel ('data.channel')",
            ));
        }

        let a = &spec.ack;
        let ack_when = at.when(&mut env, "ack.when", &a.when)?;
        let ack_id = at.opt(&mut env, "ack.id", &a.id)?;
        let ack_stream = at.opt(&mut env, "ack.stream", &a.stream)?;
        let ack_channel = at.opt(&mut env, "ack.channel", &a.channel)?;
        let ack_symbol = at.opt(&mut env, "ack.symbol", &a.symbol)?;
        if ack_channel.is_some() != ack_symbol.is_some() {
            return Err(at.err("ack", "'channel' and 'symbol' go together"));
        }
        if ack_id.is_some() && !spec.subscribe.contains("{id}") {
            return Err(at.err(
                "ack.id",
                "the ack is matched by the request id, but subscribe sends none ({id})",
            ));
        }
        if ack_id.is_none() && ack_stream.is_none() && ack_channel.is_none() {
            return Err(at.err(
                "ack",
                "names neither the request ('id') nor the stream ('stream', or 'channel' and \
                 'symbol'): an ack could not be matched to its request",
            ));
        }

        let (err_when, err_id, err_code, err_msg) = match &spec.error {
            Some(e) => (
                at.when(&mut env, "error.when", &e.when)?,
                at.opt(&mut env, "error.id", &e.id)?,
                at.opt(&mut env, "error.code", &e.code)?,
                at.opt(&mut env, "error.message", &e.message)?,
            ),
            None => (Vec::new(), None, None, None),
        };

        let (ping_text, keepalive, pong_when) = match &spec.keepalive {
            Some(k) => {
                if k.interval_ms < 1000 {
                    return Err(at.err(
                        "keepalive.interval_ms",
                        format!("{} is below 1000 ms", k.interval_ms),
                    ));
                }
                if let Some(m) = &k.message {
                    check_json(m).map_err(|e| at.err("keepalive.message", e))?;
                }
                let pong = match &k.pong {
                    Some(w) => at.when(&mut env, "keepalive.pong", w)?,
                    None => Vec::new(),
                };
                (
                    k.message.clone(),
                    Some(Duration::from_millis(k.interval_ms)),
                    pong,
                )
            }
            None => (None, None, Vec::new()),
        };
        let (ping_when, ping_reply) = match &spec.server_ping {
            Some(p) => {
                check_json(&p.reply).map_err(|e| at.err("server_ping.reply", e))?;
                (
                    at.when(&mut env, "server_ping.when", &p.when)?,
                    Some(p.reply.clone()),
                )
            }
            None => (Vec::new(), None),
        };

        if spec.channels.is_empty() {
            return Err(at.err("channels", "lists no channel"));
        }
        if spec.channels.len() > MAX_CHANNELS {
            return Err(at.err(
                "channels",
                format!("{} channels; at most {MAX_CHANNELS}", spec.channels.len()),
            ));
        }
        let mut channels = Vec::with_capacity(spec.channels.len());
        for (i, c) in spec.channels.iter().enumerate() {
            let field = format!("channels[{i}] ('{}')", c.name);
            let before = &spec.channels[..i];
            if before.iter().any(|o| o.name == c.name) {
                return Err(at.err(&field, "is listed twice"));
            }
            if let Some(part) = naming.parts().find(|p| c.name.contains(p)) {
                return Err(at.err(
                    &format!("{field}.name"),
                    format!("holds '{part}', which stream_name puts around the channel"),
                ));
            }
            if before.iter().any(|o| o.tick == c.tick) {
                return Err(at.err(
                    &field,
                    format!("a second {:?} channel; one channel per tick kind", c.tick),
                ));
            }
            let ch = channel(&at, &field, c, data_channel.is_some(), &mut env)?;
            channels.push(ch);
        }
        let binary = match spec.binary {
            None => None,
            Some(BinaryFormat::ParadexSbe) => Some(paradex_sbe(&at, &naming, &spec.channels)?),
        };

        Ok(Defined {
            spec: spec.clone(),
            naming,
            subscribe,
            envelope: Pointers::new(&env.pointers),
            data_when,
            data_stream,
            data_channel,
            ack_when,
            ack_id,
            ack_stream,
            ack_channel,
            ack_symbol,
            err_when,
            err_id,
            err_code,
            err_msg,
            pong_when,
            ping_when,
            ping_reply,
            ping_text,
            keepalive,
            channels,
            binary,
        })
    }
}

/// Checks a definition whose data comes as Paradex's SBE frames, which name a stream by
/// template (channel `bbo` or `trades`) and market: its names must be channel, one character,
/// symbol. Gives that character.
fn paradex_sbe(at: &At<'_>, naming: &Naming, channels: &[ChannelSpec]) -> Result<u8, String> {
    let sep = naming.between.as_bytes();
    if naming.symbol_first
        || !naming.before.is_empty()
        || !naming.after.is_empty()
        || sep.len() != 1
    {
        return Err(at.err(
            "stream_name",
            "must be '{channel}.{symbol}' (or another single character between) with binary \
             = 'paradex-sbe': its frames name a channel and a market",
        ));
    }
    for (i, c) in channels.iter().enumerate() {
        let wanted = match c.tick {
            TickKind::Quote => "bbo",
            TickKind::Trade => "trades",
        };
        if c.several {
            return Err(at.err(
                &format!("channels[{i}] ('{}').several", c.name),
                "cannot be set with binary = 'paradex-sbe' (a frame holds one update)",
            ));
        }
        if c.sequence.as_deref().is_some_and(|p| p != "/seq_no") {
            return Err(at.err(
                &format!("channels[{i}] ('{}').sequence", c.name),
                "must be '/seq_no' with binary = 'paradex-sbe' (the number its frames carry)",
            ));
        }
        if c.name != wanted {
            return Err(at.err(
                &format!("channels[{i}] ('{}').name", c.name),
                format!(
                    "must be '{wanted}' with binary = 'paradex-sbe' (the channel its frames name)"
                ),
            ));
        }
    }
    Ok(sep[0])
}

/// Checks that `text` is one JSON value.
fn check_json(text: &str) -> Result<(), String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|_| ())
        .map_err(|e| format!("'{text}' is not JSON: {e}"))
}

/// One channel compiled.
fn channel(
    at: &At<'_>,
    field: &str,
    c: &ChannelSpec,
    symbol_in_update: bool,
    env: &mut Envelope,
) -> Result<Channel, String> {
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_graphic() && ch != '"' && ch != '\\')
    {
        return Err(at.err(
            &format!("{field}.name"),
            "must be printable ASCII without quotes or backslashes",
        ));
    }
    let payload = at.add(env, &format!("{field}.payload"), &c.payload)?;
    // When data names only the channel, the symbol is found in the same descent as the rest
    // of the message: the payload's (first) update's symbol, as one pointer from the root.
    let envelope_symbol = match (&c.symbol, symbol_in_update) {
        (Some(s), true) => {
            let first = if c.several { "/0" } else { "" };
            let text = format!("{}{first}{s}", c.payload);
            Some(at.add(env, &format!("{field}.symbol"), &text)?)
        }
        _ => None,
    };
    let mut pointers: Vec<Pointer> = Vec::new();
    let mut add = |name: &str, text: &Option<String>| -> Result<Option<u8>, String> {
        let Some(text) = text else {
            return Ok(None);
        };
        pointers.push(at.pointer(&format!("{field}.{name}"), text)?);
        Ok(Some((pointers.len() - 1) as u8))
    };
    let need = |name: &str, v: Option<u8>| {
        v.ok_or_else(|| at.err(&format!("{field}.{name}"), "is required for this tick kind"))
    };
    let refuse = |name: &str, v: &Option<String>| match v {
        Some(_) => Err(at.err(
            &format!("{field}.{name}"),
            format!("does not belong to a {:?} channel", c.tick),
        )),
        None => Ok(()),
    };
    // The symbol and the trade id are checked as pointers, not looked for in each update: the
    // symbol is read from the stream's name or, above, the envelope; the id is not read.
    let check = |name: &str, text: &Option<String>| match text {
        Some(t) => at.pointer(&format!("{field}.{name}"), t).map(drop),
        None => Ok(()),
    };
    check("symbol", &c.symbol)?;
    if symbol_in_update && c.symbol.is_none() {
        return Err(at.err(
            &format!("{field}.symbol"),
            "is required: data names only the channel ('data.channel'), so the symbol is read \
             in the update",
        ));
    }
    let fields = match c.tick {
        TickKind::Quote => {
            for (n, v) in [("price", &c.price), ("size", &c.size), ("side", &c.side)] {
                refuse(n, v)?;
            }
            Fields::Quote {
                bid_price: need("bid_price", add("bid_price", &c.bid_price)?)?,
                bid_size: need("bid_size", add("bid_size", &c.bid_size)?)?,
                ask_price: need("ask_price", add("ask_price", &c.ask_price)?)?,
                ask_size: need("ask_size", add("ask_size", &c.ask_size)?)?,
            }
        }
        TickKind::Trade => {
            for (n, v) in [
                ("bid_price", &c.bid_price),
                ("bid_size", &c.bid_size),
                ("ask_price", &c.ask_price),
                ("ask_size", &c.ask_size),
            ] {
                refuse(n, v)?;
            }
            let side = need("side", add("side", &c.side)?)?;
            let (Some(buy), Some(sell)) = (&c.buy, &c.sell) else {
                return Err(at.err(
                    &format!("{field}.buy / {field}.sell"),
                    "name the values of 'side' for a buy and a sell (e.g. \"BUY\" and \"SELL\")",
                ));
            };
            if buy == sell {
                return Err(at.err(&format!("{field}.sell"), "equals 'buy'"));
            }
            check("trade_id", &c.trade_id)?;
            Fields::Trade {
                price: need("price", add("price", &c.price)?)?,
                size: need("size", add("size", &c.size)?)?,
                side,
                buy: buy.clone(),
                sell: sell.clone(),
            }
        }
    };
    let sequence = add("sequence", &c.sequence)?;
    let (kind, seq) = match (c.tick, c.sequence_rule, sequence) {
        (_, SeqSpec::None, Some(_)) => {
            return Err(at.err(
                &format!("{field}.sequence"),
                "is given but sequence_rule is \"none\"",
            ))
        }
        (_, SeqSpec::PlusOne | SeqSpec::Increasing, None) => {
            return Err(at.err(
                &format!("{field}.sequence"),
                "is required with sequence_rule \"+1\" or \"increasing\"",
            ))
        }
        (TickKind::Quote, rule, _) => (StreamKind::BookTicker, rule),
        (TickKind::Trade, rule, _) => (StreamKind::Trade, rule),
    };
    let seq = match seq {
        SeqSpec::PlusOne => SeqRule::Chained,
        SeqSpec::Increasing => SeqRule::Ids,
        SeqSpec::None => SeqRule::Time,
    };
    // Without a number or a time a message is unnumbered: always delivered, never judged a
    // duplicate (a hot standby then delivers it twice).
    let time = add("time", &c.time)?;
    let silence = match c.silence_ms {
        Some(0) => return Err(at.err(&format!("{field}.silence_ms"), "must be at least 1")),
        Some(ms) => Duration::from_millis(ms),
        None => kind.default_silence_limit(),
    };
    Ok(Channel {
        name: c.name.clone(),
        kind,
        payload,
        several: c.several,
        envelope_symbol,
        update: Pointers::new(&pointers),
        fields,
        sequence,
        time,
        time_unit: c.time_unit,
        seq,
        silence,
    })
}
