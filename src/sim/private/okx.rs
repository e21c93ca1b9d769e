//! OKX v5's private stream (`/ws/v5/private`): `login`, `subscribe` /
//! `unsubscribe` to `orders`, `positions`, `account`, `ping`, and the wire
//! format of each channel. Requests in, replies out, no I/O.
//!
//! Login: `{"op":"login","args":[{"apiKey","passphrase","timestamp","sign"}]}`,
//! sign = base64 HMAC-SHA256(secret, timestamp + `"GET"` +
//! `"/users/self/verify"`), timestamp in Unix seconds, rejected when more
//! than 30 s off ("The request will expire 30 seconds after the timestamp").
//! Errors (OKX's WebSocket error codes): 60004 "Invalid timestamp", 60005
//! "Invalid apiKey" (also a revoked key), 60006 "Timestamp request expired",
//! 60007 "Invalid sign", 60024 "Wrong passphrase", 60011 "Please log in" (a
//! subscription before login), 60018 for an unknown channel.

use serde_json::Value;

use crate::sim::base::now_ms;
use crate::sim::format::{fixed, json_str, json_val, qty};
use crate::sim::okx::error;
use crate::sim::symbol::SymInfo;

use super::account::base64_ok;
use super::observe::AccountEventKind;
use super::orders::{value, AccountEvent, Order, Status};
use super::session::{Act, PrivSession};
use super::state::Private;

/// Largest accepted difference between `timestamp` and the server's clock.
const MAX_SKEW_S: u64 = 30;

