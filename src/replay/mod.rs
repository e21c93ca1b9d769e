//! `wsfeed replay`: a captured session fed to a [`Strategy`] as the live run fed it.
//!
//! A format-2 session (see [`crate::capture`]) holds every delivered message in its stream's
//! file and every health event in `health.jsonl`, each line numbered `n` in the order the
//! capture thread received it. Replay merges the files back into that order and, per feed,
//! turns each message into ticks with the feed's own data path ([`crate::feed`]'s replay entry:
//! the same parsers, local books and tick construction), with the symbol ids the manifest
//! records and the monotonic receive times restored from the clock anchor. A health event
//! carries how many ticks its feed had handed over before it, so it goes to the strategy at
//! exactly that place among the ticks (an event raised while a message was being handled,
//! such as a book found crossed, waits for the message's earlier ticks); a recorded
//! `BookInvalid` also invalidates the replayed book, as it did the live one.
//!
//! Order across feeds is the capture's `n`. With `[engine] strategy = "inline"` every feed is
//! handled on one thread, so that is the order the strategy saw: the replay is exact. With the
//! strategy thread, `n` is the order the feeds produced their messages, and the strategy
//! thread's merge may have interleaved feeds differently by a few messages (and dropped ticks
//! on a full channel); replay says so when it starts. Binance depth books are rebuilt from the
//! captured REST snapshots (`snapshots.jsonl`), each handled at its recorded place as live.

mod strategies;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

pub use strategies::{by_name, Counter, NAMES};

use crate::capture::{self, HEALTH_FILE, SNAPSHOTS_FILE};
use crate::feed::replay::FeedReplay;
use crate::rest::DepthSnapshot;
use crate::strategy::{FeedInfo, Strategy, Universe};
use crate::tick::{FeedId, Health, SymbolId, Tick};
use crate::venue::defined;

/// How fast to replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Recorded time divided by this factor (1: as recorded).
    Times(f64),
    /// As fast as possible.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 && n <= 1e6 => Ok(Speed::Times(n)),
            _ => Err(format!(
                "'{s}' is not a speed: 1 (recorded time), N (N times faster, up to 1000000) or max"
            )),
        }
    }
}

/// A session opened for replay.
#[derive(Debug)]
pub struct Session {
    /// The session folder.
    pub dir: PathBuf,
    /// Feeds, streams and symbols as the live engine had them.
    pub universe: Universe,
    /// The manifest's config (`[arbitrage]` and the rest, defaults filled in).
    pub config: Value,
    /// What replay cannot reproduce exactly in this session, one sentence each.
    pub caveats: Vec<String>,
    /// Ticks each feed handed to the strategy live (the manifest's `ticks`).
    live_ticks: Vec<Option<u64>>,
    /// Whether each feed built depth books from REST snapshots.
    rest_books: Vec<bool>,
    /// Unix ns of the monotonic clock's zero in the live run.
    anchor_unix_ns: u64,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replayed {
    /// Captured messages read.
    pub messages: u64,
    /// Ticks given to the strategy.
    pub ticks: u64,
    /// Health events given to the strategy.
    pub health: u64,
    /// Captured lines that did not read (each skipped).
    pub bad_lines: u64,
    /// Where the replay and the live run differ (ticks per feed, events out of place).
    pub mismatches: Vec<String>,
    /// Wall-clock time the replay took.
    pub elapsed: Duration,
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "replayed {} messages → {} ticks and {} health events in {:.3} s ({:.0} msgs/s){}",
            self.messages,
            self.ticks,
            self.health,
            secs,
            self.messages as f64 / secs,
            if self.bad_lines > 0 {
                format!(", {} unreadable lines skipped", self.bad_lines)
            } else {
                String::new()
            }
        )?;
        for m in &self.mismatches {
            write!(f, "\nmismatch: {m}")?;
        }
        Ok(())
    }
}

