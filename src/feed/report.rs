//! A feed's outputs other than its driver's actions: counters, rate-limited log lines, the
//! capture hand-off, and — through [`Out`] — ticks and health events into the driver's sink.

use std::mem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use log::warn;

use super::sink::Sink;
use crate::capture::{CaptureMsg, CapturedFrame, CapturedHealth, CapturedSnapshot};
use crate::clock;
use crate::metrics::{FeedStats, ReconnectHistograms};
use crate::raw::{Raw, RawRef};
use crate::rest::DepthSnapshot;
use crate::tick::{FeedId, Health, HealthMsg, Tick};

/// At most one log line per this interval for repetitive problems (bad frames, drops).
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Rate limiter for repetitive log lines.
#[derive(Debug, Default)]
pub(crate) struct LogGate {
    next: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    /// `Some(n)` when a line may be written now, `n` = lines suppressed since the last one.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|t| now < t) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + LOG_EVERY);
        Some(mem::take(&mut self.suppressed))
    }
}

/// Suffix for a rate-limited log line: how many were not logged since the last one.
pub(crate) fn suppressed_note(suppressed: u64) -> String {
    if suppressed > 0 {
        format!(" [+{suppressed} more since last report]")
    } else {
        String::new()
    }
}

/// Who a feed is, and where its counters, log lines and captured messages go.
#[derive(Debug)]
pub(crate) struct Reporter {
    /// The feed's engine-wide id.
    pub feed: FeedId,
    /// The feed's index within its driver (see [`Sink`]).
    pub lane: usize,
    /// Its name, for log lines.
    pub name: String,
    /// Its counters.
    pub stats: Arc<FeedStats>,
    /// The capture thread's channel, when capture is on.
    capture: Option<Sender<CaptureMsg>>,
    bad_frames: LogGate,
    /// Missed ids.
    pub gaps: LogGate,
    /// Attempts held by the host's budget.
    pub throttle: LogGate,
    drops: LogGate,
    drops_reported: u64,
    /// Reconnect histograms recorded on this thread and not yet published to `stats` (see
    /// [`Reporter::publish`]).
    histograms: ReconnectHistograms,
    unpublished: bool,
    /// Ticks handed to the sink so far: a captured health event's place among them.
    ticks_out: u64,
}

impl Reporter {
    /// The reporter of feed `feed`, lane `lane`.
    pub(crate) fn new(
        feed: FeedId,
        lane: usize,
        name: String,
        stats: Arc<FeedStats>,
        capture: Option<Sender<CaptureMsg>>,
    ) -> Reporter {
        Reporter {
            feed,
            lane,
            name,
            stats,
            capture,
            bad_frames: LogGate::default(),
            gaps: LogGate::default(),
            throttle: LogGate::default(),
            drops: LogGate::default(),
            drops_reported: 0,
            histograms: ReconnectHistograms::default(),
            unpublished: false,
            ticks_out: 0,
        }
    }

    /// Records how long a lost connection had been silent when the loss was detected.
    #[cold]
    pub(crate) fn record_detection(&mut self, silent: Duration) {
        self.histograms.record_detection(silent);
        self.unpublished = true;
        self.publish(false);
    }

    /// Records an outage's reconnect time and span.
    #[cold]
    pub(crate) fn record_outage(&mut self, reconnect: Duration, span: Duration) {
        self.histograms.record_outage(reconnect, span);
        self.unpublished = true;
        self.publish(false);
    }

    /// Hands what this thread recorded to the feed's shared histograms. The feed thread never
    /// waits for the lock (a scrape or the status line may hold it): when it is taken, the
    /// figures stay here and go with the next try (every turn, see `FeedCore::handle_timeout`).
    /// `wait` (at shutdown) takes the lock whatever it costs.
    #[inline]
    pub(crate) fn publish(&mut self, wait: bool) {
        if self.unpublished {
            self.publish_now(wait);
        }
    }

