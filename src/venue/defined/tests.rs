//! Tests of venues defined in config: the shipped definitions read the venues' documented (or,
//! where the docs have none, captured) messages; definitions with mistakes are refused naming
//! the venue and the field.

use super::spec::VenueSpec;
use super::*;
use crate::venue::Venue;

/// A shipped definition, loaded.
fn shipped(name: &str) -> Venue {
    let path = format!("{}/configs/venues/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let spec: VenueSpec = toml::from_str(&text).unwrap();
    Defined::load(&spec).unwrap()
}

fn fixture(path: &str) -> String {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// Every tick of a data frame, with the message's numbering and each tick's time.
fn ticks(venue: Venue, stream: &str, text: &str) -> Vec<(Seq, u64, TickData)> {
    let def = venue.parse_stream(stream).unwrap();
    let Frame::Data { stream: key, data } = venue.classify(text).unwrap() else {
        panic!("not data: {text}");
    };
    assert!(key.matches(stream), "{key:?} does not name {stream}");
    let mut out = Vec::new();
    venue
        .parse_data(def.kind, data, &mut |seq, t, tick| out.push((seq, t, tick)))
        .unwrap();
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn hyperliquid_reads_its_messages() {
    let v = shipped("hyperliquid");
    assert_eq!(v.name(), "hyperliquid");
    assert_eq!(v.default_base_url(), "wss://api.hyperliquid.xyz/ws");

    let t = ticks(v, "bbo:BTC", &fixture("hyperliquid/bbo.json"));
    let quote = TickData::Quote {
        bid: 69172.0,
        bid_qty: 0.92185,
        ask: 69173.0,
        ask_qty: 9.07775,
    };
    let numbered_by_time = Seq {
        id: 1787195068169,
        prev: None,
    };
    assert_eq!(t, vec![(numbered_by_time, 1787195068169, quote)]);

    let t = ticks(v, "trades:BTC", &fixture("hyperliquid/trades.json"));
    let trade = TickData::Trade {
        price: 72581.0,
        qty: 0.00017,
        buyer_is_maker: false,
    };
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].1, t[0].2), (1787259217020, trade));

    // The docs' ack names the subscription, not a request.
    let ack = fixture("hyperliquid/subscription_response.json");
    assert_eq!(
        v.classify(&ack).unwrap(),
        Frame::Ack {
            id: None,
            stream: Some(StreamKey::pair("trades", "SOL"))
        }
    );
    assert_eq!(
        v.classify(&fixture("hyperliquid/pong.json")).unwrap(),
        Frame::Pong
    );
    let error = fixture("hyperliquid/error.json");
    let Frame::Error { id, code, msg } = v.classify(&error).unwrap() else {
        panic!("not an error");
    };
    assert_eq!((id, code, msg), (None, 0, "Already subscribed: {...}"));

    // The request the engine sends is the docs' own.
    let req = v.subscribe_request(9, ["trades:SOL"].into_iter());
    assert_eq!(
        json(&req),
        json(&fixture("hyperliquid/subscribe_trades.json"))
    );
    assert_eq!(v.ping_text(), Some(r#"{"method":"ping"}"#));
    assert_eq!(v.max_streams_per_request(), 1);
    assert_eq!(v.connect_limit(), (30, Duration::from_secs(60)));
    assert_eq!(v.request_spacing(), Duration::from_millis(100));
}

#[test]
fn hyperliquid_reads_several_trades_and_an_empty_side() {
    let v = shipped("hyperliquid");
    let text = r#"{"channel":"trades","data":[
        {"coin":"ETH","side":"A","px":"3000.5","sz":"1.25","time":1700000000001,"hash":"0x0","tid":7,"users":["a","b"]},
        {"coin":"ETH","side":"B","px":"3000.6","sz":"0.5","time":1700000000002,"hash":"0x0","tid":3,"users":["a","b"]}]}"#;
    let t = ticks(v, "trades:ETH", text);
    // One message, one numbering (its first update's time); each tick has its own time.
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(|(seq, _, _)| seq.id == 1700000000001));
    assert_eq!((t[0].1, t[1].1), (1700000000001, 1700000000002));
    assert_eq!(
        t[0].2,
        TickData::Trade {
            price: 3000.5,
            qty: 1.25,
            buyer_is_maker: true
        }
    );
    let bbo = r#"{"channel":"bbo","data":{"coin":"ETH","time":5,"bbo":[null,{"px":"10","sz":"2","n":1}]}}"#;
    let t = ticks(v, "bbo:ETH", bbo);
    let TickData::Quote {
        bid,
        bid_qty,
        ask,
        ask_qty,
    } = t[0].2
    else {
        panic!("not a quote");
    };
    assert!(bid.is_nan());
    assert_eq!((bid_qty, ask, ask_qty), (0.0, 10.0, 2.0));
    // A data message for a channel the definition does not have is unknown, not an error.
    let other = r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[],[]]}}"#;
    assert_eq!(v.classify(other).unwrap(), Frame::Unknown);
}

