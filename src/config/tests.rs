//! Config parsing and validation.

use std::path::{Path, PathBuf};

use super::*;

const MINIMAL: &str = r#"
[[feeds]]
name = "usdm"
venue = "binance-usdm"
streams = ["btcusdt@bookTicker", "btcusdt@markPrice"]
"#;

fn error_of(text: &str) -> String {
    Config::from_toml(text).unwrap_err().to_string()
}

#[test]
fn defaults_fill_a_minimal_config() {
    let c = Config::from_toml(MINIMAL).unwrap();
    let f = &c.feeds[0];
    assert_eq!(
        f.endpoint,
        Endpoint::parse("wss://fstream.binance.com").unwrap()
    );
    assert_eq!(f.reconnect, ReconnectConfig::default());
    assert_eq!(c.engine.on_full, FullPolicy::DropOldest);
    assert_eq!(f.silence_ms, vec![10_000, 30_000]);
}

#[test]
fn default_waits_meet_the_five_second_target() {
    let r = ReconnectConfig::default();
    assert!(r.initial_delay_ms <= 100);
    assert!(r.max_delay_ms <= 5000 && r.circuit_breaker_cooldown_ms <= 5000);
    assert!(r.stale_after_ms + r.pong_timeout_ms < 5000);
}

#[test]
fn per_feed_overrides_apply() {
    let c = Config::from_toml(&format!(
        "[reconnect]\ninitial_delay_ms = 50\n{MINIMAL}reconnect = {{ max_delay_ms = 700 }}\n"
    ))
    .unwrap();
    let r = c.feeds[0].reconnect;
    assert_eq!((r.initial_delay_ms, r.max_delay_ms), (50, 700));
}

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 7, "{n} configs");
}

#[test]
fn standby_capture_and_attempt_budget() {
    let c = Config::from_toml(&format!(
        "[capture]\ndir = \"/tmp/x\"\n{MINIMAL}standby = true\nstandby_url = \"wss://fstream2.example:443\"\n"
    ))
    .unwrap();
    assert_eq!(c.capture.unwrap().dir, PathBuf::from("/tmp/x"));
    let standby = c.feeds[0].standby.as_ref().unwrap();
    assert_eq!(standby.host, "fstream2.example");
    assert_eq!(c.feeds[0].reconnect.max_connection_age_ms, 86_100_000);
    assert_eq!(c.effective["feeds"][0]["standby"], true);
    let plain = Config::from_toml(&format!("{MINIMAL}standby = true\n")).unwrap();
    assert_eq!(
        plain.feeds[0].standby.as_ref(),
        Some(&plain.feeds[0].endpoint)
    );
    for (text, needle) in [
        (
            format!("{MINIMAL}standby_url = \"wss://a.example\"\n"),
            "standby_url is set but standby is false",
        ),
        (
            format!("{MINIMAL}standby = true\nstandby_url = \"http://a\"\n"),
            "standby_url",
        ),
        (
            format!("[capture]\ndir = \"\"\n{MINIMAL}"),
            "capture.dir is empty",
        ),
        (
            format!("[engine]\nconnect_limit = 0\n{MINIMAL}"),
            "engine.connect_limit",
        ),
        (
            format!("[arbitrage]\ntaker_fee_bps = {{ kraken = 5.0 }}\n{MINIMAL}"),
            "'kraken', which is not a venue",
        ),
    ] {
        let e = error_of(&text);
        assert!(e.contains(needle), "{text:?} → {e}");
    }
}

