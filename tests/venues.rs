//! Bybit v5 and OKX v5 feeds against the simulator speaking each venue: subscription and acks,
//! the venues' keep-alive rules, local order books, and book resync after a missed update, a
//! broken chain or a crossed book.

mod util;

use std::time::Duration;

use util::*;
use wsfeed::config::{FeedConfig, ReconnectConfig};
use wsfeed::sim::{BookFault, Sim, SimConfig, SimVenue};
use wsfeed::summary::FeedSummary;
use wsfeed::tick::{DisconnectReason, Health};

fn venue_sim(venue: SimVenue, idle: Option<Duration>) -> Sim {
    Sim::start(SimConfig {
        tls: false,
        venue,
        idle_timeout: idle,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn quotes_of(seen: &[Seen], stream: &str) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Tick { stream: n, .. } if n == stream))
        .count()
}

fn bybit_feed(sim: &Sim, venue: &str) -> FeedConfig {
    feed(
        "bybit",
        venue,
        sim,
        &[
            "orderbook.50.BTCUSDT",
            "orderbook.1.ETHUSDT",
            "publicTrade.BTCUSDT",
        ],
    )
}

fn okx_feed(sim: &Sim) -> FeedConfig {
    feed(
        "okx",
        "okx",
        sim,
        &[
            "books:BTC-USDT-SWAP",
            "bbo-tbt:ETH-USDT-SWAP",
            "trades:BTC-USDT-SWAP",
            "funding-rate:BTC-USDT-SWAP",
        ],
    )
}

/// Runs `feed` until it is connected and each of `streams` delivered three ticks; returns its
/// summary.
fn stream_each(feed: FeedConfig, streams: &[&str]) -> FeedSummary {
    let (engine, probe) = start(vec![feed], fast_reconnect());
    probe.wait("connected", |s| {
        has_health(s, |h| matches!(h, Health::Connected { .. }))
    });
    probe.wait("every stream delivers", |s| {
        streams.iter().all(|n| quotes_of(s, n) >= 3)
    });
    engine.stop().0.feeds.remove(0)
}

#[test]
fn bybit_spot_and_linear_stream_every_topic_and_keep_the_book() {
    for (venue, name) in [
        (SimVenue::BybitSpot, "bybit-spot"),
        (SimVenue::BybitLinear, "bybit-linear"),
    ] {
        let sim = venue_sim(venue, Some(Duration::from_secs(30)));
        let f = stream_each(
            bybit_feed(&sim, name),
            &[
                "orderbook.50.BTCUSDT",
                "orderbook.1.ETHUSDT",
                "publicTrade.BTCUSDT",
            ],
        );
        assert_eq!(f.parse_errors, 0, "{name}");
        assert_eq!(f.disconnects, 0, "{name}");
    }
}

#[test]
fn okx_streams_every_channel_and_keeps_the_book() {
    let sim = venue_sim(SimVenue::Okx, Some(Duration::from_secs(30)));
    let f = stream_each(
        okx_feed(&sim),
        &[
            "books:BTC-USDT-SWAP",
            "bbo-tbt:ETH-USDT-SWAP",
            "trades:BTC-USDT-SWAP",
        ],
    );
    assert_eq!(f.parse_errors, 0);
    assert_eq!(f.unknown_frames, 0);
}

/// The stream kinds users subscribe to, through the engine: Binance USD-M `@trade` (each trade, ids
/// chained) and `@kline_1m` beside `@aggTrade`, and Bybit `orderbook.200` beside
/// `orderbook.50`, each in the venue's documented format.
#[test]
fn trades_klines_and_deeper_books_stream_through_the_engine() {
    let sim = venue_sim(SimVenue::Binance, None);
    let streams = ["btcusdt@trade", "btcusdt@kline_1m", "btcusdt@aggTrade"];
    let f = stream_each(feed("binance", "binance-usdm", &sim, &streams), &streams);
    assert_eq!((f.parse_errors, f.unknown_frames), (0, 0));
    assert_eq!((f.seq_gaps, f.missed_ids), (0, 0), "trade ids chain");
    assert_eq!(f.rejected_streams, 0);

    for (venue, name) in [
        (SimVenue::BybitSpot, "bybit-spot"),
        (SimVenue::BybitLinear, "bybit-linear"),
    ] {
        let sim = venue_sim(venue, Some(Duration::from_secs(30)));
        let streams = ["orderbook.200.BTCUSDT", "orderbook.50.ETHUSDT"];
        let f = stream_each(feed("bybit", name, &sim, &streams), &streams);
        assert_eq!((f.parse_errors, f.unknown_frames), (0, 0), "{name}");
        assert_eq!((f.seq_gaps, f.book_resyncs), (0, 0), "{name}");
        assert_eq!(f.rejected_streams, 0, "{name}");
    }
}

