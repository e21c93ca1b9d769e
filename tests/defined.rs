//! Venues defined in config, end to end: the simulator speaks each venue from the same
//! definition the engine reads (the shipped Paradex, Hyperliquid and Vest definitions, and a test
//! venue numbered `+1` with a keep-alive and a ping of its own), and the engine gets every
//! feature that needs no venue knowledge: quotes and trades with the right prices and sides,
//! reconnect after a reset and a half-open connection with the outage's missed ids exactly
//! what the simulator's ground truth shows, a sequence jump of exactly the withheld ids, a hot
//! standby, rotation before the venue's age cut, and a capture whose audit finds no
//! unexplained hole. Paradex's data comes as binary SBE frames, as the venue sends it; its
//! capture replays into the very ticks the live feed gave. A silent stream is reported stale,
//! and `/metrics` serves a defined venue's feed like any other.
//!
//! Every wait has a deadline (`Probe::wait`, `Sim::wait_until`, `eventually`).

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::*;
use wsfeed::config::{
    CaptureConfig, Config, FeedConfig, FileConfig, MetricsConfig, ReconnectConfig,
};
use wsfeed::engine::Engine;
use wsfeed::metrics::{GapCause, GapRecord, Missed};
use wsfeed::sim::{ConnId, Fault, SentRecord, Sim, SimConfig, SimVenue};
use wsfeed::strategy::{Strategy, Universe};
use wsfeed::summary::Summary;
use wsfeed::tick::{FeedId, Health, Tick, TickData};

const PARADEX: &str = "configs/venues/paradex.toml";
const HYPERLIQUID: &str = "configs/venues/hyperliquid.toml";
/// Symbol first (`BTC-PERP@depth`), a null-result ack, top of book from depth, unnumbered.
const VEST: &str = "configs/venues/vest.toml";
/// `simtest`: `{streams}` requests, `+1` quotes (`quote@…`, µs times) and `+1` trades
/// (`deal@…`, several a message, ns times), a keep-alive and a server ping.
const TEST_VENUE: &str = "src/sim/tests/defined_venue.toml";

// ----- helpers -----------------------------------------------------------------------------------

/// A plain `ws://` simulator speaking the definition in `path`, BTCUSDT and ETHUSDT named
/// `names` on the venue, fast books and trades; `tweak` sets anything else.
fn sim_of(path: &str, names: [&str; 2], tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut cfg = SimConfig {
        tls: false,
        venue: SimVenue::Defined(defined_venue(path)),
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        venue_symbols: names.iter().map(|s| s.to_string()).collect(),
        book_interval: Duration::from_millis(5),
        trade_interval: Duration::from_millis(15),
        server_ping_interval: Duration::from_millis(200),
        idle_timeout: None,
        ..SimConfig::default()
    };
    tweak(&mut cfg);
    Sim::start(cfg).expect("simulator starts")
}

/// What the strategy saw of each tick's content: (feed, stream, data).
type Data = Arc<Mutex<Vec<(FeedId, String, TickData)>>>;

/// The shared recorder, and each tick's content besides.
struct Tee {
    recorder: Recorder,
    universe: Universe,
    data: Data,
}

impl Strategy for Tee {
    fn on_start(&mut self, universe: &Universe) {
        self.universe = universe.clone();
        self.recorder.on_start(universe);
    }
    fn on_tick(&mut self, tick: &Tick) {
        let stream = &self.universe.feeds[tick.feed as usize].streams[tick.stream as usize];
        self.data
            .lock()
            .unwrap()
            .push((tick.feed, stream.name.clone(), tick.data));
        self.recorder.on_tick(tick);
    }
    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health) {
        self.recorder.on_health(feed, at_ns, event);
    }
    fn on_universe(&mut self, universe: &Universe) {
        self.universe = universe.clone();
        self.recorder.on_universe(universe);
    }
}

