//! `wsfeed replay`: the arbitrage strategy runs live against three simulated venues quoting one
//! market (Binance spot with a REST-built depth book, Bybit linear, OKX), with the capture on,
//! through an outage, a sequence gap and a bad checksum (so disconnects, gaps, book
//! invalidations and resyncs are in the session); the session replayed at `max` must give the strategy exactly the calls it got live
//! — the same ticks and health events in the same order — and so the same report. The CLI
//! replays it too, and refuses bad input with exit 2. Every wait has a deadline.

mod util;

use std::path::Path;

use util::*;
use wsfeed::arb::{ArbConfig, ArbMonitor};
use wsfeed::config::{CaptureConfig, StrategyPlace};
use wsfeed::replay::{Session, Speed};
use wsfeed::sim::{start_group, BookFault, Fault, SharedMarket, Sim, SimConfig, SimVenue};
use wsfeed::strategy::{Strategy, Universe};
use wsfeed::tick::{FeedId, Health, Tick};

/// A strategy and a recorder of every call it gets, side by side.
struct Tee {
    strategy: Box<dyn Strategy>,
    recorder: Recorder,
}

impl Strategy for Tee {
    fn on_start(&mut self, universe: &Universe) {
        self.strategy.on_start(universe);
        self.recorder.on_start(universe);
    }
    fn on_tick(&mut self, tick: &Tick) {
        self.strategy.on_tick(tick);
        self.recorder.on_tick(tick);
    }
    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health) {
        self.strategy.on_health(feed, at_ns, event);
        self.recorder.on_health(feed, at_ns, event);
    }
    fn report(&self) -> String {
        self.strategy.report()
    }
}

fn venues() -> Vec<Sim> {
    let symbols = ["BTCUSDT", "ETHUSDT"];
    let cfg = |venue, seed| SimConfig {
        venue,
        seed,
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        book_interval: std::time::Duration::from_millis(5),
        trade_interval: std::time::Duration::from_millis(20),
        ..SimConfig::default()
    };
    start_group(
        vec![
            cfg(SimVenue::Binance, 11),
            cfg(SimVenue::BybitLinear, 37),
            cfg(SimVenue::Okx, 41),
        ],
        SharedMarket::new(symbols, 0x5EED_CAFE),
    )
    .expect("simulators start")
}

/// `wsfeed replay ARGS…`: exit code, stdout, stderr.
fn replay_cli(args: &[&str]) -> (i32, String, String) {
    wsfeed("replay", args)
}