/// The simulator closes a connection whose client sends nothing for `idle_timeout`, as the
/// venues do. With the venue's keep-alive the connection lives; a client that stops pinging is
/// closed and recovers.
#[test]
fn keep_alive_holds_the_connection_and_its_absence_is_recovered_from() {
    for (venue, name, feed_of) in [
        (SimVenue::Okx, "okx", okx_feed as fn(&Sim) -> FeedConfig),
        (SimVenue::BybitLinear, "bybit-linear", |s: &Sim| {
            bybit_feed(s, "bybit-linear")
        }),
    ] {
        let idle = Duration::from_millis(800);
        // Pinging every 300 ms: the venue never closes.
        let sim = venue_sim(venue, Some(idle));
        let mut f = feed_of(&sim);
        f.reconnect = Some(toml::from_str("keepalive_ms = 300").unwrap());
        let (engine, probe) = start(vec![f], fast_reconnect());
        probe.wait("connected", |s| {
            has_health(s, |h| matches!(h, Health::Connected { .. }))
        });
        let before = probe.tick_count();
        probe.wait_more_ticks(before + 2000);
        assert_eq!(sim.snapshot().idle_closes, 0, "{name}: kept alive");
        assert!(sim.snapshot().venue_pings > 0, "{name}: pinged");
        engine.stop();

        // Never pinging: the venue closes the connection; the feed recovers.
        let sim = venue_sim(venue, Some(idle));
        let mut f = feed_of(&sim);
        f.reconnect = Some(toml::from_str("keepalive_ms = 0").unwrap());
        let (engine, probe) = start(
            vec![f],
            ReconnectConfig {
                stale_after_ms: 60_000,
                ..fast_reconnect()
            },
        );
        probe.wait("closed by the venue, then recovered", |s| {
            has_health(s, |h| {
                matches!(
                    h,
                    Health::Disconnected {
                        reason: DisconnectReason::CloseFrame { code: 1001 },
                        ..
                    }
                )
            }) && has_health(s, |h| matches!(h, Health::Recovered { .. }))
        });
        assert!(sim.snapshot().idle_closes >= 1, "{name}");
        engine.stop();
    }
}

/// A book fault on the only connection: the book is reported invalid, its ticks stop, a fresh
/// connection brings a snapshot, the book is valid again, and no crossed or stale top was
/// handed over in between.
#[test]
fn book_faults_invalidate_the_book_and_it_resyncs() {
    for (venue, name, stream, fault) in [
        (
            SimVenue::Okx,
            "okx",
            "books:BTC-USDT-SWAP",
            BookFault::SkipSeq,
        ),
        (
            SimVenue::Okx,
            "okx",
            "books:BTC-USDT-SWAP",
            BookFault::BreakChain,
        ),
        (
            SimVenue::Okx,
            "okx",
            "books:BTC-USDT-SWAP",
            BookFault::CrossBook,
        ),
        (
            SimVenue::Okx,
            "okx",
            "books:BTC-USDT-SWAP",
            BookFault::BadChecksum,
        ),
        (
            SimVenue::BybitLinear,
            "bybit-linear",
            "orderbook.50.BTCUSDT",
            BookFault::SkipSeq,
        ),
        (
            SimVenue::BybitLinear,
            "bybit-linear",
            "orderbook.50.BTCUSDT",
            BookFault::BreakChain,
        ),
        (
            SimVenue::BybitLinear,
            "bybit-linear",
            "orderbook.50.BTCUSDT",
            BookFault::CrossBook,
        ),
    ] {
        let sim = Sim::start(SimConfig {
            tls: false,
            venue,
            okx_checksum: fault == BookFault::BadChecksum,
            symbols: vec!["BTCUSDT".into()],
            ..SimConfig::default()
        })
        .unwrap();
        eprintln!("case {name} {fault:?}");
        let f = feed("books", name, &sim, &[stream]);
        let (engine, probe) = start(vec![f], fast_reconnect());
        probe.wait("book streaming", |s| quotes_of(s, stream) >= 20);
        let conn = sim.snapshot().open_connections().next().unwrap().id;
        sim.inject_book_on(conn, fault);
        probe.wait("invalid, then resynced", |s| {
            has_health(s, |h| matches!(h, Health::BookInvalid { .. }))
                && has_health(s, |h| matches!(h, Health::BookResynced { .. }))
        });
        let seen = probe.seen();
        let invalid = position_of(&seen, |h| matches!(h, Health::BookInvalid { .. })).unwrap();
        let resynced = position_of(&seen, |h| matches!(h, Health::BookResynced { .. })).unwrap();
        assert!(invalid < resynced, "{name} {fault:?}");
        // Between the two, only the chunks of the snapshot that rebuilds the book (one
        // message: one sequence number); its last chunk and the new top follow the event.
        let between: std::collections::BTreeSet<u64> = seen[invalid..resynced]
            .iter()
            .filter_map(|s| match s {
                Seen::Tick { stream: n, seq, .. } if n == stream => Some(*seq),
                _ => None,
            })
            .collect();
        assert!(
            between.len() <= 1,
            "{name} {fault:?}: book ticks while the book was invalid: {between:?}"
        );
        probe.wait("book ticks again", |s| {
            quotes_of(&s[resynced..], stream) >= 5
        });
        let summary = engine.stop().0;
        assert!(
            !has_health(&seen, |h| matches!(h, Health::Disconnected { .. })),
            "{name} {fault:?}: resync without an outage"
        );
        assert!(
            summary.feeds[0].rotations >= 1,
            "{name} {fault:?}: a fresh connection"
        );
    }
}

