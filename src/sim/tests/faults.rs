//! Connection and listener faults: close, reset, stall, refuse, scripted HTTP
//! rejections, server pings and their timeout, and the chaos faults
//! (`Reject`, `DropNext`, `IgnoreSubscribe`, `Mute`, `max_conn_age`,
//! `PingFlood`, `Oversized` / `Binary` / `UnknownMessage`), with the ground
//! truth a superset of what arrived.

use super::*;

#[test]
fn close_fault_delivers_code() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    read_until(&mut ws, "data", |v| v.get("stream").is_some());
    sim.inject(Fault::Close { code: 4002 });
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::from(4002));
                assert_eq!(frame.reason.as_str(), "sim close");
                break;
            }
            Some(Ok(Message::Text(_))) => {}
            other => panic!("expected close frame, got {other:?}"),
        }
    }
    assert!(sim.wait_until(T, |s| s.faults_injected == 1
        && s.connections.iter().all(|c| !c.open)));
}

#[test]
fn http_429_and_503_reject_upgrades() {
    let sim = Sim::start(fast_cfg()).expect("start");
    sim.inject(Fault::Http429 {
        count: 1,
        retry_after_s: 7,
    });
    sim.inject(Fault::Http503 { count: 1 });
    match try_connect(&sim, "/public/stream") {
        Err(r) => {
            assert_eq!(r.status, 429);
            assert_eq!(r.retry_after.as_deref(), Some("7"));
        }
        Ok(_) => panic!("upgrade must be rejected with 429"),
    }
    match try_connect(&sim, "/public/stream") {
        Err(r) => assert_eq!(r.status, 503),
        Ok(_) => panic!("upgrade must be rejected with 503"),
    }
    let _ws = connect(&sim, "/public/stream");
    let snap = sim.snapshot();
    assert_eq!(snap.upgrades_rejected, 2);
    assert_eq!(snap.faults_injected, 2);
    assert_eq!(snap.connections.len(), 1);
    assert_eq!(snap.connections[0].id, ConnId(1));
}

#[test]
fn refuse_closes_listener_then_rebinds() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut live = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let start = Instant::now();
    sim.inject(Fault::Refuse {
        duration: Duration::from_millis(300),
    });
    let err = TcpStream::connect(("127.0.0.1", sim.port())).expect_err("must be refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Live connections are unaffected.
    read_until(&mut live, "data during refuse", |v| {
        v.get("stream").is_some()
    });
    let deadline = Instant::now() + T;
    loop {
        match TcpStream::connect(("127.0.0.1", sim.port())) {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                assert!(Instant::now() < deadline, "listener never came back");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    assert!(start.elapsed() >= Duration::from_millis(280));
    let mut ws = connect(&sim, "/public/stream?streams=ethusdt@bookTicker");
    read_until(&mut ws, "data after refuse", |v| v.get("stream").is_some());
}

#[test]
fn server_ping_malformed_reset_and_stall() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut a = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let mut b = connect(&sim, "/public/stream?streams=ethusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));

    // ServerPing: tungstenite answers the ping while we keep reading.
    sim.inject_on(ConnId(1), Fault::ServerPing);
    let deadline = Instant::now() + T;
    while sim.snapshot().pongs_received == 0 {
        match next_msg(&mut a, deadline) {
            Some(Ok(_)) => {}
            other => panic!("reading a: {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!((snap.pings_sent, snap.pongs_received), (1, 1));

    // Malformed: one invalid text frame, not recorded.
    sim.inject_on(ConnId(1), Fault::Malformed);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut a, deadline) {
            Some(Ok(Message::Text(t))) if serde_json::from_str::<Value>(t.as_str()).is_err() => {
                break
            }
            Some(Ok(_)) => {}
            other => panic!("expected malformed frame: {other:?}"),
        }
    }
    assert!(sim.sent().iter().all(|r| r.seq != 12));

    // Reset: the client sees an error, not a close frame.
    sim.inject_on(ConnId(1), Fault::Reset);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut a, deadline) {
            Some(Ok(Message::Text(_))) => {}
            Some(Err(WsError::Io(e))) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                break;
            }
            other => panic!("expected reset: {other:?}"),
        }
    }

    // Stall: nothing is sent or recorded during the stall, then FIN.
    sim.inject_on(
        ConnId(2),
        Fault::Stall {
            duration: Duration::from_millis(300),
        },
    );
    assert!(sim.wait_until(T, |s| s.conn(ConnId(2)).is_some_and(|c| c.stalled)));
    let recorded = sim.sent_on(ConnId(2)).len();
    // Drain whatever was in flight before the stall began.
    let deadline = Instant::now() + T;
    let mut after = 0;
    let end = loop {
        match next_msg(&mut b, deadline) {
            Some(Ok(Message::Text(_))) => after += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("stalled connection never closed"),
        }
    };
    assert!(
        matches!(end, WsError::Protocol(_) | WsError::ConnectionClosed),
        "expected EOF without close frame, got {end:?}"
    );
    assert_eq!(sim.sent_on(ConnId(2)).len(), recorded);
    assert!(after <= recorded);
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0
        && s.faults_injected == 4));
}

