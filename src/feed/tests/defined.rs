//! A venue defined in config through the feed's logic: subscribed with its template, acked by
//! its ack, its server pings answered, pinged with its own message, and a jump in a `+1` numbered
//! stream reported as a gap naming exactly the ids missed.

use std::time::Instant;

use super::{actions, feed_on, text, Recorded, MS};
use crate::feed::action::{Action, Outgoing, SessionId};
use crate::feed::core::Input;
use crate::tick::{Health, TickData};
use crate::venue::defined::Defined;

const DEFINITION: &str = r#"
name = "feedtest"
url = "ws://127.0.0.1:9443/v1"
stream_name = "{channel}.{symbol}"
subscribe = '{"op":"sub","ch":"{stream}","id":{id}}'
[data]
stream = "/ch"
[ack]
when = { pointer = "/ok", equals = true }
id = "/id"
[server_ping]
when = { pointer = "/op", equals = "ping" }
reply = '{"op":"pong"}'
[keepalive]
message = '{"op":"hello"}'
interval_ms = 15000
[[channels]]
name = "trades"
tick = "trade"
payload = "/d"
several = true
price = "/p"
size = "/q"
side = "/s"
buy = "b"
sell = "s"
sequence = "/n"
sequence_rule = "+1"
time = "/t"
"#;

fn trades(ids: &[u64]) -> String {
    let items: Vec<String> = ids
        .iter()
        .map(|n| {
            format!(
                r#"{{"p":"10.5","q":"2","s":"s","n":{n},"t":{}}}"#,
                1_700_000_000_000 + n
            )
        })
        .collect();
    format!(r#"{{"ch":"trades.X-1","d":[{}]}}"#, items.join(","))
}

#[test]
fn a_defined_venue_subscribes_answers_pings_and_reports_a_jump_exactly() {
    let venue = Defined::load(&toml::from_str(DEFINITION).unwrap()).unwrap();
    let (mut core, _) = feed_on(venue, &["127.0.0.1"], &["trades.X-1"]);
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    core.handle_timeout(t0, &mut sink);
    let _ = actions(&mut core);
    let s = SessionId(1);
    core.on_connected(s, t0);
    core.on_open(s, t0, &mut sink);
    let sent = actions(&mut core);
    let [Action::Send {
        msg: Outgoing::Text(req),
        ..
    }] = sent.as_slice()
    else {
        panic!("one subscribe request expected: {sent:?}");
    };
    let req: serde_json::Value = serde_json::from_str(req).unwrap();
    assert_eq!(
        (req["op"].as_str(), req["ch"].as_str()),
        (Some("sub"), Some("trades.X-1"))
    );
    let ack = text(&format!(r#"{{"ok":true,"id":{}}}"#, req["id"]));
    assert!(core.on_message(s, Input::Text(&ack), 0, t0, &mut sink));
    assert_eq!(sink.health, [Health::Connected { conn: 1 }]);

    // The venue's ping is answered with the definition's reply.
    let ping = text(r#"{"op":"ping"}"#);
    assert!(core.on_message(s, Input::Text(&ping), 0, t0 + MS, &mut sink));
    let sent = actions(&mut core);
    assert!(
        sent.iter().any(
            |a| matches!(a, Action::Send { session, msg: Outgoing::Static(r) }
            if *session == s && *r == r#"{"op":"pong"}"#)
        ),
        "{sent:?}"
    );

    // 1..=3 in two messages, then 7..=8: ids 4 to 6 were never sent.
    for (ids, at) in [(&[1, 2][..], 2), (&[3][..], 3), (&[7, 8][..], 4)] {
        let frame = text(&trades(ids));
        assert!(core.on_message(s, Input::Text(&frame), 0, t0 + at * MS, &mut sink));
    }
    core.handle_timeout(t0 + 40 * MS, &mut sink);
    let seqs: Vec<u64> = sink.ticks.iter().map(|t| t.seq).collect();
    assert_eq!(
        seqs,
        [2, 2, 3, 8, 8],
        "each message numbered by its last id"
    );
    assert!(sink.ticks.iter().all(|t| t.data
        == TickData::Trade {
            price: 10.5,
            qty: 2.0,
            buyer_is_maker: true
        }));
    assert!(
        sink.health.contains(&Health::Gap {
            stream: 0,
            from_seq: 4,
            to_seq: 6
        }),
        "{:?}",
        sink.health
    );

    // A quiet connection is pinged with the definition's message, not a WebSocket ping.
    let _ = actions(&mut core);
    core.handle_timeout(t0 + 15_001 * MS, &mut sink);
    let sent = actions(&mut core);
    assert!(
        sent.iter().any(
            |a| matches!(a, Action::Send { msg: Outgoing::Static(r), .. }
            if *r == r#"{"op":"hello"}"#)
        ),
        "{sent:?}"
    );
}
