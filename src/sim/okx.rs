//! OKX v5 public WebSocket protocol: channel arguments and the requests a
//! client may send, a request in, replies out, no I/O.
//!
//! Requests `{"id":"…","op":"subscribe"|"unsubscribe","args":[{"channel":…,
//! "instId":…}]}` and the text `ping` (→ `pong`); one
//! `{"event":"subscribe","arg":…,"connId":…}` per argument, or
//! `{"event":"error","code":"60018",…}` for an argument that does not exist.
//! Subscribing again to a channel starts it afresh with a new snapshot.

use serde_json::Value;

use super::base::Kind;
use super::format::json_str;
use super::protocol::{self, Env, Out, Session, Topic};
use super::symbol::SymInfo;

/// Parses an OKX v5 public channel argument: `bbo-tbt`, `books`, `trades`,
/// `mark-price` on a swap (`BTC-USDT-SWAP`) or spot (`BTC-USDT`) instrument,
/// `funding-rate` on a swap.
pub(crate) fn parse_arg(info: &[SymInfo], channel: &str, inst_id: &str) -> Option<Topic> {
    let kind = match channel {
        "bbo-tbt" => Kind::BookTicker,
        "books" => Kind::Depth,
        "trades" => Kind::AggTrade,
        "mark-price" => Kind::MarkPrice,
        "funding-rate" => Kind::Funding,
        _ => return None,
    };
    let (sym, spot) = info.iter().enumerate().find_map(|(i, s)| {
        if s.okx_swap == inst_id {
            Some((i, false))
        } else if s.okx_spot == inst_id {
            Some((i, true))
        } else {
            None
        }
    })?;
    if spot && kind == Kind::Funding {
        return None;
    }
    Some(Topic {
        sym,
        kind,
        name: stream_name(channel, inst_id),
        spot,
    })
}

/// Canonical stream name of an OKX subscription.
pub(crate) fn stream_name(channel: &str, inst_id: &str) -> String {
    format!("{channel}:{inst_id}")
}

/// The normalised name of a `channel:instId` given to `Fault::Mute` (itself
/// if it is not a known argument).
pub(crate) fn normalise(info: &[SymInfo], name: &str) -> String {
    name.split_once(':')
        .and_then(|(c, i)| parse_arg(info, c, i))
        .map_or_else(|| name.to_string(), |t| t.name)
}

/// Handles one request: the text `ping`, `{"op":"subscribe"|"unsubscribe",
/// "args":[{"channel":…,"instId":…},…]}` with an optional `id`; one event
/// per argument.
pub(crate) fn handle(text: &str, session: &mut Session, env: &dyn Env) -> Vec<Out> {
    if text == "ping" {
        env.venue_ping();
        return vec![Out::Reply("pong".to_string())];
    }
    let tag = session.tag.clone();
    let invalid = |id: Option<&str>| {
        let msg = format!("Invalid request: {text}");
        vec![Out::Reply(error(id, "60012", &msg, &tag))]
    };
    let req: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => return invalid(None),
    };
    let id = req.get("id").and_then(Value::as_str);
    let subscribe = match req.get("op").and_then(Value::as_str).unwrap_or("") {
        "subscribe" => true,
        "unsubscribe" => false,
        _ => return invalid(id),
    };
    if subscribe && env.subscribe_ignored() {
        return Vec::new();
    }
    let Some(args) = req
        .get("args")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return invalid(id);
    };
    let mut out = Vec::new();
    for arg in args {
        let field = |k: &str| arg.get(k).and_then(Value::as_str).unwrap_or("");
        let (channel, inst) = (field("channel"), field("instId"));
        let Some(topic) = parse_arg(env.info(), channel, inst) else {
            let msg = not_found(channel, inst);
            out.push(Out::Reply(error(id, "60018", &msg, &tag)));
            continue;
        };
        let event = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        session.subs.retain(|s| s.name != topic.name);
        out.push(Out::Reply(event_reply(event, id, channel, inst, &tag)));
        if subscribe {
            // Subscribing again starts the channel afresh (new snapshot).
            protocol::start(session, env, vec![topic], &mut out);
        }
    }
    out.push(Out::Streams);
    out
}

