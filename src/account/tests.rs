//! Each venue's private messages, as documented (`tests/fixtures/<venue>/private/`), read into
//! frames and events.

use std::time::Duration;

use super::*;
use crate::auth::Secret;

fn fixture(venue: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/{venue}/private/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An account of `venue` with made-up credentials (key `k`, secret `s`, passphrase `p`), every
/// event kind: the other modules' tests use it too.
pub(crate) fn params(venue: Venue) -> AccountParams {
    AccountParams {
        name: "a".into(),
        venue,
        protocol: Protocol::of(venue).expect("a built-in venue"),
        creds: Credentials {
            key: Secret::new("k"),
            secret: Secret::new("s"),
            passphrase: Some(Secret::new("p")),
        },
        key_env: "K".into(),
        secret_env: "S".into(),
        events: EventKind::ALL.to_vec(),
        rest_base: None,
        keepalive_every: Duration::from_secs(1800),
        ed25519: false,
    }
}

fn read(venue: Venue, text: &str) -> (PrivateFrame, Vec<AccountEvent>) {
    let mut events = Vec::new();
    let frame = classify(&params(venue), text, &mut events).expect("reads");
    (frame, events)
}

fn order(e: &AccountEvent) -> &OrderUpdate {
    match e {
        AccountEvent::Order(o) => o,
        other => panic!("not an order: {other:?}"),
    }
}

#[test]
fn binance_usdm_orders_balances_positions_and_expiry() {
    let v = Venue::BinanceUsdm;
    let (f, e) = read(v, &fixture("binance", "order_trade_update"));
    assert_eq!(f, PrivateFrame::Events { skipped: None });
    let o = order(&e[0]);
    assert_eq!(
        (
            o.symbol.as_str(),
            o.client_order_id.as_str(),
            o.order_id.as_str()
        ),
        ("BTCUSDT", "TEST", "8886774")
    );
    assert_eq!(
        (o.side, o.status, o.quantity),
        (OrderSide::Sell, OrderStatus::New, 0.001)
    );
    assert_eq!(
        (o.fee_asset.as_str(), o.time_ms),
        ("USDT", 1_568_879_465_650)
    );
    let (_, e) = read(v, &fixture("binance", "account_update"));
    assert!(
        matches!(e[0], AccountEvent::Balance(b) if b.asset.as_str() == "USDT" && b.total == 122_624.123_456_78)
    );
    assert!(
        matches!(e[1], AccountEvent::Position(p) if p.symbol.as_str() == "BTCUSDT" && p.size == 0.0)
    );
    assert_eq!(
        read(v, &fixture("binance", "listen_key_expired")).0,
        PrivateFrame::Expired {
            key: Some("WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv".into())
        }
    );
}

#[test]
fn binance_spot_websocket_api_answers_events_and_refusals() {
    let v = Venue::BinanceSpot;
    let (f, e) = read(v, &fixture("binance", "ws_api_execution_report"));
    assert_eq!(f, PrivateFrame::Events { skipped: None });
    let o = order(&e[0]);
    assert_eq!(
        (o.symbol.as_str(), o.price, o.status),
        ("ETHBTC", 0.102_644_1, OrderStatus::New)
    );
    assert!(o.fee_asset.is_empty(), "N is null");
    let (_, e) = read(v, &fixture("binance", "ws_api_outbound_account_position"));
    assert!(
        matches!(e[0], AccountEvent::Balance(b) if b.total == 10_000.0 && b.available == 10_000.0)
    );
    let (_, e) = read(v, &fixture("binance", "ws_api_balance_update"));
    assert!(matches!(e[0], AccountEvent::Balance(b) if b.change == 100.0 && b.total.is_nan()));
    assert_eq!(
        read(v, &fixture("binance", "ws_api_event_stream_terminated")).0,
        PrivateFrame::Expired { key: None }
    );
    // Ids this engine sends are numbers; the fixtures' UUIDs are someone else's.
    let ours = fixture("binance", "ws_api_subscribe_response")
        .replace("d3df8a22-98ea-4fe0-9f4e-0fcea5d418b7", "7");
    assert_eq!(read(v, &ours).0, PrivateFrame::Ack { id: 7 });
    for (name, code) in [
        ("ws_api_error_invalid_api_key", -2015),
        ("ws_api_error_invalid_signature", -1022),
    ] {
        let (f, _) = read(
            v,
            &fixture("binance", name).replace("d3df8a22-98ea-4fe0-9f4e-0fcea5d418b7", "7"),
        );
        assert!(
            matches!(f, PrivateFrame::Error { id: Some(7), code: c, credentials: true, .. } if c == code),
            "{name}: {f:?}"
        );
    }
    let (f, _) = read(v, &fixture("binance", "ws_api_error_timestamp"));
    assert!(
        matches!(
            f,
            PrivateFrame::Error {
                credentials: false,
                ..
            }
        ),
        "a clock problem: {f:?}"
    );
}

#[test]
fn bybit_logins_subscriptions_and_every_topic() {
    let v = Venue::BybitLinear;
    assert_eq!(
        read(v, &fixture("bybit", "auth_success")).0,
        PrivateFrame::LoggedIn
    );
    for name in ["auth_failure_api_key", "auth_failure_signature"] {
        let (f, _) = read(v, &fixture("bybit", name));
        assert!(
            matches!(
                f,
                PrivateFrame::Error {
                    credentials: true,
                    ..
                }
            ),
            "{name}: {f:?}"
        );
    }
    let other = r#"{"success":false,"ret_msg":"System busy","op":"auth","conn_id":"c"}"#;
    assert!(matches!(
        read(v, other).0,
        PrivateFrame::Error {
            credentials: false,
            ..
        }
    ));
    let (f, _) = read(v, &fixture("bybit", "auth_failure_expired"));
    assert!(
        matches!(
            f,
            PrivateFrame::Error {
                credentials: false,
                ..
            }
        ),
        "{f:?}"
    );
    assert_eq!(
        read(v, &fixture("bybit", "subscribe_success")).0,
        PrivateFrame::Ack { id: 10002 }
    );
    let (_, e) = read(v, &fixture("bybit", "order"));
    let o = order(&e[0]);
    assert_eq!(
        (o.status, o.filled_quantity, o.client_order_id.as_str()),
        (OrderStatus::Filled, 1.0, "test-001")
    );
    let (_, e) = read(v, &fixture("bybit", "execution"));
    let o = order(&e[0]);
    assert_eq!(
        (o.last_fill_price, o.last_fill_quantity, o.status),
        (95_900.1, 0.5, OrderStatus::Filled)
    );
    let (_, e) = read(v, &fixture("bybit", "position"));
    assert!(
        matches!(e[0], AccountEvent::Position(p) if p.size == 0.01 && p.entry_price == 28_184.5)
    );
    let (_, e) = read(v, &fixture("bybit", "wallet"));
    assert!(
        matches!(e[0], AccountEvent::Balance(b) if b.asset.as_str() == "USDT" && b.available == 9_556.605_655_5)
    );
}

#[test]
fn okx_logins_errors_and_every_channel() {
    let v = Venue::Okx;
    assert_eq!(
        read(v, &fixture("okx", "login_success")).0,
        PrivateFrame::LoggedIn
    );
    for name in [
        "error_invalid_api_key",
        "error_invalid_sign",
        "error_wrong_passphrase",
        "login_failure",
    ] {
        let (f, _) = read(v, &fixture("okx", name));
        assert!(
            matches!(
                f,
                PrivateFrame::Error {
                    id: None,
                    credentials: true,
                    ..
                }
            ),
            "{name}: {f:?}"
        );
    }
    // Sequencing and a late timestamp are errors, not refused credentials.
    for name in ["error_please_log_in", "error_timestamp_expired"] {
        let (f, _) = read(v, &fixture("okx", name));
        assert!(
            matches!(
                f,
                PrivateFrame::Error {
                    credentials: false,
                    ..
                }
            ),
            "{name}: {f:?}"
        );
    }
    assert_eq!(
        read(v, &fixture("okx", "subscribe_event")).0,
        PrivateFrame::Ack { id: 1512 }
    );
    let (_, e) = read(v, &fixture("okx", "orders"));
    let o = order(&e[0]);
    assert_eq!(
        (o.symbol.as_str(), o.status, o.last_fill_price, o.fee),
        ("BTC-USDT-SWAP", OrderStatus::Filled, 5.0, -0.01)
    );
    let (_, e) = read(v, &fixture("okx", "positions"));
    assert!(matches!(e[0], AccountEvent::Position(p) if p.size == 1.0 && p.entry_price == 2566.31));
    let (_, e) = read(v, &fixture("okx", "account"));
    assert!(
        matches!(e[0], AccountEvent::Balance(b) if b.asset.as_str() == "USDT" && b.total == 4734.37)
    );
    assert_eq!(read(v, "pong").0, PrivateFrame::Pong);
}

#[test]
fn only_the_kinds_asked_for_are_kept_and_bad_input_is_an_error() {
    let mut p = params(Venue::Okx);
    p.events = vec![EventKind::Balances];
    let mut events = Vec::new();
    classify(&p, &fixture("okx", "orders"), &mut events).unwrap();
    assert!(events.is_empty());
    classify(&p, &fixture("okx", "account"), &mut events).unwrap();
    assert_eq!(events.len(), 1);
    let err = classify(&p, "{not json", &mut events).unwrap_err();
    assert!(err.contains("not JSON"), "{err}");
    // Two orders, one in a state nobody knows: the other is delivered, the bad one noted.
    let v: serde_json::Value = serde_json::from_str(&fixture("okx", "orders")).unwrap();
    let good = v["data"][0].clone();
    let mut bad = good.clone();
    bad["state"] = "exploded".into();
    let two = serde_json::json!({ "arg": v["arg"], "data": [bad, good] }).to_string();
    events.clear();
    let frame = classify(&params(Venue::Okx), &two, &mut events).unwrap();
    assert!(
        matches!(&frame, PrivateFrame::Events { skipped: Some(e) } if e.contains("unknown order state 'exploded'")),
        "{frame:?}"
    );
    assert_eq!(events.len(), 1);
}

#[test]
fn login_requests_are_signed_as_each_venue_documents() {
    let p = params(Venue::BinanceSpot);
    let req: serde_json::Value =
        serde_json::from_str(&p.login_request(3, 1_747_385_641_636).unwrap()).unwrap();
    assert_eq!(req["method"], "userDataStream.subscribe.signature");
    assert_eq!(
        req["params"]["signature"],
        crate::auth::hmac_sha256_hex(&Secret::new("s"), "apiKey=k&timestamp=1747385641636")
    );
    let p = params(Venue::Okx);
    let req: serde_json::Value =
        serde_json::from_str(&p.login_request(1, 1_538_054_050_000).unwrap()).unwrap();
    assert_eq!(req["args"][0]["timestamp"], "1538054050");
    assert!(params(Venue::BinanceUsdm).login_request(1, 0).is_none());
    let subs = params(Venue::BybitLinear).subscribe_requests(5);
    assert_eq!(
        subs,
        [r#"{"req_id":"5","op":"subscribe","args":["order","execution","position","wallet"]}"#]
    );
}

/// A fresh Ed25519 key as PKCS#8 PEM, and its public key.
fn ed25519_pem() -> (String, Vec<u8>) {
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    (pem, pair.public_key().as_ref().to_vec())
}

#[test]
fn an_ed25519_spot_account_logs_on_with_a_signature_the_public_key_verifies_then_subscribes() {
    use base64::Engine as _;
    let (pem, public) = ed25519_pem();
    let mut p = params(Venue::BinanceSpot);
    p.creds.secret = Secret::new(pem);
    p.ed25519 = true;
    let req: serde_json::Value =
        serde_json::from_str(&p.login_request(4, 1_747_385_641_636).unwrap()).unwrap();
    assert_eq!(req["method"], "session.logon");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(req["params"]["signature"].as_str().unwrap())
        .unwrap();
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public);
    key.verify(b"apiKey=k&timestamp=1747385641636", &signature)
        .expect("the signature of the sorted parameters");
    assert_eq!(
        p.subscribe_requests(5),
        [r#"{"id":"5","method":"userDataStream.subscribe"}"#]
    );
    // A key that is not one is a clear error that shows nothing of it.
    let err = crate::auth::check_ed25519(&Secret::new("not-a-key")).unwrap_err();
    assert!(
        err.contains("neither PEM nor base64") && !err.contains("not-a-key"),
        "{err}"
    );
}

#[test]
fn a_rate_limited_login_says_how_long_to_stay_away() {
    let now = crate::clock::unix_ns() / 1_000_000;
    let text = format!(
        r#"{{"id":"3","status":429,"error":{{"code":-1003,"msg":"Too much request weight used.","data":{{"serverTime":{now},"retryAfter":{}}}}}}}"#,
        now + 2500
    );
    let (f, _) = read(Venue::BinanceSpot, &text);
    assert!(
        matches!(
            f,
            PrivateFrame::RateLimited {
                status: 429,
                retry_after_s: Some(2 | 3),
                ..
            }
        ),
        "{f:?}"
    );
}
