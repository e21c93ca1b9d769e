//! `wsfeed report`: an engine with the capture on runs against the simulator through a
//! sequence jump and a closed connection on each feed; the report of its session must be a
//! self-contained page and four SVG figures that name every feed and every gap the manifest
//! records. Bad input (a folder that is not a session, a damaged manifest) exits 2 naming the
//! file; a manifest from before the timeline and latency were recorded still gets a report
//! whose figures say so. Every wait has a deadline. `WSFEED_KEEP_REPORT=1` keeps the first
//! test's session and report (its path printed) to look at.

mod util;

use std::path::{Path, PathBuf};

use serde_json::Value;
use util::*;
use wsfeed::config::CaptureConfig;
use wsfeed::sim::Fault;
use wsfeed::tick::Health;

const FIGURES: [&str; 4] = ["timeline.svg", "reconnects.svg", "latency.svg", "rates.svg"];

fn scratch(test: &str) -> PathBuf {
    util::scratch("report", test)
}

/// `wsfeed report ARGS…`: exit code, stdout, stderr.
fn report(args: &[&Path]) -> (i32, String, String) {
    wsfeed("report", args)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_session_with_faults_gets_a_page_and_figures_naming_every_feed_and_gap() {
    let root = scratch("faults");
    let sim = sim(false, false);
    let trades = ["btcusdt@aggTrade", "ethusdt@aggTrade"];
    let feeds = vec![
        feed("trades", "binance-spot", &sim, &trades),
        feed("quotes", "binance-spot", &sim, &["btcusdt@bookTicker"]),
    ];
    let dir = root.join("capture");
    let (engine, probe) = start_with(feeds, fast_reconnect(), |f| {
        f.capture = Some(CaptureConfig { dir });
    });
    assert!(
        sim.wait_until(WAIT, |s| s.open_connections().count() == 2),
        "two connections: {:?}",
        sim.snapshot().connections
    );
    probe.wait_more_ticks(100);
    // A sequence jump on the trades connection: it withholds three trades.
    let conn = sim
        .snapshot()
        .open_connections()
        .find(|c| c.streams.iter().any(|s| s.contains("aggTrade")))
        .map(|c| c.id)
        .expect("the trades connection");
    sim.inject_on(conn, Fault::DropNext { count: 3 });
    probe.wait("a sequence jump reported", |s| {
        has_health(s, |h| matches!(h, Health::Gap { .. }))
    });
    // An outage on each feed: the venue closes every connection.
    sim.inject(Fault::Close { code: 1001 });
    probe.wait("both feeds recovered", |s| {
        count_health(s, |h| matches!(h, Health::Recovered { .. })) >= 2
    });
    probe.wait_more_ticks(100);
    let (summary, _) = engine.stop();
    let session = summary.capture.as_ref().expect("capture is on").dir.clone();
    let manifest: Value =
        serde_json::from_str(&read(&session.join("session_manifest.json"))).unwrap();

    // The manifest records what the figures need.
    let feeds = manifest["feeds"].as_array().unwrap();
    assert_eq!(feeds.len(), 2);
    for f in feeds {
        let states = f["connection_states"].as_array().unwrap();
        let streaming = states.iter().filter(|c| c["state"] == "streaming").count();
        assert!(
            streaming >= 2,
            "{}: streaming before and after the outage: {states:?}",
            f["name"]
        );
    }
    let latency = &manifest["tick_latency_ns"];
    assert!(latency["count"].as_u64().unwrap() > 0, "{latency}");
    assert!(!latency["percentiles"].as_array().unwrap().is_empty());

    // The report, written elsewhere with --out.
    let out = root.join("out");
    let (code, stdout, stderr) = report(&[&session, Path::new("--out"), &out]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("report: "), "{stdout}");
    assert!(stdout.contains("tick latency:"), "{stdout}");
    assert!(
        !session.join("report.html").exists(),
        "--out writes elsewhere"
    );
    let page = read(&out.join("report.html"));
    for name in FIGURES {
        let svg = read(&out.join(name));
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(svg.matches("<text").count() > 3, "{name} has labels");
    }
    // Self-contained: four inline figures, nothing fetched.
    assert_eq!(
        page.matches("<svg").count(),
        FIGURES.len(),
        "inline figures"
    );
    for external in ["<script", "<link", "<img", "src=\"", "url("] {
        assert!(
            !page.contains(external),
            "the page loads nothing: {external}"
        );
    }
    // Every feed and every gap the manifest records.
    assert_eq!(page.matches("class=\"feed\"").count(), feeds.len());
    let timeline = read(&out.join("timeline.svg"));
    let mut gaps = 0;
    for f in feeds {
        let name = f["name"].as_str().unwrap();
        assert!(
            page.contains(&format!("<td>{name}</td>")),
            "{name} in the page"
        );
        assert!(timeline.contains(&format!("{name} · gaps")), "{name}'s row");
        assert!(
            timeline.contains(&format!("{name} · primary")),
            "{name}'s connection"
        );
        for g in f["connection_gaps"].as_array().unwrap() {
            gaps += 1;
            let reason = g["reason"].as_str().unwrap();
            assert!(page.contains(reason), "{name}: {reason}");
        }
    }
    let causes: Vec<&str> = feeds
        .iter()
        .flat_map(|f| f["connection_gaps"].as_array().unwrap())
        .filter_map(|g| g["cause"].as_str())
        .collect();
    assert!(
        causes.contains(&"outage") && causes.contains(&"sequence_jump"),
        "{causes:?}"
    );
    assert_eq!(page.matches("class=\"gap\"").count(), gaps, "one row a gap");
    assert!(page.contains(&format!("Gaps ({gaps})")));
    let reconnects = read(&out.join("reconnects.svg"));
    assert!(reconnects.contains("5 s target"));

    // Without --out: into the session folder.
    let (code, stdout, _) = report(&[&session]);
    assert_eq!(code, 0, "{stdout}");
    for name in FIGURES.iter().chain(&["report.html"]) {
        assert!(session.join(name).exists(), "{name} in the session folder");
    }
    // WSFEED_KEEP_REPORT=1 keeps the session and its report to look at.
    if std::env::var_os("WSFEED_KEEP_REPORT").is_some() {
        eprintln!("kept: {}", session.join("report.html").display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn bad_input_exits_2_naming_the_file_and_the_problem() {
    let root = scratch("bad");
    let (code, _, err) = report(&[&root]);
    assert_eq!(code, 2);
    assert!(
        err.contains("not a session folder") && err.contains(&*root.to_string_lossy()),
        "{err}"
    );
    let (code, _, err) = report(&[&root.join("missing")]);
    assert_eq!(code, 2);
    assert!(err.contains("missing: not a folder"), "{err}");
    let manifest = root.join("session_manifest.json");
    for (text, problem) in [
        ("{\"feeds\": [", "session_manifest.json: not JSON"),
        (
            "{\"session_id\": \"x\"}",
            "session_manifest.json: no feeds list",
        ),
        (
            "{\"feeds\": [{\"venue\": \"okx\"}]}",
            "session_manifest.json: feed 1 has no name",
        ),
    ] {
        std::fs::write(&manifest, text).unwrap();
        let (code, _, err) = report(&[&root]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(problem), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_older_manifest_gets_a_report_whose_figures_say_what_was_not_recorded() {
    let root = scratch("old");
    std::fs::write(
        root.join("session_manifest.json"),
        r#"{"session_id":"old","started_unix_ns":1000000000,"ended_unix_ns":3000000000,"complete":true,
            "feeds":[{"name":"f","venue":"binance-spot","streams":["btcusdt@aggTrade"],"messages":2,
            "total_reconnects":1,"connection_gaps":[{"start_ns":1500000000,"end_ns":1600000000,
            "duration_ms":100,"reconnect_ms":80,"cause":"outage","reason":"connection reset by peer",
            "attempts":1,"missed":[{"stream":"btcusdt@aggTrade","from_seq":3,"to_seq":4}]}]}]}"#,
    )
    .unwrap();
    let folder = root.join("binance-spot").join("BTCUSDT");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("aggTrade.jsonl"),
        "{\"recv_ns\":1200000000,\"conn\":1,\"msg\":{}}\n{\"recv_ns\":2200000000,\"conn\":2,\"msg\":{}}\n",
    )
    .unwrap();
    let r = wsfeed::report::write(&root, None).expect("an older manifest is read");
    assert_eq!(r.session.feeds[0].missed_ids(), 2);
    let timeline = read(&root.join("timeline.svg"));
    assert!(timeline.contains("connection states not recorded in this session"));
    assert!(timeline.contains("f · states not recorded"));
    assert!(read(&root.join("latency.svg")).contains("not recorded in this session"));
    assert!(read(&root.join("rates.svg")).contains("f · btcusdt@aggTrade"));
    let page = read(&root.join("report.html"));
    assert_eq!(page.matches("class=\"gap\"").count(), 1);
    assert!(
        r.to_string()
            .contains("tick latency:   not recorded in this session"),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
