//! The feed's logic driven without sockets: a made-up clock (instants computed from one start,
//! never read while a test runs), canned frames, and a sink that records what came out. What
//! the logic asks of its driver is checked action by action.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Utf8Bytes;

use super::action::{Action, Outgoing, SessionId};
use super::core::{FeedCore, Input};
use super::limiter::ConnectGate;
use super::params::{FeedParams, Target};
use super::sink::Sink;
use crate::account::{AccountEvent, AccountMsg};
use crate::config::{Endpoint, Jitter, ReconnectConfig};
use crate::metrics::{FeedState, FeedStats};
use crate::tick::{DisconnectReason, Health, HealthMsg, SymbolId, Tick, TickData};
use crate::venue::Venue;

const MS: Duration = Duration::from_millis(1);

/// What the feed handed over, in order.
#[derive(Debug, Default)]
struct Recorded {
    ticks: Vec<Tick>,
    health: Vec<Health>,
    accounts: Vec<AccountEvent>,
}

impl Sink for Recorded {
    fn tick(&mut self, _lane: usize, tick: Tick) {
        self.ticks.push(tick);
    }
    fn health(&mut self, _lane: usize, msg: HealthMsg) {
        self.health.push(msg.event);
    }
    fn account(&mut self, _lane: usize, msg: AccountMsg) {
        self.accounts.push(msg.event);
    }
}

fn cfg() -> ReconnectConfig {
    ReconnectConfig {
        initial_delay_ms: 100,
        max_delay_ms: 1000,
        jitter: Jitter::None,
        stale_after_ms: 2000,
        pong_timeout_ms: 1500,
        connect_timeout_ms: 3000,
        ack_timeout_ms: 2000,
        max_connection_age_ms: 0,
        ..ReconnectConfig::default()
    }
}

mod defined;
mod traffic;

/// A Binance spot feed of `streams` on `hosts` (a standby on the second).
fn feed(hosts: &[&str], streams: &[&str]) -> (FeedCore, Arc<FeedStats>) {
    feed_on(Venue::BinanceSpot, hosts, streams)
}

/// A feed of `venue`'s `streams` on `hosts` (a standby on the second).
fn feed_on(venue: Venue, hosts: &[&str], streams: &[&str]) -> (FeedCore, Arc<FeedStats>) {
    let targets = hosts
        .iter()
        .map(|h| {
            let endpoint = Endpoint::parse(&format!("ws://{h}:9443")).unwrap();
            Target {
                url: endpoint.url("/stream"),
                gate: Arc::new(ConnectGate::new(
                    h.to_string(),
                    1000,
                    Duration::from_secs(1),
                )),
                endpoint,
            }
        })
        .collect();
    let streams: Vec<_> = streams
        .iter()
        .map(|s| venue.parse_stream(s).unwrap())
        .collect();
    let n = streams.len();
    let stats = Arc::new(FeedStats::new("t".into(), "ws://x".into()));
    let params = FeedParams {
        id: 0,
        required: true,
        name: "t".into(),
        venue,
        targets,
        streams,
        symbols: vec![SymbolId(0); n],
        silence: vec![Duration::from_secs(10); n],
        reconnect: cfg(),
        max_connection_age: None,
        reorder_window: Duration::from_millis(20),
        recv_buffer: None,
        ws_config: Default::default(),
        tls: None,
        capture: None,
        rest_base: None,
        account: None,
    };
    (FeedCore::new(params, stats.clone(), 0), stats)
}

fn actions(core: &mut FeedCore) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

fn text(s: &str) -> Utf8Bytes {
    Utf8Bytes::from(s.to_string())
}

fn book_ticker(u: u64, bid: &str, ask: &str) -> Utf8Bytes {
    text(&format!(
        r#"{{"stream":"btcusdt@bookTicker","data":{{"u":{u},"s":"BTCUSDT","b":"{bid}","B":"1.5","a":"{ask}","A":"2.5"}}}}"#
    ))
}

fn agg_trade(a: u64) -> Utf8Bytes {
    text(&format!(
        r#"{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":1700000000000,"s":"BTCUSDT","a":{a},"p":"100.5","q":"0.1","f":1,"l":1,"T":1700000000000,"m":true,"M":true}}}}"#
    ))
}

