//! Bybit v5 public WebSocket protocol (spot and linear): topics and the
//! requests a client may send, a request in, replies out, no I/O.
//!
//! Requests `{"op":"subscribe"|"unsubscribe","req_id":"…","args":[topics]}`
//! and `{"op":"ping","req_id":"…"}`; replies
//! `{"success":…,"ret_msg":…,"conn_id":…,"req_id":…,"op":…}`. Topics
//! `orderbook.1.<S>`, `orderbook.50.<S>`, `orderbook.200.<S>`, `publicTrade.<S>`,
//! `tickers.<S>`.
//! Spot rejects more than 10 args per request (`"args size >10"`); an unknown
//! topic fails the whole request (`"error:handler not found,topic:<t>"`), as
//! does a topic already subscribed.

use serde_json::Value;

use super::base::Kind;
use super::config::SimVenue;
use super::format::{json_str, json_val};
use super::protocol::{self, Env, Out, Session, Topic};
use super::symbol::SymInfo;

/// Bybit spot: most args in one subscribe request.
const SPOT_MAX_ARGS: usize = 10;

/// Parses a Bybit v5 public topic: `orderbook.1.<S>`, `orderbook.50.<S>`, `orderbook.200.<S>`,
/// `publicTrade.<S>`, `tickers.<S>` (symbol as configured, uppercase).
pub(crate) fn parse_topic(info: &[SymInfo], topic: &str) -> Option<Topic> {
    let (kind, symbol) = if let Some(rest) = topic.strip_prefix("orderbook.") {
        let (depth, symbol) = rest.split_once('.')?;
        match depth {
            "1" => (Kind::BookTicker, symbol),
            "50" | "200" => (Kind::Depth, symbol),
            _ => return None,
        }
    } else if let Some(symbol) = topic.strip_prefix("publicTrade.") {
        (Kind::AggTrade, symbol)
    } else if let Some(symbol) = topic.strip_prefix("tickers.") {
        (Kind::MarkPrice, symbol)
    } else {
        return None;
    };
    let sym = info.iter().position(|s| s.name == symbol)?;
    Some(Topic {
        sym,
        kind,
        name: topic.to_string(),
        spot: false,
    })
}

/// The book messages of `orderbook.200.<S>`: those of `orderbook.50.<S>` (the simulated book
/// holds at most 50 levels a side, all of which a 200-level snapshot carries) under their own
/// topic. `None` for any other topic.
pub(crate) fn deeper_topic(name: &str, payload: &str) -> Option<String> {
    name.starts_with("orderbook.200.")
        .then(|| payload.replacen(r#""topic":"orderbook.50."#, r#""topic":"orderbook.200."#, 1))
}

/// The normalised name of a topic given to `Fault::Mute` (itself if it is
/// not a known topic).
pub(crate) fn normalise(info: &[SymInfo], name: &str) -> String {
    parse_topic(info, name).map_or_else(|| name.to_string(), |t| t.name)
}

/// Handles one request: `{"op":"ping"}`, `{"op":"subscribe","args":[…]}`,
/// `{"op":"unsubscribe","args":[…]}`, each with an optional `req_id`.
pub(crate) fn handle(text: &str, session: &mut Session, env: &dyn Env) -> Vec<Out> {
    let (venue, tag) = (session.venue, session.tag.clone());
    let answer = |success: bool, ret_msg: &str, req_id: Option<&Value>, op: &str| {
        vec![Out::Reply(reply(venue, success, ret_msg, &tag, req_id, op))]
    };
    let req: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => return answer(false, "error:request is not a JSON object", None, ""),
    };
    let req_id = req.get("req_id").filter(|v| !v.is_null());
    let op = req.get("op").and_then(Value::as_str).unwrap_or("");
    match op {
        "ping" => {
            env.venue_ping();
            answer(true, "pong", req_id, "ping")
        }
        "subscribe" | "unsubscribe" => {
            let subscribe = op == "subscribe";
            if subscribe && env.subscribe_ignored() {
                return Vec::new();
            }
            let fail = |msg: &str| answer(false, msg, req_id, op);
            let Ok(names) = string_list(req.get("args")) else {
                return fail("error:args must be an array of strings");
            };
            if subscribe && venue == SimVenue::BybitSpot && names.len() > SPOT_MAX_ARGS {
                return fail("args size >10");
            }
            let ok_msg = if venue == SimVenue::BybitSpot { op } else { "" };
            if !subscribe {
                let mut out = vec![Out::Streams];
                out.extend(answer(true, ok_msg, req_id, op));
                session.subs.retain(|s| !names.contains(&s.name));
                return out;
            }
            let mut topics: Vec<Topic> = Vec::with_capacity(names.len());
            for name in &names {
                let Some(topic) = parse_topic(env.info(), name) else {
                    return fail(&format!("error:handler not found,topic:{name}"));
                };
                if session.subs.iter().any(|s| s.name == topic.name)
                    || topics.iter().any(|t| t.name == topic.name)
                {
                    return fail(&format!("error:already subscribed,topic:{name}"));
                }
                topics.push(topic);
            }
            let mut out = answer(true, ok_msg, req_id, op);
            protocol::start(session, env, topics, &mut out);
            out.push(Out::Streams);
            out
        }
        other => answer(
            false,
            &format!("error:unsupported op:{other}"),
            req_id,
            other,
        ),
    }
}

/// A JSON array of strings (`None` / `null`: empty).
fn string_list(v: Option<&Value>) -> Result<Vec<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(String::from).ok_or(()))
            .collect(),
        Some(_) => Err(()),
    }
}

