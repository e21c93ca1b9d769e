//! Bybit v5: subscriptions, snapshots and deltas, trades and tickers as the
//! documentation shows them, the venue's rejections, ping and idle close.

use super::*;

#[test]
fn bybit_linear_subscribe_snapshot_deltas_trades_tickers_match_the_docs() {
    let sim = Sim::start(venue_cfg(SimVenue::BybitLinear)).expect("start");
    assert!(matches!(
        try_connect(&sim, "/v5/public/spot"),
        Err(Rejected { status: 404, .. })
    ));
    let mut ws = connect(&sim, "/v5/public/linear");
    send(
        &mut ws,
        r#"{"op":"subscribe","req_id":"r1","args":["orderbook.50.BTCUSDT","orderbook.1.BTCUSDT","publicTrade.BTCUSDT","tickers.BTCUSDT"]}"#,
    );
    let ack = next_json(&mut ws, "ack");
    assert_eq!(
        keys(&ack),
        keys(&fixture("bybit/subscribe_success_linear.json"))
    );
    assert_eq!(ack["success"], true);
    assert_eq!(ack["ret_msg"], "");
    assert_eq!(ack["req_id"], "r1");
    assert_eq!(ack["op"], "subscribe");
    let conn_id = ack["conn_id"].as_str().expect("conn_id").to_string();
    assert_eq!(conn_id.len(), 36);

    let topic = |v: &Value| v["topic"].as_str().unwrap_or("").to_string();
    let count = |all: &[Value], t: &str, ty: &str| {
        all.iter()
            .filter(|v| topic(v) == t && v["type"] == ty)
            .count()
    };
    let all = collect(&mut ws, "bybit data", |all| {
        count(all, "orderbook.50.BTCUSDT", "delta") >= 5
            && count(all, "orderbook.1.BTCUSDT", "snapshot") >= 5
            && count(all, "publicTrade.BTCUSDT", "snapshot") >= 3
            && count(all, "tickers.BTCUSDT", "delta") >= 2
    });

    // orderbook.50: snapshot first, then deltas with consecutive u.
    let ob50: Vec<&Value> = all
        .iter()
        .filter(|v| topic(v) == "orderbook.50.BTCUSDT")
        .collect();
    assert_eq!(ob50[0]["type"], "snapshot");
    let snap_fx = fixture("bybit/orderbook_50_snapshot.json");
    let delta_fx = fixture("bybit/orderbook_50_delta.json");
    assert_eq!(keys(ob50[0]), keys(&snap_fx));
    assert_eq!(data_keys(ob50[0]), data_keys(&snap_fx));
    let mut book = Local::default();
    book.apply(&ob50[0]["data"]["b"], &ob50[0]["data"]["a"]);
    assert!(
        book.bids.len() >= 30 && book.bids.len() <= 50,
        "{}",
        book.bids.len()
    );
    let mut u = ob50[0]["data"]["u"].as_u64().expect("u");
    for d in &ob50[1..] {
        assert_eq!(d["type"], "delta");
        assert_eq!(keys(d), keys(&delta_fx));
        assert_eq!(data_keys(d), data_keys(&delta_fx));
        assert_eq!(d["data"]["s"], "BTCUSDT");
        let du = d["data"]["u"].as_u64().expect("u");
        assert_eq!(du, u + 1, "deltas are consecutive");
        u = du;
        assert!(d["cts"].as_u64().expect("cts") <= d["ts"].as_u64().expect("ts"));
        book.apply(&d["data"]["b"], &d["data"]["a"]);
        assert!(!book.crossed());
    }
    // orderbook.1: snapshots only, one level, consecutive u.
    let ob1: Vec<&Value> = all
        .iter()
        .filter(|v| topic(v) == "orderbook.1.BTCUSDT")
        .collect();
    for w in ob1.windows(2) {
        assert_eq!(w[0]["type"], "snapshot");
        assert_eq!(
            w[1]["data"]["u"].as_u64(),
            w[0]["data"]["u"].as_u64().map(|u| u + 1)
        );
        assert_eq!(w[1]["data"]["b"].as_array().map(Vec::len), Some(1));
        assert!(
            units(w[1]["data"]["b"][0][0].as_str().expect("b"))
                < units(w[1]["data"]["a"][0][0].as_str().expect("a"))
        );
    }
    assert_eq!(data_keys(ob1[0]), data_keys(&snap_fx));
    // publicTrade: the documented fields, a UUID trade id on linear.
    let trade = all
        .iter()
        .find(|v| topic(v) == "publicTrade.BTCUSDT")
        .expect("trade");
    let trade_fx = fixture("bybit/public_trade.json");
    assert_eq!(keys(trade), keys(&trade_fx));
    assert_eq!(data_keys(trade), data_keys(&trade_fx));
    assert_eq!(trade["data"][0]["i"].as_str().map(str::len), Some(36));
    // tickers: a full snapshot, then deltas with a subset of its fields.
    let tickers: Vec<&Value> = all
        .iter()
        .filter(|v| topic(v) == "tickers.BTCUSDT")
        .collect();
    let tick_fx = fixture("bybit/tickers_linear.json");
    assert_eq!(tickers[0]["type"], "snapshot");
    assert_eq!(keys(tickers[0]), keys(&tick_fx));
    assert_eq!(data_keys(tickers[0]), data_keys(&tick_fx));
    for t in &tickers[1..] {
        assert_eq!(t["type"], "delta");
        let k = data_keys(t);
        assert!(k.is_subset(&data_keys(&tick_fx)), "{k:?}");
        for f in ["markPrice", "indexPrice", "fundingRate", "nextFundingTime"] {
            assert!(k.contains(f), "{f} in {k:?}");
        }
        assert!(t["data"]["fundingRate"]
            .as_str()
            .and_then(|r| r.parse::<f64>().ok())
            .is_some());
    }

    // Ground truth: the snapshot is recorded with the venue's u.
    let truth = sim.sent_on(ConnId(1));
    let first = truth
        .iter()
        .find(|r| r.stream == "orderbook.50.BTCUSDT")
        .expect("ob50 record");
    assert_eq!(first.kind, SentKind::BookSnapshot);
    assert_eq!(Some(first.seq), ob50[0]["data"]["u"].as_u64());
    assert!(truth
        .iter()
        .filter(|r| r.stream == "orderbook.50.BTCUSDT")
        .skip(1)
        .all(|r| r.kind == SentKind::BookUpdate && r.prev_seq.is_none()));
    assert!(truth.iter().any(|r| r.kind == SentKind::Trade));
    let snap = sim.snapshot();
    assert_eq!(snap.subscribe_requests, 1);
    assert_eq!(
        snap.conn(ConnId(1)).map(|c| c.streams.len()),
        Some(4),
        "{:?}",
        snap.conn(ConnId(1))
    );
}