impl Session {
    /// Reads the session in `dir`: an error names the folder or file and what is wrong.
    pub fn open(dir: &Path) -> Result<Session, String> {
        let manifest = capture::read_manifest(dir)?;
        let at = dir.join(capture::MANIFEST);
        let format = manifest["format"].as_u64().unwrap_or(1);
        if format < 2 {
            return Err(format!(
                "{}: capture format {format} has no health events or order; replay needs format 2 (a session captured by wsfeed {} or later)",
                at.display(),
                env!("CARGO_PKG_VERSION")
            ));
        }
        let anchor_unix_ns = manifest["clock_anchor_unix_ns"]
            .as_u64()
            .ok_or_else(|| format!("{}: no clock_anchor_unix_ns", at.display()))?;
        let defined = defined::in_config(&manifest["config"])
            .map_err(|e| format!("{}: {e}", at.display()))?;
        let mut universe = Universe::default();
        let mut caveats = Vec::new();
        let mut live_ticks = Vec::new();
        let mut rest_books = Vec::new();
        for (i, f) in manifest["feeds"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = f["name"].as_str().unwrap_or_default();
            let bad = |what: String| format!("{}: feed {i} ('{name}'): {what}", at.display());
            let venue_name = f["venue"].as_str().unwrap_or_default();
            let venue = defined::find(&defined, venue_name)
                .ok_or_else(|| bad(format!("unknown venue '{venue_name}'")))?;
            let names: Vec<&str> = f["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let ids: Vec<u64> = f["symbol_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            if ids.len() != names.len() {
                return Err(bad(format!(
                    "{} streams but {} symbol_ids",
                    names.len(),
                    ids.len()
                )));
            }
            let mut streams = Vec::new();
            for (stream, &id) in names.iter().zip(&ids) {
                let def = venue.parse_stream(stream).map_err(&bad)?;
                let id = usize::try_from(id)
                    .ok()
                    .filter(|&id| id < usize::from(u16::MAX));
                let id = id.ok_or_else(|| bad(format!("stream {stream}: bad symbol id")))?;
                if universe.symbols.len() <= id {
                    universe.symbols.resize(id + 1, String::new());
                }
                universe.symbols[id] = venue.instrument(&def.symbol);
                streams.push(def);
            }
            let dropped = f["dropped_ticks"].as_u64().unwrap_or(0);
            if dropped > 0 {
                caveats.push(format!(
                    "feed '{name}': {dropped} ticks were dropped on the full strategy channel live; replay gives them"
                ));
            }
            live_ticks.push(f["ticks"].as_u64());
            rest_books.push(f["rest_books"].as_bool().unwrap_or(false));
            universe.feeds.push(FeedInfo {
                name: name.to_string(),
                venue,
                url: f["url"].as_str().unwrap_or_default().to_string(),
                streams,
            });
        }
        let config = manifest["config"].clone();
        if config["engine"]["strategy"].as_str() != Some("inline") && universe.feeds.len() > 1 {
            caveats.push(
                "the strategy ran on its own thread: each feed's order is exact, the order across feeds is the order they produced messages, which the strategy thread may have merged a little differently".into(),
            );
        }
        if manifest["complete"] != Value::Bool(true) {
            caveats.push("the session did not end cleanly (its manifest is not complete)".into());
        }
        Ok(Session {
            dir: dir.to_path_buf(),
            universe,
            config,
            caveats,
            live_ticks,
            rest_books,
            anchor_unix_ns,
        })
    }

    /// Feeds the session to `strategy` (calling [`Strategy::on_start`] first) at `speed`.
    pub fn run(&self, strategy: &mut dyn Strategy, speed: Speed) -> Result<Replayed, String> {
        let started = Instant::now();
        let mut sources = self.sources()?;
        let mut feeds: Vec<FeedState> = self
            .universe
            .feeds
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let symbols: Vec<SymbolId> = f
                    .streams
                    .iter()
                    .map(|d| {
                        let name = f.venue.instrument(&d.symbol);
                        let id = self.universe.symbols.iter().position(|s| *s == name);
                        SymbolId(id.unwrap_or(0) as u16)
                    })
                    .collect();
                FeedState {
                    replay: FeedReplay::new(
                        i as FeedId,
                        &f.name,
                        f.venue,
                        (&f.streams, &symbols),
                        self.rest_books[i],
                    ),
                    ticks: 0,
                    pending: VecDeque::new(),
                }
            })
            .collect();
        strategy.on_start(&self.universe);
        let mut out = Replayed::default();
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(n) = s.advance(&mut out.bad_lines)? {
                heap.push(Reverse((n, i)));
            }
        }
        let mut clock = Pacer::new(speed);
        let mut ticks = Vec::with_capacity(64);
        while let Some(Reverse((_, i))) = heap.pop() {
            let src = &mut sources[i];
            match src.kind {
                Kind::Health => {
                    let h: HealthLine = self.side_line(HEALTH_FILE, &src.line)?;
                    clock.wait(h.unix_ns);
                    let f = feed_of(&mut feeds, h.feed, HEALTH_FILE)?;
                    f.pending.push_back(h);
                    f.release(strategy, &mut out);
                }
                Kind::Stream { feed, stream } => {
                    clock.wait(src.recv_ns);
                    out.messages += 1;
                    let recv_ns = src.recv_ns.saturating_sub(self.anchor_unix_ns);
                    let f = &mut feeds[feed];
                    ticks.clear();
                    let msg = &src.line[src.msg.clone()];
                    match f.replay.frame(stream, msg, src.binary, recv_ns) {
                        Ok(t) => ticks.extend_from_slice(t),
                        Err(_) => out.bad_lines += 1,
                    }
                    f.give(&ticks, strategy, &mut out);
                }
                Kind::Snapshot => {
                    let s: SnapshotLine = self.side_line(SNAPSHOTS_FILE, &src.line)?;
                    clock.wait(s.unix_ns);
                    let f = feed_of(&mut feeds, s.feed, SNAPSHOTS_FILE)?;
                    // Events before it in the feed's order go first; so does the check that
                    // the live feed had given as many ticks by then.
                    f.release(strategy, &mut out);
                    if s.ticks != f.ticks {
                        out.mismatches.push(format!(
                            "feed {}: a REST snapshot recorded after {} ticks came after {}",
                            s.feed, s.ticks, f.ticks
                        ));
                    }
                    ticks.clear();
                    ticks.extend_from_slice(f.replay.snapshot(
                        usize::from(s.stream),
                        s.snapshot,
                        s.recv_ns,
                    ));
                    f.give(&ticks, strategy, &mut out);
                }
            }
            if let Some(n) = sources[i].advance(&mut out.bad_lines)? {
                heap.push(Reverse((n, i)));
            }
        }
        for (i, f) in feeds.iter_mut().enumerate() {
            let name = &self.universe.feeds[i].name;
            if !f.pending.is_empty() {
                out.mismatches.push(format!(
                    "feed '{name}': {} health events recorded after more ticks than the replay gave",
                    f.pending.len()
                ));
                for h in std::mem::take(&mut f.pending) {
                    strategy.on_health(h.feed, h.at_ns, &h.event);
                    out.health += 1;
                }
            }
            if let Some(live) = self.live_ticks[i].filter(|&n| n != f.ticks) {
                out.mismatches.push(format!(
                    "feed '{name}': {} ticks replayed, {live} live",
                    f.ticks
                ));
            }
        }
        out.elapsed = started.elapsed();
        Ok(out)
    }

    /// A line of `health.jsonl` or `snapshots.jsonl` (`file`).
    fn side_line<T: serde::de::DeserializeOwned>(
        &self,
        file: &str,
        line: &str,
    ) -> Result<T, String> {
        serde_json::from_str(line).map_err(|e| format!("{}: {e}", self.dir.join(file).display()))
    }

    /// Every stream file and the health file, each read from its first line.
    fn sources(&self) -> Result<Vec<Source>, String> {
        let mut out = Vec::new();
        for (feed, f) in self.universe.feeds.iter().enumerate() {
            for (stream, def) in f.streams.iter().enumerate() {
                let path = capture::stream_file(&self.dir, f.venue.name(), &f.name, def);
                if let Some(s) = Source::open(path, Kind::Stream { feed, stream })? {
                    out.push(s);
                }
            }
        }
        out.extend(Source::open(self.dir.join(HEALTH_FILE), Kind::Health)?);
        out.extend(Source::open(self.dir.join(SNAPSHOTS_FILE), Kind::Snapshot)?);
        Ok(out)
    }
}

