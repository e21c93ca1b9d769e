//! Reconnecting in a way the venue accepts, and surviving hostile input: connections replaced
//! before the venue's age cut, unacknowledged subscriptions, a stream gone silent on a live
//! connection, frames that must not cost the connection, an oversized frame, an IP ban with
//! `Retry-After`, the per-host attempt budget, and permanent refusals (whole feed, or only its
//! standby), also where they meet rotation (a failed standby, a refused replacement).
//!
//! Every wait has a deadline (`Probe::wait`, `Sim::wait_until`, `eventually`, `within`). Time bounds here
//! are lower bounds the engine must honour (a ban, a window), or bounded negative checks ("no
//! second connection within N ms", N a multiple of the delay a wrong retry would use); none is a
//! performance claim.

mod util;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use util::*;
use wsfeed::config::{FeedConfig, ReconnectConfig, ReconnectOverride};
use wsfeed::metrics::{FeedState, GapCause, SlotRole};
use wsfeed::sim::{ConnId, Fault, SentRecord, Sim, SimConfig, SimSnapshot};
use wsfeed::tick::{DisconnectReason, Health};

const SPOT: &str = "binance-spot";
const BOOK: &str = "btcusdt@bookTicker";
const TRADES: &str = "btcusdt@aggTrade";
const DEPTH: &str = "btcusdt@depth@100ms";
/// Quotes, trades (chained by `a`) and depth (chained by `U`/`u`) of one symbol, plus a second
/// symbol's quotes.
const STREAMS: &[&str] = &[BOOK, TRADES, DEPTH, "ethusdt@bookTicker"];

// ----- helpers -----------------------------------------------------------------------------------

/// A plain `ws://` simulator without route splitting, two symbols, fast books; `tweak` sets
/// anything else (e.g. `max_conn_age`).
fn sim_with(tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut cfg = SimConfig {
        tls: false,
        usdm_routing: false,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        book_interval: Duration::from_millis(5),
        trade_interval: Duration::from_millis(20),
        ..SimConfig::default()
    };
    tweak(&mut cfg);
    Sim::start(cfg).expect("simulator starts")
}

/// Polls `cond` for at most `limit`; panics with `what()` when it never held.
fn within(limit: Duration, what: impl Fn() -> String, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{}", what());
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn connected(feed: u16, n: u32) -> impl Fn(&[Seen]) -> bool {
    move |s| has_health_of(s, feed, |h| *h == Health::Connected { conn: n })
}

fn recovered(feed: u16) -> impl Fn(&[Seen]) -> bool {
    move |s| has_health_of(s, feed, |h| matches!(h, Health::Recovered { .. }))
}

fn health_events(seen: &[Seen], feed: u16) -> Vec<Health> {
    health_of(seen)
        .into_iter()
        .filter(|(f, _)| *f == feed)
        .map(|(_, h)| h)
        .collect()
}

fn received(seen: &[Seen]) -> HashSet<(&str, u64)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Tick { stream, seq, .. } => Some((stream.as_str(), *seq)),
            _ => None,
        })
        .collect()
}

/// Waits until the strategy has received every message in `sent` (ground truth taken earlier):
/// nothing sent before that moment was lost, whatever came in between.
fn wait_delivered(probe: &Probe, sent: &[SentRecord], what: &str) {
    probe.wait(what, |s| {
        let got = received(s);
        sent.iter()
            .all(|r| got.contains(&(r.stream.as_str(), r.seq)))
    });
}

fn is_loss(h: &Health) -> bool {
    matches!(
        h,
        Health::Disconnected { .. } | Health::ConnectionLost { .. }
    )
}

/// The simulator connection subscribed to exactly `streams`.
fn conn_with(snap: &SimSnapshot, streams: &[&str]) -> ConnId {
    snap.connections
        .iter()
        .find(|c| c.streams == streams)
        .unwrap_or_else(|| panic!("no connection with {streams:?}: {snap:?}"))
        .id
}

// ----- 1. proactive rotation before the venue's age cut -------------------------------------

#[test]
fn connection_is_replaced_before_the_venue_cuts_it_without_a_gap() {
    // The venue cuts connections at 3 s; the engine replaces them at 1.5 s.
    let sim = sim_with(|c| c.max_conn_age = Some(Duration::from_secs(3)));
    let (engine, probe) = start(
        vec![feed("spot", SPOT, &sim, STREAMS)],
        ReconnectConfig {
            max_connection_age_ms: 1500,
            ..fast_reconnect()
        },
    );
    probe.wait("connected", connected(0, 1));
    probe.wait("two rotations", |s| {
        count_health(s, |h| matches!(h, Health::Rotated { .. })) >= 2
    });
    probe.wait_more_ticks(50);
    let snap = sim.snapshot();
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();

    let seen = probe.seen();
    let health = health_events(&seen, 0);
    let rotated: Vec<Health> = health
        .iter()
        .copied()
        .filter(|h| matches!(h, Health::Rotated { .. }))
        .collect();
    assert_eq!(
        &rotated[..2],
        [
            Health::Rotated { old: 1, new: 2 },
            Health::Rotated { old: 2, new: 3 }
        ],
        "{health:?}"
    );
    // The replacement was subscribed before the old connection was let go.
    let c2 = position_of(&seen, |h| *h == Health::Connected { conn: 2 }).expect("Connected 2");
    let r12 = position_of(&seen, |h| *h == Health::Rotated { old: 1, new: 2 }).unwrap();
    assert!(c2 < r12, "{health:?}");
    assert!(
        !health.iter().any(is_loss),
        "a rotation is no loss: {health:?}"
    );
    assert_eq!(snap.age_closes, 0, "the venue had to cut a connection");
    // Connections 1 and 2 were closed by the engine, long before the venue's limit.
    for id in [1, 2] {
        assert!(!snap.conn(ConnId(id)).unwrap().open, "{snap:?}");
    }
    assert_resubscribed(&snap, ConnId(3), STREAMS);

    let s = &summary.feeds[0];
    assert!(s.rotations >= 2, "{summary}");
    assert_eq!((s.disconnects, s.reconnects), (0, 0), "{summary}");
    assert!(
        !s.gaps
            .iter()
            .any(|g| matches!(g.cause, GapCause::Outage(_))),
        "outage recorded for a rotation: {:?}",
        s.gaps
    );
    // The depth (U/u) and trade (a) chains never broke across the handovers.
    assert_eq!((s.missed_ids, s.seq_gaps), (0, 0), "{:?}", s.gaps);
    // Everything the replaced connections carried reached the strategy, once.
    assert_delivery(&sent, &seen, &[1, 2]);
}

