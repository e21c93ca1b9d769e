//! Venues defined in config, spoken from their definitions: every message the
//! simulator builds parses back through the engine's codec of the same
//! definition (the shipped Paradex and Hyperliquid definitions and a test
//! venue with `+1` numbering, microsecond times and a ping of its own), and a
//! client subscribes, is acknowledged, refused, answered and pinged as the
//! definition says.

use std::sync::Arc;

use super::*;
use crate::sim::defined as wire;
use crate::sim::market::Market;
use crate::tick::TickData;
use crate::venue::defined::spec::VenueSpec;
use crate::venue::defined::Defined;
use crate::venue::{Frame, Seq, StreamKey, Venue};

/// The definition in `path` (from the crate's root), loaded.
fn load(path: &str) -> Venue {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    let spec: VenueSpec = toml::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"));
    Defined::load(&spec).unwrap_or_else(|e| panic!("{full}: {e}"))
}

const PARADEX: &str = "configs/venues/paradex.toml";
const HYPERLIQUID: &str = "configs/venues/hyperliquid.toml";
const TEST_VENUE: &str = "src/sim/tests/defined_venue.toml";

/// A fast simulator speaking `venue`, BTCUSDT and ETHUSDT named `names`.
fn defined_cfg(venue: Venue, names: [&str; 2]) -> SimConfig {
    SimConfig {
        venue: SimVenue::Defined(venue),
        venue_symbols: names.iter().map(|s| s.to_string()).collect(),
        server_ping_interval: Duration::from_millis(100),
        ..venue_cfg(SimVenue::Defined(venue))
    }
}

/// The stream a key names, as configured.
fn key_name(key: &StreamKey<'_>) -> String {
    match key.inst {
        "" => key.topic.to_string(),
        inst => format!("{}{}{inst}", key.topic, char::from(key.sep)),
    }
}

/// One parsed data message: its stream key as text, and its ticks.
fn parse(venue: Venue, text: &str) -> (String, Vec<(Seq, u64, TickData)>) {
    let Ok(Frame::Data { stream, data }) = venue.classify(text) else {
        panic!("not data: {text}");
    };
    let name = key_name(&stream);
    let def = venue.parse_stream(&name).expect("a stream of the venue");
    let mut ticks = Vec::new();
    venue
        .parse_data(def.kind, data, &mut |seq, ms, tick| {
            ticks.push((seq, ms, tick))
        })
        .unwrap_or_else(|e| panic!("{text}: {e:?}"));
    (name, ticks)
}

/// One binary data frame parsed, as [`parse`] parses text.
fn parse_binary(venue: Venue, frame: &[u8]) -> (String, Vec<(Seq, u64, TickData)>) {
    let Ok(Frame::Binary { stream, data }) = venue.classify_binary(frame) else {
        panic!("not binary data: {frame:?}");
    };
    let name = key_name(&stream);
    let def = venue.parse_stream(&name).expect("a stream of the venue");
    let mut ticks = Vec::new();
    venue
        .parse_binary(def.kind, data, &mut |seq, ms, tick| {
            ticks.push((seq, ms, tick))
        })
        .unwrap_or_else(|e| panic!("{frame:?}: {e:?}"));
    (name, ticks)
}

/// A market event parsed back; with the definition's `binary`, its binary frame is what the
/// venue sends, and it must read exactly as its JSON form does.
fn parse_event(
    venue: Venue,
    ev: &super::super::market::Event,
) -> (String, Vec<(Seq, u64, TickData)>) {
    let json = parse(venue, &ev.payload);
    let binary = wire::spec(venue).binary.is_some();
    assert_eq!(ev.binary.is_some(), binary, "{}", ev.payload);
    if let Some(frame) = &ev.binary {
        let (name, ticks) = parse_binary(venue, frame);
        assert_eq!(name, json.0);
        // Ticks, numbering and times alike (a time-numbered update's id is its time).
        assert_eq!(ticks, json.1, "{}", ev.payload);
    }
    json
}

/// Book changes and trades of one symbol, parsed back: streams, prices,
/// sides, numbering and times as the market made them.
fn round_trip(path: &str, names: [&str; 2], quote: &str, trade: &str) {
    round_trip_of(load(path), names, quote, trade);
}