#[test]
fn pong_timeout_closes_with_1008_and_later_connections_are_unaffected() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut silent = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 1));
    sim.inject(Fault::ServerPing);
    assert!(sim.wait_until(T, |s| s.pings_sent == 1));
    let _late = connect(&sim, "/public/stream");
    // The client does not read (so cannot pong) until the sim gave up on it
    // (the pong timeout is shortened under cfg(test)).
    assert!(sim.wait_until(T, |s| s.conn(ConnId(1)).is_some_and(|c| !c.open)));
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut silent, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!(snap.pongs_received, 0);
    assert_eq!(
        snap.faults_injected, 1,
        "the later connection is unaffected"
    );
    assert!(snap.conn(ConnId(2)).is_some_and(|c| c.open));
}

/// The next data message as `(stream, seq)`, skipping anything else.
fn next_data(ws: &mut Client) -> (String, u64) {
    let v = read_until(ws, "data", |v| seq_of(v).is_some());
    seq_of(&v).expect("data message")
}

/// Reads (and hands to `on_msg`) until `done()` holds, checking `done` again
/// whenever a read times out; panics at the deadline or on a read error.
fn read_while_not(
    ws: &mut Client,
    what: &str,
    mut on_msg: impl FnMut(Message),
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + T;
    while !done() {
        match ws.read() {
            Ok(msg) => on_msg(msg),
            Err(e) if is_timeout(&e) => {
                assert!(Instant::now() < deadline, "timed out waiting for {what}")
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Closes the client cleanly and returns the data `(stream, seq)` it read
/// until the close completed.
fn close_and_drain(ws: &mut Client) -> Vec<(String, u64)> {
    ws.close(None).expect("close");
    let deadline = Instant::now() + T;
    let mut got = Vec::new();
    loop {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            Some(Err(WsError::ConnectionClosed)) => return got,
            other => panic!("close failed: {other:?}"),
        }
    }
}

fn truth_on(sim: &Sim, conn: ConnId) -> Vec<(String, u64)> {
    sim.sent_on(conn)
        .into_iter()
        .map(|r| (r.stream, r.seq))
        .collect()
}

#[test]
fn reject_any_status_with_retry_after_and_accepts_are_recorded() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let t0 = Instant::now();
    sim.inject(Fault::Reject {
        status: 418,
        count: 1,
        retry_after_s: Some(120),
    });
    sim.inject(Fault::Reject {
        status: 401,
        count: 1,
        retry_after_s: None,
    });
    // A listener fault given to inject_on acts on the listener too.
    sim.inject_on(
        ConnId(42),
        Fault::Reject {
            status: 403,
            count: 2,
            retry_after_s: Some(5),
        },
    );
    // Out-of-range statuses are sent as 500; count 0 is a no-op.
    sim.inject(Fault::Reject {
        status: 42,
        count: 1,
        retry_after_s: None,
    });
    sim.inject(Fault::Reject {
        status: 400,
        count: 0,
        retry_after_s: None,
    });
    let expected = [
        (418, Some("120")),
        (401, None),
        (403, Some("5")),
        (403, Some("5")),
        (500, None),
    ];
    for (status, retry_after) in expected {
        match try_connect(&sim, "/public/stream") {
            Err(r) => {
                assert_eq!(r.status, status);
                assert_eq!(r.retry_after.as_deref(), retry_after);
            }
            Ok(_) => panic!("upgrade must be rejected with {status}"),
        }
    }
    let _ws = connect(&sim, "/public/stream");
    let snap = sim.snapshot();
    assert_eq!(snap.upgrades_rejected, 5);
    assert_eq!(snap.faults_injected, 5);
    assert_eq!(snap.connections.len(), 1);
    // Every TCP accept is recorded before its client can see a response.
    assert_eq!(snap.accepts.len(), 6);
    assert!(snap.accepts.windows(2).all(|w| w[0] <= w[1]));
    assert!(snap.accepts.iter().all(|&at| at >= t0));
}

#[test]
fn drop_next_withholds_exactly_count_messages() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let mut got: Vec<(String, u64)> = (0..5).map(|_| next_data(&mut ws)).collect();
    sim.inject_on(ConnId(1), Fault::DropNext { count: 7 });
    assert!(sim.wait_until(T, |s| s.withheld == 7));
    got.extend((0..30).map(|_| next_data(&mut ws)));
    got.extend(close_and_drain(&mut ws));

    let gaps: Vec<u64> = got
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .filter(|&d| d != 1)
        .collect();
    assert_eq!(gaps, [8], "exactly one gap of 7 withheld messages");
    let at = got
        .windows(2)
        .position(|w| w[1].1 - w[0].1 == 8)
        .expect("gap");
    let missing: Vec<u64> = (got[at].1 + 1..got[at + 1].1).collect();
    assert_eq!(missing.len(), 7);

    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    let truth = truth_on(&sim, ConnId(1));
    assert_eq!(truth, got, "withheld messages are not recorded");
    assert!(truth.iter().all(|(_, seq)| !missing.contains(seq)));
    let snap = sim.snapshot();
    assert_eq!(snap.withheld, 7);
    assert_eq!(snap.conn(ConnId(1)).map(|c| c.withheld), Some(7));
    assert_eq!(snap.messages_sent, got.len() as u64);
}

#[test]
fn an_ignored_url_subscription_delivers_nothing_and_leaves_the_first_request_unanswered() {
    let sim = Sim::start(fast_cfg()).expect("start");
    sim.inject(Fault::IgnoreSubscribe { count: 1 });
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.subscribes_ignored == 1));
    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":1}"#);
    let quiet_until = Instant::now() + Duration::from_millis(300);
    if let Some(msg) = next_msg(&mut ws, quiet_until) {
        panic!("a connection whose URL subscription was ignored produced {msg:?}");
    }
    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    let list = read_until(&mut ws, "list", |_| true);
    assert_eq!(list, serde_json::json!({"result": [], "id": 2}));
    // The fault is spent: the next URL subscription streams at once.
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    assert_eq!(next_data(&mut ws).0, "btcusdt@bookTicker");
    let snap = sim.snapshot();
    assert_eq!(
        (
            snap.subscribe_requests,
            snap.url_subscriptions,
            snap.subscribes_ignored
        ),
        (2, 2, 1)
    );
    assert_eq!(
        snap.conn(ConnId(2)).map(|c| c.streams.clone()),
        Some(vec!["btcusdt@bookTicker".to_string()])
    );
}