#[test]
fn rotation_handover_loses_nothing_in_a_fast_market() {
    // Many handovers while every stream updates every 1-2 ms: whatever the old connection had
    // in flight when the replacement took over must still reach the strategy (from either
    // connection), and the venue's numbering must show no hole.
    const ROTATIONS: usize = 20;
    let sim = sim_with(|c| {
        c.symbols = vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()];
        c.book_interval = Duration::from_millis(1);
        c.trade_interval = Duration::from_millis(2);
    });
    let streams = [
        "btcusdt@bookTicker",
        "ethusdt@bookTicker",
        "solusdt@bookTicker",
        "btcusdt@aggTrade",
        "ethusdt@aggTrade",
        "solusdt@aggTrade",
    ];
    let (engine, probe) = start(
        vec![feed("spot", SPOT, &sim, &streams)],
        ReconnectConfig {
            max_connection_age_ms: 150,
            ..fast_reconnect()
        },
    );
    probe.wait("rotations", |s| {
        count_health(s, |h| matches!(h, Health::Rotated { .. })) >= ROTATIONS
    });
    probe.wait_more_ticks(100);
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();

    let seen = probe.seen();
    let health = health_events(&seen, 0);
    assert!(!health.iter().any(is_loss), "{health:?}");
    let replaced: Vec<u32> = health
        .iter()
        .filter_map(|h| match h {
            Health::Rotated { old, .. } => Some(*old),
            _ => None,
        })
        .collect();
    let got = received(&seen);
    let mut lost = Vec::new();
    for &conn in &replaced {
        let on_conn: Vec<&SentRecord> = sent
            .iter()
            .filter(|r| r.conn.0 == u64::from(conn))
            .collect();
        for (i, r) in on_conn.iter().enumerate() {
            if !got.contains(&(r.stream.as_str(), r.seq)) {
                lost.push(format!(
                    "conn {conn}: {} {} (message {} of {} sent there)",
                    r.stream,
                    r.seq,
                    i + 1,
                    on_conn.len()
                ));
            }
        }
    }
    let s = &summary.feeds[0];
    // A quote the replacement delivered a newer one of first is superseded: counted, not
    // given (it would move the strategy back in time). Trades and depth lose nothing.
    let (quotes, lost): (Vec<String>, Vec<String>) =
        lost.into_iter().partition(|l| l.contains("@bookTicker"));
    assert!(
        quotes.len() as u64 <= s.superseded,
        "{} quotes not given but only {} counted superseded:\n{}",
        quotes.len(),
        s.superseded,
        quotes.join("\n")
    );
    assert!(
        lost.is_empty(),
        "{} updates sent on replaced connections never reached the strategy; missed_ids {} \
         (gaps {:?}):\n{}",
        lost.len(),
        s.missed_ids,
        s.gaps,
        lost.join("\n")
    );
    assert_eq!((s.missed_ids, s.seq_gaps), (0, 0), "{:?}", s.gaps);
}

#[test]
fn without_an_age_limit_below_the_venue_s_its_cut_is_an_ordinary_loss() {
    let sim = sim_with(|c| c.max_conn_age = Some(Duration::from_millis(1000)));
    let age = |ms: u64| {
        Some(ReconnectOverride {
            max_connection_age_ms: Some(ms),
            ..ReconnectOverride::default()
        })
    };
    let mut off = feed("off", SPOT, &sim, &[BOOK, TRADES]);
    off.reconnect = age(0); // never rotate
    let mut late = feed(
        "late",
        SPOT,
        &sim,
        &["ethusdt@bookTicker", "ethusdt@aggTrade"],
    );
    late.reconnect = age(5000); // above the venue's 1 s
    let (engine, probe) = start(vec![off, late], fast_reconnect());
    for f in [0, 1] {
        probe.wait("cut by the venue", |s| {
            has_health_of(s, f, |h| {
                *h == Health::Disconnected {
                    conn: 1,
                    reason: DisconnectReason::CloseFrame { code: 1001 },
                }
            })
        });
        probe.wait("reconnected", connected(f, 2));
        probe.wait("recovered", recovered(f));
    }
    probe.wait_more_ticks(20);
    let snap = sim.snapshot();
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();

    assert!(snap.age_closes >= 2, "{snap:?}");
    let seen = probe.seen();
    for (f, s) in summary.feeds.iter().enumerate() {
        let health = health_events(&seen, f as u16);
        assert!(
            !health.iter().any(|h| matches!(h, Health::Rotated { .. })),
            "{}: {health:?}",
            s.name
        );
        assert_eq!(s.rotations, 0, "{summary}");
        assert!(s.reconnects >= 1, "{summary}");
        assert_eq!(
            s.gaps[0].cause,
            GapCause::Outage(DisconnectReason::CloseFrame { code: 1001 }),
            "{summary}"
        );
    }
    // A close frame ends a connection cleanly: everything sent before it arrived.
    let cut: Vec<u64> = snap
        .connections
        .iter()
        .filter(|c| !c.open)
        .map(|c| c.id.0)
        .collect();
    assert_delivery(&sent, &seen, &cut);
}

