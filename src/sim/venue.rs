//! Stream names and replies of the Bybit v5 and OKX v5 public protocols
//! (Binance's live in `conn.rs`).

use serde_json::Value;

use super::base::Kind;
use super::config::SimVenue;
use super::format::{json_str, json_val};
use super::rng::mix;
use super::symbol::SymInfo;

/// A parsed Bybit topic or OKX channel argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topic {
    pub sym: usize,
    pub kind: Kind,
    /// Canonical name: the Bybit topic (`orderbook.50.BTCUSDT`) or OKX
    /// `<channel>:<instId>` (`books:BTC-USDT-SWAP`).
    pub name: String,
    /// OKX spot instrument (else the swap).
    pub spot: bool,
}

/// Parses a Bybit v5 public topic: `orderbook.1.<S>`, `orderbook.50.<S>`,
/// `publicTrade.<S>`, `tickers.<S>` (symbol as configured, uppercase).
pub(crate) fn parse_bybit(info: &[SymInfo], topic: &str) -> Option<Topic> {
    let (kind, symbol) = if let Some(rest) = topic.strip_prefix("orderbook.") {
        let (depth, symbol) = rest.split_once('.')?;
        match depth {
            "1" => (Kind::BookTicker, symbol),
            "50" => (Kind::Depth, symbol),
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

/// Parses an OKX v5 public channel argument: `bbo-tbt`, `books`, `trades`,
/// `mark-price` on a swap (`BTC-USDT-SWAP`) or spot (`BTC-USDT`) instrument,
/// `funding-rate` on a swap.
pub(crate) fn parse_okx(info: &[SymInfo], channel: &str, inst_id: &str) -> Option<Topic> {
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
        name: okx_name(channel, inst_id),
        spot,
    })
}

/// Canonical stream name of an OKX subscription.
pub(crate) fn okx_name(channel: &str, inst_id: &str) -> String {
    format!("{channel}:{inst_id}")
}

/// Normalises a stream name given to `Fault::Mute` for a non-Binance
/// venue (an OKX `channel:instId` keeps its form; a Bybit topic too).
pub(crate) fn normalise(info: &[SymInfo], venue: SimVenue, name: &str) -> String {
    match venue {
        SimVenue::Okx => name
            .split_once(':')
            .and_then(|(c, i)| parse_okx(info, c, i))
            .map_or_else(|| name.to_string(), |t| t.name),
        _ => parse_bybit(info, name).map_or_else(|| name.to_string(), |t| t.name),
    }
}

/// The connection id a venue reports (`conn_id` / `connId`), deterministic
/// in the seed and the connection number.
pub(crate) fn conn_tag(venue: SimVenue, seed: u64, id: u64) -> String {
    let h = mix(seed ^ id.wrapping_mul(0xA24B_AED4_963E_E407));
    match venue {
        SimVenue::Okx => format!("{:08x}", h as u32),
        _ => {
            let h2 = mix(h);
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                (h >> 32) as u32,
                (h >> 16) as u16,
                h & 0xFFF,
                (h2 >> 52) & 0xFFF,
                h2 & 0xFFFF_FFFF_FFFF
            )
        }
    }
}

/// A Bybit operation reply, fields in the venue's order:
/// `{"success":…,"ret_msg":…,"conn_id":…,"req_id":…,"op":…}`. A request
/// without `req_id` gets none back on spot and `""` on linear.
pub(crate) fn bybit_reply(
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

/// An OKX `subscribe` / `unsubscribe` event for one argument.
pub(crate) fn okx_event(
    event: &str,
    id: Option<&str>,
    channel: &str,
    inst_id: &str,
    conn_id: &str,
) -> String {
    let id = id.map_or_else(String::new, |id| format!(r#""id":{},"#, json_str(id)));
    format!(
        r#"{{{id}"event":"{event}","arg":{{"channel":{},"instId":{}}},"connId":"{conn_id}"}}"#,
        json_str(channel),
        json_str(inst_id)
    )
}

/// An OKX error event.
pub(crate) fn okx_error(id: Option<&str>, code: &str, msg: &str, conn_id: &str) -> String {
    let id = id.map_or_else(String::new, |id| format!(r#""id":{},"#, json_str(id)));
    format!(
        r#"{{{id}"event":"error","code":"{code}","msg":{},"connId":"{conn_id}"}}"#,
        json_str(msg)
    )
}

/// OKX's 60018 message for an argument it does not serve.
pub(crate) fn okx_not_found(channel: &str, inst_id: &str) -> String {
    format!(
        "Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use the correct URL, channel and parameters referring to API document."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Vec<SymInfo> {
        vec![SymInfo::new("BTCUSDT", 2), SymInfo::new("ETHUSDT", 2)]
    }

    #[test]
    fn bybit_topics() {
        let i = info();
        let t = parse_bybit(&i, "orderbook.50.ETHUSDT").expect("topic");
        assert_eq!((t.sym, t.kind), (1, Kind::Depth));
        assert_eq!(
            parse_bybit(&i, "orderbook.1.BTCUSDT").map(|t| t.kind),
            Some(Kind::BookTicker)
        );
        assert_eq!(
            parse_bybit(&i, "publicTrade.BTCUSDT").map(|t| t.kind),
            Some(Kind::AggTrade)
        );
        assert_eq!(
            parse_bybit(&i, "tickers.BTCUSDT").map(|t| t.kind),
            Some(Kind::MarkPrice)
        );
        for bad in [
            "orderbook.200.BTCUSDT",
            "orderbook.50.btcusdt",
            "kline.1.BTCUSDT",
            "tickers.XRPUSDT",
            "",
        ] {
            assert!(parse_bybit(&i, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn okx_channels() {
        let i = info();
        let t = parse_okx(&i, "books", "BTC-USDT-SWAP").expect("swap");
        assert_eq!(
            (t.sym, t.kind, t.spot, t.name.as_str()),
            (0, Kind::Depth, false, "books:BTC-USDT-SWAP")
        );
        assert!(parse_okx(&i, "trades", "ETH-USDT").is_some_and(|t| t.spot && t.sym == 1));
        assert!(parse_okx(&i, "funding-rate", "ETH-USDT-SWAP").is_some());
        assert!(parse_okx(&i, "funding-rate", "ETH-USDT").is_none());
        assert!(parse_okx(&i, "books5", "ETH-USDT").is_none());
        assert!(parse_okx(&i, "books", "XRP-USDT").is_none());
    }

    #[test]
    fn replies() {
        assert_eq!(
            bybit_reply(SimVenue::BybitLinear, true, "", "c", None, "subscribe"),
            r#"{"success":true,"ret_msg":"","conn_id":"c","req_id":"","op":"subscribe"}"#
        );
        assert_eq!(
            bybit_reply(SimVenue::BybitSpot, true, "pong", "c", None, "ping"),
            r#"{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}"#
        );
        assert_eq!(
            okx_event("subscribe", Some("1"), "books", "BTC-USDT", "ab"),
            r#"{"id":"1","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"ab"}"#
        );
        assert_eq!(conn_tag(SimVenue::Okx, 1, 2).len(), 8);
        assert_eq!(conn_tag(SimVenue::BybitSpot, 1, 2).len(), 36);
        assert_ne!(conn_tag(SimVenue::Okx, 1, 2), conn_tag(SimVenue::Okx, 1, 3));
    }
}
