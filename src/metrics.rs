//! Counters and histograms, kept while the engine runs (the end-of-run report is
//! [`crate::summary`]).
//!
//! Feed threads update their own [`FeedStats`] with relaxed atomics (one writer each; readers
//! are the status line and the summary). Histograms are recorded on reconnect (cold path) under
//! a mutex, and the strategy thread keeps its own tick-latency histogram, merged into the shared
//! one every few hundred milliseconds, so nothing on the hot path takes a lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::tick::DisconnectReason;

/// The reconnect target every reconnect is measured against.
pub const RECONNECT_TARGET: Duration = Duration::from_secs(5);

/// A histogram of microseconds up to one hour, 3 significant digits.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// A histogram of nanoseconds up to one minute, 3 significant digits.
pub fn nanos_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid")
}

/// The session state machine's states, as published for status lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FeedState {
    /// TCP connect in progress.
    Connecting = 0,
    /// TLS and WebSocket upgrade in progress.
    Handshaking = 1,
    /// Connected, waiting for subscription acks.
    Subscribing = 2,
    /// Data flowing.
    Streaming = 3,
    /// Waiting before the next attempt.
    Backoff = 4,
    /// Breaker open: waiting the cooldown.
    CircuitOpen = 5,
    /// Stopped for good on a permanent error.
    Failed = 6,
    /// Thread ended (shutdown).
    Stopped = 7,
}

impl FeedState {
    fn from_u8(v: u8) -> FeedState {
        match v {
            0 => FeedState::Connecting,
            1 => FeedState::Handshaking,
            2 => FeedState::Subscribing,
            3 => FeedState::Streaming,
            4 => FeedState::Backoff,
            5 => FeedState::CircuitOpen,
            6 => FeedState::Failed,
            _ => FeedState::Stopped,
        }
    }

    /// Short name for status lines.
    pub fn name(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Handshaking => "handshaking",
            FeedState::Subscribing => "subscribing",
            FeedState::Streaming => "streaming",
            FeedState::Backoff => "backoff",
            FeedState::CircuitOpen => "circuit-open",
            FeedState::Failed => "FAILED",
            FeedState::Stopped => "stopped",
        }
    }
}

/// Why a gap record exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapCause {
    /// No connection carried the feed: from the last data before the loss to the first after.
    Outage(DisconnectReason),
    /// A live connection skipped updates (the venue's numbering jumped); the interval is the
    /// instant it was seen.
    SequenceJump,
}

impl fmt::Display for GapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapCause::Outage(reason) => reason.fmt(f),
            GapCause::SequenceJump => f.write_str("sequence jump on a live connection"),
        }
    }
}

/// Updates of one stream that never arrived: ids `from_seq..=to_seq` in the venue's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missed {
    /// Stream index within the feed.
    pub stream: u16,
    /// First missed id.
    pub from_seq: u64,
    /// Last missed id.
    pub to_seq: u64,
}

impl Missed {
    /// How many ids the range holds.
    pub fn ids(&self) -> u64 {
        self.to_seq - self.from_seq + 1
    }
}

/// One gap: an outage (from losing the last live connection to the first data on the next) or
/// a sequence jump on a live connection.
#[derive(Clone, Debug, PartialEq)]
pub struct GapRecord {
    /// Unix ns of the last data message before the loss (or of the loss, if none came).
    pub start_unix_ns: u64,
    /// Unix ns of the first data message after it.
    pub end_unix_ns: u64,
    /// `end - start`, ms.
    pub duration_ms: u64,
    /// Detection of the loss → first data, ms (0 for a sequence jump).
    pub reconnect_ms: u64,
    /// Why.
    pub cause: GapCause,
    /// Connection attempts it took.
    pub attempts: u32,
    /// Updates the venue's numbering shows were missed, per stream. Filled in as each stream
    /// delivers its first message after the outage.
    pub missed: Vec<Missed>,
}

/// What a connection slot of a feed is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotRole {
    /// The feed's connection.
    Primary = 0,
    /// The hot standby: the same subscriptions, deduplicated against the primary.
    Standby = 1,
    /// A connection opened to replace one before it is cut (rotation).
    Replacement = 2,
}

