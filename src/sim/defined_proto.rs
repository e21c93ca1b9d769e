//! A defined venue's requests, answered from its definition: a request in,
//! replies out, no I/O.
//!
//! A request is a subscribe (or unsubscribe) when it has the JSON structure
//! of the definition's template with the placeholders filled: `{id}` (a
//! number, or inside a string), `{stream}`, `{channel}` and `{symbol}`
//! (inside strings), or `{streams}` (an array of names). Each stream gets an
//! ack built from the `ack` pointers (its conditions met, the request id at
//! `ack.id`, the stream at `ack.stream` or its channel and symbol at
//! `ack.channel` / `ack.symbol`; an unsubscribe is answered the same way),
//! an unknown stream an error built from the `error` pointers. The
//! keep-alive message is answered with a message meeting `keepalive.pong`;
//! the answer to the venue's own ping (`server_ping.reply`) is counted by the
//! serve loop ([`is_ping_reply`]). Anything else gets an error naming it.

use serde_json::{Map, Value};

use super::defined::{self, meet, stream_name};
use super::jsonset::set;
use super::protocol::{self, Env, Out, Session, Topic};
use super::symbol::SymInfo;
use crate::venue::defined::spec::{VenueSpec, When};
use crate::venue::Venue;

/// The code of the errors the simulator sends (the definition names no
/// values, only where they go).
const ERROR_CODE: i64 = 400;

/// Marks an unquoted placeholder in a template turned into JSON.
const MARK: char = '\u{0}';

/// What a request's placeholders held.
#[derive(Debug, Default, PartialEq)]
struct Captured {
    id: Option<u64>,
    stream: Option<String>,
    channel: Option<String>,
    symbol: Option<String>,
    streams: Option<Vec<String>>,
}

impl Captured {
    /// The streams the request names.
    fn names(&self, spec: &VenueSpec) -> Vec<String> {
        if let Some(list) = &self.streams {
            return list.clone();
        }
        if let Some(s) = &self.stream {
            return vec![s.clone()];
        }
        match (&self.channel, &self.symbol) {
            (Some(c), Some(s)) => vec![stream_name(spec, c, s)],
            _ => Vec::new(),
        }
    }
}

/// A template as JSON: each unquoted placeholder (`{id}`, `{streams}`) turned
/// into a string holding [`MARK`] and its name.
fn template(text: &str) -> Option<Value> {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_str, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_str {
            if let Some(name) = ["{id}", "{streams}"].iter().find(|p| rest.starts_with(**p)) {
                out.push_str(&format!("\"\\u0000{}\"", &name[1..name.len() - 1]));
                rest = &rest[name.len()..];
                continue;
            }
        }
        match (in_str, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_str = !in_str,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out).ok()
}

/// Matches a string of the template (placeholders inside) against `s`.
fn match_str(pattern: &str, s: &str, caps: &mut Vec<(String, String)>) -> bool {
    const NAMES: [&str; 4] = ["{id}", "{stream}", "{channel}", "{symbol}"];
    let next = NAMES
        .iter()
        .filter_map(|n| pattern.find(n).map(|i| (i, *n)))
        .min();
    let Some((at, name)) = next else {
        return pattern == s;
    };
    let Some(tail) = s.strip_prefix(&pattern[..at]) else {
        return false;
    };
    let rest = &pattern[at + name.len()..];
    // Shortest first: names are separated by the literal text after them.
    for end in (1..=tail.len()).filter(|&e| tail.is_char_boundary(e)) {
        caps.push((name.to_string(), tail[..end].to_string()));
        if match_str(rest, &tail[end..], caps) {
            return true;
        }
        caps.pop();
    }
    false
}

