//! Chaos suite: every simulator fault, alone and in sequence, on plain feeds, hot-standby feeds
//! and rotating feeds, with the capture on. After each run the JSONL capture, the session
//! manifest, the summary and what the strategy saw are checked against the simulator's ground
//! truth ([`Sim::sent`]), per stream with venue numbering (bookTicker `u`, aggTrade `a`, depth
//! update ids `U..=u`):
//!
//! - (a) no update is captured twice, and the capture is in venue order; it holds exactly the
//!   updates the strategy was given, in the same order;
//! - (b) nothing is captured that the simulator did not send;
//! - (c) every id between the first and the last captured one that is not captured lies in
//!   exactly one reported missed range, and every reported range is a hole of the capture with
//!   captured ids on both sides (no silent loss, no invented or mis-sized gap);
//! - (d) on each simulator connection, everything sent up to the last message captured from it
//!   is captured; on a connection that ended cleanly (Close, age limit), everything sent is.
//!
//! With a hot standby or a make-before-break rotation, a fault on one connection at a time loses
//! nothing at all: no missed range, every id in range captured, every message sent in range
//! captured.
//!
//! Every wait has a deadline (`Probe::wait`, `Sim::wait_until`, `eventually`). A run whose
//! checks fail leaves its capture in `$TMPDIR/wsfeed-chaos-<pid>-<test>/` for inspection.

mod util;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::*;
use wsfeed::config::{CaptureConfig, FeedConfig, ReconnectConfig};
use wsfeed::engine::Engine;
use wsfeed::metrics::{FeedState, GapCause, GapRecord, MAX_SLOTS};
use wsfeed::sim::{ConnId, Fault, SentRecord, Sim, SimConfig, SimSnapshot};
use wsfeed::strategy::Universe;
use wsfeed::summary::Summary;
use wsfeed::tick::{DisconnectReason, Health};

/// Every stream kind with a sequence, two symbols.
const MIXED: &[&str] = &[
    "btcusdt@bookTicker",
    "btcusdt@aggTrade",
    "btcusdt@depth@100ms",
    "ethusdt@bookTicker",
    "ethusdt@aggTrade",
    "ethusdt@depth@100ms",
];

/// Only chained streams: every lost update is provable from the numbering alone.
const CHAINED: &[&str] = &[
    "btcusdt@aggTrade",
    "btcusdt@depth@100ms",
    "ethusdt@aggTrade",
    "ethusdt@depth@100ms",
];

/// Ticks to let through before a fault and after a recovery.
const SOME: usize = 100;

// ----- set-up -------------------------------------------------------------------------------

/// A plain `ws://` simulator with fast streams (bookTicker 5 ms, aggTrade 10 ms, depth 50 ms,
/// markPrice 100 ms per symbol).
fn chaos_sim(usdm_routing: bool, tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut cfg = SimConfig {
        tls: false,
        usdm_routing,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        book_interval: Duration::from_millis(5),
        trade_interval: Duration::from_millis(10),
        depth_interval: Duration::from_millis(50),
        mark_price_interval: Duration::from_millis(100),
        ..SimConfig::default()
    };
    tweak(&mut cfg);
    Sim::start(cfg).expect("simulator starts")
}

fn spot(name: &str, sim: &Sim, streams: &[&str]) -> FeedConfig {
    feed(name, "binance-spot", sim, streams)
}

fn standby(mut f: FeedConfig) -> FeedConfig {
    f.standby = true;
    f
}

/// An engine with the capture on, writing under a folder of its own.
struct Run {
    engine: Engine<Recorder>,
    probe: Probe,
    root: PathBuf,
}

fn run(test: &str, feeds: Vec<FeedConfig>, reconnect: ReconnectConfig) -> Run {
    let root = std::env::temp_dir().join(format!("wsfeed-chaos-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.clone();
    let (engine, probe) = start_with(feeds, reconnect, |f| {
        f.capture = Some(CaptureConfig { dir });
    });
    Run {
        engine,
        probe,
        root,
    }
}

fn recoveries(s: &[Seen]) -> usize {
    count_health(s, |h| matches!(h, Health::Recovered { .. }))
}

fn connections_lost(s: &[Seen]) -> usize {
    count_health(s, |h| matches!(h, Health::ConnectionLost { .. }))
}

impl Run {
    fn wait_recoveries(&self, n: usize) {
        self.probe
            .wait(&format!("{n} recoveries"), |s| recoveries(s) >= n);
    }

    /// Waits until feed `feed` has `slots` connection slots, all streaming.
    fn wait_streaming(&self, feed: usize, slots: usize) {
        let stats = &self.engine.stats()[feed];
        eventually(
            &format!("feed {feed}: {slots} streaming connections"),
            || {
                stats.slot_count() == slots
                    && stats.slots[..slots]
                        .iter()
                        .all(|s| s.state() == FeedState::Streaming)
            },
        );
    }

    fn stop(self) -> Stopped {
        let universe = self.engine.universe().clone();
        let (summary, _) = self.engine.stop();
        let session = summary.capture.as_ref().expect("capture is on").dir.clone();
        assert!(session.starts_with(&self.root), "{}", session.display());
        let (lines, files) = load_capture(&session, &universe);
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(session.join("session_manifest.json"))
                .expect("the manifest exists"),
        )
        .expect("the manifest is valid JSON");
        let stopped = Stopped {
            summary,
            seen: self.probe.seen(),
            universe,
            lines,
            files,
            manifest,
            root: self.root,
        };
        check_manifest(&stopped);
        stopped
    }
}

/// Open, not stalled, connections of the simulator on `path` (any path when `None`), with
/// `streams` streams subscribed, oldest first.
fn live(snap: &SimSnapshot, path: Option<&str>, streams: usize) -> Vec<ConnId> {
    snap.open_connections()
        .filter(|c| !c.stalled && path.is_none_or(|p| c.path == p) && c.streams.len() == streams)
        .map(|c| c.id)
        .collect()
}

/// Waits until exactly `n` connections on `path` are live, subscribed to `streams` streams,
/// and each has sent 20 messages more than when it was first seen live (a connection that is
/// closing drops out of the set); returns them, oldest first.
fn wait_live(sim: &Sim, path: Option<&str>, streams: usize, n: usize) -> Vec<ConnId> {
    let first_seen = std::sync::Mutex::new(HashMap::<ConnId, u64>::new());
    let ready = sim.wait_until(WAIT, |s| {
        let conns = live(s, path, streams);
        let mut base = first_seen.lock().unwrap();
        let mut delivering = 0;
        for c in &conns {
            let sent = s.conn(*c).map_or(0, |c| c.messages_sent);
            if sent >= *base.entry(*c).or_insert(sent) + 20 {
                delivering += 1;
            }
        }
        conns.len() == n && delivering == n
    });
    assert!(
        ready,
        "{n} live, delivering connections on {path:?}: {:?}",
        sim.snapshot().connections
    );
    live(&sim.snapshot(), path, streams)
}

/// The single live connection of a feed without standby.
fn the_conn(sim: &Sim, streams: usize) -> ConnId {
    wait_live(sim, None, streams, 1)[0]
}

fn wait_withheld(sim: &Sim, conn: ConnId, n: u64) {
    assert!(
        sim.wait_until(WAIT, |s| s.conn(conn).is_some_and(|c| c.withheld == n)),
        "{conn} withheld {n}"
    );
}

// ----- the capture --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Book,
    Trade,
    Depth,
    Mark,
}

fn kind_of(stream: &str) -> Kind {
    let channel = stream.split_once('@').map_or("", |(_, c)| c);
    if channel == "bookTicker" {
        Kind::Book
    } else if channel == "aggTrade" {
        Kind::Trade
    } else if channel.starts_with("depth") {
        Kind::Depth
    } else if channel.starts_with("markPrice") {
        Kind::Mark
    } else {
        panic!("unknown stream {stream}")
    }
}

/// One captured line.
#[derive(Clone, Debug)]
struct Line {
    /// Path within the session, for messages.
    file: String,
    /// Feed index (engine feed, after the route split).
    feed: usize,
    recv_ns: u64,
    /// The feed's connection number.
    conn: u32,
    stream: String,
    /// Lowest update id the message covers (depth `U`; the sequence number otherwise).
    first: u64,
    /// The venue sequence number: bookTicker `u`, aggTrade `a`, depth `u`, markPrice `E`.
    seq: u64,
    /// The predecessor's number the message claims (depth `pu`, aggTrade `a - 1`).
    prev: Option<u64>,
}

fn u64_field(v: &Value, field: &str, at: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{at}: no integer `{field}` in {v}"))
}