#[test]
fn paradex_reads_its_messages() {
    let v = shipped("paradex");
    let t = ticks(v, "bbo.BTC-USD-PERP", &fixture("paradex/bbo.json"));
    let quote = TickData::Quote {
        bid: 67000.0,
        bid_qty: 0.1,
        ask: 67001.0,
        ask_qty: 0.2,
    };
    assert_eq!(
        t,
        vec![(
            Seq {
                id: 153,
                prev: None
            },
            1700000000000,
            quote
        )]
    );
    let def = v.parse_stream("bbo.BTC-USD-PERP").unwrap();
    assert_eq!(
        (def.seq, def.symbol.as_str()),
        (SeqRule::Ids, "BTC-USD-PERP")
    );

    // ccxt's example is of the all-markets channel, `trades.ALL`.
    let t = ticks(v, "trades.ALL", &fixture("paradex/trades.json"));
    let trade = TickData::Trade {
        price: 0.028776,
        qty: 34028.0,
        buyer_is_maker: false,
    };
    assert_eq!(
        t,
        vec![(
            Seq {
                id: 1718179273230,
                prev: None
            },
            1718179273230,
            trade
        )]
    );

    let ack = fixture("paradex/subscribe_ack.json");
    assert_eq!(
        v.classify(&ack).unwrap(),
        Frame::Ack {
            id: Some(1),
            stream: Some(StreamKey::name("CHANNEL_NAME"))
        }
    );
    let err = fixture("paradex/error_subscription.json");
    assert_eq!(
        v.classify(&err).unwrap(),
        Frame::Error {
            id: Some(1),
            code: -32602,
            msg: "Invalid parameters"
        }
    );
    let req = v.subscribe_request(1, ["CHANNEL_NAME"].into_iter());
    assert_eq!(json(&req), json(&fixture("paradex/subscribe_request.json")));
    // No application ping: the venue pings with WebSocket frames.
    assert_eq!((v.ping_text(), v.keepalive()), (None, None));
}

/// A definition in the test's own words, with top-level `extra` settings.
fn spec(extra: &str) -> VenueSpec {
    toml::from_str(&format!("{extra}\n{SPEC_TEXT}")).unwrap()
}

const SPEC_TEXT: &str = r#"
name = "testx"
url = "ws://127.0.0.1:1/feed"
stream_name = "{channel}/{symbol}"
subscribe = '{"op":"sub","args":{streams},"id":{id}}'
max_streams_per_request = 3
[data]
when = { pointer = "/type", equals = "update" }
stream = "/topic"
[ack]
when = { pointer = "/ok", equals = true }
id = "/id"
[error]
when = { pointer = "/ok", equals = false }
id = "/id"
code = "/code"
message = "/msg"
[server_ping]
when = { pointer = "/type", equals = "ping" }
reply = '{"type":"pong"}'
[[channels]]
name = "t"
tick = "trade"
payload = "/d"
several = true
price = "/p"
size = "/q"
side = "/s"
buy = "buy"
sell = "sell"
sequence = "/n"
sequence_rule = "+1"
time = "/ts"
time_unit = "us"
"#;

