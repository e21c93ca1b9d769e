//! Book faults on each venue.
//!
//! A fault acts on the first book message after the connection armed it; the
//! client may still have older messages queued, so each test reads until the
//! anomaly shows (bounded by a deadline), then checks the messages after it.

use super::*;

/// Arms `fault` on `conn` and waits until the connection has taken it.
fn arm(sim: &Sim, conn: ConnId, fault: BookFault) {
    let before = sim.snapshot().faults_injected;
    sim.inject_book_on(conn, fault);
    assert!(sim.wait_until(T, |s| s.faults_injected == before + 1));
}

/// The next JSON message satisfying `is`.
fn next_where(ws: &mut Client, what: &str, is: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let v = next_json(ws, what);
        if is(&v) {
            return v;
        }
    }
}

/// Reads messages (`is`) until `found(previous, message)` holds; returns the
/// message before and the one found.
fn until_found(
    ws: &mut Client,
    what: &str,
    first: Value,
    is: impl Fn(&Value) -> bool,
    found: impl Fn(&Value, &Value) -> bool,
) -> (Value, Value) {
    let deadline = Instant::now() + T;
    let mut prev = first;
    loop {
        assert!(Instant::now() < deadline, "never saw {what}");
        let v = next_where(ws, what, &is);
        if found(&prev, &v) {
            return (prev, v);
        }
        prev = v;
    }
}

#[test]
fn binance_book_faults() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@depth");
    let is_diff = |v: &Value| v["data"]["e"] == "depthUpdate";
    let chained = |a: &Value, b: &Value| b["data"]["pu"] == a["data"]["u"];
    let first = next_where(&mut ws, "diff", is_diff);
    // SkipSeq withholds exactly one diff: the chain shows one gap.
    arm(&sim, ConnId(1), BookFault::SkipSeq);
    assert!(sim.wait_until(T, |s| s.withheld == 1));
    let (_, after_gap) = until_found(&mut ws, "the gap", first, is_diff, |a, b| !chained(a, b));
    // BreakChain: one diff claims U = prev u + 2 and pu = prev u + 1.
    arm(&sim, ConnId(1), BookFault::BreakChain);
    let (prev, bad) = until_found(&mut ws, "the break", after_gap, is_diff, |a, b| {
        !chained(a, b)
    });
    let pu = prev["data"]["u"].as_u64().expect("u");
    assert_eq!(bad["data"]["pu"].as_u64(), Some(pu + 1));
    assert_eq!(bad["data"]["U"].as_u64(), Some(pu + 2));
    let mut last = bad.clone();
    for _ in 0..10 {
        let d = next_where(&mut ws, "diff", is_diff);
        assert!(chained(&last, &d), "one break only");
        last = d;
    }
    let rec = sim
        .sent_on(ConnId(1))
        .into_iter()
        .find(|r| Some(r.seq) == bad["data"]["u"].as_u64() && r.kind == SentKind::BookUpdate)
        .expect("record");
    assert_eq!(
        rec.prev_seq,
        Some(pu + 1),
        "ground truth shows what was sent"
    );
    // CrossBook on a quote: one bookTicker shows bid == ask.
    drop(ws);
    let mut quotes = connect(&sim, "/public/stream?streams=ethusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    arm(&sim, ConnId(2), BookFault::CrossBook);
    let is_quote = |v: &Value| v.get("stream").is_some();
    next_where(&mut quotes, "crossed quote", |v| {
        is_quote(v) && v["data"]["b"] == v["data"]["a"]
    });
    for _ in 0..10 {
        let q = next_where(&mut quotes, "quote", is_quote);
        assert_ne!(q["data"]["b"], q["data"]["a"], "one crossed quote only");
    }
}