// ----- 2. subscription acknowledgement timeout ---------------------------------------------

#[test]
fn unacknowledged_subscription_drops_the_connection_after_the_ack_timeout() {
    let sim = sim(false, false);
    sim.inject(Fault::IgnoreSubscribe { count: 1 });
    let started = Instant::now();
    let (engine, probe) = start(
        vec![feed("spot", SPOT, &sim, STREAMS)],
        ReconnectConfig {
            ack_timeout_ms: 500,
            ..fast_reconnect()
        },
    );
    let ack_timeout = |s: &[Seen]| {
        has_health(s, |h| {
            *h == Health::Disconnected {
                conn: 1,
                reason: DisconnectReason::AckTimeout,
            }
        })
    };
    probe.wait("ack timeout", ack_timeout);
    // Lower bound: the engine gave the venue its full ack_timeout_ms.
    assert!(started.elapsed() >= Duration::from_millis(500));
    probe.wait("second connection", connected(0, 2));
    probe.wait("recovered", recovered(0));
    probe.wait_more_ticks(50);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    sim.shutdown();

    assert_eq!(snap.subscribes_ignored, 1, "{snap:?}");
    assert_eq!(snap.subscribe_requests, 2, "one per connection: {snap:?}");
    let first = snap.conn(ConnId(1)).unwrap();
    assert!(first.streams.is_empty() && !first.open, "{snap:?}");
    assert_resubscribed(&snap, ConnId(2), STREAMS);

    let seen = probe.seen();
    let health = health_events(&seen, 0);
    assert!(
        !health.contains(&Health::Connected { conn: 1 }),
        "{health:?}"
    );
    let d1 = position_of(&seen, |h| matches!(h, Health::Disconnected { .. })).unwrap();
    let c2 = position_of(&seen, |h| *h == Health::Connected { conn: 2 }).unwrap();
    assert!(d1 < c2, "{health:?}");
    assert_eq!(
        seen.iter()
            .position(|s| matches!(s, Seen::Tick { .. }))
            .map(|t| t > c2),
        Some(true),
        "data before the subscription was acknowledged"
    );
    let s = &summary.feeds[0];
    assert_eq!((s.disconnects, s.reconnects), (1, 1), "{summary}");
    assert_eq!(s.gaps.len(), 1, "{summary}");
    assert_eq!(
        s.gaps[0].cause,
        GapCause::Outage(DisconnectReason::AckTimeout)
    );
    assert_eq!(s.gaps[0].attempts, 1, "{:?}", s.gaps[0]);
}

#[test]
fn unacknowledged_resubscription_is_one_more_attempt_of_the_same_outage() {
    let sim = sim(false, false);
    let (engine, probe) = start(
        vec![feed("spot", SPOT, &sim, STREAMS)],
        ReconnectConfig {
            ack_timeout_ms: 500,
            ..fast_reconnect()
        },
    );
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(20);
    sim.inject(Fault::IgnoreSubscribe { count: 1 });
    sim.inject(Fault::Close { code: 1000 });
    probe.wait("resubscription timed out", |s| {
        has_health(s, |h| {
            *h == Health::Disconnected {
                conn: 2,
                reason: DisconnectReason::AckTimeout,
            }
        })
    });
    probe.wait("third connection", connected(0, 3));
    probe.wait("recovered", recovered(0));
    probe.wait_more_ticks(20);
    let snap = sim.snapshot();
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();

    assert_eq!(snap.subscribes_ignored, 1);
    assert_resubscribed(&snap, ConnId(3), STREAMS);
    let s = &summary.feeds[0];
    // One outage, from the close to the first data on connection 3, over two attempts.
    assert_eq!(s.reconnects, 1, "{summary}");
    assert_eq!(s.gaps.len(), 1, "{summary}");
    assert_eq!(
        s.gaps[0].cause,
        GapCause::Outage(DisconnectReason::CloseFrame { code: 1000 })
    );
    assert_eq!(s.gaps[0].attempts, 2, "{:?}", s.gaps[0]);
    assert_eq!(
        count_health(&probe.seen(), |h| matches!(h, Health::Recovered { .. })),
        1
    );
    assert_delivery(&sent, &probe.seen(), &[1]);
}

// ----- 3. a stream silent on a live connection ----------------------------------------------

