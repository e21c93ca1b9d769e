//! OKX v5 private stream: login and its errors, subscriptions before and
//! after login, the three channels in order against the ground truth,
//! revoked credentials.

use super::*;

fn login(key: &str, pass: &str, secret: &str, ts_s: u64) -> String {
    let sign = sign_b64(secret, &format!("{ts_s}GET/users/self/verify"));
    format!(
        r#"{{"op":"login","args":[{{"apiKey":"{key}","passphrase":"{pass}","timestamp":"{ts_s}","sign":"{sign}"}}]}}"#
    )
}

fn kind_of(v: &Value) -> (AccountEventKind, u64) {
    let kind = match v["arg"]["channel"].as_str() {
        Some("orders") => AccountEventKind::Order,
        Some("positions") => AccountEventKind::Position,
        Some("account") => AccountEventKind::Balance,
        other => panic!("unexpected channel {other:?}: {v}"),
    };
    let t = v["data"][0]["uTime"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("uTime");
    (kind, t)
}

#[test]
fn login_subscribe_and_the_three_channels() {
    let sim = Sim::start(accounts_cfg(SimVenue::Okx)).expect("sim");
    let mut ws = connect(&sim, "/ws/v5/private");
    let conn = conn_on(&sim, "/ws/v5/private");
    let sub = r#"{"id":"1512","op":"subscribe","args":[{"channel":"orders","instType":"ANY"},{"channel":"positions","instType":"ANY"},{"channel":"account"}]}"#;
    send(&mut ws, sub);
    let r = next_json(&mut ws, "please log in");
    assert_eq!(r["code"], "60011");
    let now = now_ms() / 1000;
    for (req, file) in [
        (login("mallory-key", "p", "x", now), "error_invalid_api_key"),
        (
            login("alice-key", "wrong", "alice-secret", now),
            "error_wrong_passphrase",
        ),
        (
            login("alice-key", "alice-pass", "bob-secret", now),
            "error_invalid_sign",
        ),
        (
            login("alice-key", "alice-pass", "alice-secret", now - 60),
            "error_timestamp_expired",
        ),
    ] {
        send(&mut ws, &req);
        let r = next_json(&mut ws, file);
        let mut expected = fixture(&format!("okx/private/{file}.json"));
        expected["connId"] = r["connId"].clone();
        assert_eq!(r, expected);
    }
    send(
        &mut ws,
        &login("alice-key", "alice-pass", "alice-secret", now),
    );
    let r = next_json(&mut ws, "login");
    let mut expected = fixture("okx/private/login_success.json");
    expected["connId"] = r["connId"].clone();
    assert_eq!(r, expected);
    send(&mut ws, sub);
    for channel in ["orders", "positions", "account"] {
        let r = read_until(&mut ws, "subscribe event", |v| v["event"] == "subscribe");
        assert_eq!(r["arg"]["channel"], channel);
        if channel == "account" {
            // The argument comes back as sent: `account` has no instType.
            assert_eq!(keys(&r["arg"]), keys(&serde_json::json!({"channel": 1})));
        } else {
            like_fixture(&r, "okx/private/subscribe_event.json");
        }
    }
    let all = collect(&mut ws, "private channels", |all| {
        let st = |s: &str| all.iter().any(|v| v["data"][0]["state"] == s);
        ["live", "partially_filled", "filled", "canceled"]
            .iter()
            .all(|s| st(s))
            && all.iter().any(|v| v["arg"]["channel"] == "account")
    });
    for v in &all {
        like_fixture(
            v,
            &format!(
                "okx/private/{}.json",
                v["arg"]["channel"].as_str().expect("channel")
            ),
        );
        assert_eq!(v["arg"]["uid"].as_str().map(|u| !u.is_empty()), Some(true));
    }
    let kinds: Vec<_> = all.iter().map(kind_of).collect();
    matches_ground_truth(&sim, "alice", conn, &kinds);
    send(&mut ws, "ping");
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) if t.as_str() == "pong" => break,
            Some(Ok(_)) => {}
            other => panic!("waiting for pong: {other:?}"),
        }
    }
}

#[test]
fn revoked_credentials_close_and_refuse_login() {
    let sim = Sim::start(accounts_cfg(SimVenue::Okx)).expect("sim");
    let mut ws = connect(&sim, "/ws/v5/private");
    send(
        &mut ws,
        &login("bob-key", "bob-pass", "bob-secret", now_ms() / 1000),
    );
    assert_eq!(next_json(&mut ws, "login")["code"], "0");
    send(
        &mut ws,
        r#"{"op":"subscribe","args":[{"channel":"orders","instType":"ANY"}]}"#,
    );
    read_until(&mut ws, "an order", |v| v["arg"]["channel"] == "orders");
    assert!(sim.revoke_account("bob"));
    assert_eq!(close_code(&mut ws), 1008);
    let mut again = connect(&sim, "/ws/v5/private");
    send(
        &mut again,
        &login("bob-key", "bob-pass", "bob-secret", now_ms() / 1000),
    );
    assert_eq!(next_json(&mut again, "refused")["code"], "60005");
}