/// Takes the feed's session `s` from its first attempt to a subscribed connection at `t`;
/// returns the request id it subscribed with.
fn bring_up(core: &mut FeedCore, sink: &mut Recorded, s: SessionId, t: Instant) -> u64 {
    core.on_connected(s, t);
    core.on_open(s, t, sink);
    let sent = actions(core);
    let [Action::Send {
        session,
        msg: Outgoing::Text(req),
    }] = sent.as_slice()
    else {
        panic!("one subscribe request expected: {sent:?}");
    };
    assert_eq!(*session, s);
    let req: serde_json::Value = serde_json::from_str(req).unwrap();
    assert_eq!(req["method"], "SUBSCRIBE");
    let id = req["id"].as_u64().unwrap();
    let ack = text(&format!(r#"{{"result":null,"id":{id}}}"#));
    assert!(core.on_message(s, Input::Text(&ack), 0, t, sink));
    id
}

#[test]
fn a_session_connects_subscribes_streams_and_recovers_from_a_silent_connection() {
    let t0 = Instant::now();
    let (mut core, stats) = feed(&["127.0.0.1"], &["btcusdt@bookTicker"]);
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    let first = actions(&mut core);
    let [Action::Connect {
        session: s,
        target: 0,
        addr,
        url: None,
    }] = first.as_slice()
    else {
        panic!("a connect to the target's own URL expected: {first:?}");
    };
    let s = *s;
    assert_eq!(
        addr.to_string(),
        "127.0.0.1:9443",
        "an IP literal needs no resolver"
    );
    assert_eq!(stats.state(), FeedState::Connecting);
    bring_up(&mut core, &mut sink, s, t0 + MS);
    assert_eq!(sink.health, [Health::Connected { conn: 1 }]);
    let frame = book_ticker(10, "100.5", "100.6");
    assert!(core.on_message(s, Input::Text(&frame), 5, t0 + 2 * MS, &mut sink));
    assert_eq!(sink.ticks.len(), 1);
    assert_eq!(sink.ticks[0].seq, 10);
    assert!(
        matches!(sink.ticks[0].data, TickData::Quote { bid, ask, .. } if bid == 100.5 && ask == 100.6)
    );
    core.handle_timeout(t0 + 2 * MS, &mut sink);
    assert_eq!(stats.state(), FeedState::Streaming);

    // Silence: a ping when the connection has been quiet for stale_after, then dead.
    assert_eq!(core.deadline(t0 + 2 * MS), Some(t0 + 2002 * MS));
    core.handle_timeout(t0 + 2002 * MS, &mut sink);
    assert_eq!(
        actions(&mut core),
        [Action::Send {
            session: s,
            msg: Outgoing::Ping
        }]
    );
    core.handle_timeout(t0 + 3502 * MS, &mut sink);
    assert_eq!(actions(&mut core), [Action::Abort { session: s }]);
    assert_eq!(
        sink.health[1],
        Health::Disconnected {
            conn: 1,
            reason: DisconnectReason::PongTimeout
        }
    );
    // It streamed for over a second: the replacement goes out at once, subscribing in its URL
    // the stream the venue acknowledged before, so data needs no subscribe round trip.
    core.handle_timeout(t0 + 3502 * MS, &mut sink);
    let again = actions(&mut core);
    let url = "ws://127.0.0.1:9443/stream?streams=btcusdt@bookTicker";
    assert!(
        matches!(again.as_slice(), [Action::Connect { session, url: Some(u), .. }] if *session == s && u == url),
        "{again:?}"
    );
    let t = t0 + 3600 * MS;
    core.on_connected(s, t);
    core.on_open(s, t, &mut sink);
    let check = actions(&mut core);
    let [Action::Send {
        msg: Outgoing::Text(list),
        ..
    }] = check.as_slice()
    else {
        panic!("the check of the URL's subscription expected: {check:?}");
    };
    let list: serde_json::Value = serde_json::from_str(list).unwrap();
    assert_eq!(list["method"], "LIST_SUBSCRIPTIONS");
    let frame = book_ticker(12, "100.4", "100.7");
    assert!(core.on_message(s, Input::Text(&frame), 9, t0 + 3610 * MS, &mut sink));
    assert_eq!(sink.health[2], Health::Connected { conn: 2 });
    assert_eq!(
        sink.health[3],
        Health::Recovered {
            gap_ms: 3608,
            reconnect_ms: 108,
            attempts: 1
        }
    );
    assert_eq!(
        sink.health[4],
        Health::Gap {
            stream: 0,
            from_seq: 11,
            to_seq: 11
        }
    );
    let answer = text(&format!(
        r#"{{"result":["btcusdt@bookTicker"],"id":{}}}"#,
        list["id"]
    ));
    assert!(core.on_message(s, Input::Text(&answer), 0, t0 + 3611 * MS, &mut sink));
    assert_eq!(
        sink.health.len(),
        5,
        "the check's answer says nothing: {:?}",
        sink.health
    );
    assert_eq!(
        core.deadline(t0 + 3611 * MS),
        Some(t0 + 5611 * MS),
        "only liveness is due"
    );
    let gaps = stats.gaps.lock().unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        gaps[0].missed.len(),
        1,
        "the ids not seen across it: {gaps:?}"
    );
    assert_eq!(
        (gaps[0].missed[0].from_seq, gaps[0].missed[0].to_seq),
        (11, 11)
    );
}

#[test]
fn an_unanswered_subscription_ends_the_connection_and_it_backs_off() {
    let t0 = Instant::now();
    let (mut core, _) = feed(&["127.0.0.1"], &["btcusdt@bookTicker"]);
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    let s = match actions(&mut core).as_slice() {
        [Action::Connect { session, .. }] => *session,
        other => panic!("{other:?}"),
    };
    core.on_connected(s, t0);
    core.on_open(s, t0, &mut sink);
    assert_eq!(actions(&mut core).len(), 1, "the request");
    core.handle_timeout(t0 + 1999 * MS, &mut sink);
    assert!(actions(&mut core).is_empty());
    core.handle_timeout(t0 + 2000 * MS, &mut sink);
    assert_eq!(actions(&mut core), [Action::Abort { session: s }]);
    assert_eq!(
        sink.health,
        [Health::Disconnected {
            conn: 1,
            reason: DisconnectReason::AckTimeout
        }]
    );
    // Nothing was ever delivered: the next attempt waits the first backoff step.
    core.handle_timeout(t0 + 2099 * MS, &mut sink);
    assert!(actions(&mut core).is_empty());
    core.handle_timeout(t0 + 2100 * MS, &mut sink);
    assert!(matches!(
        actions(&mut core).as_slice(),
        [Action::Connect { .. }]
    ));
}

#[test]
fn a_resolver_that_hangs_is_a_connect_timeout_and_the_known_address_survives_its_failure() {
    let t0 = Instant::now();
    let (mut core, _) = feed(&["venue.example"], &["btcusdt@bookTicker"]);
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    assert_eq!(actions(&mut core), [Action::Resolve { target: 0 }]);
    // No answer within the connect limit: the attempt fails like a connect that never came.
    core.handle_timeout(t0 + 3000 * MS, &mut sink);
    assert!(actions(&mut core).contains(&Action::Abort {
        session: SessionId(1)
    }));
    assert_eq!(
        core.deadline(t0 + 3000 * MS),
        Some(t0 + 3100 * MS),
        "backoff"
    );
    // The late answer is kept; the next attempt connects without asking again.
    let addr = "10.1.2.3:9443".parse().unwrap();
    core.on_resolved(0, Ok(addr), t0 + 3050 * MS, &mut sink);
    assert!(
        actions(&mut core).is_empty(),
        "no session is waiting for it"
    );
    core.handle_timeout(t0 + 3100 * MS, &mut sink);
    assert_eq!(
        actions(&mut core),
        [Action::Connect {
            session: SessionId(1),
            target: 0,
            addr,
            url: None
        }]
    );
    // That attempt fails: the next one asks the resolver again, and when the resolver fails,
    // the address known before is used.
    core.on_failed(
        SessionId(1),
        DisconnectReason::ConnectRefused,
        None,
        t0 + 3101 * MS,
        &mut sink,
    );
    assert_eq!(
        actions(&mut core),
        [Action::Abort {
            session: SessionId(1)
        }]
    );
    core.handle_timeout(t0 + 3400 * MS, &mut sink);
    assert_eq!(actions(&mut core), [Action::Resolve { target: 0 }]);
    core.on_resolved(0, Err(DisconnectReason::Resolve), t0 + 3401 * MS, &mut sink);
    assert_eq!(
        actions(&mut core),
        [Action::Connect {
            session: SessionId(1),
            target: 0,
            addr,
            url: None
        }]
    );
}

#[test]
fn a_standby_delivers_each_update_once_and_its_loss_costs_nothing() {
    let t0 = Instant::now();
    let (mut core, stats) = feed(&["127.0.0.1", "127.0.0.2"], &["btcusdt@aggTrade"]);
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    let sessions: Vec<SessionId> = actions(&mut core)
        .into_iter()
        .map(|a| match a {
            Action::Connect { session, .. } => session,
            other => panic!("{other:?}"),
        })
        .collect();
    let [a, b] = sessions[..] else {
        panic!("{sessions:?}")
    };
    bring_up(&mut core, &mut sink, a, t0);
    bring_up(&mut core, &mut sink, b, t0);
    for id in 100..105 {
        for s in [a, b] {
            assert!(core.on_message(s, Input::Text(&agg_trade(id)), 0, t0, &mut sink));
        }
    }
    let seqs: Vec<u64> = sink.ticks.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [100, 101, 102, 103, 104]);
    assert_eq!(
        stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    // Trade 105 reaches only the primary, which then closes; the standby still carries.
    assert!(core.on_message(a, Input::Text(&agg_trade(105)), 0, t0, &mut sink));
    assert!(!core.on_message(a, Input::Close(Some(1001)), 0, t0, &mut sink));
    assert_eq!(
        sink.health.last(),
        Some(&Health::ConnectionLost {
            conn: 1,
            reason: DisconnectReason::CloseFrame { code: 1001 }
        })
    );
    for s in [b, b] {
        core.on_message(s, Input::Text(&agg_trade(106)), 0, t0, &mut sink);
    }
    let seqs: Vec<u64> = sink.ticks.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [100, 101, 102, 103, 104, 105, 106]);
    assert!(
        !sink
            .health
            .iter()
            .any(|h| matches!(h, Health::Gap { .. } | Health::Disconnected { .. })),
        "{:?}",
        sink.health
    );
}