#[test]
fn silent_cadence_stream_gets_a_fresh_connection_before_the_old_one_goes() {
    let sim = sim(false, false);
    let mut f = feed("spot", SPOT, &sim, &[BOOK, TRADES, DEPTH]);
    f.stream_silence_ms.insert(DEPTH.into(), 400);
    let (engine, probe) = start(vec![f], fast_reconnect());
    let depth = stream_index(engine.universe(), 0, DEPTH);
    probe.wait("connected", connected(0, 1));
    probe.wait("depth flowing", |s| ticks_of(s, 0, DEPTH) >= 3);
    sim.inject_on(
        ConnId(1),
        Fault::Mute {
            stream: DEPTH.into(),
        },
    );
    assert!(sim.wait_until(WAIT, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.muted == [DEPTH])));
    probe.wait("rotated", |s| {
        has_health(s, |h| *h == Health::Rotated { old: 1, new: 2 })
    });
    let at_rotation = probe.seen().len();
    probe.wait("depth delivers again", |s| {
        ticks_of(&s[at_rotation..], 0, DEPTH) >= 3
    });
    probe.wait_more_ticks(50);
    let snap = sim.snapshot();
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();

    let seen = probe.seen();
    let health = health_events(&seen, 0);
    assert!(!health.iter().any(is_loss), "{health:?}");
    let c2 = position_of(&seen, |h| *h == Health::Connected { conn: 2 }).unwrap();
    let r12 = position_of(&seen, |h| *h == Health::Rotated { old: 1, new: 2 }).unwrap();
    assert!(c2 < r12, "make before break: {health:?}");
    // The feed-wide view may call depth stale meanwhile; if so it must say when it is back.
    if let Some(stale) = position_of(
        &seen,
        |h| matches!(h, Health::Stale { stream, .. } if *stream == depth),
    ) {
        let resumed = position_of(
            &seen,
            |h| matches!(h, Health::StreamResumed { stream, .. } if *stream == depth),
        );
        assert!(resumed.is_some_and(|r| r > stale), "{health:?}");
    }
    assert!(!snap.conn(ConnId(1)).unwrap().open, "old connection closed");
    let second = snap.conn(ConnId(2)).unwrap();
    assert!(second.open && second.muted.is_empty(), "{snap:?}");
    assert_resubscribed(&snap, ConnId(2), &[BOOK, TRADES, DEPTH]);

    let s = &summary.feeds[0];
    assert_eq!(s.rotations, 1, "{summary}");
    assert_eq!((s.disconnects, s.reconnects), (0, 0), "{summary}");
    // Depth itself missed what was withheld; nothing else did, and there was no outage.
    for g in &s.gaps {
        assert_eq!(g.cause, GapCause::SequenceJump, "{:?}", s.gaps);
        assert!(g.missed.iter().all(|m| m.stream == depth), "{:?}", s.gaps);
    }
    // Everything connection 1 did send (its muted depth is not in the record) arrived.
    assert_delivery(&sent, &seen, &[1]);
}

#[test]
fn silent_event_driven_stream_is_only_reported_stale() {
    let sim = sim(false, false);
    let mut f = feed("spot", SPOT, &sim, &[BOOK, TRADES]);
    f.stream_silence_ms.insert(TRADES.into(), 400);
    let (engine, probe) = start(vec![f], fast_reconnect());
    let trades = stream_index(engine.universe(), 0, TRADES);
    probe.wait("connected", connected(0, 1));
    probe.wait("trades flowing", |s| ticks_of(s, 0, TRADES) >= 3);
    sim.inject_on(
        ConnId(1),
        Fault::Mute {
            stream: TRADES.into(),
        },
    );
    probe.wait("trades stale", |s| {
        has_health(
            s,
            |h| matches!(h, Health::Stale { stream, .. } if *stream == trades),
        )
    });
    // Negative check, bounded in time: a quiet market is no reason to replace a connection.
    // 1 s is 2.5 silence limits; a rotation would have opened a connection within one.
    assert!(
        !sim.wait_until(Duration::from_millis(1000), |s| s.connections.len() > 1),
        "a second connection was opened for an event-driven stream"
    );
    probe.wait_more_ticks(20);
    let (summary, _) = engine.stop();
    sim.shutdown();

    let health = health_events(&probe.seen(), 0);
    assert!(
        !health
            .iter()
            .any(|h| is_loss(h) || matches!(h, Health::Rotated { .. })),
        "{health:?}"
    );
    let s = &summary.feeds[0];
    assert_eq!((s.rotations, s.disconnects), (0, 0), "{summary}");
    assert_eq!(s.stale_events, 1, "{summary}");
}

// ----- 4. hostile input that must not cost the connection ----------------------------------

#[test]
fn hostile_frames_are_counted_and_skipped_and_the_connection_stays_up() {
    let sim = sim(false, false);
    let (engine, probe) = start(vec![feed("spot", SPOT, &sim, STREAMS)], fast_reconnect());
    let stats = engine.stats()[0].clone();
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(20);
    for fault in [
        Fault::Malformed,
        Fault::UnknownMessage,
        Fault::Binary,
        Fault::PingFlood { count: 200 },
        Fault::Malformed,
        Fault::UnknownMessage,
        Fault::Binary,
    ] {
        sim.inject_on(ConnId(1), fault);
    }
    assert!(
        sim.wait_until(WAIT, |s| s.pongs_received == 200),
        "every ping answered with its own pong: {:?}",
        sim.snapshot()
    );
    eventually("counters moved", || {
        stats.parse_errors.load(Ordering::Relaxed) == 2
            && stats.unknown_frames.load(Ordering::Relaxed) == 4
            && stats.pings_received.load(Ordering::Relaxed) == 200
    });
    // Ground truth up to now, around and between the hostile frames: all of it must arrive.
    let sent_so_far = sim.sent_on(ConnId(1));
    wait_delivered(
        &probe,
        &sent_so_far,
        "everything sent around the hostile frames",
    );
    probe.wait_more_ticks(50);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    let sent = sim.sent();
    sim.shutdown();

    assert_eq!(snap.connections.len(), 1, "{snap:?}");
    assert!(snap.connections[0].open, "{snap:?}");
    assert_eq!(snap.pings_sent, 200);
    let seen = probe.seen();
    assert_eq!(
        health_events(&seen, 0),
        [Health::Connected { conn: 1 }],
        "nothing but Connected"
    );
    let s = &summary.feeds[0];
    assert_eq!(
        (s.parse_errors, s.unknown_frames, s.pings_received),
        (2, 4, 200),
        "{summary}"
    );
    assert_eq!((s.disconnects, s.missed_ids), (0, 0), "{summary}");
    assert!(sent.len() > sent_so_far.len(), "ticks kept flowing");
    assert_delivery(&sent, &seen, &[]);
}