/// Binance depth: the book starts from the REST snapshot (spot and USD-M rules), resyncs from
/// a new snapshot after a missed diff without a new connection, and fetches again when a
/// snapshot is older than the buffered diffs.
#[test]
fn binance_books_start_from_rest_snapshots_and_resync_from_them() {
    for (venue, routing) in [("binance-spot", false), ("binance-usdm", true)] {
        let sim = Sim::start(SimConfig {
            tls: true,
            usdm_routing: routing,
            symbols: vec!["BTCUSDT".into()],
            ..SimConfig::default()
        })
        .unwrap();
        let stream = "btcusdt@depth@100ms";
        let (engine, probe) = start(
            vec![feed("depth", venue, &sim, &[stream])],
            fast_reconnect(),
        );
        probe.wait("book built", |s| quotes_of(s, stream) >= 10);
        // A missed diff; and the snapshot fetched to resync is stale (older than the diffs
        // buffered meanwhile): the feed must notice and fetch again.
        sim.inject_book(BookFault::SnapshotStale);
        let conn = sim.snapshot().open_connections().next().unwrap().id;
        sim.inject_book_on(conn, BookFault::SkipSeq);
        probe.wait("invalid, then resynced", |s| {
            has_health(s, |h| matches!(h, Health::BookInvalid { .. }))
                && has_health(s, |h| matches!(h, Health::BookResynced { .. }))
        });
        let snap = sim.snapshot();
        assert_eq!(snap.stale_snapshots_served, 1, "{venue}");
        assert!(
            snap.rest_requests >= 3,
            "{venue}: the first snapshot, the stale one, and one more: {}",
            snap.rest_requests
        );
        let resynced = probe
            .seen()
            .iter()
            .position(|s| {
                matches!(
                    s,
                    Seen::Health {
                        event: Health::BookResynced { .. },
                        ..
                    }
                )
            })
            .unwrap();
        probe.wait("book ticks again", |s| {
            quotes_of(&s[resynced..], stream) >= 5
        });
        let summary = engine.stop().0;
        assert_eq!(
            summary.feeds[0].rotations, 0,
            "{venue}: REST resync, same connection"
        );
        assert_eq!(summary.feeds[0].disconnects, 0, "{venue}");
    }
}

/// A topic the venue does not know is rejected, reported once and never resubscribed; the other
/// streams of the feed go on.
#[test]
fn each_venue_rejects_an_unknown_topic_and_the_rest_streams() {
    for (venue, name, good, bad) in [
        (
            SimVenue::BybitLinear,
            "bybit-linear",
            "orderbook.1.BTCUSDT",
            "publicTrade.XYZUSDT",
        ),
        (
            SimVenue::BybitSpot,
            "bybit-spot",
            "orderbook.1.BTCUSDT",
            "tickers.NOPEUSDT",
        ),
        (
            SimVenue::Okx,
            "okx",
            "bbo-tbt:BTC-USDT-SWAP",
            "trades:NOPE-USDT-SWAP",
        ),
    ] {
        let sim = venue_sim(venue, Some(Duration::from_secs(30)));
        let (engine, probe) = start(vec![feed("f", name, &sim, &[good, bad])], fast_reconnect());
        probe.wait("rejected, subscribed, and the good stream delivers", |s| {
            has_health(s, |h| {
                matches!(h, Health::SubscriptionRejected { stream: 1, .. })
            }) && has_health(s, |h| matches!(h, Health::Connected { .. }))
                && quotes_of(s, good) >= 5
        });
        let seen = probe.seen();
        assert_eq!(
            count_health(&seen, |h| matches!(h, Health::SubscriptionRejected { .. })),
            1,
            "{name}: reported once"
        );
        let summary = engine.stop().0;
        assert_eq!(summary.feeds[0].rejected_streams, 1, "{name}");
        assert_eq!(summary.feeds[0].disconnects, 0, "{name}");
    }
}