impl SlotRole {
    /// Every role, in the order of their numbers.
    pub const ALL: [SlotRole; 3] = [SlotRole::Primary, SlotRole::Standby, SlotRole::Replacement];

    fn from_u8(v: u8) -> SlotRole {
        match v {
            1 => SlotRole::Standby,
            2 => SlotRole::Replacement,
            _ => SlotRole::Primary,
        }
    }

    /// Name for status lines and the manifest.
    pub fn name(self) -> &'static str {
        match self {
            SlotRole::Primary => "primary",
            SlotRole::Standby => "standby",
            SlotRole::Replacement => "replacement",
        }
    }
}

/// A change of what a feed's connections of one role are doing: the session manifest's
/// `connection_states`, from which `wsfeed report` draws each connection's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// Unix ns of the change.
    pub at_unix_ns: u64,
    /// The role whose state changed.
    pub role: SlotRole,
    /// The new state; `None` when no slot has this role any more (a rotation ended, a standby
    /// was given up).
    pub state: Option<FeedState>,
    /// The connection number the slot had then (the previous one while it reconnects; 0 before
    /// the first connection opened).
    pub conn: u32,
}

/// Most state changes a feed keeps for the manifest (16 bytes each); later ones are counted in
/// [`FeedStats::state_changes_dropped`], not kept.
pub const MAX_STATE_CHANGES: usize = 20_000;

/// Live view of one connection slot (a feed has one, or two with a standby or mid-rotation).
#[derive(Debug)]
pub struct SlotStats {
    role: AtomicU8,
    state: AtomicU8,
    /// The feed's number of the slot's current connection (0 before the first).
    pub conn: AtomicU64,
}

impl SlotStats {
    fn new() -> Self {
        SlotStats {
            role: AtomicU8::new(SlotRole::Primary as u8),
            state: AtomicU8::new(FeedState::Connecting as u8),
            conn: AtomicU64::new(0),
        }
    }

    /// Role.
    pub fn role(&self) -> SlotRole {
        SlotRole::from_u8(self.role.load(Relaxed))
    }

    /// State.
    pub fn state(&self) -> FeedState {
        FeedState::from_u8(self.state.load(Relaxed))
    }
}

/// Most connection slots a feed has at once: two live ones (primary and standby, or a
/// connection and its replacement) and one that failed for good.
pub const MAX_SLOTS: usize = 3;

/// Reconnect-time and gap histograms of one feed. They are made at the first loss: a feed
/// that never loses a connection holds none (each takes ~200 KB at three significant digits up
/// to an hour).
#[derive(Debug, Default)]
pub struct ReconnectHistograms {
    kept: Option<Box<Kept>>,
    /// Reconnects slower than [`RECONNECT_TARGET`].
    pub target_misses: u64,
}

#[derive(Debug)]
struct Kept {
    /// Silence before a loss was detected (last frame on the connection → detection), µs.
    detect_us: Histogram<u64>,
    /// Detection → first data on the new connection, µs.
    reconnect_us: Histogram<u64>,
    /// Last data before → first data after, µs.
    gap_us: Histogram<u64>,
}

impl ReconnectHistograms {
    /// Records how long a lost connection had been silent when the loss was detected.
    pub fn record_detection(&mut self, silent: Duration) {
        self.kept()
            .detect_us
            .saturating_record(silent.as_micros().max(1) as u64);
    }

    /// Records an outage that ended: its reconnect time (detection → first data) and its span
    /// (last data before → first data after), at full precision.
    pub fn record_outage(&mut self, reconnect: Duration, span: Duration) {
        let k = self.kept();
        k.reconnect_us
            .saturating_record(reconnect.as_micros().max(1) as u64);
        k.gap_us.saturating_record(span.as_micros().max(1) as u64);
        if reconnect > RECONNECT_TARGET {
            self.target_misses += 1;
        }
    }

    /// Moves everything `from` holds into this one, leaving `from` empty (its memory kept).
    pub fn take_from(&mut self, from: &mut ReconnectHistograms) {
        if let Some(f) = from.kept.as_deref_mut() {
            let k = self.kept();
            let _ = k.detect_us.add(&f.detect_us);
            let _ = k.reconnect_us.add(&f.reconnect_us);
            let _ = k.gap_us.add(&f.gap_us);
            f.detect_us.reset();
            f.reconnect_us.reset();
            f.gap_us.reset();
        }
        self.target_misses += std::mem::take(&mut from.target_misses);
    }