#[test]
fn a_chained_update_that_skips_ids_is_held_for_the_other_connection_to_fill_the_hole() {
    let t0 = Instant::now();
    let (mut core, _) = feed(&["127.0.0.1", "127.0.0.2"], &["btcusdt@aggTrade"]);
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    let _ = actions(&mut core);
    let (a, b) = (SessionId(1), SessionId(2));
    bring_up(&mut core, &mut sink, a, t0);
    bring_up(&mut core, &mut sink, b, t0);
    core.on_message(a, Input::Text(&agg_trade(1)), 0, t0, &mut sink);
    // The primary skips 2: 3 is held while the standby may still bring 2.
    core.on_message(a, Input::Text(&agg_trade(3)), 0, t0, &mut sink);
    assert_eq!(sink.ticks.len(), 1);
    assert_eq!(core.deadline(t0), Some(t0 + 20 * MS), "the reorder window");
    core.on_message(b, Input::Text(&agg_trade(1)), 0, t0 + MS, &mut sink);
    core.on_message(b, Input::Text(&agg_trade(2)), 0, t0 + MS, &mut sink);
    let seqs: Vec<u64> = sink.ticks.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "filled, in order");
    // A hole neither connection fills is reported when the window ends.
    core.on_message(a, Input::Text(&agg_trade(6)), 0, t0 + 2 * MS, &mut sink);
    core.handle_timeout(t0 + 22 * MS, &mut sink);
    let seqs: Vec<u64> = sink.ticks.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 6]);
    assert!(sink.health.contains(&Health::Gap {
        stream: 0,
        from_seq: 4,
        to_seq: 5
    }));
}