// ----- 5. oversized frame ----------------------------------------------------------------------

#[test]
fn oversized_frame_ends_the_connection_and_the_feed_reconnects() {
    let sim = sim(false, false);
    let mut f = feed("spot", SPOT, &sim, STREAMS);
    f.max_frame_bytes = 64 << 10;
    f.max_message_bytes = 64 << 10;
    let (engine, probe) = start(vec![f], fast_reconnect());
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(20);
    sim.inject_on(ConnId(1), Fault::Oversized { bytes: 200_000 });
    probe.wait("too large", |s| {
        has_health(s, |h| {
            *h == Health::Disconnected {
                conn: 1,
                reason: DisconnectReason::TooLarge,
            }
        })
    });
    probe.wait("reconnected", connected(0, 2));
    probe.wait("recovered", recovered(0));
    let at_recovery = probe.tick_count();
    probe.wait("streaming again", |s| tick_count(s) >= at_recovery + 50);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    let sent = sim.sent();
    sim.shutdown();

    assert_resubscribed(&snap, ConnId(2), STREAMS);
    let s = &summary.feeds[0];
    assert_eq!((s.disconnects, s.reconnects), (1, 1), "{summary}");
    assert_eq!(
        s.gaps[0].cause,
        GapCause::Outage(DisconnectReason::TooLarge),
        "{summary}"
    );
    // The big frame was refused, not half-parsed into a tick.
    assert_eq!((s.parse_errors, s.unknown_frames), (0, 0), "{summary}");
    assert_delivery(&sent, &probe.seen(), &[]);
}

// ----- 6. the venue asks to back off --------------------------------------------------------

#[test]
fn ip_ban_with_retry_after_holds_every_feed_of_the_host() {
    let sim = sim(false, false);
    // Feed b retries 150-300 ms after a loss: well after feed a's 418 has been handled (the
    // check below cannot tell a freshly published state from the previous one), and well
    // inside the ban.
    let mut b = feed("b", SPOT, &sim, &["ethusdt@bookTicker"]);
    b.reconnect = Some(ReconnectOverride {
        initial_delay_ms: Some(300),
        max_delay_ms: Some(300),
        ..ReconnectOverride::default()
    });
    let (engine, probe) = start(vec![feed("a", SPOT, &sim, &[BOOK]), b], fast_reconnect());
    let (a, b) = (engine.stats()[0].clone(), engine.stats()[1].clone());
    probe.wait("both connected", |s| {
        connected(0, 1)(s) && connected(1, 1)(s)
    });
    probe.wait_more_ticks(20);
    let snap = sim.snapshot();
    assert_eq!(snap.accepts.len(), 2, "{snap:?}");
    let (conn_a, conn_b) = (
        conn_with(&snap, &[BOOK]),
        conn_with(&snap, &["ethusdt@bookTicker"]),
    );

    // Feed a reconnects into a 418 that asks for 2 s.
    sim.inject(Fault::Reject {
        status: 418,
        count: 1,
        retry_after_s: Some(2),
    });
    sim.inject_on(conn_a, Fault::Close { code: 1000 });
    assert!(sim.wait_until(WAIT, |s| s.upgrades_rejected == 1));
    eventually("feed a took the 418", || {
        a.attempts.load(Ordering::Relaxed) == 2 && a.state() == FeedState::Backoff
    });
    // Now feed b loses its connection inside the ban window: it must wait too.
    sim.inject_on(conn_b, Fault::Close { code: 1000 });
    probe.wait("both recovered", |s| recovered(0)(s) && recovered(1)(s));
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    sim.shutdown();

    // accepts: a#1, b#1, a's 418, then the two retries.
    assert_eq!(snap.accepts.len(), 5, "{:?}", snap.accepts);
    let banned_at = snap.accepts[2];
    for (i, t) in snap.accepts.iter().enumerate().skip(3) {
        let after = t.duration_since(banned_at);
        assert!(
            after >= Duration::from_secs(2),
            "attempt {i} came {after:?} after the 418 with Retry-After 2 s"
        );
    }
    assert!(b.throttled.load(Ordering::Relaxed) >= 1, "{summary}");
    assert_eq!(
        b.attempts.load(Ordering::Relaxed),
        2,
        "feed b's held attempt never reached the venue"
    );
    let seen = probe.seen();
    assert!(has_health_of(&seen, 1, |h| *h
        == Health::Disconnected {
            conn: 1,
            reason: DisconnectReason::CloseFrame { code: 1000 }
        }));
    assert!(
        summary.feeds.iter().all(|s| s.failure.is_none()),
        "a ban is not permanent: {summary}"
    );
}

// ----- 7. the per-host attempt budget -------------------------------------------------------