/// One line of `health.jsonl`.
#[derive(Debug, Deserialize)]
struct HealthLine {
    feed: FeedId,
    ticks: u64,
    at_ns: u64,
    unix_ns: u64,
    event: Health,
}

/// The feed a line of `file` names.
fn feed_of<'a>(
    feeds: &'a mut [FeedState],
    feed: FeedId,
    file: &str,
) -> Result<&'a mut FeedState, String> {
    feeds
        .get_mut(usize::from(feed))
        .ok_or_else(|| format!("{file}: a line of feed {feed}, which the manifest lacks"))
}

/// One line of `snapshots.jsonl`.
#[derive(Debug, Deserialize)]
struct SnapshotLine {
    feed: FeedId,
    stream: u16,
    ticks: u64,
    recv_ns: u64,
    unix_ns: u64,
    snapshot: DepthSnapshot,
}

/// A feed being replayed: its data path, the ticks it gave, and health events waiting for
/// their place.
#[derive(Debug)]
struct FeedState {
    replay: FeedReplay,
    ticks: u64,
    pending: VecDeque<HealthLine>,
}

impl FeedState {
    /// Gives the waiting events whose place is at or before `ticks` ticks.
    fn release_before(&mut self, ticks: u64, strategy: &mut dyn Strategy, out: &mut Replayed) {
        while self.pending.front().is_some_and(|h| h.ticks <= ticks) {
            if let Some(h) = self.pending.pop_front() {
                if h.ticks < ticks {
                    out.mismatches.push(format!(
                        "feed {}: a {:?} event recorded after {} ticks came after {ticks}",
                        h.feed, h.event, h.ticks
                    ));
                }
                self.replay.health(&h.event);
                strategy.on_health(h.feed, h.at_ns, &h.event);
                out.health += 1;
            }
        }
    }