/// `"id":"…",` when the request had an id, else nothing.
fn id_field(id: Option<&str>) -> String {
    id.map_or_else(String::new, |id| format!(r#""id":{},"#, json_str(id)))
}

/// An OKX `subscribe` / `unsubscribe` event for one argument.
pub(crate) fn event_reply(
    event: &str,
    id: Option<&str>,
    channel: &str,
    inst_id: &str,
    conn_id: &str,
) -> String {
    format!(
        r#"{{{}"event":"{event}","arg":{{"channel":{},"instId":{}}},"connId":"{conn_id}"}}"#,
        id_field(id),
        json_str(channel),
        json_str(inst_id)
    )
}

/// An OKX error event.
pub(crate) fn error(id: Option<&str>, code: &str, msg: &str, conn_id: &str) -> String {
    format!(
        r#"{{{}"event":"error","code":"{code}","msg":{},"connId":"{conn_id}"}}"#,
        id_field(id),
        json_str(msg)
    )
}

/// OKX's 60018 message for an argument it does not serve.
pub(crate) fn not_found(channel: &str, inst_id: &str) -> String {
    format!(
        "Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use the correct URL, channel and parameters referring to API document."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::SimVenue;
    use crate::sim::protocol::test_env::{replies, TestEnv};

    fn info() -> Vec<SymInfo> {
        vec![SymInfo::new("BTCUSDT", 2), SymInfo::new("ETHUSDT", 2)]
    }

    #[test]
    fn okx_channels() {
        let i = info();
        let t = parse_arg(&i, "books", "BTC-USDT-SWAP").expect("swap");
        assert_eq!(
            (t.sym, t.kind, t.spot, t.name.as_str()),
            (0, Kind::Depth, false, "books:BTC-USDT-SWAP")
        );
        assert!(parse_arg(&i, "trades", "ETH-USDT").is_some_and(|t| t.spot && t.sym == 1));
        assert!(parse_arg(&i, "funding-rate", "ETH-USDT-SWAP").is_some());
        assert!(parse_arg(&i, "funding-rate", "ETH-USDT").is_none());
        assert!(parse_arg(&i, "books5", "ETH-USDT").is_none());
        assert!(parse_arg(&i, "books", "XRP-USDT").is_none());
    }

    #[test]
    fn replies_are_venue_shaped() {
        assert_eq!(
            event_reply("subscribe", Some("1"), "books", "BTC-USDT", "ab"),
            r#"{"id":"1","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"ab"}"#
        );
    }

    #[test]
    fn requests_in_replies_out() {
        let env = TestEnv::new(SimVenue::Okx);
        let mut s = env.session(false);
        let tag = s.tag.clone();
        assert_eq!(replies(&handle("ping", &mut s, &env)), ["pong"]);
        assert_eq!(env.venue_pings.get(), 1);
        let out = handle(
            r#"{"id":"7","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"books","instId":"XRP-USDT"}]}"#,
            &mut s,
            &env,
        );
        // Per argument: its event (then its snapshot), or its error.
        assert_eq!(out.len(), 4);
        assert_eq!(
            replies(&out)[0],
            format!(
                r#"{{"id":"7","event":"subscribe","arg":{{"channel":"books","instId":"BTC-USDT"}},"connId":"{tag}"}}"#
            )
        );
        assert!(matches!(&out[1], Out::Snapshot { stream, .. } if stream == "books:BTC-USDT"));
        assert!(replies(&out)[1].contains(r#""code":"60018""#));
        assert!(matches!(out[3], Out::Streams));
        assert_eq!(s.stream_names(), ["books:BTC-USDT"]);
        let out = handle(r#"{"op":"login"}"#, &mut s, &env);
        assert!(replies(&out)[0].contains(r#""code":"60012""#));
        let out = handle(
            r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#,
            &mut s,
            &env,
        );
        assert!(replies(&out)[0].contains(r#""event":"unsubscribe""#));
        assert!(s.subs.is_empty());
    }
}
