//! Capture: every new data message as JSONL, and the session manifest, written by one thread
//! that is never a feed thread.
//!
//! Layout of a session `<dir>/<session_id>/`:
//!
//! ```text
//!   session_manifest.json                 rewritten atomically (temp file + rename)
//!   <venue>/<SYMBOL>/<channel>.jsonl      {"recv_ns":…,"conn":…,"n":…[,"again":true],"msg":<the venue's message>}
//!                                         (a binary frame: …,"bin":"<its base64>"})
//!   health.jsonl                          {"n":…,"feed":…,"ticks":…,"at_ns":…,"unix_ns":…,"event":…}
//!   snapshots.jsonl                       {"n":…,"feed":…,"stream":…,"ticks":…,"recv_ns":…,"unix_ns":…,"snapshot":…}
//! ```
//!
//! Format 2 (the manifest's `format`; a manifest without one is format 1) adds, for
//! `wsfeed replay`: `n`, the order in which the capture thread received every message and
//! health event (one counter over the session, so the files merge back into that order); the
//! feeds' health events in `health.jsonl`, each with `ticks`, how many ticks its feed had handed
//! to the strategy before it (its place among the ticks); the Binance REST depth snapshots
//! books were built from, in `snapshots.jsonl`, placed the same way; the monotonic clock's anchor
//! (`clock_anchor_unix_ns`: a line's `recv_ns` minus it is the tick's `recv_ns`), and each
//! feed's `symbol_ids` and `rest_books`; and the updates a book was given again after a resync
//! (the capture held them once already), marked `"again":true` (the audit passes them over). Readers of format 1 skip what they do not know.
//!
//! Feeds hand over the frame buffer they read (no copy) on a bounded channel. A message is
//! captured once: the copy a hot standby delivers second is dropped before it gets here, so the
//! capture holds exactly what the strategy was given. Files are flushed at least every
//! [`FLUSH_EVERY`], synced on close; the manifest is rewritten every [`MANIFEST_EVERY`] and at
//! the end, marked `"complete": true` only then.
//!
//! Reading a session back ([`read_manifest`], [`stream_file`], [`parse_line`],
//! [`captured_payload`]) is beside the writing, in `capture/read.rs`: `wsfeed audit`, `replay`
//! and `report` all read sessions this way.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;
use log::{error, info, warn};
use serde_json::{json, Value};

mod read;

use self::read::file_name;
pub use self::read::{captured_payload, parse_line, read_manifest, stream_file, Line, MANIFEST};
use crate::clock;
use crate::metrics::{spectrum, FeedStats, GapCause, GapRecord, StateChange};
use crate::raw::Raw;
use crate::rest::DepthSnapshot;
use crate::tick::{FeedId, HealthMsg, SymbolId};
use crate::venue::StreamDef;

/// Files are flushed at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The manifest is rewritten this often while the session runs.
pub const MANIFEST_EVERY: Duration = Duration::from_secs(2);
/// Messages the capture channel holds before a feed waits for the disk.
pub const CHANNEL_CAPACITY: usize = 65_536;

/// The capture format this build writes (the manifest's `format`).
pub const FORMAT: u64 = 2;
/// The health events' file in a session folder.
pub const HEALTH_FILE: &str = "health.jsonl";
/// The REST depth snapshots' file in a session folder.
pub const SNAPSHOTS_FILE: &str = "snapshots.jsonl";

/// What a feed hands to the capture thread.
#[derive(Debug)]
pub enum CaptureMsg {
    /// A new data message.
    Frame(CapturedFrame),
    /// A health event, at its place among the feed's ticks.
    Health(CapturedHealth),
    /// A REST depth snapshot a book is built from, at its place among the feed's ticks.
    Snapshot(Box<CapturedSnapshot>),
    /// A reload added a feed, with the next id: its files (and manifest entry) from now on.
    AddFeed(Box<CaptureFeed>),
    /// A reload removed feed `id` (its driver has stopped, every message it sent is before
    /// this): its files are flushed, synced and closed; its manifest entry stays, retired.
    RetireFeed(FeedId),
}

/// A REST depth snapshot as captured.
#[derive(Clone, Debug)]
pub struct CapturedSnapshot {
    /// Feed.
    pub feed: FeedId,
    /// Stream index within the feed.
    pub stream: u16,
    /// Monotonic ns it was handled at (its ticks' `recv_ns`).
    pub recv_ns: u64,
    /// Ticks its feed had handed to the strategy before it.
    pub ticks: u64,
    /// The snapshot.
    pub snapshot: DepthSnapshot,
}

