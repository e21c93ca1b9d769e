//! Issue 16 through the feed's logic: Bybit `orderbook.1` deltas merged into the stream's top,
//! messages without a number and same-millisecond updates delivered, acks without an echoed id
//! completing the subscription.

use std::time::Instant;

use super::{actions, feed_on, text, Recorded, MS};
use crate::feed::action::{Action, Outgoing, SessionId};
use crate::feed::core::{FeedCore, Input};
use crate::tick::{Health, TickData};
use crate::venue::Venue;

/// Connects the feed's first session at `t0` and returns it with the subscribe request sent.
fn connect(core: &mut FeedCore, sink: &mut Recorded, t0: Instant) -> (SessionId, String) {
    core.handle_timeout(t0, sink);
    let first = actions(core);
    let [Action::Connect { session: s, .. }] = first.as_slice() else {
        panic!("a connect expected: {first:?}");
    };
    let s = *s;
    core.on_connected(s, t0 + MS);
    core.on_open(s, t0 + MS, sink);
    let sent = actions(core);
    let [Action::Send {
        msg: Outgoing::Text(req),
        ..
    }] = sent.as_slice()
    else {
        panic!("one subscribe request expected: {sent:?}");
    };
    (s, req.to_string())
}

fn feed_text(core: &mut FeedCore, sink: &mut Recorded, s: SessionId, frame: &str, t: Instant) {
    assert!(core.on_message(s, Input::Text(&text(frame)), 0, t, sink));
}

fn quotes(sink: &Recorded) -> Vec<(f64, f64, f64, f64)> {
    sink.ticks
        .iter()
        .filter_map(|t| match t.data {
            TickData::Quote {
                bid,
                bid_qty,
                ask,
                ask_qty,
            } => Some((bid, bid_qty, ask, ask_qty)),
            _ => None,
        })
        .collect()
}

/// Items 3 and 6 on Bybit: the ack without `req_id` completes the subscription; deltas on
/// `orderbook.1` change the last top, a removal alone hands nothing out, and no NaN, size 0 or
/// removed level is ever a price.
#[test]
fn bybit_level_one_deltas_merge_and_an_ack_without_req_id_subscribes() {
    let t0 = Instant::now();
    let (mut core, _) = feed_on(Venue::BybitLinear, &["127.0.0.1"], &["orderbook.1.BTCUSDT"]);
    let mut sink = Recorded::default();
    let (s, req) = connect(&mut core, &mut sink, t0);
    assert!(req.contains("orderbook.1.BTCUSDT"), "{req}");
    let t = t0 + 2 * MS;
    feed_text(
        &mut core,
        &mut sink,
        s,
        r#"{"success":true,"ret_msg":"","conn_id":"c","op":"subscribe"}"#,
        t,
    );
    assert_eq!(sink.health, [Health::Connected { conn: 1 }], "acknowledged");
    let frame = |ty: &str, u: u64, b: &str, a: &str| {
        format!(
            r#"{{"topic":"orderbook.1.BTCUSDT","type":"{ty}","ts":{},"data":{{"s":"BTCUSDT","b":[{b}],"a":[{a}],"u":{u},"seq":{}}},"cts":1}}"#,
            1_700_000_000_000 + u,
            u * 10
        )
    };
    for f in [
        frame("snapshot", 1, r#"["100.5","2"]"#, r#"["101","3"]"#),
        // The ask alone changes.
        frame("delta", 2, "", r#"["100.9","1"]"#),
        // The best bid removed and the next given.
        frame("delta", 3, r#"["100.5","0"],["100.4","5"]"#, ""),
        // The best bid removed alone: nothing is handed out until a bid comes.
        frame("delta", 4, r#"["100.4","0"]"#, ""),
        frame("delta", 5, r#"["100.3","6"]"#, ""),
    ] {
        feed_text(&mut core, &mut sink, s, &f, t);
    }
    assert_eq!(
        quotes(&sink),
        [
            (100.5, 2.0, 101.0, 3.0),
            (100.5, 2.0, 100.9, 1.0),
            (100.4, 5.0, 100.9, 1.0),
            (100.3, 6.0, 100.9, 1.0),
        ]
    );
}

/// Items 4 and 6 on OKX: acks without `id` name their streams; two `bbo-tbt` updates of one
/// millisecond without `seqId` are both delivered (a second copy of one is not); every
/// `funding-rate` without `ts` is delivered.
#[test]
fn okx_messages_without_numbers_are_delivered_and_acks_without_id_subscribe() {
    let t0 = Instant::now();
    let streams = ["bbo-tbt:BTC-USDT", "funding-rate:BTC-USDT-SWAP"];
    let (mut core, _) = feed_on(Venue::Okx, &["127.0.0.1"], &streams);
    let mut sink = Recorded::default();
    let (s, _) = connect(&mut core, &mut sink, t0);
    let t = t0 + 2 * MS;
    for (channel, inst) in [("funding-rate", "BTC-USDT-SWAP"), ("bbo-tbt", "BTC-USDT")] {
        assert!(
            sink.health.is_empty(),
            "not before every stream is acknowledged"
        );
        feed_text(
            &mut core,
            &mut sink,
            s,
            &format!(
                r#"{{"event":"subscribe","arg":{{"channel":"{channel}","instId":"{inst}"}},"connId":"c"}}"#
            ),
            t,
        );
    }
    assert_eq!(sink.health, [Health::Connected { conn: 1 }], "acknowledged");
    let bbo = |bid: &str| {
        format!(
            r#"{{"arg":{{"channel":"bbo-tbt","instId":"BTC-USDT"}},"data":[{{"asks":[["101","1","0","1"]],"bids":[["{bid}","2","0","1"]],"ts":"1700000000000"}}]}}"#
        )
    };
    for f in [bbo("100"), bbo("100.5"), bbo("100.5")] {
        feed_text(&mut core, &mut sink, s, &f, t);
    }
    assert_eq!(
        quotes(&sink),
        [(100.0, 2.0, 101.0, 1.0), (100.5, 2.0, 101.0, 1.0)],
        "same millisecond kept, the copy dropped"
    );
    let funding = r#"{"arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"data":[{"fundingRate":"0.0001","fundingTime":"1700726400000","instId":"BTC-USDT-SWAP"}]}"#;
    for _ in 0..300 {
        feed_text(&mut core, &mut sink, s, funding, t);
    }
    let marks = sink
        .ticks
        .iter()
        .filter(|t| matches!(t.data, TickData::Mark { funding_rate, .. } if funding_rate == 0.0001))
        .count();
    assert_eq!(marks, 300, "every message without a number delivered");
}