#[test]
fn reconnect_storm_stays_within_the_per_host_attempt_budget() {
    const LIMIT: usize = 3;
    const WINDOW: Duration = Duration::from_millis(2000);
    // The simulator stamps an accept up to one 2 ms poll (plus scheduling) after the engine's
    // connect; an engine without a budget would make 4 attempts within ~0.5 s here.
    const STAMP_SLACK: Duration = Duration::from_millis(150);
    let sim = sim(false, false);
    let (engine, probe) = start_with(
        vec![feed("spot", SPOT, &sim, &[BOOK])],
        fast_reconnect(),
        |f| {
            f.engine.connect_limit = Some(LIMIT as u32);
            f.engine.connect_window_ms = Some(WINDOW.as_millis() as u64);
        },
    );
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(10);
    // Four refused upgrades in a row, each retried after a 20-200 ms backoff.
    sim.inject(Fault::Reject {
        status: 503,
        count: 4,
        retry_after_s: None,
    });
    sim.inject(Fault::Close { code: 1000 });
    probe.wait("recovered", recovered(0));
    probe.wait_more_ticks(10);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    sim.shutdown();

    assert_eq!(snap.upgrades_rejected, 4);
    assert_eq!(
        snap.accepts.len(),
        6,
        "1 + 4 refused + 1: {:?}",
        snap.accepts
    );
    for (i, w) in snap.accepts.windows(LIMIT + 1).enumerate() {
        let span = w[LIMIT].duration_since(w[0]);
        assert!(
            span + STAMP_SLACK >= WINDOW,
            "attempts {i}..={}: {} within {span:?}",
            i + LIMIT,
            LIMIT + 1
        );
    }
    let s = &summary.feeds[0];
    assert!(s.throttled > 0, "{summary}");
    assert_eq!(s.gaps[0].attempts, 5, "{summary}");
}

// ----- 8. permanent refusals ----------------------------------------------------------------

#[test]
fn http_401_and_403_fail_their_feed_for_good_while_others_stream() {
    let refuses_401 = sim(false, false);
    refuses_401.inject(Fault::Reject {
        status: 401,
        count: 1,
        retry_after_s: None,
    });
    let refuses_403 = sim(false, false);
    let healthy = sim(false, false);
    let (engine, probe) = start(
        vec![
            feed("unauthorized", SPOT, &refuses_401, &[BOOK]),
            feed("forbidden", SPOT, &refuses_403, &[BOOK]),
            feed("healthy", SPOT, &healthy, &[BOOK]),
        ],
        fast_reconnect(),
    );
    let failed = |feed: u16, status: u16| {
        move |s: &[Seen]| {
            has_health_of(s, feed, |h| {
                *h == Health::Failed {
                    reason: DisconnectReason::Http {
                        status,
                        retry_after_s: None,
                    },
                }
            })
        }
    };
    // 401 on the very first attempt.
    probe.wait("401 fails the feed", failed(0, 401));
    // 403 on a reconnect, after the feed had streamed.
    probe.wait("forbidden connected", connected(1, 1));
    refuses_403.inject(Fault::Reject {
        status: 403,
        count: 1,
        retry_after_s: None,
    });
    refuses_403.inject(Fault::Close { code: 1000 });
    probe.wait("403 fails the feed", failed(1, 403));
    for f in [0, 1] {
        eventually("state Failed", || {
            engine.stats()[f].state() == FeedState::Failed
        });
    }
    // Negative checks, bounded in time: for 500 ms (more than the 20-200 ms backoff a retry
    // would use) neither venue sees another attempt...
    let quiet = Duration::from_millis(500);
    assert!(!refuses_401.wait_until(quiet, |s| s.accepts.len() > 1));
    assert!(!refuses_403.wait_until(Duration::ZERO, |s| s.accepts.len() > 2));
    // ...while the healthy feed keeps streaming.
    let base = ticks_of(&probe.seen(), 2, BOOK);
    probe.wait("healthy feed streams on", |s| {
        ticks_of(s, 2, BOOK) >= base + 50
    });
    assert_eq!(refuses_401.snapshot().accepts.len(), 1);
    assert_eq!(refuses_403.snapshot().accepts.len(), 2);
    let attempts = |f: usize| engine.stats()[f].attempts.load(Ordering::Relaxed);
    assert_eq!((attempts(0), attempts(1)), (1, 2));
    let (summary, _) = engine.stop();
    refuses_401.shutdown();
    refuses_403.shutdown();
    healthy.shutdown();

    for (i, status) in [(0, "401"), (1, "403")] {
        let s = &summary.feeds[i];
        assert_eq!(s.state, FeedState::Failed, "{summary}");
        let failure = s.failure.as_deref().unwrap_or_default();
        assert!(failure.contains(status), "{}: failure {failure:?}", s.name);
    }
    let h = &summary.feeds[2];
    assert_eq!(h.state, FeedState::Stopped, "{summary}");
    assert!(h.failure.is_none() && h.disconnects == 0, "{summary}");
    let seen = probe.seen();
    assert_eq!(
        count_health(&seen, |h| matches!(h, Health::Failed { .. })),
        2
    );
    assert!(!has_health_of(&seen, 2, |h| matches!(
        h,
        Health::Failed { .. }
    )));
}

/// A feed with a hot standby at `standby_url`.
fn with_standby(mut f: FeedConfig, standby_url: String) -> FeedConfig {
    f.standby = true;
    f.standby_url = Some(standby_url);
    f
}