/// Starts an engine over `feeds` of the definitions in `files`; `tweak` sets anything else.
fn engine_with(
    files: &[&str],
    feeds: Vec<FeedConfig>,
    reconnect: ReconnectConfig,
    tweak: impl FnOnce(&mut FileConfig),
) -> (Engine<Tee>, Probe, Data) {
    let mut file: FileConfig = toml::from_str("").expect("empty config parses");
    file.reconnect = reconnect;
    file.feeds = feeds;
    file.venues = files.iter().map(|f| definition(f)).collect();
    tweak(&mut file);
    engine_on(file.validate().expect("test config is valid"))
}

/// Starts an engine on `config` with a [`Tee`].
fn engine_on(config: Config) -> (Engine<Tee>, Probe, Data) {
    let (recorder, probe) = recorder();
    let data = Data::default();
    let tee = Tee {
        recorder,
        universe: Universe::default(),
        data: Arc::clone(&data),
    };
    (
        Engine::start(config, tee).expect("engine starts"),
        probe,
        data,
    )
}

fn connected(feed: u16, n: u32) -> impl Fn(&[Seen]) -> bool {
    move |s| has_health_of(s, feed, |h| *h == Health::Connected { conn: n })
}

/// Injects `fault` on every connection, then waits for the feed's `n`-th recovery and 30
/// ticks more.
fn outage(sim: &Sim, probe: &Probe, fault: Fault, n: usize) {
    sim.inject(fault);
    probe.wait(&format!("recovery {n}"), |s| recoveries(s) >= n);
    probe.wait_more_ticks(30);
}

fn recoveries(seen: &[Seen]) -> usize {
    count_health(seen, |h| matches!(h, Health::Recovered { .. }))
}

/// The sequence numbers of `stream` the strategy received, in order, with their position in
/// everything seen.
fn seqs_of(seen: &[Seen], stream: &str) -> Vec<(usize, u64)> {
    seen.iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Seen::Tick { stream: n, seq, .. } if n == stream => Some((i, *seq)),
            _ => None,
        })
        .collect()
}

/// Ground truth of `stream` on `conn`.
fn sent_of<'a>(sent: &'a [SentRecord], conn: ConnId, stream: &str) -> Vec<&'a SentRecord> {
    sent.iter()
        .filter(|r| r.conn == conn && r.stream == stream)
        .collect()
}

/// The outage gaps of feed 0 in the run's summary.
fn outages(summary: &Summary) -> Vec<&GapRecord> {
    summary.feeds[0]
        .gaps
        .iter()
        .filter(|g| matches!(g.cause, GapCause::Outage(_)))
        .collect()
}

// ----- 1. the shipped definitions stream through the engine -------------------------------------

