//! Bybit v5's private stream (`/v5/private`): `auth`, `subscribe` /
//! `unsubscribe` to `order`, `execution`, `position`, `wallet`, `ping`, and
//! the wire format of each topic. Requests in, replies out, no I/O.
//!
//! Auth: `{"req_id":…,"op":"auth","args":[apiKey, expires, signature]}`,
//! signature = hex HMAC-SHA256(secret, `"GET/realtime" + expires`), `expires`
//! (Unix ms) in the future. Replies
//! `{"success":…,"ret_msg":…,"op":"auth","conn_id":…}` (`req_id` echoed when
//! sent). Bybit documents no failure texts: an expired `expires` answers
//! `"Params Error"` (as Bybit does), a bad signature `"Signature
//! verification failed"`, an unknown or revoked key `"API key is invalid."`,
//! a subscription before auth `"Request not authorized"`.

use serde_json::Value;

use crate::sim::base::now_ms;
use crate::sim::format::{fixed, json_str, qty};
use crate::sim::symbol::SymInfo;

use super::account::hex_ok;
use super::observe::AccountEventKind;
use super::orders::{value, AccountEvent, Order, Status};
use super::session::{Act, PrivSession};
use super::state::Private;

/// The topics and what each delivers.
const TOPICS: [(&str, AccountEventKind); 4] = [
    ("order", AccountEventKind::Order),
    ("execution", AccountEventKind::Execution),
    ("position", AccountEventKind::Position),
    ("wallet", AccountEventKind::Balance),
];

fn reply(success: bool, msg: &str, op: &str, conn_id: &str, req_id: Option<&str>) -> String {
    let req = req_id.map_or_else(String::new, |r| format!(r#","req_id":{}"#, json_str(r)));
    format!(
        r#"{{"success":{success},"ret_msg":{},"op":{},"conn_id":"{conn_id}"{req}}}"#,
        json_str(msg),
        json_str(op)
    )
}

/// One request on `/v5/private`.
pub(crate) fn handle(private: &Private, text: &str, s: &mut PrivSession) -> Vec<Act> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![Act::Reply(reply(
            false,
            &format!("error:invalid request: {text}"),
            "",
            &s.tag,
            None,
        ))];
    };
    let req_id = req.get("req_id").and_then(Value::as_str);
    let op = req.get("op").and_then(Value::as_str).unwrap_or("");
    let args: Vec<&Value> = req
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    match op {
        "ping" => vec![
            Act::Ping,
            Act::Reply(format!(
                r#"{{"req_id":{},"op":"pong","args":["{}"],"conn_id":"{}"}}"#,
                json_str(req_id.unwrap_or("")),
                now_ms(),
                s.tag
            )),
        ],
        "auth" => auth(private, &args, s, req_id),
        "subscribe" | "unsubscribe" => {
            if s.account.is_none() {
                return vec![Act::Reply(reply(
                    false,
                    "Request not authorized",
                    op,
                    &s.tag,
                    req_id,
                ))];
            }
            let mut kinds = Vec::new();
            for a in &args {
                let name = a.as_str().unwrap_or("");
                match TOPICS.iter().find(|(t, _)| *t == name) {
                    Some((_, k)) => kinds.push(*k),
                    None => {
                        let msg = format!("error:handler not found,topic:{name}");
                        return vec![Act::Reply(reply(false, &msg, op, &s.tag, req_id))];
                    }
                }
            }
            if op == "subscribe" {
                for k in kinds {
                    if !s.kinds.contains(&k) {
                        s.kinds.push(k);
                    }
                }
            } else {
                s.kinds.retain(|k| !kinds.contains(k));
            }
            vec![Act::Reply(reply(true, "", op, &s.tag, req_id))]
        }
        other => vec![Act::Reply(reply(
            false,
            &format!("error:invalid op:{other}"),
            other,
            &s.tag,
            req_id,
        ))],
    }
}

fn auth(private: &Private, args: &[&Value], s: &mut PrivSession, req_id: Option<&str>) -> Vec<Act> {
    let text = |i: usize| {
        args.get(i).map(|v| match v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        })
    };
    let fail = |msg: &str| vec![Act::Reply(reply(false, msg, "auth", &s.tag, req_id))];
    let (Some(key), Some(expires), Some(sig)) = (text(0), text(1), text(2)) else {
        return fail("Params Error");
    };
    let Ok(account) = private.by_key(&key) else {
        return fail("API key is invalid.");
    };
    match expires.parse::<u64>() {
        Ok(e) if e > now_ms() => {}
        _ => return fail("Params Error"),
    }
    let signed = format!("GET/realtime{expires}");
    if !hex_ok(&private.accounts[account].secret, &signed, &sig) {
        return fail("Signature verification failed");
    }
    s.account = Some(account);
    vec![
        Act::Reply(reply(true, "", "auth", &s.tag, req_id)),
        Act::Listen,
    ]
}