#[test]
fn typos_and_bad_values_name_the_field() {
    let e = error_of(&format!("[reconnect]\nintial_delay_ms = 5\n{MINIMAL}"));
    assert!(e.contains("intial_delay_ms"), "{e}");
    let e = error_of(&format!("{MINIMAL}strems = []\n"));
    assert!(e.contains("strems"), "{e}");
    let e = error_of(&format!(
        "[reconnect]\ninitial_delay_ms = \"fast\"\n{MINIMAL}"
    ));
    assert!(e.contains("initial_delay_ms"), "{e}");
    let e = error_of(&format!("[reconnect]\nmax_delay_ms = 10\n{MINIMAL}"));
    assert!(e.contains("reconnect.max_delay_ms (10)"), "{e}");
    let e = error_of(&format!("[reconnect]\nbackoff_multiplier = 0.5\n{MINIMAL}"));
    assert!(e.contains("backoff_multiplier"), "{e}");
    let e = error_of(&MINIMAL.replace("binance-usdm", "binance-moon"));
    assert!(e.contains("venue 'binance-moon'"), "{e}");
    let e = error_of(&MINIMAL.replace(r#"["btcusdt@bookTicker", "btcusdt@markPrice"]"#, "[]"));
    assert!(e.contains("streams is empty"), "{e}");
    let e = error_of(&format!("{MINIMAL}core = 4096\n"));
    assert!(e.contains("core = 4096"), "{e}");
    let e = error_of(&format!("{MINIMAL}url = \"http://x\"\n"));
    assert!(e.contains(".url"), "{e}");
    let e = error_of(&format!(
        "{MINIMAL}stream_silence_ms = {{ \"ethusdt@aggTrade\" = 5 }}\n"
    ));
    assert!(e.contains("ethusdt@aggTrade"), "{e}");
    let e = error_of(&format!("{MINIMAL}[[feeds]]\nname = \"usdm\"\nvenue = \"binance-spot\"\nstreams = [\"btcusdt@aggTrade\"]\n"));
    assert!(e.contains("used by another feed"), "{e}");
    assert!(error_of("").contains("no [[feeds]]"));
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("wsfeed-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("typo.toml");
    std::fs::write(&path, format!("{MINIMAL}pong_timout_ms = 5\n")).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("typo.toml") && e.contains("pong_timout_ms"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn endpoints_parse() {
    let e = Endpoint::parse("wss://127.0.0.1:9443").unwrap();
    assert_eq!(
        (e.tls, e.host.as_str(), e.port, e.base_path.as_str()),
        (true, "127.0.0.1", 9443, "")
    );
    let e = Endpoint::parse("ws://[::1]/prefix/").unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.base_path.as_str()),
        ("::1", 80, "/prefix")
    );
    assert_eq!(e.url("/stream"), "ws://[::1]:80/prefix/stream");
    for bad in [
        "http://x",
        "wss://",
        "wss://h:0",
        "wss://h:99999",
        "ws://h/p#f",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
    // A query stays on every URL of the endpoint (a venue defined in config may need one); a
    // built-in venue's URL takes none.
    let e = Endpoint::parse("wss://h/ws-api?version=1.0").unwrap();
    assert_eq!(
        (e.base_path.as_str(), e.query.as_str()),
        ("/ws-api", "?version=1.0")
    );
    assert_eq!(e.url(""), "wss://h:443/ws-api?version=1.0");
    let e = error_of(&MINIMAL.replace(
        "venue = \"binance-usdm\"",
        "venue = \"binance-usdm\"\nurl = \"wss://fstream.binance.com/stream?x=1\"",
    ));
    assert!(e.contains("a binance-usdm URL takes no query"), "{e}");
}

const TWO_FEEDS: &str = r#"
[[feeds]]
name = "spot"
venue = "binance-spot"
streams = ["btcusdt@bookTicker"]

[[feeds]]
name = "okx"
venue = "okx"
streams = ["bbo-tbt:BTC-USDT-SWAP"]
"#;

#[test]
fn feeds_share_a_driver_by_name_and_the_inline_strategy_puts_every_feed_on_one() {
    let shared = format!(
        "[[drivers]]\nname = \"arb\"\nwait = \"spin\"\n{}",
        TWO_FEEDS.replace("streams = [", "driver = \"arb\"\nstreams = [")
    );
    let c = Config::from_toml(&shared).unwrap();
    assert_eq!(
        c.drivers,
        [DriverSpec {
            name: "arb".into(),
            core: None,
            wait: WaitMode::Spin
        }]
    );
    assert!(c.feeds.iter().all(|f| f.driver.as_deref() == Some("arb")));
    // Inline without drivers: one thread for every feed, waiting as the feeds say.
    let inline = format!("[engine]\nstrategy = \"inline\"\n{TWO_FEEDS}");
    let c = Config::from_toml(&inline).unwrap();
    assert_eq!(c.engine.strategy, StrategyPlace::Inline);
    assert_eq!(c.drivers.len(), 1);
    assert_eq!(c.drivers[0].wait, WaitMode::Block);
    assert!(c
        .feeds
        .iter()
        .all(|f| f.driver == Some(c.drivers[0].name.clone())));
    let spin = inline.replace("streams = [", "wait = \"spin\"\nstreams = [");
    assert_eq!(
        Config::from_toml(&spin).unwrap().drivers[0].wait,
        WaitMode::Spin
    );
    // Without either, a thread per feed, as before.
    let c = Config::from_toml(TWO_FEEDS).unwrap();
    assert!(c.drivers.is_empty() && c.feeds.iter().all(|f| f.driver.is_none()));
    assert_eq!(c.engine.channel_capacity, 2048);
}

#[test]
fn driver_mistakes_name_the_feed_or_driver() {
    let on = |driver: &str| {
        TWO_FEEDS.replacen(
            "streams = [",
            &format!("driver = \"{driver}\"\nstreams = ["),
            1,
        )
    };
    let e = error_of(&on("nope"));
    assert!(
        e.contains("feed 'spot'.driver 'nope' is not a [[drivers]] entry"),
        "{e}"
    );
    let e = error_of(&format!("[[drivers]]\nname = \"idle\"\n{TWO_FEEDS}"));
    assert!(e.contains("drivers[0] ('idle') runs no feed"), "{e}");
    let pinned = format!(
        "[[drivers]]\nname = \"d\"\n{}",
        on("d").replacen("streams = [", "core = 0\nstreams = [", 1)
    );
    let e = error_of(&pinned);
    assert!(
        e.contains("feed 'spot' is on driver 'd': its core and wait are the driver's"),
        "{e}"
    );
    let e = error_of(&format!(
        "[[drivers]]\nname = \"a\"\n[[drivers]]\nname = \"a\"\n{}",
        on("a")
    ));
    assert!(
        e.contains("drivers[1].name 'a' is used by another driver"),
        "{e}"
    );
    // Inline: one driver for every feed, and no strategy thread to configure.
    let split = format!(
        "[engine]\nstrategy = \"inline\"\n[[drivers]]\nname = \"d\"\n{}",
        on("d")
    );
    let e = error_of(&split);
    assert!(
        e.contains("every feed must be on it: feed 'okx' is on a thread of its own"),
        "{e}"
    );
    let e = error_of(&format!(
        "[engine]\nstrategy = \"inline\"\nstrategy_core = 0\n{TWO_FEEDS}"
    ));
    assert!(
        e.contains("strategy_core and engine.strategy_wait describe the strategy's own thread"),
        "{e}"
    );
    let mixed = format!("[engine]\nstrategy = \"inline\"\n{TWO_FEEDS}").replacen(
        "streams = [",
        "wait = \"spin\"\nstreams = [",
        1,
    );
    let e = error_of(&mixed);
    assert!(
        e.contains("feeds 'spot' and 'okx' ask for different cores or wait modes"),
        "{e}"
    );
}

/// One feed of `venue` with `streams` and the extra `lines`.
fn feed(venue: &str, streams: &str, lines: &str) -> String {
    format!("[[feeds]]\nname = \"f\"\nvenue = \"{venue}\"\nstreams = [{streams}]\n{lines}\n")
}

const BYBIT: &str = r#""orderbook.50.BTCUSDT""#;
const OKX: &str = r#""books:BTC-USDT-SWAP""#;
const SPOT: &str = r#""btcusdt@bookTicker""#;

#[test]
fn a_url_with_the_venues_documented_path_works_without_it() {
    for (venue, streams, url, host, base) in [
        (
            "bybit-linear",
            BYBIT,
            "wss://stream.bybit.com/v5/public/linear",
            "stream.bybit.com",
            "",
        ),
        (
            "bybit-spot",
            BYBIT,
            "wss://stream.bybit.com/v5/public/spot/",
            "stream.bybit.com",
            "",
        ),
        (
            "okx",
            OKX,
            "wss://ws.okx.com:8443/ws/v5/public",
            "ws.okx.com",
            "",
        ),
        (
            "binance-spot",
            SPOT,
            "wss://stream.binance.com:9443/ws",
            "stream.binance.com",
            "",
        ),
        (
            "binance-spot",
            SPOT,
            "wss://stream.binance.com:9443/stream",
            "stream.binance.com",
            "",
        ),
        (
            "binance-usdm",
            SPOT,
            "wss://fstream.binance.com/public/stream",
            "fstream.binance.com",
            "",
        ),
        (
            "binance-usdm",
            SPOT,
            "wss://fstream.binance.com/ws",
            "fstream.binance.com",
            "",
        ),
        // A proxy's own prefix stays.
        (
            "okx",
            OKX,
            "wss://proxy.example/okx/ws/v5/public",
            "proxy.example",
            "/okx",
        ),
        (
            "okx",
            OKX,
            "wss://proxy.example/okx",
            "proxy.example",
            "/okx",
        ),
    ] {
        let text = feed(
            venue,
            streams,
            &format!("url = \"{url}\"\nstandby = true\nstandby_url = \"{url}\""),
        );
        let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{url}: {e}"));
        for e in [&c.feeds[0].endpoint, c.feeds[0].standby.as_ref().unwrap()] {
            assert_eq!(
                (e.host.as_str(), e.base_path.as_str()),
                (host, base),
                "{url}"
            );
        }
    }
}

#[test]
fn a_url_for_another_market_or_with_a_stream_is_refused_with_the_expected_form() {
    for (venue, streams, url, needle, form) in [
        (
            "bybit-linear",
            BYBIT,
            "wss://stream.bybit.com/v5/public/spot",
            "Bybit's spot path",
            "wss://stream.bybit.com/v5/public/linear",
        ),
        (
            "bybit-spot",
            BYBIT,
            "wss://stream.bybit.com/v5/private",
            "Bybit's private path",
            "wss://stream.bybit.com/v5/public/spot",
        ),
        (
            "bybit-linear",
            BYBIT,
            "wss://stream.bybit.com/v5/public",
            "serves no '/v5/public'",
            "wss://stream.bybit.com/v5/public/linear",
        ),
        (
            "okx",
            OKX,
            "wss://ws.okx.com:8443/ws/v5/business",
            "OKX's business path",
            "wss://ws.okx.com:8443/ws/v5/public",
        ),
        (
            "binance-spot",
            SPOT,
            "wss://stream.binance.com:9443/ws/btcusdt@bookTicker",
            "names a stream",
            "wss://stream.binance.com:9443/ws",
        ),
        (
            "binance-usdm",
            SPOT,
            "wss://fstream.binance.com/stream/btcusdt",
            "names a stream",
            "wss://fstream.binance.com/market/stream",
        ),
        (
            "binance-spot",
            SPOT,
            "wss://stream.binance.com:9443/public/stream",
            "serves no '/public/stream'",
            "wss://stream.binance.com:9443/stream",
        ),
        (
            "binance-usdm",
            SPOT,
            "wss://fstream.binance.com/ws/v5/public",
            "OKX's public path",
            "wss://fstream.binance.com/ws",
        ),
    ] {
        for lines in [
            format!("url = \"{url}\""),
            format!("standby = true\nstandby_url = \"{url}\""),
        ] {
            let e = error_of(&feed(venue, streams, &lines));
            let field = if lines.starts_with("url") {
                ".url:"
            } else {
                ".standby_url:"
            };
            for want in [needle, form, field] {
                assert!(e.contains(want), "{url}: no {want:?} in {e}");
            }
        }
    }
}

#[test]
fn channel_capacity_has_an_upper_bound_that_states_the_memory() {
    let at = |n: usize| format!("[engine]\nchannel_capacity = {n}\n{MINIMAL}");
    assert_eq!(
        Config::from_toml(&at(MAX_CHANNEL_CAPACITY))
            .unwrap()
            .engine
            .channel_capacity,
        MAX_CHANNEL_CAPACITY
    );
    // 10^10 slots aborted the process with an allocation failure; now it is a config error.
    let e = error_of(&at(10_000_000_000));
    for want in [
        "channel_capacity = 10000000000",
        "limit of 1048576",
        "~232 bytes",
        "2160.7 GiB per feed",
        "the limit: 232 MiB per feed",
    ] {
        assert!(e.contains(want), "no {want:?} in {e}");
    }
    let e = error_of(&at(MAX_CHANNEL_CAPACITY + 1));
    assert!(e.contains("limit of 1048576"), "{e}");
    // The documented slot size covers a real slot: the sequenced tick and crossbeam's stamp.
    let slot = std::mem::size_of::<crate::tick::Sequenced<crate::tick::Tick>>()
        + std::mem::size_of::<usize>();
    assert!(
        slot <= CHANNEL_SLOT_BYTES && CHANNEL_SLOT_BYTES - slot < 64,
        "a slot takes {slot} bytes, documented {CHANNEL_SLOT_BYTES}"
    );
}

#[test]
fn status_interval_zero_turns_the_status_line_off() {
    let c = Config::from_toml(&format!("[engine]\nstatus_interval_ms = 0\n{MINIMAL}")).unwrap();
    assert_eq!(c.engine.status_interval_ms, 0);
}

#[test]
fn a_capture_folder_that_cannot_be_created_is_a_config_error() {
    let dir = std::env::temp_dir().join(format!("wsfeed-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    // Under a regular file no folder can be made, not even by root.
    let under_file = CaptureConfig {
        dir: file.join("sub"),
    };
    let e = under_file.create_dir().unwrap_err().to_string();
    assert!(
        e.contains("capture.dir") && e.contains("cannot be created"),
        "{e}"
    );
    let e = CaptureConfig { dir: file.clone() }
        .create_dir()
        .unwrap_err()
        .to_string();
    assert!(e.contains("capture.dir"), "{e}");
    let fresh = CaptureConfig {
        dir: dir.join("new/nested"),
    };
    fresh.create_dir().unwrap();
    assert!(fresh.dir.is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn okx_streams_with_a_binance_style_symbol_are_refused_with_the_okx_id() {
    let e = error_of(&feed("okx", r#""bbo-tbt:BTCUSDT""#, ""));
    for want in [
        "'BTCUSDT' is a Binance-style symbol",
        "'bbo-tbt:BTC-USDT-SWAP'",
        "'bbo-tbt:BTC-USDT'",
    ] {
        assert!(e.contains(want), "no {want:?} in {e}");
    }
    let e = error_of(&feed("okx", r#""books:SOLXYZ""#, ""));
    assert!(e.contains("e.g. 'BTC-USDT-SWAP'"), "{e}");
    for ok in [
        "bbo-tbt:BTC-USDT",
        "books:BTC-USDT-SWAP",
        "trades:BTC-USD-250627",
    ] {
        Config::from_toml(&feed("okx", &format!("\"{ok}\""), ""))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn rest_url_on_a_venue_without_rest_snapshots_is_refused() {
    for (venue, streams) in [("bybit-linear", BYBIT), ("bybit-spot", BYBIT), ("okx", OKX)] {
        let e = error_of(&feed(venue, streams, "rest_url = \"https://api.example\""));
        assert!(
            e.contains(".rest_url is set") && e.contains("takes no REST snapshots"),
            "{venue}: {e}"
        );
    }
    let c = Config::from_toml(&feed(
        "binance-spot",
        SPOT,
        "rest_url = \"https://api.example/\"",
    ))
    .unwrap();
    assert_eq!(c.feeds[0].rest_base.as_deref(), Some("https://api.example"));
}

/// An `[[accounts]]` table of `venue` with its credentials in variables that exist.
fn account(venue: &str, lines: &str) -> String {
    format!(
        "[[accounts]]\nname = \"a1\"\nvenue = \"{venue}\"\nkey_env = \"PATH\"\nsecret_env = \"PATH\"\n{lines}\n"
    )
}

#[test]
fn an_account_takes_its_credentials_from_the_environment_and_its_private_path() {
    let c = Config::from_toml(&account(
        "okx",
        "passphrase_env = \"PATH\"\nevents = [\"orders\"]",
    ))
    .unwrap();
    assert!(c.feeds.is_empty(), "an account alone is a valid config");
    let a = &c.accounts[0];
    assert_eq!(
        a.endpoint.url(a.params.protocol.path()),
        "wss://ws.okx.com:8443/ws/v5/private"
    );
    assert_eq!(a.params.events, [crate::account::EventKind::Orders]);
    // A URL with the private path works; the listen-key REST base follows the URL's host.
    let c = Config::from_toml(&account(
        "binance-usdm",
        "url = \"ws://127.0.0.1:9000/private/ws\"",
    ))
    .unwrap();
    let a = &c.accounts[0];
    assert_eq!(
        a.endpoint.url(a.params.protocol.path()),
        "ws://127.0.0.1:9000/private/ws"
    );
    assert_eq!(a.params.rest_base.as_deref(), Some("http://127.0.0.1:9000"));
    // The effective config (written to the manifest) names the variables, never their values.
    let effective = c.effective.to_string();
    assert!(effective.contains("\"key_env\":\"PATH\""), "{effective}");
    let path = std::env::var("PATH").unwrap();
    assert!(!effective.contains(&path));
}

#[test]
fn account_mistakes_name_the_account_and_the_field() {
    let cases = [
        (
            account("binance-usdm", "").replace(
                "key_env = \"PATH\"",
                "key_env = \"WSFEED_TEST_SURELY_UNSET\"",
            ),
            "accounts[0] ('a1'): environment variable WSFEED_TEST_SURELY_UNSET is not set",
        ),
        (
            account("okx", ""),
            "accounts[0] ('a1').passphrase_env is missing",
        ),
        (
            account("bybit-linear", "passphrase_env = \"PATH\""),
            "passphrase_env is set, but bybit-linear takes no passphrase",
        ),
        (
            account("bybit-linear", "events = [\"fills\"]"),
            "accounts[0] ('a1').events names 'fills' (known: orders, balances, positions)",
        ),
        (account("bybit-linear", "events = []"), "events is empty"),
        (
            account("bybit-linear", "rest_url = \"https://x\""),
            "rest_url is set, but bybit-linear accounts make no REST calls",
        ),
        (
            account("binance-usdm", "listen_key_keepalive_ms = 4000000"),
            "listen_key_keepalive_ms = 4000000: must be between 60000 and 3000000",
        ),
        (
            account("binance-usdm", "url = \"wss://fstream.binance.com/ws\""),
            "expected a base URL such as 'wss://fstream.binance.com'",
        ),
        (
            account("kraken", ""),
            "accounts[0] ('a1').venue 'kraken' is unknown",
        ),
        (
            format!("{}{}", account("bybit-linear", ""), account("okx", "")),
            "accounts[1] ('a1').name is used by another feed or account",
        ),
        (
            format!(
                "[engine]\nstrategy = \"inline\"\n{}",
                account("bybit-linear", "")
            ),
            "configure at least one [[feeds]]",
        ),
    ];
    for (text, want) in cases {
        let got = error_of(&text);
        assert!(got.contains(want), "{text}\n→ {got}\n(wanted: {want})");
    }
}

#[test]
fn an_ed25519_key_is_for_binance_spot_and_must_be_one() {
    let err = error_of(&account("bybit-linear", "key_type = \"ed25519\""));
    assert!(err.contains("only binance-spot accounts"), "{err}");
    // PATH is no private key: refused, naming the variable, showing nothing of its value.
    let err = error_of(&account("binance-spot", "key_type = \"ed25519\""));
    assert!(
        err.contains("accounts[0] ('a1')") && err.contains("(in PATH)"),
        "{err}"
    );
    assert!(!err.contains(&std::env::var("PATH").unwrap()));
    let err = error_of(&account("binance-spot", "key_type = \"rsa\""));
    assert!(err.contains("key_type") || err.contains("rsa"), "{err}");
}

#[test]
fn feeds_name_venues_defined_in_config_and_their_files() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let c = Config::load(&configs.join("hyperliquid.toml")).unwrap();
    let f = &c.feeds[0];
    assert_eq!(f.venue.name(), "hyperliquid");
    assert_eq!(c.venues, vec![f.venue]);
    assert_eq!(
        f.endpoint,
        Endpoint::parse("wss://api.hyperliquid.xyz/ws").unwrap()
    );
    assert_eq!(f.streams[3].name, "trades:BTC");
    // The definition itself, not its file's name, is in the effective config (and so in a
    // session's manifest).
    assert_eq!(c.effective["venues"][0]["name"], "hyperliquid");
    assert!(c.effective.get("venue_files").is_none());

    // Relative to the config file; a file that is not there is named.
    let dir = std::env::temp_dir().join(format!("wsfeed-venues-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    let feed = "[[feeds]]\nname = \"p\"\nvenue = \"paradex\"\nstreams = [\"bbo.BTC-USD-PERP\"]\n";
    std::fs::write(&path, format!("venue_files = [\"nope.toml\"]\n{feed}")).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("c.toml") && e.contains("nope.toml"), "{e}");
    let paradex = configs.join("venues/paradex.toml");
    std::fs::write(
        &path,
        format!(
            "venue_files = [{:?}]\n{feed}",
            paradex.display().to_string()
        ),
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.feeds[0].venue.name(), "paradex");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn defined_venue_mistakes_name_the_venue_and_the_field() {
    let def = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/venues/hyperliquid.toml"),
    )
    .unwrap();
    // The file's top-level keys as an inline [[venues]] table.
    let inline = |def: &str, rest: &str| -> String {
        let (head, tables) = def.split_at(def.find("\n[").unwrap());
        let tables = tables
            .replace("\n[data]", "\n[venues.data]")
            .replace("\n[ack]", "\n[venues.ack]")
            .replace("\n[error]", "\n[venues.error]")
            .replace("\n[keepalive]", "\n[venues.keepalive]")
            .replace("\n[[channels]]", "\n[[venues.channels]]");
        format!("{rest}\n[[venues]]\n{head}\n{tables}")
    };
    let feed = "[[feeds]]\nname = \"hl\"\nvenue = \"hyperliquid\"\nstreams = [\"bbo:BTC\"]\n";
    let ok = Config::from_toml(&inline(&def, feed)).unwrap();
    assert_eq!(ok.feeds[0].venue.name(), "hyperliquid");
    let cases = [
        (
            def.replace("bid_price = \"/bbo/0/px\"\n", ""),
            feed.to_string(),
            "venue 'hyperliquid': channels[0] ('bbo').bid_price: is required",
        ),
        (
            def.clone(),
            feed.replace("bbo:BTC", "l2Book:BTC"),
            "feeds[0] ('hl').streams: stream 'l2Book:BTC': hyperliquid has no channel 'l2Book' (it has: bbo, trades)",
        ),
        (
            def.clone(),
            feed.replace("bbo:BTC", "bbo-BTC"),
            "stream 'bbo-BTC': hyperliquid streams are named '<channel>:<symbol>'",
        ),
        (
            def.clone(),
            feed.replace("\"hyperliquid\"", "\"hyperliquidx\""),
            "feeds[0] ('hl').venue 'hyperliquidx' is unknown (known: binance-spot, binance-usdm, bybit-spot, bybit-linear, okx, hyperliquid)",
        ),
        (
            def.clone(),
            format!("{feed}[[accounts]]\nname = \"a\"\nvenue = \"hyperliquid\"\nkey_env = \"K\"\nsecret_env = \"S\"\n"),
            "accounts[0] ('a').venue 'hyperliquid' is unknown (accounts are on: binance-spot",
        ),
    ];
    for (def, rest, want) in cases {
        let e = error_of(&inline(&def, &rest));
        assert!(e.contains(want), "got '{e}', want '{want}'");
    }
    // A fee for a defined venue is a fee for a venue.
    let fees = format!("[arbitrage]\ntaker_fee_bps = {{ hyperliquid = 4.5 }}\n{feed}");
    let c = Config::from_toml(&inline(&def, &fees)).unwrap();
    assert_eq!(c.arbitrage.taker_fee_bps["hyperliquid"], 4.5);
}

#[test]
fn a_message_limit_of_4_gib_or_more_is_refused() {
    let e =
        error_of(&MINIMAL.replace("streams = [", "max_message_bytes = 4294967296\nstreams = ["));
    assert!(
        e.contains("max_message_bytes (4294967296) must be below 4 GiB"),
        "{e}"
    );
}