    fn kept(&mut self) -> &mut Kept {
        self.kept.get_or_insert_with(|| {
            Box::new(Kept {
                detect_us: micros_histogram(),
                reconnect_us: micros_histogram(),
                gap_us: micros_histogram(),
            })
        })
    }

    /// Detection → first data of each recovered outage, µs (none before the first loss).
    pub fn reconnect_us(&self) -> Option<&Histogram<u64>> {
        self.kept.as_ref().map(|k| &k.reconnect_us)
    }

    /// Last data before → first data after each recovered outage, µs.
    pub fn gap_us(&self) -> Option<&Histogram<u64>> {
        self.kept.as_ref().map(|k| &k.gap_us)
    }

    /// Adds this feed's detection, reconnect and gap times (µs) to `detect`, `reconnect`, `gap`.
    pub fn add_to(
        &self,
        detect: &mut Histogram<u64>,
        reconnect: &mut Histogram<u64>,
        gap: &mut Histogram<u64>,
    ) {
        if let Some(k) = &self.kept {
            let _ = detect.add(&k.detect_us);
            let _ = reconnect.add(&k.reconnect_us);
            let _ = gap.add(&k.gap_us);
        }
    }
}

/// Live counters of one feed.
#[derive(Debug)]
pub struct FeedStats {
    /// Feed name.
    pub name: String,
    /// URL it connects to.
    pub url: String,
    /// Venue name.
    pub venue: String,
    /// Stream names, by stream index.
    pub streams: Vec<String>,
    /// Standby URL, when the feed keeps a hot standby.
    pub standby_url: Option<String>,
    /// The process fails when every required feed has failed for good (and health needs it
    /// streaming).
    pub required: bool,
    state: AtomicU8,
    slot_count: AtomicU8,
    /// Connection slots.
    pub slots: [SlotStats; MAX_SLOTS],
    /// Data messages received.
    pub messages: AtomicU64,
    /// Ticks sent to the strategy.
    pub ticks: AtomicU64,
    /// Ticks dropped on a full channel.
    pub dropped: AtomicU64,
    /// Second copies of updates (from a standby or overlapping connection), dropped.
    pub duplicates: AtomicU64,
    /// Updates never seen but older than one already delivered (a lagging connection's copy of
    /// an update the leading one skipped), dropped.
    pub superseded: AtomicU64,
    /// Ranges of ids the venue's numbering shows were missed.
    pub seq_gaps: AtomicU64,
    /// Ids in those ranges.
    pub missed_ids: AtomicU64,
    /// Pings the server sent.
    pub pings_received: AtomicU64,
    /// Connections replaced without a gap (age limit or a silent stream).
    pub rotations: AtomicU64,
    /// Attempts held back by the per-host attempt budget or a venue's Retry-After.
    pub throttled: AtomicU64,
    /// Local books invalidated (each followed by a resync).
    pub book_resyncs: AtomicU64,
    /// Quotes whose bid reached their ask, dropped.
    pub crossed_quotes: AtomicU64,
    /// Times the capture channel was full and the feed waited for the disk.
    pub capture_waits: AtomicU64,
    /// Frames that failed to parse.
    pub parse_errors: AtomicU64,
    /// Well-formed frames of unknown kind (and binary frames).
    pub unknown_frames: AtomicU64,
    /// Connection attempts started.
    pub attempts: AtomicU64,
    /// Live connections lost.
    pub disconnects: AtomicU64,
    /// Outages recovered (first data after a loss).
    pub reconnects: AtomicU64,
    /// Outages recovered, by the kind of reason that began them
    /// (indexed by [`DisconnectReason::kind`]).
    pub reconnects_by_reason: [AtomicU64; DisconnectReason::KINDS.len()],
    /// Connections that came up (every wanted stream acknowledged).
    pub connected: AtomicU64,
    /// Streams silent past their limit on a live connection right now.
    pub stale_now: AtomicU64,
    /// Circuit-breaker openings.
    pub circuit_trips: AtomicU64,
    /// Per-stream stale events.
    pub stale_events: AtomicU64,
    /// Streams the venue rejected.
    pub rejected_streams: AtomicU64,
    /// Whether this feed is an account's private stream.
    pub is_account: bool,
    /// A reload removed this feed (or replaced it with a new one): it runs no more, and health,
    /// the status line and the exit status leave it out. Unix ms of the removal; 0 while it runs.
    pub retired_at_ms: AtomicU64,
    /// Account events delivered to the strategy.
    pub account_events: AtomicU64,
    /// Logins the venue accepted (the first and every re-login after a reconnect).
    pub logins: AtomicU64,
    /// Listen-key keep-alives the venue accepted.
    pub key_renewals: AtomicU64,
    /// Listen keys created.
    pub keys_created: AtomicU64,
    /// Credentials that expired while in use (listen keys, terminated subscriptions), handled.
    pub expiries: AtomicU64,
    /// Reconnect histograms (recorded on the cold path).
    pub histograms: Mutex<ReconnectHistograms>,
    /// Every outage, in order.
    pub gaps: Mutex<Vec<GapRecord>>,
    /// Records in `gaps` (read without its lock, by scrapes).
    pub gaps_recorded: AtomicU64,
    /// The error that failed the feed, if it failed.
    pub failure: Mutex<Option<String>>,
    /// Each role's state changes, in order (at most [`MAX_STATE_CHANGES`]).
    pub state_changes: Mutex<Vec<StateChange>>,
    /// State changes past [`MAX_STATE_CHANGES`], not kept.
    pub state_changes_dropped: AtomicU64,
}

