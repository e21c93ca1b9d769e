//! Binance's WebSocket protocol: stream names and the requests a client may
//! send on a connection (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
//! `SET_PROPERTY`, `GET_PROPERTY`), a request in, replies out, no I/O.
//!
//! Streams (lowercase symbol): `<s>@bookTicker`, `<s>@aggTrade`, `<s>@trade`, `<s>@kline_1m`,
//! `<s>@depth@100ms` (and `<s>@depth`), `<s>@markPrice` (and
//! `<s>@markPrice@1s`). Replies are `{"result":…,"id":N}` or
//! `{"error":{"code":N,"msg":…},"id":N}`. With USD-M routing a stream
//! subscribed on the wrong route is acknowledged with `{"result":null,"id":N}`
//! but never delivers (see [`Route::delivers`]).

use serde_json::Value;

use super::base::Kind;
use super::config::SimConfig;
use super::format::{json_str, json_val};
use super::protocol::{Env, Out, Route, Session, Sub, Topic};

/// Parses a stream name: `(symbol index, kind, normalised name)` where the
/// normalised name has a lowercase symbol. `None` if unknown.
pub(crate) fn parse_stream(symbols: &[String], name: &str) -> Option<(usize, Kind, String)> {
    let (sym, rest) = name.split_once('@')?;
    let idx = symbols.iter().position(|s| s.eq_ignore_ascii_case(sym))?;
    let kind = match rest {
        "bookTicker" => Kind::BookTicker,
        "aggTrade" => Kind::AggTrade,
        "trade" => Kind::Trade,
        "kline_1m" => Kind::Kline,
        "depth" | "depth@100ms" => Kind::Depth,
        "markPrice" | "markPrice@1s" => Kind::MarkPrice,
        _ => return None,
    };
    Some((idx, kind, format!("{}@{}", sym.to_ascii_lowercase(), rest)))
}

/// A subscription of the stream `name` on `route` (`None` if unknown): all
/// events, delivering unless the route forbids it.
pub(crate) fn make_sub(cfg: &SimConfig, route: Route, name: &str) -> Option<Sub> {
    let (sym, kind, name) = parse_stream(&cfg.symbols, name)?;
    let topic = Topic {
        sym,
        kind,
        name,
        spot: false,
    };
    let mut sub = Sub::from_topic(topic, 0);
    sub.delivers = route.delivers(kind, cfg.usdm_routing);
    Some(sub)
}

/// The normalised name of a stream given to `Fault::Mute` (itself if it is
/// not a known stream).
pub(crate) fn normalise(symbols: &[String], name: &str) -> String {
    parse_stream(symbols, name).map_or_else(|| name.to_string(), |(_, _, n)| n)
}

/// Handles one request: `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
/// `SET_PROPERTY`, `GET_PROPERTY`.
pub(crate) fn handle(text: &str, session: &mut Session, env: &dyn Env) -> Vec<Out> {
    if std::mem::take(&mut session.deaf) {
        // The URL's subscription was ignored: so is this request.
        return Vec::new();
    }
    let req: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return vec![Out::Reply(error_reply(
                3,
                &format!("Invalid JSON: {e}"),
                &Value::Null,
            ))]
        }
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let reply = |text: String| vec![Out::Reply(text)];
    match method {
        "SUBSCRIBE" => {
            if env.subscribe_ignored() {
                // Fault::IgnoreSubscribe: no ack, no error, no data.
                return Vec::new();
            }
            let names = match string_params(&req) {
                Ok(n) => n,
                Err(msg) => return reply(error_reply(1, &msg, &id)),
            };
            let mut new_subs = Vec::with_capacity(names.len());
            for name in &names {
                match make_sub(env.cfg(), session.route, name) {
                    Some(sub) => new_subs.push(sub),
                    None => {
                        let msg = format!("Invalid request: unknown stream '{name}'");
                        return reply(error_reply(2, &msg, &id));
                    }
                }
            }
            for sub in new_subs {
                if !session.subs.iter().any(|s| s.name == sub.name) {
                    session.push(sub);
                }
            }
            vec![Out::Streams, Out::Reply(result_reply("null", &id))]
        }
        "UNSUBSCRIBE" => {
            let names = match string_params(&req) {
                Ok(n) => n,
                Err(msg) => return reply(error_reply(1, &msg, &id)),
            };
            let symbols = &env.cfg().symbols;
            let drop: Vec<String> = names.iter().map(|n| normalise(symbols, n)).collect();
            session.subs.retain(|s| !drop.contains(&s.name));
            vec![Out::Streams, Out::Reply(result_reply("null", &id))]
        }
        "LIST_SUBSCRIPTIONS" => {
            let names: Vec<&str> = session.subs.iter().map(|s| s.name.as_str()).collect();
            let list = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
            reply(result_reply(&list, &id))
        }
        "SET_PROPERTY" => reply(result_reply("null", &id)),
        "GET_PROPERTY" => {
            let combined = if session.wrapped { "true" } else { "false" };
            reply(result_reply(combined, &id))
        }
        other => {
            let msg = format!("Invalid request: unknown method '{other}'");
            reply(error_reply(2, &msg, &id))
        }
    }
}