#[test]
fn bybit_spot_rejects_like_the_venue() {
    let sim = Sim::start(venue_cfg(SimVenue::BybitSpot)).expect("start");
    let mut ws = connect(&sim, "/v5/public/spot");
    // More than 10 args in one request.
    let args: Vec<String> = (0..11)
        .map(|_| "\"publicTrade.BTCUSDT\"".to_string())
        .collect();
    send(
        &mut ws,
        &format!(r#"{{"op":"subscribe","args":[{}]}}"#, args.join(",")),
    );
    let err = next_json(&mut ws, "args size");
    assert_eq!(
        keys(&err),
        keys(&fixture("bybit/subscribe_failure_args_size.json"))
    );
    assert_eq!(err["success"], false);
    assert_eq!(err["ret_msg"], "args size >10");
    // An unknown topic fails the whole request.
    send(
        &mut ws,
        r#"{"op":"subscribe","req_id":"x","args":["publicTrade.BTCUSDT","orderbook.500.BTCUSDT"]}"#,
    );
    let err = next_json(&mut ws, "unknown topic");
    assert_eq!(err["success"], false);
    assert_eq!(
        err["ret_msg"],
        "error:handler not found,topic:orderbook.500.BTCUSDT"
    );
    assert_eq!(err["req_id"], "x");
    assert!(sim.snapshot().connections[0].streams.is_empty());
    // Spot success: ret_msg "subscribe", the req_id echoed.
    send(
        &mut ws,
        r#"{"op":"subscribe","req_id":"10001","args":["publicTrade.BTCUSDT","tickers.ETHUSDT"]}"#,
    );
    let ok = next_json(&mut ws, "ack");
    assert_eq!(
        keys(&ok),
        keys(&fixture("bybit/subscribe_success_spot.json"))
    );
    assert_eq!(
        (ok["success"].clone(), ok["ret_msg"].clone()),
        (Value::Bool(true), Value::from("subscribe"))
    );
    // Subscribing again to a live topic is an error.
    send(
        &mut ws,
        r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"]}"#,
    );
    let all = collect(&mut ws, "dup", |all| {
        all.iter()
            .any(|v| v.get("success") == Some(&Value::Bool(false)))
            && all
                .iter()
                .filter(|v| v["topic"] == "tickers.ETHUSDT")
                .count()
                >= 2
            && all.iter().any(|v| v["topic"] == "publicTrade.BTCUSDT")
    });
    let dup = all
        .iter()
        .find(|v| v.get("success").is_some())
        .expect("dup reply");
    assert_eq!(
        dup["ret_msg"],
        "error:already subscribed,topic:publicTrade.BTCUSDT"
    );
    assert!(
        dup.get("req_id").is_none(),
        "spot without req_id: none back"
    );
    // Spot tickers are snapshots with the documented spot fields; spot trades
    // have no tick direction and a numeric id.
    let tick = all
        .iter()
        .find(|v| v["topic"] == "tickers.ETHUSDT")
        .expect("ticker");
    let fx = fixture("bybit/tickers_spot.json");
    assert_eq!((keys(tick), data_keys(tick)), (keys(&fx), data_keys(&fx)));
    assert!(all
        .iter()
        .filter(|v| v["topic"] == "tickers.ETHUSDT")
        .all(|v| v["type"] == "snapshot"));
    let trade = all
        .iter()
        .find(|v| v["topic"] == "publicTrade.BTCUSDT")
        .expect("trade");
    let mut fx_keys = data_keys(&fixture("bybit/public_trade.json"));
    fx_keys.remove("L");
    assert_eq!(data_keys(trade), fx_keys);
    assert!(trade["data"][0]["i"]
        .as_str()
        .expect("i")
        .parse::<u64>()
        .is_ok());
    // Unsubscribe, unknown op, not JSON.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":["publicTrade.BTCUSDT"]}"#,
    );
    let un = collect(&mut ws, "unsub", |all| {
        all.iter().any(|v| v["op"] == "unsubscribe")
    });
    assert_eq!(
        un.last().map(|v| v["success"].clone()),
        Some(Value::Bool(true))
    );
    send(&mut ws, r#"{"op":"fly"}"#);
    let bad = collect(&mut ws, "bad op", |all| {
        all.iter().any(|v| v["op"] == "fly")
    });
    assert_eq!(
        bad.last().map(|v| v["success"].clone()),
        Some(Value::Bool(false))
    );
    send(&mut ws, "{nope");
    let bad = collect(&mut ws, "bad json", |all| all.iter().any(|v| v["op"] == ""));
    assert_eq!(
        bad.last().map(|v| v["success"].clone()),
        Some(Value::Bool(false))
    );
    assert!(sim.wait_until(T, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.streams == ["tickers.ETHUSDT"])));
    assert_eq!(sim.snapshot().subscribe_requests, 4);
}