impl FeedStats {
    /// Fresh counters.
    pub fn new(name: String, url: String) -> Self {
        FeedStats {
            name,
            url,
            venue: String::new(),
            streams: Vec::new(),
            standby_url: None,
            required: true,
            state: AtomicU8::new(FeedState::Connecting as u8),
            slot_count: AtomicU8::new(1),
            slots: [SlotStats::new(), SlotStats::new(), SlotStats::new()],
            messages: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            superseded: AtomicU64::new(0),
            seq_gaps: AtomicU64::new(0),
            missed_ids: AtomicU64::new(0),
            pings_received: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            book_resyncs: AtomicU64::new(0),
            crossed_quotes: AtomicU64::new(0),
            capture_waits: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            unknown_frames: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            reconnects_by_reason: std::array::from_fn(|_| AtomicU64::new(0)),
            connected: AtomicU64::new(0),
            stale_now: AtomicU64::new(0),
            circuit_trips: AtomicU64::new(0),
            stale_events: AtomicU64::new(0),
            rejected_streams: AtomicU64::new(0),
            is_account: false,
            retired_at_ms: AtomicU64::new(0),
            account_events: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            key_renewals: AtomicU64::new(0),
            keys_created: AtomicU64::new(0),
            expiries: AtomicU64::new(0),
            histograms: Mutex::new(ReconnectHistograms::default()),
            gaps: Mutex::new(Vec::new()),
            gaps_recorded: AtomicU64::new(0),
            failure: Mutex::new(None),
            state_changes: Mutex::new(Vec::new()),
            state_changes_dropped: AtomicU64::new(0),
        }
    }

    /// Whether a reload removed this feed.
    pub fn is_retired(&self) -> bool {
        self.retired_at_ms.load(Relaxed) != 0
    }

    /// Current state.
    pub fn state(&self) -> FeedState {
        FeedState::from_u8(self.state.load(Relaxed))
    }

    /// Publishes the state.
    pub fn set_state(&self, s: FeedState) {
        self.state.store(s as u8, Relaxed);
    }

