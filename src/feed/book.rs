//! The local book of one order-book stream and how it is kept in sync with the venue. Pure.
//!
//! Snapshots replace the book, chained deltas update it, and a missed or broken chain, a crossed
//! book or a checksum mismatch invalidates it. How an invalid book gets its next snapshot is the
//! venue's rule: Bybit and OKX send one when a fresh connection subscribes; Binance books follow
//! Binance's "How to manage a local order book correctly": diffs are buffered (parsed) while a
//! REST snapshot is fetched, the diffs it holds are dropped, the first remaining one must
//! straddle its `lastUpdateId` (both rules are [`Venue`] methods), the rest are applied.

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use crate::book::{Book, Side};
use crate::rest::{DepthSnapshot, RestError};
use crate::tick::{BookFault, DepthChunk, TickData};
use crate::venue::Venue;

/// Most diffs buffered while a snapshot is fetched.
const MAX_BUFFERED: usize = 20_000;
/// Wait after a first failed snapshot request; it doubles with each failure in a row (with
/// jitter), up to [`SNAPSHOT_RETRY_MAX`], and is never shorter than what the venue asked for.
pub(crate) const SNAPSHOT_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between snapshot requests that keep failing (unless the venue asks for more).
pub(crate) const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait after the `failures`-th failed snapshot request in a row: exponential with equal
/// jitter (`unit` in 0..1 picks within the upper half), never under the venue's `retry_after`.
pub(crate) fn snapshot_retry(failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
    let exp = SNAPSHOT_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(SNAPSHOT_RETRY_MAX);
    let jittered = exp.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or_default())
}

/// A diff kept, parsed, for after the snapshot.
#[derive(Debug)]
pub(crate) struct Buffered {
    /// `U` and `u`.
    pub first: u64,
    pub last: u64,
    /// When its frame was read.
    pub recv_ns: u64,
    /// Its ticks (event time, depth chunk), as parsed.
    pub ticks: Vec<(u64, TickData)>,
}

/// Binance's procedure: buffer the diffs, fetch a REST snapshot, apply the diffs it lacks.
#[derive(Debug, Default)]
struct RestSync {
    /// A snapshot request is in flight.
    requested: bool,
    /// No request before this (after a failed one).
    retry_at: Option<Instant>,
    /// Requests that failed in a row.
    failures: u32,
    /// Diffs received while the book is not valid, oldest first.
    buffer: VecDeque<Buffered>,
}

/// What applying one chunk of an update came to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Applied {
    /// Not applied and not sent: the book is invalid, or the snapshot holds the update already.
    Skip,
    /// Not applied: the first diff after a REST snapshot does not straddle it; the book must be
    /// invalidated.
    Broken(BookFault),
    /// Applied; send the chunk.
    Send,
    /// The update's last chunk was applied. Send it, then `top` (the book's new best bid and
    /// ask, so a strategy need not keep its own book for prices). A `fault` found in the book
    /// invalidates it (the chunk is still sent); `resynced` is a book valid again.
    Done {
        /// The new top of book, when both sides have a level.
        top: Option<TickData>,
        /// Crossed book or checksum mismatch.
        fault: Option<BookFault>,
        /// The book was rebuilt from a snapshot after having been valid before.
        resynced: bool,
    },
}

/// A REST snapshot's answer, applied.
#[derive(Debug)]
pub(crate) enum SnapshotOutcome {
    /// Nothing to do (the book is valid, or not synced by REST).
    Ignored,
    /// The request failed; the next diff asks again after `retry_in`.
    Failed {
        /// Why.
        error: RestError,
        /// Wait before asking again.
        retry_in: Duration,
    },
    /// The snapshot is older than the buffered diffs; the next diff asks again.
    Stale {
        /// Its `lastUpdateId`.
        last: u64,
        /// `U` of the oldest buffered diff.
        first: u64,
    },
    /// The book is built from `snapshot`; the buffered diffs follow.
    Built {
        /// The snapshot, to hand its levels to the strategy.
        snapshot: DepthSnapshot,
        /// Diffs that came while it was fetched, to apply now, oldest first.
        buffered: VecDeque<Buffered>,
        /// The book was valid once before.
        resynced: bool,
    },
}