/// A health event as captured.
#[derive(Clone, Copy, Debug)]
pub struct CapturedHealth {
    /// The event, as the strategy got it.
    pub msg: HealthMsg,
    /// Ticks its feed had handed to the strategy before it.
    pub ticks: u64,
}

/// One captured message, as a feed hands it over.
#[derive(Debug)]
pub struct CapturedFrame {
    /// Feed.
    pub feed: FeedId,
    /// Stream index within the feed.
    pub stream: u16,
    /// The feed's connection number that delivered it.
    pub conn: u32,
    /// Unix ns when the frame was read.
    pub recv_unix_ns: u64,
    /// The message exactly as received.
    pub frame: Raw,
    /// An update given to a book again after a resync, captured once before (or with an id
    /// at or below one captured before): written with `"again":true`.
    pub again: bool,
}

/// What the capture needs to know about one feed.
#[derive(Debug, Clone)]
pub struct CaptureFeed {
    /// Venue name (the first path level).
    pub venue: String,
    /// The feed's streams.
    pub streams: Vec<StreamDef>,
    /// Live counters, for the manifest.
    pub stats: Arc<FeedStats>,
    /// The interned symbol of each stream.
    pub symbols: Vec<SymbolId>,
    /// Its depth books are built from REST snapshots.
    pub rest_books: bool,
}

/// Totals of a finished capture.
#[derive(Debug, Clone, Default)]
pub struct CaptureTotals {
    /// The session folder.
    pub dir: PathBuf,
    /// Messages written (lines of the stream files).
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written.
    pub files: usize,
    /// Write errors (each logged).
    pub errors: u64,
}

/// A running capture thread.
#[derive(Debug)]
pub struct Capture {
    /// The session folder.
    pub dir: PathBuf,
    /// The session id.
    pub session_id: String,
    handle: JoinHandle<CaptureTotals>,
}

impl Capture {
    /// Creates the session folder under `root` and starts the thread. Feeds get clones of the
    /// returned sender; the capture ends (flushes, syncs, writes the final manifest) when the
    /// last clone is dropped and [`Capture::finish`] is called. `latency` is the strategy's
    /// tick latency (ns), whose percentile spectrum goes into the manifest.
    pub fn start(
        root: &Path,
        feeds: Vec<CaptureFeed>,
        config: Value,
        latency: Arc<Mutex<Histogram<u64>>>,
    ) -> io::Result<(Capture, Sender<CaptureMsg>)> {
        let started = clock::unix_ns();
        let (dir, session_id) = create_session_dir(root, started)?;
        let paths = file_paths(&dir, &feeds);
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let mut writer = Writer {
            dir: dir.clone(),
            session_id: session_id.clone(),
            started,
            config,
            feeds,
            latency,
            paths,
            files: HashMap::new(),
            side: [None, None],
            next_n: 0,
            totals: CaptureTotals {
                dir: dir.clone(),
                ..CaptureTotals::default()
            },
        };
        // The manifest exists from the start, so a crash leaves one behind.
        writer.write_manifest(None);
        let handle = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || writer.run(rx))?;
        info!("capturing to {}", dir.display());
        Ok((
            Capture {
                dir,
                session_id,
                handle,
            },
            tx,
        ))
    }

    /// Waits until every message is on disk and the final manifest is written. Call after
    /// every feed thread (every sender) is gone.
    pub fn finish(self) -> CaptureTotals {
        self.handle.join().unwrap_or_else(|_| {
            error!("the capture thread panicked");
            CaptureTotals::default()
        })
    }
}

/// `<root>/wsfeed_<YYYYMMDD>_<HHMMSS>`, with a suffix when that exists already.
fn create_session_dir(root: &Path, started: u64) -> io::Result<(PathBuf, String)> {
    fs::create_dir_all(root).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create capture dir {}: {e}", root.display()),
        )
    })?;
    let (y, mo, d, h, mi, s, _) = clock::utc_fields(started);
    let base = format!("wsfeed_{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}");
    for n in 1..1000 {
        let id = if n == 1 {
            base.clone()
        } else {
            format!("{base}_{n}")
        };
        let dir = root.join(&id);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, id)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create session dir {}: {e}", dir.display()),
                ))
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("too many sessions named {base} in {}", root.display()),
    ))
}