    /// Counts one (single writer: a plain load + store, no locked instruction).
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }

    /// Publishes slot `i`'s role, state and connection number; `count` slots are in use.
    pub fn set_slot(&self, i: usize, role: SlotRole, state: FeedState, conn: u32) {
        if let Some(s) = self.slots.get(i) {
            s.role.store(role as u8, Relaxed);
            s.state.store(state as u8, Relaxed);
            s.conn.store(u64::from(conn), Relaxed);
        }
    }

    /// Publishes how many slots are in use.
    pub fn set_slot_count(&self, count: usize) {
        self.slot_count.store(count.min(MAX_SLOTS) as u8, Relaxed);
    }

    /// Slots in use.
    pub fn slot_count(&self) -> usize {
        usize::from(self.slot_count.load(Relaxed))
    }

    /// Records a change of a role's state (cold: on a change only).
    pub fn record_state_change(&self, change: StateChange) {
        let mut list = self
            .state_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if list.len() < MAX_STATE_CHANGES {
            list.push(change);
        } else {
            FeedStats::bump(&self.state_changes_dropped);
        }
    }

    /// Records a gap; returns its index (to add missed ranges later).
    pub fn record_gap(&self, gap: GapRecord) -> usize {
        for m in &gap.missed {
            self.count_missed(m);
        }
        let mut g = self
            .gaps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.push(gap);
        FeedStats::bump(&self.gaps_recorded);
        g.len() - 1
    }

    /// Adds a missed range to gap `index` (a stream's first message after an outage).
    pub fn add_missed(&self, index: usize, missed: Missed) {
        self.count_missed(&missed);
        let mut g = self
            .gaps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(gap) = g.get_mut(index) {
            gap.missed.push(missed);
        }
    }

    fn count_missed(&self, m: &Missed) {
        FeedStats::bump(&self.seq_gaps);
        self.missed_ids
            .store(self.missed_ids.load(Relaxed) + m.ids(), Relaxed);
    }
}

/// Writes `p50 … max` of a histogram whose values are in `unit_ns` nanoseconds.
pub fn percentiles(h: &Histogram<u64>, unit_ns: u64) -> String {
    if h.is_empty() {
        return "n=0".to_string();
    }
    let f = |v: u64| fmt_ns(v.saturating_mul(unit_ns));
    format!(
        "n={} p50={} p90={} p99={} p99.9={} max={}",
        h.len(),
        f(h.value_at_quantile(0.5)),
        f(h.value_at_quantile(0.9)),
        f(h.value_at_quantile(0.99)),
        f(h.value_at_quantile(0.999)),
        f(h.max())
    )
}

/// The quantiles of a percentile spectrum: 0, then towards 1 in steps of "nines" (p50, p75,
/// p90, p95, p99, …, p99.999), then 1 (the maximum).
pub const SPECTRUM_QUANTILES: [f64; 14] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999, 1.0,
];

/// A histogram's percentile spectrum: `(quantile, value)` at each of [`SPECTRUM_QUANTILES`]
/// (the value in the histogram's unit; the last is its maximum). Empty for an empty histogram.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    SPECTRUM_QUANTILES
        .iter()
        .map(|&q| {
            let v = if q >= 1.0 {
                h.max()
            } else if q <= 0.0 {
                h.min()
            } else {
                h.value_at_quantile(q)
            };
            (q, v)
        })
        .collect()
}

/// Human-readable duration of `ns` nanoseconds.
pub fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns}ns")
    } else if ns < 10_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 10_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

/// Resident memory of this process, bytes (Linux `/proc/self/statm`; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spectrum_runs_from_the_minimum_through_the_nines_to_the_maximum() {
        assert!(spectrum(&nanos_histogram()).is_empty());
        let mut h = nanos_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let s = spectrum(&h);
        assert_eq!(s.len(), SPECTRUM_QUANTILES.len());
        assert_eq!(s[0], (0.0, 100));
        assert_eq!(s.last().copied(), Some((1.0, h.max())));
        let p50 = s.iter().find(|(q, _)| *q == 0.5).unwrap().1;
        assert!((499_000..=501_000).contains(&p50), "{p50}");
        assert!(
            s.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{s:?}"
        );
    }

    #[test]
    fn state_changes_are_kept_up_to_their_bound_and_counted_past_it() {
        let stats = FeedStats::new("f".into(), "wss://x".into());
        let change = StateChange {
            at_unix_ns: 1,
            role: SlotRole::Primary,
            state: Some(FeedState::Streaming),
            conn: 1,
        };
        for _ in 0..MAX_STATE_CHANGES + 3 {
            stats.record_state_change(change);
        }
        assert_eq!(stats.state_changes.lock().unwrap().len(), MAX_STATE_CHANGES);
        assert_eq!(stats.state_changes_dropped.load(Relaxed), 3);
    }
}