#[test]
fn a_refused_request_is_split_until_the_refused_stream_is_found() {
    let t0 = Instant::now();
    let (mut core, _) = feed(
        &["127.0.0.1"],
        &[
            "btcusdt@bookTicker",
            "ethusdt@bookTicker",
            "xrpusdt@aggTrade",
        ],
    );
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    let _ = actions(&mut core);
    let s = SessionId(1);
    core.on_connected(s, t0);
    core.on_open(s, t0, &mut sink);
    let _ = actions(&mut core);
    let error = |id: u64| {
        text(&format!(
            r#"{{"error":{{"code":2,"msg":"Invalid request"}},"id":{id}}}"#
        ))
    };
    let ack = |id: u64| text(&format!(r#"{{"result":null,"id":{id}}}"#));
    core.on_message(s, Input::Text(&error(1)), 0, t0, &mut sink);
    // The halves go out 200 ms apart: [btcusdt] then [ethusdt, xrpusdt].
    let mut requests = Vec::new();
    for ms in [200, 400, 600, 800] {
        core.handle_timeout(t0 + ms * MS, &mut sink);
        for a in actions(&mut core) {
            if let Action::Send {
                msg: Outgoing::Text(t),
                ..
            } = a
            {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                requests.push((v["id"].as_u64().unwrap(), v["params"].to_string()));
            }
        }
        // The venue refuses any request naming xrpusdt.
        if let Some((id, params)) = requests.last().cloned() {
            let reply = if params.contains("xrpusdt") {
                error(id)
            } else {
                ack(id)
            };
            core.on_message(s, Input::Text(&reply), 0, t0 + ms * MS, &mut sink);
        }
    }
    let sent: Vec<&str> = requests.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(
        sent,
        [
            r#"["btcusdt@bookTicker"]"#,
            r#"["ethusdt@bookTicker","xrpusdt@aggTrade"]"#,
            r#"["ethusdt@bookTicker"]"#,
            r#"["xrpusdt@aggTrade"]"#
        ]
    );
    assert!(
        sink.health
            .contains(&Health::SubscriptionRejected { stream: 2, code: 2 }),
        "{:?} {requests:?}",
        sink.health
    );
    assert!(sink.health.contains(&Health::Connected { conn: 1 }));
    assert!(!sink
        .health
        .iter()
        .any(|h| matches!(h, Health::SubscriptionRejected { stream: 0 | 1, .. })));
}

#[test]
fn a_subscription_in_the_url_is_checked_and_a_refused_url_falls_back_to_requests() {
    let t0 = Instant::now();
    let (mut core, _) = feed(&["127.0.0.1"], &["btcusdt@bookTicker", "btcusdt@aggTrade"]);
    let mut sink = Recorded::default();
    core.handle_timeout(t0, &mut sink);
    let _ = actions(&mut core);
    let s = SessionId(1);
    bring_up(&mut core, &mut sink, s, t0);
    assert!(!core.on_message(s, Input::Close(Some(1000)), 0, t0 + 2 * MS, &mut sink));
    let _ = actions(&mut core);
    core.handle_timeout(t0 + 102 * MS, &mut sink);
    let url = "ws://127.0.0.1:9443/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade";
    assert!(
        matches!(actions(&mut core).as_slice(), [Action::Connect { url: Some(u), .. }] if u == url)
    );
    // Connected at once (the URL subscribed), the check's answer due within the ack limit.
    core.on_connected(s, t0 + 103 * MS);
    core.on_open(s, t0 + 103 * MS, &mut sink);
    assert_eq!(sink.health.last(), Some(&Health::Connected { conn: 2 }));
    let _ = actions(&mut core);
    core.handle_timeout(t0 + 2103 * MS, &mut sink);
    assert_eq!(actions(&mut core), [Action::Abort { session: s }]);
    assert_eq!(
        sink.health.last(),
        Some(&Health::Disconnected {
            conn: 2,
            reason: DisconnectReason::AckTimeout
        }),
        "an unanswered check is an unanswered subscription"
    );
    // The venue now refuses such URLs: the feed subscribes by request again, at once.
    core.handle_timeout(t0 + 2303 * MS, &mut sink);
    assert!(matches!(
        actions(&mut core).as_slice(),
        [Action::Connect { url: Some(_), .. }]
    ));
    let refused = DisconnectReason::Http {
        status: 400,
        retry_after_s: None,
    };
    core.on_failed(s, refused, None, t0 + 2304 * MS, &mut sink);
    assert_eq!(actions(&mut core), [Action::Abort { session: s }]);
    assert!(!sink
        .health
        .iter()
        .any(|h| matches!(h, Health::Failed { .. })));
    core.handle_timeout(t0 + 2304 * MS, &mut sink);
    assert!(matches!(
        actions(&mut core).as_slice(),
        [Action::Connect { url: None, .. }]
    ));
}

mod account;
