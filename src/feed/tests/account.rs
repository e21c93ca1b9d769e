//! An account's feed driven without sockets: the log-in and subscriptions of each venue, events
//! in order, a refused credential, and a listen key (its URL, its expiry, a new key).

use super::*;
use crate::account::listen_key::KeyOp;
use crate::account::{AccountParams, OrderStatus, Protocol};
use crate::auth::{Credentials, Secret};
use crate::config::ReconnectConfig;

fn account_feed(venue: Venue, rest_base: Option<&str>) -> (FeedCore, Arc<FeedStats>) {
    let rest = rest_base.map(String::from);
    account_feed_with(venue, move |a, _| a.rest_base = rest)
}

fn account_feed_with(
    venue: Venue,
    tweak: impl FnOnce(&mut AccountParams, &mut ReconnectConfig),
) -> (FeedCore, Arc<FeedStats>) {
    let protocol = Protocol::of(venue).expect("a built-in venue");
    let endpoint = Endpoint::parse("ws://127.0.0.1:9443").unwrap();
    let target = Target {
        url: endpoint.url(protocol.path()),
        gate: Arc::new(ConnectGate::new("h".into(), 1000, Duration::from_secs(1))),
        endpoint,
    };
    let stats = Arc::new(FeedStats::new("acct".into(), "ws://x".into()));
    let mut account = crate::account::tests::params(venue);
    account.name = "acct".into();
    account.creds = Credentials {
        key: Secret::new("the-key"),
        secret: Secret::new("the-secret"),
        passphrase: Some(Secret::new("the-passphrase")),
    };
    (account.key_env, account.secret_env) = ("KEY".into(), "SECRET".into());
    let mut reconnect = cfg();
    tweak(&mut account, &mut reconnect);
    let params = FeedParams {
        id: 0,
        required: true,
        name: "acct".into(),
        venue,
        targets: vec![target],
        streams: Vec::new(),
        symbols: Vec::new(),
        silence: Vec::new(),
        reconnect,
        max_connection_age: None,
        reorder_window: Duration::ZERO,
        recv_buffer: None,
        ws_config: Default::default(),
        tls: None,
        capture: None,
        rest_base: None,
        account: Some(Arc::new(account)),
    };
    (FeedCore::new(params, stats.clone(), 0), stats)
}

/// Starts the first attempt and opens its WebSocket: returns the session and what was sent.
/// Whether `acts` start a connection.
fn connects(acts: &[Action]) -> bool {
    acts.iter().any(|a| matches!(a, Action::Connect { .. }))
}

/// A USD-M account given key K1 at `t0` and connected with it: its session.
fn keyed_open(core: &mut FeedCore, sink: &mut Recorded, t0: Instant) -> SessionId {
    core.handle_timeout(t0, sink);
    actions(core);
    core.on_listen_key(Ok("K1".into()), t0, sink);
    open(core, sink, t0).0
}

fn open(core: &mut FeedCore, sink: &mut Recorded, now: Instant) -> (SessionId, Vec<Action>) {
    core.handle_timeout(now, sink);
    let session = actions(core)
        .into_iter()
        .find_map(|a| match a {
            Action::Connect { session, .. } => Some(session),
            _ => None,
        })
        .expect("an attempt");
    core.on_connected(session, now);
    core.on_open(session, now, sink);
    (session, actions(core))
}

fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                msg: Outgoing::Text(t),
                ..
            } => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn frame(core: &mut FeedCore, id: SessionId, s: &str, now: Instant, sink: &mut Recorded) -> bool {
    core.on_message(id, Input::Text(&text(s)), 0, now, sink)
}