/// One bogus id far ahead on a quote stream (Bybit `orderbook.1` with `u` 1000 too high, as the
/// simulator's BreakChain does there) must not silence the stream until the venue catches up:
/// after a run of updates that are all "old", the feed follows the venue's numbering again.
#[test]
fn a_bogus_id_far_ahead_does_not_silence_a_quote_stream() {
    let sim = venue_sim(SimVenue::BybitLinear, Some(Duration::from_secs(30)));
    let stream = "orderbook.1.BTCUSDT";
    let (engine, probe) = start(
        vec![feed("top", "bybit-linear", &sim, &[stream])],
        fast_reconnect(),
    );
    probe.wait("quotes", |s| quotes_of(s, stream) >= 10);
    let conn = sim.snapshot().open_connections().next().unwrap().id;
    sim.inject_book_on(conn, BookFault::BreakChain);
    let after = probe.seen().len();
    let sent_before = sim.sent().iter().filter(|r| r.stream == stream).count();
    // 1000 updates pass before the venue's ids catch up with the bogus one; the feed starts
    // over after 256. By the 700th, most of the rest must have been given.
    assert!(sim.wait_until(WAIT, |_| {
        sim.sent().iter().filter(|r| r.stream == stream).count() >= sent_before + 700
    }));
    probe.wait("quotes again well before the venue catches up", |s| {
        quotes_of(&s[after..], stream) >= 300
    });
    assert!(
        sim.sent().iter().filter(|r| r.stream == stream).count() < sent_before + 1000,
        "the venue had caught up by itself: the test proves nothing"
    );
    let summary = engine.stop().0;
    assert_eq!(summary.feeds[0].disconnects, 0);
}

/// A top-of-book quote whose bid reaches its ask cannot be right: it is counted and not given,
/// and the quotes after it are.
#[test]
fn a_crossed_quote_is_dropped_and_counted() {
    let sim = venue_sim(SimVenue::Okx, Some(Duration::from_secs(30)));
    let stream = "bbo-tbt:BTC-USDT-SWAP";
    let (engine, probe) = start(vec![feed("top", "okx", &sim, &[stream])], fast_reconnect());
    probe.wait("quotes", |s| quotes_of(s, stream) >= 10);
    let conn = sim.snapshot().open_connections().next().unwrap().id;
    sim.inject_book_on(conn, BookFault::CrossBook);
    assert!(sim.wait_until(WAIT, |s| s.faults_injected >= 1));
    let after = probe.seen().len();
    probe.wait("quotes go on", |s| quotes_of(&s[after..], stream) >= 20);
    let summary = engine.stop().0;
    assert_eq!(summary.feeds[0].crossed_quotes, 1);
}

/// REST snapshots that the venue refuses are retried with growing waits (exponential, with
/// jitter: at least 125, 250, 500 ms after the 2nd, 3rd, 4th failure in a row; the formula is
/// checked exactly in `feed::book`) and never before a `Retry-After` the venue sent (2 s here,
/// twice the old fixed retry); the book is built once a snapshot comes.
#[test]
fn refused_rest_snapshots_back_off_and_honour_retry_after() {
    let sim = Sim::start(SimConfig {
        tls: true,
        usdm_routing: false,
        symbols: vec!["BTCUSDT".into()],
        ..SimConfig::default()
    })
    .unwrap();
    sim.reject_rest(429, 1, Some(2));
    sim.reject_rest(503, 3, None);
    let stream = "btcusdt@depth@100ms";
    let (engine, probe) = start(
        vec![feed("depth", "binance-spot", &sim, &[stream])],
        fast_reconnect(),
    );
    probe.wait("book built", |s| quotes_of(s, stream) >= 1);
    let times = sim.snapshot().rest_request_times;
    engine.stop();
    assert!(
        times.len() >= 5,
        "four refusals, then the snapshot: {}",
        times.len()
    );
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let least = [2000, 125, 250, 500].map(Duration::from_millis);
    for (i, (gap, least)) in gaps.iter().zip(least).enumerate() {
        assert!(
            *gap >= least,
            "request {} came {gap:?} after a refusal; at least {least:?} expected ({gaps:?})",
            i + 2
        );
    }
}
