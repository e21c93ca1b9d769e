//! Outage accounting: an outage opens when the last connection carrying a feed is lost and
//! closes with the first data after it; its reconnect time and gap go into the feed's histograms
//! and its list of gap records. Missed-id ranges found later are added to the record.

use std::sync::atomic::Ordering;
use std::time::Instant;

use log::{info, warn};

use super::report::{suppressed_note, Reporter};
use crate::clock;
use crate::metrics::{FeedStats, GapCause, GapRecord, Missed};
use crate::tick::{DisconnectReason, Health};

/// An outage in progress.
#[derive(Clone, Copy, Debug)]
struct Open {
    detected: Instant,
    last_data: Option<Instant>,
    reason: DisconnectReason,
    attempts: u32,
}

/// A closed outage, as reported to the strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Closed {
    /// Index of its gap record (missed ranges found later are added to it).
    pub record: usize,
    /// The health event that says so.
    pub event: Health,
}

/// One feed's outages.
#[derive(Debug, Default)]
pub(crate) struct Outages {
    open: Option<Open>,
    /// When the last data message arrived (any connection).
    last_data: Option<Instant>,
}

impl Outages {
    /// Whether an outage is open.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// New data arrived.
    #[inline]
    pub(crate) fn on_data(&mut self, now: Instant) {
        self.last_data = Some(now);
    }

    /// No connection carries the feed any more. False when an outage was open already.
    #[cold]
    pub(crate) fn open(&mut self, now: Instant, reason: DisconnectReason) -> bool {
        if self.open.is_some() {
            return false;
        }
        self.open = Some(Open {
            detected: now,
            last_data: self.last_data,
            reason,
            attempts: 0,
        });
        true
    }

    /// A connection attempt started during the outage.
    pub(crate) fn count_attempt(&mut self) {
        if let Some(o) = &mut self.open {
            o.attempts += 1;
        }
    }

    /// First data after an outage (read at `now`, `recv_ns`): records the gap and says so.
    #[cold]
    pub(crate) fn close(
        &mut self,
        now: Instant,
        recv_ns: u64,
        report: &mut Reporter,
    ) -> Option<Closed> {
        let outage = self.open.take()?;
        let reconnect = now.saturating_duration_since(outage.detected);
        let gap_start = outage.last_data.unwrap_or(outage.detected);
        let gap = now.saturating_duration_since(gap_start);
        report.record_outage(reconnect, gap);
        let stats = &report.stats;
        FeedStats::bump(&stats.reconnects);
        FeedStats::bump(&stats.reconnects_by_reason[outage.reason.kind()]);
        let total = stats.reconnects.load(Ordering::Relaxed);
        let end_unix = clock::mono_to_unix_ns(recv_ns);
        let record = stats.record_gap(GapRecord {
            start_unix_ns: end_unix.saturating_sub(gap.as_nanos() as u64),
            end_unix_ns: end_unix,
            duration_ms: gap.as_millis() as u64,
            reconnect_ms: reconnect.as_millis() as u64,
            cause: GapCause::Outage(outage.reason),
            attempts: outage.attempts,
            missed: Vec::new(),
        });
        info!(
            "[{}] Reconnected successfully (gap_ms={}, attempts={}, total_reconnects={total})",
            report.name,
            gap.as_millis(),
            outage.attempts
        );
        Some(Closed {
            record,
            event: Health::Recovered {
                gap_ms: gap.as_millis() as u64,
                reconnect_ms: reconnect.as_millis() as u64,
                attempts: outage.attempts,
            },
        })
    }
}

/// Updates `missed` of a stream never arrived: added to the outage record `outage` when the
/// stream's first message after an outage shows them, else recorded as a sequence jump on a
/// live connection, and logged at a limited rate.
#[cold]
pub(crate) fn record_missed(
    report: &mut Reporter,
    stream_name: &str,
    missed: Missed,
    outage: Option<usize>,
    recv_ns: u64,
) {
    match outage {
        Some(index) => report.stats.add_missed(index, missed),
        None => {
            let at = clock::mono_to_unix_ns(recv_ns);
            report.stats.record_gap(GapRecord {
                start_unix_ns: at,
                end_unix_ns: at,
                duration_ms: 0,
                reconnect_ms: 0,
                cause: GapCause::SequenceJump,
                attempts: 0,
                missed: vec![missed],
            });
        }
    }
    if let Some(suppressed) = report.gaps.allow(Instant::now()) {
        warn!(
            "[{}] stream {stream_name} missed updates {}..={} ({} ids){}{}",
            report.name,
            missed.from_seq,
            missed.to_seq,
            missed.ids(),
            if outage.is_some() {
                " across the outage"
            } else {
                " on a live connection"
            },
            suppressed_note(suppressed)
        );
    }
}
