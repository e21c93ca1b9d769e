//! OKX v5: subscription events and errors, data as the documentation shows
//! it, ping and idle close, the `books` checksum.

use super::*;

#[test]
fn okx_subscribe_events_errors_and_data_match_the_docs() {
    let sim = Sim::start(venue_cfg(SimVenue::Okx)).expect("start");
    assert!(matches!(
        try_connect(&sim, "/ws/v5/private"),
        Err(Rejected { status: 404, .. })
    ));
    let mut ws = connect(&sim, "/ws/v5/public");
    send(
        &mut ws,
        r#"{"id":"7","op":"subscribe","args":[
            {"channel":"books","instId":"BTC-USDT-SWAP"},
            {"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"},
            {"channel":"trades","instId":"BTC-USDT"},
            {"channel":"funding-rate","instId":"BTC-USDT-SWAP"},
            {"channel":"mark-price","instId":"BTC-USDT-SWAP"},
            {"channel":"books","instId":"XRP-USDT-SWAP"},
            {"channel":"funding-rate","instId":"BTC-USDT"}]}"#,
    );
    let channel = |v: &Value| v["arg"]["channel"].as_str().unwrap_or("").to_string();
    let data = |all: &[Value], c: &str| {
        all.iter()
            .filter(|v| v.get("data").is_some() && channel(v) == c)
            .count()
    };
    let all = collect(&mut ws, "okx", |all| {
        data(all, "books") >= 6
            && data(all, "bbo-tbt") >= 3
            && data(all, "trades") >= 3
            && data(all, "funding-rate") >= 2
            && data(all, "mark-price") >= 2
            && all.iter().filter(|v| v["event"] == "error").count() == 2
    });
    let events: Vec<&Value> = all.iter().filter(|v| v.get("event").is_some()).collect();
    let sub_fx = fixture("okx/subscribe_event.json");
    let err_fx = fixture("okx/error_event.json");
    let subs: Vec<&&Value> = events
        .iter()
        .filter(|v| v["event"] == "subscribe")
        .collect();
    assert_eq!(subs.len(), 5);
    for s in &subs {
        assert_eq!(keys(s), keys(&sub_fx));
        assert_eq!(s["id"], "7");
    }
    assert_eq!(
        subs[2]["arg"],
        serde_json::json!({"channel": "trades", "instId": "BTC-USDT"})
    );
    let errs: Vec<&&Value> = events.iter().filter(|v| v["event"] == "error").collect();
    for e in &errs {
        assert_eq!(keys(e), keys(&err_fx));
        assert_eq!(e["code"], "60018");
    }
    assert_eq!(
        errs[0]["msg"],
        "Wrong URL or channel:books,instId:XRP-USDT-SWAP doesn't exist. Please use the correct URL, channel and parameters referring to API document."
    );
    assert_eq!(subs[0]["connId"], errs[0]["connId"]);
    assert_eq!(subs[0]["connId"].as_str().map(str::len), Some(8));

    // books: a snapshot (prevSeqId -1), then updates chained by prevSeqId.
    let books: Vec<&Value> = all
        .iter()
        .filter(|v| v.get("data").is_some() && channel(v) == "books")
        .collect();
    let snap_fx = fixture("okx/books_snapshot.json");
    let upd_fx = fixture("okx/books_update.json");
    assert_eq!(books[0]["action"], "snapshot");
    assert_eq!(
        (keys(books[0]), data_keys(books[0])),
        (keys(&snap_fx), data_keys(&snap_fx))
    );
    assert_eq!(books[0]["data"][0]["prevSeqId"], -1);
    let mut local = Local::default();
    let d0 = &books[0]["data"][0];
    local.apply(&d0["bids"], &d0["asks"]);
    let mut seq = d0["seqId"].as_i64().expect("seqId");
    for b in &books[1..] {
        assert_eq!(b["action"], "update");
        assert_eq!((keys(b), data_keys(b)), (keys(&upd_fx), data_keys(&upd_fx)));
        let d = &b["data"][0];
        assert_eq!(d["prevSeqId"].as_i64(), Some(seq), "chained");
        assert!(d["seqId"].as_i64().expect("seqId") > seq);
        seq = d["seqId"].as_i64().expect("seqId");
        assert_eq!(d["checksum"], 0, "checksum off: 0 as on OKX production");
        for l in d["bids"]
            .as_array()
            .expect("bids")
            .iter()
            .chain(d["asks"].as_array().expect("asks"))
        {
            assert_eq!(l.as_array().map(Vec::len), Some(4));
            assert_eq!(l[2], "0");
        }
        local.apply(&d["bids"], &d["asks"]);
        assert!(!local.crossed());
    }
    for (c, fx) in [
        ("bbo-tbt", "okx/bbo_tbt.json"),
        ("trades", "okx/trades.json"),
        ("funding-rate", "okx/funding_rate.json"),
        ("mark-price", "okx/mark_price.json"),
    ] {
        let m = all
            .iter()
            .find(|v| v.get("data").is_some() && channel(v) == c)
            .expect(c);
        let fx = fixture(fx);
        assert_eq!((keys(m), data_keys(m)), (keys(&fx), data_keys(&fx)), "{c}");
    }
    let trade = all
        .iter()
        .find(|v| channel(v) == "trades" && v.get("data").is_some())
        .expect("trade");
    assert_eq!(trade["data"][0]["instId"], "BTC-USDT");
    let mark = all
        .iter()
        .find(|v| channel(v) == "mark-price" && v.get("data").is_some())
        .expect("mark");
    assert_eq!(mark["data"][0]["instType"], "SWAP");

    // Ground truth.
    let truth = sim.sent_on(ConnId(1));
    let b: Vec<&SentRecord> = truth
        .iter()
        .filter(|r| r.stream == "books:BTC-USDT-SWAP")
        .collect();
    assert_eq!((b[0].kind, b[0].prev_seq), (SentKind::BookSnapshot, None));
    assert!(b
        .windows(2)
        .all(|w| w[1].prev_seq == Some(w[0].seq) && w[1].kind == SentKind::BookUpdate));
    assert!(truth
        .iter()
        .any(|r| r.stream == "funding-rate:BTC-USDT-SWAP" && r.kind == SentKind::Funding));

    // Unsubscribe, bad requests.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT-SWAP"}]}"#,
    );
    collect(&mut ws, "unsub", |all| {
        all.iter().any(|v| v["event"] == "unsubscribe")
    });
    send(&mut ws, "{nope");
    let bad = collect(&mut ws, "60012", |all| {
        all.iter().any(|v| v["event"] == "error")
    });
    assert_eq!(
        bad.last().map(|v| v["code"].clone()),
        Some(Value::from("60012"))
    );
    assert!(sim.wait_until(T, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.streams.len() == 4)));
}