#[test]
fn paradex_and_hyperliquid_stream_quotes_and_trades_through_the_engine() {
    let paradex = sim_of(PARADEX, ["BTC-USD-PERP", "ETH-USD-PERP"], |_| {});
    let hyper = sim_of(HYPERLIQUID, ["BTC", "ETH"], |_| {});
    // The config as a user writes it: the shipped definitions named by file.
    let text = format!(
        r#"
venue_files = ["{PARADEX}", "{HYPERLIQUID}"]
[reconnect]
initial_delay_ms = 20
max_delay_ms = 200
[[feeds]]
name = "px"
venue = "paradex"
url = "{}"
streams = ["bbo.BTC-USD-PERP", "trades.ETH-USD-PERP"]
[[feeds]]
name = "hl"
venue = "hyperliquid"
url = "{}"
streams = ["bbo:BTC", "trades:ETH", "bbo:ETH"]
"#,
        defined_url(&paradex),
        defined_url(&hyper)
    );
    let (engine, probe, data) = engine_on(Config::from_toml(&text).expect("the config is valid"));
    let streams = [
        (0, "bbo.BTC-USD-PERP"),
        (0, "trades.ETH-USD-PERP"),
        (1, "bbo:BTC"),
        (1, "trades:ETH"),
        (1, "bbo:ETH"),
    ];
    probe.wait("ticks on every stream", |s| {
        streams.iter().all(|(f, n)| ticks_of(s, *f, n) >= 20)
    });
    let (summary, _) = engine.stop();
    // Taken after the stop: everything the strategy saw was sent by then.
    let sent = paradex.sent();
    let seen = probe.seen();
    assert!(has_health_of(&seen, 0, |h| *h == Health::Connected { conn: 1 }));
    assert!(has_health_of(&seen, 1, |h| *h == Health::Connected { conn: 1 }));
    // Paradex's bbo is numbered (`seq_no`, increasing): what arrived is what was sent, in order.
    let got: Vec<u64> = seqs_of(&seen, "bbo.BTC-USD-PERP")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let truth: Vec<u64> = sent
        .iter()
        .filter(|r| r.stream == "bbo.BTC-USD-PERP")
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        got[..],
        truth[..got.len()],
        "bbo arrived in order, nothing lost"
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]));

    let data = data.lock().unwrap();
    for (feed, stream) in streams {
        let ticks: Vec<&TickData> = data
            .iter()
            .filter(|(f, n, _)| *f == feed && n == stream)
            .map(|(_, _, d)| d)
            .collect();
        // The simulator's BTC trades near 60 000, its ETH near 3 000.
        let (lo, hi) = if stream.contains("BTC") {
            (50_000.0, 70_000.0)
        } else {
            (2_500.0, 3_500.0)
        };
        let (mut buys, mut sells) = (0, 0);
        for d in &ticks {
            match **d {
                TickData::Quote {
                    bid,
                    bid_qty,
                    ask,
                    ask_qty,
                } => {
                    assert!(lo < bid && bid < ask && ask < hi, "{stream}: {d:?}");
                    assert!(bid_qty > 0.0 && ask_qty > 0.0, "{stream}: {d:?}");
                }
                TickData::Trade {
                    price,
                    qty,
                    buyer_is_maker,
                } => {
                    assert!(lo < price && price < hi && qty > 0.0, "{stream}: {d:?}");
                    if buyer_is_maker {
                        sells += 1;
                    } else {
                        buys += 1;
                    }
                }
                other => panic!("{stream}: unexpected {other:?}"),
            }
        }
        if stream.contains("trades") {
            assert!(
                buys > 0 && sells > 0,
                "{stream}: both sides ({buys}, {sells})"
            );
        }
    }
    assert_eq!(summary.feeds[0].seq_gaps, 0);
    assert!(summary.feeds.iter().all(|f| f.gaps.is_empty()));
    paradex.shutdown();
    hyper.shutdown();
}

/// Vest's definition: streams named symbol first, acked with a null result, top of book read
/// from depth messages that carry no number and no time; after a reset it comes back and the
/// outage is a gap.
#[test]
fn vest_streams_top_of_book_from_depth_and_comes_back_after_a_reset() {
    let vest = sim_of(VEST, ["BTC-PERP", "ETH-PERP"], |_| {});
    let streams = ["BTC-PERP@depth", "ETH-PERP@depth"];
    let feed = defined_feed("vest", "vest", &vest, &streams);
    let (engine, probe, data) = engine_with(&[VEST], vec![feed], fast_reconnect(), |_| {});
    probe.wait("quotes on both streams", |s| {
        streams.iter().all(|n| ticks_of(s, 0, n) >= 20)
    });
    outage(&vest, &probe, Fault::Reset, 1);
    let (summary, _) = engine.stop();
    let data = data.lock().unwrap();
    for stream in streams {
        let (lo, hi) = if stream.starts_with("BTC") {
            (50_000.0, 70_000.0)
        } else {
            (2_500.0, 3_500.0)
        };
        let quotes: Vec<_> = data.iter().filter(|(_, n, _)| n == stream).collect();
        assert!(quotes.len() >= 20, "{stream}");
        for (_, _, d) in quotes {
            let TickData::Quote { bid, ask, .. } = *d else {
                panic!("{stream}: {d:?}");
            };
            assert!(lo < bid && bid < ask && ask < hi, "{stream}: {d:?}");
        }
    }
    assert_eq!(outages(&summary).len(), 1, "{:?}", summary.feeds[0].gaps);
    vest.shutdown();
}