/// The local book of an order-book stream.
#[derive(Debug)]
pub(crate) struct BookState {
    book: Book,
    /// The book matches the venue's: built from a snapshot, every update since applied.
    valid: bool,
    /// A snapshot is being applied (its chunks so far).
    loading: bool,
    /// It was valid once (the first snapshot is not a resync).
    ever_valid: bool,
    /// Binance: the book starts from a REST snapshot.
    rest: Option<RestSync>,
    /// Binance: the REST snapshot's `lastUpdateId`; diffs it holds are not applied.
    covered_to: u64,
    /// Binance: the next diff applied must straddle `covered_to`.
    check_first: bool,
}

impl BookState {
    /// A book of `levels` per side, built from the venue's WebSocket snapshots.
    pub(crate) fn from_stream(levels: usize) -> BookState {
        BookState::new(levels, None)
    }

    /// A book of `levels` per side, built from REST snapshots (Binance).
    pub(crate) fn from_rest(levels: usize) -> BookState {
        BookState::new(levels, Some(RestSync::default()))
    }

    fn new(levels: usize, rest: Option<RestSync>) -> BookState {
        BookState {
            book: Book::new(levels),
            valid: false,
            loading: false,
            ever_valid: false,
            rest,
            covered_to: 0,
            check_first: false,
        }
    }

    /// Whether the book matches the venue's.
    #[inline]
    pub(crate) fn is_valid(&self) -> bool {
        self.valid
    }

    /// Whether updates are being buffered for a REST snapshot (Binance, book invalid).
    #[inline]
    pub(crate) fn buffering(&self) -> bool {
        !self.valid && self.rest.is_some()
    }

    /// Applies one chunk of an update. A snapshot replaces the book and makes it valid; a delta
    /// on an invalid book is not applied. After an update's last chunk the book is checked:
    /// crossed, or a non-zero OKX checksum that does not match, is a fault.
    #[inline]
    pub(crate) fn apply(&mut self, chunk: &DepthChunk, venue: Venue) -> Applied {
        if chunk.snapshot {
            if chunk.part == 0 {
                self.book.clear();
                self.loading = true;
            }
        } else if !self.valid {
            return Applied::Skip;
        } else if self.rest.is_some() {
            if venue.snapshot_holds(chunk.final_update_id, self.covered_to) {
                return Applied::Skip;
            }
            if self.check_first && chunk.part == 0 {
                if !venue.straddles(chunk.first_update_id, self.covered_to) {
                    return Applied::Broken(BookFault::Gap);
                }
                self.check_first = false;
            }
        }
        self.book.apply(chunk);
        if !chunk.last {
            return Applied::Send;
        }
        self.book.trim();
        let was_loading = mem::take(&mut self.loading);
        let fault = if self.book.crossed() {
            Some(BookFault::Crossed)
        } else if chunk.checksum != 0 && !self.book.okx_checksum_matches(chunk.checksum) {
            Some(BookFault::Checksum)
        } else {
            None
        };
        if fault.is_some() {
            if was_loading {
                self.valid = true; // so that invalidation reports it
            }
            return Applied::Done {
                top: None,
                fault,
                resynced: false,
            };
        }
        let resynced = was_loading && !self.valid && self.ever_valid;
        if was_loading {
            self.valid = true;
            self.ever_valid = true;
        }
        Applied::Done {
            top: self.top(),
            fault: None,
            resynced,
        }
    }

    /// The best bid and ask as a quote, when both sides have a level.
    pub(crate) fn top(&self) -> Option<TickData> {
        match (self.book.best_bid(), self.book.best_ask()) {
            (Some(b), Some(a)) => Some(TickData::quote((b.price, b.qty), (a.price, a.qty))),
            _ => None,
        }
    }