#[test]
fn okx_ping_pong_and_idle_close() {
    let sim = Sim::start(SimConfig {
        idle_timeout: Some(Duration::from_millis(500)),
        ..venue_cfg(SimVenue::Okx)
    })
    .expect("start");
    let mut alive = connect(&sim, "/ws/v5/public");
    let _silent = connect(&sim, "/ws/v5/public");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    let deadline = Instant::now() + T;
    while sim.snapshot().conn(ConnId(2)).is_some_and(|c| c.open) {
        assert!(Instant::now() < deadline, "idle connection never closed");
        send(&mut alive, "ping");
        assert_eq!(next_text(&mut alive, "pong"), "pong");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Subscribed data does not keep a connection alive: only client text does.
    send(
        &mut alive,
        r#"{"op":"subscribe","args":[{"channel":"bbo-tbt","instId":"ETH-USDT"}]}"#,
    );
    assert!(sim.wait_until(T, |s| s.conn(ConnId(1)).is_some_and(|c| !c.open)));
    let snap = sim.snapshot();
    assert_eq!(snap.idle_closes, 2);
    assert!(snap.venue_pings >= 4);
}

#[test]
fn okx_checksum_is_crc32_of_the_top_25_and_bad_checksum_breaks_it_once() {
    let sim = Sim::start(SimConfig {
        okx_checksum: true,
        ..venue_cfg(SimVenue::Okx)
    })
    .expect("start");
    let mut ws = connect(&sim, "/ws/v5/public");
    send(
        &mut ws,
        r#"{"op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT-SWAP"}]}"#,
    );
    assert_eq!(next_json(&mut ws, "ack")["event"], "subscribe");
    // Every checksum is the CRC32 of the local book's top 25 (strings as
    // received) ...
    let mut local = Local::default();
    let mut check = |ws: &mut Client| -> bool {
        let v = next_json(ws, "books");
        let d = &v["data"][0];
        if v["action"] == "snapshot" {
            local = Local::default();
        }
        local.apply(&d["bids"], &d["asks"]);
        let cs = d["checksum"].as_i64().expect("checksum");
        assert_ne!(cs, 0);
        cs == i64::from(local.okx_checksum())
    };
    for _ in 0..20 {
        assert!(check(&mut ws), "checksum of the local book");
    }
    // ... except one after BadChecksum.
    sim.inject_book_on(ConnId(1), BookFault::BadChecksum);
    let deadline = Instant::now() + T;
    while check(&mut ws) {
        assert!(Instant::now() < deadline, "no wrong checksum");
    }
    for _ in 0..10 {
        assert!(check(&mut ws), "one wrong checksum only");
    }
    assert_eq!(sim.snapshot().faults_injected, 1);
}