#[test]
fn bybit_ping_pong_and_idle_close() {
    let sim = Sim::start(SimConfig {
        idle_timeout: Some(Duration::from_millis(600)),
        ..venue_cfg(SimVenue::BybitLinear)
    })
    .expect("start");
    let mut alive = connect(&sim, "/v5/public/linear");
    let t0 = Instant::now();
    let mut silent = connect(&sim, "/v5/public/linear");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    send(&mut alive, r#"{"op":"ping","req_id":"100001"}"#);
    let pong = next_json(&mut alive, "pong");
    assert_eq!(keys(&pong), keys(&fixture("bybit/pong_linear.json")));
    assert_eq!(pong["ret_msg"], "pong");
    assert_eq!(pong["op"], "ping");
    assert_eq!(pong["req_id"], "100001");
    send(&mut alive, r#"{"op":"ping"}"#);
    assert_eq!(
        next_json(&mut alive, "pong")["req_id"],
        "",
        "linear echoes an empty req_id"
    );
    // The pinging connection outlives the silent one.
    let deadline = Instant::now() + T;
    let mut pings = 2;
    while sim.snapshot().conn(ConnId(2)).is_some_and(|c| c.open) {
        assert!(Instant::now() < deadline, "idle connection never closed");
        send(&mut alive, r#"{"op":"ping"}"#);
        assert_eq!(next_json(&mut alive, "pong")["ret_msg"], "pong");
        pings += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "closed after {:?}",
        t0.elapsed()
    );
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut silent, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "idle timeout");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected close, got {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!((snap.idle_closes, snap.venue_pings), (1, pings));
    assert!(snap.conn(ConnId(1)).is_some_and(|c| c.open));
    // Spot: no req_id, none back.
    let spot = Sim::start(venue_cfg(SimVenue::BybitSpot)).expect("start");
    let mut ws = connect(&spot, "/v5/public/spot");
    send(&mut ws, r#"{"op":"ping"}"#);
    assert_eq!(
        keys(&next_json(&mut ws, "pong")),
        keys(&fixture("bybit/pong_spot.json"))
    );
}
