//! Binance's private streams: the USDⓈ-M listen-key REST endpoints
//! (`POST`/`PUT`/`DELETE /fapi/v1/listenKey`), the spot WebSocket API's
//! `userDataStream.subscribe.signature`, and the wire format of every user
//! data event. Requests in, replies out, no I/O.
//!
//! Error texts and codes are Binance's (`errors.md`): -2015 "Invalid API-key,
//! IP, or permissions for action." (HTTP / status 401), -1022 "Signature for
//! this request is not valid." (400), -1021 "Timestamp for this request is
//! outside of the recvWindow." (400), -1125 "This listenKey does not exist."
//! (400).

use std::time::Instant;

use serde_json::Value;

use crate::sim::base::now_ms;
use crate::sim::format::{fixed, json_str, json_val, qty};
use crate::sim::symbol::SymInfo;

use super::account::{binance_payload, hex_ok};
use super::orders::{AccountEvent, Order, Status};
use super::state::{KeyError, Private};

/// -2015.
pub(crate) const INVALID_KEY: &str = "Invalid API-key, IP, or permissions for action.";
/// -1022.
pub(crate) const INVALID_SIGNATURE: &str = "Signature for this request is not valid.";
/// -1021.
pub(crate) const BAD_TIMESTAMP: &str = "Timestamp for this request is outside of the recvWindow.";
/// -1125.
pub(crate) const NO_LISTEN_KEY: &str = "This listenKey does not exist.";
/// Binance's default `recvWindow` (ms).
const RECV_WINDOW: u64 = 5_000;