/// [`round_trip`] of a loaded venue.
fn round_trip_of(venue: Venue, names: [&str; 2], quote: &str, trade: &str) {
    let cfg = defined_cfg(venue, names);
    let info = Arc::new(wire::symbols(&cfg).expect("symbols"));
    let mut market = Market::new(Arc::clone(&info), 9, cfg.venue, false);
    let rule = |tick| {
        wire::spec(venue)
            .channels
            .iter()
            .find(|c| c.tick == tick)
            .map(|c| c.sequence_rule)
            .expect("channel")
    };
    use crate::venue::defined::spec::{SeqSpec, TickKind};
    let mut prev: Option<u64> = None;
    for k in 0..40u64 {
        let e_ms = 1_700_000_000_000 + k;
        let ev = market.book_change(0, e_ms);
        let (name, ticks) = parse_event(venue, &ev);
        assert_eq!(name, quote);
        assert_eq!(ticks.len(), 1);
        let (seq, ms, tick) = ticks[0];
        assert_eq!(ms, e_ms, "{}", ev.payload);
        let m = ev.book.as_deref().expect("book message");
        let scale = 100.0;
        let TickData::Quote { bid, ask, .. } = tick else {
            panic!("not a quote: {tick:?}");
        };
        assert_eq!(bid, m.bids[0].0 as f64 / scale);
        assert_eq!(ask, m.asks[0].0 as f64 / scale);
        match rule(TickKind::Quote) {
            SeqSpec::PlusOne => {
                assert_eq!(seq.id, ev.seq);
                assert_eq!(seq.prev, Some(ev.seq - 1));
                assert!(prev.is_none_or(|p| p + 1 == ev.seq));
            }
            SeqSpec::Increasing => {
                assert_eq!(seq.id, ev.seq);
                assert!(prev.is_none_or(|p| p < ev.seq));
            }
            SeqSpec::None => assert_eq!(seq.id, e_ms),
        }
        prev = Some(ev.seq);
    }
    let (mut buys, mut sells) = (0, 0);
    let mut prev: Option<u64> = None;
    for k in 0..40u64 {
        let e_ms = 1_700_000_001_000 + k;
        let ev = market.trade(0, e_ms);
        let (name, ticks) = parse_event(venue, &ev);
        assert_eq!(name, trade);
        assert!(!ticks.is_empty());
        for (seq, ms, tick) in &ticks {
            assert_eq!(*ms, e_ms);
            let TickData::Trade {
                buyer_is_maker,
                price,
                ..
            } = *tick
            else {
                panic!("not a trade: {tick:?}");
            };
            assert!(price > 1000.0, "{}", ev.payload);
            if buyer_is_maker {
                sells += 1;
            } else {
                buys += 1;
            }
            match rule(TickKind::Trade) {
                SeqSpec::PlusOne => {
                    assert_eq!((seq.id, seq.prev), (ev.seq, ev.prev_seq));
                    assert!(prev.is_none_or(|p| Some(p) == ev.prev_seq));
                }
                SeqSpec::Increasing => assert_eq!(seq.id, ev.seq),
                SeqSpec::None => assert_eq!(seq.id, e_ms),
            }
        }
        prev = Some(ev.seq);
    }
    assert!(buys > 0 && sells > 0, "both sides trade");
}

#[test]
fn paradex_messages_parse_back_through_its_definition() {
    round_trip(
        PARADEX,
        ["BTC-USD-PERP", "ETH-USD-PERP"],
        "bbo.BTC-USD-PERP",
        "trades.BTC-USD-PERP",
    );
}

#[test]
fn hyperliquid_messages_parse_back_through_its_definition() {
    round_trip(HYPERLIQUID, ["BTC", "ETH"], "bbo:BTC", "trades:BTC");
}

#[test]
fn test_venue_messages_parse_back_through_its_definition() {
    round_trip(
        TEST_VENUE,
        ["BTC_USDT", "ETH_USDT"],
        "quote@BTC_USDT",
        "deal@BTC_USDT",
    );
}