#[test]
fn bybit_book_faults() {
    let sim = Sim::start(venue_cfg(SimVenue::BybitLinear)).expect("start");
    let mut ws = connect(&sim, "/v5/public/linear");
    let sub = r#"{"op":"subscribe","args":["orderbook.50.ETHUSDT"]}"#;
    send(&mut ws, sub);
    assert_eq!(next_json(&mut ws, "ack")["success"], true);
    let is_ob = |v: &Value| v.get("topic").is_some();
    let u_of = |v: &Value| v["data"]["u"].as_u64().expect("u");
    let snap = next_where(&mut ws, "snapshot", is_ob);
    assert_eq!(snap["type"], "snapshot");
    // SkipSeq: u jumps by two, once.
    arm(&sim, ConnId(1), BookFault::SkipSeq);
    let (prev, d) = until_found(&mut ws, "the skip", snap, is_ob, |a, b| {
        u_of(b) != u_of(a) + 1
    });
    assert_eq!(u_of(&d), u_of(&prev) + 2);
    // Resync by subscribing afresh.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":["orderbook.50.ETHUSDT"]}"#,
    );
    send(&mut ws, sub);
    let snap = next_where(&mut ws, "snapshot", |v| v["type"] == "snapshot");
    let mut local = Local::default();
    local.apply(&snap["data"]["b"], &snap["data"]["a"]);
    // BreakChain: one delta with u + 1000; the next ones continue from the truth.
    arm(&sim, ConnId(1), BookFault::BreakChain);
    let mut prev = snap;
    let bad = loop {
        let d = next_where(&mut ws, "the break", is_ob);
        local.apply(&d["data"]["b"], &d["data"]["a"]);
        if u_of(&d) != u_of(&prev) + 1 {
            break d;
        }
        prev = d;
    };
    let true_u = u_of(&prev) + 1;
    assert_eq!(u_of(&bad), true_u + 1000);
    let next = next_where(&mut ws, "delta", is_ob);
    assert_eq!(u_of(&next), true_u + 1);
    local.apply(&next["data"]["b"], &next["data"]["a"]);
    assert!(sim
        .sent_on(ConnId(1))
        .iter()
        .any(|r| r.seq == true_u + 1000));
    assert!(!local.crossed(), "the data stayed true");
    // CrossBook: a delta crosses the local book.
    arm(&sim, ConnId(1), BookFault::CrossBook);
    let deadline = Instant::now() + T;
    while !local.crossed() {
        assert!(Instant::now() < deadline, "never crossed");
        let d = next_where(&mut ws, "delta", is_ob);
        local.apply(&d["data"]["b"], &d["data"]["a"]);
    }
    // DropNext withholds Bybit messages too.
    let before = sim.snapshot().withheld;
    sim.inject_on(ConnId(1), Fault::DropNext { count: 2 });
    assert!(sim.wait_until(T, |s| s.withheld == before + 2));
}

#[test]
fn okx_book_faults() {
    let sim = Sim::start(venue_cfg(SimVenue::Okx)).expect("start");
    let mut ws = connect(&sim, "/ws/v5/public");
    let sub = r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#;
    send(&mut ws, sub);
    assert_eq!(next_json(&mut ws, "ack")["event"], "subscribe");
    let is_books = |v: &Value| v.get("data").is_some();
    let chained = |a: &Value, b: &Value| b["data"][0]["prevSeqId"] == a["data"][0]["seqId"];
    let snap = next_where(&mut ws, "snapshot", is_books);
    assert_eq!(snap["action"], "snapshot");
    // SkipSeq: one update's prevSeqId is not the last seqId received.
    arm(&sim, ConnId(1), BookFault::SkipSeq);
    let (_, after) = until_found(&mut ws, "the skip", snap, is_books, |a, b| !chained(a, b));
    let mut last = after;
    for _ in 0..5 {
        let d = next_where(&mut ws, "update", is_books);
        assert!(chained(&last, &d));
        last = d;
    }
    // Resync: subscribing again sends a fresh snapshot.
    send(&mut ws, sub);
    let snap = next_where(&mut ws, "snapshot", |v| v["action"] == "snapshot");
    let mut local = Local::default();
    local.apply(&snap["data"][0]["bids"], &snap["data"][0]["asks"]);
    // BreakChain: prevSeqId one less than the last seqId, once.
    arm(&sim, ConnId(1), BookFault::BreakChain);
    let mut prev = snap;
    let bad = loop {
        let d = next_where(&mut ws, "the break", is_books);
        local.apply(&d["data"][0]["bids"], &d["data"][0]["asks"]);
        if !chained(&prev, &d) {
            break d;
        }
        prev = d;
    };
    let seq = prev["data"][0]["seqId"].as_i64().expect("seqId");
    assert_eq!(bad["data"][0]["prevSeqId"].as_i64(), Some(seq - 1));
    let next = next_where(&mut ws, "update", is_books);
    assert!(chained(&bad, &next));
    local.apply(&next["data"][0]["bids"], &next["data"][0]["asks"]);
    assert!(!local.crossed());
    // CrossBook: an update crosses the local book.
    arm(&sim, ConnId(1), BookFault::CrossBook);
    let deadline = Instant::now() + T;
    while !local.crossed() {
        assert!(Instant::now() < deadline, "never crossed");
        let d = next_where(&mut ws, "update", is_books);
        local.apply(&d["data"][0]["bids"], &d["data"][0]["asks"]);
    }
    // BadChecksum without okx_checksum: one non-zero checksum where OKX sends 0.
    arm(&sim, ConnId(1), BookFault::BadChecksum);
    next_where(&mut ws, "bad checksum", |v| {
        is_books(v) && v["data"][0]["checksum"] != 0
    });
    for _ in 0..5 {
        let d = next_where(&mut ws, "update", is_books);
        assert_eq!(d["data"][0]["checksum"], 0);
    }
}
