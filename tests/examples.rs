//! The examples' setup against the embedded simulator. `examples/spread.rs` started on
//! `configs/spread.toml` pointed at simulated Binance USD-M and Bybit linear venues quoting one
//! market: it reports spreads of both instruments across the two venues; when Bybit's
//! connection is reset it stops using Bybit's quotes (`Down`), and uses them again once the feed
//! has recovered (`Up`). `examples/sniper.rs` on `configs/sniper.toml` (inline on one driver,
//! here neither pinned nor spinning, on a shared test machine): with a trigger every trade
//! meets, its shots arrive. Every wait is on the examples' events, with a deadline.

// Each example, compiled here as a module, brings its own `mod common;` as it does as a program.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/spread.rs"]
#[allow(dead_code)] // the example's main
mod spread;

#[path = "../examples/sniper.rs"]
#[allow(dead_code)] // the example's main
mod sniper;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use spread::Event;
use wsfeed::config::FileConfig;
use wsfeed::demo::DemoVenues;
use wsfeed::sim::Fault;
use wsfeed::Strategy as _;

/// Upper bound for any one wait: generous, because CI machines are shared.
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn the_spread_example_watches_two_simulated_venues_and_stands_a_broken_one_down() {
    let venues = DemoVenues::start().expect("the simulated venues start");
    let mut file: FileConfig =
        toml::from_str(include_str!("../configs/spread.toml")).expect("the example's config");
    venues.point_at(&mut file);
    let config = file.validate().expect("the pointed config is valid");
    let (tx, events) = crossbeam_channel::unbounded();
    let engine = spread::start(config, move |e| {
        let _ = tx.send(e);
    })
    .expect("the engine starts");
    let next = |deadline: Instant, what: &str| {
        events
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("{what} within {WAIT:?}"))
    };

    // Both instruments, across the two venues, at a spread a shared market allows.
    both_spreads(&events, ["binance", "bybit"]);

    // Reset Bybit's connection: nothing carries that feed until it reconnects.
    let snap = venues.bybit.snapshot();
    let conn = snap
        .open_connections()
        .next()
        .expect("an open Bybit connection")
        .id;
    venues.bybit.inject_on(conn, Fault::Reset);
    let deadline = Instant::now() + WAIT;
    loop {
        match next(deadline, "Bybit's feed down") {
            Event::Down { feed, why } if feed == "bybit" => {
                assert!(!why.is_empty());
                break;
            }
            Event::Down { feed, .. } => panic!("{feed} went down, not bybit"),
            _ => {}
        }
    }
    // Until it is up again, no spread uses Bybit's quotes (there is no other venue to compare).
    // The next event is Bybit coming back: nothing in between.
    match next(Instant::now() + WAIT, "Bybit's feed up again") {
        Event::Up { feed } => assert_eq!(feed, "bybit"),
        Event::Spread {
            buy_on, sell_on, ..
        } => {
            panic!("a spread of {buy_on} and {sell_on} while bybit was down")
        }
        other => panic!("unexpected {other:?}"),
    }
    let deadline = Instant::now() + WAIT;
    while !matches!(
        next(deadline, "a spread after recovery"),
        Event::Spread { .. }
    ) {}
    let (summary, _) = engine.stop();
    let bybit = summary.feeds.iter().find(|f| f.name == "bybit").unwrap();
    assert!(bybit.reconnects >= 1, "{}", bybit.reconnects);
}

#[test]
fn the_sniper_example_fires_on_the_simulator_from_its_driver_thread() {
    let venues = DemoVenues::start().expect("the simulated venues start");
    let mut file: FileConfig =
        toml::from_str(include_str!("../configs/sniper.toml")).expect("the example's config");
    venues.point_at(&mut file);
    // A shared test machine: no pinning, no spinning (the config's choice for a tuned host).
    for d in &mut file.drivers {
        d.core = None;
        d.wait = wsfeed::config::WaitMode::Block;
    }
    let config = file.validate().expect("the pointed config is valid");
    // A trigger every trade meets (a trade at most 100% below the ask).
    let (engine, shots) = sniper::start(config, -10_000.0).expect("the engine starts");
    let deadline = Instant::now() + WAIT;
    for _ in 0..3 {
        let shot = shots
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("three shots within {WAIT:?}"));
        assert!(shot.price > 0.0 && shot.trade_price > 0.0, "{shot:?}");
        assert!(shot.decided_in_ns < 1_000_000_000, "{shot:?}");
    }
    let (_, sniper) = engine.stop();
    assert!(
        sniper.report().starts_with("sniper: "),
        "{}",
        sniper.report()
    );
}

/// Waits (at most [`WAIT`]) for a spread of BTCUSDT and one of ETHUSDT across the feeds `pair`,
/// each small enough for a shared market.
fn both_spreads(events: &crossbeam_channel::Receiver<Event>, pair: [&str; 2]) {
    let deadline = Instant::now() + WAIT;
    let mut symbols = BTreeSet::new();
    while symbols.len() < 2 {
        let event = events
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("spreads of BTCUSDT and ETHUSDT within {WAIT:?}"));
        if let Event::Spread {
            symbol,
            buy_on,
            sell_on,
            bps,
        } = event
        {
            let got = BTreeSet::from([buy_on.as_str(), sell_on.as_str()]);
            assert_eq!(got, BTreeSet::from(pair), "{symbol}");
            assert!(bps.abs() < 100.0, "{symbol}: {bps} bps");
            symbols.insert(symbol);
        }
    }
    assert_eq!(
        symbols,
        BTreeSet::from(["BTCUSDT".into(), "ETHUSDT".into()])
    );
}

/// The spread watcher across a built-in venue and one defined in config: Hyperliquid, spoken by
/// the demo's simulator from `configs/venues/hyperliquid.toml`, its coins taken as the
/// `…USDT` instruments (as the demo's arbitrage does), compared with Binance USD-M's quotes.
#[test]
fn the_spread_example_compares_a_built_in_venue_with_one_defined_in_config() {
    let venues = DemoVenues::start().expect("the simulated venues start");
    let mut file: FileConfig = toml::from_str(
        r#"
        [[feeds]]
        name = "binance"
        venue = "binance-usdm"
        streams = ["btcusdt@bookTicker", "ethusdt@bookTicker"]
        [[feeds]]
        name = "hl"
        venue = "hyperliquid"
        streams = ["bbo:BTC", "bbo:ETH"]
        "#,
    )
    .unwrap();
    let mut spec: wsfeed::venue::defined::spec::VenueSpec =
        toml::from_str(include_str!("../configs/venues/hyperliquid.toml")).unwrap();
    spec.instrument = Some("{symbol}USDT".into());
    file.venues.push(spec);
    venues.point_at(&mut file);
    let config = file.validate().expect("the pointed config is valid");
    let (tx, events) = crossbeam_channel::unbounded();
    let engine = spread::start(config, move |e| {
        let _ = tx.send(e);
    })
    .expect("the engine starts");
    both_spreads(&events, ["binance", "hl"]);
    let (summary, _) = engine.stop();
    let hl = summary.feeds.iter().find(|f| f.name == "hl").unwrap();
    assert!(hl.ticks > 0 && hl.parse_errors == 0, "{hl:?}");
}
