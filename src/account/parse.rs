//! Each venue's private messages, read into [`PrivateFrame`]s and [`AccountEvent`]s. The field
//! names are the venues' documented ones (late 2026; `tests/fixtures/<venue>/private/`).

use serde_json::Value;

use super::event::{
    AccountEvent, BalanceUpdate, OrderSide, OrderStatus, OrderUpdate, PositionUpdate, Text,
};
use super::{binance_credential_code, PrivateFrame};

/// A number the venue sends as a string or a number; NaN when absent or empty.
fn num(v: &Value, key: &str) -> f64 {
    match v.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.parse().unwrap_or(f64::NAN),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// `num`, with 0 for absent or empty (a quantity or fee not reported is none).
fn num0(v: &Value, key: &str) -> f64 {
    let x = num(v, key);
    if x.is_nan() {
        0.0
    } else {
        x
    }
}

/// A Unix-ms time sent as a number or a string; 0 when absent.
fn ms(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// Text sent as a string or a number; empty when absent or null.
fn text(v: &Value, key: &str) -> Text {
    match v.get(key) {
        Some(Value::String(s)) => Text::new(s),
        Some(Value::Number(n)) => Text::new(&n.to_string()),
        _ => Text::EMPTY,
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn side(s: &str) -> Result<OrderSide, String> {
    match s {
        "BUY" | "Buy" | "buy" => Ok(OrderSide::Buy),
        "SELL" | "Sell" | "sell" => Ok(OrderSide::Sell),
        other => Err(format!("unknown order side '{other}'")),
    }
}

/// A request id as echoed: a string or a number; `None` for one not ours (not a number).
fn request_id(v: &Value) -> Option<u64> {
    match v.get("id").or_else(|| v.get("req_id"))? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// An order read from one item of a several-item message: kept, or its error noted (the
/// first only) while the other items go on.
fn keep(
    order: Result<OrderUpdate, String>,
    events: &mut Vec<AccountEvent>,
    skipped: &mut Option<String>,
) {
    match order {
        Ok(o) => events.push(AccountEvent::Order(o)),
        Err(e) => {
            skipped.get_or_insert(e);
        }
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

/// Binance: USD-M's listen-key stream and spot's WebSocket API (events wrapped in
/// `{"subscriptionId":…,"event":…}`).
pub(super) fn binance(msg: &str, events: &mut Vec<AccountEvent>) -> Result<PrivateFrame, String> {
    let v = parse_json(msg)?;
    if let Some(status) = v.get("status").and_then(Value::as_u64) {
        let id = request_id(&v);
        if status == 200 {
            return Ok(id.map_or(PrivateFrame::Unknown, |id| PrivateFrame::Ack { id }));
        }
        let err = v.get("error").unwrap_or(&Value::Null);
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        if matches!(status, 418 | 429) {
            // `data.retryAfter` is a Unix ms time; what is left of it, rounded up.
            let until = err.get("data").map_or(0, |d| ms(d, "retryAfter"));
            let now = crate::clock::unix_ns() / 1_000_000;
            let retry_after_s = (until > now).then(|| (until - now).div_ceil(1000) as u32);
            return Ok(PrivateFrame::RateLimited {
                status: status as u16,
                retry_after_s,
                msg: str_of(err, "msg").to_string(),
            });
        }
        return Ok(PrivateFrame::Error {
            id,
            code,
            msg: str_of(err, "msg").to_string(),
            credentials: status == 401 || binance_credential_code(code),
        });
    }
    if v.get("e").is_none() && v.get("event").is_none() {
        if let Some(code) = v.get("code").and_then(Value::as_i64) {
            return Ok(PrivateFrame::Error {
                id: request_id(&v),
                code,
                msg: str_of(&v, "msg").to_string(),
                credentials: binance_credential_code(code),
            });
        }
        return Ok(PrivateFrame::Unknown);
    }
    let ev = v.get("event").unwrap_or(&v);
    match str_of(ev, "e") {
        "ORDER_TRADE_UPDATE" => {
            let o = ev.get("o").ok_or("ORDER_TRADE_UPDATE without 'o'")?;
            events.push(AccountEvent::Order(binance_order(o, ms(ev, "T"))?));
        }
        "executionReport" => {
            events.push(AccountEvent::Order(binance_order(ev, ms(ev, "E"))?));
        }
        "ACCOUNT_UPDATE" => {
            let a = ev.get("a").ok_or("ACCOUNT_UPDATE without 'a'")?;
            let t = ms(ev, "T");
            for b in a.get("B").and_then(Value::as_array).into_iter().flatten() {
                events.push(AccountEvent::Balance(BalanceUpdate {
                    asset: text(b, "a"),
                    total: num(b, "wb"),
                    available: num(b, "cw"),
                    change: f64::NAN,
                    time_ms: t,
                }));
            }
            for p in a.get("P").and_then(Value::as_array).into_iter().flatten() {
                events.push(AccountEvent::Position(PositionUpdate {
                    symbol: text(p, "s"),
                    size: num(p, "pa"),
                    entry_price: num0(p, "ep"),
                    unrealized_pnl: num(p, "up"),
                    time_ms: t,
                }));
            }
        }
        "outboundAccountPosition" => {
            let t = ms(ev, "E");
            for b in ev.get("B").and_then(Value::as_array).into_iter().flatten() {
                let (free, locked) = (num(b, "f"), num0(b, "l"));
                events.push(AccountEvent::Balance(BalanceUpdate {
                    asset: text(b, "a"),
                    total: free + locked,
                    available: free,
                    change: f64::NAN,
                    time_ms: t,
                }));
            }
        }
        "balanceUpdate" => {
            // A deposit or withdrawal: the change only (outboundAccountPosition follows with
            // the balance).
            events.push(AccountEvent::Balance(BalanceUpdate {
                asset: text(ev, "a"),
                total: f64::NAN,
                available: f64::NAN,
                change: num(ev, "d"),
                time_ms: ms(ev, "E"),
            }));
        }
        "listenKeyExpired" | "eventStreamTerminated" => {
            let key = ev
                .get("listenKey")
                .and_then(Value::as_str)
                .map(String::from);
            return Ok(PrivateFrame::Expired { key });
        }
        // Known, carrying nothing the strategy takes: configuration and margin notices, lite
        // trades.
        _ => {}
    }
    Ok(PrivateFrame::Events { skipped: None })
}

/// An order of a Binance `ORDER_TRADE_UPDATE` (`o`) or `executionReport`.
fn binance_order(o: &Value, time_ms: u64) -> Result<OrderUpdate, String> {
    let status = match str_of(o, "X") {
        "NEW" | "PENDING_NEW" => OrderStatus::New,
        "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
        "FILLED" => OrderStatus::Filled,
        "CANCELED" | "PENDING_CANCEL" => OrderStatus::Cancelled,
        "REJECTED" => OrderStatus::Rejected,
        "EXPIRED" | "EXPIRED_IN_MATCH" => OrderStatus::Expired,
        other => return Err(format!("unknown order status '{other}'")),
    };
    // A cancel reports the cancel request's id in `c` and the order's own in `C` (spot).
    let client = match str_of(o, "C") {
        "" => text(o, "c"),
        orig => Text::new(orig),
    };
    Ok(OrderUpdate {
        symbol: text(o, "s"),
        order_id: text(o, "i"),
        client_order_id: client,
        side: side(str_of(o, "S"))?,
        status,
        price: num0(o, "p"),
        quantity: num0(o, "q"),
        filled_quantity: num0(o, "z"),
        last_fill_price: num0(o, "L"),
        last_fill_quantity: num0(o, "l"),
        fee: num0(o, "n"),
        fee_asset: text(o, "N"),
        time_ms,
    })
}

/// Bybit v5 private: `auth`/`subscribe` replies, pongs, and the four topics.
pub(super) fn bybit(msg: &str, events: &mut Vec<AccountEvent>) -> Result<PrivateFrame, String> {
    let v = parse_json(msg)?;
    if let Some(op) = v.get("op").and_then(Value::as_str) {
        let ok = v.get("success").and_then(Value::as_bool);
        let msg = str_of(&v, "ret_msg");
        return Ok(match (op, ok) {
            ("pong", _) | ("ping", Some(true)) => PrivateFrame::Pong,
            ("auth", Some(true)) => PrivateFrame::LoggedIn,
            ("auth", _) => PrivateFrame::Error {
                id: None,
                code: 0,
                msg: msg.to_string(),
                // Only what names the key, its signature or its permissions: a login refused
                // for another reason ("Params Error" on a late `expires`, a system error)
                // reconnects with backoff.
                credentials: bybit_credential_text(msg),
            },
            (_, Some(true)) => {
                request_id(&v).map_or(PrivateFrame::Unknown, |id| PrivateFrame::Ack { id })
            }
            (_, _) => PrivateFrame::Error {
                id: request_id(&v),
                code: 0,
                msg: msg.to_string(),
                credentials: msg.to_ascii_lowercase().contains("not authorized"),
            },
        });
    }
    let Some(topic) = v.get("topic").and_then(Value::as_str) else {
        return Ok(PrivateFrame::Unknown);
    };
    let created = ms(&v, "creationTime");
    let data = v.get("data").and_then(Value::as_array);
    let mut skipped = None;
    for d in data.into_iter().flatten() {
        match topic {
            "order" => keep(bybit_order(d), events, &mut skipped),
            "execution" if matches!(str_of(d, "execType"), "Trade" | "") => {
                keep(bybit_execution(d), events, &mut skipped);
            }
            "position" => {
                let size = num0(d, "size");
                let size = if str_of(d, "side") == "Sell" {
                    -size
                } else {
                    size
                };
                let entry = match num(d, "entryPrice") {
                    x if x.is_nan() => num0(d, "avgPrice"),
                    x => x,
                };
                events.push(AccountEvent::Position(PositionUpdate {
                    symbol: text(d, "symbol"),
                    size,
                    entry_price: entry,
                    unrealized_pnl: num(d, "unrealisedPnl"),
                    time_ms: match ms(d, "updatedTime") {
                        0 => created,
                        t => t,
                    },
                }));
            }
            "wallet" => {
                for c in d
                    .get("coin")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    events.push(AccountEvent::Balance(BalanceUpdate {
                        asset: text(c, "coin"),
                        total: num(c, "walletBalance"),
                        available: num(c, "availableToWithdraw"),
                        change: f64::NAN,
                        time_ms: created,
                    }));
                }
            }
            _ => {}
        }
    }
    Ok(PrivateFrame::Events { skipped })
}

fn bybit_order(d: &Value) -> Result<OrderUpdate, String> {
    let status = match str_of(d, "orderStatus") {
        "New" | "Created" | "Untriggered" | "Triggered" => OrderStatus::New,
        "PartiallyFilled" => OrderStatus::PartiallyFilled,
        "Filled" => OrderStatus::Filled,
        "Cancelled" | "PartiallyFilledCanceled" => OrderStatus::Cancelled,
        "Rejected" => OrderStatus::Rejected,
        "Deactivated" => OrderStatus::Expired,
        other => return Err(format!("unknown order status '{other}'")),
    };
    Ok(OrderUpdate {
        symbol: text(d, "symbol"),
        order_id: text(d, "orderId"),
        client_order_id: text(d, "orderLinkId"),
        side: side(str_of(d, "side"))?,
        status,
        price: num0(d, "price"),
        quantity: num0(d, "qty"),
        filled_quantity: num0(d, "cumExecQty"),
        last_fill_price: 0.0,
        last_fill_quantity: 0.0,
        fee: num0(d, "cumExecFee"),
        fee_asset: text(d, "feeCurrency"),
        time_ms: ms(d, "updatedTime"),
    })
}

/// A Bybit execution (a fill) as an order update: the order's state after the fill.
fn bybit_execution(d: &Value) -> Result<OrderUpdate, String> {
    let (qty, leaves) = (num0(d, "orderQty"), num0(d, "leavesQty"));
    Ok(OrderUpdate {
        symbol: text(d, "symbol"),
        order_id: text(d, "orderId"),
        client_order_id: text(d, "orderLinkId"),
        side: side(str_of(d, "side"))?,
        status: if leaves > 0.0 {
            OrderStatus::PartiallyFilled
        } else {
            OrderStatus::Filled
        },
        price: num0(d, "orderPrice"),
        quantity: qty,
        filled_quantity: qty - leaves,
        last_fill_price: num0(d, "execPrice"),
        last_fill_quantity: num0(d, "execQty"),
        fee: num0(d, "execFee"),
        fee_asset: text(d, "feeCurrency"),
        time_ms: ms(d, "execTime"),
    })
}

/// Whether a Bybit refusal's text is about the credentials.
fn bybit_credential_text(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "api key",
        "apikey",
        "signature",
        "permission",
        "not authorized",
        "unmatched ip",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// OKX codes that mean the credentials are wrong: invalid key, sign, login failed, passphrase,
/// key not found, key of another environment, IP not whitelisted, permissions.
fn okx_credential_code(code: i64) -> bool {
    matches!(
        code,
        60005 | 60007 | 60009 | 60022 | 60024 | 60032 | 50101 | 50110 | 50111 | 50113
    )
}

/// OKX v5 private: `login`/`subscribe`/`error` events, `pong`, and the three channels.
pub(super) fn okx(msg: &str, events: &mut Vec<AccountEvent>) -> Result<PrivateFrame, String> {
    if msg == "pong" {
        return Ok(PrivateFrame::Pong);
    }
    let v = parse_json(msg)?;
    if let Some(event) = v.get("event").and_then(Value::as_str) {
        let code: i64 = str_of(&v, "code").parse().unwrap_or(0);
        return Ok(match event {
            "login" if code == 0 => PrivateFrame::LoggedIn,
            "subscribe" => {
                request_id(&v).map_or(PrivateFrame::Unknown, |id| PrivateFrame::Ack { id })
            }
            "error" | "login" => PrivateFrame::Error {
                id: request_id(&v),
                code,
                msg: str_of(&v, "msg").to_string(),
                credentials: okx_credential_code(code),
            },
            _ => PrivateFrame::Unknown,
        });
    }
    let channel = v
        .get("arg")
        .and_then(|a| a.get("channel"))
        .and_then(Value::as_str)
        .ok_or("neither an event nor a channel's data")?;
    let mut skipped = None;
    for d in v
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match channel {
            "orders" => keep(okx_order(d), events, &mut skipped),
            "positions" => {
                let pos = num0(d, "pos");
                let size = if str_of(d, "posSide") == "short" {
                    -pos.abs()
                } else {
                    pos
                };
                events.push(AccountEvent::Position(PositionUpdate {
                    symbol: text(d, "instId"),
                    size,
                    entry_price: num0(d, "avgPx"),
                    unrealized_pnl: num(d, "upl"),
                    time_ms: ms(d, "uTime"),
                }));
            }
            "account" => {
                for c in d
                    .get("details")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    events.push(AccountEvent::Balance(BalanceUpdate {
                        asset: text(c, "ccy"),
                        total: num(c, "cashBal"),
                        available: num(c, "availBal"),
                        change: f64::NAN,
                        time_ms: ms(c, "uTime").max(ms(d, "uTime")),
                    }));
                }
            }
            _ => {}
        }
    }
    Ok(PrivateFrame::Events { skipped })
}

fn okx_order(d: &Value) -> Result<OrderUpdate, String> {
    let status = match str_of(d, "state") {
        "live" => OrderStatus::New,
        "partially_filled" => OrderStatus::PartiallyFilled,
        "filled" => OrderStatus::Filled,
        // An order the venue refused arrives cancelled with a code.
        "canceled" | "mmp_canceled" if !matches!(str_of(d, "code"), "" | "0") => {
            OrderStatus::Rejected
        }
        "canceled" | "mmp_canceled" => OrderStatus::Cancelled,
        other => return Err(format!("unknown order state '{other}'")),
    };
    Ok(OrderUpdate {
        symbol: text(d, "instId"),
        order_id: text(d, "ordId"),
        client_order_id: text(d, "clOrdId"),
        side: side(str_of(d, "side"))?,
        status,
        price: num0(d, "px"),
        quantity: num0(d, "sz"),
        filled_quantity: num0(d, "accFillSz"),
        last_fill_price: num0(d, "fillPx"),
        last_fill_quantity: num0(d, "fillSz"),
        fee: num0(d, "fillFee"),
        fee_asset: text(d, "fillFeeCcy"),
        time_ms: ms(d, "uTime"),
    })
}