/// Whether `req` has the template's structure, filling `caps`.
fn matches(t: &Value, req: &Value, caps: &mut Captured) -> bool {
    match (t, req) {
        (Value::String(m), Value::Number(n)) if m.strip_prefix(MARK) == Some("id") => {
            caps.id = n.as_u64();
            caps.id.is_some()
        }
        (Value::String(m), Value::Array(items)) if m.strip_prefix(MARK) == Some("streams") => {
            let names: Option<Vec<String>> =
                items.iter().map(|v| v.as_str().map(String::from)).collect();
            caps.streams = names;
            caps.streams.is_some()
        }
        (Value::String(p), Value::String(s)) => {
            let mut found = Vec::new();
            if !match_str(p, s, &mut found) {
                return false;
            }
            for (name, value) in found {
                match name.as_str() {
                    "{id}" => match value.parse() {
                        Ok(id) => caps.id = Some(id),
                        Err(_) => return false,
                    },
                    "{stream}" => caps.stream = Some(value),
                    "{channel}" => caps.channel = Some(value),
                    _ => caps.symbol = Some(value),
                }
            }
            true
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| matches(v, w, caps)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| matches(v, w, caps))
        }
        (a, b) => a == b,
    }
}

/// What `req` asks with template `text`, if it has its shape.
fn request(text: Option<&str>, req: &Value) -> Option<Captured> {
    let t = template(text?)?;
    let mut caps = Captured::default();
    matches(&t, req, &mut caps).then_some(caps)
}

/// Whether two texts are the same JSON value.
fn same_json(a: &str, b: &str) -> bool {
    let parse = |t: &str| serde_json::from_str::<Value>(t).ok();
    parse(a).is_some_and(|a| Some(a) == parse(b))
}

/// Whether `text` is the client's answer to the venue's own ping.
pub(crate) fn is_ping_reply(venue: Venue, text: &str) -> bool {
    defined::spec(venue)
        .server_ping
        .as_ref()
        .is_some_and(|p| same_json(&p.reply, text))
}

/// The venue's own ping, if its definition has one.
pub(crate) fn server_ping(venue: Venue) -> Option<String> {
    let p = defined::spec(venue).server_ping.as_ref()?;
    Some(meeting(&p.when))
}

/// The smallest message meeting `when`.
fn meeting(when: &When) -> String {
    let mut root = Value::Object(Map::new());
    meet(&mut root, when);
    root.to_string()
}

/// The ack of one stream (also the answer to an unsubscribe).
fn ack(spec: &VenueSpec, id: Option<u64>, name: &str, topic: Option<(&str, &str)>) -> String {
    let a = &spec.ack;
    let mut root = Value::Object(Map::new());
    if let (Some(p), Some(id)) = (&a.id, id) {
        set(&mut root, p, Value::from(id));
    }
    if let Some(p) = &a.stream {
        set(&mut root, p, Value::from(name));
    }
    if let (Some(pc), Some(ps), Some((channel, symbol))) = (&a.channel, &a.symbol, topic) {
        set(&mut root, pc, Value::from(channel));
        set(&mut root, ps, Value::from(symbol));
    }
    meet(&mut root, &a.when);
    root.to_string()
}

/// An error naming what is wrong (without an `error` definition: nothing to
/// send, `None`).
fn error(spec: &VenueSpec, id: Option<u64>, msg: &str) -> Option<String> {
    let e = spec.error.as_ref()?;
    let mut root = Value::Object(Map::new());
    if let (Some(p), Some(id)) = (&e.id, id) {
        set(&mut root, p, Value::from(id));
    }
    if let Some(p) = &e.code {
        set(&mut root, p, Value::from(ERROR_CODE));
    }
    if let Some(p) = &e.message {
        set(&mut root, p, Value::from(msg));
    }
    meet(&mut root, &e.when);
    Some(root.to_string())
}