#[test]
fn ignore_subscribe_gets_no_ack_and_the_next_one_works() {
    let sim = Sim::start(fast_cfg()).expect("start");
    sim.inject(Fault::IgnoreSubscribe { count: 1 });
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}"#,
    );
    assert!(sim.wait_until(T, |s| s.subscribes_ignored == 1));
    // Nothing at all arrives: no ack, no error, no data.
    let quiet_until = Instant::now() + Duration::from_millis(300);
    if let Some(msg) = next_msg(&mut ws, quiet_until) {
        panic!("ignored SUBSCRIBE produced {msg:?}");
    }
    // Requests are answered in order: this reply comes first, so there is no
    // late ack for id 1 either.
    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    let first = read_until(&mut ws, "list", |_| true);
    assert_eq!(first, serde_json::json!({"result": [], "id": 2}));
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":3}"#,
    );
    let ack = read_until(&mut ws, "ack", |v| v.get("id").is_some());
    assert_eq!(ack, serde_json::json!({"result": null, "id": 3}));
    assert_eq!(next_data(&mut ws).0, "btcusdt@bookTicker");
    let snap = sim.snapshot();
    assert_eq!(
        (
            snap.subscribe_requests,
            snap.subscribes_ignored,
            snap.faults_injected
        ),
        (2, 1, 1)
    );
}