/// The file of each feed's stream: `<venue>/<SYMBOL>/<channel>.jsonl`. When two feeds carry
/// the same stream, each file gets the feed's name: `<channel>.<feed>.jsonl`.
fn file_paths(dir: &Path, feeds: &[CaptureFeed]) -> Vec<Vec<PathBuf>> {
    let key = |f: &CaptureFeed, s: &StreamDef| {
        (
            f.venue.clone(),
            s.symbol.clone(),
            s.channel_name().to_string(),
        )
    };
    let mut count: HashMap<(String, String, String), usize> = HashMap::new();
    for f in feeds {
        for s in &f.streams {
            *count.entry(key(f, s)).or_default() += 1;
        }
    }
    feeds
        .iter()
        .map(|f| {
            f.streams
                .iter()
                .map(|s| {
                    let k = key(f, s);
                    let feed = (count[&k] > 1).then_some(f.stats.name.as_str());
                    dir.join(&k.0).join(&k.1).join(file_name(&k.2, feed))
                })
                .collect()
        })
        .collect()
}

struct Writer {
    dir: PathBuf,
    session_id: String,
    started: u64,
    config: Value,
    feeds: Vec<CaptureFeed>,
    latency: Arc<Mutex<Histogram<u64>>>,
    paths: Vec<Vec<PathBuf>>,
    files: HashMap<(FeedId, u16), BufWriter<File>>,
    /// `health.jsonl` and `snapshots.jsonl`, each once its first line came.
    side: [Option<BufWriter<File>>; 2],
    /// The next message's place in the session (`n`).
    next_n: u64,
    totals: CaptureTotals,
}