/// One request on `/ws/v5/private` (`ping` included).
pub(crate) fn handle(private: &Private, text: &str, s: &mut PrivSession) -> Vec<Act> {
    if text == "ping" {
        return vec![Act::Ping, Act::Reply("pong".into())];
    }
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![Act::Reply(error(
            None,
            "60012",
            &format!("Invalid request: {text}"),
            &s.tag,
        ))];
    };
    let id = req.get("id").and_then(Value::as_str);
    let args: Vec<&Value> = req
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let op = req.get("op").and_then(Value::as_str).unwrap_or("");
    match op {
        "login" => login(private, args.first().copied(), s),
        "subscribe" | "unsubscribe" => {
            if s.account.is_none() {
                return vec![Act::Reply(error(id, "60011", "Please log in", &s.tag))];
            }
            let mut out = Vec::new();
            for arg in args {
                let channel = arg.get("channel").and_then(Value::as_str).unwrap_or("");
                let kind = match channel {
                    "orders" => AccountEventKind::Order,
                    "positions" => AccountEventKind::Position,
                    "account" => AccountEventKind::Balance,
                    _ => {
                        let msg = format!(
                            "Wrong URL or channel:{channel} doesn't exist. Please use the correct URL, channel and parameters referring to API document."
                        );
                        out.push(Act::Reply(error(id, "60018", &msg, &s.tag)));
                        continue;
                    }
                };
                let arg_text = json_val(arg);
                s.kinds.retain(|k| *k != kind);
                s.okx_args.retain(|(k, _)| *k != kind);
                if op == "subscribe" {
                    s.kinds.push(kind);
                    s.okx_args.push((kind, arg_text.clone()));
                }
                let id_field = id.map_or_else(String::new, |i| format!(r#""id":{},"#, json_str(i)));
                out.push(Act::Reply(format!(
                    r#"{{{id_field}"event":"{op}","arg":{arg_text},"connId":"{}"}}"#,
                    s.tag
                )));
            }
            out
        }
        other => vec![Act::Reply(error(
            id,
            "60019",
            &format!("Invalid op: {other}"),
            &s.tag,
        ))],
    }
}

fn login(private: &Private, arg: Option<&Value>, s: &mut PrivSession) -> Vec<Act> {
    let field = |k: &str| {
        arg.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let fail = |code: &str, msg: &str| vec![Act::Reply(error(None, code, msg, &s.tag))];
    let Ok(ts) = field("timestamp").parse::<u64>() else {
        return fail("60004", "Invalid timestamp");
    };
    if (now_ms() / 1000).abs_diff(ts) > MAX_SKEW_S {
        return fail("60006", "Timestamp request expired");
    }
    let Ok(account) = private.by_key(field("apiKey")) else {
        return fail("60005", "Invalid apiKey");
    };
    let acc = &private.accounts[account];
    if acc.passphrase.as_deref() != Some(field("passphrase")) {
        return fail("60024", "Wrong passphrase");
    }
    let signed = format!("{}GET/users/self/verify", field("timestamp"));
    if !base64_ok(&acc.secret, &signed, field("sign")) {
        return fail("60007", "Invalid sign");
    }
    s.account = Some(account);
    vec![
        Act::Reply(format!(
            r#"{{"event":"login","code":"0","msg":"","connId":"{}"}}"#,
            s.tag
        )),
        Act::Listen,
    ]
}

/// The uid OKX puts in a push's `arg`.
fn uid(account: usize) -> String {
    format!("{}", 614_488_474_791_936u64 + account as u64)
}

/// The push of `e` on its channel, `arg` the subscription's argument as the
/// client sent it (`uid` is added, as OKX does).
pub(crate) fn render(e: &AccountEvent, arg: &str, info: &[SymInfo]) -> String {
    let arg = match arg.strip_suffix('}') {
        Some(head) if head.len() > 1 => format!(r#"{head},"uid":"{}"}}"#, uid(e.account)),
        _ => format!(r#"{{"uid":"{}"}}"#, uid(e.account)),
    };
    let data = match (e.kind, e.order.as_ref()) {
        (AccountEventKind::Order, Some(o)) => order(e, o, &info[o.sym]),
        (AccountEventKind::Position, _) => position(e, info),
        _ => account(e),
    };
    format!(r#"{{"arg":{arg},"data":[{data}]}}"#)
}

fn money(v: i64) -> String {
    fixed(v, 8)
}

fn order(e: &AccountEvent, o: &Order, info: &SymInfo) -> String {
    let state = match o.status {
        Status::New => "live",
        Status::PartiallyFilled => "partially_filled",
        Status::Filled => "filled",
        Status::Canceled | Status::Rejected => "canceled",
    };
    let p = |v: i64| fixed(v, o.decimals);
    let fill = o.last_qty > 0;
    let blank_if = |cond: bool, s: String| if cond { s } else { String::new() };
    format!(
        concat!(
            r#"{{"instType":"SWAP","instId":"{inst}","ccy":"","ordId":"{id}","clOrdId":"{c}","tag":"","px":"{px}","#,
            r#""sz":"{sz}","notionalUsd":"{nu}","ordType":"limit","side":"{side}","posSide":"net","tdMode":"cross","#,
            r#""tgtCcy":"","fillPx":"{fpx}","tradeId":"{tid}","fillSz":"{fsz}","fillPnl":"{fpnl}","fillTime":"{ft}","#,
            r#""fillFee":"{ffee}","fillFeeCcy":"{fccy}","execType":"{et}","accFillSz":"{acc}","fillNotionalUsd":"{fnu}","#,
            r#""avgPx":"{avg}","state":"{state}","lever":"10","pnl":"{pnl}","feeCcy":"USDT","fee":"{fee}","#,
            r#""rebateCcy":"USDT","rebate":"0","category":"normal","uTime":"{t}","cTime":"{ct}","source":"","#,
            r#""reduceOnly":"false","cancelSource":"{cs}","amendResult":"","reqId":"","code":"0","msg":""}}"#
        ),
        inst = info.okx_swap,
        id = o.order_id,
        c = o.client_id,
        px = p(o.price),
        sz = qty(o.qty),
        nu = money(value(o.price, o.qty, o.decimals)),
        side = if o.buy { "buy" } else { "sell" },
        fpx = blank_if(fill, p(o.last_price)),
        tid = blank_if(fill, o.trade_id.to_string()),
        fsz = qty(o.last_qty),
        fpnl = money(o.realized),
        ft = blank_if(fill, e.time_ms.to_string()),
        ffee = money(-o.last_fee),
        fccy = blank_if(fill, "USDT".into()),
        et = if fill { "T" } else { "" },
        acc = qty(o.filled),
        fnu = blank_if(fill, money(value(o.last_price, o.last_qty, o.decimals))),
        avg = p(o.avg_price()),
        state = state,
        pnl = money(o.realized),
        fee = money(-o.cum_fee),
        t = e.time_ms,
        ct = o.created_ms,
        cs = match o.status {
            Status::Canceled => "1",
            Status::Rejected => "20",
            _ => "",
        },
    )
}

fn position(e: &AccountEvent, info: &[SymInfo]) -> String {
    let Some(pos) = e.position.as_ref() else {
        return String::new();
    };
    let p = |v: i64| fixed(v, pos.decimals);
    let size = pos.qty.unsigned_abs();
    format!(
        concat!(
            r#"{{"adl":"1","availPos":"","avgPx":"{avg}","cTime":"{t}","ccy":"USDT","imr":"","instId":"{inst}","#,
            r#""instType":"SWAP","last":"{avg}","lever":"10","liqPx":"","markPx":"{avg}","mgnMode":"cross","mmr":"0","#,
            r#""notionalUsd":"{nu}","pos":"{pos}","posCcy":"","posId":"{pid}","posSide":"net","realizedPnl":"{rp}","#,
            r#""fee":"0","fundingFee":"0","upl":"0","uplRatio":"0","tradeId":"{tid}","uTime":"{t}","pTime":"{t}"}}"#
        ),
        avg = p(pos.entry),
        t = e.time_ms,
        inst = info[pos.sym].okx_swap,
        nu = money(value(pos.entry, size, pos.decimals)),
        pos = fixed(pos.qty, 3),
        pid = 307_173_036_051_017_730u64 + (e.account as u64) * 1000 + pos.sym as u64,
        rp = money(pos.realized),
        tid = e.order.as_ref().map_or(0, |o| o.trade_id),
    )
}

fn account(e: &AccountEvent) -> String {
    let w = money(e.balance.wallet);
    format!(
        concat!(
            r#"{{"adjEq":"{w}","imr":"0","mmr":"0","notionalUsd":"0","mgnRatio":"","totalEq":"{w}","uTime":"{t}","#,
            r#""details":[{{"availBal":"{w}","availEq":"{w}","cashBal":"{w}","ccy":"USDT","eq":"{w}","eqUsd":"{w}","#,
            r#""frozenBal":"0","ordFrozen":"0","upl":"0","uTime":"{t}"}}]}}"#
        ),
        w = w,
        t = e.time_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::private::account::{base64_sign, SimAccount};
    use crate::sim::private::observe::PrivateStream;
    use std::time::Duration;

    fn login_req(key: &str, pass: &str, ts: u64, secret: &str) -> String {
        let sign = base64_sign(secret, &format!("{ts}GET/users/self/verify"));
        format!(
            r#"{{"op":"login","args":[{{"apiKey":"{key}","passphrase":"{pass}","timestamp":"{ts}","sign":"{sign}"}}]}}"#
        )
    }

    #[test]
    fn login_errors_then_subscribe() {
        let p = Private::new(vec![SimAccount::named("a")], Duration::from_secs(60), 1);
        let mut s = PrivSession::new(PrivateStream::Okx, "c1".into());
        let sub = r#"{"id":"9","op":"subscribe","args":[{"channel":"orders","instType":"ANY"},{"channel":"account"}]}"#;
        let code = |acts: Vec<Act>| match &acts[0] {
            Act::Reply(r) => serde_json::from_str::<Value>(r).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(handle(&p, sub, &mut s)), "60011");
        let now = now_ms() / 1000;
        assert_eq!(
            code(handle(
                &p,
                &login_req("x", "a-pass", now, "a-secret"),
                &mut s
            )),
            "60005"
        );
        assert_eq!(
            code(handle(
                &p,
                &login_req("a-key", "nope", now, "a-secret"),
                &mut s
            )),
            "60024"
        );
        assert_eq!(
            code(handle(&p, &login_req("a-key", "a-pass", now, "b"), &mut s)),
            "60007"
        );
        assert_eq!(
            code(handle(
                &p,
                &login_req("a-key", "a-pass", now - 31, "a-secret"),
                &mut s
            )),
            "60006"
        );
        assert_eq!(s.account, None);
        let out = handle(&p, &login_req("a-key", "a-pass", now, "a-secret"), &mut s);
        assert_eq!(
            out[0],
            Act::Reply(r#"{"event":"login","code":"0","msg":"","connId":"c1"}"#.into())
        );
        let out = handle(&p, sub, &mut s);
        assert_eq!(
            out[0],
            Act::Reply(r#"{"id":"9","event":"subscribe","arg":{"channel":"orders","instType":"ANY"},"connId":"c1"}"#.into())
        );
        assert_eq!(
            s.kinds,
            [AccountEventKind::Order, AccountEventKind::Balance]
        );
    }
}