#[test]
fn a_definition_of_numbered_updates_reads_them_as_one_chained_message() {
    let v = Defined::load(&spec("")).unwrap();
    let req = v.subscribe_request(4, ["t/A", "t/B"].into_iter());
    assert_eq!(
        json(&req),
        json(r#"{"op":"sub","args":["t/A","t/B"],"id":4}"#)
    );
    assert_eq!(v.max_streams_per_request(), 3);
    let text = r#"{"type":"update","topic":"t/A","d":[
        {"p":"1.5","q":2,"s":"buy","n":"41","ts":1700000000000123},
        {"p":1.25,"q":"3","s":"sell","n":42,"ts":1700000000001999}]}"#;
    let t = ticks(v, "t/A", text);
    let chained = Seq {
        id: 42,
        prev: Some(40),
    };
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(|(seq, _, _)| *seq == chained));
    assert_eq!((t[0].1, t[1].1), (1700000000000, 1700000000001));
    assert_eq!(
        t[1].2,
        TickData::Trade {
            price: 1.25,
            qty: 3.0,
            buyer_is_maker: true
        }
    );
    assert_eq!(v.parse_stream("t/A").unwrap().seq, SeqRule::Chained);
    assert_eq!(v.classify(r#"{"type":"ping"}"#).unwrap(), Frame::ServerPing);
    assert_eq!(v.ping_reply(), Some(r#"{"type":"pong"}"#));
    assert_eq!(
        v.classify(r#"{"ok":true,"id":"4"}"#).unwrap(),
        Frame::Ack {
            id: Some(4),
            stream: None
        }
    );
    assert_eq!(
        v.classify(r#"{"ok":false,"id":4,"code":"17","msg":"no \"x\""}"#)
            .unwrap(),
        Frame::Error {
            id: Some(4),
            code: 17,
            msg: r#"no \"x\""#
        }
    );
    // A data message whose `when` does not hold, or of no channel, is unknown.
    assert_eq!(
        v.classify(r#"{"type":"other","topic":"t/A","d":[]}"#)
            .unwrap(),
        Frame::Unknown
    );
    assert_eq!(
        v.classify(r#"{"type":"update","topic":"u/A","d":[]}"#)
            .unwrap(),
        Frame::Unknown
    );
}

#[test]
fn bad_messages_are_errors_that_name_the_field() {
    let v = Defined::load(&spec("")).unwrap();
    let def = v.parse_stream("t/A").unwrap();
    let bad = [
        (
            r#"{"type":"update","topic":"t/A","d":[{"p":"x","q":2,"s":"buy","n":1,"ts":1}]}"#,
            "price",
        ),
        (
            r#"{"type":"update","topic":"t/A","d":[{"p":"1","q":2,"s":"hold","n":1,"ts":1}]}"#,
            "side",
        ),
        (
            r#"{"type":"update","topic":"t/A","d":[{"p":"1","q":2,"s":"buy","ts":1}]}"#,
            "sequence",
        ),
        (r#"{"type":"update","topic":"t/A","d":{"p":"1"}}"#, "'['"),
        (r#"{"type":"update","topic":"t/A"}"#, "payload"),
    ];
    for (text, what) in bad {
        let e = match v.classify(text) {
            Err(e) => e,
            Ok(Frame::Data { data, .. }) => {
                v.parse_data(def.kind, data, &mut |_, _, _| {}).unwrap_err()
            }
            Ok(other) => panic!("{text}: {other:?}"),
        };
        assert!(e.to_string().contains(what), "{text}: {e}");
    }
    // Not JSON, or JSON with something after it.
    assert!(v.classify(r#"{"type":"update""#).is_err());
    assert!(v.classify(r#"{"type":"ping"} x"#).is_err());
}

#[test]
fn definition_mistakes_name_the_venue_and_the_field() {
    let cases: [(&str, &str, &str); 14] = [
        (
            "stream_name = \"{channel}/{symbol}\"",
            "stream_name = \"{symbol}/{channel}\"\nbinary = \"paradex-sbe\"",
            "venue 'testx': stream_name: must be '{channel}.{symbol}'",
        ),
        (
            "stream_name = \"{channel}/{symbol}\"",
            "stream_name = \"{channel}/{symbol}\"\nbinary = \"paradex-sbe\"",
            "venue 'testx': channels[0] ('t').several: cannot be set with binary",
        ),
        (
            "name = \"testx\"",
            "name = \"okx\"",
            "venue 'okx': name: is a built-in venue",
        ),
        (
            "name = \"testx\"",
            "name = \"Big X\"",
            "venue name 'Big X' must be",
        ),
        (
            "url = \"ws://127.0.0.1:1/feed\"",
            "url = \"http://x\"",
            "venue 'testx': url: 'http://x' must start with ws://",
        ),
        (
            "stream = \"/topic\"",
            "stream = \"topic\"",
            "venue 'testx': data.stream: JSON pointer 'topic' must be empty or start with '/'",
        ),
        (
            "stream = \"/topic\"",
            "stream = \"/topic\"\nchannel = \"/c\"",
            "venue 'testx': data: give exactly one of",
        ),
        (
            "stream_name = \"{channel}/{symbol}\"",
            "stream_name = \"{symbol}\"",
            "venue 'testx': stream_name: '{symbol}' must hold {channel} and {symbol} once each",
        ),
        (
            "subscribe = '{\"op\":\"sub\",\"args\":{streams},\"id\":{id}}'",
            "subscribe = '{\"op\":\"sub\",\"args\":{streams},\"id\":{id}'",
            "venue 'testx': subscribe: ",
        ),
        (
            "price = \"/p\"",
            "",
            "venue 'testx': channels[0] ('t').price: is required for this tick kind",
        ),
        (
            "sell = \"sell\"",
            "sell = \"buy\"",
            "venue 'testx': channels[0] ('t').sell: equals 'buy'",
        ),
        (
            "sequence = \"/n\"",
            "",
            "venue 'testx': channels[0] ('t').sequence: is required with sequence_rule \"+1\"",
        ),
        (
            "time_unit = \"us\"",
            "time_unit = \"us\"\nbid_price = \"/b\"",
            "channels[0] ('t').bid_price: does not belong to a Trade channel",
        ),
        (
            "when = { pointer = \"/ok\", equals = true }",
            "when = { pointer = \"/ok\", equals = [1] }",
            "venue 'testx': ack.when[0].equals: array is not a string, a number or a boolean",
        ),
    ];
    for (old, new, want) in cases {
        refused(old, new, want);
    }
    // Paradex's binary frames carry their number in `seq_no`, and name their channel `trades`
    // (or `bbo`).
    let text = format!(
        "binary = \"paradex-sbe\"\n{}",
        SPEC_TEXT.replacen("several = true", "several = false", 1)
    );
    let e = Defined::load(&toml::from_str(&text).unwrap()).unwrap_err();
    let want = "venue 'testx': channels[0] ('t').sequence: must be '/seq_no' with binary";
    assert!(e.contains(want), "got '{e}'");
    let text = text.replacen("sequence = \"/n\"", "sequence = \"/seq_no\"", 1);
    let e = Defined::load(&toml::from_str(&text).unwrap()).unwrap_err();
    let want =
        "venue 'testx': channels[0] ('t').name: must be 'trades' with binary = 'paradex-sbe'";
    assert!(e.contains(want), "got '{e}'");
}

#[test]
fn the_same_definition_is_one_venue_and_another_of_that_name_is_another() {
    let a = Defined::load(&spec("")).unwrap();
    let b = Defined::load(&spec("")).unwrap();
    assert_eq!(a, b);
    let c = Defined::load(&spec("max_streams_per_connection = 7")).unwrap();
    assert_ne!(a, c);
    assert_eq!(c.max_streams_per_connection(), 7);
    assert_eq!(Defined::of(c).unwrap().spec().max_streams_per_connection, 7);
    // A defined venue is not a registered one: names are found through the config.
    assert_eq!(Venue::from_name("testx"), None);
    assert_eq!(find(&[a], "testx"), Some(a));
    assert_eq!(find(&[a], "okx"), Some(Venue::Okx));
    assert!(names(&[a]).ends_with(", testx"));
    let e = load_all(&[spec(""), spec("connect_limit = 2")]).unwrap_err();
    assert!(e.contains("venue 'testx' is defined twice"), "{e}");
}

#[test]
fn vest_reads_its_messages() {
    let v = shipped("vest");
    let t = ticks(v, "DOGE-PERP@depth", &fixture("vest/depth.json"));
    let quote = TickData::Quote {
        bid: 0.102,
        bid_qty: 1234.0,
        ask: 0.103,
        ask_qty: 1234.0,
    };
    // No time, no number: unnumbered, delivered as it comes.
    assert_eq!(t, vec![(Seq::UNNUMBERED, 0, quote)]);
    let def = v.parse_stream("BTC-PERP@depth").unwrap();
    assert_eq!(
        (def.symbol.as_str(), def.channel.as_str()),
        ("BTC-PERP", "depth")
    );
    assert!(v.parse_stream("depth@BTC-PERP").is_err());
    assert_eq!(v.classify(&fixture("vest/pong.json")).unwrap(), Frame::Pong);
    assert_eq!(
        v.classify(r#"{"result": null, "id": 3}"#).unwrap(),
        Frame::Ack {
            id: Some(3),
            stream: None
        }
    );
    // Trades are not defined: known as data of a stream not subscribed, never a tick.
    let trades = fixture("vest/trades.json");
    assert!(matches!(v.classify(&trades).unwrap(), Frame::Unknown));
    let req = v.subscribe_request(1, ["BTC-PERP@depth", "ETH-PERP@depth"].into_iter());
    assert_eq!(
        json(&req),
        json(r#"{"method":"SUBSCRIBE","params":["BTC-PERP@depth","ETH-PERP@depth"],"id":1}"#)
    );
    let ping: serde_json::Value = json(&fixture("vest/ping.json"));
    assert_eq!(json(v.ping_text().unwrap()), ping);
    assert_eq!(v.keepalive(), Some(Duration::from_secs(20)));
    // The URL's query stays on it.
    assert!(v
        .default_base_url()
        .ends_with("?version=1.0&xwebsocketserver=restserver0"));
}

/// From the review: updates listed newest first, a channel name holding the separator, an ack
/// by id that the request cannot carry.
#[test]
fn numbering_is_lowest_to_highest_and_ambiguous_definitions_are_refused() {
    let v = Defined::load(&spec("")).unwrap();
    let text = r#"{"type":"update","topic":"t/A","d":[
        {"p":"1","q":1,"s":"buy","n":7,"ts":1},{"p":"1","q":1,"s":"buy","n":6,"ts":1},
        {"p":"1","q":1,"s":"buy","n":5,"ts":1}]}"#;
    let t = ticks(v, "t/A", text);
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|(seq, _, _)| *seq
        == Seq {
            id: 7,
            prev: Some(4)
        }));
    let cases = [
        (
            "name = \"t\"",
            "name = \"t/x\"",
            "channels[0] ('t/x').name: holds '/'",
        ),
        (
            ",\"id\":{id}}'",
            "}'",
            "ack.id: the ack is matched by the request id, but subscribe sends none",
        ),
    ];
    for (old, new, want) in cases {
        refused(old, new, want);
    }
}

/// The test definition with `old` written `new` is refused with an error holding `want`.
fn refused(old: &str, new: &str, want: &str) {
    let text = SPEC_TEXT.replacen(old, new, 1);
    assert_ne!(text, SPEC_TEXT, "{old} not found");
    let spec: VenueSpec = toml::from_str(&text).unwrap();
    let e = Defined::load(&spec).unwrap_err();
    assert!(e.contains(want), "{new}: got '{e}', want '{want}'");
}
