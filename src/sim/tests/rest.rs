//! Binance REST depth snapshot on the WebSocket port: endpoints and errors, a
//! snapshot plus the following diffs tracking the book exactly, and
//! `BookFault::SnapshotStale`.

use super::*;

/// One HTTP request: (status, raw headers, body).
fn http_get(stream: Box<dyn Rw>, target: &str) -> (u16, String, String) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sim-test\r\n\r\n");
    http_exchange(stream, &req)
}

fn rest(sim: &Sim, target: &str) -> (u16, String, Value) {
    let (status, head, body) = http_get(Box::new(tcp(sim)), target);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
    (status, head, v)
}

/// Levels of a REST snapshot or a diff as `Local` input.
fn local_of(snapshot: &Value) -> Local {
    let mut l = Local::default();
    l.apply(&snapshot["bids"], &snapshot["asks"]);
    l
}

#[test]
fn binance_rest_depth_endpoints_and_errors() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let (status, head, spot) = rest(&sim, "/api/v3/depth?symbol=BTCUSDT&limit=5");
    assert_eq!(status, 200);
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(keys(&spot), keys(&fixture("binance/depth_spot.json")));
    assert_eq!(spot["bids"].as_array().map(Vec::len), Some(5));
    assert_eq!(spot["bids"][0].as_array().map(Vec::len), Some(2));
    let (_, _, usdm) = rest(&sim, "/fapi/v1/depth?symbol=ETHUSDT&limit=1000");
    assert_eq!(keys(&usdm), keys(&fixture("binance/depth_usdm.json")));
    let l = local_of(&usdm);
    assert!(
        l.bids.len() >= 30 && l.asks.len() >= 30,
        "whole book: {}",
        l.bids.len()
    );
    assert!(!l.crossed());
    // Bids best first, asks best first.
    let bids: Vec<i64> = usdm["bids"]
        .as_array()
        .expect("bids")
        .iter()
        .map(|l| units(l[0].as_str().expect("p")))
        .collect();
    assert!(bids.windows(2).all(|w| w[0] > w[1]));
    let (_, _, dflt) = rest(&sim, "/api/v3/depth?symbol=ETHUSDT");
    assert!(dflt["bids"]
        .as_array()
        .map(Vec::len)
        .is_some_and(|n| n <= 100));
    for (target, status, code) in [
        ("/fapi/v1/depth?symbol=BTCUSDT&limit=7", 400, -1130),
        ("/api/v3/depth?limit=5", 400, -1102),
        ("/api/v3/depth?symbol=XRPUSDT", 400, -1121),
        ("/api/v3/depth?symbol=BTCUSDT&limit=x", 400, -1100),
        ("/api/v3/ticker", 404, -1),
    ] {
        let (s, _, v) = rest(&sim, target);
        assert_eq!(
            (s, v["code"].as_i64()),
            (status, Some(code)),
            "{target}: {v}"
        );
    }
    // Over TLS, on the same port as the WebSockets.
    let tls_sim = Sim::start(SimConfig {
        tls: true,
        ..fast_cfg()
    })
    .expect("start");
    let (status, _, body) = http_get(tls_stream(&tls_sim), "/api/v3/depth?symbol=BTCUSDT&limit=3");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["asks"].as_array().map(Vec::len), Some(3));
    let mut ws = match handshake(tungstenite::client::client_with_config(
        format!(
            "wss://localhost:{}/stream?streams=btcusdt@depth",
            tls_sim.port()
        ),
        tls_stream(&tls_sim),
        None,
    )) {
        Ok(ws) => ws,
        Err(e) => panic!("wss upgrade: {e:?}"),
    };
    read_until(&mut ws, "depth over tls", |v| {
        v["data"]["e"] == "depthUpdate"
    });
    assert_eq!(tls_sim.snapshot().rest_requests, 1);
    // Other venues serve no REST.
    let okx = Sim::start(venue_cfg(SimVenue::Okx)).expect("start");
    assert_eq!(rest(&okx, "/api/v3/depth?symbol=BTCUSDT").0, 404);
    assert_eq!(sim.snapshot().rest_requests, 8);
    assert!(
        sim.snapshot().connections.is_empty(),
        "REST is not a WebSocket connection"
    );
}

fn tls_stream(sim: &Sim) -> Box<dyn Rw> {
    let pem = sim.ca_pem().expect("ca pem");
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let name = ServerName::try_from("localhost".to_string()).expect("name");
    let conn = ClientConnection::new(cfg, name).expect("client");
    Box::new(StreamOwned::new(conn, tcp(sim)))
}