impl Writer {
    fn run(mut self, rx: Receiver<CaptureMsg>) -> CaptureTotals {
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        let mut next_manifest = Instant::now() + MANIFEST_EVERY;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(CaptureMsg::Frame(msg)) => self.write(&msg),
                Ok(CaptureMsg::Health(h)) => self.write_health(&h),
                Ok(CaptureMsg::Snapshot(s)) => self.write_snapshot(&s),
                Ok(CaptureMsg::AddFeed(f)) => self.add_feed(*f),
                Ok(CaptureMsg::RetireFeed(id)) => self.retire_feed(id),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + FLUSH_EVERY;
            }
            if now >= next_manifest {
                self.write_manifest(None);
                next_manifest = now + MANIFEST_EVERY;
            }
        }
        self.flush();
        for file in self.side.iter().flatten() {
            if let Err(e) = file.get_ref().sync_all() {
                self.totals.errors += 1;
                error!("capture: cannot sync {}: {e}", self.dir.display());
            }
        }
        for (key, file) in &mut self.files {
            if let Err(e) = file.get_ref().sync_all() {
                self.totals.errors += 1;
                error!(
                    "capture: cannot sync {}: {e}",
                    self.paths[key.0 as usize][key.1 as usize].display()
                );
            }
        }
        self.totals.files = self.files.len();
        self.write_manifest(Some(clock::unix_ns()));
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.totals.clone()
    }

    /// A line's place in the session.
    fn take_n(&mut self) -> u64 {
        let n = self.next_n;
        self.next_n += 1;
        n
    }

    fn write_health(&mut self, h: &CapturedHealth) {
        let n = self.take_n();
        // `n` first, as in the stream files: readers find a line's place without parsing it.
        let text = format!(
            "{{\"n\":{n},\"feed\":{},\"ticks\":{},\"at_ns\":{},\"unix_ns\":{},\"event\":{}}}\n",
            h.msg.feed,
            h.ticks,
            h.msg.at_ns,
            clock::mono_to_unix_ns(h.msg.at_ns),
            serde_json::to_string(&h.msg.event).unwrap_or_default()
        );
        self.write_side(0, &text);
    }

    fn write_snapshot(&mut self, s: &CapturedSnapshot) {
        let n = self.take_n();
        let text = format!(
            "{{\"n\":{n},\"feed\":{},\"stream\":{},\"ticks\":{},\"recv_ns\":{},\"unix_ns\":{},\"snapshot\":{}}}\n",
            s.feed,
            s.stream,
            s.ticks,
            s.recv_ns,
            clock::mono_to_unix_ns(s.recv_ns),
            serde_json::to_string(&s.snapshot).unwrap_or_default()
        );
        self.write_side(1, &text);
    }

    /// Appends a line to `health.jsonl` (0) or `snapshots.jsonl` (1).
    fn write_side(&mut self, which: usize, text: &str) {
        let name = [HEALTH_FILE, SNAPSHOTS_FILE][which];
        if self.side[which].is_none() {
            match open_append(&self.dir.join(name)) {
                Ok(f) => self.side[which] = Some(BufWriter::new(f)),
                Err(e) => {
                    self.totals.errors += 1;
                    error!("capture: cannot open {name}: {e}");
                    return;
                }
            }
        }
        let Some(file) = self.side[which].as_mut() else {
            return;
        };
        match file.write_all(text.as_bytes()) {
            // `lines` counts messages (the stream files' lines); bytes count everything.
            Ok(()) => self.totals.bytes += text.len() as u64,
            Err(e) => {
                self.totals.errors += 1;
                error!("capture: cannot write {name}: {e}");
            }
        }
    }

    /// A reload's new feed: its files are named as at the start, with the feed's name added
    /// where another feed already writes that venue, symbol and channel.
    fn add_feed(&mut self, feed: CaptureFeed) {
        let taken: std::collections::HashSet<&PathBuf> = self.paths.iter().flatten().collect();
        let mut mine = file_paths(&self.dir, std::slice::from_ref(&feed)).remove(0);
        for (path, s) in mine.iter_mut().zip(&feed.streams) {
            if taken.contains(path) {
                path.set_file_name(file_name(s.channel_name(), Some(&feed.stats.name)));
            }
        }
        self.paths.push(mine);
        self.feeds.push(feed);
    }

    /// A reload removed feed `id`: its files flushed, synced and closed now.
    fn retire_feed(&mut self, id: FeedId) {
        let keys: Vec<(FeedId, u16)> = self.files.keys().filter(|k| k.0 == id).copied().collect();
        for key in keys {
            if let Some(mut file) = self.files.remove(&key) {
                let synced = file.flush().and_then(|()| file.get_ref().sync_all());
                if let Err(e) = synced {
                    self.totals.errors += 1;
                    error!("capture: closing a removed feed's file: {e}");
                }
            }
        }
        self.write_manifest(None);
    }

    fn write(&mut self, msg: &CapturedFrame) {
        let n = self.take_n();
        let key = (msg.feed, msg.stream);
        if !self.files.contains_key(&key) {
            let Some(path) = self
                .paths
                .get(msg.feed as usize)
                .and_then(|p| p.get(msg.stream as usize))
            else {
                self.totals.errors += 1;
                return;
            };
            match open_append(path) {
                Ok(f) => {
                    self.files
                        .insert(key, BufWriter::with_capacity(64 << 10, f));
                }
                Err(e) => {
                    self.totals.errors += 1;
                    if self.totals.errors == 1 || self.totals.errors.is_power_of_two() {
                        error!("capture: cannot open {}: {e}", path.display());
                    }
                    return;
                }
            }
        }
        let Some(file) = self.files.get_mut(&key) else {
            return;
        };
        let owned;
        let (field, text) = match &msg.frame {
            // JSONL is one object per line: whitespace line breaks in a message become spaces
            // (inside JSON strings they cannot occur unescaped).
            Raw::Text(t) if t.contains(['\n', '\r']) => {
                owned = t.replace(['\n', '\r'], " ");
                ("msg", owned.as_str())
            }
            Raw::Text(t) => ("msg", t.as_str()),
            // A binary frame is written as a JSON string of its base64.
            Raw::Binary(b) => {
                owned = format!("\"{}\"", BASE64.encode(b));
                ("bin", owned.as_str())
            }
        };
        let head = format!(
            "{{\"recv_ns\":{},\"conn\":{},\"n\":{n},{}\"{field}\":",
            msg.recv_unix_ns,
            msg.conn,
            if msg.again { "\"again\":true," } else { "" }
        );
        let result = file
            .write_all(head.as_bytes())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.write_all(b"}\n"));
        match result {
            Ok(()) => {
                self.totals.lines += 1;
                self.totals.bytes += (head.len() + text.len() + 2) as u64;
            }
            Err(e) => {
                self.totals.errors += 1;
                if self.totals.errors == 1 || self.totals.errors.is_power_of_two() {
                    error!(
                        "capture: write failed ({} errors so far): {e}",
                        self.totals.errors
                    );
                }
            }
        }
    }

    fn flush(&mut self) {
        for file in self
            .files
            .values_mut()
            .chain(self.side.iter_mut().flatten())
        {
            if let Err(e) = file.flush() {
                self.totals.errors += 1;
                warn!("capture: flush failed: {e}");
            }
        }
    }

    /// Writes the manifest to a temporary file and renames it over the old one.
    fn write_manifest(&mut self, ended: Option<u64>) {
        let manifest = self.manifest(ended);
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let result = serde_json::to_vec_pretty(&manifest)
            .map_err(io::Error::other)
            .and_then(|bytes| {
                let mut f = File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.write_all(b"\n")?;
                f.sync_all()
            })
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = result {
            self.totals.errors += 1;
            error!("capture: cannot write {}: {e}", path.display());
        }
    }

    fn manifest(&self, ended: Option<u64>) -> Value {
        let latency = self
            .latency
            .lock()
            .map(|h| (h.len(), spectrum(&h)))
            .unwrap_or_default();
        json!({
            "session_id": self.session_id,
            "format": FORMAT,
            "wsfeed_version": env!("CARGO_PKG_VERSION"),
            "clock_anchor_unix_ns": clock::mono_to_unix_ns(0),
            "started_unix_ns": self.started,
            "started_utc": clock::utc_string(self.started),
            "ended_unix_ns": ended,
            "ended_utc": ended.map(clock::utc_string),
            "complete": ended.is_some(),
            "config": self.config,
            "capture": {
                "lines": self.totals.lines,
                "bytes": self.totals.bytes,
                "files": self.files.len(),
                "errors": self.totals.errors,
            },
            "tick_latency_ns": {
                "count": latency.0,
                "percentiles": latency.1.iter().map(|(q, v)| json!({"q": q, "ns": v})).collect::<Vec<_>>(),
            },
            "feeds": self.feeds.iter().map(feed_manifest).collect::<Vec<_>>(),
        })
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn feed_manifest(f: &CaptureFeed) -> Value {
    let s = &f.stats;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    let gaps: Vec<Value> = s
        .gaps
        .lock()
        .map(|g| g.iter().map(|g| gap_manifest(g, &s.streams)).collect())
        .unwrap_or_default();
    let connections: Vec<Value> = s.slots[..s.slot_count()]
        .iter()
        .map(|slot| {
            json!({
                "role": slot.role().name(),
                "state": slot.state().name(),
                "conn": n(&slot.conn),
            })
        })
        .collect();
    let states: Vec<Value> = s
        .state_changes
        .lock()
        .map(|c| c.iter().map(state_manifest).collect())
        .unwrap_or_default();
    json!({
        "name": s.name,
        "venue": f.venue,
        "url": s.url,
        "standby_url": s.standby_url,
        "streams": s.streams,
        "symbol_ids": f.symbols.iter().map(|s| s.0).collect::<Vec<_>>(),
        "rest_books": f.rest_books,
        "state": s.state().name(),
        "retired_at_unix_ms": s.is_retired().then(|| n(&s.retired_at_ms)),
        "failure": s.failure.lock().ok().and_then(|f| f.clone()),
        "messages": n(&s.messages),
        "ticks": n(&s.ticks),
        "dropped_ticks": n(&s.dropped),
        "duplicates": n(&s.duplicates),
        "superseded": n(&s.superseded),
        "parse_errors": n(&s.parse_errors),
        "unknown_frames": n(&s.unknown_frames),
        "attempts": n(&s.attempts),
        "throttled_attempts": n(&s.throttled),
        "disconnects": n(&s.disconnects),
        "total_reconnects": n(&s.reconnects),
        "circuit_breaker_trips": n(&s.circuit_trips),
        "rotations": n(&s.rotations),
        "stale_events": n(&s.stale_events),
        "rejected_streams": n(&s.rejected_streams),
        "missed_ids": n(&s.missed_ids),
        "book_resyncs": n(&s.book_resyncs),
        "crossed_quotes": n(&s.crossed_quotes),
        "capture_waits": n(&s.capture_waits),
        "connections": connections,
        "connection_states": states,
        "connection_states_dropped": n(&s.state_changes_dropped),
        "connection_gaps": gaps,
    })
}

fn state_manifest(c: &StateChange) -> Value {
    json!({
        "at_ns": c.at_unix_ns,
        "role": c.role.name(),
        "state": c.state.map_or("closed", |s| s.name()),
        "conn": c.conn,
    })
}

fn gap_manifest(g: &GapRecord, streams: &[String]) -> Value {
    let (cause, reason) = match g.cause {
        GapCause::Outage(r) => ("outage", r.to_string()),
        GapCause::SequenceJump => ("sequence_jump", g.cause.to_string()),
    };
    json!({
        "start_ns": g.start_unix_ns,
        "end_ns": g.end_unix_ns,
        "duration_ms": g.duration_ms,
        "reconnect_ms": g.reconnect_ms,
        "cause": cause,
        "reason": reason,
        "attempts": g.attempts,
        "missed": g.missed.iter().map(|m| json!({
            "stream": streams.get(m.stream as usize).cloned().unwrap_or_default(),
            "from_seq": m.from_seq,
            "to_seq": m.to_seq,
        })).collect::<Vec<_>>(),
    })
}