/// The stream `name`, if the definition has its channel and the simulator
/// its symbol.
fn parse_stream(venue: Venue, info: &[SymInfo], name: &str) -> Option<Topic> {
    let spec = defined::spec(venue);
    spec.channels.iter().find_map(|c| {
        let sym = info
            .iter()
            .position(|s| stream_name(spec, &c.name, &s.venue) == name)?;
        Some(Topic {
            sym,
            kind: defined::kind_of(c.tick),
            name: name.to_string(),
            spot: false,
        })
    })
}

/// Handles one request of a defined venue's client.
pub(crate) fn handle(venue: Venue, text: &str, session: &mut Session, env: &dyn Env) -> Vec<Out> {
    let spec = defined::spec(venue);
    let mut out = Vec::new();
    let reply = |out: &mut Vec<Out>, r: Option<String>| {
        if let Some(r) = r {
            out.push(Out::Reply(r));
        }
    };
    if let Some(k) = &spec.keepalive {
        if k.message.as_deref().is_some_and(|m| same_json(m, text)) {
            env.venue_ping();
            let pong = k.pong.as_ref().map(meeting);
            reply(&mut out, pong);
            return out;
        }
    }
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        reply(&mut out, error(spec, None, &format!("not JSON: {text}")));
        return out;
    };
    let (caps, subscribe) = match request(Some(&spec.subscribe), &req) {
        Some(c) => (c, true),
        None => match request(spec.unsubscribe.as_deref(), &req) {
            Some(c) => (c, false),
            None => {
                reply(
                    &mut out,
                    error(spec, None, &format!("unknown request: {text}")),
                );
                return out;
            }
        },
    };
    if subscribe && env.subscribe_ignored() {
        return out;
    }
    let names = caps.names(spec);
    if names.is_empty() {
        reply(&mut out, error(spec, caps.id, "no stream named"));
        return out;
    }
    for name in names {
        let Some(topic) = parse_stream(venue, env.info(), &name) else {
            let msg = format!("unknown stream '{name}'");
            reply(&mut out, error(spec, caps.id, &msg));
            continue;
        };
        let channel = defined::channel_name(spec, topic.kind);
        let symbol = env.info()[topic.sym].venue.as_str();
        out.push(Out::Reply(ack(
            spec,
            caps.id,
            &name,
            Some((channel, symbol)),
        )));
        session.subs.retain(|s| s.name != name);
        if subscribe {
            protocol::start(session, env, vec![topic], &mut out);
        }
    }
    out.push(Out::Streams);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_their_placeholders() {
        let t =
            r#"{"jsonrpc":"2.0","method":"subscribe","params":{"channel":"{stream}"},"id":{id}}"#;
        let req = serde_json::from_str(
            r#"{"id":12,"jsonrpc":"2.0","method":"subscribe","params":{"channel":"bbo.BTC-USD-PERP"}}"#,
        )
        .unwrap();
        let caps = request(Some(t), &req).expect("matches");
        assert_eq!(caps.id, Some(12));
        assert_eq!(caps.stream.as_deref(), Some("bbo.BTC-USD-PERP"));
        let other = serde_json::from_str(r#"{"method":"subscribe","id":1}"#).unwrap();
        assert!(request(Some(t), &other).is_none());

        let t = r#"{"op":"sub","req":"r-{id}","args":{streams},"x":"{channel}/{symbol}"}"#;
        let req =
            serde_json::from_str(r#"{"op":"sub","req":"r-7","args":["a:B","c:D"],"x":"bbo/ETH"}"#)
                .unwrap();
        let caps = request(Some(t), &req).expect("matches");
        assert_eq!(caps.id, Some(7));
        assert_eq!(caps.streams, Some(vec!["a:B".into(), "c:D".into()]));
        assert_eq!(
            (caps.channel.as_deref(), caps.symbol.as_deref()),
            (Some("bbo"), Some("ETH"))
        );
        let bad = serde_json::from_str(r#"{"op":"sub","req":"r-x","args":[],"x":"a/b"}"#).unwrap();
        assert!(request(Some(t), &bad).is_none());
    }
}