/// Reads every `<venue>/<SYMBOL>/<channel>[.<feed>].jsonl` of the session, checking each line's
/// shape and that it sits in the file its stream belongs to. Returns the lines (file order
/// within each file) and the number of files.
fn load_capture(session: &Path, universe: &Universe) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut files = 0;
    let dirs = |p: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        v.sort();
        v
    };
    for venue_dir in dirs(session).into_iter().filter(|p| p.is_dir()) {
        let venue = venue_dir.file_name().unwrap().to_str().unwrap().to_string();
        for symbol_dir in dirs(&venue_dir) {
            assert!(symbol_dir.is_dir(), "{}", symbol_dir.display());
            let symbol = symbol_dir
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(
                symbol,
                symbol.to_uppercase(),
                "symbol folders are upper case"
            );
            for file in dirs(&symbol_dir) {
                let name = file.file_name().unwrap().to_str().unwrap().to_string();
                let rel = format!("{venue}/{symbol}/{name}");
                let stem = name
                    .strip_suffix(".jsonl")
                    .unwrap_or_else(|| panic!("unexpected file {rel}"));
                let (channel, suffix) = match stem.split_once('.') {
                    Some((c, f)) => (c, Some(f)),
                    None => (stem, None),
                };
                let stream = format!("{}@{channel}", symbol.to_lowercase());
                let owners: Vec<usize> = (0..universe.feeds.len())
                    .filter(|&i| {
                        let f = &universe.feeds[i];
                        f.venue.name() == venue && f.streams.iter().any(|s| s.name == stream)
                    })
                    .collect();
                let feed = match suffix {
                    None => {
                        assert_eq!(owners.len(), 1, "{rel}: one feed carries {stream}");
                        owners[0]
                    }
                    Some(feed_name) => {
                        assert!(owners.len() > 1, "{rel}: a suffix only when feeds share");
                        *owners
                            .iter()
                            .find(|&&i| universe.feeds[i].name == feed_name)
                            .unwrap_or_else(|| panic!("{rel}: no feed {feed_name}"))
                    }
                };
                files += 1;
                let text = std::fs::read_to_string(&file).expect("capture file reads");
                assert!(text.ends_with('\n'), "{rel}: ends with a newline");
                for (n, raw) in text.lines().enumerate() {
                    let at = format!("{rel}:{}", n + 1);
                    let v: Value = serde_json::from_str(raw)
                        .unwrap_or_else(|e| panic!("{at}: not JSON ({e}): {raw}"));
                    let keys: Vec<&str> = v
                        .as_object()
                        .unwrap_or_else(|| panic!("{at}: not an object"))
                        .keys()
                        .map(String::as_str)
                        .collect();
                    // Format 2: `n`, the line's place in the session; `again` marks an update
                    // a book was given again after a resync (captured once before).
                    let again = v.get("again") == Some(&Value::Bool(true));
                    assert_eq!(
                        keys,
                        if again {
                            vec!["again", "conn", "msg", "n", "recv_ns"]
                        } else {
                            vec!["conn", "msg", "n", "recv_ns"]
                        },
                        "{at}: recv_ns, conn, n, msg only"
                    );
                    if again {
                        continue;
                    }
                    let msg = &v["msg"];
                    assert_eq!(msg["stream"].as_str(), Some(stream.as_str()), "{at}");
                    let data = &msg["data"];
                    assert_eq!(data["s"].as_str(), Some(symbol.as_str()), "{at}");
                    let (first, seq, prev) = match kind_of(&stream) {
                        Kind::Book => {
                            let u = u64_field(data, "u", &at);
                            (u, u, None)
                        }
                        Kind::Trade => {
                            let a = u64_field(data, "a", &at);
                            (a, a, Some(a - 1))
                        }
                        Kind::Depth => {
                            let (first, last) =
                                (u64_field(data, "U", &at), u64_field(data, "u", &at));
                            assert!(first <= last, "{at}: U <= u");
                            (first, last, Some(u64_field(data, "pu", &at)))
                        }
                        Kind::Mark => {
                            let e = u64_field(data, "E", &at);
                            (e, e, None)
                        }
                    };
                    lines.push(Line {
                        file: rel.clone(),
                        feed,
                        recv_ns: u64_field(&v, "recv_ns", &at),
                        conn: u64_field(&v, "conn", &at) as u32,
                        stream: stream.clone(),
                        first,
                        seq,
                        prev,
                    });
                }
            }
        }
    }
    (lines, files)
}

/// A stopped engine and everything it left behind.
struct Stopped {
    summary: Summary,
    seen: Vec<Seen>,
    universe: Universe,
    lines: Vec<Line>,
    files: usize,
    manifest: Value,
    root: PathBuf,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // Kept for inspection when a check failed.
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

impl Stopped {
    fn feed_lines(&self, feed: usize) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.feed == feed).collect()
    }

    fn stream_names(&self, feed: usize) -> Vec<String> {
        self.universe.feeds[feed]
            .streams
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// `(stream, from, to)` of every missed range reported for `feed`, with the gap's index.
    fn missed(&self, feed: usize) -> Vec<(String, u64, u64, usize)> {
        let names = self.stream_names(feed);
        self.summary.feeds[feed]
            .gaps
            .iter()
            .enumerate()
            .flat_map(|(i, g)| {
                let names = &names;
                g.missed
                    .iter()
                    .map(move |m| (names[m.stream as usize].clone(), m.from_seq, m.to_seq, i))
            })
            .collect()
    }

    fn health(&self) -> Vec<Health> {
        health_of(&self.seen).into_iter().map(|(_, h)| h).collect()
    }
}

// ----- the checks ---------------------------------------------------------------------------

/// What a run promises beyond the invariants every run keeps.
#[derive(Clone, Debug, Default)]
struct Promise {
    /// Zero loss: no missed range, every id and every message sent in range captured.
    lossless_feed: bool,
    /// Simulator connections that ended cleanly: all they sent is captured.
    clean: Vec<ConnId>,
}

/// What a feed's run amounted to, for the test's own assertions.
#[derive(Debug)]
struct Report {
    outages: Vec<DisconnectReason>,
    /// `(stream, from, to)` of sequence-jump gaps.
    jumps: Vec<(String, u64, u64)>,
    /// Lines per stream.
    captured: BTreeMap<String, usize>,
}

