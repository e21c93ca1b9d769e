//! Binance: subscriptions and their acks, the USD-M routes, wrapped and raw
//! paths, the upgrade's 404 and 400, ground truth and throughput.

use super::*;

#[test]
fn subscribe_ack_and_wrapped_data_with_monotonic_u() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}"#,
    );
    let ack = read_until(&mut ws, "ack", |v| v.get("id").is_some());
    assert_eq!(ack, serde_json::json!({"result": null, "id": 1}));

    let mut last_u = 0;
    for _ in 0..20 {
        let v = read_until(&mut ws, "bookTicker", |v| v.get("stream").is_some());
        assert_eq!(v["stream"], "btcusdt@bookTicker");
        let d = &v["data"];
        assert_eq!(d["e"], "bookTicker");
        assert_eq!(d["s"], "BTCUSDT");
        let u = d["u"].as_u64().expect("u");
        assert!(u > last_u, "u must increase: {u} after {last_u}");
        last_u = u;
        let bid: f64 = d["b"].as_str().and_then(|s| s.parse().ok()).expect("b");
        let ask: f64 = d["a"].as_str().and_then(|s| s.parse().ok()).expect("a");
        assert!(bid < ask);
        assert!(d["E"].as_u64().expect("E") > 1_600_000_000_000);
    }

    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":"x"}"#);
    let list = read_until(&mut ws, "list", |v| v.get("id").is_some());
    assert_eq!(
        list,
        serde_json::json!({"result": ["btcusdt@bookTicker"], "id": "x"})
    );

    send(&mut ws, "{not json");
    let err = read_until(&mut ws, "json error", |v| v.get("error").is_some());
    assert_eq!(err["error"]["code"], 3);
    assert_eq!(err["id"], Value::Null);

    assert!(sim.wait_until(T, |s| s.subscribe_requests == 1
        && s.conn(ConnId(1))
            .is_some_and(|c| c.streams == ["btcusdt@bookTicker"])));
}

#[test]
fn unknown_stream_is_rejected_and_nothing_subscribed() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","xrpusdt@bookTicker"],"id":5}"#,
    );
    let err = read_until(&mut ws, "error", |v| v.get("id").is_some());
    assert_eq!(
        err,
        serde_json::json!({"error": {"code": 2, "msg": "Invalid request: unknown stream 'xrpusdt@bookTicker'"}, "id": 5})
    );
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_5m"],"id":6}"#,
    );
    let err = read_until(&mut ws, "error", |v| v.get("id").is_some());
    assert_eq!(err["error"]["code"], 2);
    assert!(sim.wait_until(T, |s| s.subscribe_requests == 2));
    assert!(sim.snapshot().connections[0].streams.is_empty());
}

#[test]
fn wrong_route_is_acked_but_silent() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/market/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@aggTrade"],"id":1}"#,
    );
    let ack = read_until(&mut ws, "ack", |v| v.get("id").is_some());
    assert_eq!(ack, serde_json::json!({"result": null, "id": 1}));
    // 30 trades at 4 ms cover ~60 book changes at 2 ms: none may arrive.
    let mut last_a = 0;
    for _ in 0..30 {
        let v = read_until(&mut ws, "data", |v| v.get("stream").is_some());
        assert_eq!(
            v["stream"], "btcusdt@aggTrade",
            "only the market stream delivers"
        );
        let a = v["data"]["a"].as_u64().expect("a");
        assert!(
            last_a == 0 || a == last_a + 1,
            "aggregate ids are consecutive"
        );
        last_a = a;
    }
    assert!(sim.sent().iter().all(|r| r.stream == "btcusdt@aggTrade"));
    let snap = sim.snapshot();
    assert_eq!(snap.connections[0].path, "/market/stream");
    assert_eq!(
        snap.connections[0].streams,
        ["btcusdt@bookTicker", "btcusdt@aggTrade"]
    );
}

#[test]
fn spot_style_delivers_everything_and_ws_is_unwrapped() {
    let sim = Sim::start(SimConfig {
        usdm_routing: false,
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(&sim, "/ws/ethusdt@aggTrade");
    let v = read_until(&mut ws, "raw trade", |v| v.get("e").is_some());
    assert_eq!(v["e"], "aggTrade");
    assert_eq!(v["s"], "ETHUSDT");
    let mut ws = connect(&sim, "/stream?streams=ethusdt@markPrice@1s");
    let v = read_until(&mut ws, "mark", |v| v.get("stream").is_some());
    assert_eq!(v["stream"], "ethusdt@markPrice@1s");
    assert_eq!(v["data"]["e"], "markPriceUpdate");
}

#[test]
fn unknown_path_is_404() {
    let sim = Sim::start(fast_cfg()).expect("start");
    match try_connect(&sim, "/nope") {
        Err(r) => assert_eq!(r.status, 404),
        Ok(_) => panic!("upgrade of /nope must fail"),
    }
    assert_eq!(sim.snapshot().upgrades_rejected, 1);
}

#[test]
fn ground_truth_matches_client_on_clean_close() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","ethusdt@bookTicker","btcusdt@depth@100ms","ethusdt@depth"],"id":1}"#,
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + T;
    while got.len() < 150 {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            other => panic!("read failed: {other:?}"),
        }
    }
    ws.close(None).expect("close");
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            Some(Err(WsError::ConnectionClosed)) => break,
            other => panic!("close failed: {other:?}"),
        }
    }
    assert!(sim.wait_until(T, |s| s.connections.iter().all(|c| !c.open)));
    let truth: Vec<(String, u64)> = sim
        .sent()
        .into_iter()
        .map(|r| {
            assert_eq!(r.conn, ConnId(1));
            (r.stream, r.seq)
        })
        .collect();
    assert_eq!(truth, got);
    assert!(got.iter().any(|(s, _)| s == "ethusdt@depth"));
    assert_eq!(sim.snapshot().messages_sent, got.len() as u64);
    assert_eq!(
        sim.snapshot().connections[0].messages_sent,
        got.len() as u64
    );
}

#[test]
fn unknown_pre_subscription_is_400() {
    let sim = Sim::start(fast_cfg()).expect("start");
    match try_connect(&sim, "/public/stream?streams=solusdt@bookTicker") {
        Err(r) => assert_eq!(r.status, 400),
        Ok(_) => panic!("unknown stream must be rejected"),
    }
}

#[test]
fn thousands_of_messages_per_second_on_one_connection() {
    let sim = Sim::start(SimConfig {
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
        book_interval: Duration::from_micros(500),
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(
        &sim,
        "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker/solusdt@bookTicker",
    );
    let mut last_u = [0u64; 3];
    let mut n = 0u64;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(500);
    while let Some(msg) = next_msg(&mut ws, deadline) {
        let Ok(Message::Text(t)) = msg else {
            panic!("read failed: {msg:?}");
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        let i = match v["data"]["s"].as_str() {
            Some("BTCUSDT") => 0,
            Some("ETHUSDT") => 1,
            _ => 2,
        };
        let u = v["data"]["u"].as_u64().expect("u");
        assert!(
            last_u[i] == 0 || u == last_u[i] + 1,
            "no gaps for a fast reader"
        );
        last_u[i] = u;
        n += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    eprintln!("sim throughput: {n} msgs, {rate:.0} msg/s");
    // Nominal 6000 msg/s; be lenient on a loaded 2-core machine.
    assert!(rate > 1500.0, "only {rate:.0} msg/s");
}