#[test]
fn a_standby_refused_for_good_fails_alone_while_the_primary_streams() {
    let primary = sim(false, false);
    // Its CA is not given to the engine: the certificate is rejected.
    let untrusted = sim(true, false);
    let forbidding = sim(false, false);
    forbidding.inject(Fault::Reject {
        status: 403,
        count: 1,
        retry_after_s: None,
    });
    let (engine, probe) = start(
        vec![
            with_standby(feed("cert", SPOT, &primary, &[BOOK]), untrusted.base_url()),
            with_standby(
                feed("forbidden", SPOT, &primary, &["ethusdt@bookTicker"]),
                forbidding.base_url(),
            ),
        ],
        fast_reconnect(),
    );
    for f in [0usize, 1] {
        let stats = engine.stats()[f].clone();
        eventually("standby slot failed", || {
            let standby = &stats.slots[1];
            standby.role() == SlotRole::Standby && standby.state() == FeedState::Failed
        });
        probe.wait("primary connected", connected(f as u16, 1));
        eventually("feed streaming", || stats.state() == FeedState::Streaming);
    }
    // Negative check, bounded in time: no second attempt at either standby for 500 ms.
    assert!(!untrusted.wait_until(Duration::from_millis(500), |s| s.accepts.len() > 1));
    assert!(!forbidding.wait_until(Duration::ZERO, |s| s.accepts.len() > 1));
    // The feeds go on over their primaries, and still recover from losing them.
    probe.wait_more_ticks(50);
    primary.inject(Fault::Close { code: 1000 });
    probe.wait("both recovered", |s| recovered(0)(s) && recovered(1)(s));
    probe.wait_more_ticks(50);
    let states: Vec<FeedState> = engine.stats().iter().map(|s| s.state()).collect();
    let (summary, _) = engine.stop();
    let (untrusted_accepts, forbidding_accepts) = (
        untrusted.snapshot().accepts.len(),
        forbidding.snapshot().accepts.len(),
    );
    primary.shutdown();
    untrusted.shutdown();
    forbidding.shutdown();

    assert_eq!(states, [FeedState::Streaming, FeedState::Streaming]);
    assert_eq!((untrusted_accepts, forbidding_accepts), (1, 1));
    let seen = probe.seen();
    assert!(
        !has_health(&seen, |h| matches!(h, Health::Failed { .. })),
        "{:?}",
        health_of(&seen)
    );
    for s in &summary.feeds {
        assert!(s.failure.is_none(), "{summary}");
        assert_ne!(s.state, FeedState::Failed, "{summary}");
        assert_eq!(s.reconnects, 1, "{summary}");
    }
}

// ----- permanent refusals meet rotation -----------------------------------------------------

#[test]
fn a_failed_standby_does_not_stop_the_primary_s_age_rotation() {
    // The venue cuts at 3 s; the engine replaces connections at 1.5 s. The standby's
    // certificate is rejected, so the feed runs on its primary alone, which still has to be
    // replaced before the venue cuts it.
    let primary = sim_with(|c| c.max_conn_age = Some(Duration::from_secs(3)));
    let untrusted = sim(true, false);
    let (engine, probe) = start(
        vec![with_standby(
            feed("spot", SPOT, &primary, &[BOOK, TRADES]),
            untrusted.base_url(),
        )],
        ReconnectConfig {
            max_connection_age_ms: 1500,
            ..fast_reconnect()
        },
    );
    let stats = engine.stats()[0].clone();
    eventually("standby slot failed", || {
        stats.slots[1].role() == SlotRole::Standby && stats.slots[1].state() == FeedState::Failed
    });
    probe.wait("primary connected", connected(0, 1));
    // Bounded by the venue's cut at 3 s: whichever comes first.
    probe.wait("a rotation, or the venue's cut", |s| {
        has_health(s, |h| matches!(h, Health::Rotated { .. }) || is_loss(h))
    });
    let snap = primary.snapshot();
    let (summary, _) = engine.stop();
    primary.shutdown();
    untrusted.shutdown();

    let health = health_events(&probe.seen(), 0);
    assert!(
        !health.iter().any(is_loss),
        "the failed standby kept the primary from being replaced; the venue cut it \
         (age_closes {}): {health:?}\n{summary}",
        snap.age_closes
    );
    assert!(
        health.contains(&Health::Rotated { old: 1, new: 2 }),
        "{health:?}"
    );
    assert_eq!(snap.age_closes, 0);
    let s = &summary.feeds[0];
    assert!(s.rotations >= 1 && s.missed_ids == 0, "{summary}");
    assert!(s.failure.is_none(), "{summary}");
}

#[test]
fn a_failed_standby_does_not_stop_a_silent_stream_s_fresh_connection() {
    let primary = sim(false, false);
    let untrusted = sim(true, false);
    let mut f = with_standby(
        feed("spot", SPOT, &primary, &[BOOK, DEPTH]),
        untrusted.base_url(),
    );
    f.stream_silence_ms.insert(DEPTH.into(), 400);
    let (engine, probe) = start(vec![f], fast_reconnect());
    let stats = engine.stats()[0].clone();
    eventually("standby slot failed", || {
        stats.slots[1].role() == SlotRole::Standby && stats.slots[1].state() == FeedState::Failed
    });
    probe.wait("primary connected", connected(0, 1));
    probe.wait("depth flowing", |s| ticks_of(s, 0, DEPTH) >= 3);
    primary.inject_on(
        ConnId(1),
        Fault::Mute {
            stream: DEPTH.into(),
        },
    );
    // Liveness bound: the replacement starts after 400 ms of silence and carries the feed a
    // few ms later; 3 s is room for a loaded machine.
    within(
        Duration::from_secs(3),
        || {
            format!(
                "no fresh connection for the silent depth stream (venue saw {} connections); \
                 health {:?}",
                primary.snapshot().connections.len(),
                probe.health()
            )
        },
        || has_health(&probe.seen(), |h| *h == Health::Rotated { old: 1, new: 2 }),
    );
    let at_rotation = probe.seen().len();
    probe.wait("depth delivers again", |s| {
        ticks_of(&s[at_rotation..], 0, DEPTH) >= 3
    });
    let (summary, _) = engine.stop();
    primary.shutdown();
    untrusted.shutdown();
    let s = &summary.feeds[0];
    assert_eq!((s.rotations, s.disconnects), (1, 0), "{summary}");
}

