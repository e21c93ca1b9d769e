//! Reloading a running engine's config: an account added and another removed while the market
//! feed and the other account stream on without a gap; what cannot change in place refused with
//! nothing changed; and `wsfeed run` reloading its file when it changes and on SIGHUP, refusing
//! an invalid file with the error a start gives.
//!
//! Every wait has a deadline; no sleep stands in for an event.

mod util;

use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use util::{account, background, fast_reconnect, feed, recorder, scratch, Seen};
use wsfeed::config::{Config, FileConfig};
use wsfeed::sim::{Sim, SimAccount, SimConfig, SimVenue};
use wsfeed::Health;

/// Each venue: config name, simulator, a market stream, the private path.
type VenueCase = (&'static str, SimVenue, &'static str, &'static str);

const VENUES: [VenueCase; 4] = [
    (
        "bybit-linear",
        SimVenue::BybitLinear,
        "orderbook.1.BTCUSDT",
        "/v5/private",
    ),
    (
        "binance-usdm",
        SimVenue::Binance,
        "btcusdt@bookTicker",
        "/private/ws",
    ),
    (
        "binance-spot",
        SimVenue::Binance,
        "btcusdt@bookTicker",
        "/ws-api/v3",
    ),
    (
        "okx",
        SimVenue::Okx,
        "bbo-tbt:BTC-USDT-SWAP",
        "/ws/v5/private",
    ),
];

fn sim_of(venue: SimVenue) -> Sim {
    Sim::start(SimConfig {
        venue,
        tls: false,
        symbols: vec!["BTCUSDT".into()],
        book_interval: Duration::from_millis(5),
        accounts: vec![SimAccount::named("alice"), SimAccount::named("bob")],
        account_event_interval: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn sim() -> Sim {
    sim_of(SimVenue::BybitLinear)
}

fn config(sim: &Sim, accounts: &[&str]) -> Config {
    config_of(VENUES[0], sim, accounts)
}

fn config_of(v: VenueCase, sim: &Sim, accounts: &[&str]) -> Config {
    let mut file: FileConfig = toml::from_str("").expect("empty config parses");
    file.reconnect = fast_reconnect();
    file.feeds = vec![feed("market", v.0, sim, &[v.2])];
    file.accounts = accounts.iter().map(|a| account(a, v.0, sim)).collect();
    file.validate().expect("valid")
}

fn account_events(seen: &[Seen], feed: u16) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Account(m) if m.feed == feed))
        .count()
}

fn ticks_of(seen: &[Seen], feed: u16) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Tick { feed: f, .. } if *f == feed))
        .count()
}

/// A loss of any connection of `feed`.
fn lost(seen: &[Seen], feed: u16) -> bool {
    util::has_health_of(seen, feed, |h| {
        matches!(
            h,
            Health::Disconnected { .. } | Health::ConnectionLost { .. } | Health::Failed { .. }
        )
    })
}

#[test]
fn reload_adds_and_removes_an_account_while_the_others_stream_without_a_gap() {
    for v in VENUES {
        adds_and_removes_an_account(v);
    }
}

