//! Bybit v5 private stream: auth and its failures, subscriptions before and
//! after auth, the four topics in order against the ground truth, revoked
//! credentials.

use super::*;

fn auth(key: &str, secret: &str, expires: u64) -> String {
    let sig = sign_hex(secret, &format!("GET/realtime{expires}"));
    format!(r#"{{"req_id":"auth-1","op":"auth","args":["{key}",{expires},"{sig}"]}}"#)
}

fn kind_of(v: &Value) -> (AccountEventKind, u64) {
    let kind = match v["topic"].as_str() {
        Some("order") => AccountEventKind::Order,
        Some("execution") => AccountEventKind::Execution,
        Some("position") => AccountEventKind::Position,
        Some("wallet") => AccountEventKind::Balance,
        other => panic!("unexpected topic {other:?}: {v}"),
    };
    (kind, v["creationTime"].as_u64().expect("creationTime"))
}

#[test]
fn auth_subscribe_and_the_four_topics() {
    let sim = Sim::start(accounts_cfg(SimVenue::BybitLinear)).expect("sim");
    let mut ws = connect(&sim, "/v5/private");
    let conn = conn_on(&sim, "/v5/private");
    let sub =
        r#"{"req_id":"10002","op":"subscribe","args":["order","execution","position","wallet"]}"#;
    send(&mut ws, sub);
    let r = next_json(&mut ws, "not authorized");
    like_fixture(&r, "bybit/private/subscribe_failure_unauthorized.json");
    assert_eq!(r["success"], false);
    let soon = now_ms() + 10_000;
    for (req, file) in [
        (auth("mallory-key", "x", soon), "auth_failure_api_key"),
        (
            auth("alice-key", "bob-secret", soon),
            "auth_failure_signature",
        ),
        (
            auth("alice-key", "alice-secret", now_ms() - 1_000),
            "auth_failure_expired",
        ),
    ] {
        send(&mut ws, &req);
        let r = next_json(&mut ws, file);
        let mut expected = fixture(&format!("bybit/private/{file}.json"));
        expected["conn_id"] = r["conn_id"].clone();
        expected["req_id"] = "auth-1".into();
        assert_eq!(r, expected);
    }
    send(&mut ws, &auth("alice-key", "alice-secret", soon));
    let r = next_json(&mut ws, "auth");
    let mut expected = fixture("bybit/private/auth_success.json");
    expected["conn_id"] = r["conn_id"].clone();
    expected["req_id"] = "auth-1".into();
    assert_eq!(r, expected);
    send(&mut ws, sub);
    let r = read_until(&mut ws, "subscribed", |v| v["op"] == "subscribe");
    like_fixture(&r, "bybit/private/subscribe_success.json");
    assert_eq!(r["success"], true);

    let all = collect(&mut ws, "private topics", |all| {
        let st = |s: &str| {
            all.iter()
                .any(|v| v["topic"] == "order" && v["data"][0]["orderStatus"] == s)
        };
        ["New", "PartiallyFilled", "Filled", "Cancelled", "Rejected"]
            .iter()
            .all(|s| st(s))
            && all.iter().any(|v| v["topic"] == "wallet")
    });
    for v in &all {
        like_fixture(
            v,
            &format!("bybit/private/{}.json", v["topic"].as_str().expect("topic")),
        );
    }
    // A fill: order, execution, position, wallet, in that order.
    let i = all
        .iter()
        .position(|v| v["topic"] == "execution")
        .expect("an execution");
    assert_eq!(all[i - 1]["topic"], "order");
    assert_eq!(all[i + 1]["topic"], "position");
    assert_eq!(all[i + 2]["topic"], "wallet");
    assert_eq!(
        all[i]["data"][0]["orderId"],
        all[i - 1]["data"][0]["orderId"]
    );
    let kinds: Vec<_> = all.iter().map(kind_of).collect();
    matches_ground_truth(&sim, "alice", conn, &kinds);

    // Only the subscribed topics after an unsubscribe.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":["execution","position","wallet"]}"#,
    );
    read_until(&mut ws, "unsubscribed", |v| v["op"] == "unsubscribe");
    let rest = collect(&mut ws, "orders only", |all| all.len() >= 10);
    assert!(rest.iter().all(|v| v["topic"] == "order"));
    send(&mut ws, r#"{"req_id":"p","op":"ping"}"#);
    read_until(&mut ws, "pong", |v| v["op"] == "pong");
}

#[test]
fn revoked_credentials_close_and_refuse_auth() {
    let sim = Sim::start(accounts_cfg(SimVenue::BybitSpot)).expect("sim");
    let mut ws = connect(&sim, "/v5/private");
    send(&mut ws, &auth("bob-key", "bob-secret", now_ms() + 10_000));
    assert_eq!(next_json(&mut ws, "auth")["success"], true);
    send(&mut ws, r#"{"op":"subscribe","args":["order"]}"#);
    read_until(&mut ws, "an order", |v| v["topic"] == "order");
    assert!(sim.revoke_account("bob"));
    assert_eq!(close_code(&mut ws), 1008);
    let mut again = connect(&sim, "/v5/private");
    send(
        &mut again,
        &auth("bob-key", "bob-secret", now_ms() + 10_000),
    );
    assert_eq!(
        next_json(&mut again, "refused")["ret_msg"],
        "API key is invalid."
    );
}