/// A Bybit operation reply, fields in the venue's order:
/// `{"success":…,"ret_msg":…,"conn_id":…,"req_id":…,"op":…}`. A request
/// without `req_id` gets none back on spot and `""` on linear.
pub(crate) fn reply(
    venue: SimVenue,
    success: bool,
    ret_msg: &str,
    conn_id: &str,
    req_id: Option<&Value>,
    op: &str,
) -> String {
    let req = match (req_id, venue) {
        (Some(v), _) => format!(r#""req_id":{},"#, json_val(v)),
        (None, SimVenue::BybitLinear) => r#""req_id":"","#.to_string(),
        (None, _) => String::new(),
    };
    format!(
        r#"{{"success":{success},"ret_msg":{},"conn_id":{},{req}"op":{}}}"#,
        json_str(ret_msg),
        json_str(conn_id),
        json_str(op)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::protocol::test_env::{replies, TestEnv};

    fn info() -> Vec<SymInfo> {
        vec![SymInfo::new("BTCUSDT", 2), SymInfo::new("ETHUSDT", 2)]
    }

    #[test]
    fn bybit_topics() {
        let i = info();
        let t = parse_topic(&i, "orderbook.50.ETHUSDT").expect("topic");
        assert_eq!((t.sym, t.kind), (1, Kind::Depth));
        assert_eq!(
            parse_topic(&i, "orderbook.1.BTCUSDT").map(|t| t.kind),
            Some(Kind::BookTicker)
        );
        assert_eq!(
            parse_topic(&i, "publicTrade.BTCUSDT").map(|t| t.kind),
            Some(Kind::AggTrade)
        );
        assert_eq!(
            parse_topic(&i, "tickers.BTCUSDT").map(|t| t.kind),
            Some(Kind::MarkPrice)
        );
        assert_eq!(
            parse_topic(&i, "orderbook.200.BTCUSDT").map(|t| t.kind),
            Some(Kind::Depth)
        );
        for bad in [
            "orderbook.500.BTCUSDT",
            "orderbook.50.btcusdt",
            "kline.1.BTCUSDT",
            "tickers.XRPUSDT",
            "",
        ] {
            assert!(parse_topic(&i, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn replies_are_venue_shaped() {
        assert_eq!(
            reply(SimVenue::BybitLinear, true, "", "c", None, "subscribe"),
            r#"{"success":true,"ret_msg":"","conn_id":"c","req_id":"","op":"subscribe"}"#
        );
        assert_eq!(
            reply(SimVenue::BybitSpot, true, "pong", "c", None, "ping"),
            r#"{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}"#
        );
    }

    #[test]
    fn requests_in_replies_out() {
        let env = TestEnv::new(SimVenue::BybitSpot);
        let mut s = env.session(false);
        let tag = s.tag.clone();
        let out = handle(r#"{"op":"ping","req_id":"p"}"#, &mut s, &env);
        assert_eq!(
            replies(&out),
            [format!(
                r#"{{"success":true,"ret_msg":"pong","conn_id":"{tag}","req_id":"p","op":"ping"}}"#
            )]
        );
        assert_eq!(env.venue_pings.get(), 1);
        let out = handle(
            r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT"]}"#,
            &mut s,
            &env,
        );
        // The ack, then the book's snapshot (a trade channel has none).
        assert!(replies(&out)[0].contains(r#""success":true,"ret_msg":"subscribe""#));
        assert!(
            matches!(&out[1], Out::Snapshot { stream, .. } if stream == "orderbook.50.BTCUSDT")
        );
        assert!(matches!(out[2], Out::Streams));
        assert_eq!(out.len(), 3);
        // Already subscribed: the whole request fails, nothing changes.
        let out = handle(
            r#"{"op":"subscribe","args":["tickers.BTCUSDT","publicTrade.BTCUSDT"]}"#,
            &mut s,
            &env,
        );
        assert!(replies(&out)[0].contains("error:already subscribed,topic:publicTrade.BTCUSDT"));
        assert_eq!(s.subs.len(), 2);
        let eleven: Vec<String> = (0..11).map(|i| format!(r#""x{i}""#)).collect();
        let out = handle(
            &format!(r#"{{"op":"subscribe","args":[{}]}}"#, eleven.join(",")),
            &mut s,
            &env,
        );
        assert!(replies(&out)[0].contains(r#""ret_msg":"args size >10""#));
        let out = handle(
            r#"{"op":"unsubscribe","args":["publicTrade.BTCUSDT"]}"#,
            &mut s,
            &env,
        );
        assert!(replies(&out)[0].contains(r#""success":true"#));
        assert_eq!(s.stream_names(), ["orderbook.50.BTCUSDT"]);
        let out = handle("[1]", &mut s, &env);
        assert!(replies(&out)[0].contains("error:request is not a JSON object"));
    }
}