#[test]
fn the_arbitrage_strategy_decides_the_same_live_and_replayed() {
    let root = scratch("replay", "identity");
    let sims = venues();
    let (binance, bybit, okx) = (&sims[0], &sims[1], &sims[2]);
    let feeds = vec![
        feed(
            "spot",
            "binance-spot",
            binance,
            &[
                "btcusdt@bookTicker",
                "ethusdt@bookTicker",
                "btcusdt@depth@100ms",
            ],
        ),
        feed(
            "bybit",
            "bybit-linear",
            bybit,
            &["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"],
        ),
        feed("bybit-top", "bybit-linear", bybit, &["orderbook.1.ETHUSDT"]),
        feed(
            "okx",
            "okx",
            okx,
            &["books:BTC-USDT-SWAP", "bbo-tbt:ETH-USDT-SWAP"],
        ),
    ];
    let dir = root.join("capture");
    let (recorder, probe) = recorder();
    let (engine, _) = {
        let mut file: wsfeed::config::FileConfig = toml::from_str("").unwrap();
        file.reconnect = fast_reconnect();
        file.feeds = feeds;
        file.engine.strategy = StrategyPlace::Inline;
        // Below zero: fees exceed the venues' small offsets, so this makes opportunities open
        // and close all the time — many decisions to compare.
        file.arbitrage.min_edge_bps = -15.0;
        file.capture = Some(CaptureConfig { dir });
        let config = file.validate().expect("test config is valid");
        let tee = Tee {
            strategy: Box::new(ArbMonitor::new(ArbConfig::from_config(
                &config.arbitrage,
                &config.venues,
            ))),
            recorder,
        };
        (
            wsfeed::Engine::start(config, tee).expect("engine starts"),
            (),
        )
    };
    let live_universe = engine.universe().clone();
    probe.wait("every feed connected", |s| {
        (0..4).all(|f| has_health_of(s, f, |h| matches!(h, Health::Connected { .. })))
    });
    probe.wait_more_ticks(300);
    // An outage on Bybit: its books are invalidated, and resynced by the reconnect's snapshots.
    bybit.inject(Fault::Close { code: 1001 });
    probe.wait("bybit recovered and its book resynced", |s| {
        has_health_of(s, 1, |h| matches!(h, Health::Recovered { .. }))
            && has_health_of(s, 1, |h| matches!(h, Health::BookResynced { .. }))
    });
    // A bad checksum on OKX, found after the update is applied (between its ticks and the
    // book's next top); resynced by a replacement connection.
    okx.inject_book(BookFault::BadChecksum);
    probe.wait("okx's book invalidated and resynced", |s| {
        has_health_of(s, 3, |h| {
            matches!(
                h,
                Health::BookInvalid {
                    fault: wsfeed::tick::BookFault::Checksum,
                    ..
                }
            )
        }) && has_health_of(s, 3, |h| matches!(h, Health::BookResynced { .. }))
    });
    probe.wait_more_ticks(300);
    // A sequence gap in a Bybit book: the venue withholds an update; the book is invalid
    // until a replacement connection's snapshot. (Only the depth feed's connection: Bybit's
    // `orderbook.1` is all snapshots, where a withheld one shows nothing.)
    let gaps = |s: &[Seen]| {
        s.iter()
            .filter(|s| {
                matches!(
                    s,
                    Seen::Health {
                        feed: 1,
                        event: Health::BookInvalid {
                            fault: wsfeed::tick::BookFault::Gap,
                            ..
                        }
                    }
                )
            })
            .count()
    };
    let before = gaps(&probe.seen());
    let depth = bybit
        .snapshot()
        .open_connections()
        .find(|c| c.streams.iter().any(|s| s.contains("orderbook.50")))
        .map(|c| c.id)
        .expect("the depth connection");
    bybit.inject_book_on(depth, BookFault::SkipSeq);
    probe.wait("a gap in a bybit book", |s| gaps(s) > before);
    probe.wait_more_ticks(300);
    let (summary, live) = engine.stop();
    let session = summary.capture.as_ref().expect("capture is on").dir.clone();
    let live_seen = probe.seen();
    let live_report = live.report();
    assert!(
        !live_report.contains("no opportunities"),
        "the run must decide something: {live_report}"
    );

    // Replayed at max through the library: the very same calls, so the same report.
    let replayed = Session::open(&session).expect("the session opens");
    assert!(replayed.caveats.is_empty(), "{:?}", replayed.caveats);
    // Binance's depth book came from a REST snapshot, captured beside the messages.
    assert!(session.join("snapshots.jsonl").exists());
    assert_eq!(replayed.universe.symbols, live_universe.symbols);
    let names = |u: &Universe| -> Vec<(String, Vec<String>)> {
        u.feeds
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.streams.iter().map(|s| s.name.clone()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(names(&replayed.universe), names(&live_universe));
    let (rec, replay_probe) = util::recorder();
    let mut tee = Tee {
        strategy: wsfeed::replay::by_name("arb", &replayed.config).expect("arb"),
        recorder: rec,
    };
    let figures = replayed.run(&mut tee, Speed::Max).expect("replay runs");
    assert!(figures.mismatches.is_empty(), "{figures}");
    assert_eq!(figures.bad_lines, 0, "{figures}");
    let replay_seen = replay_probe.seen();
    assert_eq!(live_seen.len(), replay_seen.len(), "{figures}");
    if let Some(i) = (0..live_seen.len()).find(|&i| live_seen[i] != replay_seen[i]) {
        panic!(
            "call {i} differs: live {:?}, replayed {:?}",
            &live_seen[i.saturating_sub(3)..(i + 3).min(live_seen.len())],
            &replay_seen[i.saturating_sub(3)..(i + 3).min(replay_seen.len())]
        );
    }
    for kind in [
        "Disconnected",
        "Gap",
        "BookInvalid",
        "BookResynced",
        "Recovered",
    ] {
        assert!(
            health_of(&replay_seen)
                .iter()
                .any(|(_, h)| format!("{h:?}").starts_with(kind)),
            "{kind} replayed"
        );
    }
    assert_eq!(tee.report(), live_report);

    // The CLI says the same, and replays in recorded time when asked (only the first bit of
    // the run is checked there: `print` shows calls as they come).
    let session_arg = session.to_str().unwrap();
    let (code, stdout, stderr) = replay_cli(&[session_arg, "--speed", "max", "--strategy", "arb"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&live_report),
        "{stdout}\n---\n{live_report}"
    );
    assert!(stdout.contains("msgs/s"), "{stdout}");
    let (code, stdout, stderr) = replay_cli(&[session_arg, "--strategy", "count"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for f in ["spot", "bybit", "bybit-top", "okx"] {
        assert!(stdout.contains(f), "{f}: {stdout}");
    }
    assert!(
        stdout.contains("quote ") && stdout.contains("Disconnected 1"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_arguments_and_folders_exit_2_naming_the_problem() {
    let root = scratch("replay", "bad");
    let r = root.to_str().unwrap();
    let (code, _, err) = replay_cli(&[r]);
    assert_eq!(code, 2);
    assert!(err.contains("not a session folder"), "{err}");
    let missing = root.join("missing");
    let (code, _, err) = replay_cli(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a folder"), "{err}");
    // A format-1 session (before replay) is refused, saying why.
    std::fs::write(root.join("session_manifest.json"), "{\"feeds\": []}").unwrap();
    let (code, _, err) = replay_cli(&[r]);
    assert_eq!(code, 2);
    assert!(
        err.contains("capture format 1") && err.contains("format 2"),
        "{err}"
    );
    std::fs::write(
        root.join("session_manifest.json"),
        "{\"format\": 2, \"clock_anchor_unix_ns\": 1, \"feeds\": []}",
    )
    .unwrap();
    let (code, _, err) = replay_cli(&[r, "--strategy", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown strategy 'nope'") && err.contains("arb, count, print"),
        "{err}"
    );
    for speed in ["0", "fast", "-1"] {
        let (code, _, err) = replay_cli(&[r, &format!("--speed={speed}")]);
        assert_eq!(code, 2, "{speed}");
        assert!(err.contains("not a speed"), "{speed}: {err}");
    }
    // An empty session replays to nothing, at any speed.
    let (code, out, err) = replay_cli(&[r, "--speed", "1", "--strategy", "count"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed 0 messages"), "{out}");
    let _ = std::fs::remove_dir_all(Path::new(&root));
}