    #[cold]
    fn publish_now(&mut self, wait: bool) {
        let shared = if wait {
            Some(
                self.stats
                    .histograms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        } else {
            self.stats.histograms.try_lock().ok()
        };
        if let Some(mut shared) = shared {
            shared.take_from(&mut self.histograms);
            self.unpublished = false;
        }
    }

    /// Whether messages are captured.
    #[inline]
    pub(crate) fn captures(&self) -> bool {
        self.capture.is_some()
    }

    /// Hands a new message to the capture thread (`again`: one given to a book again after a
    /// resync). A full capture channel makes the feed wait for the disk: the capture promises
    /// every message, and the wait is counted.
    #[inline]
    pub(crate) fn capture(&self, stream: u16, conn: u32, recv_ns: u64, frame: Raw, again: bool) {
        let Some(tx) = &self.capture else {
            return;
        };
        let msg = CaptureMsg::Frame(CapturedFrame {
            feed: self.feed,
            stream,
            conn,
            recv_unix_ns: clock::mono_to_unix_ns(recv_ns),
            frame,
            again,
        });
        Self::hand_over(tx, msg, &self.stats);
    }

    /// Hands a health event to the capture thread, with its place among the feed's ticks.
    #[cold]
    fn capture_health(&self, msg: HealthMsg) {
        if let Some(tx) = &self.capture {
            let ticks = self.ticks_out;
            Self::hand_over(
                tx,
                CaptureMsg::Health(CapturedHealth { msg, ticks }),
                &self.stats,
            );
        }
    }

    /// Hands a REST depth snapshot to the capture thread, with its place among the feed's
    /// ticks; `recv_ns` (monotonic) is the time its ticks carry.
    #[cold]
    pub(crate) fn capture_snapshot(&self, stream: u16, recv_ns: u64, snapshot: &DepthSnapshot) {
        if let Some(tx) = &self.capture {
            let msg = CaptureMsg::Snapshot(Box::new(CapturedSnapshot {
                feed: self.feed,
                stream,
                recv_ns,
                ticks: self.ticks_out,
                snapshot: snapshot.clone(),
            }));
            Self::hand_over(tx, msg, &self.stats);
        }
    }

    #[inline]
    fn hand_over(tx: &Sender<CaptureMsg>, msg: CaptureMsg, stats: &FeedStats) {
        if let Err(TrySendError::Full(msg)) = tx.try_send(msg) {
            FeedStats::bump(&stats.capture_waits);
            let _ = tx.send(msg);
        }
    }

    /// A frame that could not be parsed: counted, logged at a limited rate, skipped.
    #[cold]
    pub(crate) fn bad_frame(&mut self, now: Instant, why: &str, text: &str) {
        self.bad(now, why, || text.chars().take(160).collect());
    }

    /// [`Reporter::bad_frame`] of a frame as received, text or binary.
    #[cold]
    pub(crate) fn bad_raw(&mut self, now: Instant, why: &str, frame: RawRef<'_>) {
        self.bad(now, why, || frame.shown());
    }

    /// Counts a bad frame and logs it, shown by `shown` (called only when logged).
    #[cold]
    fn bad(&mut self, now: Instant, why: &str, shown: impl FnOnce() -> String) {
        FeedStats::bump(&self.stats.parse_errors);
        if let Some(suppressed) = self.bad_frames.allow(now) {
            let shown = shown();
            warn!(
                "[{}] skipped a bad frame ({why}): {shown:?}{}",
                self.name,
                suppressed_note(suppressed)
            );
        }
    }

    /// A well-formed frame the feed has no use for: counted, logged at a limited rate.
    #[cold]
    pub(crate) fn unknown_frame(&mut self, now: Instant, what: &str, len: usize) {
        FeedStats::bump(&self.stats.unknown_frames);
        if let Some(suppressed) = self.bad_frames.allow(now) {
            warn!(
                "[{}] ignored a frame: {what} ({len} bytes){}",
                self.name,
                suppressed_note(suppressed)
            );
        }
    }

    /// A quote whose bid reaches its ask: counted, logged at a limited rate, not given.
    #[cold]
    pub(crate) fn crossed_quote(&mut self, stream: &str, bid: f64, ask: f64) {
        FeedStats::bump(&self.stats.crossed_quotes);
        if let Some(suppressed) = self.bad_frames.allow(Instant::now()) {
            warn!(
                "[{}] stream {stream}: crossed quote (bid {bid} >= ask {ask}) dropped{}",
                self.name,
                suppressed_note(suppressed)
            );
        }
    }

    /// Logs (at most every few seconds) when ticks were dropped since the last report.
    #[inline]
    pub(crate) fn note_drops(&mut self, now: Instant) {
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        if dropped != self.drops_reported && self.drops.allow(now).is_some() {
            warn!(
                "[{}] strategy channel full: {dropped} ticks dropped so far",
                self.name
            );
            self.drops_reported = dropped;
        }
    }
}

/// The reporter and the sink together: everything a feed's logic needs to say what happened,
/// in the order it happened.
pub(crate) struct Out<'a, S: ?Sized> {
    /// Counters, logs, capture.
    pub report: &'a mut Reporter,
    /// Ticks and health events.
    pub sink: &'a mut S,
}

impl<S: Sink + ?Sized> Out<'_, S> {
    /// Hands a tick over.
    #[inline]
    pub(crate) fn tick(&mut self, tick: Tick) {
        self.report.ticks_out += 1;
        self.sink.tick(self.report.lane, tick);
    }

    /// Reports a health event, stamped now.
    #[cold]
    pub(crate) fn health(&mut self, event: Health) {
        let stats = &self.report.stats;
        match event {
            Health::Connected { .. } => FeedStats::bump(&stats.connected),
            Health::Stale { .. } => FeedStats::bump(&stats.stale_now),
            Health::StreamResumed { .. } => {
                let _ = stats
                    .stale_now
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
            // Every stream's silence is disarmed until data flows again.
            Health::Disconnected { .. } | Health::Failed { .. } => {
                stats.stale_now.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
        let msg = HealthMsg {
            feed: self.report.feed,
            at_ns: clock::now_ns(),
            event,
        };
        self.report.capture_health(msg);
        self.sink.health(self.report.lane, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_figures_never_wait_for_a_reader_and_are_never_lost() {
        let stats = Arc::new(FeedStats::new("f".into(), "ws://x".into()));
        let mut r = Reporter::new(0, 0, "f".into(), stats.clone(), None);
        let count = |s: &FeedStats| {
            s.histograms
                .lock()
                .unwrap()
                .reconnect_us()
                .map_or(0, |h| h.len())
        };
        {
            // A scrape holds the shared histograms: recording goes on without waiting.
            let _scrape = stats.histograms.lock().unwrap();
            r.record_outage(Duration::from_millis(3), Duration::from_millis(4));
            r.record_outage(Duration::from_secs(6), Duration::from_secs(7));
        }
        assert_eq!(count(&stats), 0, "kept on the feed's thread meanwhile");
        r.publish(false);
        assert_eq!(count(&stats), 2);
        assert_eq!(stats.histograms.lock().unwrap().target_misses, 1);
        r.record_outage(Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(
            count(&stats),
            3,
            "published at once when nobody holds the lock"
        );
    }
}