fn string_params(req: &Value) -> Result<Vec<String>, String> {
    let params = match req.get("params") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("Invalid value type: expected Vec<String>".into()),
    };
    params
        .iter()
        .map(|p| {
            p.as_str()
                .map(String::from)
                .ok_or_else(|| "Invalid value type: expected Vec<String>".to_string())
        })
        .collect()
}

fn result_reply(result_json: &str, id: &Value) -> String {
    format!(r#"{{"result":{},"id":{}}}"#, result_json, json_val(id))
}

fn error_reply(code: i32, msg: &str, id: &Value) -> String {
    format!(
        r#"{{"error":{{"code":{},"msg":{}}},"id":{}}}"#,
        code,
        json_str(msg),
        json_val(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::SimVenue;
    use crate::sim::protocol::test_env::{replies, TestEnv};

    #[test]
    fn parse_stream_names() {
        let syms = vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()];
        assert_eq!(
            parse_stream(&syms, "btcusdt@bookTicker").map(|x| x.1),
            Some(Kind::BookTicker)
        );
        assert_eq!(
            parse_stream(&syms, "ETHUSDT@depth@100ms").map(|x| x.2),
            Some("ethusdt@depth@100ms".to_string())
        );
        assert!(parse_stream(&syms, "ethusdt@markPrice@1s").is_some());
        assert!(parse_stream(&syms, "xrpusdt@bookTicker").is_none());
        assert!(parse_stream(&syms, "btcusdt@kline_5m").is_none());
        assert_eq!(
            parse_stream(&syms, "btcusdt@kline_1m").map(|x| x.1),
            Some(Kind::Kline)
        );
        assert_eq!(
            parse_stream(&syms, "btcusdt@trade").map(|x| x.1),
            Some(Kind::Trade)
        );
        assert!(parse_stream(&syms, "btcusdt").is_none());
        assert!(parse_stream(&syms, "").is_none());
    }

    #[test]
    fn replies_are_binance_shaped() {
        assert_eq!(
            result_reply("null", &Value::from(1)),
            r#"{"result":null,"id":1}"#
        );
        assert_eq!(
            error_reply(2, "Invalid request: unknown stream 'x'", &Value::from(7)),
            r#"{"error":{"code":2,"msg":"Invalid request: unknown stream 'x'"},"id":7}"#
        );
    }

    #[test]
    fn requests_in_replies_out() {
        let env = TestEnv::new(SimVenue::Binance);
        let mut s = env.session(true);
        let out = handle(
            r#"{"method":"SUBSCRIBE","params":["BTCUSDT@bookTicker","btcusdt@aggTrade"],"id":1}"#,
            &mut s,
            &env,
        );
        assert!(matches!(out[0], Out::Streams));
        assert_eq!(replies(&out), [r#"{"result":null,"id":1}"#]);
        // The unrouted path delivers public streams only.
        let delivering: Vec<(&str, bool)> = s
            .subs
            .iter()
            .map(|s| (s.name.as_str(), s.delivers))
            .collect();
        assert_eq!(
            delivering,
            [("btcusdt@bookTicker", true), ("btcusdt@aggTrade", false)]
        );
        let out = handle(r#"{"method":"LIST_SUBSCRIPTIONS","id":"a"}"#, &mut s, &env);
        assert_eq!(
            replies(&out),
            [r#"{"result":["btcusdt@bookTicker","btcusdt@aggTrade"],"id":"a"}"#]
        );
        let out = handle(
            r#"{"method":"SUBSCRIBE","params":["xrpusdt@bookTicker"],"id":2}"#,
            &mut s,
            &env,
        );
        assert_eq!(
            replies(&out),
            [
                r#"{"error":{"code":2,"msg":"Invalid request: unknown stream 'xrpusdt@bookTicker'"},"id":2}"#
            ]
        );
        assert_eq!(s.subs.len(), 2, "a failed request subscribes nothing");
        let out = handle(
            r#"{"method":"UNSUBSCRIBE","params":["BTCUSDT@aggTrade"],"id":3}"#,
            &mut s,
            &env,
        );
        assert_eq!(replies(&out), [r#"{"result":null,"id":3}"#]);
        assert_eq!(s.stream_names(), ["btcusdt@bookTicker"]);
        let out = handle(r#"{"method":"GET_PROPERTY","id":4}"#, &mut s, &env);
        assert_eq!(replies(&out), [r#"{"result":true,"id":4}"#]);
        env.ignore.set(1);
        let out = handle(
            r#"{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":5}"#,
            &mut s,
            &env,
        );
        assert!(out.is_empty(), "an ignored SUBSCRIBE gets no reply");
        assert_eq!(env.subscribe_requests.get(), 3);
        assert!(handle("{", &mut s, &env).len() == 1);
    }
}