#[test]
fn second_times_increasing_quotes_and_unnumbered_single_trades_parse_back() {
    use crate::venue::defined::spec::{SeqSpec, TimeUnit};
    let text = std::fs::read_to_string(format!("{}/{TEST_VENUE}", env!("CARGO_MANIFEST_DIR")))
        .expect("the test venue");
    let mut spec: VenueSpec = toml::from_str(&text).expect("parses");
    spec.name = "simtest-units".into();
    spec.channels[0].time_unit = TimeUnit::S;
    spec.channels[0].sequence_rule = SeqSpec::Increasing;
    spec.channels[1].time_unit = TimeUnit::Ms;
    spec.channels[1].several = false;
    spec.channels[1].sequence = None;
    spec.channels[1].sequence_rule = SeqSpec::None;
    let venue = Defined::load(&spec).expect("compiles");
    round_trip_of(venue, ["B", "E"], "quote@B", "deal@B");
}

/// Reads until a text message satisfies `pred`, answering nothing.
fn read_text(ws: &mut Client, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Text(t))) if pred(t.as_str()) => return t.as_str().to_string(),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("waiting for {what}: {e}"),
            None => panic!("timed out waiting for {what}"),
        }
    }
}

#[test]
fn test_venue_subscribes_acks_refuses_pongs_and_pings() {
    let venue = load(TEST_VENUE);
    let sim = Sim::start(defined_cfg(venue, ["BTC_USDT", "ETH_USDT"])).expect("start");
    assert!(matches!(
        try_connect(&sim, "/elsewhere"),
        Err(Rejected { status: 404, .. })
    ));
    let mut ws = connect(&sim, "/ws/market");
    send(
        &mut ws,
        r#"{"op":"sub","req":5,"args":["quote@BTC_USDT","deal@ETH_USDT","quote@XRP"]}"#,
    );
    let mut acks = Vec::new();
    let mut data = 0;
    let err = read_text(&mut ws, "the error", |t| {
        match venue.classify(t) {
            Ok(Frame::Ack { id, stream }) => acks.push((id, stream.map(|s| s.topic.to_string()))),
            Ok(Frame::Data { .. }) => data += 1,
            _ => {}
        }
        t.contains("error")
    });
    assert_eq!(
        acks,
        [
            (Some(5), Some("quote@BTC_USDT".to_string())),
            (Some(5), Some("deal@ETH_USDT".to_string()))
        ]
    );
    let Ok(Frame::Error { id, code, msg }) = venue.classify(&err) else {
        panic!("not an error: {err}");
    };
    assert_eq!(
        (id, code, msg),
        (Some(5), 400, "unknown stream 'quote@XRP'")
    );
    // Data of both streams, each parsing back.
    let (mut quotes, mut deals) = (0, 0);
    read_text(&mut ws, "data of both streams", |t| {
        if let Ok(Frame::Data { .. }) = venue.classify(t) {
            match parse(venue, t).0.as_str() {
                "quote@BTC_USDT" => quotes += 1,
                "deal@ETH_USDT" => deals += 1,
                other => panic!("unsubscribed stream {other}"),
            }
        }
        quotes >= 3 && deals >= 3
    });
    // The keep-alive is answered; the venue's own ping comes and its answer is counted.
    send(&mut ws, r#"{ "op": "ping" }"#);
    read_text(&mut ws, "the pong", |t| {
        matches!(venue.classify(t), Ok(Frame::Pong))
    });
    let ping = read_text(&mut ws, "the venue's ping", |t| {
        matches!(venue.classify(t), Ok(Frame::ServerPing))
    });
    assert_eq!(ping, r#"{"type":"hello"}"#);
    send(&mut ws, venue.ping_reply().expect("a reply"));
    assert!(sim.wait_until(T, |s| s.pongs_received >= 1 && s.venue_pings == 1));
    // Unsubscribed: acknowledged, and the stream stops.
    send(
        &mut ws,
        r#"{"op":"unsub","req":6,"args":["quote@BTC_USDT"]}"#,
    );
    read_text(&mut ws, "the unsubscribe's answer", |t| {
        matches!(venue.classify(t), Ok(Frame::Ack { id: Some(6), .. }))
    });
    assert!(sim.wait_until(T, |s| s.connections[0].streams == ["deal@ETH_USDT"]));
    // An unknown request is refused, naming it.
    send(&mut ws, r#"{"op":"login"}"#);
    let err = read_text(&mut ws, "the refusal", |t| t.contains("error"));
    assert!(
        err.contains(r#"unknown request: {\"op\":\"login\"}"#),
        "{err}"
    );
}

#[test]
fn unanswered_venue_pings_close_the_connection() {
    let venue = load(TEST_VENUE);
    let sim = Sim::start(defined_cfg(venue, ["BTC_USDT", "ETH_USDT"])).expect("start");
    let mut ws = connect(&sim, "/");
    let deadline = Instant::now() + T;
    let close = loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close frame");
    assert_eq!(frame.code, CloseCode::from(1008));
    assert!(sim.snapshot().pings_sent >= 5);
}

#[test]
fn paradex_and_hyperliquid_acks_are_matched_by_the_engine() {
    let paradex = load(PARADEX);
    let sim = Sim::start(defined_cfg(paradex, ["BTC-USD-PERP", "ETH-USD-PERP"])).expect("start");
    let mut ws = connect(&sim, "/v1");
    let req = paradex
        .custom()
        .expect("custom")
        .subscribe_request(3, &mut ["bbo.ETH-USD-PERP"].into_iter());
    send(&mut ws, &req);
    let ack = read_text(&mut ws, "paradex ack", |t| t.contains("result"));
    assert!(
        matches!(paradex.classify(&ack), Ok(Frame::Ack { id: Some(3), .. })),
        "{ack}"
    );
    send(
        &mut ws,
        r#"{"jsonrpc":"2.0","method":"subscribe","params":{"channel":"bbo.DOGE"},"id":4}"#,
    );
    let err = read_text(&mut ws, "paradex error", |t| t.contains("error"));
    assert!(
        matches!(paradex.classify(&err), Ok(Frame::Error { id: Some(4), .. })),
        "{err}"
    );
    sim.shutdown();

    let hl = load(HYPERLIQUID);
    let sim = Sim::start(defined_cfg(hl, ["BTC", "ETH"])).expect("start");
    let mut ws = connect(&sim, "/ws");
    let req = hl
        .custom()
        .expect("custom")
        .subscribe_request(1, &mut ["trades:ETH"].into_iter());
    send(&mut ws, &req);
    let ack = read_text(&mut ws, "hyperliquid ack", |t| {
        t.contains("subscriptionResponse")
    });
    let Ok(Frame::Ack {
        id: None,
        stream: Some(key),
    }) = hl.classify(&ack)
    else {
        panic!("not an ack: {ack}");
    };
    assert_eq!((key.topic, key.inst), ("trades", "ETH"));
    read_text(&mut ws, "hyperliquid trades", |t| {
        matches!(hl.classify(t), Ok(Frame::Data { .. })) && parse(hl, t).0 == "trades:ETH"
    });
    send(&mut ws, hl.ping_text().expect("a keep-alive"));
    read_text(&mut ws, "hyperliquid pong", |t| {
        matches!(hl.classify(t), Ok(Frame::Pong))
    });
}

#[test]
fn faults_act_on_a_defined_venue_s_connections() {
    let venue = load(TEST_VENUE);
    let sim = Sim::start(defined_cfg(venue, ["BTC_USDT", "ETH_USDT"])).expect("start");
    // A scripted rejection of the upgrade.
    sim.inject(Fault::Http429 {
        count: 1,
        retry_after_s: 3,
    });
    let Err(rejected) = try_connect(&sim, "/ws/market") else {
        panic!("the upgrade was not rejected");
    };
    assert_eq!(
        (rejected.status, rejected.retry_after.as_deref()),
        (429, Some("3"))
    );
    // An ignored subscribe gets no answer; the next one is acknowledged.
    sim.inject(Fault::IgnoreSubscribe { count: 1 });
    let mut ws = connect(&sim, "/ws/market");
    send(&mut ws, r#"{"op":"sub","req":1,"args":["quote@BTC_USDT"]}"#);
    send(
        &mut ws,
        r#"{"op":"sub","req":2,"args":["quote@BTC_USDT","deal@BTC_USDT"]}"#,
    );
    let ack = read_text(&mut ws, "an ack", |t| {
        matches!(venue.classify(t), Ok(Frame::Ack { .. }))
    });
    assert!(
        matches!(venue.classify(&ack), Ok(Frame::Ack { id: Some(2), .. })),
        "{ack}"
    );
    let conn = sim.snapshot().connections[0].id;
    // A muted stream stops while the other goes on; withheld messages (the unmuted stream's
    // only) leave a hole in its +1 chain that the ground truth shows.
    read_text(&mut ws, "quotes", |t| t.contains("quote@BTC_USDT"));
    sim.inject_on(
        conn,
        Fault::Mute {
            stream: "quote@BTC_USDT".into(),
        },
    );
    assert!(sim.wait_until(T, |s| s.connections[0].muted == ["quote@BTC_USDT"]));
    let muted_at = sim.sent_on(conn).len();
    // A trade sent before the drop, so that the hole lies between two sent ones.
    read_text(&mut ws, "a trade", |t| {
        matches!(venue.classify(t), Ok(Frame::Data { .. })) && t.contains("deal@BTC_USDT")
    });
    sim.inject_on(conn, Fault::DropNext { count: 4 });
    assert!(sim.wait_until(T, |s| s.withheld == 4));
    // Trades sent after the withheld ones (the client may still be reading older ones).
    let at_drop = sim.snapshot().messages_sent;
    assert!(sim.wait_until(T, |s| s.messages_sent >= at_drop + 3));
    let sent = sim.sent_on(conn);
    assert!(sent[muted_at..].iter().all(|r| r.stream == "deal@BTC_USDT"));
    let deals: Vec<&SentRecord> = sent
        .iter()
        .filter(|r| r.stream == "deal@BTC_USDT")
        .collect();
    let holes: Vec<(u64, u64)> = deals
        .windows(2)
        .filter(|w| w[1].prev_seq != Some(w[0].seq))
        .map(|w| (w[0].seq + 1, w[1].prev_seq.expect("+1")))
        .collect();
    // Four trade messages withheld in a row: one hole of 4 to 12 trade ids (1..3 a message).
    let chain: Vec<(u64, Option<u64>)> = deals.iter().map(|r| (r.seq, r.prev_seq)).collect();
    assert_eq!(holes.len(), 1, "{holes:?} in {chain:?}");
    let ids = holes[0].1 + 1 - holes[0].0;
    assert!((4..=12).contains(&ids), "{holes:?}");
    // A close with a code.
    sim.inject_on(conn, Fault::Close { code: 4001 });
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::from(4001));
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[test]
fn a_defined_venue_quotes_a_shared_market_beside_a_built_in_one() {
    let hl = load(HYPERLIQUID);
    let shared = SharedMarket::new(["BTCUSDT", "ETHUSDT"], 3);
    let sims = start_group(
        vec![venue_cfg(SimVenue::Okx), defined_cfg(hl, ["BTC", "ETH"])],
        shared.clone(),
    )
    .expect("start group");
    assert_eq!(shared.venues(), 2);
    let mut okx = connect(&sims[0], "/ws/v5/public");
    send(
        &mut okx,
        r#"{"id":"1","op":"subscribe","args":[{"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"}]}"#,
    );
    let mut ws = connect(&sims[1], "/ws");
    send(
        &mut ws,
        r#"{"method":"subscribe","subscription":{"type":"bbo","coin":"BTC"}}"#,
    );
    let okx_bid = |v: &Value| v["data"][0]["bids"][0][0].as_str()?.parse::<f64>().ok();
    let a = okx_bid(&read_until(&mut okx, "an okx quote", |v| {
        okx_bid(v).is_some()
    }))
    .expect("a bid");
    let text = read_text(&mut ws, "a hyperliquid quote", |t| {
        matches!(hl.classify(t), Ok(Frame::Data { .. }))
    });
    let (_, ticks) = parse(hl, &text);
    let TickData::Quote { bid: b, .. } = ticks[0].2 else {
        panic!("not a quote: {text}");
    };
    // Both quote the shared path: within a percent of each other (the shared market's
    // divergence bound is far tighter; the two reads are not simultaneous).
    assert!((a - b).abs() / a < 0.01, "okx {a}, hyperliquid {b}");
}