fn error(status: u16, code: i32, msg: &str) -> (u16, String) {
    (
        status,
        format!(r#"{{"code":{code},"msg":{}}}"#, json_str(msg)),
    )
}

fn key_error(e: KeyError) -> (u16, String) {
    // Unknown and revoked keys look the same from outside.
    let _ = e;
    error(401, -2015, INVALID_KEY)
}

/// Checks `timestamp` / `recvWindow` as Binance does: rejected when
/// `timestamp` is more than 1 s ahead of the server or older than
/// `recvWindow` (default 5000 ms).
fn timestamp_ok(timestamp: Option<&str>, recv_window: Option<&str>, now: u64) -> bool {
    let Some(ts) = timestamp.and_then(|t| t.parse::<u64>().ok()) else {
        return false;
    };
    let window = recv_window
        .and_then(|w| w.parse::<f64>().ok())
        .map_or(RECV_WINDOW, |w| w as u64);
    ts <= now + 1_000 && now.saturating_sub(ts) <= window
}

/// Answers `method` `/fapi/v1/listenKey?query` with API key header
/// `api_key`: status and JSON body. A `signature` parameter, when present,
/// must be the hex HMAC-SHA256 of the query string before it ("totalParams"),
/// with a valid `timestamp`.
pub(crate) fn listen_key_rest(
    private: &Private,
    method: &str,
    query: &str,
    api_key: Option<&str>,
) -> (u16, String) {
    let account = match api_key.map(|k| private.by_key(k)) {
        Some(Ok(a)) => a,
        Some(Err(e)) => return key_error(e),
        None => return key_error(KeyError::Unknown),
    };
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    if let Some(sig) = param("signature") {
        let signed = query
            .split('&')
            .filter(|kv| !kv.starts_with("signature="))
            .collect::<Vec<_>>()
            .join("&");
        if !timestamp_ok(param("timestamp"), param("recvWindow"), now_ms()) {
            return error(400, -1021, BAD_TIMESTAMP);
        }
        if !hex_ok(&private.accounts[account].secret, &signed, sig) {
            return error(400, -1022, INVALID_SIGNATURE);
        }
    }
    let now = Instant::now();
    let key = param("listenKey");
    match method {
        "POST" => {
            let key = private.create_key(account, now);
            (200, format!(r#"{{"listenKey":"{key}"}}"#))
        }
        "PUT" => match private.keep_alive(account, key, now) {
            Some(key) => (200, format!(r#"{{"listenKey":"{key}"}}"#)),
            None => error(400, -1125, NO_LISTEN_KEY),
        },
        "DELETE" => {
            if private.delete_key(account, key) {
                (200, "{}".to_string())
            } else {
                error(400, -1125, NO_LISTEN_KEY)
            }
        }
        _ => error(405, -1, "Method not allowed."),
    }
}

/// What a WebSocket API request asks of the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsApi {
    /// Reply and, on success, listen to this account.
    Subscribed { reply: String, account: usize },
    /// Reply, stop listening, then send `eventStreamTerminated`.
    Unsubscribed { reply: String },
    /// Reply only (an error).
    Reply(String),
}

fn ws_error(id: &Value, status: u16, code: i32, msg: &str) -> String {
    format!(
        r#"{{"id":{},"status":{status},"error":{{"code":{code},"msg":{}}}}}"#,
        json_val(id),
        json_str(msg)
    )
}

/// One WebSocket API request on `/ws-api/v3`. `subscription` is the id the
/// next subscription gets. `session.logon` (Ed25519 keys only) is not
/// simulated: it gets an error naming that.
pub(crate) fn ws_api(private: &Private, text: &str, subscription: u64) -> WsApi {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return WsApi::Reply(ws_error(
            &Value::Null,
            400,
            -1100,
            "Malformed request: not JSON.",
        ));
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    match method {
        "userDataStream.subscribe.signature" => {}
        "userDataStream.unsubscribe" => {
            return WsApi::Unsubscribed {
                reply: format!(r#"{{"id":{},"status":200,"result":{{}}}}"#, json_val(&id)),
            }
        }
        "session.logon" | "userDataStream.subscribe" => {
            return WsApi::Reply(ws_error(
                &id,
                400,
                -1002,
                "The simulator supports userDataStream.subscribe.signature only (no Ed25519 session.logon).",
            ))
        }
        other => {
            return WsApi::Reply(ws_error(&id, 400, -1100, &format!("Unknown method '{other}'.")))
        }
    }
    let params: Vec<(String, String)> = req
        .get("params")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let account = match get("apiKey").map(|k| private.by_key(k)) {
        Some(Ok(a)) => a,
        _ => return WsApi::Reply(ws_error(&id, 401, -2015, INVALID_KEY)),
    };
    if !timestamp_ok(get("timestamp"), get("recvWindow"), now_ms()) {
        return WsApi::Reply(ws_error(&id, 400, -1021, BAD_TIMESTAMP));
    }
    let signed = binance_payload(&params);
    let sig = get("signature").unwrap_or("");
    if !hex_ok(&private.accounts[account].secret, &signed, sig) {
        return WsApi::Reply(ws_error(&id, 400, -1022, INVALID_SIGNATURE));
    }
    WsApi::Subscribed {
        reply: format!(
            r#"{{"id":{},"status":200,"result":{{"subscriptionId":{subscription}}},"rateLimits":[{{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":2}}]}}"#,
            json_val(&id)
        ),
        account,
    }
}

fn side(o: &Order) -> &'static str {
    if o.buy {
        "BUY"
    } else {
        "SELL"
    }
}

/// Execution type and order status of an order event (`x`, `X`). USDⓈ-M has
/// no `REJECTED`: a rejected order is `EXPIRED` there.
fn exec_status(o: &Order, futures: bool) -> (&'static str, &'static str) {
    match o.status {
        Status::New => ("NEW", "NEW"),
        Status::PartiallyFilled => ("TRADE", "PARTIALLY_FILLED"),
        Status::Filled => ("TRADE", "FILLED"),
        Status::Canceled => ("CANCELED", "CANCELED"),
        Status::Rejected if futures => ("EXPIRED", "EXPIRED"),
        Status::Rejected => ("REJECTED", "REJECTED"),
    }
}

fn money(units: i64) -> String {
    fixed(units, 8)
}

/// USDⓈ-M `ORDER_TRADE_UPDATE`.
pub(crate) fn order_trade_update(e: &AccountEvent, o: &Order, info: &SymInfo) -> String {
    let (x, status) = exec_status(o, true);
    let p = |v: i64| fixed(v, o.decimals);
    let open_value = super::orders::value(o.price, o.qty - o.filled, o.decimals);
    let (bids, asks) = if matches!(o.status, Status::New | Status::PartiallyFilled) {
        if o.buy {
            (money(open_value), money(0))
        } else {
            (money(0), money(open_value))
        }
    } else {
        (money(0), money(0))
    };
    format!(
        concat!(
            r#"{{"e":"ORDER_TRADE_UPDATE","E":{E},"T":{E},"o":{{"s":"{s}","c":"{c}","S":"{S}","o":"LIMIT","f":"GTC","#,
            r#""q":"{q}","p":"{p}","ap":"{ap}","sp":"0","x":"{x}","X":"{X}","i":{i},"l":"{l}","z":"{z}","L":"{L}","#,
            r#""N":"USDT","n":"{n}","T":{E},"t":{t},"b":"{b}","a":"{a}","m":false,"R":false,"wt":"CONTRACT_PRICE","#,
            r#""ot":"LIMIT","ps":"BOTH","cp":false,"AP":"0","cr":"0","pP":false,"si":0,"ss":0,"rp":"{rp}","#,
            r#""V":"EXPIRE_TAKER","pm":"NONE","gtd":0,"er":"0"}}}}"#
        ),
        E = e.time_ms,
        s = info.name,
        c = o.client_id,
        S = side(o),
        q = qty(o.qty),
        p = p(o.price),
        ap = p(o.avg_price()),
        x = x,
        X = status,
        i = o.order_id,
        l = qty(o.last_qty),
        z = qty(o.filled),
        L = p(o.last_price),
        n = money(o.last_fee),
        t = o.trade_id,
        b = bids,
        a = asks,
        rp = money(o.realized),
    )
}

/// USDⓈ-M `ACCOUNT_UPDATE`: the USDT balance and, after a fill, the
/// position (`"m":"ORDER"`); after a deposit, the balance only
/// (`"m":"DEPOSIT"`, `"P":[]`).
pub(crate) fn account_update(e: &AccountEvent, info: &[SymInfo]) -> String {
    let b = &e.balance;
    let (reason, positions) = match &e.position {
        Some(pos) if !b.deposit => {
            let p = |v: i64| fixed(v, pos.decimals);
            (
                "ORDER",
                format!(
                    r#"{{"s":"{}","pa":"{}","ep":"{}","bep":"{}","cr":"{}","up":"0","mt":"cross","iw":"0","ps":"BOTH"}}"#,
                    info[pos.sym].name,
                    fixed(pos.qty, 3),
                    p(pos.entry),
                    p(pos.entry),
                    money(pos.realized)
                ),
            )
        }
        _ => ("DEPOSIT", String::new()),
    };
    format!(
        r#"{{"e":"ACCOUNT_UPDATE","E":{E},"T":{E},"a":{{"m":"{reason}","B":[{{"a":"USDT","wb":"{wb}","cw":"{wb}","bc":"{bc}"}}],"P":[{positions}]}}}}"#,
        E = e.time_ms,
        wb = money(b.wallet),
        bc = money(b.delta),
    )
}

/// USDⓈ-M `listenKeyExpired` (`"E"` a string, as the current page shows it).
pub(crate) fn listen_key_expired(key: &str, time_ms: u64) -> String {
    format!(r#"{{"e":"listenKeyExpired","E":"{time_ms}","listenKey":"{key}"}}"#)
}

/// Spot `executionReport`, wrapped for subscription `sub`.
pub(crate) fn execution_report(e: &AccountEvent, o: &Order, info: &SymInfo, sub: u64) -> String {
    let (x, status) = exec_status(o, false);
    let p = |v: i64| fixed(v, o.decimals);
    let (fee, fee_asset) = if o.last_fee > 0 {
        (money(o.last_fee), r#""USDT""#)
    } else {
        ("0".to_string(), "null")
    };
    let trade = if o.trade_id > 0 {
        o.trade_id as i64
    } else {
        -1
    };
    let on_book = matches!(o.status, Status::New | Status::PartiallyFilled);
    format!(
        concat!(
            r#"{{"subscriptionId":{sub},"event":{{"e":"executionReport","E":{E},"s":"{s}","c":"{c}","S":"{S}","#,
            r#""o":"LIMIT","f":"GTC","q":"{q}","p":"{p}","P":"0","F":"0","g":-1,"C":"","x":"{x}","X":"{X}","#,
            r#""r":"{r}","i":{i},"l":"{l}","z":"{z}","L":"{L}","n":"{n}","N":{N},"T":{E},"t":{t},"I":{I},"#,
            r#""w":{w},"m":false,"M":false,"O":{O},"Z":"{Z}","Y":"{Y}","Q":"0","W":{O},"V":"NONE"}}}}"#
        ),
        sub = sub,
        E = e.time_ms,
        s = info.name,
        c = o.client_id,
        S = side(o),
        q = qty(o.qty),
        p = p(o.price),
        x = x,
        X = status,
        r = if o.status == Status::Rejected {
            "INSUFFICIENT_BALANCE"
        } else {
            "NONE"
        },
        i = o.order_id,
        l = qty(o.last_qty),
        z = qty(o.filled),
        L = p(o.last_price),
        n = fee,
        N = fee_asset,
        t = trade,
        I = e.n,
        w = on_book,
        O = o.created_ms,
        Z = money(o.filled_value),
        Y = money(super::orders::value(o.last_price, o.last_qty, o.decimals)),
    )
}

/// Spot `outboundAccountPosition` (after a fill), wrapped.
pub(crate) fn outbound_account_position(e: &AccountEvent, sub: u64) -> String {
    format!(
        r#"{{"subscriptionId":{sub},"event":{{"e":"outboundAccountPosition","E":{E},"u":{E},"B":[{{"a":"USDT","f":"{f}","l":"0.00000000"}}]}}}}"#,
        E = e.time_ms,
        f = money(e.balance.wallet),
    )
}

/// Spot `balanceUpdate` (a deposit), wrapped.
pub(crate) fn balance_update(e: &AccountEvent, sub: u64) -> String {
    format!(
        r#"{{"subscriptionId":{sub},"event":{{"e":"balanceUpdate","E":{E},"a":"USDT","d":"{d}","T":{E}}}}}"#,
        E = e.time_ms,
        d = money(e.balance.delta),
    )
}

/// Spot `eventStreamTerminated`, wrapped.
pub(crate) fn event_stream_terminated(sub: u64, time_ms: u64) -> String {
    format!(r#"{{"subscriptionId":{sub},"event":{{"e":"eventStreamTerminated","E":{time_ms}}}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::private::account::{hex_sign, SimAccount};
    use std::time::Duration;

    fn private() -> Private {
        Private::new(vec![SimAccount::named("a")], Duration::from_secs(60), 1)
    }

    #[test]
    fn listen_key_rest_checks_key_signature_and_existence() {
        let p = private();
        assert_eq!(listen_key_rest(&p, "POST", "", Some("x")).0, 401);
        assert_eq!(listen_key_rest(&p, "POST", "", None).0, 401);
        let (status, body) = listen_key_rest(&p, "POST", "", Some("a-key"));
        assert_eq!(status, 200);
        assert!(body.starts_with(r#"{"listenKey":""#));
        let q = format!("timestamp={}", now_ms());
        let good = format!("{q}&signature={}", hex_sign("a-secret", &q));
        assert_eq!(listen_key_rest(&p, "PUT", &good, Some("a-key")).0, 200);
        let bad = format!("{q}&signature={}", hex_sign("b-secret", &q));
        assert_eq!(
            listen_key_rest(&p, "PUT", &bad, Some("a-key")),
            (
                400,
                r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#.into()
            )
        );
        let old = "timestamp=1000";
        let stale = format!("{old}&signature={}", hex_sign("a-secret", old));
        assert_eq!(listen_key_rest(&p, "PUT", &stale, Some("a-key")).0, 400);
        assert_eq!(listen_key_rest(&p, "DELETE", "", Some("a-key")).0, 200);
        assert_eq!(
            listen_key_rest(&p, "PUT", "", Some("a-key")),
            (
                400,
                r#"{"code":-1125,"msg":"This listenKey does not exist."}"#.into()
            )
        );
    }

    #[test]
    fn ws_api_subscribe_signature() {
        let p = private();
        let ts = now_ms();
        let payload = format!("apiKey=a-key&timestamp={ts}");
        let req = |sig: &str, key: &str| {
            format!(
                r#"{{"id":"x","method":"userDataStream.subscribe.signature","params":{{"apiKey":"{key}","timestamp":{ts},"signature":"{sig}"}}}}"#
            )
        };
        let good = hex_sign("a-secret", &payload);
        assert!(
            matches!(ws_api(&p, &req(&good, "a-key"), 3), WsApi::Subscribed { account: 0, ref reply } if reply.contains(r#""subscriptionId":3"#))
        );
        assert!(
            matches!(ws_api(&p, &req(&good, "b-key"), 0), WsApi::Reply(r) if r.contains("-2015") && r.contains(r#""status":401"#))
        );
        assert!(
            matches!(ws_api(&p, &req("00", "a-key"), 0), WsApi::Reply(r) if r.contains("-1022"))
        );
        assert!(
            matches!(ws_api(&p, r#"{"id":1,"method":"session.logon"}"#, 0), WsApi::Reply(r) if r.contains("Ed25519"))
        );
    }
}