/// The topic an event kind is sent on.
pub(crate) fn topic(kind: AccountEventKind) -> &'static str {
    TOPICS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("order", |(t, _)| t)
}

fn money(v: i64) -> String {
    fixed(v, 8)
}

fn uuid(n: u64) -> String {
    format!(
        "{:08x}-0000-4000-a000-{:012x}",
        (n >> 32) as u32,
        n & 0xFFFF_FFFF_FFFF
    )
}

/// The message of `e` on its topic.
pub(crate) fn render(e: &AccountEvent, info: &[SymInfo]) -> String {
    let data = match (e.kind, e.order.as_ref()) {
        (AccountEventKind::Order, Some(o)) => order(o, &info[o.sym], e.time_ms),
        (AccountEventKind::Execution, Some(o)) => execution(e, o, &info[o.sym]),
        (AccountEventKind::Position, _) => position(e, info),
        _ => wallet(e),
    };
    format!(
        r#"{{"id":"{}-{}","topic":"{}","creationTime":{},"data":[{data}]}}"#,
        e.account,
        e.n,
        topic(e.kind),
        e.time_ms
    )
}

fn order(o: &Order, info: &SymInfo, time: u64) -> String {
    let status = match o.status {
        Status::New => "New",
        Status::PartiallyFilled => "PartiallyFilled",
        Status::Filled => "Filled",
        Status::Canceled => "Cancelled",
        Status::Rejected => "Rejected",
    };
    let open = matches!(o.status, Status::New | Status::PartiallyFilled);
    let leaves = if open { o.qty - o.filled } else { 0 };
    let p = |v: i64| fixed(v, o.decimals);
    format!(
        concat!(
            r#"{{"category":"linear","symbol":"{s}","orderId":"{id}","orderLinkId":"{c}","side":"{S}","orderType":"Limit","#,
            r#""cancelType":"{ct}","price":"{p}","qty":"{q}","timeInForce":"GTC","orderStatus":"{st}","reduceOnly":false,"#,
            r#""leavesQty":"{lq}","leavesValue":"{lv}","cumExecQty":"{z}","cumExecValue":"{zv}","avgPrice":"{ap}","#,
            r#""positionIdx":0,"cumExecFee":"{fee}","closedPnl":"{pnl}","createdTime":"{ct0}","updatedTime":"{t}","#,
            r#""rejectReason":"{rr}","stopOrderType":"","triggerPrice":"","takeProfit":"","stopLoss":"","#,
            r#""closeOnTrigger":false,"feeCurrency":""}}"#
        ),
        s = info.name,
        id = uuid(o.order_id),
        c = o.client_id,
        S = if o.buy { "Buy" } else { "Sell" },
        ct = if o.status == Status::Canceled {
            "CancelByUser"
        } else {
            "UNKNOWN"
        },
        p = p(o.price),
        q = qty(o.qty),
        st = status,
        lq = qty(leaves),
        lv = money(value(o.price, leaves, o.decimals)),
        z = qty(o.filled),
        zv = money(o.filled_value),
        ap = if o.filled > 0 {
            p(o.avg_price())
        } else {
            String::new()
        },
        fee = money(o.cum_fee),
        pnl = money(o.realized),
        ct0 = o.created_ms,
        t = time,
        rr = if o.status == Status::Rejected {
            "EC_InsufficientBalance"
        } else {
            "EC_NoError"
        },
    )
}

fn execution(e: &AccountEvent, o: &Order, info: &SymInfo) -> String {
    let p = |v: i64| fixed(v, o.decimals);
    format!(
        concat!(
            r#"{{"category":"linear","symbol":"{s}","closedSize":"0","execFee":"{fee}","execId":"{eid}","execPrice":"{L}","#,
            r#""execQty":"{l}","execType":"Trade","execValue":"{v}","feeRate":"0.0004","markPrice":"{L}","leavesQty":"{lq}","#,
            r#""orderId":"{id}","orderLinkId":"{c}","orderPrice":"{px}","orderQty":"{q}","orderType":"Limit","#,
            r#""stopOrderType":"UNKNOWN","side":"{S}","execTime":"{t}","isLeverage":"0","isMaker":false,"seq":{seq},"#,
            r#""execPnl":"{pnl}","createType":"CreateByUser","feeCurrency":"USDT"}}"#
        ),
        s = info.name,
        fee = money(o.last_fee),
        eid = uuid(o.trade_id ^ (e.account as u64) << 40),
        L = p(o.last_price),
        l = qty(o.last_qty),
        v = money(value(o.last_price, o.last_qty, o.decimals)),
        lq = qty(o.qty - o.filled),
        id = uuid(o.order_id),
        c = o.client_id,
        px = p(o.price),
        q = qty(o.qty),
        S = if o.buy { "Buy" } else { "Sell" },
        t = e.time_ms,
        seq = e.position.as_ref().map_or(0, |p| p.seq),
        pnl = money(o.realized),
    )
}