/// Checks invariants (a)–(d) and the gap records of feed `feed` against `sent` (what the
/// simulator behind that feed recorded; records of other feeds' streams are ignored).
fn check_feed(st: &Stopped, feed: usize, sent: &[SentRecord], promise: &Promise) -> Report {
    let fs = &st.summary.feeds[feed];
    let ctx = format!("feed {} ({})", feed, fs.name);
    let names = st.stream_names(feed);
    let lines = st.feed_lines(feed);
    let sent: Vec<&SentRecord> = sent.iter().filter(|r| names.contains(&r.stream)).collect();
    assert_eq!(fs.dropped, 0, "{ctx}: no tick dropped");
    assert!(fs.failure.is_none(), "{ctx}: {:?}", fs.failure);
    let mut by_stream: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
    for l in &lines {
        by_stream.entry(&l.stream).or_default().push(l);
    }
    for name in &names {
        assert!(
            by_stream.get(name.as_str()).is_some_and(|v| v.len() >= 3),
            "{ctx}: {name} captured ({} lines)",
            by_stream.get(name.as_str()).map_or(0, Vec::len)
        );
    }

    // (a) Each stream's file is in strictly increasing venue order: no duplicate, no overlap.
    for (stream, ls) in &by_stream {
        for w in ls.windows(2) {
            assert!(
                w[1].seq > w[0].seq && w[1].first > w[0].seq,
                "{ctx}: {stream} captured out of order or twice: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }

    // (b) Nothing invented.
    let sent_set: HashSet<(&str, u64)> = sent.iter().map(|r| (r.stream.as_str(), r.seq)).collect();
    for l in &lines {
        assert!(
            sent_set.contains(&(l.stream.as_str(), l.seq)),
            "{ctx}: captured what the simulator never sent: {l:?}"
        );
    }

    // The strategy was given exactly what was captured; the counters agree.
    let ticks: HashSet<(String, u64)> = st
        .seen
        .iter()
        .filter_map(|s| match s {
            // A Binance depth stream gives the strategy its local book's view: the REST
            // snapshot, then the diffs after it (the capture holds every diff received).
            Seen::Tick {
                feed: f,
                stream,
                seq,
            } if *f as usize == feed && kind_of(stream) != Kind::Depth => {
                Some((stream.clone(), *seq))
            }
            _ => None,
        })
        .collect();
    let captured: HashMap<(&str, u64), u32> = lines
        .iter()
        .map(|l| ((l.stream.as_str(), l.seq), l.conn))
        .collect();
    let captured_keys: HashSet<(String, u64)> = lines
        .iter()
        .filter(|l| kind_of(&l.stream) != Kind::Depth)
        .map(|l| (l.stream.clone(), l.seq))
        .collect();
    assert!(
        ticks == captured_keys,
        "{ctx}: strategy and capture differ: {} ticks only given, {} only captured",
        ticks.difference(&captured_keys).count(),
        captured_keys.difference(&ticks).count()
    );
    // ... in the same order, stream by stream (a depth update's chunks share one seq).
    let mut given: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for s in &st.seen {
        if let Seen::Tick {
            feed: f,
            stream,
            seq,
        } = s
        {
            let v = given.entry(stream.as_str()).or_default();
            if *f as usize == feed && v.last() != Some(seq) {
                v.push(*seq);
            }
        }
    }
    for (stream, ls) in &by_stream {
        let order: Vec<u64> = ls.iter().map(|l| l.seq).collect();
        if kind_of(stream) == Kind::Depth {
            // The book's view: increasing ids, each a captured diff or a REST snapshot's id.
            let g = given.get(stream).cloned().unwrap_or_default();
            assert!(
                g.windows(2).all(|w| w[0] < w[1]),
                "{ctx}: {stream}: the book's updates go back in time: {g:?}"
            );
            continue;
        }
        assert!(
            given.get(stream) == Some(&order),
            "{ctx}: {stream}: the capture's order is not the order the strategy was given"
        );
    }
    assert_eq!(
        fs.messages,
        lines.len() as u64 + fs.duplicates + fs.superseded,
        "{ctx}: every message is captured once or counted as a duplicate or superseded"
    );

    // (c) Holes of the capture are exactly the reported missed ranges.
    let missed = st.missed(feed);
    // Within one simulator connection a bookTicker hole is not reported (the venue's ids skip):
    // the ids a connection did not send between its first and last bookTicker are allowed
    // holes, unless the run promises zero loss.
    let mut allowed: HashSet<(&str, u64)> = HashSet::new();
    if !promise.lossless_feed {
        let mut spans: HashMap<(ConnId, &str), Vec<u64>> = HashMap::new();
        for r in sent.iter().filter(|r| kind_of(&r.stream) == Kind::Book) {
            spans.entry((r.conn, &r.stream)).or_default().push(r.seq);
        }
        for ((_, stream), mut ids) in spans {
            ids.sort_unstable();
            for w in ids.windows(2) {
                allowed.extend((w[0] + 1..w[1]).map(|id| (stream, id)));
            }
        }
    }
    let mut missed_ids = 0u64;
    let mut silent_quotes = 0u64;
    for (stream, ls) in &by_stream {
        if kind_of(stream) == Kind::Mark {
            assert!(
                !missed.iter().any(|m| m.0 == *stream),
                "{ctx}: markPrice has no ids to miss"
            );
            continue;
        }
        let covered: HashSet<u64> = ls.iter().flat_map(|l| l.first..=l.seq).collect();
        let (lo, hi) = (ls[0].first, ls[ls.len() - 1].seq);
        let mut ranges: Vec<(u64, u64)> = missed
            .iter()
            .filter(|m| m.0 == *stream)
            .map(|m| (m.1, m.2))
            .collect();
        ranges.sort_unstable();
        for &(from, to) in &ranges {
            assert!(
                lo < from && from <= to && to < hi,
                "{ctx}: {stream} missed {from}..={to} outside the captured span {lo}..={hi}"
            );
            assert!(
                covered.contains(&(from - 1)) && covered.contains(&(to + 1)),
                "{ctx}: {stream} missed {from}..={to} is not exactly a hole of the capture"
            );
            if let Some(id) = (from..=to).find(|id| covered.contains(id)) {
                panic!("{ctx}: {stream} reported missed {from}..={to} but {id} was captured");
            }
            missed_ids += to - from + 1;
        }
        for w in ranges.windows(2) {
            assert!(w[1].0 > w[0].1, "{ctx}: {stream} ranges overlap: {w:?}");
        }
        let mut silent = Vec::new();
        for id in lo..=hi {
            if covered.contains(&id)
                || ranges.iter().any(|&(f, t)| (f..=t).contains(&id))
                || allowed.contains(&(stream, id))
            {
                continue;
            }
            silent.push(id);
        }
        // A quote older than one already given is superseded (counted, never given).
        if kind_of(stream) == Kind::Book {
            silent_quotes += silent.len() as u64;
            continue;
        }
        assert!(
            silent.is_empty(),
            "{ctx}: {stream}: {} ids neither captured nor reported missed, first {:?}",
            silent.len(),
            &silent[..silent.len().min(10)]
        );
    }
    assert!(
        silent_quotes <= fs.superseded,
        "{ctx}: {silent_quotes} quote ids neither captured nor reported missed, but only {} superseded",
        fs.superseded
    );
    assert_eq!(fs.missed_ids, missed_ids, "{ctx}: missed_ids counter");
    assert_eq!(fs.seq_gaps, missed.len() as u64, "{ctx}: seq_gaps counter");

    // (d) Per simulator connection: what arrived is everything up to the last message it
    // delivered; a cleanly ended connection delivered all it sent.
    let mut on_conn: BTreeMap<ConnId, Vec<&SentRecord>> = BTreeMap::new();
    for r in &sent {
        on_conn.entry(r.conn).or_default().push(r);
    }
    let mut from_conn: HashMap<u32, HashSet<(&str, u64)>> = HashMap::new();
    for l in &lines {
        from_conn
            .entry(l.conn)
            .or_default()
            .insert((l.stream.as_str(), l.seq));
    }
    for (conn, records) in &on_conn {
        let here: HashSet<(&str, u64)> =
            records.iter().map(|r| (r.stream.as_str(), r.seq)).collect();
        // Engine connections whose every capture this simulator connection sent.
        let mine: HashSet<u32> = from_conn
            .iter()
            .filter(|(_, got)| got.is_subset(&here))
            .map(|(c, _)| *c)
            .collect();
        let last = records.iter().rposition(|r| {
            captured
                .get(&(r.stream.as_str(), r.seq))
                .is_some_and(|c| mine.contains(c))
        });
        let upto = if promise.clean.contains(conn) {
            Some(records.len() - 1)
        } else {
            last
        };
        if let Some(upto) = upto {
            // Quotes another connection superseded are counted, not captured (checked above).
            let lost: Vec<&&SentRecord> = records[..=upto]
                .iter()
                .filter(|r| !captured.contains_key(&(r.stream.as_str(), r.seq)))
                .filter(|r| fs.superseded == 0 || kind_of(&r.stream) != Kind::Book)
                .collect();
            assert!(
                lost.is_empty(),
                "{ctx}: {conn} sent {} messages before its last delivered one (of {}) that were not captured, first {:?}",
                lost.len(),
                upto + 1,
                lost.first()
            );
        }
    }

    // Zero loss: nothing missed, every id and every message sent in range captured.
    if promise.lossless_feed {
        assert!(
            missed.is_empty(),
            "{ctx}: missed ranges reported: {missed:?}"
        );
        // A quote (bookTicker) or mark price older than one already given is superseded:
        // a lagging connection's copy of an update the leading one skipped. It is counted,
        // and never given: it would move the strategy back in time. Chained streams lose
        // nothing at all.
        let mut superseded = 0u64;
        for (stream, ls) in &by_stream {
            let (lo, hi) = (ls[0].seq, ls[ls.len() - 1].seq);
            let lost: Vec<u64> = sent
                .iter()
                .filter(|r| r.stream == *stream && (lo..=hi).contains(&r.seq))
                .filter(|r| !captured.contains_key(&(r.stream.as_str(), r.seq)))
                .map(|r| r.seq)
                .collect::<BTreeSet<u64>>()
                .into_iter()
                .collect();
            let snapshot_stream = stream.contains("@bookTicker") || stream.contains("@markPrice");
            if snapshot_stream {
                superseded += lost.len() as u64;
                continue;
            }
            assert!(
                lost.is_empty(),
                "{ctx}: {stream}: {} messages sent in range not captured: {:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            );
        }
        assert!(
            superseded <= fs.superseded,
            "{ctx}: {superseded} quotes sent in range not captured, but only {} counted superseded",
            fs.superseded
        );
    }

    // Gap records: each outage is bounded by captured data, each jump is the message that
    // broke the chain, and each missed range sits on the right side of its gap.
    let mut outages = Vec::new();
    let mut jumps = Vec::new();
    for (gi, g) in fs.gaps.iter().enumerate() {
        match g.cause {
            GapCause::Outage(reason) => {
                outages.push(reason);
                check_outage(&ctx, g, &lines);
                for m in missed.iter().filter(|m| m.3 == gi) {
                    let ls = &by_stream[m.0.as_str()];
                    let before = ls.iter().rev().find(|l| l.seq < m.1).unwrap();
                    let after = ls.iter().find(|l| l.first > m.2).unwrap();
                    assert!(
                        before.recv_ns < g.end_unix_ns && after.recv_ns >= g.end_unix_ns,
                        "{ctx}: {} missed {}..={} is not across outage {gi}",
                        m.0,
                        m.1,
                        m.2
                    );
                }
            }
            GapCause::SequenceJump => {
                assert_eq!(g.missed.len(), 1, "{ctx}: a jump is one range: {g:?}");
                assert_eq!(
                    (g.start_unix_ns, g.duration_ms, g.reconnect_ms, g.attempts),
                    (g.end_unix_ns, 0, 0, 0),
                    "{ctx}: a jump is an instant"
                );
                let m = g.missed[0];
                let stream = names[m.stream as usize].clone();
                let ls = &by_stream[stream.as_str()];
                let i = ls
                    .iter()
                    .position(|l| l.recv_ns == g.end_unix_ns)
                    .unwrap_or_else(|| panic!("{ctx}: no {stream} line at jump {g:?}"));
                assert_eq!(
                    ls[i].prev,
                    Some(m.to_seq),
                    "{ctx}: the jump is the message after the hole"
                );
                assert!(
                    i > 0 && ls[i - 1].seq + 1 == m.from_seq,
                    "{ctx}: the jump starts right after the previous message"
                );
                jumps.push((stream, m.from_seq, m.to_seq));
            }
        }
    }
    assert_eq!(
        fs.reconnects,
        outages.len() as u64,
        "{ctx}: one recovery per outage"
    );

    // What the strategy was told.
    let health: Vec<Health> = health_of(&st.seen)
        .into_iter()
        .filter(|(f, _)| *f as usize == feed)
        .map(|(_, h)| h)
        .collect();
    let told: HashSet<(String, u64, u64)> = health
        .iter()
        .filter_map(|h| match *h {
            Health::Gap {
                stream,
                from_seq,
                to_seq,
            } => Some((names[stream as usize].clone(), from_seq, to_seq)),
            _ => None,
        })
        .collect();
    let recorded: HashSet<(String, u64, u64)> =
        missed.iter().map(|m| (m.0.clone(), m.1, m.2)).collect();
    assert_eq!(
        told, recorded,
        "{ctx}: the strategy is told every missed range"
    );
    let n = |p: fn(&Health) -> bool| health.iter().filter(|h| p(h)).count() as u64;
    assert_eq!(
        n(|h| matches!(h, Health::Recovered { .. })),
        fs.reconnects,
        "{ctx}"
    );
    assert_eq!(
        n(|h| matches!(
            h,
            Health::Disconnected { .. } | Health::ConnectionLost { .. }
        )),
        fs.disconnects,
        "{ctx}: one event per lost connection"
    );
    Report {
        outages,
        jumps,
        captured: by_stream
            .iter()
            .map(|(s, v)| (s.to_string(), v.len()))
            .collect(),
    }
}

/// An outage record is bounded by the feed's captured data: it ends with the first message
/// after it, and nothing was captured between the last message before it and that one.
fn check_outage(ctx: &str, g: &GapRecord, lines: &[&Line]) {
    let end = lines
        .iter()
        .find(|l| l.recv_ns == g.end_unix_ns)
        .unwrap_or_else(|| panic!("{ctx}: no captured message ends outage {g:?}"));
    let before = lines
        .iter()
        .filter(|l| l.recv_ns < g.end_unix_ns)
        .max_by_key(|l| l.recv_ns)
        .unwrap_or_else(|| panic!("{ctx}: no data before outage {g:?}"));
    // start = end - (detection-side clock - last data) <= last data; the gap measured in
    // whole ms is at least the captured silence.
    assert!(
        g.start_unix_ns <= before.recv_ns,
        "{ctx}: outage starts after the last data before it: {g:?} {before:?}"
    );
    assert!(
        (g.end_unix_ns - before.recv_ns) / 1_000_000 <= g.duration_ms,
        "{ctx}: outage shorter than the captured silence: {g:?} {before:?}"
    );
    // Liveness bound, not a performance claim: the gap is measured right after the frame read.
    assert!(
        before.recv_ns - g.start_unix_ns < 1_000_000_000,
        "{ctx}: outage start far from the last data: {g:?} {before:?}"
    );
    // Not checked: reconnect_ms <= duration_ms. A read error is stamped with the instant the
    // feed's turn started, which can precede the last data read in that same turn.
    assert!(g.attempts >= 1, "{ctx}: {g:?}");
    // Every connection carrying the feed was lost: data resumes on another one.
    assert_ne!(
        end.conn, before.conn,
        "{ctx}: an outage ends on a new connection"
    );
}

/// The manifest is complete, valid, and agrees with the summary and the files.
fn check_manifest(st: &Stopped) {
    let m = &st.manifest;
    let cap = st.summary.capture.as_ref().expect("capture totals");
    assert_eq!(m["complete"], Value::Bool(true), "manifest complete");
    assert!(m["ended_unix_ns"].as_u64() >= m["started_unix_ns"].as_u64());
    assert_eq!(cap.errors, 0, "capture errors");
    assert_eq!(
        cap.lines,
        st.lines.len() as u64,
        "capture lines = lines on disk"
    );
    assert_eq!(cap.files, st.files, "capture files = files on disk");
    assert_eq!(m["capture"]["lines"].as_u64(), Some(cap.lines));
    assert_eq!(m["capture"]["bytes"].as_u64(), Some(cap.bytes));
    assert_eq!(m["capture"]["files"].as_u64(), Some(cap.files as u64));
    assert_eq!(m["capture"]["errors"].as_u64(), Some(0));
    let feeds = m["feeds"].as_array().expect("feeds[]");
    assert_eq!(feeds.len(), st.summary.feeds.len());
    for (i, (mf, fs)) in feeds.iter().zip(&st.summary.feeds).enumerate() {
        let ctx = format!("manifest feeds[{i}] ({})", fs.name);
        assert_eq!(mf["name"].as_str(), Some(fs.name.as_str()), "{ctx}");
        assert_eq!(mf["url"].as_str(), Some(fs.url.as_str()), "{ctx}");
        assert_eq!(
            mf["venue"].as_str(),
            Some(st.universe.feeds[i].venue.name()),
            "{ctx}"
        );
        let streams: Vec<&str> = mf["streams"]
            .as_array()
            .expect("streams[]")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(streams, st.stream_names(i), "{ctx}");
        for (field, want) in [
            ("messages", fs.messages),
            ("ticks", fs.ticks),
            ("dropped_ticks", fs.dropped),
            ("duplicates", fs.duplicates),
            ("superseded", fs.superseded),
            ("parse_errors", fs.parse_errors),
            ("unknown_frames", fs.unknown_frames),
            ("disconnects", fs.disconnects),
            ("total_reconnects", fs.reconnects),
            ("rotations", fs.rotations),
            ("missed_ids", fs.missed_ids),
        ] {
            assert_eq!(mf[field].as_u64(), Some(want), "{ctx}: {field}");
        }
        assert_eq!(
            st.feed_lines(i).len() as u64 + fs.duplicates + fs.superseded,
            fs.messages,
            "{ctx}: lines + duplicates + superseded = messages"
        );
        let conns = mf["connections"].as_array().expect("connections[]");
        assert!(
            !conns.is_empty() && conns.len() <= MAX_SLOTS,
            "{ctx}: {conns:?}"
        );
        for c in conns {
            assert!(
                c["role"].is_string() && c["state"].is_string() && c["conn"].as_u64() > Some(0),
                "{ctx}: {c}"
            );
        }
        let gaps = mf["connection_gaps"].as_array().expect("connection_gaps[]");
        assert_eq!(gaps.len(), fs.gaps.len(), "{ctx}: gaps");
        let names = st.stream_names(i);
        for (mg, g) in gaps.iter().zip(&fs.gaps) {
            let (cause, reason) = match g.cause {
                GapCause::Outage(r) => ("outage", r.to_string()),
                GapCause::SequenceJump => ("sequence_jump", g.cause.to_string()),
            };
            assert_eq!(mg["cause"].as_str(), Some(cause), "{ctx}: {mg}");
            assert_eq!(mg["reason"].as_str(), Some(reason.as_str()), "{ctx}: {mg}");
            for (field, want) in [
                ("start_ns", g.start_unix_ns),
                ("end_ns", g.end_unix_ns),
                ("duration_ms", g.duration_ms),
                ("reconnect_ms", g.reconnect_ms),
                ("attempts", u64::from(g.attempts)),
            ] {
                assert_eq!(mg[field].as_u64(), Some(want), "{ctx}: {field} of {mg}");
            }
            let missed: Vec<(String, u64, u64)> = mg["missed"]
                .as_array()
                .expect("missed[]")
                .iter()
                .map(|x| {
                    (
                        x["stream"].as_str().unwrap_or_default().to_string(),
                        x["from_seq"].as_u64().unwrap_or(0),
                        x["to_seq"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            let want: Vec<(String, u64, u64)> = g
                .missed
                .iter()
                .map(|x| (names[x.stream as usize].clone(), x.from_seq, x.to_seq))
                .collect();
            assert_eq!(missed, want, "{ctx}: missed of {mg}");
        }
    }
}

fn is_close(code: u16) -> impl Fn(&DisconnectReason) -> bool {
    move |r| *r == DisconnectReason::CloseFrame { code }
}

fn is_reset(r: &DisconnectReason) -> bool {
    matches!(r, DisconnectReason::Reset | DisconnectReason::Eof)
}

/// Asserts the outages, in order, one predicate each.
fn assert_outages(report: &Report, want: &[&dyn Fn(&DisconnectReason) -> bool]) {
    assert_eq!(
        report.outages.len(),
        want.len(),
        "outages: {:?}",
        report.outages
    );
    for (got, ok) in report.outages.iter().zip(want) {
        assert!(
            ok(got),
            "unexpected outage reason {got} in {:?}",
            report.outages
        );
    }
}

// ----- 1. every fault kind on a plain feed ----------------------------------------------------

/// One plain spot feed over MIXED; `fault` is applied to its connection after some data; the
/// feed must recover (once) and keep every invariant.
fn one_outage(
    test: &str,
    fault: impl FnOnce(&Sim, ConnId),
    clean: bool,
    reconnect: ReconnectConfig,
) -> (Stopped, Report, Sim) {
    let sim = chaos_sim(false, |_| {});
    let r = run(test, vec![spot("spot", &sim, MIXED)], reconnect);
    let conn = the_conn(&sim, MIXED.len());
    r.probe.wait_more_ticks(SOME);
    fault(&sim, conn);
    r.wait_recoveries(1);
    r.wait_streaming(0, 1);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    let promise = Promise {
        clean: if clean { vec![conn] } else { vec![] },
        ..Promise::default()
    };
    let report = check_feed(&st, 0, &sim.sent(), &promise);
    assert!(
        report.jumps.is_empty(),
        "no jump without DropNext: {report:?}"
    );
    (st, report, sim)
}

#[test]
fn close_frame_loses_nothing_sent_before_it() {
    let (_, report, _) = one_outage(
        "close",
        |sim, c| sim.inject_on(c, Fault::Close { code: 1001 }),
        true,
        fast_reconnect(),
    );
    assert_outages(&report, &[&is_close(1001)]);
}

#[test]
fn reset_reports_exactly_what_the_outage_missed() {
    let (st, report, _) = one_outage(
        "reset",
        |sim, c| sim.inject_on(c, Fault::Reset),
        false,
        fast_reconnect(),
    );
    assert_outages(&report, &[&is_reset]);
    // Every numbered stream resumed across the outage with its missed ids reported.
    assert!(st.summary.feeds[0].missed_ids > 0, "{}", st.summary);
}

#[test]
fn stall_is_detected_and_the_outage_reported() {
    let (_, report, _) = one_outage(
        "stall",
        |sim, c| {
            sim.inject_on(
                c,
                Fault::Stall {
                    duration: Duration::from_millis(1500),
                },
            )
        },
        false,
        fast_reconnect(),
    );
    assert_outages(&report, &[&|r| *r == DisconnectReason::PongTimeout]);
}

#[test]
fn refused_reconnects_are_one_outage() {
    let (st, report, _) = one_outage(
        "refuse",
        |sim, c| {
            sim.inject(Fault::Refuse {
                duration: Duration::from_millis(500),
            });
            sim.inject_on(c, Fault::Reset);
        },
        false,
        fast_reconnect(),
    );
    assert_outages(&report, &[&is_reset]);
    assert!(st.summary.feeds[0].gaps[0].attempts >= 2, "{}", st.summary);
}

#[test]
fn http_429_with_retry_after_is_one_outage() {
    let (st, report, sim) = one_outage(
        "http429",
        |sim, c| {
            sim.inject(Fault::Http429 {
                count: 1,
                retry_after_s: 1,
            });
            sim.inject_on(c, Fault::Close { code: 1000 });
        },
        true,
        fast_reconnect(),
    );
    assert_outages(&report, &[&is_close(1000)]);
    let g = &st.summary.feeds[0].gaps[0];
    assert!(g.attempts == 2 && g.duration_ms >= 1000, "{g:?}");
    assert_eq!(sim.snapshot().upgrades_rejected, 1);
}

#[test]
fn http_503_is_one_outage() {
    let (st, report, _) = one_outage(
        "http503",
        |sim, c| {
            sim.inject(Fault::Http503 { count: 2 });
            sim.inject_on(c, Fault::Close { code: 1013 });
        },
        true,
        fast_reconnect(),
    );
    assert_outages(&report, &[&is_close(1013)]);
    assert_eq!(st.summary.feeds[0].gaps[0].attempts, 3, "{}", st.summary);
}

#[test]
fn ip_ban_418_with_retry_after_is_one_outage() {
    let (st, report, _) = one_outage(
        "http418",
        |sim, c| {
            sim.inject(Fault::Reject {
                status: 418,
                count: 1,
                retry_after_s: Some(1),
            });
            sim.inject_on(c, Fault::Reset);
        },
        false,
        fast_reconnect(),
    );
    assert_outages(&report, &[&is_reset]);
    let g = &st.summary.feeds[0].gaps[0];
    assert!(g.attempts == 2 && g.duration_ms >= 1000, "{g:?}");
}

#[test]
fn ignored_subscribe_times_out_inside_one_outage() {
    let reconnect = ReconnectConfig {
        ack_timeout_ms: 400,
        ..fast_reconnect()
    };
    let (st, report, _) = one_outage(
        "ignore-subscribe",
        |sim, c| {
            sim.inject(Fault::IgnoreSubscribe { count: 1 });
            sim.inject_on(c, Fault::Close { code: 1001 });
        },
        true,
        reconnect,
    );
    assert_outages(&report, &[&is_close(1001)]);
    assert!(
        st.health().iter().any(|h| matches!(
            h,
            Health::Disconnected {
                reason: DisconnectReason::AckTimeout,
                ..
            }
        )),
        "{:?}",
        st.health()
    );
    assert_eq!(st.summary.feeds[0].disconnects, 2, "{}", st.summary);
}

#[test]
fn oversized_frame_ends_the_connection_and_is_one_outage() {
    let sim = chaos_sim(false, |_| {});
    let mut f = spot("spot", &sim, MIXED);
    f.max_frame_bytes = 16 << 10;
    f.max_message_bytes = 16 << 10;
    let r = run("oversized", vec![f], fast_reconnect());
    let conn = the_conn(&sim, MIXED.len());
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(conn, Fault::Oversized { bytes: 100_000 });
    r.wait_recoveries(1);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    // The simulator goes on sending after the big frame, which the engine never reads: the
    // connection is lossless only up to its last captured message.
    let report = check_feed(&st, 0, &sim.sent(), &Promise::default());
    assert_outages(&report, &[&|r| *r == DisconnectReason::TooLarge]);
}

/// A frame that is not data must not cost a connection nor any data around it.
fn harmless(test: &str, fault: Fault) -> (Stopped, Sim) {
    let sim = chaos_sim(false, |_| {});
    let r = run(test, vec![spot("spot", &sim, MIXED)], fast_reconnect());
    let conn = the_conn(&sim, MIXED.len());
    r.probe.wait_more_ticks(SOME);
    for _ in 0..3 {
        sim.inject_on(conn, fault.clone());
        r.probe.wait_more_ticks(SOME / 2);
    }
    let st = r.stop();
    let report = check_feed(&st, 0, &sim.sent(), &Promise::default());
    assert!(
        report.outages.is_empty() && report.jumps.is_empty(),
        "{report:?}"
    );
    let fs = &st.summary.feeds[0];
    assert_eq!(
        (fs.disconnects, fs.reconnects, fs.missed_ids),
        (0, 0, 0),
        "{}",
        st.summary
    );
    // One connection delivered everything from its first to its last captured message.
    assert!(st.lines.iter().all(|l| l.conn == 1));
    (st, sim)
}

#[test]
fn malformed_frames_cost_nothing() {
    let (st, _) = harmless("malformed", Fault::Malformed);
    assert_eq!(st.summary.feeds[0].parse_errors, 3, "{}", st.summary);
    assert_eq!(st.summary.feeds[0].duplicates, 0, "{}", st.summary);
}

#[test]
fn binary_frames_cost_nothing() {
    let (st, _) = harmless("binary", Fault::Binary);
    assert_eq!(st.summary.feeds[0].unknown_frames, 3, "{}", st.summary);
}

#[test]
fn unknown_messages_cost_nothing() {
    let (st, _) = harmless("unknown", Fault::UnknownMessage);
    assert_eq!(st.summary.feeds[0].unknown_frames, 3, "{}", st.summary);
}

#[test]
fn server_pings_cost_nothing() {
    let (st, sim) = harmless("server-ping", Fault::ServerPing);
    assert_eq!(st.summary.feeds[0].pings_received, 3, "{}", st.summary);
    assert_eq!(sim.snapshot().pongs_received, 3);
}

#[test]
fn ping_floods_cost_nothing() {
    let (st, sim) = harmless("ping-flood", Fault::PingFlood { count: 500 });
    assert_eq!(st.summary.feeds[0].pings_received, 1500, "{}", st.summary);
    assert_eq!(sim.snapshot().pongs_received, 1500, "every ping answered");
}

#[test]
fn withheld_trades_are_reported_exactly() {
    const TRADES: &[&str] = &["btcusdt@aggTrade", "ethusdt@aggTrade"];
    let sim = chaos_sim(false, |_| {});
    let r = run(
        "drop-trades",
        vec![spot("spot", &sim, TRADES)],
        fast_reconnect(),
    );
    let conn = the_conn(&sim, TRADES.len());
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(conn, Fault::DropNext { count: 5 });
    wait_withheld(&sim, conn, 5);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(conn, Fault::DropNext { count: 1 });
    wait_withheld(&sim, conn, 6);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    let sent = sim.sent();
    let report = check_feed(&st, 0, &sent, &Promise::default());
    assert!(report.outages.is_empty(), "{report:?}");
    // The reported ids are exactly the ids the simulator skipped on the connection.
    let mut skipped: HashSet<(String, u64)> = HashSet::new();
    for stream in TRADES {
        let mut ids: Vec<u64> = sent
            .iter()
            .filter(|r| r.conn == conn && r.stream == *stream)
            .map(|r| r.seq)
            .collect();
        ids.sort_unstable();
        for w in ids.windows(2) {
            skipped.extend((w[0] + 1..w[1]).map(|id| (stream.to_string(), id)));
        }
    }
    let reported: HashSet<(String, u64)> = report
        .jumps
        .iter()
        .flat_map(|(s, from, to)| (*from..=*to).map(move |id| (s.clone(), id)))
        .collect();
    assert_eq!(reported, skipped, "{report:?}");
    assert_eq!(reported.len(), 6, "one id per withheld trade");
}

#[test]
fn withheld_depth_updates_are_reported_exactly() {
    const DEPTH: &[&str] = &["btcusdt@depth@100ms"];
    let sim = chaos_sim(false, |_| {});
    let r = run(
        "drop-depth",
        vec![spot("spot", &sim, DEPTH)],
        fast_reconnect(),
    );
    let conn = the_conn(&sim, DEPTH.len());
    r.probe.wait_more_ticks(10);
    sim.inject_on(conn, Fault::DropNext { count: 1 });
    wait_withheld(&sim, conn, 1);
    r.probe.wait_more_ticks(10);
    sim.inject_on(conn, Fault::DropNext { count: 3 });
    wait_withheld(&sim, conn, 4);
    r.probe.wait_more_ticks(10);
    let st = r.stop();
    let sent = sim.sent();
    let report = check_feed(&st, 0, &sent, &Promise::default());
    assert!(report.outages.is_empty(), "{report:?}");
    assert_eq!(report.jumps.len(), 2, "one jump per burst: {report:?}");
    // Each range is what the simulator withheld: the last update sent before it ends right
    // before the range, the first sent after it covers what follows, none was sent inside.
    let mut us: Vec<u64> = sent
        .iter()
        .filter(|r| r.conn == conn)
        .map(|r| r.seq)
        .collect();
    us.sort_unstable();
    for (_, from, to) in &report.jumps {
        assert!(
            us.contains(&(from - 1)),
            "{from}..={to}: sent up to {}",
            from - 1
        );
        assert!(
            !us.iter().any(|u| (*from..=*to).contains(u)),
            "{from}..={to}"
        );
    }
}

#[test]
fn muted_stream_is_replaced_make_before_break_and_its_hole_reported() {
    // Only the muted stream: what a rotation loses on the other streams is the subject of the
    // rotation tests below.
    const STREAMS: &[&str] = &["btcusdt@depth@100ms"];
    let sim = chaos_sim(false, |_| {});
    let mut f = spot("spot", &sim, STREAMS);
    f.stream_silence_ms
        .insert("btcusdt@depth@100ms".to_string(), 400);
    let r = run("mute", vec![f], fast_reconnect());
    let conn = the_conn(&sim, STREAMS.len());
    r.probe.wait_more_ticks(10);
    sim.inject_on(
        conn,
        Fault::Mute {
            stream: "btcusdt@depth@100ms".into(),
        },
    );
    r.probe.wait("rotation", |s| {
        has_health(s, |h| matches!(h, Health::Rotated { old: 1, new: 2 }))
    });
    r.probe.wait_more_ticks(10);
    let st = r.stop();
    let sent = sim.sent();
    let report = check_feed(&st, 0, &sent, &Promise::default());
    assert!(report.outages.is_empty(), "make before break: {report:?}");
    assert_eq!(st.summary.feeds[0].rotations, 1, "{}", st.summary);
    assert_eq!(report.jumps.len(), 1, "{report:?}");
    let (stream, from, to) = &report.jumps[0];
    assert_eq!(stream, "btcusdt@depth@100ms");
    assert!(
        !sent
            .iter()
            .any(|r| r.stream == *stream && (*from..=*to).contains(&r.seq)),
        "the hole is what the mute withheld"
    );
}

#[test]
fn venue_age_cut_is_an_outage_that_loses_nothing_sent() {
    let sim = chaos_sim(false, |c| c.max_conn_age = Some(Duration::from_millis(800)));
    let r = run(
        "venue-age",
        vec![spot("spot", &sim, MIXED)],
        fast_reconnect(),
    );
    assert!(sim.wait_until(WAIT, |s| s.age_closes >= 2), "two age cuts");
    r.wait_recoveries(2);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    let snap = sim.snapshot();
    let cut: Vec<ConnId> = snap.connections.iter().take(2).map(|c| c.id).collect();
    let report = check_feed(
        &st,
        0,
        &sim.sent(),
        &Promise {
            clean: cut,
            ..Promise::default()
        },
    );
    assert!(report.outages.len() >= 2, "{report:?}");
    assert!(report.outages.iter().all(is_close(1001)), "{report:?}");
}

/// Connections replaced by age (make before break) on plain loopback: the replacement takes
/// over without losing an update, so the venue never has to cut one.
#[test]
fn rotation_before_the_venue_age_cut_loses_nothing() {
    let sim = chaos_sim(false, |c| {
        c.max_conn_age = Some(Duration::from_millis(2500))
    });
    let reconnect = ReconnectConfig {
        max_connection_age_ms: 500,
        ..fast_reconnect()
    };
    let r = run("rotation", vec![spot("spot", &sim, MIXED)], reconnect);
    r.probe.wait("five rotations", |s| {
        count_health(s, |h| matches!(h, Health::Rotated { .. })) >= 5
    });
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    let report = check_feed(
        &st,
        0,
        &sim.sent(),
        &Promise {
            lossless_feed: true,
            ..Promise::default()
        },
    );
    assert!(
        report.outages.is_empty() && report.jumps.is_empty(),
        "{report:?}"
    );
    assert_eq!(sim.snapshot().age_closes, 0, "the venue never had to cut");
}

/// Make-before-break from a connection on a slow path (its data arrives 40 ms late) to one on a
/// fast path: the old connection must not be closed while updates only it carries are still on
/// their way, and a trade the fast path delivers first waits for the slow path's earlier ones
/// (the reorder window is set above the lag, as the README says it must be).
#[test]
fn rotation_away_from_a_lagging_connection_loses_nothing() {
    let sim = chaos_sim(false, |_| {});
    let proxy = LagProxy::start(
        sim.port(),
        &[Duration::from_millis(40), Duration::ZERO],
        Duration::ZERO,
    );
    let mut f = spot("spot", &sim, MIXED);
    f.url = Some(format!("ws://127.0.0.1:{}", proxy.port));
    f.reorder_window_ms = 100;
    let reconnect = ReconnectConfig {
        max_connection_age_ms: 800,
        ..fast_reconnect()
    };
    let r = run("rotation-lag", vec![f], reconnect);
    r.probe.wait("rotation", |s| {
        has_health(s, |h| *h == Health::Rotated { old: 1, new: 2 })
    });
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    drop(proxy);
    let report = check_feed(
        &st,
        0,
        &sim.sent(),
        &Promise {
            lossless_feed: true,
            ..Promise::default()
        },
    );
    assert!(report.outages.is_empty(), "{report:?}");
}

// ----- 2. faults in sequence ------------------------------------------------------------------

#[test]
fn mixed_faults_in_sequence_on_chained_streams() {
    let sim = chaos_sim(false, |_| {});
    let r = run(
        "mix-chained",
        vec![spot("spot", &sim, CHAINED)],
        fast_reconnect(),
    );
    let n = CHAINED.len();
    let mut clean = Vec::new();

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(c, Fault::Reset);
    r.wait_recoveries(1);

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(
        c,
        Fault::Stall {
            duration: Duration::from_millis(1200),
        },
    );
    r.wait_recoveries(2);

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject(Fault::Http429 {
        count: 1,
        retry_after_s: 1,
    });
    sim.inject_on(c, Fault::Close { code: 1000 });
    clean.push(c);
    r.wait_recoveries(3);

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(c, Fault::DropNext { count: 4 });
    wait_withheld(&sim, c, 4);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(c, Fault::Malformed);
    sim.inject_on(c, Fault::Binary);
    sim.inject_on(c, Fault::DropNext { count: 2 });
    wait_withheld(&sim, c, 6);
    r.probe.wait_more_ticks(SOME);
    sim.inject(Fault::Refuse {
        duration: Duration::from_millis(300),
    });
    sim.inject_on(c, Fault::Close { code: 1001 });
    clean.push(c);
    r.wait_recoveries(4);
    r.probe.wait_more_ticks(SOME);

    let st = r.stop();
    let report = check_feed(
        &st,
        0,
        &sim.sent(),
        &Promise {
            clean,
            ..Promise::default()
        },
    );
    assert_outages(
        &report,
        &[
            &is_reset,
            &|r| *r == DisconnectReason::PongTimeout,
            &is_close(1000),
            &is_close(1001),
        ],
    );
    assert!(
        !report.jumps.is_empty(),
        "withheld updates reported: {report:?}"
    );
    let fs = &st.summary.feeds[0];
    assert_eq!(
        (fs.parse_errors, fs.unknown_frames),
        (1, 1),
        "{}",
        st.summary
    );
}

#[test]
fn mixed_faults_in_sequence_with_quotes() {
    let sim = chaos_sim(false, |_| {});
    let r = run(
        "mix-quotes",
        vec![spot("spot", &sim, MIXED)],
        fast_reconnect(),
    );
    let n = MIXED.len();
    let mut clean = Vec::new();

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(c, Fault::Close { code: 1001 });
    clean.push(c);
    r.wait_recoveries(1);

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject(Fault::Refuse {
        duration: Duration::from_millis(400),
    });
    sim.inject_on(c, Fault::Reset);
    r.wait_recoveries(2);

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject(Fault::Http503 { count: 2 });
    sim.inject_on(c, Fault::Close { code: 1013 });
    clean.push(c);
    r.wait_recoveries(3);

    let c = the_conn(&sim, n);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(c, Fault::DropNext { count: 7 });
    wait_withheld(&sim, c, 7);
    sim.inject_on(c, Fault::UnknownMessage);
    sim.inject_on(c, Fault::PingFlood { count: 50 });
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(c, Fault::Oversized { bytes: 2 << 20 });
    r.wait_recoveries(4);
    r.probe.wait_more_ticks(SOME);

    let st = r.stop();
    let report = check_feed(
        &st,
        0,
        &sim.sent(),
        &Promise {
            clean,
            ..Promise::default()
        },
    );
    assert_outages(
        &report,
        &[&is_close(1001), &is_reset, &is_close(1013), &|r| {
            *r == DisconnectReason::TooLarge
        }],
    );
}

#[test]
fn usdm_route_split_feeds_keep_every_invariant() {
    const USDM: &[&str] = &[
        "btcusdt@bookTicker",
        "btcusdt@depth@100ms",
        "btcusdt@aggTrade",
        "btcusdt@markPrice@1s",
        "ethusdt@markPrice@1s",
    ];
    let sim = chaos_sim(true, |_| {});
    let r = run(
        "usdm",
        vec![feed("usdm", "binance-usdm", &sim, USDM)],
        fast_reconnect(),
    );
    let public = wait_live(&sim, Some("/public/stream"), 2, 1)[0];
    let market = wait_live(&sim, Some("/market/stream"), 3, 1)[0];
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(market, Fault::Reset);
    r.probe.wait("market recovers", |s| recoveries(s) >= 1);
    sim.inject_on(public, Fault::Close { code: 1001 });
    r.wait_recoveries(2);
    wait_live(&sim, Some("/public/stream"), 2, 1);
    wait_live(&sim, Some("/market/stream"), 3, 1);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    let sent = sim.sent();
    let names: Vec<&str> = st.universe.feeds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["usdm-public", "usdm-market"]);
    let public_report = check_feed(
        &st,
        0,
        &sent,
        &Promise {
            clean: vec![public],
            ..Promise::default()
        },
    );
    assert_outages(&public_report, &[&is_close(1001)]);
    let market_report = check_feed(&st, 1, &sent, &Promise::default());
    assert_outages(&market_report, &[&is_reset]);
    assert!(st
        .lines
        .iter()
        .any(|l| l.file == "binance-usdm/ETHUSDT/markPrice@1s.jsonl"));
}

// ----- 3. hot standby ---------------------------------------------------------------------------

/// Applies `faults` to one connection of a standby feed at a time, alternating between the
/// older and the newer, waiting for both to stream again before the next.
fn standby_rounds(r: &Run, sim: &Sim, streams: usize, faults: &[Fault]) {
    for (i, fault) in faults.iter().enumerate() {
        // The connection lost in the previous round is back and subscribed.
        r.probe.wait(&format!("{} connections up", 2 + i), |s| {
            count_health(s, |h| matches!(h, Health::Connected { .. })) >= 2 + i
        });
        r.wait_streaming(0, 2);
        let conns = wait_live(sim, None, streams, 2);
        r.probe.wait_more_ticks(SOME / 2);
        let target = conns[i % 2];
        sim.inject_on(target, fault.clone());
        r.probe
            .wait(&format!("connection lost after {fault:?}"), |s| {
                connections_lost(s) > i
            });
    }
    r.probe.wait("the last one back", |s| {
        count_health(s, |h| matches!(h, Health::Connected { .. })) >= 2 + faults.len()
    });
    wait_live(sim, None, streams, 2);
    r.probe.wait_more_ticks(SOME);
}

fn assert_standby_lossless(st: &Stopped, sim: &Sim, lost: usize) {
    let report = check_feed(
        st,
        0,
        &sim.sent(),
        &Promise {
            lossless_feed: true,
            ..Promise::default()
        },
    );
    assert!(
        report.outages.is_empty() && report.jumps.is_empty(),
        "{report:?}"
    );
    let fs = &st.summary.feeds[0];
    assert!(fs.standby && fs.duplicates > 0, "{}", st.summary);
    assert_eq!((fs.reconnects, fs.missed_ids), (0, 0), "{}", st.summary);
    let h = st.health();
    assert!(
        !h.iter()
            .any(|h| matches!(h, Health::Disconnected { .. } | Health::Recovered { .. })),
        "no outage with a standby: {h:?}"
    );
    assert_eq!(connections_lost(&st.seen), lost, "{h:?}");
    let conns = st.manifest["feeds"][0]["connections"]
        .as_array()
        .expect("connections[]");
    let roles: Vec<&str> = conns.iter().filter_map(|c| c["role"].as_str()).collect();
    assert_eq!(roles, ["primary", "standby"], "{conns:?}");
    assert!(st.manifest["feeds"][0]["standby_url"].is_string());
}

#[test]
fn standby_loses_nothing_when_one_connection_at_a_time_fails() {
    let sim = chaos_sim(false, |_| {});
    let r = run(
        "standby",
        vec![standby(spot("spot", &sim, MIXED))],
        fast_reconnect(),
    );
    let stall = Fault::Stall {
        duration: Duration::from_millis(1000),
    };
    let faults = [
        Fault::Close { code: 1001 },
        Fault::Reset,
        stall.clone(),
        Fault::Reset,
        Fault::Close { code: 1000 },
        stall,
    ];
    standby_rounds(&r, &sim, MIXED.len(), &faults);
    let st = r.stop();
    assert_standby_lossless(&st, &sim, faults.len());
}

#[test]
fn standby_rotating_before_the_venue_age_cut_loses_nothing() {
    let sim = chaos_sim(false, |c| {
        c.max_conn_age = Some(Duration::from_millis(4000))
    });
    // Above the engine's 1 s rotation retry, so both connections take turns.
    let reconnect = ReconnectConfig {
        max_connection_age_ms: 1500,
        ..fast_reconnect()
    };
    let r = run(
        "standby-rotation",
        vec![standby(spot("spot", &sim, MIXED))],
        reconnect,
    );
    eventually("three rotations", || {
        r.engine.stats()[0].rotations.load(Ordering::Relaxed) >= 3
    });
    r.wait_streaming(0, 2);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    assert_standby_lossless(&st, &sim, 0);
    assert_eq!(sim.snapshot().age_closes, 0, "the venue never had to cut");
}

/// A TCP relay in front of the simulator that delays everything the simulator sends (a
/// connection on a slower path): the n-th connection it relays by `lags[n]` (the last entry for
/// every later one), and it connects upstream only after `hold` (so the simulator numbers a
/// relayed connection after a direct one opened at the same time).
struct LagProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl LagProxy {
    fn start(upstream: u16, lags: &[Duration], hold: Duration) -> LagProxy {
        let lags = lags.to_vec();
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            let mut n = 0;
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let stop = stop2.clone();
                        let lag = lags[n.min(lags.len() - 1)];
                        n += 1;
                        thread::spawn(move || relay(client, upstream, lag, hold, stop));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        LagProxy { port, stop }
    }
}

impl Drop for LagProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(client: TcpStream, upstream: u16, lag: Duration, hold: Duration, stop: Arc<AtomicBool>) {
    thread::sleep(hold);
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    }
    // Pumps `from` into `to` (through `delay` when given) until EOF, an error or stop.
    let pump =
        |mut from: TcpStream, to: TcpStream, delay: Option<Duration>, stop: Arc<AtomicBool>| {
            let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Vec<u8>)>();
            let writer = thread::spawn(move || {
                let mut to = to;
                for (at, bytes) in rx {
                    if let Some(d) = delay {
                        thread::sleep((at + d).saturating_duration_since(Instant::now()));
                    }
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            });
            let mut buf = vec![0u8; 64 << 10];
            while !stop.load(Ordering::Relaxed) {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            drop(tx);
            let _ = writer.join();
        };
    let (c2, s2) = (client.try_clone(), server.try_clone());
    let (Ok(c2), Ok(s2)) = (c2, s2) else {
        return;
    };
    let stop2 = stop.clone();
    let up = thread::spawn(move || pump(c2, s2, None, stop2));
    pump(server, client, Some(lag), stop);
    let _ = up.join();
}

/// A standby that trails the primary (10 ms behind), and `DropNext` on one of them.
fn standby_with_a_hole(test: &str, on_primary: bool) -> (Stopped, Sim) {
    let sim = chaos_sim(false, |_| {});
    let proxy = LagProxy::start(
        sim.port(),
        &[Duration::from_millis(10)],
        Duration::from_millis(300),
    );
    let mut f = standby(spot("spot", &sim, MIXED));
    f.standby_url = Some(format!("ws://127.0.0.1:{}", proxy.port));
    let r = run(test, vec![f], fast_reconnect());
    r.wait_streaming(0, 2);
    // The proxy connects upstream 300 ms late: the older connection is the direct primary.
    let conns = wait_live(&sim, None, MIXED.len(), 2);
    r.probe.wait_more_ticks(SOME);
    let target = if on_primary { conns[0] } else { conns[1] };
    // Ten messages of any kind: some quotes, trades and book updates.
    sim.inject_on(target, Fault::DropNext { count: 10 });
    wait_withheld(&sim, target, 10);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    drop(proxy);
    (st, sim)
}

#[test]
fn standby_hole_on_the_trailing_connection_is_invisible() {
    let (st, sim) = standby_with_a_hole("standby-hole-trailing", false);
    assert_standby_lossless(&st, &sim, 0);
}

/// With a hot standby a hole on one connection is not a loss: the other connection delivers
/// the same updates a moment later. Here the hole is on the connection that leads, so the
/// updates after the hole arrive before the other connection's copies of the missing ones.
#[test]
fn standby_fills_a_hole_on_the_leading_connection() {
    let (st, sim) = standby_with_a_hole("standby-hole-leading", true);
    assert_standby_lossless(&st, &sim, 0);
}

/// With a hot standby, the connection that comes back after a fault starts mid-stream while
/// the other one may still be delivering older updates (here it is 10 ms behind): those
/// updates are not duplicates and must not be dropped.
#[test]
fn standby_rejoining_ahead_of_a_lagging_primary_loses_nothing() {
    // Trades every 2 ms: the rejoining connection is several trades ahead.
    let sim = chaos_sim(false, |c| c.trade_interval = Duration::from_millis(2));
    // The primary goes through the slow path; the standby connects directly. The relay
    // connects upstream 300 ms late, so the simulator numbers the standby first.
    let proxy = LagProxy::start(
        sim.port(),
        &[Duration::from_millis(10)],
        Duration::from_millis(300),
    );
    let mut f = standby(spot("spot", &sim, MIXED));
    f.url = Some(format!("ws://127.0.0.1:{}", proxy.port));
    f.standby_url = Some(sim.base_url());
    let r = run("standby-rejoin", vec![f], fast_reconnect());
    r.wait_streaming(0, 2);
    let conns = wait_live(&sim, None, MIXED.len(), 2);
    r.probe.wait_more_ticks(SOME);
    sim.inject_on(conns[0], Fault::Reset);
    r.probe.wait("standby lost", |s| connections_lost(s) == 1);
    r.probe.wait("standby back", |s| {
        count_health(s, |h| matches!(h, Health::Connected { .. })) >= 3
    });
    wait_live(&sim, None, MIXED.len(), 2);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();
    drop(proxy);
    assert_standby_lossless(&st, &sim, 1);
}

// ----- 4. the manifest --------------------------------------------------------------------------

#[test]
fn manifest_agrees_with_summary_and_files_across_feeds() {
    let sim_a = chaos_sim(false, |_| {});
    let sim_b = chaos_sim(false, |_| {});
    let r = run(
        "manifest",
        vec![
            spot("a", &sim_a, &["btcusdt@bookTicker", "btcusdt@aggTrade"]),
            spot("b", &sim_b, &["btcusdt@bookTicker", "ethusdt@depth@100ms"]),
        ],
        fast_reconnect(),
    );
    let a = the_conn(&sim_a, 2);
    let b = the_conn(&sim_b, 2);
    r.probe.wait_more_ticks(SOME);
    sim_a.inject_on(a, Fault::Reset);
    sim_b.inject_on(b, Fault::Close { code: 1001 });
    r.wait_recoveries(2);
    r.wait_streaming(0, 1);
    r.wait_streaming(1, 1);
    r.probe.wait_more_ticks(SOME);
    let st = r.stop();

    // Two feeds share binance-spot/BTCUSDT/bookTicker: each gets its own file.
    let mut files: Vec<&str> = st.lines.iter().map(|l| l.file.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    assert_eq!(
        files,
        [
            "binance-spot/BTCUSDT/aggTrade.jsonl",
            "binance-spot/BTCUSDT/bookTicker.a.jsonl",
            "binance-spot/BTCUSDT/bookTicker.b.jsonl",
            "binance-spot/ETHUSDT/depth@100ms.jsonl",
        ]
    );
    let report_a = check_feed(&st, 0, &sim_a.sent(), &Promise::default());
    assert_outages(&report_a, &[&is_reset]);
    let report_b = check_feed(
        &st,
        1,
        &sim_b.sent(),
        &Promise {
            clean: vec![b],
            ..Promise::default()
        },
    );
    assert_outages(&report_b, &[&is_close(1001)]);
    let m = &st.manifest;
    for i in 0..2 {
        assert_eq!(m["feeds"][i]["standby_url"], Value::Null);
        assert_eq!(
            m["feeds"][i]["connections"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(m["feeds"][i]["state"].as_str(), Some("stopped"));
    }
    let total: u64 = st
        .summary
        .feeds
        .iter()
        .map(|f| f.messages - f.duplicates)
        .sum();
    assert_eq!(
        st.summary.capture.as_ref().map(|c| c.lines),
        Some(total),
        "capture lines = messages the strategy was given"
    );
    assert!(
        m["config"]["capture"]["dir"].is_string(),
        "the effective config is in the manifest"
    );
    assert!(report_a.captured.values().all(|n| *n > 0));
}