#[test]
fn mute_stops_exactly_that_stream() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(
        &sim,
        "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker",
    );
    let mut got: Vec<(String, u64)> = Vec::new();
    while !(got.iter().any(|(s, _)| s == "btcusdt@bookTicker")
        && got.iter().any(|(s, _)| s == "ethusdt@bookTicker"))
    {
        got.push(next_data(&mut ws));
    }
    sim.inject_on(
        ConnId(1),
        Fault::Mute {
            stream: "BTCUSDT@bookTicker".into(),
        },
    );
    assert!(sim.wait_until(T, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.muted == ["btcusdt@bookTicker"])));
    let is_btc = |(s, _): &(String, u64)| s == "btcusdt@bookTicker";
    let btc_at_mute = truth_on(&sim, ConnId(1))
        .iter()
        .filter(|r| is_btc(r))
        .count();
    // The other stream keeps flowing ...
    let mut eth_after = 0;
    while eth_after < 60 {
        let d = next_data(&mut ws);
        eth_after += usize::from(!is_btc(&d));
        got.push(d);
    }
    // ... and pings are still answered.
    sim.inject_on(ConnId(1), Fault::ServerPing);
    read_while_not(
        &mut ws,
        "pong",
        |m| {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
        },
        || sim.snapshot().pongs_received == 1,
    );
    got.extend(close_and_drain(&mut ws));
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    let truth = truth_on(&sim, ConnId(1));
    assert_eq!(truth, got);
    assert_eq!(truth.iter().filter(|r| is_btc(r)).count(), btc_at_mute);
    let snap = sim.snapshot();
    let conn = snap.conn(ConnId(1)).expect("conn");
    assert_eq!(conn.streams, ["btcusdt@bookTicker", "ethusdt@bookTicker"]);
    assert_eq!((snap.withheld, snap.faults_injected), (0, 2));
}

#[test]
fn max_conn_age_closes_with_1001() {
    let age = Duration::from_millis(300);
    let sim = Sim::start(SimConfig {
        max_conn_age: Some(age),
        ..fast_cfg()
    })
    .expect("start");
    let t0 = Instant::now();
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "max connection age");
                break;
            }
            Some(Ok(Message::Text(_))) | Some(Ok(Message::Ping(_))) => {}
            other => panic!("expected close frame, got {other:?}"),
        }
    }
    assert!(t0.elapsed() >= age, "closed after {:?}", t0.elapsed());
    assert!(sim.wait_until(T, |s| s.age_closes == 1
        && s.open_connections().count() == 0));
    assert_eq!(sim.snapshot().faults_injected, 0);
    assert!(SimConfig::default().max_conn_age.is_none());
}