fn position(e: &AccountEvent, info: &[SymInfo]) -> String {
    let Some(pos) = e.position.as_ref() else {
        return String::new();
    };
    let p = |v: i64| fixed(v, pos.decimals);
    let size = pos.qty.unsigned_abs();
    let pv = value(pos.entry, size, pos.decimals);
    format!(
        concat!(
            r#"{{"positionIdx":0,"tradeMode":0,"riskId":1,"riskLimitValue":"2000000","symbol":"{s}","side":"{side}","#,
            r#""size":"{size}","entryPrice":"{ep}","leverage":"10","positionValue":"{pv}","positionBalance":"0","#,
            r#""markPrice":"{ep}","positionIM":"{im}","positionMM":"{mm}","takeProfit":"0","stopLoss":"0","#,
            r#""trailingStop":"0","unrealisedPnl":"0","cumRealisedPnl":"{rp}","curRealisedPnl":"{rp}","createdTime":"{t}","#,
            r#""updatedTime":"{t}","tpslMode":"Full","liqPrice":"","bustPrice":"","category":"linear","#,
            r#""positionStatus":"Normal","adlRankIndicator":0,"autoAddMargin":0,"seq":{seq},"isReduceOnly":false}}"#
        ),
        s = info[pos.sym].name,
        side = match pos.qty.signum() {
            1 => "Buy",
            -1 => "Sell",
            _ => "",
        },
        size = qty(size),
        ep = p(pos.entry),
        pv = money(pv),
        im = money(pv / 10),
        mm = money(pv / 200),
        rp = money(pos.realized),
        t = e.time_ms,
        seq = pos.seq,
    )
}

fn wallet(e: &AccountEvent) -> String {
    let w = money(e.balance.wallet);
    format!(
        concat!(
            r#"{{"accountIMRate":"0","accountMMRate":"0","totalEquity":"{w}","totalWalletBalance":"{w}","#,
            r#""totalMarginBalance":"{w}","totalAvailableBalance":"{w}","totalPerpUPL":"0","totalInitialMargin":"0","#,
            r#""totalMaintenanceMargin":"0","coin":[{{"coin":"USDT","equity":"{w}","usdValue":"{w}","walletBalance":"{w}","#,
            r#""availableToWithdraw":"{w}","borrowAmount":"0","accruedInterest":"0","totalOrderIM":"0","#,
            r#""totalPositionIM":"0","totalPositionMM":"0","unrealisedPnl":"0","cumRealisedPnl":"{rp}","bonus":"0","#,
            r#""collateralSwitch":true,"marginCollateral":true,"locked":"0"}}],"accountLTV":"0","accountType":"UNIFIED"}}"#
        ),
        w = w,
        rp = money(e.position.as_ref().map_or(0, |p| p.realized)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::private::account::{hex_sign, SimAccount};
    use crate::sim::private::observe::PrivateStream;
    use std::time::Duration;

    #[test]
    fn auth_then_subscribe() {
        let p = Private::new(vec![SimAccount::named("a")], Duration::from_secs(60), 1);
        let mut s = PrivSession::new(PrivateStream::Bybit, "t".into());
        let sub = r#"{"req_id":"1","op":"subscribe","args":["order","wallet"]}"#;
        assert_eq!(
            handle(&p, sub, &mut s),
            [Act::Reply(r#"{"success":false,"ret_msg":"Request not authorized","op":"subscribe","conn_id":"t","req_id":"1"}"#.into())]
        );
        let exp = now_ms() + 10_000;
        let sig = hex_sign("a-secret", &format!("GET/realtime{exp}"));
        let auth = |key: &str, exp: u64, sig: &str| {
            format!(r#"{{"op":"auth","args":["{key}",{exp},"{sig}"]}}"#)
        };
        assert!(
            matches!(&handle(&p, &auth("a-key", exp, "00"), &mut s)[0], Act::Reply(r) if r.contains("Signature verification failed"))
        );
        assert!(
            matches!(&handle(&p, &auth("x", exp, &sig), &mut s)[0], Act::Reply(r) if r.contains("API key is invalid."))
        );
        let old = now_ms() - 1;
        let old_sig = hex_sign("a-secret", &format!("GET/realtime{old}"));
        assert!(
            matches!(&handle(&p, &auth("a-key", old, &old_sig), &mut s)[0], Act::Reply(r) if r.contains("Params Error"))
        );
        assert_eq!(s.account, None);
        let out = handle(&p, &auth("a-key", exp, &sig), &mut s);
        assert_eq!(
            out[0],
            Act::Reply(r#"{"success":true,"ret_msg":"","op":"auth","conn_id":"t"}"#.into())
        );
        assert_eq!(out[1], Act::Listen);
        assert!(
            matches!(&handle(&p, sub, &mut s)[0], Act::Reply(r) if r.contains(r#""success":true"#))
        );
        assert_eq!(
            s.kinds,
            [AccountEventKind::Order, AccountEventKind::Balance]
        );
    }
}