// ----- 2. outages: the missed ids are exactly the ground truth's ---------------------------------

/// Checks the outage that starts at the `k`-th `Disconnected` of feed 0 for `stream` (`+1` or
/// `increasing` numbering): the gap the engine reports runs from the id after the last one
/// received before the loss to the id before the first one the new connection sent; every
/// message the simulator sent on the old connection after the last one received lies in it.
fn check_outage(seen: &[Seen], sent: &[SentRecord], gap: &GapRecord, stream: &str, k: usize) {
    let lost_at = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            matches!(
                s,
                Seen::Health {
                    feed: 0,
                    event: Health::Disconnected { .. }
                }
            )
        })
        .nth(k)
        .map(|(i, _)| i)
        .expect("the loss");
    let seqs = seqs_of(seen, stream);
    let last = seqs
        .iter()
        .rev()
        .find(|(i, _)| *i < lost_at)
        .expect("data before")
        .1;
    let first = seqs
        .iter()
        .find(|(i, _)| *i > lost_at)
        .expect("data after")
        .1;
    let old = sent
        .iter()
        .find(|r| r.stream == stream && r.seq == last)
        .expect("the last message received was sent")
        .conn;
    let new = sent
        .iter()
        .find(|r| r.stream == stream && r.seq == first)
        .expect("the first message after was sent")
        .conn;
    assert_ne!(
        old, new,
        "the first message after the outage came on a new connection"
    );
    let first_new = sent_of(sent, new, stream)[0];
    assert_eq!(
        first_new.seq, first,
        "nothing on the new connection was lost"
    );
    let missed: Vec<&Missed> = gap.missed.iter().collect();
    assert_eq!(missed.len(), 1, "{gap:?}");
    let m = missed[0];
    assert_eq!(m.from_seq, last + 1, "{gap:?}");
    // `+1`: the new connection's first message says which id came before it.
    let before_first = first_new.prev_seq.unwrap_or(first - 1);
    assert_eq!(m.to_seq, before_first, "{gap:?}");
    for r in sent_of(sent, old, stream).iter().filter(|r| r.seq > last) {
        assert!(
            m.from_seq <= r.seq && r.seq <= m.to_seq,
            "sent on the old connection, never received, yet outside the gap: {r:?} {m:?}"
        );
    }
    assert!(
        has_health_of(
            seen,
            0,
            |h| matches!(h, Health::Gap { from_seq, to_seq, .. }
            if *from_seq == m.from_seq && *to_seq == m.to_seq)
        ),
        "the strategy was told of the gap {m:?}"
    );
}

#[test]
fn a_reset_and_a_half_open_connection_on_a_plus_one_venue_give_exact_outage_gaps() {
    let sim = sim_of(TEST_VENUE, ["BTC_USDT", "ETH_USDT"], |_| {});
    const QUOTE: &str = "quote@BTC_USDT";
    let (engine, probe, _) = engine_with(
        &[TEST_VENUE],
        vec![defined_feed(
            "t",
            "simtest",
            &sim,
            &[QUOTE, "deal@ETH_USDT"],
        )],
        fast_reconnect(),
        |_| {},
    );
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(30);
    outage(&sim, &probe, Fault::Reset, 1);
    let stall = Fault::Stall {
        duration: Duration::from_secs(2),
    };
    outage(&sim, &probe, stall, 2);
    // The engine answered the venue's pings, and the simulator saw the answers.
    assert!(sim.wait_until(WAIT, |s| s.pongs_received >= 1));
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();

    let seen = probe.seen();
    let h = health_of(&seen);
    let order: Vec<&Health> = h
        .iter()
        .filter(|(f, _)| *f == 0)
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Health::Disconnected { .. } | Health::Recovered { .. }))
        .collect();
    assert!(
        matches!(
            order[..],
            [
                Health::Disconnected { .. },
                Health::Recovered { .. },
                Health::Disconnected { .. },
                Health::Recovered { .. }
            ]
        ),
        "{order:?}"
    );
    let gaps = outages(&summary);
    assert_eq!(gaps.len(), 2, "{:?}", summary.feeds[0].gaps);
    // The quote stream's missed ids, per outage (the trades' are their own).
    for (k, gap) in gaps.iter().enumerate() {
        let mut g = (*gap).clone();
        // QUOTE is the feed's first stream.
        g.missed.retain(|m| m.stream == 0);
        check_outage(&seen, &sent, &g, QUOTE, k);
    }
}