    /// The book can no longer be trusted. `None` when it was not valid anyway; else whether it
    /// resyncs by REST (no new connection needed).
    #[cold]
    pub(crate) fn invalidate(&mut self) -> Option<bool> {
        if !self.valid {
            return None;
        }
        self.valid = false;
        self.book.clear();
        Some(match self.rest.as_mut() {
            Some(rest) => {
                rest.buffer.clear();
                true
            }
            None => false,
        })
    }

    /// Keeps a diff for after the snapshot. Returns true when a snapshot should be asked for now
    /// (none is on its way, and no failed one asks to wait).
    #[cold]
    pub(crate) fn buffer(&mut self, diff: Buffered, now: Instant) -> bool {
        let Some(rest) = self.rest.as_mut() else {
            return false;
        };
        if rest.buffer.len() >= MAX_BUFFERED {
            // The snapshot is not coming: start over.
            rest.buffer.clear();
            rest.requested = false;
        }
        rest.buffer.push_back(diff);
        if rest.requested || rest.retry_at.is_some_and(|t| now < t) {
            return false;
        }
        rest.requested = true;
        true
    }

    /// A REST snapshot's answer arrived: drop the buffered diffs it holds, check that the first
    /// one left straddles it, and build the book from it.
    #[cold]
    pub(crate) fn on_snapshot(
        &mut self,
        result: Result<DepthSnapshot, RestError>,
        venue: Venue,
        now: Instant,
    ) -> SnapshotOutcome {
        let Some(rest) = self.rest.as_mut() else {
            return SnapshotOutcome::Ignored;
        };
        rest.requested = false;
        let snapshot = match result {
            Ok(s) => s,
            Err(error) => {
                rest.failures = rest.failures.saturating_add(1);
                let retry_in = snapshot_retry(rest.failures, error.retry_after, fastrand::f64());
                rest.retry_at = Some(now + retry_in);
                return SnapshotOutcome::Failed { error, retry_in };
            }
        };
        rest.failures = 0;
        if self.valid {
            return SnapshotOutcome::Ignored;
        }
        let last = snapshot.last_update_id;
        while rest
            .buffer
            .front()
            .is_some_and(|b| venue.snapshot_holds(b.last, last))
        {
            rest.buffer.pop_front();
        }
        if let Some(front) = rest.buffer.front() {
            if !venue.straddles(front.first, last) {
                return SnapshotOutcome::Stale {
                    last,
                    first: front.first,
                };
            }
        }
        let buffered = mem::take(&mut rest.buffer);
        self.book.clear();
        for l in &snapshot.bids {
            self.book.set(Side::Bid, l.price, l.qty);
        }
        for l in &snapshot.asks {
            self.book.set(Side::Ask, l.price, l.qty);
        }
        self.book.trim();
        self.valid = true;
        let resynced = mem::replace(&mut self.ever_valid, true);
        // Diffs the snapshot already holds may still arrive (the WebSocket can lag the REST
        // answer): they are captured, not applied. If none was buffered, the next one must
        // straddle the snapshot.
        self.covered_to = last;
        self.check_first = buffered.is_empty();
        SnapshotOutcome::Built {
            snapshot,
            buffered,
            resynced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_retries_double_with_jitter_up_to_a_cap_and_honour_the_venue() {
        let ms = Duration::from_millis;
        // Failures in a row → the upper half of 250 ms · 2^(n−1).
        assert_eq!(snapshot_retry(1, None, 0.0), ms(125));
        assert_eq!(snapshot_retry(1, None, 1.0), ms(250));
        assert_eq!(snapshot_retry(2, None, 1.0), ms(500));
        assert_eq!(snapshot_retry(4, None, 0.0), ms(1000));
        assert_eq!(snapshot_retry(40, None, 1.0), SNAPSHOT_RETRY_MAX);
        assert_eq!(snapshot_retry(40, None, 0.0), SNAPSHOT_RETRY_MAX / 2);
        // A Retry-After (or a ban, or an empty weight budget) is never cut short.
        assert_eq!(snapshot_retry(1, Some(ms(2000)), 1.0), ms(2000));
        assert_eq!(
            snapshot_retry(40, Some(Duration::from_secs(120)), 1.0),
            Duration::from_secs(120)
        );
    }
}
