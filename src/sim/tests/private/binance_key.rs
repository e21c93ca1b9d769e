//! Binance USDⓈ-M user data stream on a listen key: the REST endpoints,
//! events in order against the ground truth, expiry, refused keep-alives,
//! revoked credentials, a connection dropped mid-stream.

use super::*;

fn post_key(sim: &Sim, api_key: &str) -> String {
    let (status, body) = http(sim, "POST", "/fapi/v1/listenKey", Some(api_key));
    assert_eq!(status, 200, "{body}");
    like_fixture(&body, "binance/private/listen_key_response.json");
    body["listenKey"].as_str().expect("listenKey").to_string()
}

/// Reads data messages until `done` holds for the event types seen; returns
/// them all with (kind, event time).
fn read_events(
    ws: &mut Client,
    done: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, Vec<(AccountEventKind, u64)>) {
    let all = collect(ws, "user data", |v| done(v));
    let kinds = all
        .iter()
        .map(|v| {
            let kind = match v["e"].as_str() {
                Some("ORDER_TRADE_UPDATE") => AccountEventKind::Order,
                Some("ACCOUNT_UPDATE") => AccountEventKind::Balance,
                other => panic!("unexpected event {other:?}: {v}"),
            };
            (kind, v["E"].as_u64().expect("E"))
        })
        .collect();
    (all, kinds)
}

fn status_seen(all: &[Value], status: &str) -> bool {
    all.iter().any(|v| v["o"]["X"] == status)
}

#[test]
fn listen_key_stream_delivers_documented_events_in_order() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let (status, body) = http(&sim, "POST", "/fapi/v1/listenKey", Some("mallory-key"));
    assert_eq!(
        (status, body),
        (401, fixture("binance/private/error_invalid_api_key.json"))
    );
    let (status, _) = http(&sim, "POST", "/fapi/v1/listenKey", None);
    assert_eq!(status, 401);
    let key = post_key(&sim, "alice-key");
    assert_eq!(
        post_key(&sim, "alice-key"),
        key,
        "POST returns the active key"
    );
    let (status, body) = http(&sim, "PUT", "/fapi/v1/listenKey", Some("alice-key"));
    assert_eq!(status, 200);
    like_fixture(&body, "binance/private/listen_key_keepalive_response.json");
    assert_eq!(
        try_connect(&sim, "/private/ws?listenKey=nokey")
            .err()
            .map(|r| r.status),
        Some(400)
    );

    let mut ws = connect(&sim, &format!("/private/ws?listenKey={key}"));
    let conn = conn_on(&sim, "/private/ws");
    let (all, kinds) = read_events(&mut ws, |all| {
        ["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"]
            .iter()
            .all(|s| status_seen(all, s))
            && all.iter().any(|v| v["a"]["m"] == "DEPOSIT")
    });
    for v in &all {
        match v["e"].as_str() {
            Some("ORDER_TRADE_UPDATE") => {
                like_fixture(v, "binance/private/order_trade_update.json")
            }
            _ => like_fixture(v, "binance/private/account_update.json"),
        }
        assert!(v["E"].as_u64() > Some(0));
    }
    // Every fill moves the position and the balance: an ACCOUNT_UPDATE follows it.
    for (i, v) in all.iter().enumerate() {
        if v["o"]["x"] == "TRADE" {
            assert_eq!(all[i + 1]["a"]["m"], "ORDER", "after {v}");
            let pos = &all[i + 1]["a"]["P"][0];
            assert_eq!(pos["s"], v["o"]["s"]);
        }
    }
    matches_ground_truth(&sim, "alice", conn, &kinds);
    assert!(sim.account_sent("bob").iter().all(|r| r.conn != conn));

    // The raw `/ws/<listenKey>` form serves the same account stream.
    let mut raw = connect(&sim, &format!("/ws/{key}"));
    let first = next_json(&mut raw, "first event on /ws/<key>");
    assert!(first["e"] == "ORDER_TRADE_UPDATE" || first["e"] == "ACCOUNT_UPDATE");
}