#[test]
fn an_outage_on_paradex_s_increasing_bbo_reports_the_ids_in_between() {
    let sim = sim_of(PARADEX, ["BTC-USD-PERP", "ETH-USD-PERP"], |_| {});
    const BBO: &str = "bbo.ETH-USD-PERP";
    let (engine, probe, _) = engine_with(
        &[PARADEX],
        vec![defined_feed("px", "paradex", &sim, &[BBO])],
        fast_reconnect(),
        |_| {},
    );
    probe.wait("connected", connected(0, 1));
    probe.wait_more_ticks(30);
    outage(&sim, &probe, Fault::Reset, 1);
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();
    let seen = probe.seen();
    let gaps = outages(&summary);
    assert_eq!(gaps.len(), 1, "{:?}", summary.feeds[0].gaps);
    check_outage(&seen, &sent, gaps[0], BBO, 0);
}

// ----- 3. withheld messages on a `+1` stream: a sequence jump of exactly those ids ---------------

#[test]
fn withheld_messages_on_plus_one_streams_are_sequence_jumps_of_exactly_their_ids() {
    let sim = sim_of(TEST_VENUE, ["BTC_USDT", "ETH_USDT"], |_| {});
    // One stream a feed, so that a connection's withheld messages are one stream's.
    let (engine, probe, _) = engine_with(
        &[TEST_VENUE],
        vec![
            defined_feed("q", "simtest", &sim, &["quote@BTC_USDT"]),
            defined_feed("d", "simtest", &sim, &["deal@ETH_USDT"]),
        ],
        fast_reconnect(),
        |_| {},
    );
    probe.wait("both connected", |s| {
        connected(0, 1)(s) && connected(1, 1)(s)
    });
    // Both streams under way, so that what is withheld lies between two messages sent.
    probe.wait("ticks on both feeds", |s| {
        ticks_of(s, 0, "quote@BTC_USDT") >= 5 && ticks_of(s, 1, "deal@ETH_USDT") >= 5
    });
    let snap = sim.snapshot();
    let conn = |stream: &str| {
        snap.connections
            .iter()
            .find(|c| c.streams == [stream])
            .unwrap_or_else(|| panic!("no connection of {stream}: {snap:?}"))
            .id
    };
    let (q, d) = (conn("quote@BTC_USDT"), conn("deal@ETH_USDT"));
    sim.inject_on(q, Fault::DropNext { count: 3 });
    sim.inject_on(d, Fault::DropNext { count: 2 });
    probe.wait("a gap on each feed", |s| {
        (0..2).all(|f| has_health_of(s, f, |h| matches!(h, Health::Gap { .. })))
    });
    let sent = sim.sent();
    let (summary, _) = engine.stop();
    sim.shutdown();
    let seen = probe.seen();
    for (feed, conn, stream, messages) in [(0, q, "quote@BTC_USDT", 3), (1, d, "deal@ETH_USDT", 2)]
    {
        // The one break in the chain of what was sent: the withheld messages' ids.
        let records = sent_of(&sent, conn, stream);
        let breaks: Vec<(u64, u64)> = records
            .windows(2)
            .filter(|w| w[1].prev_seq != Some(w[0].seq))
            .map(|w| (w[0].seq + 1, w[1].prev_seq.expect("+1 numbering")))
            .collect();
        assert_eq!(breaks.len(), 1, "{stream}: {breaks:?}");
        let (from, to) = breaks[0];
        if stream.starts_with("quote") {
            assert_eq!(to + 1 - from, messages, "one id a quote");
        } else {
            assert!(to + 1 - from >= messages, "one to three trades a message");
        }
        let f = &summary.feeds[feed as usize];
        let jumps: Vec<&GapRecord> = f
            .gaps
            .iter()
            .filter(|g| g.cause == GapCause::SequenceJump)
            .collect();
        assert_eq!(jumps.len(), 1, "{:?}", f.gaps);
        assert_eq!(
            (jumps[0].missed[0].from_seq, jumps[0].missed[0].to_seq),
            (from, to),
            "{stream}"
        );
        assert!(has_health_of(&seen, feed, |h| matches!(h,
            Health::Gap { from_seq, to_seq, .. } if (*from_seq, *to_seq) == (from, to))));
        assert!(
            !f.gaps
                .iter()
                .any(|g| matches!(g.cause, GapCause::Outage(_))),
            "no outage: {:?}",
            f.gaps
        );
    }
}

