//! Binance spot WebSocket API user data stream: `userDataStream.subscribe.signature`
//! and its errors, wrapped events in order, unsubscribe, revoked credentials.

use super::*;

fn subscribe_request(id: &str, api_key: &str, secret: &str, timestamp: u64) -> String {
    let payload = format!("apiKey={api_key}&timestamp={timestamp}");
    let signature = sign_hex(secret, &payload);
    format!(
        r#"{{"id":"{id}","method":"userDataStream.subscribe.signature","params":{{"apiKey":"{api_key}","timestamp":{timestamp},"signature":"{signature}"}}}}"#
    )
}

fn event_kind(v: &Value) -> (AccountEventKind, u64) {
    let e = &v["event"];
    let kind = match e["e"].as_str() {
        Some("executionReport") => AccountEventKind::Order,
        Some("outboundAccountPosition" | "balanceUpdate") => AccountEventKind::Balance,
        other => panic!("unexpected event {other:?}: {v}"),
    };
    (kind, e["E"].as_u64().expect("E"))
}

#[test]
fn subscribe_signature_errors_then_events_then_unsubscribe() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let mut ws = connect(&sim, "/ws-api/v3");
    let conn = conn_on(&sim, "/ws-api/v3");
    let now = now_ms();
    send(&mut ws, &subscribe_request("a", "mallory-key", "x", now));
    let r = next_json(&mut ws, "invalid key");
    like_fixture(&r, "binance/private/ws_api_error_invalid_api_key.json");
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(401), Some(-2015))
    );
    send(
        &mut ws,
        &subscribe_request("b", "alice-key", "bob-secret", now),
    );
    let r = next_json(&mut ws, "bad signature");
    like_fixture(&r, "binance/private/ws_api_error_invalid_signature.json");
    assert_eq!(r["error"]["code"].as_i64(), Some(-1022));
    send(
        &mut ws,
        &subscribe_request("c", "alice-key", "alice-secret", now - 60_000),
    );
    let r = next_json(&mut ws, "stale timestamp");
    like_fixture(&r, "binance/private/ws_api_error_timestamp.json");
    assert!(
        sim.account_sent("alice").is_empty(),
        "nothing before a subscription"
    );

    send(
        &mut ws,
        &subscribe_request("d", "alice-key", "alice-secret", now_ms()),
    );
    let r = next_json(&mut ws, "subscribed");
    like_fixture(&r, "binance/private/ws_api_subscribe_response.json");
    assert_eq!(
        (r["id"].as_str(), r["result"]["subscriptionId"].as_u64()),
        (Some("d"), Some(0))
    );

    let all = collect(&mut ws, "user data", |all| {
        let seen = |e: &str| all.iter().any(|v| v["event"]["e"] == e);
        let status = |x: &str| all.iter().any(|v| v["event"]["X"] == x);
        seen("outboundAccountPosition")
            && seen("balanceUpdate")
            && ["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED"]
                .iter()
                .all(|x| status(x))
    });
    for v in &all {
        assert_eq!(v["subscriptionId"].as_u64(), Some(0));
        let file = match v["event"]["e"].as_str() {
            Some("executionReport") => "ws_api_execution_report",
            Some("outboundAccountPosition") => "ws_api_outbound_account_position",
            _ => "ws_api_balance_update",
        };
        like_fixture(v, &format!("binance/private/{file}.json"));
    }
    let kinds: Vec<_> = all.iter().map(event_kind).collect();
    matches_ground_truth(&sim, "alice", conn, &kinds);

    send(
        &mut ws,
        r#"{"id":"e","method":"userDataStream.unsubscribe"}"#,
    );
    let reply = read_until(&mut ws, "unsubscribe reply", |v| v["id"] == "e");
    assert_eq!(reply["status"].as_u64(), Some(200));
    let end = next_json(&mut ws, "eventStreamTerminated");
    like_fixture(&end, "binance/private/ws_api_event_stream_terminated.json");
    let recorded = sim.account_sent("alice").len();
    // Subscribed again: a new subscription id; the first one got nothing more.
    send(
        &mut ws,
        &subscribe_request("f", "alice-key", "alice-secret", now_ms()),
    );
    let r = next_json(&mut ws, "subscribed again");
    assert_eq!(r["result"]["subscriptionId"].as_u64(), Some(1));
    let next = next_json(&mut ws, "event of the new subscription");
    assert_eq!(next["subscriptionId"].as_u64(), Some(1));
    assert!(sim.account_sent("alice").len() > recorded);
}

#[test]
fn revoked_credentials_terminate_the_subscription() {
    let sim = Sim::start(accounts_cfg(SimVenue::Binance)).expect("sim");
    let mut ws = connect(&sim, "/ws-api/v3");
    send(
        &mut ws,
        &subscribe_request("1", "bob-key", "bob-secret", now_ms()),
    );
    assert_eq!(
        next_json(&mut ws, "subscribed")["status"].as_u64(),
        Some(200)
    );
    next_json(&mut ws, "an event");
    assert!(sim.revoke_account("bob"));
    read_until(&mut ws, "eventStreamTerminated", |v| {
        v["event"]["e"] == "eventStreamTerminated"
    });
    assert_eq!(close_code(&mut ws), 1008);
    let mut again = connect(&sim, "/ws-api/v3");
    send(
        &mut again,
        &subscribe_request("2", "bob-key", "bob-secret", now_ms()),
    );
    assert_eq!(
        next_json(&mut again, "refused")["error"]["code"].as_i64(),
        Some(-2015)
    );
}