    /// Gives a message's ticks, each after the waiting events placed before it, then the
    /// events placed after the last.
    fn give(&mut self, ticks: &[Tick], strategy: &mut dyn Strategy, out: &mut Replayed) {
        for t in ticks {
            self.release(strategy, out);
            strategy.on_tick(t);
            self.ticks += 1;
            out.ticks += 1;
        }
        self.release(strategy, out);
    }

    /// Gives the waiting events whose place has been reached.
    fn release(&mut self, strategy: &mut dyn Strategy, out: &mut Replayed) {
        self.release_before(self.ticks, strategy, out);
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Stream { feed: usize, stream: usize },
    Health,
    Snapshot,
}

/// A capture file read line by line.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    reader: BufReader<File>,
    line: String,
    kind: Kind,
    /// A stream line's receive time (Unix ns), where its message is in `line`, and whether
    /// that is a binary frame's base64.
    recv_ns: u64,
    msg: std::ops::Range<usize>,
    binary: bool,
}

impl Source {
    /// `None` when the file does not exist (a stream that never delivered has none).
    fn open(path: PathBuf, kind: Kind) -> Result<Option<Source>, String> {
        match File::open(&path) {
            Ok(f) => Ok(Some(Source {
                path,
                reader: BufReader::with_capacity(256 << 10, f),
                line: String::new(),
                kind,
                recv_ns: 0,
                msg: 0..0,
                binary: false,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Reads the next line with a place (`n`); `None` at the end of the file.
    fn advance(&mut self, bad: &mut u64) -> Result<Option<u64>, String> {
        loop {
            self.line.clear();
            let read = self
                .reader
                .read_line(&mut self.line)
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
            if read == 0 {
                return Ok(None);
            }
            let n = match self.kind {
                Kind::Stream { .. } => capture::parse_line(&self.line).and_then(|l| {
                    let start = l.msg.as_ptr() as usize - self.line.as_ptr() as usize;
                    self.recv_ns = l.recv_ns;
                    self.msg = start..start + l.msg.len();
                    self.binary = l.binary;
                    l.n
                }),
                Kind::Health | Kind::Snapshot => line_n(&self.line),
            };
            match n {
                Some(n) => return Ok(Some(n)),
                None if self.line.trim().is_empty() => {}
                None => *bad += 1,
            }
        }
    }
}

/// The `n` of a capture or health line.
fn line_n(line: &str) -> Option<u64> {
    if let Some(l) = capture::parse_line(line) {
        return l.n;
    }
    let rest = line.strip_prefix("{\"n\":")?;
    rest[..rest.find(',')?].parse().ok()
}

/// Waits until an item recorded at Unix ns `t` is due at the replay's speed.
#[derive(Debug)]
struct Pacer {
    speed: Speed,
    start: Option<(Instant, u64)>,
}

impl Pacer {
    fn new(speed: Speed) -> Pacer {
        Pacer { speed, start: None }
    }

    fn wait(&mut self, t: u64) {
        let Speed::Times(factor) = self.speed else {
            return;
        };
        let (start, t0) = *self.start.get_or_insert((Instant::now(), t));
        let due = start + Duration::from_secs_f64(t.saturating_sub(t0) as f64 / 1e9 / factor);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_read_and_bad_ones_say_what_is_allowed() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("1".parse::<Speed>(), Ok(Speed::Times(1.0)));
        assert_eq!("20".parse::<Speed>(), Ok(Speed::Times(20.0)));
        for bad in ["0", "-2", "fast", "", "inf", "NaN"] {
            let e = bad.parse::<Speed>().unwrap_err();
            assert!(e.contains("not a speed") && e.contains("max"), "{bad}: {e}");
        }
    }

    #[test]
    fn lines_of_both_formats_read_and_give_their_place() {
        let v2 = "{\"recv_ns\":12,\"conn\":3,\"n\":7,\"msg\":{\"a\":1}}\n";
        let l = capture::parse_line(v2).unwrap();
        assert_eq!(
            (l.recv_ns, l.conn, l.n, l.msg),
            (12, 3, Some(7), "{\"a\":1}")
        );
        assert!(!l.again);
        let again = "{\"recv_ns\":12,\"conn\":3,\"n\":8,\"again\":true,\"msg\":{}}";
        let l = capture::parse_line(again).unwrap();
        assert_eq!((l.n, l.again, l.msg), (Some(8), true, "{}"));
        assert_eq!(line_n(again), Some(8));
        let v1 = "{\"recv_ns\":12,\"conn\":3,\"msg\":{\"a\":1}}";
        assert_eq!(capture::parse_line(v1).unwrap().n, None);
        assert_eq!(line_n(v2), Some(7));
        assert_eq!(line_n("{\"n\":41,\"feed\":0}"), Some(41));
        assert_eq!(line_n("garbage"), None);
        assert_eq!(
            capture::parse_line("{\"recv_ns\":x,\"conn\":3,\"msg\":{}}"),
            None
        );
    }
}