// ----- 4. standby and rotation ---------------------------------------------------------------

#[test]
fn a_hot_standby_carries_a_defined_venue_through_the_loss_of_its_primary() {
    let sim = sim_of(PARADEX, ["BTC-USD-PERP", "ETH-USD-PERP"], |_| {});
    let mut f = defined_feed("px", "paradex", &sim, &["bbo.BTC-USD-PERP"]);
    f.standby = true;
    f.standby_url = Some(defined_url(&sim));
    let (engine, probe, _) = engine_with(&[PARADEX], vec![f], fast_reconnect(), |_| {});
    probe.wait("connected", connected(0, 1));
    assert!(sim.wait_until(WAIT, |s| s.open_connections().count() == 2));
    probe.wait_more_ticks(30);
    let first = sim.snapshot().open_connections().next().expect("open").id;
    sim.inject_on(first, Fault::Reset);
    probe.wait("the lost connection is reported", |s| {
        has_health_of(s, 0, |h| matches!(h, Health::ConnectionLost { .. }))
    });
    probe.wait_more_ticks(30);
    let (summary, _) = engine.stop();
    sim.shutdown();
    let seen = probe.seen();
    assert!(
        !has_health_of(&seen, 0, |h| matches!(h, Health::Disconnected { .. })),
        "the standby carried the feed: {:?}",
        health_of(&seen)
    );
    assert!(outages(&summary).is_empty(), "{:?}", summary.feeds[0].gaps);
    // Both connections delivered the same binary frames: the second copies were dropped, and
    // the strategy got each update once, in order.
    assert!(summary.feeds[0].duplicates > 0);
    let got: Vec<u64> = seqs_of(&seen, "bbo.BTC-USD-PERP")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
}

#[test]
fn a_defined_venue_s_connection_is_replaced_before_the_venue_cuts_it() {
    let sim = sim_of(TEST_VENUE, ["BTC_USDT", "ETH_USDT"], |c| {
        c.max_conn_age = Some(Duration::from_millis(2500));
    });
    let (engine, probe, _) = engine_with(
        &[TEST_VENUE],
        vec![defined_feed("t", "simtest", &sim, &["quote@BTC_USDT"])],
        ReconnectConfig {
            max_connection_age_ms: 1000,
            ..fast_reconnect()
        },
        |_| {},
    );
    probe.wait("connected", connected(0, 1));
    probe.wait("two rotations", |s| {
        count_health(s, |h| matches!(h, Health::Rotated { .. })) >= 2
    });
    probe.wait_more_ticks(20);
    let snap = sim.snapshot();
    let (summary, _) = engine.stop();
    sim.shutdown();
    let seen = probe.seen();
    assert_eq!(
        snap.age_closes, 0,
        "the engine replaced connections before the venue's cut"
    );
    assert!(!has_health_of(&seen, 0, |h| matches!(
        h,
        Health::Disconnected { .. } | Health::Gap { .. }
    )));
    assert!(
        summary.feeds[0].gaps.is_empty(),
        "{:?}",
        summary.feeds[0].gaps
    );
    assert!(summary.feeds[0].rotations >= 2);
}