#[test]
fn expired_key_says_so_and_stops_delivering() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let key = post_key(&sim, "alice-key");
    let mut ws = connect(&sim, &format!("/private/ws/{key}"));
    let conn = conn_on(&sim, "/private/ws");
    next_json(&mut ws, "a first event");
    assert!(sim.expire_listen_key("alice"));
    let expired = read_until(&mut ws, "listenKeyExpired", |v| {
        v["e"] == "listenKeyExpired"
    });
    like_fixture(&expired, "binance/private/listen_key_expired.json");
    assert_eq!(expired["listenKey"], key.as_str());
    let delivered = sim
        .account_sent("alice")
        .iter()
        .filter(|r| r.conn == conn)
        .count();
    let (status, body) = http(
        &sim,
        "PUT",
        &format!("/fapi/v1/listenKey?listenKey={key}"),
        Some("alice-key"),
    );
    assert_eq!(
        (status, body),
        (
            400,
            fixture("binance/private/error_listen_key_does_not_exist.json")
        )
    );
    // A new key and connection: once it has had several events, the expired one got none.
    let key2 = post_key(&sim, "alice-key");
    assert_ne!(key2, key);
    let mut ws2 = connect(&sim, &format!("/private/ws?listenKey={key2}"));
    let conn2 = ConnId(conn.0 + 1);
    assert!(sim.wait_until(T, |_| sim
        .account_sent("alice")
        .iter()
        .filter(|r| r.conn == conn2)
        .count()
        >= 5));
    next_json(&mut ws2, "event on the new key");
    assert_eq!(
        sim.account_sent("alice")
            .iter()
            .filter(|r| r.conn == conn)
            .count(),
        delivered
    );
    assert_eq!(
        try_connect(&sim, &format!("/private/ws/{key}"))
            .err()
            .map(|r| r.status),
        Some(400)
    );
}

#[test]
fn keepalives_refused_signed_and_deleted() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let key = post_key(&sim, "bob-key");
    sim.refuse_keepalives(2);
    for _ in 0..2 {
        let (status, body) = http(&sim, "PUT", "/fapi/v1/listenKey", Some("bob-key"));
        assert_eq!((status, body["code"].as_i64()), (400, Some(-1125)));
    }
    let (status, body) = http(&sim, "PUT", "/fapi/v1/listenKey", Some("bob-key"));
    assert_eq!(
        (status, body["listenKey"].as_str()),
        (200, Some(key.as_str()))
    );
    // Signed: HMAC-SHA256 hex of the query before `signature`.
    let q = format!("timestamp={}", now_ms());
    let good = format!("{q}&signature={}", sign_hex("bob-secret", &q));
    assert_eq!(
        http(
            &sim,
            "PUT",
            &format!("/fapi/v1/listenKey?{good}"),
            Some("bob-key")
        )
        .0,
        200
    );
    let bad = format!("{q}&signature={}", sign_hex("alice-secret", &q));
    let (status, body) = http(
        &sim,
        "PUT",
        &format!("/fapi/v1/listenKey?{bad}"),
        Some("bob-key"),
    );
    assert_eq!(
        (status, body),
        (400, fixture("binance/private/error_invalid_signature.json"))
    );
    let old = "timestamp=1000";
    let stale = format!("{old}&signature={}", sign_hex("bob-secret", old));
    let (status, body) = http(
        &sim,
        "POST",
        &format!("/fapi/v1/listenKey?{stale}"),
        Some("bob-key"),
    );
    assert_eq!(
        (status, body),
        (
            400,
            fixture("binance/private/error_timestamp_outside_recv_window.json")
        )
    );
    let mut ws = connect(&sim, &format!("/private/ws?listenKey={key}"));
    next_json(&mut ws, "an event");
    let (status, body) = http(&sim, "DELETE", "/fapi/v1/listenKey", Some("bob-key"));
    assert_eq!(status, 200);
    like_fixture(&body, "binance/private/listen_key_delete_response.json");
    assert_eq!(close_code(&mut ws), 1008);
}

#[test]
fn revoked_credentials_close_the_stream_and_fail_later_requests() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let key = post_key(&sim, "alice-key");
    let bob = post_key(&sim, "bob-key");
    let mut ws = connect(&sim, &format!("/private/ws?listenKey={key}"));
    let mut ws_bob = connect(&sim, &format!("/private/ws?listenKey={bob}"));
    next_json(&mut ws, "an event");
    assert!(sim.revoke_account("alice"));
    assert_eq!(close_code(&mut ws), 1008);
    let (status, body) = http(&sim, "POST", "/fapi/v1/listenKey", Some("alice-key"));
    assert_eq!(
        (status, body),
        (401, fixture("binance/private/error_invalid_api_key.json"))
    );
    // Bob is untouched.
    next_json(&mut ws_bob, "bob's event");
    assert_eq!(post_key(&sim, "bob-key"), bob);
}

#[test]
fn a_private_connection_dropped_mid_stream() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let key = post_key(&sim, "alice-key");
    let mut ws = connect(&sim, &format!("/private/ws?listenKey={key}"));
    let conn = conn_on(&sim, "/private/ws");
    next_json(&mut ws, "an event");
    sim.inject_on(conn, Fault::Reset);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(_)) => {}
            Some(Err(_)) => break,
            None => panic!("the reset never arrived"),
        }
    }
    assert!(sim.wait_until(T, |s| s.conn(conn).is_some_and(|c| !c.open)));
    // The key still works: a new connection resumes the stream.
    let mut again = connect(&sim, &format!("/private/ws?listenKey={key}"));
    next_json(&mut again, "an event after reconnecting");
}