fn adds_and_removes_an_account(v: VenueCase) {
    let (venue, path) = (v.0, v.3);
    let sim = sim_of(v.1);
    let (rec, probe) = recorder();
    let root = scratch("reload", &format!("cap-{venue}"));
    let captured = |accounts: &[&str]| {
        let mut c = config_of(v, &sim, accounts);
        c.capture = Some(wsfeed::config::CaptureConfig { dir: root.clone() });
        c
    };
    let mut engine = wsfeed::Engine::start(captured(&["alice"]), rec).expect("starts");
    // Feed ids: 0 market, 1 alice; bob will be 2.
    probe.wait(&format!("{venue}: market and alice stream"), |s| {
        ticks_of(s, 0) >= 20 && account_events(s, 1) >= 10
    });

    let lines = engine.reload(captured(&["alice", "bob"])).expect("reloads");
    assert_eq!(lines, ["reload: added account 'bob'"]);
    let before = probe.seen();
    let (market, alice) = (ticks_of(&before, 0), account_events(&before, 1));
    probe.wait(&format!("{venue}: bob streams, the others go on"), |s| {
        util::has_health_of(s, 2, |h| *h == Health::Connected { conn: 1 })
            && account_events(s, 2) >= 10
            && ticks_of(s, 0) >= market + 20
            && account_events(s, 1) >= alice + 10
    });
    assert_eq!(engine.universe().feeds[2].name, "bob");

    let lines = engine.reload(captured(&["bob"])).expect("reloads");
    assert_eq!(lines, ["reload: removed account 'alice'"]);
    assert!(engine.stats()[1].retired_at_ms.load(Relaxed) > 0);
    // alice's driver is joined, but what it sent before may still wait in her lane: her count
    // is taken once the strategy has gone on with the others for a while, then must not move.
    let go_on = |what: &str| {
        let before = probe.seen();
        let (market, bob) = (ticks_of(&before, 0), account_events(&before, 2));
        probe.wait(&format!("{venue}: {what}"), |s| {
            ticks_of(s, 0) >= market + 20 && account_events(s, 2) >= bob + 10
        });
    };
    go_on("market and bob go on");
    let alice = account_events(&probe.seen(), 1);
    go_on("market and bob go on further");
    // alice's connection is gone: the simulator has one private connection left, and alice's
    // events stopped.
    let private = sim
        .snapshot()
        .open_connections()
        .filter(|c| c.path.starts_with(path))
        .count();
    assert_eq!(private, 1);
    assert_eq!(account_events(&probe.seen(), 1), alice);
    // No gap on what went on streaming.
    let seen = probe.seen();
    assert!(
        !lost(&seen, 0) && !lost(&seen, 2),
        "{venue}: the running feeds lost nothing"
    );
    let session = engine.session_dir().expect("capture is on").to_path_buf();
    let (summary, _) = engine.stop();
    assert!(!summary.failed, "a removed account does not fail the run");
    assert!(summary.feeds[0].gaps.is_empty() && summary.feeds[2].gaps.is_empty());
    // The manifest has all three, alice retired, and the market's capture went on.
    let manifest = wsfeed::capture::read_manifest(&session).expect("a manifest");
    let feeds = manifest["feeds"].as_array().expect("feeds");
    let names: Vec<&str> = feeds.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ["market", "alice", "bob"]);
    assert!(
        feeds[1]["retired_at_unix_ms"].as_u64().is_some(),
        "{}",
        feeds[1]
    );
    assert!(feeds[0]["retired_at_unix_ms"].is_null() && feeds[2]["retired_at_unix_ms"].is_null());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn what_cannot_change_in_place_is_refused_and_nothing_changes() {
    let sim = sim();
    let (rec, probe) = recorder();
    let mut engine = wsfeed::Engine::start(config(&sim, &["alice"]), rec).expect("starts");
    probe.wait("streaming", |s| ticks_of(s, 0) >= 5);
    let mut other = config(&sim, &["alice", "bob"]);
    other.engine.channel_capacity = 16;
    other.effective["engine"]["channel_capacity"] = 16.into();
    let err = engine.reload(other).unwrap_err();
    assert!(
        err.contains("[engine] changed") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(engine.universe().feeds.len(), 2, "bob was not added");
    let lines = engine
        .reload(config(&sim, &["alice"]))
        .expect("the same config");
    assert_eq!(lines, ["reload: nothing changed"]);
    // A setting `Debug` leaves out (the variable the secret comes from) still counts.
    let mut renamed = config(&sim, &["alice"]);
    let mut params = (*renamed.accounts[0].params).clone();
    params.secret_env = "ALICE_SECRET".into();
    renamed.accounts[0].params = std::sync::Arc::new(params);
    let lines = engine.reload(renamed).expect("reloads");
    assert_eq!(
        lines,
        ["reload: restarted account 'alice' (its settings changed)"]
    );
    engine.stop();
}

/// `wsfeed run` on a config file that the test changes while it runs.
#[test]
fn run_reloads_its_file_when_it_changes_and_on_sighup_and_refuses_an_invalid_one() {
    let sim = sim();
    let dir = scratch("reload", "run");
    let path = dir.join("run.toml");
    let base = format!(
        "[engine]\nstatus_interval_ms = 0\n[[feeds]]\nname = \"market\"\nvenue = \"bybit-linear\"\n\
         url = \"{}\"\nstreams = [\"orderbook.1.BTCUSDT\"]\n",
        sim.base_url()
    );
    let bob = format!(
        "[[accounts]]\nname = \"bob\"\nvenue = \"bybit-linear\"\nurl = \"{}\"\n\
         key_env = \"T_BOB_KEY\"\nsecret_env = \"T_BOB_SECRET\"\n",
        sim.base_url()
    );
    std::fs::write(&path, &base).unwrap();
    let s = SimAccount::named("bob");
    let config = path.to_str().unwrap();
    let env = [
        ("RUST_LOG", "info"),
        ("T_BOB_KEY", s.api_key.as_str()),
        ("T_BOB_SECRET", s.secret.as_str()),
    ];
    let mut run = background(&["run", "--config", config, "--seconds", "12"], &env);
    run.wait_for("subscribed");
    // An invalid change: refused with the error a start gives, the feed goes on.
    let bad = base.replace("orderbook.1.BTCUSDT", "orderbook.7.BTCUSDT");
    std::fs::write(&path, &bad).unwrap();
    let start_error = Config::load(&path).unwrap_err().to_string();
    run.wait_for("reload refused (the config file changed)");
    assert!(
        run.log().contains(&start_error),
        "the start's error: {start_error}\nin:\n{}",
        run.log()
    );
    // A valid change adds the account.
    std::fs::write(&path, format!("{base}{bob}")).unwrap();
    run.wait_for("reload: added account 'bob' (the config file changed)");
    // SIGHUP reloads the same file: nothing to change.
    let hup = Command::new("kill")
        .args(["-HUP", &run.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(hup.success());
    run.wait_for("reload: nothing changed (SIGHUP)");
    run.kill();
    assert!(
        !sim.account_sent("bob").is_empty(),
        "bob streamed after the reload"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