// ----- 5. capture and audit ------------------------------------------------------------------

#[test]
fn a_captured_defined_venue_session_passes_its_audit() {
    let root = scratch("defined", "audit");
    let sim = sim_of(TEST_VENUE, ["BTC_USDT", "ETH_USDT"], |_| {});
    let dir = root.join("capture");
    let (engine, probe, _) = engine_with(
        &[TEST_VENUE],
        vec![defined_feed(
            "t",
            "simtest",
            &sim,
            &["quote@BTC_USDT", "deal@ETH_USDT"],
        )],
        fast_reconnect(),
        |file| file.capture = Some(CaptureConfig { dir }),
    );
    probe.wait("both streams under way", |s| {
        ticks_of(s, 0, "quote@BTC_USDT") >= 5 && ticks_of(s, 0, "deal@ETH_USDT") >= 3
    });
    sim.inject(Fault::DropNext { count: 2 });
    probe.wait("a gap", |s| {
        has_health_of(s, 0, |h| matches!(h, Health::Gap { .. }))
    });
    outage(&sim, &probe, Fault::Reset, 1);
    let (summary, _) = engine.stop();
    sim.shutdown();
    let session = summary.capture.as_ref().expect("capture is on").dir.clone();
    let audit = wsfeed::audit::audit(&session).expect("the session reads back");
    assert!(audit.ok(), "{audit}");
    assert_eq!(audit.streams.len(), 2, "{audit}");
    assert!(
        audit.streams.iter().any(|s| !s.holes.is_empty()),
        "the withheld messages and the outage are holes, each explained: {audit}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Paradex's market data comes as binary SBE frames (its definition's `binary`): every frame
/// reads (no parse error, no unknown frame), the capture holds them as base64, the audit
/// passes across a reset, and a replay of the session gives the strategy the very ticks the
/// live feed gave, in the same order.
#[test]
fn paradex_s_binary_frames_are_captured_audited_and_replayed_exactly() {
    let root = scratch("defined", "paradex-sbe");
    let sim = sim_of(PARADEX, ["BTC-USD-PERP", "ETH-USD-PERP"], |_| {});
    let streams = ["bbo.BTC-USD-PERP", "trades.ETH-USD-PERP"];
    let dir = root.join("capture");
    let (engine, probe, data) = engine_with(
        &[PARADEX],
        vec![defined_feed("px", "paradex", &sim, &streams)],
        fast_reconnect(),
        |file| file.capture = Some(CaptureConfig { dir }),
    );
    probe.wait("both streams under way", |s| {
        ticks_of(s, 0, streams[0]) >= 10 && ticks_of(s, 0, streams[1]) >= 5
    });
    outage(&sim, &probe, Fault::Reset, 1);
    let (summary, _) = engine.stop();
    sim.shutdown();
    let feed = &summary.feeds[0];
    assert_eq!((feed.parse_errors, feed.unknown_frames), (0, 0));
    assert_eq!(outages(&summary).len(), 1, "the reset is one outage");

    let session = summary.capture.as_ref().expect("capture is on").dir.clone();
    for stream in streams {
        let def = defined_venue(PARADEX)
            .parse_stream(stream)
            .expect("a Paradex stream");
        let file = wsfeed::capture::stream_file(&session, "paradex", "px", &def);
        let lines = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{stream} was captured in {}: {e}", file.display()));
        assert!(lines.lines().count() >= 5, "{stream}: {lines}");
        assert!(
            lines.lines().all(|l| l.contains(r#","bin":""#)),
            "every captured message of {stream} is a binary frame: {}",
            &lines[..lines.len().min(300)]
        );
    }
    let audit = wsfeed::audit::audit(&session).expect("the session reads back");
    assert!(audit.ok(), "{audit}");
    assert_eq!(audit.streams.len(), 2, "{audit}");

    let live: Vec<(String, TickData)> = data
        .lock()
        .unwrap()
        .iter()
        .map(|(_, n, d)| (n.clone(), *d))
        .collect();
    let replay = wsfeed::replay::Session::open(&session).expect("the session opens");
    let mut got = Collect::default();
    let done = replay
        .run(&mut got, wsfeed::replay::Speed::Max)
        .expect("it replays");
    assert_eq!((done.bad_lines, done.mismatches.len()), (0, 0), "{done}");
    assert_eq!(got.0.len(), live.len());
    assert!(got.0 == live, "replayed ticks differ from the live ones");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Every tick a replay gives, by stream name.
#[derive(Default)]
struct Collect(Vec<(String, TickData)>, Universe);

impl Strategy for Collect {
    fn on_start(&mut self, universe: &Universe) {
        self.1 = universe.clone();
    }
    fn on_tick(&mut self, tick: &Tick) {
        let stream = &self.1.feeds[tick.feed as usize].streams[tick.stream as usize];
        self.0.push((stream.name.clone(), tick.data));
    }
    fn on_health(&mut self, _: FeedId, _: u64, _: &Health) {}
}

/// A defined venue's silent stream (muted on its connection by the simulator) is reported
/// stale while the other stream goes on; `/metrics` serves the feed, its venue and its
/// counters as for a built-in venue.
#[test]
fn a_defined_venue_s_silent_stream_is_stale_and_its_metrics_are_served() {
    let sim = sim_of(PARADEX, ["BTC-USD-PERP", "ETH-USD-PERP"], |_| {});
    let streams = ["bbo.BTC-USD-PERP", "bbo.ETH-USD-PERP"];
    let mut feed = defined_feed("px", "paradex", &sim, &streams);
    feed.stream_silence_ms.insert(streams[1].into(), 300);
    let (engine, probe, _) = engine_with(&[PARADEX], vec![feed], fast_reconnect(), |file| {
        file.metrics = Some(MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        })
    });
    probe.wait("both streams under way", |s| {
        streams.iter().all(|n| ticks_of(s, 0, n) >= 5)
    });
    sim.inject(Fault::Mute {
        stream: streams[1].into(),
    });
    probe.wait("the muted stream is stale", |s| {
        has_health_of(s, 0, |h| matches!(h, Health::Stale { stream: 1, .. }))
    });
    let before = ticks_of(&probe.seen(), 0, streams[0]);
    probe.wait("the other stream goes on", |s| {
        ticks_of(s, 0, streams[0]) >= before + 10
    });
    // A quote stream has no guaranteed cadence: it is reported stale, not a reason to replace
    // the connection.
    assert!(!has_health_of(&probe.seen(), 0, |h| matches!(
        h,
        Health::Rotated { .. }
    )));

    let addr = engine.metrics_addr().expect("metrics endpoint is up");
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("metrics answer");
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    };
    let labels = r#"{feed="px",venue="paradex""#;
    assert!(value(&format!("wsfeed_messages_total{labels}}}")) >= 10.0);
    assert_eq!(value(&format!("wsfeed_stale_events_total{labels}}}")), 1.0);
    assert_eq!(value(&format!("wsfeed_parse_errors_total{labels}}}")), 0.0);
    assert_eq!(
        value(&format!("wsfeed_unknown_frames_total{labels}}}")),
        0.0
    );
    assert_eq!(
        value(&format!("wsfeed_feed_state{labels},state=\"streaming\"}}")),
        1.0
    );
    let (summary, _) = engine.stop();
    sim.shutdown();
    assert!(summary.feeds[0]
        .gaps
        .iter()
        .all(|g| !matches!(g.cause, GapCause::Outage(_))));
}