/// Binance's documented procedure (spot): buffer diffs, fetch a snapshot,
/// drop diffs with `u <= lastUpdateId`, the first applied one has
/// `U <= lastUpdateId + 1 <= u`, then each `U` is the previous `u + 1`.
/// Returns the local book and the update id it is at.
fn sync_binance(
    sim: &Sim,
    ws: &mut Client,
    pending: &mut Vec<Value>,
    target: &str,
) -> (Local, u64) {
    let (_, _, snap) = rest(sim, target);
    let last = snap["lastUpdateId"].as_u64().expect("lastUpdateId");
    let mut local = local_of(&snap);
    let deadline = Instant::now() + T;
    loop {
        if pending.is_empty() {
            assert!(Instant::now() < deadline, "no diff after the snapshot");
            let v = read_until(ws, "diff", |v| v.get("stream").is_some());
            pending.push(v);
            continue;
        }
        let v = pending.remove(0);
        let d = &v["data"];
        if d["e"] != "depthUpdate" {
            continue;
        }
        let (big_u, u) = (d["U"].as_u64().expect("U"), d["u"].as_u64().expect("u"));
        if u <= last {
            continue;
        }
        assert!(
            big_u <= last + 1 && last < u,
            "first diff [{big_u};{u}] vs snapshot {last}"
        );
        local.apply(&d["b"], &d["a"]);
        return (local, u);
    }
}

#[test]
fn binance_snapshot_plus_diffs_track_the_book_exactly() {
    // Several book changes per diff: a snapshot usually falls inside a diff.
    let sim = Sim::start(SimConfig {
        usdm_routing: false,
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(
        &sim,
        "/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    let mut pending: Vec<Value> = (0..20)
        .map(|_| read_until(&mut ws, "buffer", |v| v.get("stream").is_some()))
        .collect();
    let (mut local, mut id) = sync_binance(
        &sim,
        &mut ws,
        &mut pending,
        "/api/v3/depth?symbol=BTCUSDT&limit=1000",
    );
    // From here every diff's top of book equals the bookTicker of its last id.
    let mut quotes: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut checked = 0;
    let mut handle = |v: &Value, local: &mut Local, id: &mut u64, checked: &mut i32| {
        let d = &v["data"];
        match d["e"].as_str() {
            Some("bookTicker") => {
                quotes.insert(
                    d["u"].as_u64().expect("u"),
                    (
                        d["b"].as_str().expect("b").into(),
                        d["a"].as_str().expect("a").into(),
                    ),
                );
            }
            Some("depthUpdate") => {
                assert_eq!(d["U"].as_u64(), Some(*id + 1));
                local.apply(&d["b"], &d["a"]);
                *id = d["u"].as_u64().expect("u");
                let q = quotes
                    .get(id)
                    .unwrap_or_else(|| panic!("bookTicker {id} before its diff"));
                assert_eq!(
                    local.best_bid().map(|b| &b.0),
                    Some(&q.0),
                    "best bid at {id}"
                );
                assert_eq!(
                    local.best_ask().map(|a| &a.0),
                    Some(&q.1),
                    "best ask at {id}"
                );
                assert!(!local.crossed());
                *checked += 1;
            }
            _ => {}
        }
    };
    for v in std::mem::take(&mut pending) {
        handle(&v, &mut local, &mut id, &mut checked);
    }
    while checked < 15 {
        let v = read_until(&mut ws, "data", |v| v.get("stream").is_some());
        handle(&v, &mut local, &mut id, &mut checked);
    }

    // One change per diff: any snapshot's id is some diff's u, so the whole
    // book can be compared.
    let fine = Sim::start(SimConfig {
        usdm_routing: false,
        book_interval: Duration::from_millis(10),
        depth_interval: Duration::from_millis(1),
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(&fine, "/stream?streams=ethusdt@depth");
    let mut pending: Vec<Value> = (0..3)
        .map(|_| read_until(&mut ws, "buffer", |v| v.get("stream").is_some()))
        .collect();
    let (mut local, mut id) = sync_binance(
        &fine,
        &mut ws,
        &mut pending,
        "/fapi/v1/depth?symbol=ETHUSDT&limit=1000",
    );
    for round in 0..3 {
        let (_, _, snap) = rest(&fine, "/fapi/v1/depth?symbol=ETHUSDT&limit=1000");
        let target = snap["lastUpdateId"].as_u64().expect("id");
        while id < target {
            let v = if pending.is_empty() {
                read_until(&mut ws, "diff", |v| v.get("stream").is_some())
            } else {
                pending.remove(0)
            };
            let d = &v["data"];
            assert_eq!(d["pu"].as_u64(), Some(id), "round {round}");
            local.apply(&d["b"], &d["a"]);
            id = d["u"].as_u64().expect("u");
        }
        assert_eq!(id, target, "one change per diff");
        assert_eq!(local, local_of(&snap), "book at {target}, round {round}");
    }
}

#[test]
fn snapshot_stale_serves_the_oldest_book_once() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@depth");
    let first = read_until(&mut ws, "diff", |v| v["data"]["e"] == "depthUpdate");
    let first_u = first["data"]["U"].as_u64().expect("U");
    sim.inject_book(BookFault::SnapshotStale);
    let (_, _, stale) = rest(&sim, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000");
    let stale_id = stale["lastUpdateId"].as_u64().expect("id");
    assert!(
        stale_id < first_u,
        "stale {stale_id} < first buffered U {first_u}"
    );
    let (_, _, fresh) = rest(&sim, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000");
    assert!(fresh["lastUpdateId"].as_u64().expect("id") >= first_u);
    let snap = sim.snapshot();
    assert_eq!((snap.stale_snapshots_served, snap.faults_injected), (1, 1));
    assert!(BookFault::SnapshotStale.is_listener_fault());
}