#[test]
fn okx_logs_in_subscribes_and_delivers_events_in_order() {
    let (mut core, stats) = account_feed(Venue::Okx, None);
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let (id, acts) = open(&mut core, &mut sink, t0);
    let first = sent(&acts);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].contains(r#""op":"login""#));
    assert!(sink.health.is_empty(), "not up before the login");
    assert!(frame(
        &mut core,
        id,
        r#"{"event":"login","code":"0","msg":"","connId":"a"}"#,
        t0,
        &mut sink
    ));
    let subs = sent(&actions(&mut core));
    assert_eq!(subs.len(), 3, "{subs:?}");
    for (n, sub) in subs.iter().enumerate() {
        let id_text = format!(r#""id":"{}""#, n + 2);
        assert!(sub.contains(&id_text), "{sub}");
        let ack = format!(
            r#"{{"id":"{}","event":"subscribe","arg":{{"channel":"x"}},"connId":"a"}}"#,
            n + 2
        );
        frame(&mut core, id, &ack, t0, &mut sink);
    }
    assert_eq!(sink.health, [Health::Connected { conn: 1 }]);
    let order = |state: &str, fill: &str| {
        format!(
            r#"{{"arg":{{"channel":"orders","instType":"SWAP","uid":"1"}},"data":[{{"instType":"SWAP","instId":"BTC-USDT-SWAP","ordId":"9","clOrdId":"c1","px":"100","sz":"2","side":"buy","state":"{state}","accFillSz":"{fill}","fillPx":"100","fillSz":"{fill}","fillFee":"-0.01","fillFeeCcy":"USDT","uTime":"1700000000000"}}]}}"#
        )
    };
    frame(&mut core, id, &order("live", "0"), t0, &mut sink);
    frame(
        &mut core,
        id,
        &order("partially_filled", "1"),
        t0,
        &mut sink,
    );
    frame(&mut core, id, &order("filled", "2"), t0, &mut sink);
    let states: Vec<_> = sink
        .accounts
        .iter()
        .map(|e| match e {
            AccountEvent::Order(o) => (
                o.status,
                o.filled_quantity,
                o.client_order_id.as_str().to_string(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [
            (OrderStatus::New, 0.0, "c1".to_string()),
            (OrderStatus::PartiallyFilled, 1.0, "c1".to_string()),
            (OrderStatus::Filled, 2.0, "c1".to_string()),
        ]
    );
    assert_eq!(
        stats
            .account_events
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[test]
fn a_refused_credential_fails_the_account_without_retrying() {
    let (mut core, stats) = account_feed(Venue::BybitLinear, None);
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let (id, acts) = open(&mut core, &mut sink, t0);
    assert!(sent(&acts)[0].contains(r#""op":"auth""#));
    let ended = !frame(
        &mut core,
        id,
        r#"{"success":false,"ret_msg":"API key is invalid.","op":"auth","conn_id":"c"}"#,
        t0,
        &mut sink,
    );
    assert!(ended, "the connection ends");
    core.handle_timeout(t0, &mut sink);
    assert_eq!(stats.state(), FeedState::Failed);
    assert!(matches!(
        sink.health.last(),
        Some(Health::Failed {
            reason: DisconnectReason::CredentialsRejected { .. }
        })
    ));
    let failure = stats.failure.lock().unwrap().clone().unwrap();
    assert!(
        failure.contains("account 'acct'") && failure.contains("API key is invalid."),
        "{failure}"
    );
    assert!(
        failure.contains("KEY") && !failure.contains("the-secret"),
        "{failure}"
    );
    // No attempt, ever again.
    let later = t0 + Duration::from_secs(600);
    core.handle_timeout(later, &mut sink);
    assert!(!connects(&actions(&mut core)));
    assert_eq!(core.deadline(later), None);
}

#[test]
fn a_listen_key_comes_first_and_a_new_one_follows_its_expiry() {
    let (mut core, stats) = account_feed(Venue::BinanceUsdm, Some("http://127.0.0.1:9443"));
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    core.handle_timeout(t0, &mut sink);
    let acts = actions(&mut core);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::ListenKey {
                op: KeyOp::Create,
                ..
            }]
        ),
        "no attempt before the key: {acts:?}"
    );
    // Held for the key: not due again until it comes.
    assert_eq!(core.deadline(t0), None);
    core.on_listen_key(Ok("K1".into()), t0, &mut sink);
    core.handle_timeout(t0, &mut sink);
    let acts = actions(&mut core);
    let (session, url) = acts
        .iter()
        .find_map(|a| match a {
            Action::Connect { session, url, .. } => Some((*session, url.clone())),
            _ => None,
        })
        .expect("an attempt with the key");
    assert_eq!(
        url.as_deref(),
        Some("ws://127.0.0.1:9443/private/ws?listenKey=K1")
    );
    core.on_connected(session, t0);
    core.on_open(session, t0, &mut sink);
    assert_eq!(sink.health, [Health::Connected { conn: 1 }]);
    // The venue lets the key expire: the connection ends, a new key is asked for at once.
    let t1 = t0 + Duration::from_secs(5);
    let alive = frame(
        &mut core,
        session,
        r#"{"e":"listenKeyExpired","E":"1736996475556","listenKey":"K1"}"#,
        t1,
        &mut sink,
    );
    assert!(!alive);
    assert!(matches!(
        sink.health.last(),
        Some(Health::Disconnected {
            reason: DisconnectReason::UserStreamExpired,
            ..
        })
    ));
    core.handle_timeout(t1, &mut sink);
    let acts = actions(&mut core);
    assert!(
        acts.iter().any(|a| matches!(
            a,
            Action::ListenKey {
                op: KeyOp::Create,
                ..
            }
        )) && !connects(&acts),
        "{acts:?}"
    );
    core.on_listen_key(Ok("K2".into()), t1, &mut sink);
    core.handle_timeout(t1, &mut sink);
    let url = actions(&mut core).into_iter().find_map(|a| match a {
        Action::Connect { url, .. } => url,
        _ => None,
    });
    assert_eq!(
        url.as_deref(),
        Some("ws://127.0.0.1:9443/private/ws?listenKey=K2")
    );
    assert_eq!(stats.expiries.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_key_the_venue_forgot_while_connected_is_replaced_make_before_break() {
    let (mut core, stats) = account_feed(Venue::BinanceUsdm, Some("http://127.0.0.1:9443"));
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let old = keyed_open(&mut core, &mut sink, t0);
    // The keep-alive is due after 30 minutes; the venue says it no longer knows the key.
    let t1 = t0 + Duration::from_secs(1800);
    core.handle_timeout(t1, &mut sink);
    assert!(actions(&mut core).iter().any(|a| matches!(
        a,
        Action::ListenKey {
            op: KeyOp::KeepAlive,
            ..
        }
    )));
    let gone = crate::account::listen_key::KeyError {
        status: Some(400),
        code: Some(-1125),
        ..crate::account::listen_key::KeyError::new("This listenKey does not exist.")
    };
    core.on_listen_key(Err(gone), t1, &mut sink);
    core.handle_timeout(t1, &mut sink);
    assert!(actions(&mut core).iter().any(|a| matches!(
        a,
        Action::ListenKey {
            op: KeyOp::Create,
            ..
        }
    )));
    // The new key: a replacement connects beside the old connection, which stays up.
    core.on_listen_key(Ok("K2".into()), t1, &mut sink);
    // The rotation starts in one turn; its connection is due at once, the next.
    core.handle_timeout(t1, &mut sink);
    assert_eq!(core.deadline(t1), Some(t1));
    let mut acts = actions(&mut core);
    core.handle_timeout(t1, &mut sink);
    acts.extend(actions(&mut core));
    let (new, url) = acts
        .iter()
        .find_map(|a| match a {
            Action::Connect { session, url, .. } => Some((*session, url.clone())),
            _ => None,
        })
        .expect("a replacement");
    assert_ne!(new, old);
    assert_eq!(
        url.as_deref(),
        Some("ws://127.0.0.1:9443/private/ws?listenKey=K2")
    );
    assert!(!acts
        .iter()
        .any(|a| matches!(a, Action::Close { .. } | Action::Abort { .. })));
    core.on_connected(new, t1);
    core.on_open(new, t1, &mut sink);
    core.handle_timeout(t1, &mut sink);
    assert!(actions(&mut core).contains(&Action::Close { session: old }));
    assert!(
        sink.health.contains(&Health::Rotated { old: 1, new: 2 }),
        "{:?}",
        sink.health
    );
    assert!(!sink
        .health
        .iter()
        .any(|h| matches!(h, Health::Disconnected { .. })));
    assert_eq!(stats.expiries.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn an_ed25519_binance_spot_account_logs_on_then_subscribes() {
    use base64::Engine as _;
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    // An account feed whose secret is an Ed25519 key.
    let (mut core, _) = account_feed_with(Venue::BinanceSpot, |a, _| {
        a.creds.secret = Secret::new(b64.clone());
        a.ed25519 = true;
    });
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let (id, acts) = open(&mut core, &mut sink, t0);
    let first = sent(&acts);
    assert!(
        first[0].contains(r#""method":"session.logon""#),
        "{first:?}"
    );
    let logon_id = 1;
    let ok = format!(
        r#"{{"id":"{logon_id}","status":200,"result":{{"apiKey":"k","authorizedSince":1}}}}"#
    );
    frame(&mut core, id, &ok, t0, &mut sink);
    let subs = sent(&actions(&mut core));
    assert_eq!(subs, [r#"{"id":"2","method":"userDataStream.subscribe"}"#]);
    frame(
        &mut core,
        id,
        r#"{"id":"2","status":200,"result":{"subscriptionId":0}}"#,
        t0,
        &mut sink,
    );
    assert_eq!(sink.health, [Health::Connected { conn: 1 }]);
}

#[test]
fn an_account_that_never_gets_a_listen_key_gives_up_after_give_up_after_ms() {
    let (mut core, stats) = account_feed_with(Venue::BinanceUsdm, |a, r| {
        a.rest_base = Some("http://127.0.0.1:9443".into());
        r.give_up_after_ms = 1000;
    });
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let unavailable = || {
        Err(crate::account::listen_key::KeyError {
            status: Some(503),
            ..crate::account::listen_key::KeyError::new("HTTP 503")
        })
    };
    let mut now = t0;
    let mut calls = 0;
    // The venue answers every key request with 503; retries back off (250 ms, 500 ms, 1 s…).
    while now < t0 + Duration::from_secs(5) {
        core.handle_timeout(now, &mut sink);
        for a in actions(&mut core) {
            assert!(
                !matches!(a, Action::Connect { .. }),
                "no attempt without a key"
            );
            if matches!(a, Action::ListenKey { .. }) {
                calls += 1;
                core.on_listen_key(unavailable(), now, &mut sink);
            }
        }
        match core.deadline(now) {
            Some(t) => now = t.max(now + MS),
            None => break,
        }
    }
    core.handle_timeout(now, &mut sink);
    assert_eq!(stats.state(), FeedState::Failed);
    assert!(
        matches!(sink.health.last(), Some(Health::Failed { .. })),
        "{:?}",
        sink.health
    );
    let why = stats.failure.lock().unwrap().clone().unwrap();
    assert!(
        why.contains("no listen key for") && why.contains("HTTP 503"),
        "{why}"
    );
    assert!(
        (3..=5).contains(&calls),
        "{calls} key requests in 1 s of backoff"
    );
    assert_eq!(core.deadline(now), None, "nothing more to do");
}

#[test]
fn a_login_refused_for_too_many_requests_waits_what_the_venue_said() {
    let (mut core, _) = account_feed(Venue::BinanceSpot, None);
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let (id, _) = open(&mut core, &mut sink, t0);
    let until = crate::clock::unix_ns() / 1_000_000 + 10_000;
    let answer = format!(
        r#"{{"id":"1","status":429,"error":{{"code":-1003,"msg":"Too much request weight used.","data":{{"retryAfter":{until}}}}}}}"#
    );
    assert!(
        !frame(&mut core, id, &answer, t0, &mut sink),
        "the connection ends"
    );
    assert!(matches!(
        sink.health.last(),
        Some(Health::Disconnected {
            reason: DisconnectReason::Http { status: 429, .. },
            ..
        })
    ));
    // No attempt before the venue's time has passed (about 10 s), one after.
    for s in [1, 5, 9] {
        core.handle_timeout(t0 + Duration::from_secs(s), &mut sink);
        assert!(!connects(&actions(&mut core)), "{s} s");
    }
    core.handle_timeout(t0 + Duration::from_secs(12), &mut sink);
    assert!(connects(&actions(&mut core)));
}

#[test]
fn an_account_that_fails_for_good_while_connected_drops_its_connection() {
    let (mut core, stats) = account_feed(Venue::BinanceUsdm, Some("http://127.0.0.1:9443"));
    let mut sink = Recorded::default();
    let t0 = Instant::now();
    let session = keyed_open(&mut core, &mut sink, t0);
    // The keep-alive is refused: the key's IP whitelist changed.
    let t1 = t0 + Duration::from_secs(1800);
    core.handle_timeout(t1, &mut sink);
    actions(&mut core);
    let refused = crate::account::listen_key::KeyError {
        status: Some(401),
        code: Some(-2015),
        ..crate::account::listen_key::KeyError::new("Invalid API-key, IP, or permissions")
    };
    core.on_listen_key(Err(refused), t1, &mut sink);
    assert!(actions(&mut core).contains(&Action::Abort { session }));
    core.handle_timeout(t1, &mut sink);
    assert_eq!(stats.state(), FeedState::Failed);
    // A frame already read from it is not delivered.
    let order = r#"{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"BTCUSDT","c":"c","S":"BUY","q":"1","p":"1","X":"NEW","i":1,"l":"0","z":"0","L":"0","n":"0"}}"#;
    assert!(!frame(&mut core, session, order, t1, &mut sink));
    assert!(sink.accounts.is_empty());
}