#[test]
fn ping_flood_sends_count_distinct_pings() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 1));
    sim.inject_on(ConnId(1), Fault::PingFlood { count: 25 });
    let mut payloads = std::collections::HashSet::new();
    // tungstenite answers each ping on the next read.
    read_while_not(
        &mut ws,
        "25 pongs",
        |m| {
            if let Message::Ping(p) = m {
                assert!(payloads.insert(p.to_vec()), "ping payloads are distinct");
            }
        },
        || sim.snapshot().pongs_received == 25,
    );
    assert_eq!(payloads.len(), 25);
    let snap = sim.snapshot();
    assert_eq!((snap.pings_sent, snap.faults_injected), (25, 1));
    assert!(snap.conn(ConnId(1)).is_some_and(|c| c.open));

    // A client that does not answer every ping is closed with 1008.
    let mut silent = connect(&sim, "/public/stream");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    sim.inject_on(ConnId(2), Fault::PingFlood { count: 3 });
    assert!(sim.wait_until(T, |s| s.conn(ConnId(2)).is_some_and(|c| !c.open)));
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut silent, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!((snap.pings_sent, snap.pongs_received), (28, 25));
}

#[test]
fn oversized_binary_and_unknown_frames_arrive_unrecorded() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let mut got = vec![next_data(&mut ws)];
    sim.inject_on(ConnId(1), Fault::Oversized { bytes: 300_000 });
    sim.inject_on(ConnId(1), Fault::Binary);
    sim.inject_on(ConnId(1), Fault::UnknownMessage);
    let mut odd: Vec<&str> = Vec::new();
    let deadline = Instant::now() + T;
    while odd.len() < 3 {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("valid json");
                if v["data"]["e"] == "padding" {
                    assert_eq!(t.len(), 300_000);
                    assert_eq!(v["stream"], "btcusdt@bookTicker");
                    odd.push("oversized");
                } else if v == serde_json::json!({"event": "mystery", "x": 1}) {
                    odd.push("unknown");
                } else {
                    got.push(seq_of(&v).expect("data"));
                }
            }
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b.as_ref(), [0xDE, 0xAD, 0xBE, 0xEF]);
                odd.push("binary");
            }
            Some(Ok(_)) => {}
            other => panic!("expected fault frames, got {other:?}"),
        }
    }
    assert_eq!(odd, ["oversized", "binary", "unknown"], "injection order");
    got.extend(close_and_drain(&mut ws));
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    assert_eq!(truth_on(&sim, ConnId(1)), got, "fault frames are not data");
    let snap = sim.snapshot();
    assert_eq!(
        (snap.messages_sent, snap.faults_injected),
        (got.len() as u64, 3)
    );

    // Raw path: the bare data object; a tiny size yields the bare envelope.
    let mut raw = connect(&sim, "/public/ws");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    sim.inject_on(ConnId(2), Fault::Oversized { bytes: 1000 });
    sim.inject_on(ConnId(2), Fault::Oversized { bytes: 1 });
    let mut frames = Vec::new();
    let deadline = Instant::now() + T;
    while frames.len() < 2 {
        match next_msg(&mut raw, deadline) {
            Some(Ok(Message::Text(t))) => frames.push(t.as_str().to_string()),
            other => panic!("expected padding frames, got {other:?}"),
        }
    }
    assert_eq!(frames[0].len(), 1000);
    let v: Value = serde_json::from_str(&frames[0]).expect("valid json");
    assert_eq!(v["e"], "padding");
    assert_eq!(frames[1], r#"{"e":"padding","pad":""}"#);
    assert!(sim.sent_on(ConnId(2)).is_empty());
}

#[test]
fn received_is_a_prefix_of_sent_after_reset() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(
        &sim,
        "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker/btcusdt@depth",
    );
    let mut got: Vec<(String, u64)> = (0..200).map(|_| next_data(&mut ws)).collect();
    sim.inject_on(ConnId(1), Fault::Reset);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => break,
            None => panic!("reset never reached the client"),
        }
    }
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    let truth = truth_on(&sim, ConnId(1));
    assert!(truth.len() >= got.len());
    assert_eq!(truth[..got.len()], got[..], "sent is a superset, in order");
}