#[test]
fn a_replacement_refused_for_good_never_leaves_the_feed_silently_dead() {
    // The venue cuts at 3 s; the engine opens a replacement at 1.5 s, and the venue answers
    // that upgrade with 403.
    let sim = sim_with(|c| c.max_conn_age = Some(Duration::from_secs(3)));
    let (engine, probe) = start(
        vec![feed("spot", SPOT, &sim, &[BOOK, TRADES])],
        ReconnectConfig {
            max_connection_age_ms: 1500,
            ..fast_reconnect()
        },
    );
    let stats = engine.stats()[0].clone();
    probe.wait("connected", connected(0, 1));
    sim.inject(Fault::Reject {
        status: 403,
        count: 1,
        retry_after_s: None,
    });
    assert!(sim.wait_until(WAIT, |s| s.upgrades_rejected == 1));
    // Whatever the engine makes of it (fail the feed loudly, or carry on over the old
    // connection and reconnect once the venue cuts it), the strategy must be told: within the
    // 5 s reconnect target after the cut, either `Failed` or `Recovered`.
    let failed = |h: &Health| matches!(h, Health::Failed { .. });
    probe.wait("Failed, or the venue's cut", |s| {
        has_health(s, |h| failed(h) || is_loss(h))
    });
    within(
        Duration::from_secs(5),
        || {
            format!(
                "the feed went silent: no Failed, no Recovered; published state {:?}, failure \
                 {:?}, venue saw {} connects; health {:?}",
                stats.state(),
                stats.failure.lock().unwrap(),
                sim.snapshot().accepts.len(),
                probe.health()
            )
        },
        || {
            has_health(&probe.seen(), |h| {
                failed(h) || matches!(h, Health::Recovered { .. })
            })
        },
    );
    let seen = probe.seen();
    if has_health(&seen, failed) {
        eventually("state Failed", || stats.state() == FeedState::Failed);
    } else {
        eventually("streaming", || stats.state() == FeedState::Streaming);
        probe.wait_more_ticks(20);
    }
    let (summary, _) = engine.stop();
    sim.shutdown();
    let s = &summary.feeds[0];
    if has_health(&seen, failed) {
        assert!(
            s.failure.as_deref().is_some_and(|f| f.contains("403")),
            "{summary}"
        );
    } else {
        assert!(s.failure.is_none() && s.reconnects >= 1, "{summary}");
    }
}

// ----- 9. a streaming session that ends is replaced at once ---------------------------------

/// A connection that streamed for `at_once_after_ms` and was then closed cleanly is replaced
/// at once, not after the backoff; one that had streamed for less backs off as before. The
/// backoff here is 2 s (equal jitter: at least 1 s), so "at once" and "backed off" are far
/// apart whatever the machine's load.
#[test]
fn a_streaming_session_is_replaced_at_once_and_a_short_one_backs_off() {
    let sim = sim(false, false);
    let reconnect = ReconnectConfig {
        initial_delay_ms: 2000,
        max_delay_ms: 2000,
        at_once_after_ms: 300,
        ..fast_reconnect()
    };
    let (engine, probe) = start(vec![feed("a", SPOT, &sim, &[BOOK])], reconnect);
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(20);
    // Streamed long enough: replaced at once.
    std::thread::sleep(Duration::from_millis(300));
    let closed = Instant::now();
    sim.inject(Fault::Close { code: 1000 });
    probe.wait("reconnected", connected(0, 2));
    let snap = sim.snapshot();
    let again = *snap.accepts.last().expect("accepts");
    assert!(
        again.saturating_duration_since(closed) < Duration::from_millis(900),
        "reconnected {:?} after the close, not at once",
        again.saturating_duration_since(closed)
    );
    // Closed again before it streamed for 300 ms: the backoff applies.
    probe.wait_more_ticks(5);
    let closed = Instant::now();
    sim.inject(Fault::Close { code: 1000 });
    probe.wait("reconnected after the backoff", connected(0, 3));
    let snap = sim.snapshot();
    let again = *snap.accepts.last().expect("accepts");
    assert!(
        again.saturating_duration_since(closed) >= Duration::from_millis(900),
        "a short session was replaced after {:?}: it should have backed off",
        again.saturating_duration_since(closed)
    );
    engine.stop();
}

// ----- subscribing in the URL on a reconnect ------------------------------------------------

#[test]
fn a_reconnect_subscribes_in_its_url_so_data_needs_no_round_trip() {
    let sim = sim(false, false);
    let (engine, probe) = start(vec![feed("spot", SPOT, &sim, STREAMS)], fast_reconnect());
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(20);
    let before = sim.snapshot();
    assert_eq!(
        before.url_subscriptions, 0,
        "the first connection subscribes by request"
    );
    sim.inject(Fault::Close { code: 1000 });
    probe.wait("second connection", connected(0, 2));
    probe.wait("recovered", recovered(0));
    probe.wait_more_ticks(20);
    let snap = sim.snapshot();
    engine.stop();
    sim.shutdown();

    assert_eq!(snap.url_subscriptions, 1, "{snap:?}");
    assert_eq!(
        snap.subscribe_requests,
        before.subscribe_requests + 1,
        "no SUBSCRIBE besides the URL: {snap:?}"
    );
    assert_resubscribed(&snap, ConnId(2), STREAMS);
}
